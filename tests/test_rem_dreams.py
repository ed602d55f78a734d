"""REM dreaming for the mlp kind (neurosleep/sleep/rem_dreams.py): dreams that do not copy the
seen samples, made only from the seen tasks, the seen classes' readout untouched, determinism,
staged NREM/REM sleep through the run file, and the forward-transfer effect held to its value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from neurosleep.analysis.metrics import fwt
from neurosleep.analysis.plots import shade_phases
from neurosleep.errors import SpecError
from neurosleep.experiments.ann import ANNData, build_stream
from neurosleep.experiments.ann_network import MLP
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.sleep import SLEEP, MLPContext
from neurosleep.sleep.rem_dreams import DREAMS, REMDreamsParams, free_units
from neurosleep.spec.mlp import MLPSpec

SHAPE = (28, 28)


@pytest.fixture(scope="module")
def stream():
    """Task-IL split MNIST 5k, 100 training images per class, seed 5."""
    return build_stream(ANNData(stream="split", scenario="task", train_per_class=100), 5)


def _seen(stream, tasks):
    x = torch.tensor(np.concatenate([stream.tasks[t].x_train for t in tasks]))
    y = torch.tensor(np.concatenate([stream.tasks[t].y_train for t in tasks]))
    return x, y


class _Record:
    """Collects what the algorithm writes (the run-file path is tested end to end below)."""

    def __init__(self) -> None:
        self.arrays_written: dict = {}
        self.scalars: dict = {}

    def arrays(self, arrays, units) -> None:
        self.arrays_written.update(arrays)

    def scalar(self, name, value, units) -> None:
        self.scalars[name] = value


def _context(stream, tasks, seed=0, sizes=(784, 40, 40, 10)):
    spec = MLPSpec(
        name="t", layers=list(sizes), output="relu", bias=False, init="uniform", init_scale=0.05
    )
    net = MLP(spec, torch.Generator().manual_seed(1))
    net.eval()
    x, y = _seen(stream, tasks)
    record = _Record()
    context = MLPContext(
        weights=tuple(w.detach().clone() for w in net.weights),
        biases=False,
        activations=lambda v: net.activations(v),
        forward=net.forward_with,
        inputs=x,
        labels=y,
        shape=SHAPE,
        generator=torch.Generator().manual_seed(seed),
        engine="torch",
        on_spikes=lambda *a: None,
        record=record,
        progress=lambda f: None,
    )
    return context, record


@pytest.mark.parametrize("source", ["chimera", "noise"])
def test_dreams_are_not_copies_of_any_training_sample(stream, source):
    """Nearest-neighbour distance (Euclidean, pixels in [0, 1]) of 200 dreams to every training
    image of all five tasks: each dream at least half the median distance of a real held-out
    test image, and the dreams' median above that median (a copy would be at 0; a new real
    digit's median is 5.7 here, the chimeras' 7.5, the noise's 13)."""
    x, y = _seen(stream, [0, 1])
    every = torch.tensor(np.concatenate([t.x_train for t in stream.tasks]))
    test = torch.tensor(np.concatenate([stream.tasks[t].x_test for t in (0, 1)]))
    g = torch.Generator().manual_seed(0)
    params = REMDreamsParams(steps=1, source=source)
    dreams = DREAMS.get(source)
    classes = dreams.classes(y, 6, params, SHAPE, g)
    picks = torch.randint(len(classes), (200,), generator=g)
    batch = dreams.draw(classes, picks, x, y, SHAPE, params, g)
    to_dream = torch.cdist(batch, every).min(dim=1).values
    real = torch.cdist(test, every).min(dim=1).values.median()
    assert float(to_dream.min()) > 0.5 * float(real)
    assert float(to_dream.median()) > float(real)


def test_rem_trains_dream_units_only_and_is_deterministic(stream):
    """After tasks 1–2 (classes 0–3): the dream classes sit on the free units 4.., the seen
    classes' output rows are bit-identical, the dream loss falls, and a second run with the
    same seed gives the same weights bit for bit."""
    params = REMDreamsParams(steps=60, lr=0.1, momentum=0.5, batch_size=32)
    algorithm = SLEEP.get("rem_dreams")
    a_ctx, a_rec = _context(stream, [0, 1])
    b_ctx, _ = _context(stream, [0, 1])
    a = algorithm(params, a_ctx)
    b = algorithm(params, b_ctx)
    assert all(torch.equal(u, v) for u, v in zip(a.weights, b.weights, strict=True))
    assert (a.steps, a.dt_ms) == (60, 1.0)
    assert free_units(a_ctx.labels, 10) == [4, 5, 6, 7, 8, 9]
    units = a_rec.arrays_written["dream_units"].tolist()
    assert a_rec.arrays_written["dream_classes"] == 6 and units == [4, 5, 6, 7, 8, 9]
    before, after = a_ctx.weights[-1], a.weights[-1]
    assert torch.equal(after[:4], before[:4])  # seen classes' readout untouched
    assert not torch.equal(after[4:], before[4:])
    assert not torch.equal(a.weights[0], a_ctx.weights[0])  # the hidden layers dream too
    loss = a_rec.arrays_written["loss"]
    assert loss[-10:].mean() < loss[:10].mean() - 0.1  # ln 6 = 1.79 at the start
    assert a_rec.arrays_written["dreams"].shape == (16, 784)
    assert set(a_rec.arrays_written["dream_labels"].tolist()) <= set(units)
    # another seed, other dreams
    c_ctx, _ = _context(stream, [0, 1], seed=1)
    c = algorithm(params, c_ctx)
    assert not torch.equal(c.weights[0], a.weights[0])


def test_no_free_unit_trains_nothing(stream):
    """Every class seen (or a domain-IL head): no dream class, weights unchanged, 0 steps of
    loss, and the diagnostic says so."""
    ctx, record = _context(stream, [0, 1, 2, 3, 4])
    out = SLEEP.get("rem_dreams")(REMDreamsParams(steps=20), ctx)
    assert all(torch.equal(u, v) for u, v in zip(out.weights, ctx.weights, strict=True))
    assert record.arrays_written["dream_classes"] == 0
    assert record.arrays_written["loss"].shape == (0,)


TINY = """\
format_version: 1
name: {name}
seed: 4
model: {{format_version: 1, kind: mlp, name: tiny, layers: [784, 32, 32, 10], activation: relu,
        output: relu, bias: false, init: uniform, init_scale: 0.05}}
engine: torch
device: cpu
data: {{dataset: mnist5k, stream: split, scenario: task, classes_per_task: 2, train_per_class: 60}}
record: {{weights: false, sleep_spikes: false}}
output: {name}.h5
schedule:
  - test: {{name: at_start}}
  - repeat:
      over: tasks
      phases:
        - wake: {{name: "train{{k}}", lr: 0.1, momentum: 0.5, batch_size: 30, epochs: 6}}
{sleep}        - test: {{name: "after{{k}}"}}
"""
STAGES = """\
        - sleep:
            name: "sleep{k}"
            cycles: 2
            stages:
              - {name: nrem, kind: sra, steps: 200, window: 0}
              - {name: rem, kind: rem_dreams, steps: 30, lr: 0.1, momentum: 0.5, dt: 2 ms}
"""


def _tiny(tmp_path, name, sleep, overrides=()):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY.format(name=name, sleep=sleep))
    protocol = load_protocol(path, list(overrides))
    return run(protocol, output=tmp_path / f"{name}.h5", progress=False).path


def test_nrem_rem_stages_round_trip_through_the_run_file(tmp_path):
    """Two tasks, sleep of 2 × (NREM: SRA, REM: dreams) after each: four /stages rows per
    sleep with the REM stages' length steps × dt, the dreams and their diagnostics in
    /sleep/<phase>/<step>/, the stage-named scalars, and the plot's stage labels; every REM dream
    is made of halves of the seen tasks' training images, never of a later task's."""
    path = _tiny(tmp_path, "staged", STAGES)
    stream = build_stream(ANNData(stream="split", scenario="task", train_per_class=60), 4)
    with open_run(path) as r:
        assert r.status == "complete"
        phases = {p.name: p for p in r.phases()}
        stages = r.stages()
        first = [s for s in stages if s.phase == phases["sleep1"].index]
        assert [(s.name, s.cycle, s.kind) for s in first] == [
            ("nrem", 0, "sra"),
            ("rem", 0, "rem_dreams"),
            ("nrem", 1, "sra"),
            ("rem", 1, "rem_dreams"),
        ]
        for s in stages:
            assert s.stop_time - s.start_time == (200.0 if s.kind == "sra" else 60.0)
        assert len(stages) == 4 * 5
        scalars = {(i, n) for i, n, _, _ in r.scalars()}
        assert (phases["sleep1"].index, "rem1/rem_loss_last") in scalars
        for s in stages:
            if s.kind != "rem_dreams":
                continue
            task = [p for p in r.phases() if p.index == s.phase][0].task
            seen = np.concatenate([stream.tasks[t].x_train for t in range(task + 1)])
            other = [stream.tasks[t].x_train for t in range(task + 1, 5)]
            d = r.arrays(f"sleep/{s.phase}/{s.step}")
            n = int(d["dream_classes"])
            assert n == min(8 - 2 * task, 2 * (task + 1) * (2 * task + 1) * 2)
            if n == 0:
                assert d["dreams"].shape[0] == 0
                continue
            assert d["loss"].shape == (30,) and d["dreams"].shape == (16, 784)
            for dream in d["dreams"].reshape(-1, 28, 28):
                assert _made_of(dream, seen)
                assert not any(_made_of(dream, images) for images in other)
        ax = Figure(figsize=(8, 3)).subplots()
        shade_phases(ax, r, 1.0)
        lines = sorted(line.get_xdata()[0] for line in ax.lines)
        assert lines == [s.start_time for s in stages]  # each sub-phase starts at a dotted line
        assert {"nrem1", "nrem2"} <= {t.get_text() for t in ax.texts}  # (rem: where it fits)


def _made_of(dream: np.ndarray, images: np.ndarray) -> bool:
    """Whether both halves of ``dream`` [28 × 28] (top/bottom or left/right) are halves of
    images in ``images`` [n × 784]."""
    imgs = images.reshape(-1, 28, 28)
    for first, second in ((np.s_[:, :14], np.s_[:, 14:]), (np.s_[:, :, :14], np.s_[:, :, 14:])):
        if all(
            (imgs[part] == dream[None][part]).all(axis=(1, 2)).any() for part in (first, second)
        ):
            return True
    return False


def test_unknown_dream_source_names_line_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    bad = STAGES.replace("rem_dreams,", "rem_dreams, source: dreamz,")
    path.write_text(TINY.format(name="bad", sleep=bad))
    with pytest.raises(SpecError) as info:
        load_protocol(path)
    (problem,) = info.value.problems
    assert "schedule[1].repeat.phases[1].sleep.stages[1].source" in str(problem)
    assert "chimera" in problem.message


# FWT of the tiny task-IL protocol, seed 4 (tasks in the fixed order), REM only (2 × 30 dream
# steps after each task) minus no sleep: the value this code measured, and how far it may move
# before the test fails (a change of the dreams, of their loss, of the wake or of the metric).
FWT_EFFECT = -0.0975
FWT_TOLERANCE = 0.02


def test_rem_forward_transfer_effect_is_held(tmp_path):
    rem = STAGES.replace("              - {name: nrem, kind: sra, steps: 200, window: 0}\n", "")
    with_rem = _tiny(tmp_path, "rem", rem)
    without = _tiny(tmp_path, "none", "")
    values = []
    for path in (with_rem, without):
        with open_run(path) as r:
            R = r.evaluations().metrics["accuracy"]
            values.append(fwt(np.asarray(R)))
    effect = values[0] - values[1]
    assert abs(effect - FWT_EFFECT) <= FWT_TOLERANCE, (values, effect)
