"""What several commands share: argument declarations and help text, and how a command reports.

- :func:`add_chapter_options`, :func:`add_seed_options`, :data:`SCALE_OUT`: declarations and help;
  :func:`given_parameters`: the values of the chapter options ``-p`` and ``-r``.
- :func:`folder`: the argparse type of a folder option (an empty name refused); :func:`count`,
  of a whole number of at least 1;
- :func:`refusals`: the library's refusals as :class:`~dvdlib.usage.UsageError` (one line, exit
  code 2), naming the option a refused argument came from (:func:`option`).
- :func:`note`: a reporter of notes on stderr.

The values of the seed options (a seed count, a seed list) are parsed by :mod:`dvdlib.usage`,
which the commands' implementations in the science package use too.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from dvdlib.usage import PAPER_SEED_COUNT

SCALE_OUT = (
    "Scale out: `accelerate launch --multi_gpu --num_processes N -m dvdlib.book.cli` followed by "
    "the same arguments runs N processes (one per GPU; on a machine without GPUs, N on the CPU), "
    "each on every N-th batch, and leaves the manifest or table one process would write."
)


def folder(text: str) -> Path:
    """An argparse type for a folder option: an empty name is refused (``Path('')`` would be the
    working directory, where a command would then write)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty; name a folder (e.g. results/)")
    return Path(text)


def count(text: str) -> int:
    """An argparse type for a whole number of at least 1 (runs, jobs)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def add_chapter_options(parser: argparse.ArgumentParser) -> None:
    """The notebook and its parameters, as ``dvd run`` and ``dvd sweep`` take them."""
    parser.add_argument("notebook", metavar="NOTEBOOK",
                        help="a notebook path, or a chapter of the book named by (part of) its "
                             "file name, e.g. 01_dominancebench")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a parameter (value parsed like papermill's -p); repeatable")
    parser.add_argument("-r", "--raw", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a string parameter to VALUE as given; repeatable")
    parser.add_argument("--results", metavar="DIR", type=folder,
                        help="folder for the runs (default: results/ in the working directory)")
    parser.add_argument("--force", action="store_true",
                        help="rerun even when a finished run exists")


def given_parameters(args) -> dict:
    """The ``-p`` and ``-r`` parameters of ``dvd run`` or ``dvd sweep``, by name (values of ``-p``
    read as papermill reads them, of ``-r`` kept as strings); a name given twice is refused."""
    from dvdlib.book.parameters import pairs_to_dict

    given = pairs_to_dict(args.parameter)
    return pairs_to_dict(args.raw, raw=True, into=given)


def add_seed_options(parser: argparse.ArgumentParser) -> None:
    """``--seeds N`` (a count, as in every command) or ``--seed-list 0,1,5`` (the seeds
    themselves)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", default=str(PAPER_SEED_COUNT), metavar="N",
                       help=f"a number of seeds: the paper's ten first, then 10001, 10002, ... as "
                       f"every chapter takes them (default: {PAPER_SEED_COUNT}, the paper's seeds)")
    group.add_argument("--seed-list", metavar="LIST",
                       help="the seeds themselves, comma-separated, e.g. 0,1,5 (instead of "
                       "--seeds)")


def option(argument: str) -> str:
    """The option a command reads a library argument from: ``batch_size`` -> ``--batch-size``."""
    return "--" + argument.replace("_", "-")


@contextmanager
def refusals() -> Iterator[None]:
    """Turn what the library refuses into :class:`~dvdlib.usage.UsageError`: an
    :class:`~dvdlib.usage.ArgumentError` names the argument's option, a
    :class:`~dvdlib.store.StoreError` (results made with other settings, a folder in use) keeps
    its message. Other ``ValueError``s already print as one line (:func:`dvdlib.book.cli.main`)."""
    from dvdlib.store import StoreError  # pandas: only when a command runs
    from dvdlib.usage import ArgumentError, UsageError

    try:
        yield
    except ArgumentError as err:
        raise UsageError(err.naming(option(err.argument))) from None
    except StoreError as err:
        raise UsageError(str(err)) from None


def note(command: str) -> Callable[[str], None]:
    """A reporter printing one ``dvd COMMAND: note: ...`` line on stderr."""
    return lambda text: print(f"dvd {command}: note: {text}", file=sys.stderr)
