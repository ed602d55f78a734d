"""Overhead of `neurosleep study run` against the same runs one by one, and the Dask speed-up.

Three timings of the same CPU-bound runs (Hopfield networks, one torch thread each), all in this
process's run of the script:

1. baseline: every run's protocol resolved and run with ``neurosleep.runner.run``, one after
   another (what a shell loop of ``neurosleep run`` does, without each command's import time);
2. ``study run --workers 1``: the same runs through the study driver in this process (ledger,
   verification of every run file, metrics read back);
3. ``study run --workers 2``: the same runs on a 2-process Dask LocalCluster (its start-up
   included).

Prints the wall times and the ratios (overhead of 2 over 1; speed-up of 3 over 2), and the mean
wall time of one run as the ledger recorded it in 2 and in 3 (what cluster start-up and the
workers' contention cost, apart).

    python benchmarks/study_overhead.py [--runs 8] [--neurons 400] [--steps 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from neurosleep.protocol import load_protocol
from neurosleep.runner import run
from neurosleep.study.driver import run_study
from neurosleep.study.ledger import Ledger
from neurosleep.study.search import search_runs
from neurosleep.study.spec import load_study


def write_study(folder: Path, runs: int, neurons: int, steps: int) -> Path:
    protocol = {
        "format_version": 1,
        "name": "bench",
        "seed": 1,
        "model": {"kind": "hopfield", "name": f"h{neurons}", "neurons": neurons},
        "engine": "torch",
        "device": "cpu",
        "data": {"patterns": int(0.3 * neurons)},
        "record": {"weights": False, "sleep_states": False},
        "schedule": [
            {"wake": {"name": "store"}},
            {"sleep": {"name": "dream", "kind": "dreaming", "t": 10, "steps": steps}},
            {"test": {"name": "after"}},
        ],
    }
    (folder / "p.yaml").write_text(yaml.safe_dump(protocol, sort_keys=False))
    study = {
        "format_version": 1,
        "name": "bench",
        "protocol": "p.yaml",
        "seeds": list(range(1, runs // 2 + 1)),
        "select_on": "test",
        "objective": {"metric": "overlap"},
        "space": {"schedule.dream.t": {"values": [5, 10]}},
        "folder": str(folder / "unused"),
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def mean_wall(folder: Path) -> float:
    ledger = Ledger(folder, readonly=True)
    try:
        walls = [row.wall_s for row in ledger.rows()]
    finally:
        ledger.close()
    return sum(walls) / len(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs (even: 2 values × runs/2 seeds)")
    parser.add_argument("--neurons", type=int, default=400)
    parser.add_argument("--steps", type=int, default=300, help="dreaming steps per run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_study(tmp, args.runs, args.neurons, args.steps)
        study = load_study(path, tmp / "s1")
        runs = search_runs(study, study.grid())

        start = time.perf_counter()
        for i, planned in enumerate(runs):
            overrides = [*planned.overrides, f"output={tmp / 'loop' / f'{i}.h5'}"]
            run(load_protocol(planned.protocol, overrides), progress=False)
        loop = time.perf_counter() - start

        start = time.perf_counter()
        one = run_study(study, workers=1)
        serial = time.perf_counter() - start

        start = time.perf_counter()
        two = run_study(load_study(path, tmp / "s2"), workers=2)
        parallel = time.perf_counter() - start
        per_run = [mean_wall(tmp / "s1"), mean_wall(tmp / "s2")]
    assert one.ok and two.ok, (one, two)
    print(f"{len(runs)} runs: Hopfield N = {args.neurons}, {args.steps} dreaming steps each")
    print(f"one by one (runner.run loop):   {loop:7.2f} s")
    print(f"study run --workers 1:          {serial:7.2f} s   overhead {serial / loop - 1:+.1%}")
    print(f"study run --workers 2 (Dask):   {parallel:7.2f} s   speed-up {serial / parallel:.2f}x")
    print(
        f"mean wall time of one run (ledger): {per_run[0]:.2f} s in-process, "
        f"{per_run[1]:.2f} s in a Dask worker (2 at once)"
    )


if __name__ == "__main__":
    main()
