"""The ``neurosleep`` command line: wires subcommands, prints errors as one clear message.

Each module in :data:`COMMAND_MODULES` has ``add_commands(subparsers)`` that registers its
subcommands; each subcommand's function returns the process exit code (:data:`EXIT_CODES`,
printed by ``neurosleep --help``). A :class:`~neurosleep.errors.UserError` (bad protocol or
flag, damaged run file, an output the tool may not replace, a missing optional extra) is one
line on stderr; anything else is a bug, printed with its traceback. Every subcommand takes
``--quiet``; progress bars appear only where stderr is a terminal unless ``--progress always``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import traceback
from typing import NoReturn

from neurosleep.errors import UserError
from neurosleep.version import __version__

COMMAND_MODULES = (
    "neurosleep.commands.run",
    "neurosleep.commands.info",
    "neurosleep.commands.analysis",
    "neurosleep.commands.examples",
    "neurosleep.commands.study",
)

EXIT_INPUT, EXIT_BUG, EXIT_PIPE = 2, 3, 141
#: exit status → meaning; printed by ``neurosleep --help``, documented in docs/api.md
EXIT_CODES = {
    0: "success",
    1: "a run failed (its run file says 'failed' and holds the traceback), or some runs of a "
    "study or sweep did not complete",
    EXIT_INPUT: "refused input, one line on stderr: a bad protocol, model, run file or option, "
    "an output the tool may not replace, a run file another process is writing, a missing "
    "optional extra (the line names it)",
    EXIT_BUG: "internal error (a bug): traceback printed, with a request to report it",
    130: "interrupted (Ctrl-C or SIGTERM); the run file says 'interrupted'",
    EXIT_PIPE: "the reader of the output went away (e.g. piped into head); nothing printed",
}

#: optional top-level modules → the extra that installs them
EXTRAS = {
    "dask": "dask",
    "distributed": "dask",
    "pynwb": "formats",
    "hdmf": "formats",
    "libsonata": "formats",
    "neo": "formats",
    "elephant": "formats",
    "quantities": "formats",
    "nwbinspector": "formats",
    "optuna": "study",
    "pandas": "study",
    "pyarrow": "study",
}

EPILOG = """examples:
  neurosleep run hopfield_dreaming                      (a shipped protocol, by name)
  neurosleep run protocols/hopfield_dreaming.yaml --seed 3 --set schedule.dream.t=100
  neurosleep examples list
  neurosleep validate protocols/hopfield_dreaming.yaml
  neurosleep info outputs/hopfield_dreaming_seed1.h5
  neurosleep study run studies/hopfield_capacity.yaml --workers 2
  neurosleep compare outputs/hopfield_*.h5 --by protocol
  neurosleep plot outputs/hopfield_dreaming_seed1.h5 --out outputs/figures/
  neurosleep export outputs/hopfield_dreaming_seed1.h5 --nwb outputs/run.nwb

exit codes:
""" + "\n".join(f"  {code:3d}  {meaning}" for code, meaning in EXIT_CODES.items())

BUG_REPORT = (
    "neurosleep: internal error (a bug, not a problem with your input); please report it with "
    "the traceback above, the command line and `neurosleep --version`"
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2) that names the command and points at --help;
    subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="neurosleep",
        description="Sleep-like offline replay in spiking and conventional neural networks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"neurosleep {__version__}")
    _quiet(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    for command in _leaf_parsers(parser):
        _quiet(command, default=argparse.SUPPRESS)  # SUPPRESS: keeps `neurosleep --quiet CMD`
    return parser


def _quiet(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print only results and errors: no progress bars, no informational messages",
    )


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser that runs a command (subcommands of subcommands included)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        return [parser]
    return [leaf for sub in actions[0].choices.values() for leaf in _leaf_parsers(sub)]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe surfaces here rather than at interpreter exit
        return code
    except BrokenPipeError:
        # `neurosleep info X | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except UserError as exc:
        print(f"neurosleep: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            traceback.print_exc()
            print(BUG_REPORT, file=sys.stderr)
            return EXIT_BUG
        print(
            f"neurosleep: this needs the optional package {exc.name.split('.')[0]!r}: "
            f"pip install 'neurosleep[{extra}]'",
            file=sys.stderr,
        )
        return EXIT_INPUT
    except Exception:
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_BUG


def entry() -> NoReturn:
    """The ``neurosleep`` console script: :func:`main`, then exit. Before the interpreter
    shuts down, every object is moved out of the garbage collector's reach: its final
    collections would otherwise walk everything torch and numba built (≈0.3 s of a run's
    processor time); the process ends anyway."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
