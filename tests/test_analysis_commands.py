"""The summary, plot and compare commands on run files written by the real Recorder."""

import csv
import io
import json

import h5py
import numpy as np
import pytest

from neurosleep.analysis import plots
from neurosleep.analysis.compare import group_runs, split_complete, table
from neurosleep.cli import main
from neurosleep.io import open_run
from tests.test_analysis_runs import ACCURACY, BURSTS_MS, make_run


@pytest.fixture
def run_path(tmp_path):
    return make_run(tmp_path / "run.h5")


def test_summary_text(run_path, capsys):
    assert main(["summary", str(run_path), "--stats", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "spiking activity" in out and "weight change" in out
    final = next(line for line in out.splitlines() if line.strip().startswith("accuracy "))
    # ACC 0.825, BWT -0.22, FWT 0.02, forgetting 0.22, AIA 0.8725 (hand-computed from ACCURACY)
    assert final.split()[1:] == ["0.8250", "-0.2200", "0.0200", "0.2200", "0.8725"]


def test_summary_json_and_csv(run_path, capsys):
    assert main(["summary", str(run_path), "--json", "--stats", "numpy"]) == 0
    s = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(s["final"]["accuracy"]["matrix"], ACCURACY[[0, 2, 3]])
    assert s["final"]["accuracy"]["ACC"] == pytest.approx(0.825)
    dream = s["phases"][3]
    assert dream["kind"] == "sleep"
    assert dream["populations"]["exc"]["synchrony"] > 0.2  # the three bursts
    assert dream["populations"]["exc"]["replay_events"] == len(BURSTS_MS)
    assert "replay_events" not in s["phases"][1]["populations"]["exc"]  # wake
    assert dream["scalars"] == {"loss": {"value": pytest.approx(1 / 6), "units": "1"}}
    assert dream["weights"]["exc_exc"]["units"] == "nS"
    assert s["phases"][0]["populations"] == {}  # a test phase of zero duration
    assert main(["summary", str(run_path), "--csv", "--stats", "numpy"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    acc = [r for r in rows if r["section"] == "final" and r["quantity"] == "ACC"]
    assert float(acc[0]["value"]) == pytest.approx(0.825)
    rates = [r for r in rows if r["quantity"] == "rate_mean_hz"]
    assert {r["units"] for r in rates} == {"Hz"} and len(rates) == 6


@pytest.mark.parametrize("kind", list(plots.PLOTS))
def test_each_plot_kind_renders(run_path, tmp_path, kind):
    with open_run(run_path) as run:
        fig = plots.PLOTS[kind](run)
    assert fig is not None
    labels = [ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes]
    # units in the axis labels (accuracy is a dimensionless fraction: no "(1)")
    assert any("(" in text for text in labels) or kind == "accuracy"
    out = tmp_path / "figs"
    assert main(["plot", str(run_path), "--out", str(out), "--kind", kind]) == 0
    png = out / f"{kind}.png"
    assert png.stat().st_size > 5_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_svg_and_phase_annotation(run_path, tmp_path):
    assert main(["plot", str(run_path), "--out", str(tmp_path), "--kind", "rates", "--svg"]) == 0
    svg = (tmp_path / "rates.svg").read_text()
    assert "dream" in svg and "learn" in svg  # phase names written on the figure


def test_raster_is_decimated(run_path, monkeypatch):
    monkeypatch.setattr(plots, "MAX_RASTER_POINTS", 100)
    monkeypatch.setattr(plots, "MAX_RASTER_NEURONS", 10)
    with open_run(run_path) as run:
        fig = plots.raster(run)
    points = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections)
    assert 0 < points <= 100
    assert "10 of 80 neurons" in fig.axes[0].get_ylabel()


def test_plots_skip_what_a_run_lacks(tmp_path):
    from neurosleep.io import Recorder

    with Recorder.create(tmp_path / "bare.h5", attrs={}, n_tasks=1) as rec:
        rec.begin_phase("w", "wake", task=0, start_time=0.0)
        rec.end_phase(stop_time=1.0)
    with open_run(tmp_path / "bare.h5") as run:
        written = plots.plot_run(run, tmp_path / "figs")
    assert written == []


def test_compare_groups_and_aggregates(tmp_path, capsys):
    sleep_acc = [0.80, 0.84, 0.88]
    paths = []
    for seed, a in enumerate(sleep_acc, start=1):
        R = ACCURACY.copy()
        R[3] = [a, a]
        paths.append(make_run(tmp_path / f"sleep{seed}.h5", seed=seed, name="sleep", accuracy=R))
    for seed in (1, 2):
        paths.append(make_run(tmp_path / f"nosleep{seed}.h5", seed=seed, name="nosleep"))
    paths.append(make_run(tmp_path / "killed.h5", seed=9, name="sleep", status="running"))
    runs, left_out = split_complete(paths)
    assert [p for p, _ in left_out] == [str(tmp_path / "killed.h5")]
    groups = group_runs(runs, ["protocol"])
    assert [(g.label, len(g.runs)) for g in groups] == [("sleep", 3), ("nosleep", 2)]
    mean, sem, n = groups[0].mean_sem("accuracy", "ACC")
    assert (mean, n) == (pytest.approx(0.84), 3)
    assert sem == pytest.approx(np.std(sleep_acc, ddof=1) / np.sqrt(3))
    assert "| sleep | 3 | 0.840 ± 0.023 |" in table(groups, ["protocol"])
    assert r"$0.840 \pm 0.023$" in table(groups, ["protocol"], "latex")
    figure = tmp_path / "cmp.png"
    code = main(["compare", *map(str, paths), "--figure", str(figure)])
    captured = capsys.readouterr()
    assert code == 0 and figure.stat().st_size > 5_000
    assert "left out:" in captured.err and "killed.h5 (status running)" in captured.err
    assert main(["compare", *map(str, paths), "--include-incomplete", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[1][:2] == ["sleep", "4"]


def test_compare_lists_unreadable_files(tmp_path, capsys):
    good = make_run(tmp_path / "good.h5")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    assert main(["compare", str(good), str(bad)]) == 0
    captured = capsys.readouterr()
    assert "| demo | 1 |" in captured.out
    assert f"left out: {bad} ({bad}: not a readable HDF5 file" in captured.err
    assert main(["compare", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith(f"neurosleep: no complete run to compare: {bad}: not a readable HDF5")


def test_compare_by_engine(tmp_path):
    paths = [make_run(tmp_path / f"{e}.h5", engine=e) for e in ("brian2", "torch")]
    runs, _ = split_complete(paths)
    assert [g.key for g in group_runs(runs, ["engine"])] == [("brian2",), ("torch",)]


# ---------------------------------------------------------------------- bad input: one line
def _one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


COMMANDS = [["summary"], ["plot", "--out", "figs"], ["export", "--sonata", "son"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_not_a_run_file(tmp_path, capsys, command):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    assert "not a readable HDF5 file" in _one_line_error(
        capsys, [command[0], str(text), *command[1:]]
    )
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    assert "not a neurosleep run file" in _one_line_error(
        capsys, [command[0], str(other), *command[1:]]
    )
    assert "no such file" in _one_line_error(
        capsys, [command[0], str(tmp_path / "nope.h5"), *command[1:]]
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_newer_format_version(run_path, capsys, command):
    with h5py.File(run_path, "a") as f:
        f.attrs["format_version"] = 99
    err = _one_line_error(capsys, [command[0], str(run_path), *command[1:]])
    assert "newer than this neurosleep reads" in err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_killed_run(tmp_path, capsys, command):
    path = make_run(tmp_path / "killed.h5", status="running")
    err = _one_line_error(capsys, [command[0], str(path), *command[1:]])
    assert "did not complete (status 'running'" in err and "--allow-incomplete" in err
    places = {"figs": str(tmp_path / "figs"), "son": str(tmp_path / "son")}
    argv = [command[0], str(path), *(places.get(a, a) for a in command[1:]), "--allow-incomplete"]
    assert main(argv) == 0


def test_unknown_population(run_path, capsys, tmp_path):
    err = _one_line_error(capsys, ["summary", str(run_path), "--population", "pyr"])
    assert "no population 'pyr'" in err and "exc, inh" in err
    err = _one_line_error(
        capsys, ["plot", str(run_path), "--out", str(tmp_path), "--population", "pyr"]
    )
    assert "no population 'pyr'" in err


def test_unknown_plot_kind(run_path, capsys, tmp_path):
    err = _one_line_error(capsys, ["plot", str(run_path), "--out", str(tmp_path), "--kind", "x"])
    assert "unknown plot kind 'x'" in err


def test_weight_change_heat_map_block_means(run_path, monkeypatch):
    monkeypatch.setattr(plots, "MAX_HEATMAP", 2)
    with open_run(run_path) as run:
        w = run.weights("exc_exc")
        delta = w.values[-1] - w.values[0]
        sparse = plots._as_matrix(run, "exc_exc", delta)
        dense_delta = run.weights("fc1").values[-1] - run.weights("fc1").values[0]
        dense = plots._as_matrix(run, "fc1", dense_delta)
    assert sparse.shape == (2, 2)  # 80 × 80 neurons in 40 × 40 blocks
    assert sparse.sum() * 40 * 40 == pytest.approx(delta.sum())
    assert dense.shape == (2, 2)  # 10 × 8 in 5 × 4 blocks
    assert dense[0, 0] == pytest.approx(dense_delta[:5, :4].mean())
