"""Argument declarations, help text and option values that several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from dvdlib.commands.errors import UsageError

SCALE_OUT = (
    "Scale out: `accelerate launch --multi_gpu --num_processes N -m dvdlib.cli` followed by the "
    "same arguments runs N processes (one per GPU; on a machine without GPUs, N on the CPU), "
    "each on every N-th batch, and leaves the manifest or table one process would write."
)


def add_chapter_options(parser: argparse.ArgumentParser) -> None:
    """The notebook and its parameters, as ``dvd run`` and ``dvd sweep`` take them."""
    parser.add_argument("notebook", metavar="NOTEBOOK",
                        help="a notebook path, or a chapter of the book named by (part of) its "
                             "file name, e.g. 01_dominancebench")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a parameter (value parsed like papermill's -p); repeatable")
    parser.add_argument("-r", "--raw", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a string parameter to VALUE as given; repeatable")
    parser.add_argument("--results", metavar="DIR", type=Path,
                        help="folder for the runs (default: results/ in the working directory)")
    parser.add_argument("--force", action="store_true",
                        help="rerun even when a finished run exists")


PAPER_SEED_COUNT = 10  # the paper draws ten seeds per prompt


def add_seed_options(parser: argparse.ArgumentParser) -> None:
    """``--seeds N`` (a count, as in every command) or ``--seed-list 0,1,5`` (the seeds themselves)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", default=str(PAPER_SEED_COUNT), metavar="N",
                       help=f"a number of seeds: the paper's ten first, then 10001, 10002, ... as "
                       f"every chapter takes them (default: {PAPER_SEED_COUNT}, the paper's seeds)")
    group.add_argument("--seed-list", metavar="LIST",
                       help="the seeds themselves, comma-separated, e.g. 0,1,5 (instead of --seeds)")


def seed_count(text: str) -> int:
    """The value of ``--seeds``: a whole number of at least 1. A list, the meaning ``--seeds`` had in
    ``dvd generate``, is refused with the option that takes one now."""
    text = str(text).strip()
    if "," in text:
        raise UsageError(f"--seeds {text!r}: --seeds is a number of seeds in every command (e.g. "
                         f"--seeds 10, the paper's ten); give the seeds themselves as --seed-list "
                         f"{text}")
    if not text.isdigit():
        raise UsageError(f"--seeds {text!r}: give a number of seeds (e.g. 10), or the seeds "
                         f"themselves as --seed-list 1825,410")
    if int(text) == 0:
        raise UsageError("--seeds 0: zero seeds make no images; give a number of seeds of at least 1")
    return int(text)


def seed_list(text: str) -> list[int]:
    """The value of ``--seed-list``: comma-separated non-negative integers, none repeated."""
    from dvdlib.generate import check_seeds  # torch: only when a command runs

    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise UsageError(f"--seed-list {text!r} lists zero seeds; give at least one, e.g. 1825")
    try:
        return check_seeds(parts)
    except ValueError as err:
        raise UsageError(f"--seed-list {text!r}: {err}") from None
