"""Studies under faults at exact moments: the driver or a worker SIGKILLed at a chosen call
(tests/killpoint.py), then resumed. A resumed TPE search makes the same trials, ledger and run
files as one never interrupted; every run completes exactly once, re-runs are listed, and
nothing is deleted (partial files are moved aside)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurosleep.cli import main
from tests.conftest import small_hopfield
from tests.killpoint import ENV as KILLPOINT
from tests.test_study import ENV, contents, ledger_rows

SAME = ("key", "label", "params", "seed", "split", "stage", "trial", "state", "metrics")

TPE = {
    "format_version": 1,
    "name": "tpe",
    "protocol": "p.yaml",
    "seeds": [1],
    "select_on": "test",
    "objective": {"metric": "overlap", "goal": "maximize"},
    "space": {
        "schedule.dream.t": {"low": 1, "high": 50, "log": True},
        "data.patterns": {"values": [10, 14, 18]},
    },
    "search": {"kind": "tpe", "n": 5, "seed": 3, "parallel": 2, "startup": 2},
}


def write_study(folder: Path, study: dict, protocol: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = protocol or dict(small_hopfield(), data={"patterns": 10})
    (folder / "p.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(dict(study, folder=str(folder / "out")), sort_keys=False))
    return path


def killed(
    args: list[str], point: str, marker: Path, preload: bool = False
) -> subprocess.CompletedProcess:
    """Run ``neurosleep ARGS`` in a new process armed to SIGKILL itself (or, with ``preload``,
    one of its Dask workers) at ``point`` (``MODULE:QUALNAME:N:before|after``)."""
    env = dict(ENV, **{KILLPOINT: f"{point}:{marker}"})
    if preload:
        env["DASK_DISTRIBUTED__WORKER__PRELOAD"] = '["tests.killpoint"]'
        cmd = [sys.executable, "-m", "neurosleep.cli", *args]
    else:
        cmd = [sys.executable, "-m", "tests.killpoint", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def trials(folder: Path) -> list[tuple]:
    import optuna

    storage = f"sqlite:///{folder / 'optuna.sqlite'}"
    found = optuna.load_study(study_name="tpe", storage=storage).get_trials()
    return [(t.number, t.state.name, t.params, t.value) for t in found]


def ledger_in_order(folder: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{folder / 'ledger.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY rowid")]
    finally:
        db.close()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The TPE study run once, never interrupted: its study folder."""
    path = write_study(tmp_path_factory.mktemp("uninterrupted"), TPE)
    assert main(["study", "run", str(path), "-q"]) == 0
    return path.parent / "out"


KILLS = {  # where the driver dies: function, its N-th call, before or after it runs
    "first run mid-way": "neurosleep.experiments.hopfield:HopfieldExperiment.sleep:1:before",
    "after the first tell": "optuna.study:Study.tell:1:after",
    "after a run, before its ledger row": "neurosleep.study.driver:Driver._done:3:before",
    "between two suggestions": "optuna.trial:Trial.suggest_categorical:4:before",
    "after the third tell": "optuna.study:Study.tell:3:after",
}


@pytest.mark.parametrize("point", list(KILLS.values()), ids=list(KILLS))
def test_tpe_resumed_after_a_driver_kill_equals_the_uninterrupted_search(
    point, uninterrupted, tmp_path
):
    path = write_study(tmp_path, TPE)
    out = tmp_path / "out"
    first = killed(["study", "run", str(path), "-q"], point, tmp_path / "killed")
    assert first.returncode == -signal.SIGKILL, first.stderr
    left = {r["key"]: r for r in ledger_rows(out)}
    assert main(["study", "run", str(path), "-q"]) == 0
    # the same trials, in order, with the same values
    assert trials(out) == trials(uninterrupted)
    # the same ledger: rows (in order) and their values; only the attempts of the runs the kill
    # interrupted differ (listed as re-run, their partial files moved aside and kept)
    resumed, reference = ledger_in_order(out), ledger_in_order(uninterrupted)
    same = [{k: r[k] for k in SAME} for r in resumed]
    assert same == [{k: r[k] for k in SAME} for r in reference]
    for row in resumed:
        aside = json.loads(row["aside"])
        assert all(Path(p).is_file() for p in aside)
        if left.get(row["key"], {}).get("state") == "running":  # a partial file, or none yet
            assert row["attempts"] == 1 + len(aside), row
        else:
            assert (row["attempts"], aside) == (1, []), row
    # bit-identical run files
    for a, b in zip(resumed, reference, strict=True):
        assert contents(a["path"]) == contents(b["path"])
