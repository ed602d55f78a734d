"""``neurosleep examples list | copy DIR``: the shipped protocols, models and studies."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurosleep import examples

EXAMPLES_EPILOG = """examples:
  neurosleep examples list
  neurosleep examples copy my_study/        # then edit my_study/protocols/*.yaml
  neurosleep run hopfield_dreaming          # a shipped protocol by name, from any folder

A run by name writes its run file under the current folder (outputs/ unless the protocol or
--output says otherwise), never next to the installed package.
"""


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "examples",
        help="list the shipped protocols, models and studies, or copy them out for editing",
        description="The protocols, models and studies that ship with neurosleep. Any of them "
        "runs by name (`neurosleep run NAME`); `copy` writes them into a folder of yours, "
        "keeping the layout so that each protocol's model path still resolves.",
        epilog=EXAMPLES_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="name and description of every shipped file")
    listing.set_defaults(func=_list)
    copy = actions.add_parser(
        "copy",
        help="copy protocols/, models/ (and studies/) into DIR; never overwrites",
        description="Copy the shipped folders into DIR (created if missing). If any file there "
        "would be overwritten, nothing is copied and the command fails with exit code 2.",
    )
    copy.add_argument("directory", type=Path, metavar="DIR")
    copy.set_defaults(func=_copy)


def _list(args: argparse.Namespace) -> int:
    print(f"shipped with neurosleep ({examples.root()}):")
    for folder in examples.FOLDERS:
        paths = examples.shipped(folder)
        if paths:
            print(f"{folder}:")
            width = max(len(p.stem) for p in paths)
            for path in paths:
                print(f"  {path.stem:{width}s}  {examples.describe(path)}".rstrip())
    return 0


def _copy(args: argparse.Namespace) -> int:
    written = examples.copy(args.directory)
    if not args.quiet:
        folders = sorted({path.parent for path in written})
        print(f"copied {len(written)} files into {', '.join(map(str, folders))}")
    return 0
