"""``dvd sweep``: run one chapter over a grid of parameters (resumable), with a summary table.

The work is :func:`dvdlib.book.runs.sweep`, which checks every combination of parameters against
the notebook's declarations (:mod:`dvdlib.book.parameters`) before the first run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvdlib.book.commands.options import add_chapter_options, given_parameters

_EPILOG = """\
Every combination of the --grid values runs, each in its own folder as with `dvd run`
(give --grid NAME=... several times to sweep over values that contain a comma).
A finished run's output.ipynb carries its record (repeated in done.json); rerunning the same sweep
skips the runs finished with the same notebook, so an interrupted sweep resumes where it
stopped (a run finished before dvdlib changed is kept and flagged; --force reruns all). A
failed run is recorded and the sweep goes on; the exit status is then 1. The summary CSV has
one row per run: folder, status (ran, reused, "reused, earlier dvdlib", failed), seconds,
parameters and the headline numbers the run saved (dvdlib.book.headlines), one column per
<chapter>:<name>.

examples:
  dvd sweep 01_dominancebench --grid top_n=4,8,12
      -> results/01_dominancebench/top_n=4/ ... and results/01_dominancebench/sweep_top_n.csv
  dvd sweep book/02_data_diversity.ipynb --grid k=1,4,32 --grid seed=0,1 -p steps 20
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run one notebook over a grid of parameters (resumable), with a summary",
        description="Run NOTEBOOK once for every combination of the --grid values (plus fixed\n"
        "-p/-r parameters), each into its own results folder as `dvd run` does, and write a\n"
        "summary CSV of the runs with their parameters and headline numbers.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_chapter_options(parser)
    parser.add_argument("--grid", action="append", metavar="NAME=V1,V2,...", required=True,
                        help="values of one parameter to sweep over; repeat for more "
                             "parameters (all combinations run)")
    parser.add_argument("--summary", metavar="CSV", type=Path,
                        help="where to write the summary (default: <results>/<stem>/"
                             "sweep_<grid names>.csv)")
    parser.set_defaults(func=run)


def run(args) -> int:
    # the runner and what it reads (pandas, yaml) load here, not at --help
    from dvdlib.book.parameters import parse_grid
    from dvdlib.book.runs import RESULTS, chapter_root, resolve_notebook, sweep

    notebook = resolve_notebook(args.notebook, chapter_root())
    outcome = sweep(notebook, parse_grid(args.grid), fixed=given_parameters(args),
                    results=args.results or RESULTS, summary=args.summary, force=args.force)
    return 1 if outcome.failures else 0
