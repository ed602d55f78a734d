"""The ``neurosleep`` command line: wires subcommands, prints errors as one clear message.

Each module in :data:`COMMAND_MODULES` has ``add_commands(subparsers)`` that registers its
subcommands; each subcommand's function returns the process exit code.

Exit codes: 0 done; 1 the run failed (its run file says ``failed``); 2 refused input (a
:class:`~neurosleep.errors.UserError`: bad protocol or flag, damaged run file, an output the tool
may not replace, a run file another process is writing), printed as one line; 3 an internal
error (a bug: its traceback is printed, with a request to report it); 130 interrupted (Ctrl-C,
SIGTERM); 141 the reader of the output went away (``neurosleep info X | head``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from neurosleep import __version__
from neurosleep.errors import UserError

COMMAND_MODULES = (
    "neurosleep.commands.run",
    "neurosleep.commands.info",
    "neurosleep.commands.analysis",
)

EPILOG = """examples:
  neurosleep run protocols/hopfield_dreaming.yaml
  neurosleep run protocols/hopfield_dreaming.yaml --seed 3 --set schedule.dream.t=100
  neurosleep validate protocols/hopfield_dreaming.yaml
  neurosleep info outputs/hopfield_dreaming_seed1.h5
  neurosleep sweep protocols/hopfield_dreaming.yaml --seeds 1 2 3 4 5 --workers 2
  neurosleep compare outputs/hopfield_*.h5 --by protocol
  neurosleep plot outputs/hopfield_dreaming_seed1.h5 --out figures/
  neurosleep export outputs/hopfield_dreaming_seed1.h5 --nwb run.nwb
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurosleep",
        description="Sleep-like offline replay in spiking and conventional neural networks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"neurosleep {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(subparsers)
    return parser


BUG_REPORT = (
    "neurosleep: internal error (a bug, not a problem with your input); please report it with "
    "the traceback above, the command line and `neurosleep --version`"
)
EXIT_INPUT, EXIT_BUG, EXIT_PIPE = 2, 3, 141


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
    except Exception:
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
