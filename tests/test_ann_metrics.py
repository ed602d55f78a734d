"""Continual-learning metrics written to /metrics/continual after every test phase, read back."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from neurosleep.analysis import metrics as M
from neurosleep.analysis.summary import accuracy_matrix
from neurosleep.commands.info import describe
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from tests.test_ann import WAKE, digits_protocol

pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("one_torch_thread")]

SHORT_WAKE = dict(WAKE, epochs=2)
SLEEP = {"sleep": {"kind": "sra", "steps": 100, "window": 4, "beta": [0.5, 0.5]}}


def schedule(test=None):
    test = {"name": "after_sleep{k}"} | (test or {})
    return [
        {"test": {"name": "at_start"}},
        {
            "repeat": {
                "over": "tasks",
                "phases": [
                    {"wake": dict(SHORT_WAKE)},
                    {"test": {"name": "after_wake{k}"}},
                    SLEEP,
                    {"test": test},
                ],
            }
        },
    ]


def read_continual(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        group = f["metrics/continual/accuracy"]
        assert all(group[n].attrs["units"] == "1" for n in group)
        return {name: group[name][()] for name in group}


def check_rows(path, fwt: bool, reference=None) -> dict[str, np.ndarray]:
    """The stored matrix is the one summary builds from the file; each stored metric row k is
    analysis.metrics applied to the leading matrix R[:k + 1, :k]."""
    stored = read_continual(path)
    with open_run(path) as r:
        phases, evaluations = r.phases(), r.evaluations()
        T = int(r.attrs["n_tasks"])
    R, rows = accuracy_matrix(phases, evaluations, "accuracy", T)
    np.testing.assert_array_equal(stored["matrix"], R)
    np.testing.assert_array_equal(stored["evaluation"], [-1 if i is None else i for i in rows])
    expected_names = {"matrix", "evaluation", "ACC", "BWT", "forgetting", "AIA"}
    expected_names |= {"FWT"} if fwt else set()
    expected_names |= {"intransigence"} if reference is not None else set()
    assert set(stored) == expected_names
    for name in expected_names - {"matrix", "evaluation"}:
        assert stored[name].shape == (T + 1,) and np.isnan(stored[name][0])
    for k in range(1, T + 1):
        leading = R[: k + 1, :k]
        if np.isnan(R[k]).all():  # not reached: every metric NaN
            assert all(np.isnan(stored[n][k]) for n in expected_names - {"matrix", "evaluation"})
            continue
        assert stored["ACC"][k] == pytest.approx(M.acc(leading), nan_ok=True)
        assert stored["BWT"][k] == pytest.approx(M.bwt(leading), nan_ok=True)
        assert stored["forgetting"][k] == pytest.approx(M.forgetting(R, k), nan_ok=True)
        assert stored["AIA"][k] == pytest.approx(M.average_incremental_accuracy(leading))
        if fwt:
            assert stored["FWT"][k] == pytest.approx(M.fwt(leading), nan_ok=True)
        if reference is not None:
            assert stored["intransigence"][k] == pytest.approx(reference[k - 1] - R[k, k - 1])
    return stored


def test_metrics_after_each_test_match_the_stored_matrix(write_protocol, tmp_path):
    path = write_protocol(digits_protocol(tmp_path, schedule(), name="cl"), name="cl.yaml")
    result = run(load_protocol(path), overwrite=True, progress=False)
    stored = check_rows(result.path, fwt=False)
    with open_run(result.path) as r:
        summary_final = M.all_metrics(stored["matrix"])
        ev = r.evaluations()
        names = [p.name for p in r.phases()]
    # every matrix row k ≥ 1 is the after-sleep test, not the after-wake one
    assert [names[int(ev.phases[i])] for i in stored["evaluation"][1:]] == [
        f"after_sleep{k}" for k in range(1, 6)
    ]
    for name in ("ACC", "BWT", "forgetting", "AIA"):
        assert stored[name][-1] == pytest.approx(summary_final[name])
    assert stored["ACC"][1] == pytest.approx(stored["matrix"][1, 0])  # one task: its accuracy
    assert np.isnan(stored["BWT"][1]) and stored["BWT"][-1] < 0  # class-IL forgets
    with open_run(result.path) as r:
        text = describe(r)
    assert "continual metrics of 'accuracy' after each task (fraction)" in text
    assert f"{stored['ACC'][-1]:13.4f}" in text


def test_task_il_writes_fwt_and_intransigence(write_protocol, tmp_path):
    reference = [0.99, 0.98, 0.97, 0.96, 0.95]
    content = digits_protocol(
        tmp_path, schedule({"reference": reference}), name="til", data={"scenario": "task"}
    )
    result = run(load_protocol(write_protocol(content, name="til.yaml")), progress=False)
    stored = check_rows(result.path, fwt=True, reference=reference)
    assert np.isfinite(stored["FWT"][2:]).all() and np.isnan(stored["FWT"][1])


KILL_AT_THIRD_WAKE = """
import os, sys
import torch
from neurosleep.experiments.ann import ANNExperiment
from neurosleep.protocol import load_protocol
from neurosleep.runner import run

torch.set_num_threads(1)
wake, calls = ANNExperiment.wake, []

def dying_wake(self, phase, progress):
    calls.append(phase.index)
    if len(calls) == 3:
        os._exit(137)  # as kill -9: no close, no final status
    return wake(self, phase, progress)

ANNExperiment.wake = dying_wake
run(load_protocol(sys.argv[1]), overwrite=True, progress=False)
"""


def test_killed_run_has_consistent_rows(write_protocol, tmp_path):
    path = write_protocol(digits_protocol(tmp_path, schedule(), name="killed"), name="k.yaml")
    done = subprocess.run([sys.executable, "-c", KILL_AT_THIRD_WAKE, str(path)], timeout=120)
    assert done.returncode == 137
    output = tmp_path / "killed_seed1.h5"
    with open_run(output) as r:
        assert r.status == "running"
        assert len(r.evaluations().phases) == 5  # at start, then after wake and sleep × 2
    stored = check_rows(output, fwt=False)
    assert np.isfinite(stored["ACC"][1:3]).all() and np.isnan(stored["ACC"][3:]).all()
    assert np.isnan(stored["matrix"][3:]).all()
