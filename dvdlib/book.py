"""Build the book: execute every chapter with papermill (cached), then render with Jupyter Book.

Jupyter Book 1's own execution cache keys on the notebook alone and misses changes in a helper
library, so the book runs papermill itself and keys each executed chapter on

    sha256(notebook bytes, its parameters, every file of dvdlib)

An executed chapter whose key matches is reused; any change re-executes it. Jupyter Book then
renders the executed copies with execution off, so the reader sees exactly what papermill
computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dvdlib.paths import build_dir, project_root

EXECUTED = "executed"  # _build/executed/<chapter path>.ipynb
STAGE = "stage"  # _build/stage: the book as Jupyter Book sees it
KEY_FIELD = "dvdbook"  # notebook metadata holding the cache key and timing


class ChapterFailed(RuntimeError):
    """A chapter raised while executing; the message names the notebook and the cell."""


@dataclass(frozen=True)
class ChapterRun:
    notebook: Path  # the source notebook, relative to the project root
    executed: Path  # the executed copy
    reused: bool  # True when the cached copy was up to date
    seconds: float  # execution time (of the run that made the copy)


def toc_files(root: Path) -> list[str]:
    """Every file named in ``_toc.yml`` (root first), without suffix, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapter_notebooks(root: Path) -> list[Path]:
    """The notebooks of the book, relative to ``root``, in reading order."""
    return [Path(f + ".ipynb") for f in toc_files(root) if (root / (f + ".ipynb")).is_file()]


def library_fingerprint(root: Path) -> str:
    """A hash of every file of dvdlib (code and shipped data), so a library change re-executes."""
    digest = hashlib.sha256()
    package = root / "dvdlib"
    for path in sorted(p for p in package.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def chapter_key(root: Path, notebook: Path, parameters: dict, library: str) -> str:
    digest = hashlib.sha256()
    digest.update((root / notebook).read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    digest.update(library.encode())
    return digest.hexdigest()


def _stored_key(executed: Path) -> dict:
    try:
        return json.loads(executed.read_text(encoding="utf-8"))["metadata"].get(KEY_FIELD, {})
    except (OSError, ValueError, KeyError):
        return {}


def execute_chapter(root: Path, notebook: Path, out_dir: Path, parameters: dict | None = None,
                    force: bool = False, library: str | None = None) -> ChapterRun:
    """Execute one chapter into ``out_dir`` unless an up-to-date executed copy is there."""
    import papermill

    parameters = dict(parameters or {})
    library = library or library_fingerprint(root)
    key = chapter_key(root, notebook, parameters, library)
    executed = out_dir / notebook
    stored = _stored_key(executed)
    if not force and stored.get("key") == key:
        return ChapterRun(notebook, executed, True, float(stored.get("seconds", 0.0)))

    executed.parent.mkdir(parents=True, exist_ok=True)
    partial = executed.with_suffix(".partial.ipynb")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(root / notebook), str(partial), parameters=parameters,
            cwd=str((root / notebook).parent), progress_bar=False,
        )
    except papermill.PapermillExecutionError as err:
        raise ChapterFailed(
            f"{notebook} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}"
        ) from None
    finally:
        seconds = time.perf_counter() - start
    nb = json.loads(partial.read_text(encoding="utf-8"))
    nb["metadata"][KEY_FIELD] = {"key": key, "seconds": round(seconds, 1),
                                 "parameters": parameters}
    partial.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, executed)  # atomic: a killed run never leaves a half-written chapter
    return ChapterRun(notebook, executed, False, seconds)


def _mathjax_folder() -> Path:
    """MathJax 2, shipped as static files by the jupyter-server-mathjax package."""
    import jupyter_server_mathjax

    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise FileNotFoundError(f"MathJax.js not found under {folder}")
    return folder


def stage_book(root: Path, executed_dir: Path, stage: Path) -> Path:
    """Lay out the book for Jupyter Book: config, pages, executed notebooks, offline MathJax."""
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage / name)
    for source in (root / "book").rglob("*"):
        if source.is_dir() or ".ipynb_checkpoints" in source.parts:
            continue
        relative = source.relative_to(root)
        target = stage / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ipynb":
            executed = executed_dir / relative
            if executed.is_file():
                shutil.copy2(executed, target)
        else:
            shutil.copy2(source, target)
    # Outside _static: Jupyter Book would add every .js file there to every page.
    shutil.copytree(_mathjax_folder(), stage / "_mathjax" / "mathjax")
    return stage


def render(stage: Path, output_parent: Path) -> Path:
    """Run ``jupyter-book build`` on the staged book; the HTML lands in ``output_parent/_build/html``."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage),
               "--path-output", str(output_parent)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            "jupyter-book build failed:\n" + result.stdout[-4000:] + result.stderr[-4000:]
        )
    return output_parent / "_build" / "html"


def build_book(root: Path | None = None, force: bool = False, only: list[str] | None = None,
               log=print) -> Path:
    """Execute every chapter (cached) and render the HTML book; returns the HTML folder."""
    root = project_root(root)
    out = build_dir(root)
    notebooks = chapter_notebooks(root)
    if only:
        notebooks = [nb for nb in notebooks if any(name in str(nb) for name in only)]
    library = library_fingerprint(root)
    for notebook in notebooks:
        log(f"[book] {notebook}: executing ...")
        run = execute_chapter(root, notebook, out / EXECUTED, force=force, library=library)
        state = "up to date, reused" if run.reused else "executed"
        log(f"[book] {notebook}: {state} ({run.seconds:.0f} s)")
    stage = stage_book(root, out / EXECUTED, out / STAGE)
    log("[book] rendering with jupyter-book ...")
    html = render(stage, out.parent) if out == root / "_build" else render(stage, out)
    log(f"[book] done: {html / 'index.html'}")
    return html


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "book",
        help="build the book (execute chapters, cached; render HTML)",
        description="Execute every chapter listed in _toc.yml with papermill, reusing executed "
        "copies whose notebook, parameters and dvdlib source are unchanged, then render the "
        "HTML book into _build/html with Jupyter Book (execution off). A failing chapter stops "
        "the build with the notebook and cell named.",
    )
    parser.add_argument("--force", action="store_true",
                        help="re-execute every chapter even if its cached copy is up to date")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="execute only chapters whose path contains NAME (all are rendered)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    try:
        build_book(force=args.force, only=args.only)
    except ChapterFailed as err:
        print(f"dvd book: error: {err}", file=sys.stderr)
        return 1
    return 0
