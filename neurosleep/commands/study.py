"""``neurosleep study run | status | report`` and ``neurosleep sweep`` (a thin front of study)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neurosleep.commands.run import protocol_argument, study_argument
from neurosleep.errors import StudyError
from neurosleep.progress import PROGRESS, progress_shown
from neurosleep.protocol import device_problem

STUDY_HELP = "study file (YAML), or a shipped study's name (neurosleep examples list)"

STUDY_EXAMPLES = """examples:
  neurosleep study run studies/hopfield_capacity.yaml --workers 2
  neurosleep study run studies/hopfield_capacity.yaml --scheduler tcp://127.0.0.1:8786
  neurosleep study status outputs/studies/hopfield_capacity
  neurosleep study report outputs/studies/hopfield_capacity
  neurosleep compare outputs/studies/hopfield_capacity

`study run` again on the same study resumes it: complete runs are kept, runs left running by a
killed worker or driver are re-run (their partial files moved to runs/aside/). The exit code is
0 only when every run completed. See docs/studies.md and docs/scaling.md.
"""

SWEEP_EXAMPLES = """examples:
  neurosleep sweep protocols/hopfield_dreaming.yaml --seeds 1 2 3 4 5 --workers 2
  neurosleep sweep protocols/hopfield_dreaming.yaml --seeds 1 2 --vary schedule.dream.t=1,10,100

A sweep is a grid study written for you (study folder: --folder, default
outputs/studies/sweep_<protocol name>); `neurosleep study status|report FOLDER` read it.
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    study = subparsers.add_parser(
        "study",
        help="run a study (search over protocol keys and seeds, on Dask), show or report it",
        description="Studies: a search over protocol keys × seeds with an objective, a "
        "confirmation on held-out seeds, a ledger of every run (SQLite) and a report.",
        epilog=STUDY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = study.add_subparsers(dest="study_command", metavar="STUDY_COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run or resume a study file",
        epilog=STUDY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("study", type=study_argument, help=STUDY_HELP)
    _execution_arguments(run)
    run.set_defaults(func=_run)
    validate = sub.add_parser("validate", help="check a study file and every run it plans")
    validate.add_argument("study", type=study_argument, help=STUDY_HELP)
    validate.set_defaults(func=_validate)
    status = sub.add_parser("status", help="runs per state; running, failed and re-run runs")
    status.add_argument("folder", type=Path, help="study folder")
    status.set_defaults(func=_status)
    report = sub.add_parser(
        "report", help="write report/ (runs.csv, runs.parquet, summary.md, figures)"
    )
    report.add_argument("folder", type=Path, help="study folder")
    report.set_defaults(func=_report)

    sweep = subparsers.add_parser(
        "sweep",
        help="run a protocol over seeds and --vary values (a grid study)",
        description="Run one protocol over seeds × every combination of --vary values: a grid "
        "study with no objective, written for you and run like `neurosleep study run`.",
        epilog=SWEEP_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument(
        "protocol", type=protocol_argument, help="protocol file, or a shipped protocol's name"
    )
    sweep.add_argument("--seeds", type=int, nargs="+", required=True, metavar="SEED")
    sweep.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="values of a protocol key (repeatable: a grid)",
    )
    sweep.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a protocol key in every run",
    )
    _execution_arguments(sweep)
    sweep.set_defaults(func=_sweep)


def _execution_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="local Dask worker processes (1: in this process; default 1)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="address of a running Dask scheduler (tcp://host:8786)",
    )
    parser.add_argument("--folder", type=Path, help="study folder (default: the study's folder)")
    parser.add_argument(
        "--progress",
        choices=PROGRESS,
        default="auto",
        help="one bar over runs on stderr (default auto: only when stderr is a terminal)",
    )


def _check_workers(args) -> None:
    """Refuse ``--workers 0``; for a LocalCluster, start its workers' fork server now, so that
    its imports overlap the reading and validation of the study."""
    if args.workers < 1:
        raise StudyError(f"--workers must be 1 or more (got {args.workers})")
    if args.workers > 1 and not args.scheduler:
        from neurosleep.study.execute import start_fork_server

        start_fork_server()


def _run(args: argparse.Namespace) -> int:
    from neurosleep.study.spec import load_study

    _check_workers(args)
    return _execute(load_study(args.study, args.folder), args)


def _execute(study, args) -> int:
    from neurosleep.study.driver import run_study

    missing = _missing_devices(study)
    if missing and not args.scheduler:  # the runs go to this machine's workers
        raise StudyError(
            f"{study.path}: {'; '.join(missing)} — the runs go to this machine's workers: set "
            "device: cpu in the study's `set:` (sweep: --set device=cpu), or send them with "
            "--scheduler to workers that have it"
        )
    if not args.quiet:
        print(f"study {study.name}: folder {study.folder}", file=sys.stderr)
    progress = progress_shown("never" if args.quiet else args.progress)
    result = run_study(study, workers=args.workers, scheduler=args.scheduler, progress=progress)
    print(
        f"{result.complete} complete, {result.failed} failed, {result.rerun} re-run, "
        f"{result.total - result.complete - result.failed} not finished, of {result.total} runs"
    )
    if result.best:
        print(f"best configuration: {result.best}")
    print(f"ledger: {study.folder / 'ledger.sqlite'}")
    return 0 if result.ok else 1


def _validate(args: argparse.Namespace) -> int:
    from neurosleep.study.spec import load_study

    study = load_study(args.study)
    spec = study.spec
    print(
        f"{args.study}: valid — {len(study.protocols)} condition(s), {len(spec.space)} axes, "
        f"{spec.search.kind} search, {len(spec.seeds)} seeds, folder {study.folder}"
    )
    for problem in _missing_devices(study):
        print(f"note: not on this machine: {problem}", file=sys.stderr)
    return 0


def _missing_devices(study) -> list[str]:
    """Why this machine cannot run the torch devices the study's runs ask for (none: it can);
    a scheduler's workers check their own."""
    return [problem for device in sorted(study.devices) if (problem := device_problem(device))]


def _status(args: argparse.Namespace) -> int:
    from neurosleep.study.ledger import RERUN, Ledger

    ledger = Ledger(args.folder, readonly=True)
    try:
        counts = ledger.counts()
        print(", ".join(f"{n} {state}" for state, n in counts.items()))
        for row in ledger.rows(f"state IN ('running', 'failed') OR {RERUN}"):
            what = {
                "running": f"running on {row.worker} (pid {row.pid}, {row.host})",
                "failed": f"failed: {row.reason} (traceback {row.traceback})",
            }.get(row.state, row.state)
            moved = f", moved aside: {', '.join(row.aside)}" if row.aside else ""
            rerun = f"; re-run ({row.attempts} attempts{moved})" if row.rerun else ""
            print(f"{row.key} {row.label} seed {row.seed} {row.split}: {what}{rerun}")
    finally:
        ledger.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    from neurosleep.study.report import write_report

    text, paths = write_report(args.folder)
    print(text)
    for path in paths if not args.quiet else ():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from neurosleep.study.spec import sweep_study

    _check_workers(args)
    return _execute(
        sweep_study(args.protocol, args.seeds, args.vary, args.overrides, args.folder), args
    )
