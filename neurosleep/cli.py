"""The ``neurosleep`` command line: wires subcommands, prints errors as one clear message.

Each module in :data:`COMMAND_MODULES` has ``add_commands(subparsers)`` that registers its
subcommands; each subcommand's function returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from neurosleep import __version__
from neurosleep.errors import RunFileError, SpecError

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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as exc:
        print(f"neurosleep: invalid input:\n{exc}", file=sys.stderr)
        return 2
    except (RunFileError, FileExistsError, ValueError) as exc:
        print(f"neurosleep: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
