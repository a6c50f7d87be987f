"""``dvd book``: execute every chapter (cached) and render the HTML book."""

from __future__ import annotations

from pathlib import Path


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
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="build folder (default: $DVD_BUILD_DIR or _build); the HTML lands in "
                        "DIR/html for a folder named _build, else in DIR/_build/html")
    parser.add_argument("--write-smoke-notebooks", type=Path, metavar="DIR",
                        help="only write every chapter with its smoke parameters injected into DIR "
                        "(inside the project), unexecuted, for nbval; build nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dvdlib.book.build import build_command  # papermill and Jupyter Book load here, not at --help

    return build_command(args)
