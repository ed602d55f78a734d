"""``neurosleep sweep``: a thin front of a grid study (seeds × --vary values), resumable."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from neurosleep.cli import main
from neurosleep.errors import SpecError, StudyError
from neurosleep.io import open_run
from neurosleep.study.spec import sweep_study


def rows(folder):
    db = sqlite3.connect(folder / "ledger.sqlite")
    try:
        return db.execute(
            "SELECT label, seed, state, attempts, path FROM runs ORDER BY rowid"
        ).fetchall()
    finally:
        db.close()


def test_sweep_runs_seeds_by_values_once_each(write_protocol, hopfield_protocol, tmp_path, capsys):
    path = write_protocol(hopfield_protocol)
    folder = tmp_path / "sweep"
    args = ["sweep", str(path), "--seeds", "3", "4", "--vary", "schedule.dream.t=1,100"]
    args += ["--set", "data.patterns=5", "--folder", str(folder)]
    assert main(args) == 0
    assert "4 complete, 0 failed, 0 re-run" in capsys.readouterr().out
    done = rows(folder)
    assert sorted((label, seed) for label, seed, *_ in done) == [
        ("hop_t1", 3),
        ("hop_t1", 4),
        ("hop_t100", 3),
        ("hop_t100", 4),
    ]
    with open_run(done[0][4]) as a, open_run(done[1][4]) as b:
        assert (a.attrs["seed"], b.attrs["seed"]) == (3, 4)
        assert a.evaluations().metrics["overlap"].shape[1] == 1
        assert not np.array_equal(a.weights("J").values, b.weights("J").values)
    assert main(args) == 0  # again: every run is complete, nothing is redone
    assert [r[3] for r in rows(folder)] == [1, 1, 1, 1]
    # another sweep into the same folder is refused rather than mixed in
    with pytest.raises(StudyError, match="holds another sweep"):
        sweep_study(path, [5], [], [], folder)


def test_sweep_validates_every_variant_first(write_protocol, hopfield_protocol, tmp_path, capsys):
    path = write_protocol(hopfield_protocol)
    folder = tmp_path / "sweep"
    with pytest.raises(SpecError, match="value 0.9: .*less than or equal to 0.5"):
        sweep_study(path, [1], ["schedule.before.cue_noise=0.1,0.9"], [], folder)
    assert not (folder / "ledger.sqlite").exists()


@pytest.mark.slow
def test_sweep_reruns_a_run_killed_mid_write(write_protocol, hopfield_protocol, tmp_path, capsys):
    """A run killed while writing leaves a `running` file with a stale lock at its path: the
    sweep moves it aside (kept), runs it again, counts it as re-run, and exits 0."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    slow = dict(hopfield_protocol, model={"kind": "hopfield", "name": "h300", "neurons": 300})
    slow["schedule"] = [
        {"wake": {"name": "store"}},
        {"sleep": {"name": "dream", "kind": "dreaming", "t": 5, "steps": 600, "block": 10}},
        {"test": {"name": "after"}},
    ]
    path = write_protocol(slow)
    folder = tmp_path / "sweep"
    study = sweep_study(path, [1], [], [], folder)
    (planned,) = [study.run(study.base(0), 1, "test", "search")]
    target = folder / "runs" / f"{planned.key}.h5"
    root = Path(__file__).resolve().parents[1]
    killed = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "neurosleep.cli",
            "run",
            str(path),
            "-q",
            "--threads",
            "1",
            *(f"--set={o}" for o in planned.overrides),
            "--output",
            str(target),
        ],
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    try:
        end = time.monotonic() + 240
        while not target.exists() and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(1.0)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
    finally:
        killed.kill()
    with open_run(target) as partial:
        assert partial.status == "running"
    assert main(["sweep", str(path), "--seeds", "1", "--folder", str(folder)]) == 0
    assert "1 complete, 0 failed, 1 re-run" in capsys.readouterr().out
    db = sqlite3.connect(folder / "ledger.sqlite")
    (aside,) = db.execute("SELECT aside FROM runs").fetchone()
    db.close()
    (moved,) = json.loads(aside)
    with open_run(moved) as kept, open_run(target) as done:
        assert (kept.status, done.status) == ("running", "complete")


def test_output_template_in_set_is_text_and_a_sweep_refuses_it(
    write_protocol, hopfield_protocol, tmp_path
):
    """``--set output={name}_s{seed}.h5``: YAML would read ``{name}`` as a mapping; the output
    template is text. A sweep writes its runs into its folder, so it refuses an output (before
    writing anything: the corrected command then runs in the same folder)."""
    from neurosleep.protocol import load_protocol

    path = write_protocol(hopfield_protocol)
    for text, expected in [
        ("{name}_s{seed}.h5", "hop_s7.h5"),
        ("{name}", "hop"),
        ('"{name}-quoted.h5"', "hop-quoted.h5"),
        ("runs/{name}.h5", "runs/hop.h5"),
    ]:
        protocol = load_protocol(path, [f"output={text}", "seed=7"])
        assert str(protocol.output).endswith(expected), (text, protocol.output)
    # other keys still read YAML, and bad YAML is an error naming the --set
    with pytest.raises(SpecError, match=r"--set name=\{x: name: value: not valid YAML"):
        load_protocol(path, ["name={x"])
    folder = tmp_path / "sweep"
    with pytest.raises(SpecError, match=r"--set output=\{name\}_s\{seed\}\.h5: output: a study"):
        sweep_study(path, [1], [], ["output={name}_s{seed}.h5"], folder)
    with pytest.raises(SpecError, match=r"--vary schedule\.dream\.t=1,\{x: .*not valid YAML"):
        sweep_study(path, [1], ["schedule.dream.t=1,{x"], [], folder)
    with pytest.raises(SpecError, match=r"value 0\.9: .*less than or equal to 0\.5"):
        sweep_study(path, [1], ["schedule.before.cue_noise=0.1,0.9"], [], folder)
    study = sweep_study(path, [1], ["schedule.dream.t=1,10"], ["data.patterns=5"], folder)
    assert [c.label for c in study.grid()] == ["hop_t1", "hop_t10"]
