"""The command line's error contract: input errors are one line (exit 2), bugs show a traceback
and ask for a report (exit 3), a closed pipe ends quietly (exit 141)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurosleep import cli
from neurosleep.commands import info


@pytest.fixture
def run_file(tmp_path, write_protocol, hopfield_protocol):
    hopfield_protocol["output"] = str(tmp_path / "run.h5")
    assert cli.main(["run", str(write_protocol(hopfield_protocol)), "--quiet"]) == 0
    return tmp_path / "run.h5"


def test_input_error_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not HDF5\n")
    assert cli.main(["info", str(tmp_path / "notes.txt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes.txt" in err and "Traceback" not in err


def test_internal_error_shows_traceback_and_asks_for_report(run_file, capsys, monkeypatch):
    def broken(run):
        raise ValueError("an internal bug")

    monkeypatch.setattr(info, "describe", broken)
    assert cli.main(["info", str(run_file)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an internal bug" in err
    assert "please report it" in err.splitlines()[-1]


def test_closed_pipe_ends_quietly(run_file):
    child = subprocess.Popen(
        [sys.executable, "-m", "neurosleep.cli", "info", str(run_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    child.stdout.close()  # the reader is gone before anything is written (`| head` that exited)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 141, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
