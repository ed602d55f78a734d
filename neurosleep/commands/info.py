"""``neurosleep info RUNFILE``: status, phases, what is recorded, final metrics."""

from __future__ import annotations

import argparse

import h5py
import numpy as np

from neurosleep.analysis.metrics import descriptions
from neurosleep.io.ownership import is_locked, partial_path
from neurosleep.io.runfile import RunFile, open_run


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    info = subparsers.add_parser(
        "info",
        help="describe a run file",
        description="Print a run file's status, phases, recorded data and final metrics. "
        "Works on files of runs that are still going or were killed.",
        epilog="example:\n  neurosleep info outputs/hopfield_dreaming_seed1.h5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("runfile", help="run file (HDF5)")
    info.set_defaults(func=_info)


def _info(args: argparse.Namespace) -> int:
    with open_run(args.runfile) as run, run.reading():
        print(describe(run))
    return 0


def describe(run: RunFile) -> str:
    """A plain-text description of a run file."""
    attrs = run.attrs
    lines = [
        f"{run.path}",
        f"  status {attrs['status']}, format {attrs['format']} v{attrs['format_version']}, "
        f"neurosleep {attrs.get('neurosleep_version')}, created {attrs.get('created')}",
        f"  name {attrs.get('name')}, seed {attrs.get('seed')}, engine {attrs.get('engine')}, "
        f"device {attrs.get('device')}",
        *_writer_lines(run),
        "phases:",
        "  idx kind  name                 task   start (ms)    stop (ms)   wall (s) status",
    ]
    for p in run.phases():
        task = "-" if p.task < 0 else str(p.task)
        lines.append(
            f"  {p.index:3d} {p.kind:5s} {p.name:20s} {task:>4s} {p.start_time:12.1f} "
            f"{p.stop_time:12.1f} {p.wall_seconds:10.2f} {p.status}"
        )
    lines.append("recorded:")
    for pop in run.populations():
        lines.append(f"  spikes/{pop}: {run.spike_count(pop)} spikes")
    for name, pop in run.reports():
        shape = run.file[f"reports/{name}/{pop}/data"].shape
        lines.append(f"  reports/{name}/{pop}: {shape[0]} samples × {shape[1]} values")
    for proj in run.projections():
        shape = run.file[f"weights/{proj}/values"].shape
        lines.append(f"  weights/{proj}: {shape[0]} snapshots of {shape[1:]}")
    evaluations = run.evaluations()
    if len(evaluations.phases):
        lines.append("final evaluation (per task):")
        for name, values in evaluations.metrics.items():
            row = values[-1]
            cells = " ".join("   -  " if np.isnan(v) else f"{v:6.3f}" for v in row)
            lines.append(f"  {name:24s} {cells}   mean {np.nanmean(row):.3f}")
    lines += _continual_lines(run)
    if "sleep" in run.file:
        lines.append(f"sleep diagnostics: phases {', '.join(sorted(run.file['sleep'], key=int))}")
        lines += _replay_lines(run)
    return "\n".join(lines)


def _writer_lines(run: RunFile) -> list[str]:
    """Who writes this file now, and a replacement of it being (or left) written beside it."""
    lines = []
    writer = is_locked(run.path)
    if run.status == "running":
        lines.append(
            f"  being written by {writer}"
            if writer
            else "  no live writer: the run was killed (the file holds what it had flushed)"
        )
    partial = partial_path(run.path)
    if partial != run.path and partial.exists():
        state = f"being written by {writer}" if writer else "left by a run that did not complete"
        lines.append(f"  replacement run file {partial}: {state}")
    return lines


def _continual_lines(run: RunFile) -> list[str]:
    """The continual-learning metrics after each task, as written after each test phase."""
    lines = []
    for metric, group in run.file.get("metrics/continual", {}).items():
        names = [n for n in descriptions() if n in group]  # ACC, BWT, (FWT), forgetting, ...
        unit = group["matrix"].attrs["units"]
        unit = "fraction" if unit == "1" else unit
        lines.append(f"continual metrics of {metric!r} after each task ({unit}):")
        lines.append("  task " + " ".join(f"{n:>13s}" for n in names))
        for k in range(1, group["matrix"].shape[0]):
            cells = " ".join(f"{float(group[n][k]):13.4f}" for n in names)
            lines.append(f"  {k:4d} {cells.replace('nan', '  -')}")
    return lines


def _replay_lines(run: RunFile) -> list[str]:
    """Replay events per sleep phase and their rate per memory (forward/reverse), if detected."""
    lines = []
    groups = []  # each sleep phase, and each stage run of a staged one ("5/0", "5/1", ...)
    for phase in sorted(run.file["sleep"], key=int):
        steps = [k for k, v in run.file[f"sleep/{phase}"].items() if isinstance(v, h5py.Group)]
        groups += [f"{phase}/{k}" for k in sorted(steps, key=int)] or [phase]
    for phase in groups:
        arrays = run.arrays(f"sleep/{phase}")
        if "replay_events" not in arrays:
            continue
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in arrays["replay_memories"]]
        rates = ", ".join(
            f"{n} {arrays[f'replay_rate_{n}']:.2f}/s (fwd {arrays[f'replay_rate_{n}_forward']:.2f},"
            f" rev {arrays[f'replay_rate_{n}_reverse']:.2f})"
            for n in names
        )
        lines.append(f"  phase {phase}: {int(arrays['replay_events'])} replay events; {rates}")
    return lines
