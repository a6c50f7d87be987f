"""The ``dvd`` command.

Each subcommand lives in the module that owns its logic; that module exposes
``add_parser(subparsers)`` which registers the subcommand and sets ``func`` on its parser.
"""

from __future__ import annotations

import argparse
import importlib
import re
import signal
import sys

# Modules that register subcommands, in the order ``dvd --help`` lists them.
_COMMAND_MODULES = ("dvdlib.book", "dvdlib.runs", "dvdlib.toyworld.cli", "dvdlib.pipeline_cli",
                    "dvdlib.probe")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup (``finally``) runs as for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def one_line(error: BaseException) -> str:
    """An error's message on one line (the form every ``dvd`` error takes)."""
    return re.sub(r"\s*\n\s*", " ", str(error)).strip() or type(error).__name__


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other ``dvd`` error (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dvd",
        description="Measure concept dominance (DvD) in text-to-image diffusion models, "
        "and build the dvd-book.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``dvd`` command. Bad input: one line on stderr, exit code 2. Ctrl-C: one line,
    exit code 130; SIGTERM: one line, 143 (temporary files are removed either way)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        result = args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as err:
        print(f"dvd {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dvd {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"dvd {args.command}: terminated", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
