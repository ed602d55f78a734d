"""``neurosleep run`` and ``neurosleep validate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neurosleep.examples import ExamplesError, protocol_path
from neurosleep.progress import PROGRESS
from neurosleep.protocol import Protocol, device_problem, load_protocol

PROTOCOL_HELP = "protocol file (YAML), or the name of a shipped protocol (neurosleep examples list)"
RUN_EXAMPLES = """examples:
  neurosleep run hopfield_dreaming              (shipped protocol; run file under ./outputs/)
  neurosleep run protocols/hopfield_dreaming.yaml
  neurosleep run protocols/hopfield_dreaming.yaml --seed 2 --output 'outputs/{name}_s{seed}.h5'
  neurosleep run protocols/hopfield_dreaming.yaml --set schedule.dream.t=100 --overwrite
  neurosleep run protocols/cuba.yaml --engine brian2

--set KEY=VALUE changes any protocol key before validation. KEY is a dotted path of mapping
keys, list indices, or phase names inside the schedule (schedule.dream.t is the key t of the
phase named 'dream'); VALUE is read as YAML (20, "20 ms", [1, 2]). Repeatable.

PROTOCOL is a file, or the name of a shipped protocol (`neurosleep examples list`); a relative
output path in the protocol is relative to the current folder.
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    run = subparsers.add_parser(
        "run",
        help="run a protocol and write its run file",
        description="Validate a protocol, run every phase, write the run file (HDF5) and print "
        "the headline result.",
        epilog=RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _protocol_arguments(run)
    run.add_argument(
        "--output",
        metavar="PATH",
        help="run file path (may use {name} and {seed}); overrides the protocol's",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing neurosleep run file (never another kind of file); the old "
        "file stays until the new run completes (written to PATH.partial until then)",
    )
    run.add_argument(
        "--progress",
        choices=PROGRESS,
        default="auto",
        help="progress bars on stderr (default auto: only when stderr is a terminal)",
    )
    run.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: torch's choice, one per core). An snn run on the CPU "
        "advances a batch's networks on N threads, its own tensor operations on one; other "
        "kinds use N for their tensor operations. 1 is faster on a busy machine",
    )
    run.set_defaults(func=_run)

    validate = subparsers.add_parser(
        "validate",
        help="check a protocol (and its model) without running it",
        description="Validate a protocol file and print its expanded schedule.",
        epilog="example:\n  neurosleep validate protocols/hopfield_dreaming.yaml --set seed=4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _protocol_arguments(validate)
    validate.set_defaults(func=_validate)


def protocol_argument(text: str, folder: str = "protocols") -> Path:
    """A protocol file, or a shipped protocol's name (argparse reports an unknown one)."""
    try:
        return protocol_path(text, folder)
    except ExamplesError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def study_argument(text: str) -> Path:
    """A study file, or a shipped study's name."""
    return protocol_argument(text, "studies")


def _protocol_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("protocol", type=protocol_argument, help=PROTOCOL_HELP)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol key (repeatable)",
    )
    parser.add_argument("--seed", type=int, help="override the protocol's seed")
    parser.add_argument("--engine", help="override the protocol's engine (torch, brian2)")
    parser.add_argument("--device", help="override the torch device (cpu, cuda, cuda:1)")


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def load(args: argparse.Namespace, check_device: bool = True) -> Protocol:
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    for key in ("engine", "device", "output"):  # strings as given, never read as YAML
        if getattr(args, key, None) is not None:
            overrides.append(f"{key}={json.dumps(getattr(args, key))}")
    return load_protocol(args.protocol, overrides, check_device=check_device)


def _run(args: argparse.Namespace) -> int:
    from neurosleep.imports import uncollected

    with uncollected("torch"):  # ≈170 000 objects a full collection would walk
        from neurosleep.runner import RunFailed, RunInterrupted, run

    protocol = load(args)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        result = run(
            protocol,
            overwrite=args.overwrite,
            command_line=sys.argv,
            progress="never" if args.quiet else args.progress,
        )
    except RunInterrupted as exc:
        print(f"neurosleep: {exc}", file=sys.stderr)
        return 130
    except RunFailed as exc:
        print(f"neurosleep: {exc}", file=sys.stderr)
        return 1
    print(result.headline)
    print(f"run file: {result.path}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    protocol = load(args, check_device=False)  # the file is checked, not this machine
    print(
        f"{args.protocol}: valid — {protocol.model.kind} model {protocol.model.name!r}, "
        f"engine {protocol.engine} on {protocol.device}, {protocol.n_tasks} task(s), "
        f"{len(protocol.phases)} phases, output {protocol.output}"
    )
    if problem := device_problem(protocol.device):
        print(f"note: not on this machine: {problem}", file=sys.stderr)
    for phase in protocol.phases:
        task = "" if phase.task < 0 else f" task {phase.task}"
        algorithm = f" ({phase.algorithm})" if phase.algorithm else ""
        print(f"  {phase.index:3d} {phase.kind:5s} {phase.name}{algorithm}{task}")
    return 0
