"""The Python API (neurosleep.run / open / compare, Run's tables and arrays) against the reader.

A real run of the tiny Hopfield protocol, and run files written by the real Recorder
(tests/test_analysis_runs.py: two tasks, spikes, sparse and dense weights, a report).
"""

from __future__ import annotations

import numpy as np
import pytest

import neurosleep
from neurosleep.analysis.summary import summarize
from neurosleep.errors import OutputError, RunFileError
from neurosleep.io import open_run
from tests.test_analysis_runs import ACCURACY, make_run


@pytest.fixture
def two_task_run(tmp_path):
    return neurosleep.open(make_run(tmp_path / "run.h5"))


def test_run_by_path_with_overrides(write_protocol, hopfield_protocol, tmp_path, one_torch_thread):
    path = write_protocol(hopfield_protocol)
    out = tmp_path / "api.h5"
    run = neurosleep.run(path, seed=2, schedule__dream__steps=20, output=str(out), progress=False)
    assert run.path == out and run.status == "complete" and "overlap" in run.headline
    assert run.attrs["seed"] == 2
    assert run.phases()["stop_ms"].iloc[2] - run.phases()["start_ms"].iloc[2] == 20.0
    with pytest.raises(OutputError, match="already exists"):
        neurosleep.run(path, output=str(out), progress=False)
    again = neurosleep.run(
        path,
        **{"schedule.dream.steps": 20, "seed": 2, "output": str(out)},
        overwrite=True,
        progress="never",
    )
    # same protocol and seed → the same numbers
    assert again.evaluations().equals(run.evaluations())

    ev = run.evaluations()
    assert list(ev.columns) == ["phase", "phase_index", "task", "metric", "value", "unit"]
    assert set(ev["phase"]) == {"before", "after"} and set(ev["unit"]) == {"1"}
    with open_run(out) as f:
        raw = f.evaluations().metrics["overlap"]
    overlap = ev[ev.metric == "overlap"].sort_values("phase_index")["value"].to_numpy()
    assert np.allclose(overlap, raw[:, 0])

    w = run.weights("J", "dream")
    assert w.dims == ("post", "pre") and w.shape == (100, 100) and w.attrs["units"] == "1"
    with open_run(out) as f:
        assert np.array_equal(w.values, f.weights("J").values[1])
    states = run.report("sleep_state", "hopfield")
    assert states.dims == ("time", "node") and states.shape == (20, 100)
    assert states.attrs["units"] == "1" and states["time"].attrs["units"] == "ms"


def test_tables_of_a_two_task_run(two_task_run):
    run = two_task_run
    ev = run.evaluations()
    assert len(ev) == 4 * 2  # four tests × two tasks
    row = ev[(ev.phase == "test_2") & (ev.task == 1)]
    assert float(row["value"].iloc[0]) == ACCURACY[3, 1]

    R = run.accuracy_matrix()
    assert R.attrs == {"metric": "accuracy", "unit": "1"}
    assert list(R.index) == ["start", "after task 0", "after task 1"]
    # row "after task 0" is the last test before task 1's training: the one after sleep
    assert np.allclose(R.to_numpy(), ACCURACY[[0, 2, 3]])

    final = run.final().set_index("quantity")["value"]
    assert final["ACC"] == pytest.approx(ACCURACY[3].mean())
    assert final["BWT"] == pytest.approx(ACCURACY[3, 0] - ACCURACY[2, 0])

    metrics = run.metrics()
    assert set(metrics["metric"]) == {"loss"} and (metrics["unit"] == "1").all()
    assert list(metrics["phase"]) == ["learn", "dream", "learn"]
    assert list(metrics["task"]) == [0, 0, 1]


def test_arrays_of_a_two_task_run(two_task_run):
    run = two_task_run
    with open_run(run.path) as f:
        all_spikes = f.spikes("exc")
    window = run.spikes("exc", (200.0, 400.0))
    keep = (all_spikes.times >= 200.0) & (all_spikes.times < 400.0)
    assert np.array_equal(window.times, all_spikes.times[keep])
    assert np.array_equal(window.node_ids, all_spikes.node_ids[keep])
    assert run.spikes("exc").times.size == all_spikes.times.size

    sparse = run.weights("exc_exc")
    assert sparse.dims == ("snapshot", "synapse") and sparse.attrs["units"] == "nS"
    assert list(sparse["phase_name"].values) == ["", "learn", "dream", "learn"]
    assert sparse["pre"].shape == (200,)
    dense = run.weights("fc1", 3)
    assert dense.dims == ("post", "pre") and dense.shape == (10, 8)
    assert dense.attrs["phase"] == "dream"
    # by name: the last phase of that name
    assert run.weights("fc1", "learn").attrs["time_ms"] == 600.0

    v = run.report("v", "exc")
    assert v.attrs["units"] == "mV" and v.sizes["node"] == 5
    assert float(v["time"][-1]) == 599.0


def test_errors_name_the_path_and_what_is_wrong(two_task_run, tmp_path):
    with pytest.raises(RunFileError, match="no phase 'nap'"):
        two_task_run.weights("fc1", "nap")
    with pytest.raises(RunFileError, match="no snapshot of 'fc1' in phase 'test_1'"):
        two_task_run.weights("fc1", "test_1")
    with pytest.raises(RunFileError, match="no evaluated metric 'loss'"):
        two_task_run.accuracy_matrix("loss")
    with pytest.raises(RunFileError, match="no such file"):
        neurosleep.open(tmp_path / "missing.h5")


def test_compare_groups_runs(tmp_path):
    paths = [make_run(tmp_path / f"s{seed}.h5", seed=seed, name="demo") for seed in (1, 2, 3)]
    other = make_run(tmp_path / "o.h5", name="other", accuracy=ACCURACY * 0.5)
    table = neurosleep.compare([*paths, other])
    acc = table[(table.metric == "accuracy") & (table.quantity == "ACC")].set_index("protocol")
    assert acc.loc["demo", "n"] == 3 and acc.loc["demo", "sem"] == pytest.approx(0.0)
    assert acc.loc["demo", "mean"] == pytest.approx(ACCURACY[3].mean())
    assert acc.loc["other", "mean"] == pytest.approx(ACCURACY[3].mean() * 0.5)
    assert np.isnan(acc.loc["other", "sem"])  # one run: no SEM
    by_seed = neurosleep.compare(paths, by=["seed"])
    assert sorted(set(by_seed["seed"])) == [1, 2, 3]


def test_summarize_accepts_a_path(tmp_path):
    path = make_run(tmp_path / "run.h5")
    by_path = summarize(path, spikes=False)
    with open_run(path) as run:
        assert by_path == summarize(run, spikes=False)
    assert by_path["final"]["accuracy"]["ACC"] == pytest.approx(ACCURACY[3].mean())


def test_spikes_as_neo_trains(two_task_run):
    pytest.importorskip("neo", reason="formats extra not installed")
    trains = two_task_run.spikes("exc", (200.0, 400.0), neo=True)
    window = two_task_run.spikes("exc", (200.0, 400.0))
    assert len(trains) == 80  # one per neuron of the population
    assert sum(len(t) for t in trains) == window.times.size
    assert str(trains[0].units.dimensionality) == "ms" and float(trains[0].t_start) == 200.0


def test_compare_leaves_out_incomplete_runs_with_a_warning(tmp_path):
    done = make_run(tmp_path / "done.h5", seed=1)
    killed = make_run(tmp_path / "killed.h5", seed=2, status="running")
    with pytest.warns(UserWarning, match="left out .*killed.h5: status running"):
        table = neurosleep.compare([done, killed])
    assert set(table["n"]) == {1}
    with pytest.raises(RunFileError):
        neurosleep.compare([done, tmp_path / "missing.h5"])
