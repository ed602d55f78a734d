"""Run-file ownership: only run files are replaced, never before the new run completed, and one
writer per run file (real files, real subprocesses, real kills)."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import pytest

from neurosleep.cli import main
from neurosleep.io import open_run
from neurosleep.io.ownership import (
    is_locked,
    lock_path,
    partial_path,
    refusal,
    run_file_lock,
)
from tests.test_runner import wait_for_rows

TIMEOUT = 60  # s: generous, catches a hang


@pytest.fixture
def protocol(write_protocol, hopfield_protocol):
    return write_protocol(hopfield_protocol)


@pytest.fixture
def complete_run(protocol, tmp_path):
    out = tmp_path / "r.h5"
    assert main(["run", str(protocol), "--output", str(out), "--quiet"]) == 0
    return out


def snapshot(path):
    st = os.lstat(path)
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return st.st_mode, st.st_mtime_ns, data


def refused(capsys, protocol, out, *flags) -> str:
    assert main(["run", str(protocol), "--output", str(out), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
@pytest.mark.parametrize(
    "make, why",
    [
        (lambda p, tmp: (tmp / "README.md", (tmp / "README.md").write_text("# notes\n")), "not a"),
        (lambda p, tmp: (p, None), "not a neurosleep run file"),
        (lambda p, tmp: (tmp / "d", (tmp / "d").mkdir()), "is a directory"),
        (lambda p, tmp: (tmp / "fifo", os.mkfifo(tmp / "fifo")), "FIFO"),
        (lambda p, tmp: (tmp / "empty.h5", (tmp / "empty.h5").write_bytes(b"")), "not a"),
    ],
    ids=["text", "protocol-itself", "directory", "fifo", "empty"],
)
def test_overwrite_refuses_what_is_not_a_run_file(make, why, overwrite, protocol, tmp_path, capsys):
    out, _ = make(protocol, tmp_path)
    before = snapshot(out)
    err = refused(capsys, protocol, out, *overwrite)
    assert why in err
    assert snapshot(out) == before
    assert not lock_path(out).exists() and not partial_path(out).exists()


def test_symlink_refused_even_to_a_run_file(complete_run, protocol, tmp_path, capsys):
    link = tmp_path / "link.h5"
    link.symlink_to(complete_run)
    before = snapshot(complete_run)
    assert "symbolic link" in refused(capsys, protocol, link, "--overwrite")
    assert link.is_symlink() and snapshot(complete_run) == before


def test_other_hdf5_file_refused(protocol, tmp_path, capsys):
    other = tmp_path / "data.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "someone-else"
        f["x"] = [1, 2, 3]
    before = snapshot(other)
    assert "not a neurosleep run file" in refused(capsys, protocol, other, "--overwrite")
    assert snapshot(other) == before


def test_devices_are_never_regular_files():
    # only lstat: nothing is opened or created under /dev
    assert "character device" in refusal("/dev/null")
    assert refusal("/dev/null", content=False) == refusal("/dev/null")


def test_failed_overwrite_keeps_the_old_file(complete_run, protocol, capsys, monkeypatch):
    from neurosleep.experiments.hopfield import HopfieldExperiment

    before = complete_run.read_bytes()

    def broken(self, phase, progress):
        raise RuntimeError("sleep exploded")

    monkeypatch.setattr(HopfieldExperiment, "sleep", broken)
    command = ["run", str(protocol), "--output", str(complete_run), "--overwrite", "--quiet"]
    assert main(command) == 1
    err = capsys.readouterr().err
    partial = partial_path(complete_run)
    assert f"partial run file: {partial}" in err and "is kept unchanged" in err
    assert complete_run.read_bytes() == before
    with open_run(partial) as r:
        assert r.status == "failed" and "sleep exploded" in r.provenance("traceback")
    # the failed replacement is not silently deleted by the next attempt
    monkeypatch.undo()
    assert main(command) == 2
    assert f"{partial} exists" in capsys.readouterr().err
    assert complete_run.read_bytes() == before
    partial.unlink()
    assert main([*command, "--seed", "3"]) == 0
    with open_run(complete_run) as r:
        assert r.status == "complete" and r.attrs["seed"] == 3
    assert not partial.exists() and not lock_path(complete_run).exists()


def long_run(protocol_dict, write_protocol, out, *flags):
    protocol_dict["schedule"][2]["sleep"].update(steps=200_000, block=20, t=10)
    path = write_protocol(protocol_dict, name="long.yaml")
    command = [sys.executable, "-m", "neurosleep.cli", "run", str(path), "--output", str(out)]
    return subprocess.Popen(
        [*command, "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def processes():
    started = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkilled_overwrite_keeps_old_file_and_leaves_readable_partial(
    complete_run, hopfield_protocol, write_protocol, processes, capsys
):
    before = complete_run.read_bytes()
    proc = long_run(hopfield_protocol, write_protocol, complete_run, "--overwrite")
    processes.append(proc)
    partial = partial_path(complete_run)
    wait_for_rows(partial, 100, proc)
    assert is_locked(complete_run).pid == proc.pid
    assert is_locked(partial).pid == proc.pid
    proc.kill()
    proc.wait(timeout=TIMEOUT)
    assert complete_run.read_bytes() == before
    with open_run(complete_run) as r:
        assert r.status == "complete"
    with open_run(partial) as r:
        assert r.status == "running" and r.phases()[-1].status == "running"
    assert is_locked(complete_run) is None  # the lock file is stale: its process is gone
    assert main(["info", str(complete_run)]) == 0
    out = capsys.readouterr().out  # info points at the replacement left behind
    assert f"replacement run file {partial}: left by a run that did not complete" in out
    assert main(["info", str(partial)]) == 0
    assert "no live writer: the run was killed" in capsys.readouterr().out


def test_concurrent_writer_refused(
    tmp_path, hopfield_protocol, write_protocol, protocol, processes, capsys
):
    out = tmp_path / "live.h5"
    first = long_run(hopfield_protocol, write_protocol, out)
    processes.append(first)
    wait_for_rows(out, 100, first)
    for flags in ((), ("--overwrite",)):
        err = refused(capsys, protocol, out, *flags)
        assert f"{out} is being written by process {first.pid} since " in err
    assert not partial_path(out).exists()
    assert main(["info", str(out)]) == 0
    assert f"being written by process {first.pid}" in capsys.readouterr().out
    # a real second process gets the same one line
    second = long_run(hopfield_protocol, write_protocol, out, "--overwrite")
    processes.append(second)
    _, err = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 2 and f"being written by process {first.pid}" in err
    assert "Traceback" not in err and first.poll() is None
    first.kill()
    first.wait()
    assert is_locked(out) is None
    with open_run(out) as r:
        assert r.status == "running"


def test_lock_is_released_and_reusable(tmp_path):
    out = tmp_path / "x.h5"
    with run_file_lock(out) as lock:
        info = is_locked(out)
        assert info.pid == os.getpid() and lock.exists()
    assert is_locked(out) is None and not lock.exists()
    with run_file_lock(out):
        pass
