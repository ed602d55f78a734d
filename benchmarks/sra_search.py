"""Hyperparameter search for an SRA protocol on a validation split of the training data.

Runs a protocol (default ``protocols/split_mnist_sra.yaml``) once per configuration and
development seed with ``data.validation`` set (a seeded stratified share of the *training*
set held out; the tests evaluate on it and the run drops the test set), and prints the
configurations ranked by the mean validation ACC over the seeds (± SEM).

Configurations: the base (the protocol with ``--fixed`` overrides), then, one at a time, every
value of every ``--vary KEY VALUE...`` and every factor of every ``--scale KEY FACTOR...``
(``--product``: every combination instead). ``KEY`` is a ``--set`` path; ``sleep.X`` and
``wake.X`` are short for the phases of the protocol's repeat block
(``schedule.<i>.repeat.phases.<phase name>.X``). ``--scale`` multiplies a number or a list of
numbers: the value the protocol sets, else the sleep algorithm's default (``sleep.beta 0.5``
halves the three thresholds). Values are YAML, as for ``neurosleep run --set``.

Each run is a separate ``neurosleep run`` process (``OMP_NUM_THREADS=1``, ``nice``), ``--jobs``
at a time; run files go to ``--out`` named by a hash of their overrides, so a repeated call
reuses finished runs (``--rerun`` runs them again). The seeds the results table reports
(11–15) are refused. Example (the searches behind the ``_tuned`` protocols are in
docs/results.md)::

    .venv/bin/python benchmarks/sra_search.py --seeds 1 2 3 --jobs 2 \\
        --scale sleep.alpha_scale 0.5 2 --scale sleep.beta 0.5 1.5 --vary wake.epochs 16
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import yaml

from neurosleep.io.runfile import open_run
from neurosleep.sleep import SLEEP

ROOT = Path(__file__).resolve().parents[1]
REPORTED_SEEDS = frozenset(range(11, 16))  # docs/results.md: never tune on them
Override = tuple[str, str]  # (--set key, YAML value)


def repeat_block(protocol: Path) -> tuple[str, list[dict]]:
    """``schedule.<i>.repeat.phases`` and those phases (the protocol's first repeat block)."""
    schedule = yaml.safe_load(protocol.read_text())["schedule"]
    for i, item in enumerate(schedule):
        if "repeat" in item:
            return f"schedule.{i}.repeat.phases", item["repeat"]["phases"]
    raise SystemExit(f"{protocol}: no repeat block in the schedule")


def expand(key: str, protocol: Path) -> str:
    """``sleep.X`` / ``wake.X`` → ``schedule.<i>.repeat.phases.<phase name>.X``."""
    head, _, rest = key.partition(".")
    if head not in ("sleep", "wake"):
        return key
    prefix, phases = repeat_block(protocol)
    index, phase = next((i, p[head]) for i, p in enumerate(phases) if head in p)
    return f"{prefix}.{phase.get('name', index)}.{rest}"


def current_value(protocol: Path, key: str):
    """The value of ``sleep.X`` / ``wake.X`` / a dotted key in the protocol file, else (sleep)
    the sleep algorithm's default."""
    head, _, rest = key.partition(".")
    if head in ("sleep", "wake"):
        phase = next(p[head] for p in repeat_block(protocol)[1] if head in p)
        if rest in phase:
            return phase[rest]
        if head == "sleep":
            return SLEEP.get(phase["kind"]).Params.model_fields[rest].default
        raise SystemExit(f"--scale {key}: the protocol sets no {rest!r}")
    node = yaml.safe_load(protocol.read_text())
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def scaled(value, factor: float) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v * factor:.6g}" for v in value) + "]"
    if isinstance(value, (int, float)):
        return f"{value * factor:.6g}"
    raise SystemExit(f"--scale: {value!r} is not a number or a list of numbers")


def configurations(args) -> list[tuple[str, list[Override]]]:
    """(label, overrides) of every configuration: base first."""
    options: list[list[tuple[str, Override]]] = []
    for key, *values in args.vary:
        options.append([(f"{key}={v}", (expand(key, args.protocol), v)) for v in values])
    for key, *factors in args.scale:
        value = current_value(args.protocol, key)
        options.append(
            [(f"{key}×{f}", (expand(key, args.protocol), scaled(value, float(f)))) for f in factors]
        )
    configs = [("base", [])]
    if args.product:
        for combo in itertools.product(*options):
            configs.append((" ".join(c[0] for c in combo), [c[1] for c in combo]))
    else:
        configs += [(label, [override]) for option in options for label, override in option]
    return configs


def run_file(args, overrides: list[Override], seed: int) -> Path | None:
    sets = [f"{k}={v}" for k, v in args.fixed + overrides] + [
        f"data.validation={args.validation}",
        f"seed={seed}",
    ]
    digest = hashlib.sha1("\n".join([str(args.protocol.resolve()), *sets]).encode()).hexdigest()
    path = args.out / f"{args.protocol.stem}_{digest[:12]}_seed{seed}.h5"
    if path.exists() and not args.rerun:
        return path
    if args.no_run:
        return None
    partial = path.with_suffix(".part.h5")
    command = [str(Path(sys.executable).parent / "neurosleep"), "run", str(args.protocol)]
    command += [a for s in sets for a in ("--set", s)]
    command += ["--output", str(partial), "--overwrite", "--quiet"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    nice = args.nice
    done = subprocess.run(command, env=env, preexec_fn=lambda: os.nice(nice))
    if done.returncode:
        print(f"failed ({done.returncode}): {' '.join(sets)}", flush=True)
        return None
    partial.replace(path)
    return path


def validation_acc(path: Path) -> float:
    """Final ACC of a run file that was tested on its validation split."""
    with open_run(path) as r:
        on = r.arrays("data")["evaluated_on"]
        if (on.decode() if isinstance(on, bytes) else str(on)) != "validation":
            raise SystemExit(f"{path}: not evaluated on a validation split")
        return float(np.mean(r.evaluations().metrics["accuracy"][-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", type=Path, default=ROOT / "protocols/split_mnist_sra.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--validation", type=float, default=0.1, help="held-out share")
    parser.add_argument("--vary", nargs="+", action="append", default=[], metavar="KEY VALUE")
    parser.add_argument("--scale", nargs="+", action="append", default=[], metavar="KEY FACTOR")
    parser.add_argument(
        "--fixed",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="an override of every configuration, base included",
    )
    parser.add_argument("--product", action="store_true", help="all combinations")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--nice", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/sra_search")
    parser.add_argument("--rerun", action="store_true", help="run again even if a file exists")
    parser.add_argument(
        "--no-run", action="store_true", help="only read the run files that exist (progress)"
    )
    parser.add_argument("--top", type=int, default=0, help="print only the best N rows")
    args = parser.parse_args()
    if REPORTED_SEEDS & set(args.seeds):
        parser.error(f"seeds {sorted(REPORTED_SEEDS)} are the reported ones: tune on others")
    args.out.mkdir(parents=True, exist_ok=True)
    args.fixed = [(expand(k, args.protocol), v) for k, v in args.fixed]
    configs = configurations(args)
    jobs = [(c, s) for c in range(len(configs)) for s in args.seeds]
    print(f"{len(configs)} configurations × {len(args.seeds)} seeds = {len(jobs)} runs", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        paths = list(pool.map(lambda j: run_file(args, configs[j[0]][1], j[1]), jobs))
    acc = {job: validation_acc(path) for job, path in zip(jobs, paths, strict=True) if path}

    rows = []
    for c, (label, _) in enumerate(configs):
        values = [acc.get((c, s), np.nan) for s in args.seeds]
        done = [v for v in values if v == v]
        if not done:
            continue
        sem = statistics.stdev(done) / len(done) ** 0.5 if len(done) > 1 else float("nan")
        rows.append((statistics.mean(done), sem, label, values))
    rows.sort(key=lambda r: -r[0])
    fixed = " ".join(f"{k}={v}" for k, v in args.fixed) or "none"
    print(f"protocol {args.protocol.name}; fixed: {fixed}; validation {args.validation}")
    print(
        "| rank | configuration | "
        + " | ".join(f"seed {s}" for s in args.seeds)
        + " | mean ± SEM |"
    )
    print("|---|---|" + "---|" * len(args.seeds) + "---|")
    for rank, (mean, sem, label, values) in enumerate(rows[: args.top or None], start=1):
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        print(f"| {rank} | {label} | {cells} | {100 * mean:.1f} ± {100 * sem:.1f} |")
    print("validation ACC, %; mean ± SEM over seeds (SEM = sample SD / √n)")


if __name__ == "__main__":
    main()
