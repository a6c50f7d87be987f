"""Runs and sweeps: execute a chapter with chosen parameters into a results folder of its own.

:func:`run_notebook` executes one notebook with papermill into

    results/<notebook stem>/<name>=<value>,.../output.ipynb   (+ params.json, done.json)

and :func:`sweep` does so for every combination of a grid, then writes a summary table (CSV) of
the runs with their parameters and the headline numbers each run saved with
:mod:`dvdlib.book.headlines`. They are ``dvd run`` and ``dvd sweep``'s work
(:mod:`dvdlib.book.commands.run`, :mod:`dvdlib.book.commands.sweep`).

Parameters are checked against the notebook's declarations before anything runs
(:mod:`dvdlib.book.parameters`). Each run gets its own build folder (``DVD_BUILD_DIR`` = the run
folder), so runs never overwrite each other's headline files or caches. The notebook is executed
by the book's one executor (:mod:`dvdlib.book.execute`): a run is finished when its
``output.ipynb``, moved into place atomically, carries its finished-run record (``done.json``
repeats the record for scripts). A rerun skips every finished run whose notebook and parameters
are unchanged, so an interrupted sweep resumes where it stopped; a run finished with an earlier
dvdlib is kept too but flagged (in the log and the summary), and ``force`` reruns it.

- naming: :func:`run_name`, :func:`resolve_notebook`, :func:`notebook_root`, :func:`chapter_root`;
- running: :func:`run_notebook`, :func:`sweep`;
- :func:`rerun_command`: the shell command that reruns a notebook with its parameters.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from dvdlib.book import headlines
from dvdlib.book.chapter_cache import chapter_key, library_fingerprint
from dvdlib.book.chapters import chapter_notebooks
from dvdlib.book.execute import NotebookFailed, execute_notebook, finished_record
from dvdlib.book.parameters import (NotebookParameter, ParameterError, check_parameters,
                                    check_renamed, combinations, notebook_parameters, parse_value)
from dvdlib.paths import project_root
from dvdlib.store import atomic_write_bytes

RESULTS = "results"  # results/<notebook stem>/<run name>/: `dvd run` in the working directory
OUTPUT = "output.ipynb"
FAILED = "failed.ipynb"  # the partial notebook of a failed run, kept for reading
PARAMS = "params.json"
DONE = "done.json"  # the finished run's record (as in output.ipynb), written last, for scripts
DEFAULTS_NAME = "defaults"  # the run folder of a run that sets no parameter
_MAX_NAME = 200  # folder names longer than this are shortened and suffixed with a hash


@dataclass(frozen=True)
class RunResult:
    notebook: Path
    folder: Path  # the run folder: output.ipynb, params.json, done.json, headlines/
    parameters: dict
    reused: bool  # True when a finished run was found and not repeated
    seconds: float
    earlier_library: bool = False  # reused, but finished with a dvdlib that has changed since


@dataclass
class SweepResult:
    runs: list[RunResult] = field(default_factory=list)
    failures: list[tuple[dict, str]] = field(default_factory=list)  # (parameters, error)
    summary: Path | None = None


# ----------------------------------------------------------------------------- naming

def _value_text(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _safe(text: str) -> str:
    """Text usable in a folder name: unusual characters (including / , =) as %XX."""
    keep = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-")
    return "".join(c if c in keep else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


def run_name(parameters: dict) -> str:
    """The run folder's name: ``name=value,...`` in the given order, or ``defaults``."""
    if not parameters:
        return DEFAULTS_NAME
    name = ",".join(f"{_safe(k)}={_safe(_value_text(v))}" for k, v in parameters.items())
    if len(name) > _MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = f"{name[:_MAX_NAME - 13]}~{digest}"
    return name


def _ordered(parameters: dict, declared: dict[str, NotebookParameter]) -> dict:
    """The parameters in the notebook's order (so folder names do not depend on -p order)."""
    order = {name: i for i, name in enumerate(declared)}
    return dict(sorted(parameters.items(), key=lambda item: order.get(item[0], len(order))))


def resolve_notebook(name: str | Path, root: Path) -> Path:
    """A notebook path, or a chapter of the book named by (part of) its file name."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    chapters = chapter_notebooks(root)
    matches = [nb for nb in chapters if nb.stem == str(name)] or \
              [nb for nb in chapters if str(name) in str(nb)]
    if len(matches) == 1:
        return (root / matches[0]).resolve()
    listing = ", ".join(str(nb) for nb in chapters) or "none"
    if matches:
        raise FileNotFoundError(f"{str(name)!r} matches several chapters: "
                                f"{', '.join(map(str, matches))}; give one of them")
    raise FileNotFoundError(f"no notebook {str(name)!r}: give a path to an .ipynb file or a "
                            f"chapter name; chapters: {listing}")


def _display_path(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root)
    except ValueError:
        return path


def notebook_root(notebook: Path, root: Path | None = None) -> Path:
    """The checkout a notebook belongs to: ``root`` if given, else the one holding the notebook,
    else the one this dvdlib was installed from (a notebook of one's own elsewhere)."""
    if root is not None:
        return project_root(root)
    try:
        return project_root(Path(notebook).resolve().parent)
    except FileNotFoundError:
        return library_root()


def library_root() -> Path:
    """The checkout this dvdlib runs from (an editable install), found from any folder."""
    return project_root(Path(__file__).resolve().parent)


def chapter_root() -> Path:
    """The checkout whose chapters the command names: the one around the working directory,
    else dvdlib's own, so ``dvd run`` works from any folder."""
    try:
        return project_root()
    except FileNotFoundError:
        return library_root()


# ----------------------------------------------------------------------------- running

def _write_json(path: Path, data) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1, ensure_ascii=False, default=str).encode())


def run_notebook(notebook: str | Path, parameters: dict | None = None,
                 results: str | Path | None = None, force: bool = False,
                 root: Path | None = None, checked: bool = False,
                 log=print) -> RunResult:
    """Execute ``notebook`` with ``parameters`` into its own run folder, unless already finished.

    The run folder is ``<results>/<notebook stem>/<run_name(parameters)>``. The notebook runs in
    its own folder (like the book) with ``DVD_BUILD_DIR`` set to the run folder. A finished run
    of the same notebook and parameters is reused unless ``force``; ``earlier_library`` then says
    whether dvdlib changed since it ran.
    Raises :class:`ParameterError` before running anything, :class:`NotebookFailed` if a cell fails.
    """
    notebook = Path(notebook).resolve()
    root = notebook_root(notebook, root)
    shown = _display_path(notebook, root)
    declared = notebook_parameters(notebook)
    parameters = dict(parameters or {})
    if not checked:
        parameters = check_parameters(shown, parameters, declared)
    parameters = _ordered(parameters, declared)

    results = Path(results) if results is not None else root / RESULTS
    folder = results.absolute() / notebook.stem / run_name(parameters)
    key = chapter_key(root, notebook, parameters, library_fingerprint(root, notebook))
    source_key = chapter_key(root, notebook, parameters, "")  # the notebook and parameters only
    done = finished_record(folder / OUTPUT)
    if not force and done.get("source_key") == source_key:
        return RunResult(shown, folder, parameters, True, float(done.get("seconds", 0.0)),
                         earlier_library=done.get("key") != key)

    folder.mkdir(parents=True, exist_ok=True)
    # From here on the folder is not a finished run, and an older run's headlines must not pass
    # for this run's.
    (folder / DONE).unlink(missing_ok=True)
    (folder / OUTPUT).unlink(missing_ok=True)
    for stale in (folder / headlines.FOLDER).glob("*.json"):
        stale.unlink()
    _write_json(folder / PARAMS, {"notebook": str(shown), "parameters": parameters})
    name = run_name(parameters)
    log(f"[run] {shown} {name}: executing ...")
    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if 0 < done < total:
            log(f"[run] {shown} {name}: {done}/{total} cells done "
                f"({time.perf_counter() - start:.0f} s)")

    run = execute_notebook(notebook, folder / OUTPUT, parameters, build_dir=folder,
                           record={"key": key, "source_key": source_key, "notebook": str(shown)},
                           failed=folder / FAILED, name=str(shown), progress=progress)
    # The output's own record marks the run finished; done.json repeats it for scripts.
    _write_json(folder / DONE, run.record)
    seconds = run.seconds
    log(f"[run] {shown} {run_name(parameters)}: done in {seconds:.0f} s -> {folder / OUTPUT}")
    return RunResult(shown, folder, parameters, False, seconds)


def _write_summary(path: Path, rows: list[dict]) -> None:
    """The summary CSV, written whole through a temporary file (readable at any moment)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue().encode())


def sweep(notebook: str | Path, grid: dict[str, list], fixed: dict | None = None,
          results: str | Path | None = None, summary: str | Path | None = None,
          force: bool = False, root: Path | None = None, log=print) -> SweepResult:
    """Run ``notebook`` for every combination of ``grid`` (plus ``fixed`` parameters).

    Every combination is checked before the first run. Finished runs are skipped;
    a failing run is recorded and the sweep goes on. The summary CSV (default
    ``<results>/<stem>/sweep_<grid names>.csv``) has one row per combination: run folder,
    status, seconds, parameters, and every headline number the run saved, as
    ``<chapter>:<name>`` columns. It is rewritten after each run.
    """
    if summary is not None and Path(summary).suffix.lower() != ".csv":
        raise ValueError(f"summary {str(summary)!r}: the summary is written as CSV; name a file "
                         f"ending in .csv")
    notebook = Path(notebook).resolve()
    root = notebook_root(notebook, root)
    shown = _display_path(notebook, root)
    fixed = dict(fixed or {})
    if not grid:
        raise ParameterError("a sweep needs at least one --grid name=value1,value2,...")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ParameterError(f"parameters given both with -p and --grid: {', '.join(both)}")
    declared = notebook_parameters(notebook)
    check_renamed(grid, declared, "--grid")
    plan = [check_parameters(shown, {**fixed, **combo}, declared) for combo in combinations(grid)]

    results = (Path(results) if results is not None else root / RESULTS).absolute()
    summary = Path(summary) if summary is not None else \
        results / notebook.stem / f"sweep_{'+'.join(_safe(n) for n in grid)}.csv"
    outcome = SweepResult(summary=summary)
    rows = []
    for number, parameters in enumerate(plan, start=1):
        log(f"[sweep] {number}/{len(plan)}: {run_name(_ordered(parameters, declared))}")
        row = {"run": run_name(_ordered(parameters, declared))}
        try:
            run = run_notebook(notebook, parameters, results=results, force=force, root=root,
                               checked=True, log=log)
        except NotebookFailed as err:
            outcome.failures.append((parameters, str(err)))
            log(f"[sweep] failed: {err}")
            row.update(status="failed", seconds="",
                       **{k: _value_text(v) for k, v in parameters.items()})
        else:
            outcome.runs.append(run)
            status = "ran"
            if run.reused:
                status = "reused, earlier dvdlib" if run.earlier_library else "reused"
                log(f"[sweep] finished earlier, skipped ({run.folder})"
                    + ("; dvdlib has changed since (--force reruns it)"
                       if run.earlier_library else ""))
            row.update(status=status, seconds=round(run.seconds, 1),
                       **{k: _value_text(v) for k, v in parameters.items()},
                       **headlines.flat_values(run.folder))
        rows.append(row)
        _write_summary(summary, rows)
    log(f"[sweep] {len(outcome.runs)} finished, {len(outcome.failures)} failed; summary: {summary}")
    return outcome


# ----------------------------------------------------------------------------- rerunning

def _command_value(value) -> tuple[str, str]:
    """The option and text that give ``value`` back through papermill's/our -p parsing."""
    if isinstance(value, str) and not isinstance(parse_value(value), str):
        return "-r", value  # a string like "8" or "None" must stay a string
    return "-p", _value_text(value)


def rerun_command(notebook: str | Path, parameters: dict, program: str = ".venv/bin/dvd run",
                  output: str | None = None, one_per_line: bool = False) -> str:
    """A shell command that reruns ``notebook`` with ``parameters``.

    ``program`` is ``.venv/bin/dvd run`` (a results folder per parameter set) or
    ``.venv/bin/papermill`` (then ``output`` names the executed notebook to write).
    ``one_per_line`` puts each parameter on a continuation line of its own.
    """
    head = [str(notebook)]
    if output is not None:
        head += [output, "--cwd", Path(notebook).parent.as_posix()]
    pieces = [program + " " + " ".join(shlex.quote(w) for w in head)]
    for name, value in parameters.items():
        option, text = _command_value(value)
        pieces.append(" ".join(shlex.quote(w) for w in (option, name, text)))
    return (" \\\n    " if one_per_line else " ").join(pieces)
