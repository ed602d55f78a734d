"""NREM/REM stages for the mlp kind: ACC, BWT, FWT, learning accuracy and time per condition,
and paired differences between conditions over the same seeds (docs/results.md, "NREM and REM
for the mlp").

Reads run files of the task-incremental split-MNIST protocols ``split_mnist_task_nrem_rem``,
``split_mnist_task_nrem``, ``split_mnist_task_rem`` and the no-sleep
``split_mnist_task_il_finetune`` (run with ``--set data.train_per_class=200``), one per seed;
a REM-only run whose dreams are ``source: noise`` is its own condition::

    python benchmarks/stages_mlp.py outputs/stages_mlp/*.h5

FWT is Lopez-Paz & Ranzato's (GEM), as WSCL's code (mammoth's ``forward_transfer``) computes it:
the mean over tasks k ≥ 2 of the accuracy on task k before its wake (after the previous task's
sleep) minus the untrained network's ("at start" row). LA (learning accuracy) is the mean over
tasks of the accuracy on task k in the last test after its wake and sleep, R[k, k]. Time: the sum
of the phases' wall seconds of each run (runs were two at a time on a shared machine: compare
conditions, not machines).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np

from neurosleep.analysis.compare import load
from neurosleep.analysis.stats import mean_sem
from neurosleep.analysis.summary import accuracy_matrix
from neurosleep.io.runfile import open_run

CONDITIONS = {
    "split_mnist_task_il_finetune": "no sleep",
    "split_mnist_task_nrem": "NREM only",
    "split_mnist_task_rem": "REM only",
    "split_mnist_task_nrem_rem": "NREM + REM",
}
NOISE = "REM only (noise dreams)"
ORDER = [*CONDITIONS.values(), NOISE]
PAIRS = [
    ("NREM + REM", "NREM only"),
    ("NREM + REM", "no sleep"),
    ("REM only", "no sleep"),
    ("REM only", "NREM only"),
    ("NREM only", "no sleep"),
    (NOISE, "no sleep"),
    (NOISE, "REM only"),
]
MEASURES = ["ACC", "BWT", "FWT", "LA", "time (s)"]


def measures(path: str) -> tuple[str, int, dict[str, float]]:
    """The condition, seed and measures of one run file."""
    result = load(path)
    final = result.final["accuracy"]
    with open_run(path) as run:
        phases = run.phases()
        R, _ = accuracy_matrix(phases, run.evaluations(), "accuracy", len(result.task_names))
        seconds = run.wall_seconds()
        noise = "source: noise" in (run.provenance("protocol") or "")
    return (
        NOISE if noise else CONDITIONS[result.name],
        int(result.seed),
        {
            "ACC": final["ACC"],
            "BWT": final["BWT"],
            "FWT": final["FWT"],
            "LA": float(np.mean(np.diag(R[1:]))),
            "time (s)": seconds,
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run files (one per condition and seed)")
    args = parser.parse_args()
    table: dict[str, dict[int, dict[str, float]]] = defaultdict(dict)
    for path in args.runs:
        condition, seed, values = measures(path)
        table[condition][seed] = values
    print("| condition | n | " + " | ".join(MEASURES) + " |")
    print("|---|---|" + "---|" * len(MEASURES))
    for condition in ORDER:
        if condition not in table:
            continue
        runs = table[condition]
        cells = [mean_sem([runs[s][m] for s in sorted(runs)]) for m in MEASURES]
        print(f"| {condition} | {len(runs)} | " + " | ".join(cells) + " |")
    print()
    print("paired by seed: mean ± SEM of the difference (higher in n of N seeds)")
    print("| difference | " + " | ".join(MEASURES[:-1]) + " |")
    print("|---|" + "---|" * (len(MEASURES) - 1))
    for a, b in PAIRS:
        if a not in table or b not in table:
            continue
        seeds = sorted(set(table[a]) & set(table[b]))
        cells = []
        for m in MEASURES[:-1]:
            d = [table[a][s][m] - table[b][s][m] for s in seeds]
            higher = sum(x > 0 for x in d)
            cells.append(f"{mean_sem(d)} ({higher}/{len(d)})")
        print(f"| {a} − {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
