"""The fused kernel against an earlier one, interleaved in one process on one engine.

    OMP_NUM_THREADS=1 python benchmarks/kernel_ab.py --baseline REV [--model cuba_stdp]
        [--networks 32] [--repeats 7] [--ms 1000]

Loads ``neurosleep/engines/torch_fused.py`` as it is at git revision ``REV`` beside this
checkout's, builds one torch engine (``models/<model>.yaml`` at 4000 neurons, ``--networks``
networks) and runs ``--ms`` of it with each kernel in turn (the order alternating), ``--repeats``
times; prints each kernel's processor time per network per simulated second (median) and
their ratio. The rest of the engine (``engines/torch.py``: tables, state) is this checkout's for
both, so only the kernel's own changes are compared. Processor time, not wall time: on a shared
machine a waiting process does not accumulate it. The baseline's copy lives in a temporary
folder and compiles afresh.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from cuba_bench import SPIKES, Discard, PlasticTorch, load  # noqa: E402

from neurosleep.engines import torch_fused as engines_torch_fused  # noqa: E402

KERNEL = "neurosleep/engines/torch_fused.py"


def kernel_at(revision: str, folder: Path):
    """The kernel module as it is at ``revision`` (imported from a copy in ``folder``)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:{KERNEL}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = folder / f"torch_fused_{revision.replace('/', '_')}.py"
    path.write_text(source)
    module = load_module(f"baseline_{revision}", path)
    ours = inspect.signature(engines_torch_fused.run_networks.py_func)
    if inspect.signature(module.run_networks.py_func) != ours:
        sys.exit(
            f"kernel_ab: run_networks at {revision} takes other arguments than this checkout's; "
            "compare against a revision with the same ones"
        )
    return module


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def use(engine, kernel) -> None:
    """Make ``engine`` run ``kernel``: its rule and step constants rebuilt by that module (the
    STDP tables it builds kept per module)."""
    engine.kernel = kernel
    for rule in engine.rules:
        rule.kernel_tables = getattr(rule, f"_tables_{kernel.__name__}", None)
    engine.kernel_rules = kernel.kernel_rules(engine.rules, engine.batch, np.dtype(engine.dtype))
    for rule in engine.rules:
        setattr(rule, f"_tables_{kernel.__name__}", rule.kernel_tables)
    engine._neuron_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision of the other kernel")
    parser.add_argument("--model", default="cuba_stdp", help="cuba_stdp (plastic) or cuba")
    parser.add_argument("--networks", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ms", type=float, default=1000.0, help="simulated ms per run")
    parser.add_argument("--dtype", default="float64")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        kernels = {
            f"kernel at {args.baseline}": kernel_at(args.baseline, Path(folder)),
            "this checkout's kernel": load_module("current", ROOT / KERNEL),
        }
        engine = PlasticTorch(args.model, args.networks, dtype=args.dtype).engine
        for kernel in kernels.values():  # compile and warm up
            use(engine, kernel)
            engine.run(20.0, SPIKES, Discard())
        times: dict[str, list[float]] = {name: [] for name in kernels}
        for repeat in range(args.repeats):
            order = list(kernels.items())
            for name, kernel in order if repeat % 2 == 0 else order[::-1]:
                use(engine, kernel)
                start = time.process_time()
                engine.run(args.ms, SPIKES, Discard())
                seconds = time.process_time() - start
                times[name].append(seconds / args.networks / (args.ms / 1000.0))
    print(
        f"{args.model}, {args.networks} network(s), {args.dtype}, {args.ms:g} ms per run, "
        f"{args.repeats} runs each, processor time per network per simulated second; {load()}"
    )
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, t in times.items():
        runs = ", ".join(f"{x * 1e3:.1f}" for x in t)
        print(f"{name}: {medians[name] * 1e3:.2f} ms (runs: {runs})")
    base, this = medians.values()
    print(f"this checkout's kernel / the baseline's: {this / base:.3f}")


if __name__ == "__main__":
    main()
