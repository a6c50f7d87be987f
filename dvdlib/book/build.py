"""Build the book: execute every chapter with papermill (cached), then render with Jupyter Book.

Jupyter Book 1's own execution cache keys on the notebook alone and misses changes in a helper
library, so the book runs papermill itself and keys each executed chapter on

    sha256(notebook bytes, its parameters, the dvdlib sources the chapter imports)

(:mod:`dvdlib.book.chapter_cache`). An executed chapter whose key matches is reused; a change to any
of these re-executes it, while editing the book's tools or its pages does not. Jupyter Book then
renders the executed copies with execution off, so the reader sees exactly what papermill
computed.

Staging fills in what must never be typed by hand: headline placeholders in the pages
(``{{ headline:<chapter>:<name> }}``, see :mod:`dvdlib.book.headlines`), the reproduction page's
tables of run times, hardware and parameters (marker lines ``<!-- dvdbook:chapter-runs -->`` and
``<!-- dvdbook:chapter-parameters -->``, from the executed notebooks' metadata), and a "rerun
this chapter" box after each chapter's title, generated from its parameters cell.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from dvdlib.book.chapter_cache import chapter_key, library_fingerprint
from dvdlib.book.chapters import chapter_notebooks
from dvdlib.book.execute import (RECORD, NotebookFailed, execute_notebook, finished_record,
                                 platform_info)
from dvdlib.book.parameters import notebook_parameters
from dvdlib.book.runs import rerun_command
from dvdlib.book.sphinx_extension import BOOK_CSS, BOOK_CSS_TEXT
from dvdlib.paths import build_dir, project_root

EXECUTED = "executed"  # _build/executed/<chapter path>.ipynb
JOBS = 2  # chapters executed at once by default: CI's two cores, one torch thread each
STAGE = "stage"  # _build/stage: the book as Jupyter Book sees it
SMOKE_FIELD = "dvdbook"  # source notebook metadata holding the smoke parameters
HEADLINES = "headlines"  # _build/headlines/<chapter>.json, written by the chapters
RUNS_MARKER = "<!-- dvdbook:chapter-runs -->"  # replaced by the table of run times and hardware
PARAMETERS_MARKER = "<!-- dvdbook:chapter-parameters -->"  # replaced by every chapter's parameters
FINDINGS_MARKER = "<!-- dvdbook:findings-table -->"  # replaced by every chapter's verdicts
RERUN_TAG = "dvdbook-rerun"  # tag of the injected "rerun this chapter" cell
# Readers come for the prose, the tables and the figures: code cells render collapsed (a "show
# code" toggle), and papermill's injected-parameters cell is dropped, since the rerun box already
# lists the values this build used (one place where a chapter's parameters are printed).
HIDE_INPUT_TAG, REMOVE_CELL_TAG = "hide-input", "remove-cell"
INJECTED_PARAMETERS_TAG = "injected-parameters"


@dataclass(frozen=True)
class ChapterRun:
    notebook: Path  # the source notebook, relative to the project root
    executed: Path  # the executed copy
    reused: bool  # True when the cached copy was up to date
    seconds: float  # execution time (of the run that made the copy)


def execute_chapter(root: Path, notebook: Path, out_dir: Path, parameters: dict | None = None,
                    force: bool = False, library: str | None = None,
                    build_dir: Path | None = None, log=None) -> ChapterRun:
    """Execute one chapter into ``out_dir`` unless an up-to-date executed copy is there.

    The copy is up to date when the key in its finished-run record (:mod:`dvdlib.book.execute`)
    is the chapter's key now. ``build_dir`` is the chapter's ``$DVD_BUILD_DIR`` (default:
    inherited). Raises :class:`~dvdlib.book.execute.NotebookFailed` naming the cell.
    """
    parameters = dict(parameters or {})
    library = library or library_fingerprint(root, notebook)
    key = chapter_key(root, notebook, parameters, library)
    executed = out_dir / notebook
    stored = finished_record(executed)
    if not force and stored.get("key") == key:
        return ChapterRun(notebook, executed, True, float(stored.get("seconds", 0.0)))

    def progress(done: int, total: int) -> None:
        if log is not None and 0 < done < total:
            log(f"[book] {notebook}: {done}/{total} cells done")

    run = execute_notebook(root / notebook, executed, parameters, record={"key": key},
                           build_dir=build_dir, name=str(notebook), progress=progress)
    return ChapterRun(notebook, executed, False, run.seconds)


def _mathjax_folder() -> Path:
    """MathJax 2, shipped as static files by the jupyter-server-mathjax package."""
    import jupyter_server_mathjax

    folder = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (folder / "MathJax.js").is_file():
        raise FileNotFoundError(f"MathJax.js not found under {folder}")
    return folder


def stage_book(root: Path, executed_dir: Path, stage: Path, headlines_dir: Path | None = None,
               log=print) -> Path:
    """Lay out the book for Jupyter Book: config, pages, executed notebooks, offline MathJax.

    Then fill in the staged copies (never the sources): headline placeholders from
    ``headlines_dir`` (default: ``<executed_dir>/../headlines``), the reproduction tables, and
    the rerun box of each chapter.
    """
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
    (stage / "_mathjax" / BOOK_CSS).write_text(BOOK_CSS_TEXT, encoding="utf-8")
    headlines_dir = headlines_dir if headlines_dir is not None else executed_dir.parent / HEADLINES
    fill_pages(root, executed_dir, stage, headlines_dir.parent, log=log)
    return stage


# ----------------------------------------------------------------------------- staged pages

def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _table_text(value) -> str:
    """A value for a Markdown table cell: one line, pipes escaped."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _doc_link(notebook: Path) -> str:
    """A MyST link to a chapter's page that shows its title, from any page of the book."""
    return "{doc}" + f"`/{notebook.with_suffix('').as_posix()}`"


def _platform_text(info: dict) -> str:
    memory = f", {info['memory_gib']:g} GiB memory" if info.get("memory_gib") else ""
    return (f"{info.get('cpu', '?')} ({info.get('cores', '?')} cores{memory}); "
            f"GPU: {info.get('gpu', '?')}; {info.get('os', '?')}, "
            f"Python {info.get('python', '?')}, torch {info.get('torch', '?')}")


def runs_table(root: Path, executed_dir: Path) -> str:
    """Markdown: how long each chapter took in this build, when, with which parameters, where."""
    rows, machines = [], []
    for notebook in chapter_notebooks(root):
        info = finished_record(executed_dir / notebook)
        if not info:
            rows.append(f"| {_doc_link(notebook)} | not executed in this build | | | |")
            continue
        given = info.get("parameters") or {}
        parameters = ", ".join(_code(f"{k}={v!r}") for k, v in given.items()) or "defaults"
        machine = info.get("platform")
        if machine:
            if machine not in machines:
                machines.append(machine)
            where = f"M{machines.index(machine) + 1}"
        else:
            where = "not recorded"
        finished = info.get("finished", "not recorded").replace("T", " ").replace("+00:00", "")
        rows.append(f"| {_doc_link(notebook)} | {_table_text(parameters)} | "
                    f"{float(info.get('seconds', 0)):.0f} s | {finished} | {where} |")
    table = ["| Chapter | Parameters | Time | Finished (UTC) | Machine |",
             "|---|---|---|---|---|", *rows]
    if machines:
        table += ["", "| Machine | CPU | Cores | Memory | GPU | OS | Python | torch |",
                  "|---|---|---|---|---|---|---|---|"]
        for number, info in enumerate(machines, start=1):
            memory = f"{info['memory_gib']:g} GiB" if info.get("memory_gib") else "?"
            table.append("| " + " | ".join(_table_text(v) for v in (
                f"M{number}", info.get("cpu", "?"), info.get("cores", "?"), memory,
                info.get("gpu", "?"), info.get("os", "?"), info.get("python", "?"),
                info.get("torch", "?"))) + " |")
    table += ["", f"This page was rendered on {_platform_text(platform_info())}."]
    return "\n".join(table)


def parameters_table(root: Path) -> str:
    """Markdown: every chapter's parameters with their defaults and meaning, from the notebooks."""

    rows = []
    for notebook in chapter_notebooks(root):
        declared = notebook_parameters(root / notebook)
        if not declared:
            rows.append(f"| {_doc_link(notebook)} | (none) | | |")
        for number, parameter in enumerate(declared.values()):
            chapter = _doc_link(notebook) if number == 0 else ""
            rows.append(f"| {chapter} | {_code(parameter.name)} | "
                        f"{_table_text(_code(parameter.source))} | "
                        f"{_table_text(parameter.help)} |")
    return "\n".join(["| Chapter | Parameter | Default | Meaning |", "|---|---|---|---|", *rows])


def rerun_box(notebook: Path, declared: dict, used: dict, seconds: float | None) -> str:
    """The Markdown of a chapter's "rerun this chapter" box (a closed dropdown admonition)."""

    settable = {name: used.get(name, p.default) for name, p in declared.items()
                if p.literal or name in used}
    ran = f" It took {seconds:.0f} s in this build." if seconds is not None else ""
    lines = [
        ":::{admonition} Rerun this chapter",
        ":class: tip dropdown",
        f"This page is the notebook `{notebook.as_posix()}`, executed by papermill for this "
        f"build.{ran} To rerun it from the repository root with other values (results go to "
        f"`results/{notebook.stem}/<parameters>/`):",
        "",
        "```bash",
        rerun_command(notebook, settable, one_per_line=len(settable) > 1),
        "```",
        "",
        "or with papermill alone:",
        "",
        "```bash",
        rerun_command(notebook, settable, program=".venv/bin/papermill", output="out.ipynb",
                      one_per_line=len(settable) > 1),
        "```",
    ]
    if declared:
        lines += ["", "| Parameter | Value in this build | Meaning |", "|---|---|---|"]
        for name, parameter in declared.items():
            value = repr(used[name]) if name in used else parameter.source
            lines.append(f"| {_code(name)} | {_table_text(_code(value))} | "
                         f"{_table_text(parameter.help)} |")
    else:
        lines += ["", "This chapter has no parameters cell."]
    lines.append(":::")
    return "\n".join(lines)


def inject_rerun_box(nb: dict, box: str) -> dict:
    """Put ``box`` in a Markdown cell right after the notebook's title line."""
    cells = nb.setdefault("cells", [])
    cells[:] = [c for c in cells if RERUN_TAG not in c.get("metadata", {}).get("tags", [])]
    with_ids = (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5)  # ids since 4.5
    new_cell = {"cell_type": "markdown", "metadata": {"tags": [RERUN_TAG]}, "source": box}
    rest_cell = {"cell_type": "markdown", "metadata": {}, "source": ""}
    if with_ids:
        new_cell["id"], rest_cell["id"] = "dvdbook-rerun", "dvdbook-rerun-rest"
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        lines = _cell_text(cell).splitlines(keepends=True)
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
        if title is None:
            continue
        rest = "".join(lines[title + 1:]).strip("\n")
        cell["source"] = "".join(lines[:title + 1]).rstrip("\n")
        inserted = [new_cell]
        if rest:
            inserted.append({**rest_cell, "source": rest})
        cells[index + 1:index + 1] = inserted
        return nb
    cells.insert(0, new_cell)
    return nb


def collapse_code(nb: dict) -> dict:
    """Tag every code cell ``hide-input`` (collapsed, with a toggle, in the rendered book) and
    papermill's injected-parameters cell ``remove-cell``; a cell already tagged to be removed or
    hidden keeps its tags."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if INJECTED_PARAMETERS_TAG in tags:
            tags.append(REMOVE_CELL_TAG)
        elif not any(tag.startswith(("remove", "hide")) for tag in tags):
            tags.append(HIDE_INPUT_TAG)
    return nb


def fill_pages(root: Path, executed_dir: Path, stage: Path, headlines_parent: Path,
               log=print) -> None:
    """Fill the staged pages: headline placeholders, reproduction tables, rerun boxes."""
    from dvdlib.book import headlines

    generated = {RUNS_MARKER: lambda: runs_table(root, executed_dir),
                 PARAMETERS_MARKER: lambda: parameters_table(root),
                 FINDINGS_MARKER: lambda: headlines.findings_table(headlines_parent)}
    for page in sorted((stage / "book").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for marker, make in generated.items():
            if marker in text:
                text = re.sub(rf"^[ \t]*{re.escape(marker)}[ \t]*$",
                              lambda _match, make=make: make(), text, flags=re.MULTILINE)
        text, found = headlines.substitute(text, headlines_parent)
        missing = [f"{p.chapter}:{p.key}" for p in found if p.value is None]
        if missing:
            log(f"[book] {page.relative_to(stage)}: not computed in this build: "
                + ", ".join(missing))
        page.write_text(text, encoding="utf-8")

    for notebook in chapter_notebooks(root):
        staged = stage / notebook
        if not staged.is_file():
            continue
        nb = json.loads(staged.read_text(encoding="utf-8"))
        info = nb.get("metadata", {}).get(RECORD, {})
        box = rerun_box(notebook, notebook_parameters(root / notebook),
                        info.get("parameters") or {}, info.get("seconds"))
        staged.write_text(json.dumps(collapse_code(inject_rerun_box(nb, box)), indent=1,
                                     ensure_ascii=False),
                          encoding="utf-8")


def render(stage: Path, output_parent: Path) -> Path:
    """Run ``jupyter-book build`` on the staged book; the HTML lands in
    ``output_parent/_build/html``."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(stage),
               "--path-output", str(output_parent)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            "jupyter-book build failed:\n" + result.stdout[-4000:] + result.stderr[-4000:]
        )
    return output_parent / "_build" / "html"


def smoke_parameters(root: Path, notebook: Path) -> dict:
    """A chapter's cheap parameters for tests, from its metadata ``dvdbook.smoke`` (may be empty).

    They live in the notebook beside its ``parameters`` cell so a reader sees both; the test run
    (nbval) and ``dvd book --smoke`` apply them with papermill.
    """
    nb = json.loads((root / notebook).read_text(encoding="utf-8"))
    smoke = nb.get("metadata", {}).get(SMOKE_FIELD, {}).get("smoke", {})
    if not isinstance(smoke, dict):
        raise ValueError(f"{notebook}: metadata.{SMOKE_FIELD}.smoke must be a mapping of "
                         f"parameter names to values, got {smoke!r}")
    return smoke


def write_smoke_notebooks(root: Path, dest: Path) -> list[Path]:
    """Copies of every chapter with its smoke parameters injected (not executed), for nbval.

    ``dest`` must lie inside the project so the copies find dvdlib's project root when run.
    """
    import nbformat
    from papermill.iorw import load_notebook_node  # adds the cell metadata papermill expects
    from papermill.parameterize import parameterize_notebook

    root, dest = project_root(root), Path(dest).resolve()
    if root not in (dest, *dest.parents):
        raise ValueError(f"smoke notebooks must be written inside the project {root}, not {dest}")
    if dest.exists():
        shutil.rmtree(dest)
    written = []
    for notebook in chapter_notebooks(root):
        nb = load_notebook_node(str(root / notebook))
        smoke = smoke_parameters(root, notebook)
        if smoke:
            nb = parameterize_notebook(nb, smoke)
        target = dest / notebook.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target)
    return written


def chosen_chapters(notebooks: list[Path], only: list[str]) -> list[Path]:
    """The chapters whose path contains one of the names of ``only`` (``dvd book --only``); a
    ValueError naming a name that is empty or matches no chapter, with the chapters there are."""
    for name in only:
        if not name.strip() or not any(name in str(nb) for nb in notebooks):
            raise ValueError(f"--only {name!r} matches no chapter; accepted: (part of) a chapter's "
                             f"file name: {', '.join(nb.stem for nb in notebooks)}")
    return [nb for nb in notebooks if any(name in str(nb) for name in only)]


def execute_chapters(root: Path, notebooks: list[Path], out: Path, *, force: bool = False,
                     smoke: bool = False, jobs: int = JOBS, log=print) -> list[ChapterRun]:
    """Execute ``notebooks`` (cached, :func:`execute_chapter`) into ``out``, ``jobs`` side by side.

    Each chapter runs in a kernel process of its own and writes only its own folders, so chapters
    can run at once; a toy-world chapter uses one torch thread, so two fill two cores. When one
    fails, no chapter not yet started starts, the running ones finish (nothing is left
    half-written), and the first failure is raised. Returns the runs in the order of ``notebooks``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs {jobs!r}: accepted: a whole number of chapters at once, >= 1")

    failed = threading.Event()  # set by the first failure: no chapter starts after it

    def one(notebook: Path) -> ChapterRun | None:
        if failed.is_set():
            return None
        parameters = smoke_parameters(root, notebook) if smoke else {}
        log(f"[book] {notebook}: executing{' (smoke parameters)' if smoke else ''} ...")
        try:
            run = execute_chapter(root, notebook, out / EXECUTED, parameters=parameters,
                                  force=force, build_dir=out, log=log)
        except BaseException:
            failed.set()
            raise
        state = "up to date, reused" if run.reused else "executed"
        log(f"[book] {notebook}: {state} ({run.seconds:.0f} s)")
        return run

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each thread waits on a kernel process
        futures = [pool.submit(one, notebook) for notebook in notebooks]
        wait(futures)  # the running chapters finish either way
    return [future.result() for future in futures]  # raises the first failure, in notebook order


def build_book(root: Path | None = None, force: bool = False, only: list[str] | None = None,
               log=print, smoke: bool = False, out: Path | None = None, jobs: int = JOBS) -> Path:
    """Execute every chapter (cached, ``jobs`` at once: :func:`execute_chapters`) and render the
    HTML book; returns the HTML folder.

    ``smoke`` runs each chapter with its smoke parameters (a quick book for tests); ``out`` is the
    build folder (default: :func:`dvdlib.paths.build_dir`); the chapters' kernels see it as
    ``$DVD_BUILD_DIR``, so their images and headline numbers land there too.
    """
    root = project_root(root)
    out = Path(out).resolve() if out is not None else build_dir(root)
    notebooks = chapter_notebooks(root)
    if only:
        notebooks = chosen_chapters(notebooks, only)
    execute_chapters(root, notebooks, out, force=force, smoke=smoke, jobs=jobs, log=log)
    stage = stage_book(root, out / EXECUTED, out / STAGE, out / HEADLINES, log=log)
    log("[book] rendering with jupyter-book ...")
    # jupyter-book writes <path-output>/_build/html.
    html = render(stage, out.parent) if out.name == "_build" else render(stage, out)
    log(f"[book] done: {html / 'index.html'}")
    return html
