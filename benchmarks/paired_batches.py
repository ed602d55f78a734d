"""Final-test full recall of a sleep condition minus its no-sleep control, network by network,
pooled over several batches (docs/results.md, "A robustness search for the joint
configuration"). The i-th ``--sleep`` run file is paired with the i-th ``--control`` one (the
same seed and networks); per batch and pooled it prints, per memory, mean ± SEM of the
difference and how many networks are higher, lower and equal:

    python benchmarks/paired_batches.py \
        --control outputs/j7/consolidation_joint_no_sleep_torch_j7_base_s1.h5 \
                  outputs/j7/consolidation_joint_no_sleep_torch_j7_base_s21.h5 \
        --sleep outputs/j7/consolidation_joint_sleep_torch_j7_t15_s1.h5 \
                outputs/j7/consolidation_joint_sleep_torch_j7_t15_s21.h5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from consolidation_table import memory_names, recall_rows

from neurosleep.analysis.stats import mean_sem


def line(label: str, d: np.ndarray, names: list[str]) -> str:
    """One row: per memory, mean ± SEM of ``d`` [networks × memories] and the counts."""
    cells = []
    for j in range(len(names)):
        m = mean_sem(d[:, j])
        cells.append(
            f"{m.mean:+.3f} ± {m.sem:.3f} (higher {(d[:, j] > 0).sum()}, "
            f"lower {(d[:, j] < 0).sum()}, equal {(d[:, j] == 0).sum()} of {len(d)})"
        )
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--control", nargs="+", type=Path, required=True)
    parser.add_argument("--sleep", nargs="+", type=Path, required=True)
    args = parser.parse_args()
    if len(args.control) != len(args.sleep):
        raise SystemExit(
            f"{len(args.sleep)} --sleep run files for {len(args.control)} --control ones"
        )
    names = memory_names(args.control[0])
    print("| batch | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    ds = []
    for control, sleep in zip(args.control, args.sleep, strict=True):
        d = recall_rows([sleep])[-1]["full_recall"] - recall_rows([control])[-1]["full_recall"]
        ds.append(d)
        print(line(sleep.name, d, names))
    print(line("pooled", np.concatenate(ds), names))


if __name__ == "__main__":
    main()
