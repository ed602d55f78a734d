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
from neurosleep.errors import StudyError
from neurosleep.study.ledger import Ledger
from tests.conftest import TINY_MLP, small_hopfield
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


# ---------------------------------------------------------------------------- runs exactly once
GRID = {
    "format_version": 1,
    "name": "grid",
    "protocol": "p.yaml",
    "seeds": [1, 2],
    "select_on": "test",
    "space": {"schedule.dream.t": {"values": [1, 10]}},
}
MLP = {  # split digits (local, scikit-learn), a tiny network, selected on the validation split
    "format_version": 1,
    "name": "mlp",
    "description": "wake learning rate on split digits",
    "seed": 1,
    "model": TINY_MLP,
    "engine": "torch",
    "device": "cpu",
    "data": {"dataset": "digits", "stream": "split", "scenario": "class"},
    "record": {"weights": False},
    "schedule": [
        {"test": {"name": "at_start"}},
        {
            "repeat": {
                "over": "tasks",
                "phases": [
                    {"wake": {"optimizer": "sgd", "lr": 0.1, "batch_size": 32, "epochs": 1}},
                    {"test": {"name": "after{k}"}},
                ],
            }
        },
    ],
}
STUDIES = {
    "hopfield": (GRID, None),
    "mlp": (
        dict(
            GRID,
            name="mlp_grid",
            seeds=[1],
            select_on="validation",
            space={"schedule.1.repeat.phases.0.wake.lr": {"values": [0.05, 0.1]}},
        ),
        MLP,
    ),
}


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, dict[str, dict[str, bytes]]]:
    """Each study run once, in process, never interrupted: key → run file contents."""
    out = {}
    for name, (study, protocol) in STUDIES.items():
        path = write_study(tmp_path_factory.mktemp(name), study, protocol)
        assert main(["study", "run", str(path), "-q"]) == 0
        out[name] = {r["key"]: contents(r["path"]) for r in ledger_rows(path.parent / "out")}
    return out


def assert_every_run_once(out: Path, reference: dict[str, dict[str, bytes]]) -> list[dict]:
    """Every planned run complete, its file equal to the uninterrupted study's; a run executed
    twice or with a file moved aside is the re-run; every file moved aside is still there.
    Returns the re-run rows."""
    rows = ledger_rows(out)
    assert sorted(r["key"] for r in rows) == sorted(reference)
    assert {r["state"] for r in rows} == {"complete"}
    rerun = []
    for row in rows:
        assert contents(row["path"]) == reference[row["key"]], row["key"]
        aside = json.loads(row["aside"])
        assert all(Path(p).is_file() for p in aside), aside
        if row["attempts"] > 1 or aside:
            rerun.append(row)
        else:
            assert row["attempts"] == 1
    assert not list((out / "runs").glob("*.partial"))
    return rerun


WORKER_KILLS = {  # a Dask worker dies: at the start of a run, mid-write, before `complete`
    "start": ("neurosleep.study.execute:_attempt:1:before", 0),
    "mid-write": ("neurosleep.io.recorder:_append:8:before", 1),
    "before the complete flag": ("neurosleep.io.recorder:Recorder.close:1:before", 1),
}


WORKER_CASES = [(point, "hopfield") for point in WORKER_KILLS] + [("mid-write", "mlp")]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "study"), WORKER_CASES, ids=[" ".join(c) for c in WORKER_CASES])
def test_a_worker_killed_at_any_moment_reruns_that_run_once(point, study, references, tmp_path):
    target, moved = WORKER_KILLS[point]
    path = write_study(tmp_path, *STUDIES[study])
    marker = tmp_path / "killed"
    done = killed(["study", "run", str(path), "--workers", "2"], target, marker, preload=True)
    assert done.returncode == 0, done.stderr
    assert marker.is_file()  # a worker was killed
    n = len(references[study])
    assert f"{n} complete, 0 failed, 1 re-run" in done.stdout
    (rerun,) = assert_every_run_once(tmp_path / "out", references[study])
    assert rerun["attempts"] == 2 and len(json.loads(rerun["aside"])) == moved


DRIVER_KILLS = {  # the driver dies (runs in its process): before any run, mid-write, ...
    "before any run": ("neurosleep.study.ledger:Ledger.add:1:after", 0),
    "mid-write": ("neurosleep.io.recorder:_append:20:before", 1),
    "before the complete flag": ("neurosleep.io.recorder:Recorder.close:2:before", 1),
    "before the ledger records a run": ("neurosleep.study.driver:Driver._done:1:before", 0),
}


DRIVER_CASES = [(point, "hopfield") for point in DRIVER_KILLS] + [
    ("mid-write", "mlp"),
    ("before the complete flag", "mlp"),
]


@pytest.mark.parametrize(("point", "study"), DRIVER_CASES, ids=[" ".join(c) for c in DRIVER_CASES])
def test_a_driver_killed_at_any_moment_resumes_each_run_once(point, study, references, tmp_path):
    target, moved = DRIVER_KILLS[point]
    path = write_study(tmp_path, *STUDIES[study])
    first = killed(["study", "run", str(path)], target, tmp_path / "killed")
    assert first.returncode == -signal.SIGKILL, first.stderr
    left = {r["key"]: r for r in ledger_rows(tmp_path / "out")}
    stamps = {  # complete runs: not touched again
        k: Path(r["path"]).stat().st_mtime_ns for k, r in left.items() if r["state"] == "complete"
    }
    assert main(["study", "run", str(path), "-q"]) == 0
    rerun = assert_every_run_once(tmp_path / "out", references[study])
    for key, stamp in stamps.items():
        assert Path(left[key]["path"]).stat().st_mtime_ns == stamp
    interrupted = [k for k, r in left.items() if r["state"] == "running"]
    assert len(interrupted) == (1 if point != "before any run" else 0)
    # executed twice only where a partial file had to go; a run whose file was complete is kept
    assert [r["key"] for r in rerun] == (interrupted if moved else [])
    assert all(len(json.loads(r["aside"])) == moved for r in rerun)


@pytest.mark.slow
def test_a_dask_driver_killed_mid_run_resumes_each_run_once(references, tmp_path):
    """The driver of a 2-worker LocalCluster dies while its workers run: the workers go too
    (or finish the run they hold, its lock keeping the resumed study waiting); the resumed
    study runs the rest, each run once, and leaves the complete ones alone."""
    path = write_study(tmp_path, *STUDIES["hopfield"])
    point = "neurosleep.study.driver:Driver._started:2:after"
    first = killed(["study", "run", str(path), "--workers", "2"], point, tmp_path / "killed")
    assert first.returncode == -signal.SIGKILL, first.stderr
    left = {r["key"]: r for r in ledger_rows(tmp_path / "out")}
    assert sum(r["state"] == "running" for r in left.values()) >= 1
    assert main(["study", "run", str(path), "-q"]) == 0
    rerun = assert_every_run_once(tmp_path / "out", references["hopfield"])
    # re-run: runs the killed study had started (a worker may have begun one whose start the
    # driver did not record before it died), never one it had completed
    assert {r["key"] for r in rerun} <= {k for k, r in left.items() if r["state"] != "complete"}


CREATE_LEDGERS = """
import sys
from pathlib import Path
from neurosleep.study.ledger import Ledger
for i in range(int(sys.argv[2])):
    Ledger(Path(sys.argv[1]) / str(i)).close()
"""


def test_a_reader_never_finds_a_ledger_without_its_tables(tmp_path):
    """The race CI once hit: a reader polling a study folder opened ``ledger.sqlite`` between its
    creation and its schema ("no such table: runs"). Readers poll while another process creates
    ledgers; every file they find has its tables, and no temporary file is left behind."""
    n = 150
    writer = subprocess.Popen(
        [sys.executable, "-c", CREATE_LEDGERS, str(tmp_path), str(n)], env=ENV
    )
    found = 0
    try:
        for i in range(n):
            path = tmp_path / str(i) / "ledger.sqlite"
            while not path.exists():
                assert writer.poll() in (None, 0), "the writer failed"
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            finally:
                db.close()
            assert {"runs", "meta"} <= tables, f"ledger {i} found without its tables: {tables}"
            found += 1
    finally:
        assert writer.wait(timeout=120) == 0
    assert found == n
    assert list(tmp_path.glob("*/.*tmp")) == []  # (-wal and -shm may stay: SQLite's own)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ledger.sqlite").touch()  # what the race left a reader to find
    with pytest.raises(StudyError, match=r"empty/ledger.sqlite: not a study ledger"):
        Ledger(tmp_path / "empty", readonly=True)
    ledger = Ledger(tmp_path / "empty")  # a driver makes it a ledger, in WAL mode
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ledger.close()
    Ledger(tmp_path / "empty", readonly=True).close()
