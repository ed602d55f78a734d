"""Up/Down states in the sleep of spiking run files (docs/results.md, NREM and REM stages).

For each run file, each sleep phase — each stage run of a staged phase — prints the number of
complete Up and Down states of network 0's population rate (10 ms bins, split at the phase's
mean rate, states under 50 ms joined to the one before: :func:`neurosleep.analysis.updown.
sleep_up_down`), their mean durations, and the alternation frequency.

    python benchmarks/up_down.py outputs/consolidation_nrem_rem_seed1.h5 --population exc
"""

from __future__ import annotations

import argparse

import numpy as np

from neurosleep.analysis.updown import sleep_up_down
from neurosleep.io.runfile import open_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--population", default="exc")
    parser.add_argument("--bin", type=float, default=10.0, help="ms")
    parser.add_argument("--min", type=float, default=50.0, help="ms")
    args = parser.parse_args()
    print("| run | sleep (stage) | Up states | Up (ms) | Down (ms) | alternation (Hz) |")
    print("|---|---|---|---|---|---|")
    for path in args.runs:
        with open_run(path) as run:
            for name, s in sleep_up_down(run, args.population, bin_ms=args.bin, min_ms=args.min):
                up = f"{np.mean(s.up_ms):.0f}" if s.up_ms.size else "–"
                down = f"{np.mean(s.down_ms):.0f}" if s.down_ms.size else "–"
                freq = "–" if np.isnan(s.frequency_hz) else f"{s.frequency_hz:.2f}"
                label = run.attrs.get("name")
                print(f"| {label} | {name} | {s.up_ms.size} | {up} | {down} | {freq} |")


if __name__ == "__main__":
    main()
