"""Argument declarations and help text that several commands share.

The values they read (a seed count, a seed list) are parsed by :mod:`dvdlib.usage`, which the
commands' implementations in the science package use too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvdlib.usage import PAPER_SEED_COUNT

SCALE_OUT = (
    "Scale out: `accelerate launch --multi_gpu --num_processes N -m dvdlib.book.cli` followed by the "
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


def add_seed_options(parser: argparse.ArgumentParser) -> None:
    """``--seeds N`` (a count, as in every command) or ``--seed-list 0,1,5`` (the seeds themselves)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--seeds", default=str(PAPER_SEED_COUNT), metavar="N",
                       help=f"a number of seeds: the paper's ten first, then 10001, 10002, ... as "
                       f"every chapter takes them (default: {PAPER_SEED_COUNT}, the paper's seeds)")
    group.add_argument("--seed-list", metavar="LIST",
                       help="the seeds themselves, comma-separated, e.g. 0,1,5 (instead of --seeds)")
