"""Run every shipped protocol, shortened, into one folder: the before/after check of a refactor.

    PYTHONPATH=. python benchmarks/regression_runs.py OUT_DIR [--only NAME ...]
    python benchmarks/compare_runfiles.py BEFORE_DIR AFTER_DIR

Each protocol runs with ``--set`` overrides that keep its structure (every phase, every sleep
algorithm, the replay methods) but shorten it to seconds on one CPU thread: spiking phases
last at most :data:`SNN_MS` (sleep :data:`SNN_SLEEP_MS`), MNIST runs keep
:data:`PER_CLASS` training samples per class, sleeps :data:`SRA_STEPS` steps, Adam phases
:data:`ITERATIONS` iterations; permuted MNIST keeps 3 tasks; the large consolidation runs on
the CPU. Extra variants exercise the Brian2 paths (``*_brian2``). Prints each run's wall time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNN_MS = {"wake": 600, "test": 300}
SNN_SLEEP_MS = 1000
PER_CLASS = 70
SRA_STEPS = 600
ITERATIONS = 40
EPOCHS = 2


def _phase_overrides(key: str, kind: str, body: dict, model_kind: str) -> list[str]:
    out = []
    if model_kind == "snn" and "duration" in body:
        ms = SNN_SLEEP_MS if kind == "sleep" else SNN_MS[kind]
        out.append(f"{key}.duration={ms} ms")
    if model_kind == "mlp":
        if kind == "sleep" and "steps" in body:
            out.append(f"{key}.steps={SRA_STEPS}")
        if kind == "wake":
            if "iterations" in body:
                out.append(f"{key}.iterations={ITERATIONS}")
            if "epochs" in body:
                out.append(f"{key}.epochs={min(EPOCHS, body['epochs'])}")
            replay = body.get("replay") or {}
            if "iterations" in replay:
                out.append(f"{key}.replay.iterations={ITERATIONS}")
    return out


def overrides(path: Path) -> list[str]:
    """The ``--set`` overrides that shorten protocol ``path``."""
    protocol = yaml.safe_load(path.read_text())
    model = protocol["model"]
    kind = (
        model["kind"]
        if isinstance(model, dict)
        else yaml.safe_load((path.parent / model).read_text())["kind"]
    )
    out = []
    for i, entry in enumerate(protocol["schedule"]):
        ((name, body),) = entry.items()
        if name == "repeat":
            for j, inner in enumerate(body["phases"]):
                ((k, b),) = inner.items()
                out += _phase_overrides(f"schedule.{i}.repeat.phases.{j}.{k}", k, b, kind)
        else:
            out += _phase_overrides(f"schedule.{i}.{name}", name, body or {}, kind)
    if kind == "mlp":
        out.append(f"data.train_per_class={PER_CLASS}")
        if protocol["data"].get("stream") == "permuted":
            out.append("data.tasks=3")
    if protocol.get("device", "cpu") != "cpu":
        out.append("device=cpu")
    return out


VARIANTS = {  # extra runs: name -> (protocol, extra overrides)
    "consolidation_sleep_brian2": ("consolidation_sleep", ["engine=brian2"]),
    "split_mnist_sra_brian2": (
        "split_mnist_sra",
        [
            "data.classes_per_task=5",
            "schedule.1.repeat.phases.sleep.engine=brian2",
            "schedule.1.repeat.phases.sleep.steps=60",
        ],
    ),
}


def runs() -> dict[str, tuple[Path, list[str]]]:
    out = {}
    for path in sorted((ROOT / "protocols").glob("*.yaml")):
        out[path.stem] = (path, overrides(path))
    for name, (base, extra) in VARIANTS.items():
        path = ROOT / "protocols" / f"{base}.yaml"
        out[name] = (path, overrides(path) + extra)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the run files (must not hold them)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, (path, sets) in runs().items():
        if args.only and name not in args.only:
            continue
        command = [
            sys.executable,
            "-m",
            "neurosleep.cli",
            "run",
            str(path),
            "--quiet",
            "--threads",
            "1",
            "--output",
            str(args.out / f"{name}.h5"),
        ]
        for s in sets:
            command += ["--set", s]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        status = "ok" if result.returncode == 0 else f"FAILED ({result.returncode})"
        print(f"{name:<40} {wall:7.1f} s  {status}", flush=True)
        if result.returncode:
            failed += 1
            print(result.stderr[-2000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
