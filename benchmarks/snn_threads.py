"""Processor time of an ``snn`` run with torch's default threads against one thread.

Runs ``neurosleep run PROTOCOL`` in fresh processes, alternately with ``--threads 1`` and with
torch's default thread count (one per core), for each network count; prints each arm's median
wall and processor time (user + system of the process), the ratio default / one thread, and
whether the two arms' run files are equal (``compare_runfiles``: the thread count must not
change a number). On a busy machine the wall times are the scheduler's; the processor times
say what the threads cost.

    python benchmarks/snn_threads.py --protocol consolidation_sleep --networks 1 3 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_runfiles import compare_runfiles  # noqa: E402

ARMS = {"1 thread": ["--threads", "1"], "default": []}


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and processor seconds (user + system) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="consolidation_sleep")
    parser.add_argument("--networks", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for n in args.networks:
            times: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
            for _ in range(args.repeats):
                for arm, flags in ARMS.items():
                    out = Path(folder) / f"{arm.replace(' ', '_')}_{n}.h5"
                    command = [sys.executable, "-m", "neurosleep.cli", "run", args.protocol]
                    command += ["--set", f"data.networks={n}", "-q", "--overwrite"]
                    times[arm].append(timed([*command, "--output", str(out), *flags]))
            median = {
                arm: [statistics.median(t[k] for t in runs) for k in (0, 1)]
                for arm, runs in times.items()
            }
            ratio = median["default"][1] / median["1 thread"][1]
            differ = compare_runfiles(
                *(Path(folder) / f"{a.replace(' ', '_')}_{n}.h5" for a in ARMS)
            )
            print(
                f"{args.protocol}, {n} network(s), median of {args.repeats}: "
                + "; ".join(
                    f"{arm} {w:.2f} s wall, {c:.2f} s processor" for arm, (w, c) in median.items()
                )
                + f"; processor default / 1 thread: {ratio:.2f}x"
                + f"; run files {'equal' if not differ else f'differ ({len(differ)})'}"
            )
    print(f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
