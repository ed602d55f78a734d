"""The analysis commands on run files of shipped protocols' experiments (shortened)."""

import json

import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.io import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run


@pytest.fixture(scope="module")
def hopfield_runs(tmp_path_factory):
    """The conftest Hopfield protocol (N = 100, 10 patterns) with and without sleep, 2 seeds."""
    import yaml

    tmp = tmp_path_factory.mktemp("hopfield")
    base = {
        "format_version": 1,
        "seed": 1,
        "model": {"kind": "hopfield", "name": "h100", "neurons": 100},
        "engine": "torch",
        "device": "cpu",
        "data": {"patterns": 20},
        "record": {"weights": True, "sleep_states": True},
    }
    dream = [
        {"wake": {"name": "store"}},
        {"test": {"name": "before"}},
        {"sleep": {"name": "dream", "kind": "dreaming", "t": 5, "steps": 50, "block": 10}},
        {"test": {"name": "after"}},
    ]
    control = [dream[0], dream[1], {"test": {"name": "after"}}]
    paths = []
    for name, schedule in (("dream", dream), ("control", control)):
        protocol = tmp / f"{name}.yaml"
        protocol.write_text(yaml.safe_dump({**base, "name": name, "schedule": schedule}))
        for seed in (1, 2):
            out = tmp / f"{name}_{seed}.h5"
            run(load_protocol(protocol, [f"seed={seed}"]), output=out, progress=False)
            paths.append(out)
    return paths


def test_hopfield_summary(hopfield_runs, capsys):
    assert main(["summary", str(hopfield_runs[0]), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["name"] == "dream" and s["n_tasks"] == 1
    overlap = s["final"]["overlap"]
    assert overlap["ACC"] == pytest.approx(s["tests"][-1]["metrics"]["overlap"][0])
    assert overlap["BWT"] is None  # one task: undefined, printed as null
    dream = next(p for p in s["phases"] if p["kind"] == "sleep")
    assert dream["weights"]["J"]["relative_change"] > 0
    assert dream["scalars"]["coupling_change_rms"]["value"] > 0  # /metrics/scalars
    assert dream["scalars"]["states"]["value"] == 50  # /sleep/<phase>/states, one per step


def test_hopfield_plots(hopfield_runs, tmp_path):
    assert main(["plot", str(hopfield_runs[0]), "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    # no spikes in a Hopfield run: raster, rates and replay are skipped
    kinds = ["accuracy", "traces", "weight_change", "weights"]
    assert written == sorted(f"{k}.{ext}" for k in kinds for ext in ("pdf", "png"))


def test_hopfield_compare(hopfield_runs, capsys):
    assert main(["compare", *map(str, hopfield_runs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = [cell.strip() for cell in lines[0].split("|")]
    assert header[1:3] == ["protocol", "n"] and "overlap ACC" in header
    rows = {line.split("|")[1].strip(): line.split("|") for line in lines[2:] if "|" in line}
    assert rows["dream"][2].strip() == rows["control"][2].strip() == "2"
    column = header.index("overlap ACC")
    acc = [float(rows[name][column].split("±")[0]) for name in ("dream", "control")]
    assert acc[0] > acc[1]  # 20 patterns in 100 neurons (α = 0.2): dreaming helps


@pytest.mark.formats
def test_hopfield_exports(hopfield_runs, tmp_path):
    pynwb = pytest.importorskip("pynwb", reason="formats extra (pynwb) not installed")
    libsonata = pytest.importorskip("libsonata", reason="formats extra (libsonata) not installed")
    path = hopfield_runs[0]
    argv = ["export", str(path), "--nwb", str(tmp_path / "h.nwb"), "--sonata", str(tmp_path)]
    assert main(argv) == 0
    with open_run(path) as r:
        states = r.report("sleep_state", "hopfield")
        couplings = r.weights("J")
    frames = libsonata.ElementReportReader(str(tmp_path / "sleep_state.h5"))["hopfield"]
    np.testing.assert_array_equal(np.asarray(frames.get().data), states.data)
    with pynwb.NWBHDF5IO(str(tmp_path / "h.nwb"), "r") as io:
        nwb = io.read()
        np.testing.assert_array_equal(
            nwb.processing["weights"]["J"]["values"].data[:], couplings.values
        )
        assert list(nwb.epochs.to_dataframe().kind) == ["wake", "test", "sleep", "test"]


@pytest.mark.slow
@pytest.mark.torch
def test_split_mnist_sra_run(root, tmp_path, capsys):
    """The shipped SRA protocol, shortened: spikes of the sleeping MLP, a 5-task matrix."""
    out = tmp_path / "sra.h5"
    overrides = [
        "schedule.1.repeat.phases.0.wake.epochs=1",
        "schedule.1.repeat.phases.sleep.steps=100",
        "data.train_per_class=100",
    ]
    run(
        load_protocol(root / "protocols" / "split_mnist_sra.yaml", overrides),
        output=out,
        progress=False,
    )
    assert main(["summary", str(out), "--json", "--stats", "numpy"]) == 0
    s = json.loads(capsys.readouterr().out)
    final = s["final"]["accuracy"]
    R = np.array(final["matrix"], dtype=float)
    assert R.shape == (6, 5) and np.isfinite(R).all()
    assert final["ACC"] == pytest.approx(R[-1].mean())
    assert final["BWT"] == pytest.approx(np.mean([R[5, j] - R[j + 1, j] for j in range(4)]))
    sleeps = [p for p in s["phases"] if p["kind"] == "sleep"]
    assert len(sleeps) == 5 and all(p["populations"] for p in sleeps)
    sizes = {pop: v["neurons"] for pop, v in sleeps[0]["populations"].items()}
    assert sizes == {"layer1": 1200, "layer2": 1200, "layer3": 10}  # n_nodes, silent included
    assert main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert {"raster.png", "rates.png", "accuracy.png", "replay.png"} <= {
        p.name for p in (tmp_path / "figs").iterdir()
    }
    assert main(["export", str(out), "--sonata", str(tmp_path / "son")]) == 0
    assert (tmp_path / "son" / "spikes.h5").exists()


@pytest.mark.slow
@pytest.mark.brian2
@pytest.mark.torch
def test_cuba_on_both_engines(root, tmp_path, capsys):
    """The shipped CUBA protocol for 100 ms on torch and Brian2: summary rates equal the
    experiment's own test metrics, engines compare side by side, exports and plots work."""
    paths = {}
    for engine in ("torch", "brian2"):
        paths[engine] = tmp_path / f"cuba_{engine}.h5"
        protocol = load_protocol(
            root / "protocols" / "cuba.yaml", ["schedule.cuba.duration=100 ms", f"engine={engine}"]
        )
        run(protocol, output=paths[engine], progress=False)
    summaries = {}
    for backend in ("numpy", "elephant"):
        assert main(["summary", str(paths["torch"]), "--json", "--stats", backend]) == 0
        summaries[backend] = json.loads(capsys.readouterr().out)
    (phase,) = summaries["numpy"]["phases"]
    exc = phase["populations"]["exc"]
    assert exc["neurons"] == 3200 and summaries["elephant"]["stats_backend"] == "elephant"
    final = summaries["numpy"]["final"]
    assert exc["rate_mean_hz"] == pytest.approx(final["rate_exc"]["ACC"], rel=1e-9)
    for key in ("rate_mean_hz", "cv_isi_mean", "synchrony"):
        elephant = summaries["elephant"]["phases"][0]["populations"]["exc"][key]
        assert exc[key] == pytest.approx(elephant, rel=1e-9)
    assert main(["compare", str(paths["torch"]), str(paths["brian2"]), "--by", "engine"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].strip() for r in rows[1:]] == ["torch", "brian2"]
    out = tmp_path / "figs"
    assert main(["plot", str(paths["brian2"]), "--out", str(out)]) == 0
    assert {"raster.png", "rates.png", "traces.png"} <= {p.name for p in out.iterdir()}
    pynwb = pytest.importorskip("pynwb", reason="formats extra (pynwb) not installed")
    assert main(["export", str(paths["brian2"]), "--nwb", str(tmp_path / "c.nwb")]) == 0
    with pynwb.NWBHDF5IO(str(tmp_path / "c.nwb"), "r") as io:
        assert len(io.read().units) == 4000


@pytest.mark.slow
@pytest.mark.torch
def test_consolidation_sleep_run(root, tmp_path, capsys):
    """The shipped spiking consolidation protocol, every phase shortened to ≤ 600 ms."""
    import yaml

    path = root / "protocols" / "consolidation_sleep.yaml"
    schedule = [next(iter(item.items())) for item in yaml.safe_load(path.read_text())["schedule"]]
    overrides = [
        f"schedule.{body['name']}.duration={300 if kind == 'test' else 600} ms"
        for kind, body in schedule
    ]
    out = tmp_path / "cons.h5"
    run(load_protocol(path, overrides), output=out, progress=False)
    assert main(["summary", str(out), "--json", "--stats", "numpy"]) == 0
    s = json.loads(capsys.readouterr().out)
    completion = s["final"]["completion"]
    names = [t["name"] for t in s["tests"]]
    # R: "at start" = the last test before learning A; after task k = the last test before
    # learning task k+1 (none between B and S2, learned back to back); after the last task =
    # the last test of the run (after sleep)
    kinds = [kind for kind, _ in schedule]
    wakes = [i for i, kind in enumerate(kinds) if kind == "wake"] + [len(schedule)]

    def last_test(start: int, stop: int) -> str | None:
        names = [body["name"] for kind, body in schedule[start:stop] if kind == "test"]
        return names[-1] if names else None

    expected = [last_test(a, b) for a, b in zip([0, *wakes[:-1]], wakes, strict=True)]
    assert [None if r is None else names[r] for r in completion["matrix_evaluations"]] == expected
    sleep = next(p for p in s["phases"] if p["kind"] == "sleep")
    assert (
        sleep["populations"]["exc"]["neurons"] > 0
        and "replay_events" in sleep["populations"]["exc"]
    )
    assert sleep["weights"]  # plastic projections change during sleep
    assert main(["plot", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert {"raster.png", "replay.png", "weight_change.png", "accuracy.png"} <= {
        p.name for p in (tmp_path / "figs").iterdir()
    }
    assert main(["export", str(out), "--sonata", str(tmp_path / "son")]) == 0
    assert list((tmp_path / "son").glob("*_edges.h5"))
