"""Argument declarations and help text that several commands share."""

from __future__ import annotations

import argparse
from pathlib import Path

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
