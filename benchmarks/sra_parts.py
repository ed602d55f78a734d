"""Where a split MNIST SRA run spends its processor time, part by part (issue 17).

    python benchmarks/sra_parts.py                       # this checkout
    python benchmarks/sra_parts.py --baseline /tmp/old   # and another checkout's code, alternately

Runs ``neurosleep run protocols/split_mnist_sra.yaml --threads 1`` in a fresh process per run
with timers (``time.process_time``, which a waiting process does not accumulate) around the
experiment's phases and the functions inside them; prints the median of ``--repeats`` runs per
part. A part "a / b" is inside part "a". "imports" is this script's start up to the command
(torch, neurosleep); numba's import is counted where it happens (the first dropout mask or the
first sleep). The run file is the protocol's, bit for bit: the timers only wrap functions.
Each checkout is byte-compiled first, as in ``protocol_times.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from protocol_times import byte_compiled

ROOT = Path(__file__).resolve().parents[1]
START = time.process_time()
# (part, module, attribute path) of the functions timed, in the order printed; a part named
# "a / b" is inside part "a" (its time is part of a's)
PARTS = [
    ("experiment init (data, network)", "neurosleep.experiments.ann", "ANNExperiment.__init__"),
    ("wake", "neurosleep.experiments.ann", "ANNExperiment.wake"),
    ("wake / backward", "torch", "Tensor.backward"),
    ("wake / SGD steps", "neurosleep.experiments.ann_network", "SGD.step"),
    ("forward passes (wake and test)", "neurosleep.experiments.ann_network", "MLP.forward_pre"),
    ("forward passes / dropout masks", "neurosleep.experiments.ann_network", "_dropout"),
    ("sleep", "neurosleep.experiments.ann", "ANNExperiment.sleep"),
    ("sleep / activations (normalisation)", "neurosleep.experiments.ann_network",
     "MLP.activations"),
    ("sleep / SRA network", "neurosleep.sleep.sra", "sra"),
    ("sleep / SRA network / steps in torch", "neurosleep.engines.sra", "_through"),
    ("test", "neurosleep.experiments.ann", "ANNExperiment.test"),
    ("numba import (first dropout mask or sleep)", "neurosleep.imports", "import_numba"),
]  # fmt: skip
COMMAND = "command (phases, validation, run file)"


def _timed(label: str, totals: dict, function):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            totals[label] += time.process_time() - start

    return timed


def measure(output: Path) -> dict[str, float]:
    """Processor seconds per part of one run, in this process (the code on ``sys.path``)."""
    import importlib

    from neurosleep import cli

    totals: dict[str, float] = defaultdict(float)
    for label, module, path in PARTS:
        owner = importlib.import_module(module)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, _timed(label, totals, getattr(owner, name)))
    totals["imports (torch, neurosleep)"] = time.process_time() - START
    start = time.process_time()
    argv = ["run", "protocols/split_mnist_sra.yaml", "--threads", "1", "--quiet", "--overwrite"]
    cli.main([*argv, "--output", str(output)])
    totals[COMMAND] = time.process_time() - start
    totals["total"] = time.process_time() - START
    return dict(totals)


def runs(root: Path, repeats: int, output: Path) -> list[dict[str, float]]:
    """``repeats`` runs of :func:`measure` in fresh processes with the code of ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, __file__, "--measure", str(output)]
    done = [subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
            for _ in range(repeats)]  # fmt: skip
    failed = [d.stderr[-2000:] for d in done if d.returncode]
    if failed:
        raise RuntimeError(failed[0])
    return [json.loads(d.stdout.splitlines()[-1]) for d in done]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", type=Path, help="another checkout, run alternately")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # one run, JSON out
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    roots = [ROOT] if args.baseline is None else [ROOT, args.baseline.resolve()]
    for root in roots:
        byte_compiled(root)  # as protocol_times.py: as an installed package is
    with tempfile.TemporaryDirectory() as tmp:
        results = [[runs(root, 1, Path(tmp) / "run.h5")[0] for root in roots]
                   for _ in range(args.repeats)]  # fmt: skip
    labels = ["imports (torch, neurosleep)", COMMAND, *(label for label, *_ in PARTS), "total"]
    both = len(roots) > 1
    print(f"median of {args.repeats}, 1 torch thread; load average {os.getloadavg()[0]:.2f}")
    print("| part | processor s |" + (" baseline s |\n|---|---|---|" if both else "\n|---|---|"))
    for label in labels:
        cells = [np.median([run[i].get(label, 0.0) for run in results]) for i in range(len(roots))]
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
