"""Sleep-schedule axes of studies: short sleeps inside a task (the ``nap_every`` macro) for mlp
and snn protocols, and the sleep's content and intensity addressed as study axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from neurosleep.errors import SpecError
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.study.spec import load_study
from tests.conftest import TINY_MLP

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]


def mlp_protocol(tmp_path: Path) -> dict:
    """Split digits (5 tasks of 2 classes), 8 epochs per task, a short SRA sleep after each."""
    wake = {"name": "train{k}", "lr": 0.1, "batch_size": 32, "epochs": 8}
    return {
        "format_version": 1,
        "name": "naps",
        "seed": 1,
        "model": TINY_MLP,
        "data": {"dataset": "digits", "stream": "split", "classes_per_task": 2},
        "record": {"weights": False, "sleep_spikes": False},
        "schedule": [
            {"test": {"name": "at_start"}},
            {
                "repeat": {
                    "over": "tasks",
                    "phases": [
                        {"wake": wake},
                        {"test": {"name": "before_sleep{k}"}},
                        {
                            "sleep": {
                                "name": "sleep{k}",
                                "kind": "sra",
                                "steps": "20 + 10*k",
                                "beta": [1.0, 1.0],
                            }
                        },
                        {"test": {"name": "after{k}"}},
                    ],
                }
            },
        ],
        "output": str(tmp_path / "{name}_seed{seed}.h5"),
    }


def write_study(tmp_path: Path, protocol: dict, space: dict, **extra) -> Path:
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(protocol, sort_keys=False))
    study = {
        "format_version": 1,
        "name": "s",
        "protocol": "p.yaml",
        "seeds": [1],
        "select_on": "test",
        "space": space,
        "folder": str(tmp_path / "out"),
    } | extra
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def resolved(study, params: dict):
    planned = study.run(study.configuration(0, params), 1, "test", "search")
    return planned, load_protocol(planned.protocol, list(planned.overrides))


def test_nap_every_runs_the_stated_naps_inside_each_mlp_task(tmp_path):
    """nap_every: 3 on 8 epochs: parts of 3, 3, 2 epochs with a nap (a copy of the task's
    sleep, its steps' expression of k kept) after the first two; the run file's phases show
    them, and training takes as many optimisation steps as without naps."""
    space = {"nap_every": {"values": [0, 3]}}
    study = load_study(write_study(tmp_path, mlp_protocol(tmp_path), space))
    none, _ = resolved(study, {"nap_every": 0})
    assert none.key == study.run(study.base(0), 1, "test", "search").key  # 0: as written
    planned, protocol = resolved(study, {"nap_every": 3})
    task2 = [(p.kind, p.name) for p in protocol.phases if p.task == 1]
    assert task2 == [
        ("wake", "train2_part1"),
        ("sleep", "sleep2_nap1"),
        ("wake", "train2_part2"),
        ("sleep", "sleep2_nap2"),
        ("wake", "train2_part3"),
        ("test", "before_sleep2"),
        ("sleep", "sleep2"),
        ("test", "after2"),
    ]
    assert [p.params.epochs for p in protocol.phases if p.kind == "wake"] == [3, 3, 2] * 5
    assert [p.params.steps for p in protocol.phases if p.name.startswith("sleep3")] == [50] * 3
    result = run(protocol, output=tmp_path / "naps.h5", progress=False)
    with open_run(result.path) as r:
        assert r.status == "complete"
        phases = r.phases()
        sleeps = [p for p in phases if p.kind == "sleep"]
        assert len(sleeps) == 15 and all(p.status == "complete" for p in sleeps)
        assert sum(p.name.endswith(("_nap1", "_nap2")) for p in sleeps) == 10
        # the clock advanced by every nap and sleep: sum of steps x 1 ms
        assert phases[-1].stop_time == pytest.approx(3 * sum(20 + 10 * k for k in range(1, 6)))
        steps = [v for _, name, v, _ in r.scalars() if name == "optimisation_steps"]
    for t in range(5):  # 3, 3 and 2 epochs of the task's batches
        per_epoch = steps[3 * t] / 3
        assert per_epoch >= 1 and steps[3 * t : 3 * t + 3] == [3 * per_epoch] * 2 + [2 * per_epoch]


def test_nap_every_splits_an_snn_wake_into_blocks_with_naps(tmp_path, root):
    """The spiking consolidation: learn_S2 (ended by the sleep) is cut into 1000 ms blocks
    with naps; learn_A and learn_B (each followed by another wake) are not."""
    protocol = yaml.safe_load((root / "protocols" / "consolidation_sleep.yaml").read_text())
    protocol["model"] = str(root / "models" / "assemblies.yaml")
    protocol["output"] = str(tmp_path / "{name}.h5")
    study = load_study(write_study(tmp_path, protocol, {"nap_every": {"values": ["1000 ms"]}}))
    _, p = resolved(study, {"nap_every": "1000 ms"})
    assert [(x.kind, x.name) for x in p.phases][3:] == [
        ("wake", "learn_B"),
        ("wake", "learn_S2_part1"),
        ("sleep", "sleep_nap1"),
        ("wake", "learn_S2_part2"),
        ("sleep", "sleep_nap2"),
        ("wake", "learn_S2_part3"),
        ("test", "after_B"),
        ("sleep", "sleep"),
        ("test", "final"),
    ]
    durations = [x.params.duration for x in p.phases if x.kind == "wake"]
    assert durations == [3000, 3000, 1000, 1000, 1000]
    naps = [x for x in p.phases if x.kind == "sleep"]
    assert [x.params.duration for x in naps] == [10000] * 3  # copies of the ending sleep


def test_nap_every_refuses_what_it_cannot_cut(tmp_path):
    protocol = mlp_protocol(tmp_path)
    with pytest.raises(SpecError, match=r"space\.nap_every: nap_every: epochs 8 and nap_every "):
        load_study(write_study(tmp_path, protocol, {"nap_every": {"values": [2.5]}}))
    with pytest.raises(SpecError, match=r"space\.nap_every: nap_every takes 0 or a positive"):
        load_study(write_study(tmp_path, protocol, {"nap_every": {"values": [-2]}}))


def consolidation(tmp_path: Path, root: Path, *extra: str, networks: int = 8):
    """The shipped spiking consolidation, shortened: tests of 100 ms, 2 s of sleep."""
    overrides = [
        f"data.networks={networks}",
        "record.spikes=none",
        "record.weights=none",
        *(f"schedule.{name}.duration=100 ms" for name in ("before", "after_A", "after_B", "final")),
        "schedule.sleep.duration=2000 ms",
        *extra,
    ]
    return load_protocol(root / "protocols" / "consolidation_sleep.yaml", overrides)


def replay_counts(path: Path, phase: str, memories: dict, size: int, networks: int):
    """Replay events of each of ``networks`` networks in sleep phase ``phase``, matched to
    ``memories``: counts [network × memory] (the experiment's own detection, per network)."""
    from neurosleep.analysis.replay import detect_events, match_event, population_rate

    with open_run(path) as r:
        sleep = next(p for p in r.phases() if p.name == phase)
        spikes = r.spikes("exc")
    start, stop = sleep.start_time, sleep.stop_time
    inside = (spikes.times >= start) & (spikes.times < stop)
    times, ids = spikes.times[inside], spikes.node_ids[inside]
    counts = []
    for b in range(networks):
        mine = ids // size == b
        t, i = times[mine], ids[mine] - b * size
        rate = population_rate([(t, i)], size, start, stop, 5.0)
        events = detect_events(rate, t_start=start, bin_ms=5.0, threshold_sd=3.0)
        matched = [match_event(t, i, e.start_ms, e.stop_ms, memories).memory for e in events]
        counts.append([matched.count(name) for name in memories])
    return np.array(counts)


def test_a_cue_during_sleep_raises_the_cued_memorys_replay(tmp_path, root):
    """Learn A, B (A reversed) and S2; sleep 2 s spontaneously, or cued: S2's first group
    driven at 100 Hz for 20 ms every 200 ms. The same 8 networks replay S2 more often when it
    is cued (its events, detected and matched per network as the experiment does)."""
    data = yaml.safe_load((root / "protocols" / "consolidation_sleep.yaml").read_text())
    data["model"] = str(root / "models" / "assemblies.yaml")
    data["data"]["networks"] = 8
    data["record"] = {"spikes": ["exc"], "weights": "none"}
    learn = [
        {"wake": {"name": f"learn_{n}", "task": k, "duration": "3000 ms"}}
        for k, n in enumerate(("A", "B", "S2"))
    ]
    sleep = {"name": "sleep", "kind": "spontaneous", "duration": "2000 ms", "state": "sleep"}
    counts = {}
    for label, cue in (
        ("spontaneous", None),
        ("cued", {"memory": "S2", "rate": "100 Hz", "every": "200 ms"}),
    ):
        data["schedule"] = [*learn, {"sleep": dict(sleep, cue=cue)}]
        path = tmp_path / f"{label}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        protocol = load_protocol(path)
        result = run(protocol, output=tmp_path / f"{label}.h5", progress=False)
        memories = {m.name: m.indices() for m in protocol.data.memories.stored}
        counts[label] = replay_counts(result.path, "sleep", memories, 200, 8)[:, 2]  # S2
    assert counts["cued"].sum() >= counts["spontaneous"].sum() + 16, counts
    assert (counts["cued"] > counts["spontaneous"]).sum() >= 6, counts


def test_cue_keys_are_checked_before_the_run(root, tmp_path):
    with pytest.raises(SpecError, match=r"sleep\.cue\.memory: unknown memory 'C'; stored"):
        consolidation(tmp_path, root, "schedule.sleep.cue={memory: C}")
    with pytest.raises(SpecError, match=r"sleep\.cue\.every: 0\.7 ms is not a multiple"):
        consolidation(
            tmp_path, root, "schedule.sleep.cue={memory: A, every: 0.7 ms, duration: 0.5 ms}"
        )
    with pytest.raises(SpecError, match=r"duration 30 ms > every 20 ms"):
        consolidation(
            tmp_path, root, "schedule.sleep.cue={memory: A, every: 20 ms, duration: 30 ms}"
        )


def test_sleep_intensity_and_content_are_study_axes(tmp_path, root):
    """The sleep state's plasticity gains as axes: the phase's factor and an inline gain of
    one projection compose into the gain the engine gets; the cue too."""
    from neurosleep.experiments.snn import compose

    protocol = yaml.safe_load((root / "protocols" / "consolidation_sleep.yaml").read_text())
    protocol["model"] = str(root / "models" / "assemblies.yaml")
    protocol["output"] = str(tmp_path / "{name}.h5")
    space = {
        "schedule.sleep.plasticity": {"values": [0.5, 2.0]},
        "schedule.sleep.modulation.plasticity.ee": {"values": [1.0, 6.0]},
        "schedule.sleep.cue": {"values": [None, {"memory": "A"}]},
    }
    study = load_study(write_study(tmp_path, protocol, space))
    keys = set()
    for factor in (0.5, 2.0):
        for gain in (1.0, 6.0):
            for cue in (None, {"memory": "A"}):
                params = {
                    "schedule.sleep.plasticity": factor,
                    "schedule.sleep.modulation.plasticity.ee": gain,
                    "schedule.sleep.cue": cue,
                }
                planned, p = resolved(study, params)
                keys.add(planned.key)
                sleep = next(x for x in p.phases if x.kind == "sleep")
                modulation = compose(p.model, "sleep", sleep.params, sleep.params.plasticity)
                assert modulation.plasticity["ee"] == pytest.approx(gain * factor)
                assert (sleep.params.cue is None) == (cue is None)
    assert len(keys) == 8  # eight different runs


def test_a_run_found_complete_keeps_its_recorded_wall_time(tmp_path, hopfield_protocol):
    """A complete run file copied into another study's folder is reused: its ledger row has the
    phases' wall time its run file records (``phases_s``, as where it was made) and no attempt
    time (``attempt_s``: nothing executed it here). A ledger from before the two columns (one
    ``wall_s``) reads: ``phases_s`` from the run files, ``attempt_s`` NULL."""
    import filecmp
    import shutil
    import sqlite3

    from neurosleep.cli import main
    from neurosleep.io.runfile import open_run
    from neurosleep.study.ledger import Ledger

    hopfield_protocol["output"] = str(tmp_path / "{name}_seed{seed}.h5")
    space = {"schedule.dream.t": {"values": [1, 5]}}
    first = tmp_path / "a"
    first.mkdir()
    study = write_study(first, hopfield_protocol, space, folder=str(first / "out"))
    assert main(["study", "run", str(study), "--workers", "1", "-q"]) == 0
    made = {r.key: r for r in Ledger(first / "out", readonly=True).rows()}
    assert all(r.attempt_s > r.phases_s > 0 for r in made.values())  # start-up, checks too
    second = tmp_path / "b"
    second.mkdir()
    (second / "out" / "runs").mkdir(parents=True)
    for h5 in (first / "out" / "runs").glob("*.h5"):
        shutil.copy(h5, second / "out" / "runs" / h5.name)
    study = write_study(second, hopfield_protocol, space, folder=str(second / "out"))
    assert main(["study", "run", str(study), "--workers", "1", "-q"]) == 0
    rows = Ledger(second / "out").rows()
    assert len(rows) == 2 and all(r.state == "complete" for r in rows)
    for r in rows:  # nothing ran again: each file is still the copy, byte for byte
        copied = second / "out" / "runs" / f"{r.key}.h5"
        assert filecmp.cmp(copied, first / "out" / "runs" / copied.name, shallow=False)
        with open_run(copied) as run:
            recorded = sum(p.wall_seconds for p in run.phases())
        assert r.phases_s == pytest.approx(recorded) == made[r.key].phases_s
        assert r.attempt_s is None
    db = sqlite3.connect(first / "out" / "ledger.sqlite")  # the layout before the two times
    with db:
        db.execute("ALTER TABLE runs RENAME COLUMN attempt_s TO wall_s")
        db.execute("ALTER TABLE runs DROP COLUMN phases_s")
    db.close()
    for readonly in (True, False):  # status/report, then study run (which adds the columns)
        old = {r.key: r for r in Ledger(first / "out", readonly=readonly).rows()}
        assert {k: (r.attempt_s, r.phases_s) for k, r in old.items()} == {
            k: (None, pytest.approx(r.phases_s)) for k, r in made.items()
        }
    assert main(["study", "report", str(first / "out")]) == 0


def test_naps_of_a_staged_dreaming_sleep_are_staged_copies(tmp_path, root):
    """nap_every on the mlp NREM (SRA) + REM (dreams) protocol: every nap is the task's staged
    sleep (2 cycles of sra then rem_dreams), validated like it."""
    protocol = yaml.safe_load((root / "protocols" / "split_mnist_task_nrem_rem.yaml").read_text())
    protocol["model"] = str(root / "models" / "mlp_sra.yaml")
    protocol["output"] = str(tmp_path / "{name}.h5")
    study = load_study(write_study(tmp_path, protocol, {"nap_every": {"values": [4]}}))
    _, p = resolved(study, {"nap_every": 4})
    sleeps = [x for x in p.phases if x.kind == "sleep" and x.task == 0]
    assert [x.name for x in sleeps] == ["sleep1_nap1", "sleep1_nap2", "sleep1"]
    for x in sleeps:
        assert [(s.name, s.algorithm) for s in x.stages] == [("nrem", "sra"), ("rem", "rem_dreams")]
        assert x.params.cycles == 2
    assert [x.params.epochs for x in p.phases if x.kind == "wake" and x.task == 0] == [4, 4, 4]
