"""SRA sleep on the torch and Brian2 engines over seeds: accuracy after every sleep, and ACC.

Runs ``protocols/split_mnist_sra.yaml`` (the paper's network, split MNIST 5k, 12 epochs of wake
per task, torch) for each seed in three configurations that differ only in the sleep loop:
``torch32`` (the protocol as shipped, float32), ``torch64`` (float64) and ``brian2`` (the same
sleep network as Brian2 objects, numpy code generation, Brian2's float64, and ``dtype:
float64`` so that its input spikes are those of ``torch64``: the spikes are drawn in the
sleep's dtype). The sleep is shortened to
``--sleep`` steps (default ``3000 + 1000*(k-1)``, a fifth of the paper's) because the Brian2
network takes ≈ 1–2 ms per step here. Wake training and input spikes are identical across
configurations until a sleep's outcome differs.

Prints, per seed, the mean test accuracy over all tasks after each sleep and the final ACC of
each configuration, then mean ± SEM over seeds and the mean absolute differences.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sra_engines.py [--seeds 11 12 13 14 15]``
(``--reuse`` reads the run files of an earlier call instead of running).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from neurosleep.analysis.stats import mean_sem
from neurosleep.io.runfile import open_run
from neurosleep.protocol import load_protocol
from neurosleep.runner import run

ROOT = Path(__file__).resolve().parents[1]
SLEEP = "schedule.1.repeat.phases.sleep"
CONFIGS = {
    "torch32": [],
    "torch64": [f"{SLEEP}.dtype=float64"],
    "brian2": ["engine=brian2", f"{SLEEP}.dtype=float64"],
}


def after_sleep(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean accuracy over all tasks after each sleep [task], spikes per sleep [task × layer]."""
    with open_run(path) as r:
        names = {p.index: p.name for p in r.phases()}
        ev = r.evaluations()
        rows = [i for i, p in enumerate(ev.phases) if names[int(p)] == "after_sleep"]
        accuracy = ev.metrics["accuracy"][rows].mean(axis=1)
        sleeps = [p.index for p in r.phases() if p.kind == "sleep"]
        spikes = np.array([r.arrays(f"sleep/{i}")["spike_count"] for i in sleeps])
    return accuracy, spikes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    parser.add_argument("--sleep", default="3000 + 1000*(k-1)", help="sleep steps (expression)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/engines")
    parser.add_argument("--reuse", action="store_true", help="read earlier run files")
    args = parser.parse_args()

    results: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {c: {} for c in CONFIGS}
    for seed in args.seeds:
        for config, overrides in CONFIGS.items():
            path = args.out / f"sra_{config}_seed{seed}.h5"
            if not args.reuse:
                protocol = load_protocol(
                    ROOT / "protocols/split_mnist_sra.yaml",
                    [f"seed={seed}", f"{SLEEP}.steps={args.sleep}", *overrides],
                )
                run(protocol, output=path, overwrite=True, progress=False)
            results[config][seed] = after_sleep(path)

    print(f"sleep steps: {args.sleep}; mean test accuracy over all tasks after sleep k")
    print("seed  config   " + " ".join(f"k={k:<5d}" for k in range(1, 6)) + " spikes per sleep")
    for seed in args.seeds:
        for config in CONFIGS:
            accuracy, spikes = results[config][seed]
            cells = " ".join(f"{a:7.3f}" for a in accuracy)
            print(f"{seed:4d}  {config:8s} {cells}  {spikes.tolist()}")
    print("\nfinal ACC, mean ± SEM over seeds:")
    final = {c: [float(results[c][s][0][-1]) for s in args.seeds] for c in CONFIGS}
    for config, values in final.items():
        mean, sem, _ = mean_sem(values)
        print(f"  {config:8s} {mean:.4f} ± {sem:.4f}")
    for a, b in (("torch64", "brian2"), ("torch32", "brian2"), ("torch32", "torch64")):
        diffs = [abs(x - y) for x, y in zip(final[a], final[b], strict=True)]
        first = [
            abs(float(results[a][s][0][0] - results[b][s][0][0])) for s in args.seeds
        ]  # after the first sleep
        print(
            f"  |{a} − {b}|: final ACC mean {statistics.mean(diffs):.4f}, max {max(diffs):.4f}; "
            f"after sleep 1 mean {statistics.mean(first):.4f}, max {max(first):.4f}"
        )


if __name__ == "__main__":
    main()
