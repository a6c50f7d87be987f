"""``dvd run``: execute one chapter with parameters into a results folder of its own.

The work is :func:`dvdlib.book.runs.run_notebook`, which checks the parameters against the
notebook's declarations (:mod:`dvdlib.book.parameters`) before anything runs.
"""

from __future__ import annotations

import argparse
import sys

from dvdlib.book.commands.options import add_chapter_options, given_parameters

_EPILOG = """\
values are read like papermill's -p: True, False, None, integers and decimals become those
Python values, anything else a string (-r keeps a value a string). Each value is checked
against the notebook's parameters cell before anything runs.

examples:
  dvd run book/01_dominancebench.ipynb -p top_n 12
      -> results/01_dominancebench/top_n=12/output.ipynb (and params.json, done.json)
  dvd run 01_dominancebench -p bench_csv /data/dominancebench_300.csv
  dvd run 01_dominancebench --force          rerun even if finished
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run one notebook with parameters into a results folder",
        description="Execute NOTEBOOK with papermill and the given parameters into\n"
        "results/<notebook stem>/<name>=<value>,.../ (output.ipynb, params.json, done.json;\n"
        "the notebook's headline numbers under headlines/). The notebook runs in its own\n"
        "folder, with DVD_BUILD_DIR set to the run folder. A finished run of the same\n"
        "notebook and parameters is not repeated (--force reruns it).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_chapter_options(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    # the runner and what it reads (pandas, yaml) load here, not at --help
    from dvdlib.book.execute import NotebookFailed
    from dvdlib.book.runs import OUTPUT, RESULTS, chapter_root, resolve_notebook, run_notebook

    notebook = resolve_notebook(args.notebook, chapter_root())
    try:
        done = run_notebook(notebook, given_parameters(args), results=args.results or RESULTS,
                            force=args.force)
    except NotebookFailed as err:
        print(f"dvd run: error: {err}", file=sys.stderr)
        return 1
    if done.reused:
        changed = "; dvdlib has changed since" if done.earlier_library else ""
        print(f"[run] finished earlier: {done.folder / OUTPUT}{changed} (--force reruns it)")
    return 0
