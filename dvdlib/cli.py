"""The ``dvd`` command.

Each subcommand lives in the module that owns its logic; that module exposes
``add_parser(subparsers)`` which registers the subcommand and sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that register subcommands, in the order ``dvd --help`` lists them.
_COMMAND_MODULES = ("dvdlib.book", "dvdlib.runs", "dvdlib.toyworld.cli", "dvdlib.pipeline_cli",
                    "dvdlib.probe")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dvd",
        description="Measure concept dominance (DvD) in text-to-image diffusion models, "
        "and build the dvd-book.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"dvd {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
