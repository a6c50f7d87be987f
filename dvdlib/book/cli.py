"""The ``dvd`` command: the one place its subcommands are registered.

Each subcommand is a module of :mod:`dvdlib.book.commands` with ``register(subparsers)``, which
declares its arguments and sets ``func`` on its parser; ``func`` imports the implementation when
the command runs, so ``dvd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys

from dvdlib.book.commands import book, generate, probe, run, score, sweep, toyworld
from dvdlib.usage import UsageError

# In the order ``dvd --help`` lists them.
COMMANDS = (book, run, sweep, toyworld, generate, score, probe)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that cleanup (``finally``) runs as for Ctrl-C."""


def _raise_terminated(signum, frame):
    raise Terminated()


def one_line(error: BaseException) -> str:
    """An error's message on one line (the form every ``dvd`` error takes)."""
    return re.sub(r"\s*\n\s*", " ", str(error)).strip() or type(error).__name__


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one line, like every other ``dvd`` error (exit code 2), and
    arguments whose declaration can wait until the parser is used (:meth:`defer`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deferred = []

    def defer(self, declare) -> None:
        """Call ``declare(self)`` only when this parser parses or prints its help: for a command
        whose options need a heavy import, which ``dvd --help`` should not pay for."""
        self._deferred.append(declare)

    def _declare(self) -> None:
        while self._deferred:
            self._deferred.pop(0)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._declare()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._declare()
        return super().format_usage()

    def format_help(self) -> str:
        self._declare()
        return super().format_help()

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="dvd",
        description="Measure concept dominance (DvD) in text-to-image diffusion models, "
        "and build the dvd-book.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
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
