"""Runs and sweeps: execute a chapter with chosen parameters into a results folder of its own.

``dvd run NOTEBOOK -p name value ...`` executes one notebook with papermill into

    results/<notebook stem>/<name>=<value>,.../output.ipynb   (+ params.json, done.json)

and ``dvd sweep NOTEBOOK --grid name=v1,v2 ...`` does so for every combination of the grid, then
writes a summary table (CSV) of the runs with their parameters and the headline numbers each run
saved with :mod:`dvdlib.headlines`.

Parameters are checked against the notebook's ``parameters`` cell before anything runs: an
unknown name, or a value whose type does not fit the default's, is an error naming the parameter
and what it accepts. Each run gets its own build folder (``DVD_BUILD_DIR`` = the run folder), so
runs never overwrite each other's headline files or caches. A run is marked finished by writing
``done.json`` atomically after its notebook was saved. A rerun skips every finished run whose
notebook and parameters are unchanged, so an interrupted sweep resumes where it stopped; a run
finished with an earlier dvdlib is kept too but flagged (in the log and the summary), and
``--force`` reruns it.
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import io
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dvdlib import headlines
from dvdlib.paths import BUILD_DIR_ENV, project_root
from dvdlib.store import atomic_write_bytes

RESULTS = "results"  # <project root>/results/<notebook stem>/<run name>/
OUTPUT = "output.ipynb"
PARTIAL = "output.partial.ipynb"
FAILED = "failed.ipynb"  # the partial notebook of a failed run, kept for reading
PARAMS = "params.json"
DONE = "done.json"  # written last and atomically: its presence means the run finished
DEFAULTS_NAME = "defaults"  # the run folder of a run that sets no parameter
_MAX_NAME = 200  # folder names longer than this are shortened and suffixed with a hash

# The types a parameter accepts, given its default's type. A float also takes an int (3 means
# 3.0); bool is listed before int because bool is a subclass of int and must not pass as one.
_ACCEPTED = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


class RunFailed(RuntimeError):
    """A notebook raised while running; the message names the notebook, the cell and the error."""


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell."""

    name: str
    source: str  # the default as written, e.g. '""' or '8'
    default: object  # the default's value; None also when it is not a literal
    literal: bool  # False when the default is an expression (any value is then accepted)
    help: str

    @property
    def type_name(self) -> str:
        if not self.literal or self.default is None:
            return "any"
        return type(self.default).__name__

    def accepts(self, value) -> bool:
        if not self.literal or self.default is None:
            return True
        accepted = _ACCEPTED.get(type(self.default), (type(self.default),))
        if isinstance(value, bool) and bool not in accepted:
            return False
        return isinstance(value, accepted)


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


# ----------------------------------------------------------------------------- parameters

def parse_value(text: str):
    """A value as papermill's ``-p`` reads it: True/False/None, int, float, else str."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def notebook_parameters(notebook: str | Path) -> dict[str, NotebookParameter]:
    """The parameters declared in the notebook's cell tagged ``parameters``, in order."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    parameters = {}
    for name, info in declared.items():
        source = str(info.get("default", ""))
        try:
            default, literal = ast.literal_eval(source), True
        except (ValueError, SyntaxError):
            default, literal = None, False
        parameters[name] = NotebookParameter(name, source, default, literal,
                                             str(info.get("help", "") or ""))
    return parameters


def _accepted_list(declared: dict[str, NotebookParameter]) -> str:
    return ", ".join(f"{p.name} ({p.type_name})" for p in declared.values()) or "none"


def check_parameters(notebook: str | Path, given: dict,
                     declared: dict[str, NotebookParameter] | None = None) -> dict:
    """``given`` checked against the notebook's parameters cell; returns the values to inject.

    Raises :class:`ParameterError` naming the bad parameter and the accepted names or type.
    An int given for a float parameter is converted to float.
    """
    declared = notebook_parameters(notebook) if declared is None else declared
    checked = {}
    for name, value in given.items():
        if name not in declared:
            if not declared:
                raise ParameterError(f"{notebook} has no cell tagged 'parameters', so it takes no "
                                     f"parameter (got {name!r})")
            raise ParameterError(f"unknown parameter {name!r} for {notebook}; accepted: "
                                 f"{_accepted_list(declared)}")
        parameter = declared[name]
        if not parameter.accepts(value):
            accepted = " or ".join(t.__name__ for t in _ACCEPTED.get(type(parameter.default),
                                                                      (type(parameter.default),)))
            raise ParameterError(
                f"parameter {name!r} of {notebook} takes {accepted} (its default is "
                f"{parameter.source}), got {type(value).__name__} {value!r}"
                + ("; give a string that looks like a number or True/False/None with -r"
                   if parameter.type_name == "str" else "")
            )
        if parameter.type_name == "float" and isinstance(value, int):
            value = float(value)
        checked[name] = value
    return checked


def pairs_to_dict(pairs, raw: bool = False, into: dict | None = None) -> dict:
    """``[[name, value], ...]`` from ``-p``/``-r`` into a dict; a name given twice is an error."""
    result = {} if into is None else into
    for name, text in pairs or []:
        if name in result:
            raise ParameterError(f"parameter {name!r} given more than once")
        result[name] = text if raw else parse_value(text)
    return result


def parse_grid(specs: list[str]) -> dict[str, list]:
    """``["name=v1,v2", ...]`` into ``{name: [v1, v2]}``; values are parsed like ``-p``.

    A name given in several ``--grid`` options collects the values of all of them (the way to
    sweep over values that contain a comma).
    """
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name or values == "":
            raise ParameterError(f"bad --grid {spec!r}: write name=value1,value2,...")
        grid.setdefault(name, []).extend(parse_value(v) for v in values.split(","))
    for name, values in grid.items():
        seen = set()
        for value in values:
            identity = (type(value).__name__, repr(value))  # 1, 1.0 and True differ here
            if identity in seen:
                raise ParameterError(f"--grid {name} lists the value {value!r} twice")
            seen.add(identity)
    return grid


def combinations(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid, the first name varying slowest."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


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
    from dvdlib.book import chapter_notebooks

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


# ----------------------------------------------------------------------------- running

def _write_json(path: Path, data) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1, ensure_ascii=False, default=str).encode())


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _failure_message(notebook: Path, partial: Path, output: str) -> str:
    """The failing cell and error, read from papermill's partly executed notebook."""
    nb = _read_json(partial)
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("metadata", {}).get("papermill", {}).get("exception"):
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            what = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else "an error"
            return (f"{notebook} failed in cell {index} (execution count "
                    f"{cell.get('execution_count')}): {what}")
    return f"{notebook} failed before any cell ran:\n{output[-3000:]}"


def run_notebook(notebook: str | Path, parameters: dict | None = None,
                 results: str | Path | None = None, force: bool = False,
                 root: Path | None = None, checked: bool = False,
                 log=print) -> RunResult:
    """Execute ``notebook`` with ``parameters`` into its own run folder, unless already finished.

    The run folder is ``<results>/<notebook stem>/<run_name(parameters)>``. The notebook runs in
    its own folder (like the book) with ``DVD_BUILD_DIR`` set to the run folder. A finished run
    of the same notebook and parameters is reused unless ``force``; ``earlier_library`` then says
    whether dvdlib changed since it ran.
    Raises :class:`ParameterError` before running anything, :class:`RunFailed` if a cell fails.
    """
    from dvdlib.book import chapter_key, library_fingerprint

    root = project_root(root)
    notebook = Path(notebook).resolve()
    shown = _display_path(notebook, root)
    declared = notebook_parameters(notebook)
    parameters = dict(parameters or {})
    if not checked:
        parameters = check_parameters(shown, parameters, declared)
    parameters = _ordered(parameters, declared)

    results = Path(results) if results is not None else root / RESULTS
    folder = results / notebook.stem / run_name(parameters)
    key = chapter_key(root, notebook, parameters, library_fingerprint(root))
    source_key = chapter_key(root, notebook, parameters, "")  # the notebook and parameters only
    done = _read_json(folder / DONE)
    if not force and done.get("source_key") == source_key and (folder / OUTPUT).is_file():
        return RunResult(shown, folder, parameters, True, float(done.get("seconds", 0.0)),
                         earlier_library=done.get("key") != key)

    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE).unlink(missing_ok=True)  # from here on the folder is not a finished run
    # Headlines of an older run must not pass for this run's.
    for stale in (folder / headlines.FOLDER).glob("*.json"):
        stale.unlink()
    _write_json(folder / PARAMS, {"notebook": str(shown), "parameters": parameters})
    partial = folder / PARTIAL
    command = [sys.executable, "-m", "papermill", str(notebook), str(partial),
               "--cwd", str(notebook.parent), "--no-progress-bar",
               "-y", json.dumps(parameters)]
    environment = {**os.environ, BUILD_DIR_ENV: str(folder.resolve())}
    log(f"[run] {shown} {run_name(parameters)}: executing ...")
    start = time.perf_counter()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        message = _failure_message(shown, partial, completed.stdout + completed.stderr)
        if partial.is_file():
            os.replace(partial, folder / FAILED)
        raise RunFailed(f"{message} (partly executed notebook: {folder / FAILED})")
    os.replace(partial, folder / OUTPUT)
    (folder / FAILED).unlink(missing_ok=True)
    _write_json(folder / DONE, {
        "key": key, "source_key": source_key, "seconds": round(seconds, 1),
        "parameters": parameters,
        "notebook": str(shown),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
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
    root = project_root(root)
    notebook = Path(notebook).resolve()
    shown = _display_path(notebook, root)
    fixed = dict(fixed or {})
    if not grid:
        raise ParameterError("a sweep needs at least one --grid name=value1,value2,...")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ParameterError(f"parameters given both with -p and --grid: {', '.join(both)}")
    declared = notebook_parameters(notebook)
    plan = [check_parameters(shown, {**fixed, **combo}, declared) for combo in combinations(grid)]

    results = Path(results) if results is not None else root / RESULTS
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
        except RunFailed as err:
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


# ----------------------------------------------------------------------------- commands

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


_RUN_EPILOG = """\
values are read like papermill's -p: True, False, None, integers and decimals become those
Python values, anything else a string (-r keeps a value a string). Each value is checked
against the notebook's parameters cell before anything runs.

examples:
  dvd run book/01_dominancebench.ipynb -p top_n 12
      -> results/01_dominancebench/top_n=12/output.ipynb (and params.json, done.json)
  dvd run 01_dominancebench -p bench_csv /data/dominancebench_300.csv
  dvd run 01_dominancebench --force          rerun even if finished
"""

_SWEEP_EPILOG = """\
Every combination of the --grid values runs, each in its own folder as with `dvd run`
(give --grid NAME=... several times to sweep over values that contain a comma).
A finished run is marked by done.json (written atomically last); rerunning the same sweep
skips the runs finished with the same notebook, so an interrupted sweep resumes where it
stopped (a run finished before dvdlib changed is kept and flagged; --force reruns all). A
failed run is recorded and the sweep goes on; the exit status is then 1. The summary CSV has
one row per run: folder, status (ran, reused, "reused, earlier dvdlib", failed), seconds,
parameters and the headline numbers the run saved (dvdlib.headlines), one column per
<chapter>:<name>.

examples:
  dvd sweep 01_dominancebench --grid top_n=4,8,12
      -> results/01_dominancebench/top_n=4/ ... and results/01_dominancebench/sweep_top_n.csv
  dvd sweep book/02_data_diversity.ipynb --grid k=1,4,32 --grid seed=0,1 -p steps 20
"""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebook", metavar="NOTEBOOK",
                        help="a notebook path, or a chapter of the book named by (part of) its "
                             "file name, e.g. 01_dominancebench")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a parameter (value parsed like papermill's -p); repeatable")
    parser.add_argument("-r", "--raw", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="set a string parameter to VALUE as given; repeatable")
    parser.add_argument("--results", metavar="DIR", type=Path,
                        help="folder for the runs (default: results/ at the repository root)")
    parser.add_argument("--force", action="store_true",
                        help="rerun even when a finished run exists")


def add_parser(subparsers) -> None:
    run = subparsers.add_parser(
        "run", help="run one notebook with parameters into a results folder",
        description="Execute NOTEBOOK with papermill and the given parameters into\n"
        "results/<notebook stem>/<name>=<value>,.../ (output.ipynb, params.json, done.json;\n"
        "the notebook's headline numbers under headlines/). The notebook runs in its own\n"
        "folder, with DVD_BUILD_DIR set to the run folder. A finished run of the same\n"
        "notebook and parameters is not repeated (--force reruns it).",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(run)
    run.set_defaults(func=_run)

    sweep_parser = subparsers.add_parser(
        "sweep", help="run one notebook over a grid of parameters (resumable), with a summary",
        description="Run NOTEBOOK once for every combination of the --grid values (plus fixed\n"
        "-p/-r parameters), each into its own results folder as `dvd run` does, and write a\n"
        "summary CSV of the runs with their parameters and headline numbers.",
        epilog=_SWEEP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(sweep_parser)
    sweep_parser.add_argument("--grid", action="append", metavar="NAME=V1,V2,...", required=True,
                              help="values of one parameter to sweep over; repeat for more "
                                   "parameters (all combinations run)")
    sweep_parser.add_argument("--summary", metavar="CSV", type=Path,
                              help="where to write the summary (default: <results>/<stem>/"
                                   "sweep_<grid names>.csv)")
    sweep_parser.set_defaults(func=_sweep)


def _given(args) -> dict:
    given = pairs_to_dict(args.parameter)
    return pairs_to_dict(args.raw, raw=True, into=given)


def _run(args) -> int:
    root = project_root()
    notebook = resolve_notebook(args.notebook, root)
    try:
        run = run_notebook(notebook, _given(args), results=args.results, force=args.force,
                           root=root)
    except RunFailed as err:
        print(f"dvd run: error: {err}", file=sys.stderr)
        return 1
    if run.reused:
        changed = "; dvdlib has changed since" if run.earlier_library else ""
        print(f"[run] finished earlier: {run.folder / OUTPUT}{changed} (--force reruns it)")
    return 0


def _sweep(args) -> int:
    root = project_root()
    notebook = resolve_notebook(args.notebook, root)
    outcome = sweep(notebook, parse_grid(args.grid), fixed=_given(args), results=args.results,
                    summary=args.summary, force=args.force, root=root)
    return 1 if outcome.failures else 0
