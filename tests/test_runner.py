"""The runner and the run file: round trip, determinism, overwrite, interrupt, kill, failure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml

from neurosleep.cli import main
from neurosleep.errors import RunFileError
from neurosleep.io import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import RunFailed, run


def run_file(write_protocol, protocol, tmp_path, *overrides, name="r.h5"):
    path = write_protocol(protocol)
    out = tmp_path / name
    run(load_protocol(path, list(overrides)), output=out, progress=False)
    return out


def test_run_file_round_trip(write_protocol, hopfield_protocol, tmp_path):
    out = run_file(write_protocol, hopfield_protocol, tmp_path)
    with open_run(out) as r:
        assert r.status == "complete"
        assert (
            r.attrs["seed"] == 1 and r.attrs["engine"] == "torch" and r.attrs["format_version"] == 1
        )
        phases = r.phases()
        assert [(p.name, p.kind, p.status) for p in phases] == [
            ("store", "wake", "complete"),
            ("before", "test", "complete"),
            ("dream", "sleep", "complete"),
            ("after", "test", "complete"),
        ]
        assert all(b.start_time == a.stop_time for a, b in zip(phases, phases[1:], strict=False))
        assert phases[2].stop_time - phases[2].start_time == 50.0  # 50 steps × 1 ms
        report = r.report("sleep_state", "hopfield")
        assert report.data.shape == (50, 100) and set(np.unique(report.data)) <= {-1, 1}
        assert np.allclose(np.diff(report.times), 1.0) and report.times[0] == phases[2].start_time
        weights = r.weights("J")
        assert weights.values.shape == (2, 100, 100) and list(weights.phases) == [0, 2]
        assert np.allclose(weights.values[1], weights.values[1].T)
        ev = r.evaluations()
        assert list(ev.phases) == [1, 3] and ev.metrics["overlap"].shape == (2, 1)
        resolved = yaml.safe_load(r.provenance("protocol"))
        assert resolved["model"]["neurons"] == 100 and resolved["seed"] == 1
        assert r.environment()["versions"]["torch"]
        assert set(r.arrays("sleep/2")) >= {"eigenvalues_before", "eigenvalues_after"}
    with h5py.File(out, "r") as f:  # independent reader: the SONATA parts
        mapping = f["reports/sleep_state/hopfield/mapping"]
        assert list(mapping["time"][:]) == [phases[2].start_time, phases[2].start_time + 50.0, 1.0]
        assert mapping["index_pointers"].shape == (101,)
        assert f["reports/sleep_state/hopfield/data"].attrs["units"] == "1"


def test_same_protocol_and_seed_give_identical_numbers(write_protocol, hopfield_protocol, tmp_path):
    a = run_file(write_protocol, hopfield_protocol, tmp_path, name="a.h5")
    b = run_file(write_protocol, hopfield_protocol, tmp_path, name="b.h5")
    c = run_file(write_protocol, hopfield_protocol, tmp_path, "seed=2", name="c.h5")
    with open_run(a) as ra, open_run(b) as rb, open_run(c) as rc:
        assert np.array_equal(ra.weights("J").values, rb.weights("J").values)
        assert np.array_equal(
            ra.report("sleep_state", "hopfield").data, rb.report("sleep_state", "hopfield").data
        )
        assert np.array_equal(
            ra.evaluations().metrics["overlap"], rb.evaluations().metrics["overlap"]
        )
        assert not np.array_equal(ra.weights("J").values, rc.weights("J").values)


def test_refuses_to_overwrite_and_validates_before_touching(
    write_protocol, hopfield_protocol, tmp_path, capsys
):
    path = write_protocol(hopfield_protocol)
    out = tmp_path / "r.h5"
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 0
    before = out.read_bytes()
    assert main(["run", str(path), "--output", str(out), "--quiet"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["run", str(path), "--output", str(out), "--overwrite", "--set", "seed=-1"]) == 2
    assert out.read_bytes() == before  # an invalid protocol never touches the old file
    assert (
        main(["run", str(path), "--output", str(out), "--overwrite", "--quiet", "--seed", "4"]) == 0
    )
    with open_run(out) as r:
        assert r.attrs["seed"] == 4


def test_output_placeholders_and_headline(
    write_protocol, hopfield_protocol, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    path = write_protocol(hopfield_protocol)
    assert main(["run", str(path), "--quiet", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "run file: hop_seed7.h5" in out and "after" in out and "overlap" in out
    assert (tmp_path / "hop_seed7.h5").exists()
    assert main(["info", "hop_seed7.h5"]) == 0
    info = capsys.readouterr().out
    assert "status complete" in info and "weights/J: 2 snapshots" in info and "overlap" in info


def test_exception_marks_file_failed_with_traceback(
    write_protocol, hopfield_protocol, tmp_path, monkeypatch
):
    from neurosleep.experiments.hopfield import HopfieldExperiment

    def broken(self, phase, progress):
        raise RuntimeError("sleep exploded")

    monkeypatch.setattr(HopfieldExperiment, "sleep", broken)
    path = write_protocol(hopfield_protocol)
    out = tmp_path / "failed.h5"
    with pytest.raises(RunFailed, match="run failed in phase 2: RuntimeError: sleep exploded"):
        run(load_protocol(path), output=out, progress=False)
    with open_run(out) as r:
        assert r.status == "failed"
        assert "sleep exploded" in r.provenance("traceback")
        assert [p.status for p in r.phases()] == ["complete", "complete", "failed"]
        assert r.evaluations().metrics["overlap"].shape == (1, 1)


@pytest.fixture
def long_run(write_protocol, hopfield_protocol, tmp_path):
    """A run in a child process whose sleep phase would last minutes; killed at teardown."""
    hopfield_protocol["schedule"][2]["sleep"].update(steps=200_000, block=20, t=10)
    path = write_protocol(hopfield_protocol)
    out = tmp_path / "long.h5"
    command = [sys.executable, "-m", "neurosleep.cli", "run", str(path), "--output", str(out)]
    proc = subprocess.Popen(
        [*command, "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_for_rows(out, rows: int, proc, timeout: float = 60.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            with h5py.File(out, "r", locking=False) as f:
                seen = f["reports/sleep_state/hopfield/data"].shape[0]
            if seen >= rows:
                return seen
        except (OSError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError("the run did not record in time")


def test_sigkill_mid_phase_leaves_a_readable_running_file(long_run):
    proc, out = long_run
    seen = wait_for_rows(out, 200, proc)
    proc.kill()
    proc.wait()
    with open_run(out) as r:
        assert r.status == "running"
        phases = r.phases()
        assert [p.status for p in phases] == ["complete", "complete", "running"]
        report = r.report("sleep_state", "hopfield")
        assert report.data.shape[0] >= seen and report.data.shape[0] % 20 == 0
        assert set(np.unique(report.data)) <= {-1, 1} and np.all(np.diff(report.times) == 1.0)
        assert r.evaluations().metrics["overlap"].shape == (1, 1)
        assert r.weights("J").values.shape[0] == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_run_and_marks_it_interrupted(long_run, sig):
    proc, out = long_run
    wait_for_rows(out, 100, proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "run interrupted; partial run file" in err and "Traceback" not in err
    with open_run(out) as r:
        assert r.status == "interrupted"
        assert r.phases()[-1].status == "interrupted"


def test_reader_errors_are_one_line(tmp_path):
    not_h5 = tmp_path / "x.h5"
    not_h5.write_text("hello")
    with pytest.raises(RunFileError, match="not a readable HDF5 file"):
        open_run(not_h5)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(RunFileError, match="not a neurosleep run file"):
        open_run(other)
    newer = tmp_path / "newer.h5"
    with h5py.File(newer, "w") as f:
        f.attrs.update({"format": "neurosleep-run", "format_version": 99})
    with pytest.raises(RunFileError, match="format 99, newer than this neurosleep reads"):
        open_run(newer)
    with pytest.raises(RunFileError, match="no such file"):
        open_run(tmp_path / "missing.h5")
