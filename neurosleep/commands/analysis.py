"""``neurosleep summary | plot | compare | export``: tables, figures and exports of run files."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neurosleep.errors import RunFileError, UserError
from neurosleep.io.ownership import is_locked, make_folder, staged_dir, staged_file
from neurosleep.io.runfile import RunFile, open_run

SUMMARY_EXAMPLES = """examples:
  neurosleep summary outputs/hopfield_dreaming_seed1.h5
  neurosleep summary outputs/*.h5 --csv > outputs/summary.csv
  neurosleep summary outputs/cuba_seed1.h5 --population exc --stats numpy --json
"""
PLOT_EXAMPLES = """examples:
  neurosleep plot outputs/hopfield_dreaming_seed1.h5 --out outputs/figures/
  neurosleep plot outputs/cuba_seed1.h5 --out outputs/figures/ --kind raster rates --svg
"""
COMPARE_EXAMPLES = """examples:
  neurosleep compare outputs/hopfield_*.h5
  neurosleep compare outputs/*.h5 --by protocol engine --format latex
  neurosleep compare outputs/*.h5 --figure outputs/figures/compare.png --format csv
  neurosleep compare outputs/consolidation_*.h5 --metric completion --quantity ACC tasks
"""
EXPORT_EXAMPLES = """examples:
  neurosleep export outputs/cuba_seed1.h5 --nwb outputs/cuba.nwb
  neurosleep export outputs/cuba_seed1.h5 --sonata outputs/cuba_sonata/
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    def parser(name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
        return subparsers.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    summary = parser(
        "summary",
        "per-phase activity, weight change, test results and final metrics",
        "Summarise run files: per phase its duration, firing rates (mean and distribution), "
        "CV of ISI, synchrony and weight change; per test the accuracy / retention row; final "
        "ACC, BWT, FWT, forgetting and average incremental accuracy.",
        SUMMARY_EXAMPLES,
    )
    summary.add_argument("runfiles", nargs="+", type=Path, metavar="RUN.h5")
    output = summary.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON instead of text")
    output.add_argument("--csv", action="store_true", help="long-form CSV instead of text")
    summary.add_argument(
        "--population",
        action="append",
        metavar="NAME",
        help="spike statistics for this population only (repeatable)",
    )
    summary.add_argument(
        "--stats",
        choices=("auto", "numpy", "elephant"),
        default="auto",
        help="spike-statistics backend (auto: Elephant where installed)",
    )
    summary.add_argument(
        "--bin",
        type=float,
        default=5.0,
        metavar="MS",
        help="bin width for synchrony (ms, default 5)",
    )
    summary.add_argument("--no-spikes", action="store_true", help="skip spike statistics")
    _incomplete_argument(summary)
    summary.set_defaults(func=_summary)

    plot = parser(
        "plot",
        "figures of a run (PNG, SVG on request)",
        "Draw a run's figures: spike raster with phases shaded, population rates, membrane "
        "traces, weight distributions, weight-change heat maps, the accuracy / retention matrix "
        "and curves, and replay events during sleep. Kinds with no data are skipped.",
        PLOT_EXAMPLES,
    )
    plot.add_argument("runfile", type=Path, metavar="RUN.h5")
    plot.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    plot.add_argument(
        "--kind",
        nargs="+",
        metavar="KIND",
        help="only these kinds: raster rates traces weights weight_change accuracy replay",
    )
    plot.add_argument(
        "--population", action="append", metavar="NAME", help="only this population (repeatable)"
    )
    plot.add_argument("--svg", action="store_true", help="also write SVG")
    plot.add_argument("--dpi", type=int, default=150, help="PNG resolution (default 150)")
    _incomplete_argument(plot)
    plot.set_defaults(func=_plot)

    compare = parser(
        "compare",
        "compare runs: mean ± SEM over seeds per condition",
        "Group runs by protocol, engine or seed, aggregate the rest (mean ± SEM, n shown) and "
        "print the comparison table. Runs that did not complete are listed and left out "
        "unless --include-incomplete.",
        COMPARE_EXAMPLES,
    )
    compare.add_argument(
        "runfiles",
        nargs="+",
        type=Path,
        metavar="RUN.h5",
        help="run files, or study folders (their complete runs, named configuration [split])",
    )
    compare.add_argument(
        "--by",
        nargs="+",
        default=["protocol"],
        choices=("protocol", "engine", "seed"),
        help="condition keys (default: protocol)",
    )
    compare.add_argument("--format", choices=("markdown", "csv", "latex"), default="markdown")
    compare.add_argument(
        "--metric",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="only these evaluation metrics (default: all)",
    )
    compare.add_argument(
        "--quantity",
        action="extend",
        nargs="+",
        metavar="Q",
        help="table columns per metric: ACC, BWT, FWT, forgetting, "
        "BWT_before_sleep, forgetting_before_sleep, or tasks (the final value of each task); "
        "default ACC and BWT",
    )
    compare.add_argument(
        "--figure",
        type=Path,
        metavar="PATH",
        help="write the figure (final value per task and condition, each task over the test "
        "phases) as PATH and, for a .png or .pdf, also as the other of the two",
    )
    compare.add_argument(
        "--include-incomplete", action="store_true", help="keep runs whose status is not complete"
    )
    compare.set_defaults(func=_compare)

    export = parser(
        "export",
        "export a run to NWB or SONATA",
        "Write a run as NWB (units, TimeSeries, epochs, weights, metrics) and/or as SONATA "
        "spike, report and edge files. Needs the formats extra: pip install "
        "'neurosleep[formats]'.",
        EXPORT_EXAMPLES,
    )
    export.add_argument("runfile", type=Path, metavar="RUN.h5")
    export.add_argument("--nwb", type=Path, metavar="FILE", help="NWB file to write")
    export.add_argument("--sonata", type=Path, metavar="DIR", help="folder for SONATA files")
    export.add_argument(
        "--overwrite", action="store_true", help="replace existing export files of these names"
    )
    _incomplete_argument(export)
    export.set_defaults(func=_export)


def _incomplete_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="analyse a run that did not complete (killed, failed, interrupted)",
    )


@contextmanager
def open_checked(path: Path, allow_incomplete: bool) -> Iterator[RunFile]:
    """Open a run file for a ``with`` block in which HDF5 read failures become one-line
    :class:`RunFileError`s; refuse a run that did not complete unless allowed."""
    with open_run(path) as run, run.reading():
        if run.status != "complete" and not allow_incomplete:
            why = "killed, or still being written" if run.status == "running" else run.status
            raise RunFileError(
                f"{path}: the run did not complete (status {run.status!r}: {why}); "
                "pass --allow-incomplete to analyse what it recorded"
            )
        yield run


def _summary(args: argparse.Namespace) -> int:
    from neurosleep.analysis.summary import format_csv, format_text, summarize

    summaries = []
    for path in args.runfiles:
        with open_checked(path, args.allow_incomplete) as run:
            summaries.append(
                summarize(
                    run,
                    spikes=not args.no_spikes,
                    populations=args.population,
                    backend=args.stats,
                    bin_ms=args.bin,
                )
            )
    if args.json:
        print(json.dumps(_finite(summaries if len(summaries) > 1 else summaries[0]), indent=1))
    elif args.csv:
        sys.stdout.write(format_csv(summaries))
    else:
        print("\n\n".join(format_text(s) for s in summaries))
    return 0


def _finite(value: object) -> object:
    """NaN → null, so that the output is valid JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _plot(args: argparse.Namespace) -> int:
    from neurosleep.analysis.plots import plot_run

    make_folder(args.out)
    with open_checked(args.runfile, args.allow_incomplete) as run:
        written = plot_run(
            run, args.out, kinds=args.kind, populations=args.population, svg=args.svg, dpi=args.dpi
        )
    for path in written:
        print(path)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from neurosleep.analysis.compare import (
        DEFAULT_QUANTITIES,
        figure,
        group_runs,
        split_complete,
        table,
    )

    paths, names = [], {}
    for arg in args.runfiles:
        if (arg / "ledger.sqlite").is_file():  # a study folder: its complete runs
            from neurosleep.study.report import study_runs

            for path, name in study_runs(arg):
                paths.append(path)
                names[path] = name
        else:
            paths.append(arg)
    runs, left_out = split_complete(paths, args.include_incomplete)
    if not runs:
        reasons = "; ".join(r if r.startswith(p) else f"{p}: {r}" for p, r in left_out)
        raise RunFileError(f"no complete run to compare: {reasons}")
    runs = [dataclasses.replace(r, name=names.get(r.path, r.name)) for r in runs]
    for path, reason in left_out:
        print(f"left out: {path} ({reason})", file=sys.stderr)
    groups = group_runs(runs, args.by)
    quantities = args.quantity or DEFAULT_QUANTITIES
    try:
        text = table(groups, args.by, args.format, args.metric, quantities)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(text)
    if args.format == "markdown":
        print(
            "\nmean ± SEM over runs (SEM = sample SD / √n); BWT normalised by T-1 and forgetting "
            "max-based (Chaudhry et al. 2018), both against R[j, j] = the last test after "
            "training task j (after its sleep where a test follows the sleep; *_before_sleep: "
            "the first test after training); FWT only outside class-IL"
        )
    if args.figure:
        from neurosleep.analysis.style import save

        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig = figure(groups, args.metric)
        if args.figure.suffix in (".png", ".pdf"):
            written = save(fig, args.figure.with_suffix(""))
        else:
            fig.savefig(args.figure, dpi=300)
            written = [args.figure]
        if not args.quiet:
            print("figure: " + ", ".join(map(str, written)), file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    if not args.nwb and not args.sonata:
        raise UserError("say what to export: --nwb FILE and/or --sonata DIR")
    with open_checked(args.runfile, args.allow_incomplete) as run:
        writer = is_locked(run.path)
        if writer is not None:
            raise RunFileError(
                f"{run.path} is being written by {writer}; export it once that run has ended"
            )
        if args.nwb:
            from neurosleep.io.export_nwb import export_nwb

            with staged_file(args.nwb, overwrite=args.overwrite) as temporary:
                export_nwb(run, temporary)
            print(args.nwb)
        if args.sonata:
            from neurosleep.io.export_sonata import export_sonata

            with staged_dir(args.sonata, overwrite=args.overwrite) as temporary:
                written = export_sonata(run, temporary)
            for path in written:
                print(args.sonata / path.name)
    return 0
