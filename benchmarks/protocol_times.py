"""Whole-protocol wall times, each in a fresh process as a user runs it (issue 17's goals).

    python benchmarks/protocol_times.py                     # all three
    python benchmarks/protocol_times.py --only consolidation_sleep --repeats 3

- ``consolidation_sleep``: ``neurosleep run protocols/consolidation_sleep.yaml`` (one network;
  imports, validation, every phase, recall tests, the run file) — goal ≤ 3 s.
- ``consolidation table``: each condition of ``benchmarks/consolidation_table.py`` (no sleep,
  sleep, nightmares) with 10 networks in one torch batch and the table's overrides — goal
  ≤ 60 s per condition.
- ``split_mnist_sra``: ``protocols/split_mnist_sra.yaml``, one seed — goal ≤ 12 s.

Each case runs ``--repeats`` times (median printed) with ``--threads 1`` (``--threads 0``: torch's
own choice, ``neurosleep run``'s default, on every core; ``OMP_NUM_THREADS`` unset). Times are wall
seconds of the whole command and depend on what else runs: the load average is printed
beside each table, and comparisons belong to runs at similar load.

``--baseline DIR`` runs each case also with the code of another checkout (``DIR``, e.g. from
``git archive <commit> | tar -x -C DIR``), alternating with this one run by run, and prints
this checkout's times over the baseline's (processor time is the figure to compare on a shared
machine: a waiting process does not accumulate it).

Each checkout's package is byte-compiled first (:func:`byte_compiled`), as an installed one is:
the project's machines set ``PYTHONDONTWRITEBYTECODE=1``, under which every run compiled
neurosleep's ≈100 modules from source again (≈0.1 s of a run's processor time), which no
installation does (pip compiles at install; Python otherwise caches at the first import).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLE = ["record.spikes=none", "data.networks=10"]  # consolidation_table.py's overrides
CASES = {
    "consolidation_sleep": ("consolidation_sleep", [], 3.0),
    "table: no sleep (10 networks)": ("consolidation_no_sleep", TABLE, 60.0),
    "table: sleep (10 networks)": ("consolidation_sleep", TABLE, 60.0),
    "table: nightmares (10 networks)": ("consolidation_nightmares", TABLE, 60.0),
    "split_mnist_sra (one seed)": ("split_mnist_sra", [], 12.0),
}


def byte_compiled(root: Path) -> None:
    """Byte-compile checkout ``root``'s ``neurosleep`` package into its ``__pycache__`` folders
    (ignored by git), as pip does at install, whatever ``PYTHONDONTWRITEBYTECODE`` says."""
    command = [sys.executable, "-m", "compileall", "-q", str(root / "neurosleep")]
    subprocess.run(command, check=True, capture_output=True)


def wall(
    protocol: str, overrides: list[str], out: Path, threads: int, root: Path = ROOT
) -> tuple[float, float]:
    """(wall, processor) seconds of ``neurosleep run`` in a fresh process with ``threads`` torch
    threads (0: torch's default) and the code of checkout ``root`` (processor time: user +
    system of the process, which a busy machine inflates less than wall time)."""
    command = [sys.executable, "-m", "neurosleep.cli", "run", f"protocols/{protocol}.yaml"]
    command += ["--quiet", "--overwrite", "--output", str(out)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("OMP_NUM_THREADS", None)
    if threads:
        command += ["--threads", str(threads)]
        env["OMP_NUM_THREADS"] = str(threads)
    for item in overrides:
        command += ["--set", item]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)}\n{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="case names (prefixes) to run")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per run (0: torch's default)"
    )
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of other code, run alternately with this one"
    )
    args = parser.parse_args()
    roots = [ROOT] if args.baseline is None else [ROOT, args.baseline.resolve()]
    for root in roots:
        byte_compiled(root)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (protocol, overrides, goal) in CASES.items():
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            out = Path(tmp) / "run.h5"
            runs = [
                [wall(protocol, overrides, out, args.threads, root) for root in roots]
                for _ in range(args.repeats)
            ]
            load = os.getloadavg()[0]
            for root, times in zip(roots, zip(*runs, strict=True), strict=True):
                label = name if root == ROOT else f"{name} [baseline]"
                median, cpu = (float(np.median(x)) for x in zip(*times, strict=True))
                rows.append((label, median, cpu, goal, load))
                print(f"{label}: {median:.2f} s wall, {cpu:.2f} s processor (goal ≤ {goal:g} s); "
                      f"load {load:.2f}", flush=True)  # fmt: skip
            if args.baseline is not None:
                (_, wall_new, cpu_new, *_), (_, wall_old, cpu_old, *_) = rows[-2:]
                print(f"{name}: this / baseline: processor time {cpu_new / cpu_old:.3f}, "
                      f"wall {wall_new / wall_old:.3f}")  # fmt: skip
    threads = f"{args.threads} torch thread(s)" if args.threads else "torch's default threads"
    print(f"\nseconds of the whole command, median of {args.repeats}, {threads}")
    print("| protocol | wall s | processor s | goal s | load (1 min) |\n|---|---|---|---|---|")
    for name, median, cpu, goal, load in rows:
        print(f"| {name} | {median:.2f} | {cpu:.2f} | ≤ {goal:g} | {load:.2f} |")
    print("load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
