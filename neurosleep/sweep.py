"""Seed and parameter sweeps: independent runs, one run file each, on Dask or in-process.

Every run of a sweep is an ordinary ``neurosleep run`` of the same protocol with different
overrides (``seed=…`` and the ``--vary`` values), so its run file is complete on its own and
``neurosleep compare`` gathers them. All variants are validated before any starts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neurosleep.errors import MissingExtra, Problem, SpecError
from neurosleep.protocol import load_protocol


@dataclass(frozen=True)
class Variant:
    """One run of a sweep: its overrides and its run-file path."""

    overrides: tuple[str, ...]
    output: Path


@dataclass(frozen=True)
class Outcome:
    variant: Variant
    status: str  # complete, failed, interrupted, skipped
    message: str


def plan(
    protocol: Path,
    seeds: Sequence[int],
    vary: Sequence[str] = (),
    overrides: Sequence[str] = (),
    output: str | None = None,
) -> list[Variant]:
    """Expand seeds × varied values into validated variants with distinct run-file paths.

    ``vary`` items are ``KEY=V1,V2,...``; a variant's ``name`` gets ``_<last key part><value>``
    appended for each varied key, so ``{name}`` in the output path keeps them apart.
    """
    axes = [_axis(item) for item in vary]
    base = load_protocol(protocol, list(overrides))
    template = output or base.resolved["output"]
    if "{seed}" not in template and len(seeds) > 1:
        raise SpecError([Problem("--output", None, ("output",), "a sweep's output needs {seed}")])
    if axes and "{name}" not in template:
        raise SpecError([Problem("--output", None, ("output",), "--vary needs {name} in output")])
    variants = []
    for seed in seeds:
        for values in itertools.product(*(points for _, points in axes)):
            pairs = list(zip((key for key, _ in axes), values, strict=True))
            extra = [f"{key}={value}" for key, value in pairs]
            name = base.name + "".join(f"_{key.split('.')[-1]}{value}" for key, value in pairs)
            name = re.sub(r"[^A-Za-z0-9_.-]", "", name)
            run_overrides = (
                *overrides,
                *extra,
                f"seed={seed}",
                f"name={name}",
                f"output={template}",
            )
            checked = load_protocol(protocol, list(run_overrides))
            variants.append(Variant(tuple(run_overrides), checked.output))
    paths = [v.output for v in variants]
    if len(set(paths)) != len(paths):
        raise SpecError(
            [Problem("--output", None, ("output",), "runs of the sweep would share a run file")]
        )
    return variants


def _axis(item: str) -> tuple[str, list[str]]:
    if "=" not in item:
        raise SpecError([Problem(f"--vary {item}", None, (), "expected KEY=V1,V2,...")])
    key, values = item.split("=", 1)
    return key, [v.strip() for v in values.split(",") if v.strip()]


def run_variant(protocol: Path, variant: Variant, overwrite: bool) -> Outcome:
    """Run one variant in this process (a Dask task, or the serial loop)."""
    from neurosleep.runner import RunFailed, RunInterrupted, run

    if variant.output.exists() and not overwrite:
        return Outcome(variant, "skipped", f"{variant.output} exists (pass --overwrite)")
    try:
        result = run(
            load_protocol(protocol, list(variant.overrides)), overwrite=overwrite, progress=False
        )
    except RunFailed as exc:
        return Outcome(variant, "failed", str(exc))
    except RunInterrupted as exc:
        return Outcome(variant, "interrupted", str(exc))
    return Outcome(variant, "complete", result.headline)


def execute(
    protocol: Path,
    variants: list[Variant],
    *,
    workers: int,
    scheduler: str | None,
    overwrite: bool,
) -> list[Outcome]:
    """Run the variants: serially when ``workers == 1`` and no scheduler, else on Dask."""
    if workers == 1 and scheduler is None:
        return [run_variant(protocol, v, overwrite) for v in variants]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MissingExtra(
            "parallel sweeps need Dask: pip install 'neurosleep[dask]' (or use --workers 1)"
        ) from None
    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    try:
        futures = [client.submit(run_variant, protocol, v, overwrite, pure=False) for v in variants]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
