"""Damaged and live run files against every analysis command: one line naming the file, exit 2,
no traceback, no hang, nothing changed outside the test's folder, no partial export left."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from neurosleep.analysis.plots import PLOTS
from neurosleep.cli import main
from neurosleep.errors import RunFileError
from neurosleep.io import Recorder, open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from tests.conftest import small_hopfield
from tests.runfile_corpus import make_corpus
from tests.test_analysis_runs import make_run

TIMEOUT_S = 60  # per command: far above what any case takes, catches a hang

COMMANDS = {
    "info": lambda f, out: ["info", f],
    "summary": lambda f, out: ["summary", f, "--allow-incomplete", "--stats", "numpy"],
    "plot": lambda f, out, kind: [
        *("plot", f, "--out", out, "--allow-incomplete", "--dpi", "30", "--kind", kind)
    ],
    "compare": lambda f, out: ["compare", f, "--include-incomplete"],
    "nwb": lambda f, out: ["export", f, "--nwb", f"{out}/run.nwb", "--allow-incomplete"],
    "sonata": lambda f, out: ["export", f, "--sonata", f"{out}/son", "--allow-incomplete"],
}


PLOT_KINDS = list(PLOTS)


class Hang(BaseException):
    """A command ran past TIMEOUT_S (BaseException: the CLI's handlers do not catch it)."""


def _alarm(signum, frame):
    raise Hang


def synthetic_base(path):
    """The Recorder-written synthetic run (spikes, reports, sparse and dense weights, sleep
    diagnostics), plus continual-learning metrics as the runner writes them."""
    make_run(path)
    with h5py.File(path, "a") as f:
        recorder = Recorder(f, n_tasks=2)
        matrix = np.array([[np.nan, np.nan], [0.9, np.nan], [0.7, 0.95]])
        recorder.set_continual(
            "accuracy",
            matrix,
            [None, 1, 3],
            {"ACC": np.array([np.nan, 0.9, 0.825])},
            units="1",
            descriptions={"ACC": "average accuracy"},
        )
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    bases = tmp_path_factory.mktemp("bases")
    (bases / "p.yaml").write_text(yaml.safe_dump(small_hopfield()))
    hopfield = bases / "hopfield.h5"
    run(load_protocol(bases / "p.yaml"), output=hopfield, progress=False)
    out = tmp_path_factory.mktemp("corpus")
    return make_corpus({"synthetic": synthetic_base(bases / "synthetic.h5"), "hop": hopfield}, out)


def digest(folder):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def call(argv, capsys):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        code = main(argv)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def argv(command: str, path, out, i: int) -> list[str]:
    """The command line; ``plot`` draws one kind per case, in rotation over all kinds (every
    kind meets every sort of damage, at a seventh of the time)."""
    if command == "plot":
        return COMMANDS[command](str(path), str(out), PLOT_KINDS[i % len(PLOT_KINDS)])
    return COMMANDS[command](str(path), str(out))


def test_corpus_is_large_and_mixed(corpus):
    assert len(corpus) >= 50
    assert sum(c.required for c in corpus) >= 50
    assert any(not c.required for c in corpus)  # optional parts: the reader must not over-refuse


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_damaged_file_against_every_command(corpus, command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written into the working folder would show here
    folder = corpus[0].path.parent
    before = digest(folder)
    failures = []
    for i, case in enumerate(corpus):
        out = tmp_path / f"out{i}"
        out.mkdir()
        code, stdout, err = call(argv(command, case.path, out, i), capsys)
        problem = None
        if "Traceback" in err or code not in (0, 2):
            problem = f"exit {code}: {err[-400:]}"
        elif case.required and code != 2:
            problem = f"accepted (exit {code})"
        elif code == 2 and (err.count("\n") != 1 or case.path.name not in err):
            problem = f"not one line naming the file: {err!r}"
        elif code == 2 and any(out.rglob("*")):
            problem = f"left {sorted(p.name for p in out.rglob('*'))}"
        if problem:
            failures.append(f"{case.name}: {problem}")
    assert not failures, "\n".join(failures)
    assert digest(folder) == before  # no corpus file was changed, and none added
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"out{i}" for i in range(len(corpus))
    )


def test_neo_spike_trains_of_damaged_files(corpus):
    pytest.importorskip("neo")
    from neurosleep.io.neo import spiketrains

    for case in corpus:
        try:
            with open_run(case.path) as r, r.reading():
                for population in r.populations():
                    spiketrains(r, population)
        except RunFileError as exc:
            assert str(case.path) in str(exc) and "\n" not in str(exc)
        else:
            assert not case.required, case.name


# ---------------------------------------------------------------------- live files
@pytest.fixture
def live_run(tmp_path, write_protocol, hopfield_protocol):
    """A run in a child process whose sleep phase would last minutes; killed at teardown."""
    hopfield_protocol["schedule"][2]["sleep"].update(steps=200_000, block=20, t=10)
    path = write_protocol(hopfield_protocol)
    out = tmp_path / "live.h5"
    command = [sys.executable, "-m", "neurosleep.cli", "run", str(path), "--output", str(out)]
    proc = subprocess.Popen(
        [*command, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + TIMEOUT_S
    while not out.exists() or os.path.getsize(out) < 100_000:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    yield out, proc
    proc.kill()
    proc.wait()


def test_live_file_against_every_command(live_run, tmp_path, capsys):
    out_file, proc = live_run
    for attempt in range(3):
        for command in COMMANDS:
            out = tmp_path / f"{command}{attempt}"
            out.mkdir()
            code, stdout, err = call(argv(command, out_file, out, attempt), capsys)
            assert "Traceback" not in err and code in (0, 2), (command, err)
            if code == 2:
                assert err.count("\n") == 1 and str(out_file) in err, (command, err)
                assert not any(out.rglob("*")), command
            if command in ("nwb", "sonata"):  # never an export of a file being written
                assert code == 2 and f"being written by process {proc.pid}" in err
    assert proc.poll() is None  # the writer was not disturbed


def test_killed_live_file_exports_its_flushed_prefix(live_run, tmp_path, capsys):
    out_file, proc = live_run
    proc.kill()
    proc.wait()
    for command in ("nwb", "sonata", "summary", "plot"):
        code, _, err = call(argv(command, out_file, tmp_path, 0), capsys)
        assert code == 0, err
    assert (tmp_path / "run.nwb").exists() and (tmp_path / "son").is_dir()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_file_held_open_with_hdf5_locking(tmp_path):
    path = make_run(tmp_path / "held.h5")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import h5py, time; f = h5py.File({str(path)!r}, 'a');"
            "print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"open\n"
        env = dict(os.environ, HDF5_USE_FILE_LOCKING="TRUE")
        result = subprocess.run(
            [sys.executable, "-m", "neurosleep.cli", "info", str(path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT_S,
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{path}: HDF5 file locking" in result.stderr
    assert "HDF5_USE_FILE_LOCKING=FALSE" in result.stderr and "close it" in result.stderr


def test_damaged_file_in_a_real_subprocess(corpus):
    case = next(c for c in corpus if c.required and "timestamps shorter" in c.name)
    result = subprocess.run(
        [sys.executable, "-m", "neurosleep.cli", "summary", str(case.path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{case.path}: /spikes/" in result.stderr and "lengths differ" in result.stderr
