"""``dvd book``: execute every chapter (cached) and render the HTML book.

The work is :func:`dvdlib.book.build.build_book` (or, with ``--write-smoke-notebooks``,
:func:`dvdlib.book.build.write_smoke_notebooks`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dvdlib.book.commands.options import count, folder


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "book",
        help="build the book (execute chapters, cached; render HTML)",
        description="Execute every chapter listed in _toc.yml with papermill, reusing executed "
        "copies whose notebook, parameters and the dvdlib code they import are unchanged, then "
        "render the HTML book into _build/html with Jupyter Book (execution off). A failing "
        "chapter stops the build with the notebook and cell named.",
    )
    parser.add_argument("--force", action="store_true",
                        help="re-execute every chapter even if its cached copy is up to date")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="execute only chapters whose path contains NAME (all are rendered)")
    parser.add_argument("--smoke", action="store_true",
                        help="run each chapter with its smoke parameters (notebook metadata "
                        "dvdbook.smoke): a quick book for checking the pipeline, not for reading")
    parser.add_argument("--out", type=folder, metavar="DIR",
                        help="build folder (default: $DVD_BUILD_DIR or _build); the HTML lands in "
                        "DIR/html for a folder named _build, else in DIR/_build/html")
    parser.add_argument("--jobs", type=count, default=None, metavar="N",
                        help="chapters executed at once, each in its own process (default 2: "
                        "a toy-world chapter uses one torch thread)")
    parser.add_argument("--write-smoke-notebooks", type=folder, metavar="DIR",
                        help="only write every chapter with its smoke parameters injected into DIR "
                        "(inside the project), unexecuted, for nbval; build nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    # papermill and Jupyter Book load here, not at --help
    from dvdlib.book.build import JOBS, build_book, write_smoke_notebooks
    from dvdlib.book.execute import NotebookFailed

    if args.write_smoke_notebooks:
        for path in write_smoke_notebooks(Path.cwd(), args.write_smoke_notebooks):
            print(f"[book] smoke copy: {path}")
        return 0
    try:
        build_book(force=args.force, only=args.only, smoke=args.smoke, out=args.out,
                   jobs=args.jobs or JOBS)
    except NotebookFailed as err:
        print(f"dvd book: error: {err}", file=sys.stderr)
        return 1
    return 0
