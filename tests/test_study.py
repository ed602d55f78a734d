"""Studies: validation before anything runs, the ledger, Dask and in-process execution giving the
same runs, resuming after a killed worker or driver, TPE resuming from its storage, reports."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
import yaml

from neurosleep.cli import main
from neurosleep.errors import SpecError
from neurosleep.study.driver import run_study
from neurosleep.study.spec import load_study

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


@pytest.fixture
def make_study(tmp_path, hopfield_protocol):
    """Write the tiny Hopfield protocol and a study over it; return the study file's path."""

    def make(study: dict | str | None = None, name: str = "study.yaml", **protocol) -> Path:
        p = dict(hopfield_protocol)
        for key, value in protocol.items():
            p[key] = value
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        if isinstance(study, str):
            text = study
        else:
            content = {
                "format_version": 1,
                "name": "tiny",
                "protocol": "p.yaml",
                "seeds": [1, 2],
                "select_on": "test",
                "objective": {"metric": "overlap", "goal": "maximize"},
                "space": {
                    "data.patterns": {"values": [8, 16]},
                    "schedule.dream.t": {"values": [1, 10]},
                },
                "folder": str(tmp_path / "out"),
            }
            content.update(study or {})
            text = yaml.safe_dump(content, sort_keys=False)
        path = tmp_path / name
        path.write_text(text)
        return path

    return make


def ledger_rows(folder: Path) -> list[dict]:
    db = sqlite3.connect(f"file:{folder / 'ledger.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY key")]
    finally:
        db.close()


VARYING = {"provenance/environment", "provenance/command_line"}  # host, pid, command line


def contents(path: str | Path) -> dict[str, bytes]:
    """Every dataset and attribute of a run file as bytes (values exactly, floats included),
    except the process's provenance (creation and closing times, wall seconds, environment,
    command line) and the run file's own path in the stored protocol."""
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            for key, value in obj.attrs.items():
                if key not in ("created", "closed"):
                    out[f"{name}@{key}"] = np.asarray(value).tobytes()
            if isinstance(obj, h5py.Dataset) and name not in VARYING:
                data = obj[()]
                if name == "phases":
                    data = data[[n for n in data.dtype.names if n != "wall_seconds"]]
                if name == "provenance/protocol":  # the run file's own path differs
                    data = {k: v for k, v in yaml.safe_load(data).items() if k != "output"}
                out[name] = (
                    repr(data.tolist()).encode()
                    if hasattr(data, "tolist")
                    else (repr(data).encode())
                )

        visit("/", f)
        f.visititems(visit)
    return out


# ---------------------------------------------------------------------------- validation
def test_bad_study_files_name_file_line_and_key(make_study, tmp_path):
    path = make_study({"seedz": [1]})
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: seedz: unknown key"):
        load_study(path)
    path = make_study({"search": {"kind": "random"}})
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: search: .*needs n"):
        load_study(path)
    path = make_study({"search": {"kind": "grid", "startup": 2}})
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: search: .*startup: only a tpe"):
        load_study(path)
    text = (
        "format_version: 1\nname: s\nprotocol: p.yaml\nseeds: [1]\nselect_on: test\n"
        "objective: {metric: overlap}\nspace:\n"
        "  schedule.before.cue_noise: {values: [0.1, 0.9]}\n"
        "  schedule.nope.t: {values: [1]}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_study(make_study(text))
    message = str(caught.value)
    assert "study.yaml:8: space.schedule.before.cue_noise: value 0.9" in message
    assert "less than or equal to 0.5" in message
    assert "study.yaml:9: space.schedule.nope.t: value 1: " in message
    assert "no phase named 'nope'" in message
    # a Hopfield protocol has no validation split unless the study says how to make one
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: select_on: hopfield models have no"):
        load_study(make_study({"select_on": "validation"}))


def test_invalid_study_runs_nothing(make_study, tmp_path, capsys):
    path = make_study({"space": {"schedule.dream.t": {"values": [1, "ten"]}}})
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "study.yaml:" in err and "space.schedule.dream.t: value 'ten'" in err
    assert not (tmp_path / "out").exists()


def test_a_cuda_study_validates_here_and_runs_only_where_its_workers_have_cuda(
    make_study, tmp_path, capsys, monkeypatch
):
    """A study whose protocol asks for CUDA is valid on a machine without one (its runs may go
    to a scheduler's workers, which check their own device), with a note; run on this
    machine's workers it is refused before anything runs or is written; with ``--scheduler``
    it goes to the driver."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without CUDA
    path = make_study(device="cuda")
    assert main(["study", "validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "valid" in captured.out
    assert "note: not on this machine: device 'cuda' asked for" in captured.err
    assert main(["study", "run", str(path), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 1 and "study.yaml: device 'cuda' asked for" in err[0], err
    assert "set device: cpu in the study's `set:`" in err[0] and "--scheduler" in err[0], err
    assert not (tmp_path / "out").exists()
    driven = []  # the driver itself needs a scheduler; here only whether it is reached

    def run_study(study, **options):
        driven.append(options["scheduler"])
        return SimpleNamespace(complete=0, failed=0, rerun=0, total=0, best=None, ok=True)

    monkeypatch.setattr("neurosleep.study.driver.run_study", run_study)
    assert main(["study", "run", str(path), "--scheduler", "tcp://127.0.0.1:1", "-q"]) == 0
    assert driven == ["tcp://127.0.0.1:1"]


# ---------------------------------------------------------------------------- running
def test_in_process_study_ledger_report_and_resume(make_study, tmp_path, capsys):
    path = make_study({"confirm": {"seeds": [11, 12], "split": "test", "against": "base"}})
    assert main(["study", "run", str(path)]) == 0
    rows = ledger_rows(tmp_path / "out")
    # 4 configurations × 2 seeds, then the best and the base on the 2 confirmation seeds
    assert len(rows) == 12 and {r["state"] for r in rows} == {"complete"}
    assert sorted({r["stage"] for r in rows}) == ["confirm", "search"]
    assert all(r["attempts"] == 1 and r["pid"] == os.getpid() for r in rows)
    files = {r["path"]: os.stat(r["path"]).st_mtime_ns for r in rows}
    with h5py.File(rows[0]["path"], "r") as f:
        assert f.attrs["status"] == "complete"
    # again: nothing is redone
    assert main(["study", "run", str(path)]) == 0
    again = ledger_rows(tmp_path / "out")
    assert [r["attempts"] for r in again] == [1] * 12
    assert {p: os.stat(p).st_mtime_ns for p in files} == files
    capsys.readouterr()
    assert main(["study", "report", str(tmp_path / "out")]) == 0
    summary = capsys.readouterr().out
    assert "| hop_patterns8_t1 | 8 | 1 | " in summary and "## Confirmation" in summary
    report = tmp_path / "out" / "report"
    import pandas as pd

    table = pd.read_parquet(report / "runs.parquet")
    assert len(table) == 12 and {"overlap ACC", "seed", "split", "attempt_s", "phases_s"} <= set(
        table.columns
    )
    assert pd.read_csv(report / "runs.csv").shape == table.shape
    assert (report / "heatmap_data.patterns__schedule.dream.t.png").stat().st_size > 1000
    assert (report / "objective_data.patterns.png").stat().st_size > 1000
    # compare takes the study folder: one group per configuration and split
    assert main(["compare", str(tmp_path / "out")]) == 0
    assert "hop_patterns16_t10 [test]" in capsys.readouterr().out


def test_a_run_failing_twice_is_failed_and_the_study_goes_on(make_study, tmp_path, monkeypatch):
    from neurosleep.experiments.hopfield import HopfieldExperiment

    original = HopfieldExperiment.sleep

    def sleep(self, phase, progress):
        if phase.params.t == 10:
            raise FloatingPointError("dreaming diverged")
        return original(self, phase, progress)

    monkeypatch.setattr(HopfieldExperiment, "sleep", sleep)
    assert main(["study", "run", str(make_study())]) == 1
    rows = ledger_rows(tmp_path / "out")
    failed = [r for r in rows if r["state"] == "failed"]
    assert len(failed) == 4 and all(r["attempts"] == 2 for r in failed)  # t = 10: 2 × 2 seeds
    assert all("FloatingPointError: dreaming diverged" in r["reason"] for r in failed)
    assert all("\n" not in r["reason"] and Path(r["traceback"]).is_file() for r in failed)
    assert sum(r["state"] == "complete" for r in rows) == 4
    # the failed run's file was moved aside before the second attempt, never deleted
    assert all(len(json.loads(r["aside"])) == 1 for r in failed)
    assert all(Path(p).is_file() for r in failed for p in json.loads(r["aside"]))


@pytest.mark.slow
def test_dask_and_in_process_give_the_same_ledger_and_run_files(make_study, tmp_path):
    path = make_study()
    serial = run_study(load_study(path, tmp_path / "serial"), workers=1)
    parallel = run_study(load_study(path, tmp_path / "dask"), workers=2)
    assert serial.ok and parallel.ok and serial.total == parallel.total == 8
    keep = ("key", "label", "params", "seed", "split", "stage", "state", "attempts", "metrics")
    a, b = ledger_rows(tmp_path / "serial"), ledger_rows(tmp_path / "dask")
    assert [{k: r[k] for k in keep} for r in a] == [{k: r[k] for k in keep} for r in b]
    assert len({r["pid"] for r in b}) >= 1 and all(r["pid"] != os.getpid() for r in b)
    for ra, rb in zip(a, b, strict=True):
        assert contents(ra["path"]) == contents(rb["path"])


SLOW = {"model": {"kind": "hopfield", "name": "h300", "neurons": 300}}
SLOW_SLEEP = [
    {"wake": {"name": "store"}},
    {"test": {"name": "before"}},
    {"sleep": {"name": "dream", "kind": "dreaming", "t": 5, "steps": 600, "block": 10}},
    {"test": {"name": "after"}},
]


def wait_for(predicate, timeout: float = 240.0, what: str = ""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def scheduler_address(path: Path) -> str | None:
    """The address in a Dask scheduler file, once the scheduler has written it whole."""
    try:
        return json.loads(path.read_text())["address"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def running_row(folder: Path):
    if not (folder / "ledger.sqlite").exists():
        return None
    try:
        rows = ledger_rows(folder)
    except sqlite3.OperationalError:
        return None
    return next((r for r in rows if r["state"] == "running" and r["pid"]), None)


@pytest.mark.slow
def test_worker_killed_mid_run_is_rerun_and_listed(make_study, tmp_path):
    path = make_study(
        {"seeds": [1], "space": {"data.patterns": {"values": [8, 16]}}}, **SLOW, schedule=SLOW_SLEEP
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "neurosleep.cli", "study", "run", str(path), "--workers", "2"]
    driver = subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        victim = wait_for(lambda: running_row(out), what="a running run in the ledger")
        wait_for(lambda: Path(victim["path"]).exists(), what="its run file")
        time.sleep(1.0)  # let it write part of its run file
        os.kill(victim["pid"], signal.SIGKILL)
        stdout, stderr = driver.communicate(timeout=600)
    finally:
        driver.kill()
    assert driver.returncode == 0, stderr
    assert "2 complete, 0 failed, 1 re-run" in stdout
    rows = ledger_rows(out)
    assert [r["state"] for r in rows] == ["complete"] * 2
    killed = next(r for r in rows if r["key"] == victim["key"])
    assert killed["attempts"] == 2 and len(json.loads(killed["aside"])) == 1
    with h5py.File(json.loads(killed["aside"])[0], "r") as partial:
        assert partial.attrs["status"] == "running"  # the killed partial, kept
    assert sum(bool(json.loads(r["aside"])) for r in rows) == 1
    status = subprocess.run(
        [sys.executable, "-m", "neurosleep.cli", "study", "status", str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{victim['key']} " in status and "re-run (2 attempts, moved aside: " in status


@pytest.mark.slow
def test_driver_killed_resumes_without_redoing_complete_runs(make_study, tmp_path):
    path = make_study(
        {"seeds": [1], "space": {"data.patterns": {"values": [8, 16]}}}, **SLOW, schedule=SLOW_SLEEP
    )
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "neurosleep.cli", "study", "run", str(path), "--workers", "1"]
    driver = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def one_done_one_running():
        rows = ledger_rows(out) if (out / "ledger.sqlite").exists() else []
        done = [r for r in rows if r["state"] == "complete"]
        return done if done and running_row(out) else None

    try:
        done = wait_for(one_done_one_running, what="a complete and a running run")
        time.sleep(0.5)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    left = {r["key"]: r for r in ledger_rows(out)}
    stamps = {
        r["key"]: os.stat(r["path"]).st_mtime_ns for r in left.values() if r["state"] == "complete"
    }
    assert len(stamps) >= len(done) and any(r["state"] == "running" for r in left.values())
    assert main(["study", "run", str(path)]) == 0
    rows = {r["key"]: r for r in ledger_rows(out)}
    assert {r["state"] for r in rows.values()} == {"complete"}
    for key, stamp in stamps.items():  # complete runs were not redone
        assert os.stat(rows[key]["path"]).st_mtime_ns == stamp
        assert rows[key]["attempts"] == 1
    rerun = [r for r in rows.values() if left[r["key"]]["state"] == "running"]
    assert all(r["attempts"] == 2 and len(json.loads(r["aside"])) == 1 for r in rerun)


def test_tpe_study_resumes_from_its_storage(make_study, tmp_path):
    import optuna

    space = {
        "schedule.dream.t": {"low": 1, "high": 50, "log": True},
        "data.patterns": {"values": [8, 16]},
    }
    path = make_study({"space": space, "search": {"kind": "tpe", "n": 2, "seed": 3}})
    assert main(["study", "run", str(path)]) == 0
    storage = f"sqlite:///{tmp_path / 'out' / 'optuna.sqlite'}"
    first = {r["key"]: r["attempts"] for r in ledger_rows(tmp_path / "out")}
    assert len(first) == 4  # 2 trials × 2 seeds
    # a driver killed after asking a trial leaves it RUNNING in the storage: it is run and told
    tpe = optuna.load_study(study_name="tiny", storage=storage)
    orphan = tpe.ask(
        {
            "schedule.dream.t": optuna.distributions.FloatDistribution(1, 50, log=True),
            "data.patterns": optuna.distributions.CategoricalDistribution([0, 1]),
        }
    )
    path = make_study({"space": space, "search": {"kind": "tpe", "n": 4, "seed": 3}})
    assert main(["study", "run", str(path)]) == 0
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert trials[orphan.number].value is not None
    rows = {r["key"]: r for r in ledger_rows(tmp_path / "out")}
    assert len(rows) == 8 and all(rows[k]["attempts"] == 1 for k in first)
    assert {r["trial"] for r in rows.values()} == {0, 1, 2, 3}


@pytest.mark.slow
def test_scheduler_and_workers_started_as_separate_processes(make_study, tmp_path):
    scheduler_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        address = wait_for(
            lambda: scheduler_address(scheduler_file), timeout=120, what="the scheduler file"
        )
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--nworkers",
                        "1",
                    ],
                    env=ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        path = make_study()
        assert main(["study", "run", str(path), "--scheduler", address]) == 0
        rows = ledger_rows(tmp_path / "out")
        assert len(rows) == 8 and {r["state"] for r in rows} == {"complete"}
        assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def test_sleep_every_keeps_sleep_after_every_kth_task(make_study, tmp_path):
    from neurosleep.protocol import load_protocol

    repeat = {
        "repeat": {
            "over": "tasks",
            "phases": [
                {"wake": {"name": "store{task}"}},
                {"sleep": {"name": "dream{task}", "kind": "dreaming", "t": "k", "steps": 10}},
                {"test": {"name": "after{task}"}},
            ],
        }
    }
    path = make_study(
        {"space": {"sleep_every": {"values": [1, 2, 3]}}},
        data={"patterns": 5, "tasks": 4},
        schedule=[repeat],
    )
    study = load_study(path)

    def sleeps(every):
        planned = study.run(study.configuration(0, {"sleep_every": every}), 1, "test", "search")
        protocol = load_protocol(planned.protocol, list(planned.overrides))
        return planned.key, [
            (p.name, p.task, p.params.t) for p in protocol.phases if p.kind == "sleep"
        ]

    one, two, three = sleeps(1), sleeps(2), sleeps(3)
    assert one[1] == [(f"dream{i}", i, i + 1) for i in range(4)]
    assert two[1] == [("dream1", 1, 2), ("dream3", 3, 4)]
    assert three[1] == [("dream2", 2, 3)]
    # every = 1 is the protocol as written: the same run as the base
    assert one[0] == study.run(study.base(0), 1, "test", "search").key
    with pytest.raises(SpecError, match=r"space\.sleep_every: sleep_every takes a whole number"):
        load_study(make_study({"space": {"sleep_every": {"values": [0]}}}))


def test_conditions_and_random_search(make_study, tmp_path, hopfield_protocol):
    other = dict(hopfield_protocol, name="hop_unlearning")
    other["schedule"] = [
        {"wake": {"name": "store"}},
        {"test": {"name": "before"}},
        {"sleep": {"name": "dream", "kind": "unlearning", "dreams": 5}},
        {"test": {"name": "after"}},
    ]
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    study = {
        "protocol": ["p.yaml", "q.yaml"],
        "seeds": [1],
        "space": {"data.patterns": {"low": 5, "high": 15, "integer": True}},
        "search": {"kind": "random", "n": 3, "seed": 7},
    }
    path = make_study(study)
    assert main(["study", "run", str(path)]) == 0
    rows = ledger_rows(tmp_path / "out")
    drawn = sorted((r["condition"], json.loads(r["params"])["data.patterns"]) for r in rows)
    assert len(rows) == 3 and all(5 <= p <= 15 for _, p in drawn)
    names = {r["label"].split("_patterns")[0] for r in rows}
    assert names <= {"hop", "hop_unlearning"}
    # the same seed draws the same configurations: a second study folder gets the same keys
    again = make_study(dict(study, folder=str(tmp_path / "again")), name="again.yaml")
    assert main(["study", "run", str(again)]) == 0
    assert sorted(r["key"] for r in ledger_rows(tmp_path / "again")) == sorted(
        r["key"] for r in rows
    )


def test_compare_and_report_read_a_study_folder_from_anywhere(
    make_study, tmp_path, monkeypatch, capsys
):
    """A study run with a relative folder: `compare` and `study report` find its run files
    from another working directory (and after the folder moved)."""
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = make_study({"seeds": [1], "space": {"schedule.dream.t": {"values": [1, 10]}}})
    text = path.read_text().replace(str(tmp_path / "out"), "rel/{name}")
    path.write_text(text)
    monkeypatch.chdir(tmp_path / "here")
    assert main(["study", "run", str(path), "-q"]) == 0
    moved = tmp_path / "elsewhere" / "moved"
    (tmp_path / "here" / "rel" / "tiny").rename(moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    capsys.readouterr()
    assert main(["compare", str(moved)]) == 0
    out = capsys.readouterr().out
    assert "| hop_t1 [test] | 1 |" in out and "| hop_t10 [test] | 1 |" in out
    assert main(["study", "report", "moved", "-q"]) == 0
    assert (moved / "report" / "runs.csv").read_text().count(",moved/runs/") == 2


def test_controls_run_as_written_beside_the_search_and_in_the_confirmation(
    make_study, tmp_path, hopfield_protocol, capsys
):
    """A control (here: no dreaming, a protocol the axis schedule.dream.t cannot address) runs on
    the development seeds and in the confirmation, is never the best, and the report shows it."""
    control = dict(hopfield_protocol, name="hop_no_dream")
    control["schedule"] = [{"wake": {"name": "store"}}, {"test": {"name": "after"}}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(control, sort_keys=False))
    study = {
        "controls": ["c.yaml"],
        "space": {"schedule.dream.t": {"values": [1, 5, 10]}},
        "confirm": {"seeds": [11, 12], "split": "test", "against": "base"},
    }
    path = make_study(study)
    assert main(["study", "run", str(path), "-q"]) == 0
    rows = ledger_rows(tmp_path / "out")
    staged = sorted((r["stage"], r["label"], r["seed"]) for r in rows)
    controls = [s for s in staged if s[1] == "hop_no_dream"]
    assert controls == [
        ("confirm", "hop_no_dream", 11),
        ("confirm", "hop_no_dream", 12),
        ("control", "hop_no_dream", 1),
        ("control", "hop_no_dream", 2),
    ]
    # 3 configurations × 2 seeds, the control on 2 seeds, best + base + control on 2 seeds
    assert len(rows) == 6 + 2 + 6 and {r["state"] for r in rows} == {"complete"}
    assert all(json.loads(r["params"]) == {} for r in rows if r["label"] == "hop_no_dream")
    capsys.readouterr()
    assert main(["study", "report", str(tmp_path / "out"), "-q"]) == 0
    report = tmp_path / "out" / "report"
    summary = (report / "summary.md").read_text()
    assert (report / "objective_schedule.dream.t.png").stat().st_size > 1000
    assert "| hop_no_dream (control) | — | " in summary
    best = summary.split("Best configuration: ")[1].split("\n")[0]
    assert best.startswith("hop_t")  # a control is never selected
    assert f"| {best} (best) | " in summary and "| hop_no_dream (control) | " in summary
    assert "Paired difference best − hop_no_dream: " in summary
    assert "Paired difference best − hop: " in summary
    # the control ran as written: its run files hold its own two phases, no dreaming
    for r in rows:
        if r["label"] == "hop_no_dream":
            with h5py.File(r["path"], "r") as f:
                assert [p[1] for p in f["phases"][()]] == [b"store", b"after"]


def test_bad_controls_are_located(make_study, tmp_path):
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: controls\[0\]: protocol file not found"):
        load_study(make_study({"controls": ["missing.yaml"]}))
    with pytest.raises(SpecError, match=r"study\.yaml:\d+: controls: .*list"):
        load_study(make_study({"controls": "c.yaml"}))


def test_workers_and_the_driver_do_not_import_matplotlib(make_study):
    """What a LocalCluster's fork server preloads and what the driver imports to plan a study
    leave matplotlib out (only figures need it): it would be imported once more per study."""
    code = (
        "import sys; import neurosleep.study.warm; from neurosleep.study.spec import load_study; "
        f"load_study({str(make_study())!r}); print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["sra_schedule", "consolidation_sleep", "hopfield_capacity"])
def test_shipped_studies_validate_and_their_controls_have_no_sleep(name):
    """Every run of each shipped study validates; a study with controls (the no-sleep arms of
    sra_schedule and consolidation_sleep) plans them with no sleep phase."""
    from neurosleep.protocol import load_protocol

    study = load_study(ROOT / "studies" / f"{name}.yaml")
    assert study.grid()
    for control in study.controls:
        planned = study.run(control, study.spec.seeds[0], study.spec.select_on, "control")
        protocol = load_protocol(planned.protocol, list(planned.overrides))
        assert not [p for p in protocol.phases if p.kind == "sleep"]
    assert len(study.controls) == (0 if name == "hopfield_capacity" else 1)
