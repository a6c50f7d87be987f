"""Runs and sweeps: execute a chapter with chosen parameters into a results folder of its own.

``dvd run NOTEBOOK -p name value ...`` executes one notebook with papermill into

    results/<notebook stem>/<name>=<value>,.../output.ipynb   (+ params.json, done.json)

and ``dvd sweep NOTEBOOK --grid name=v1,v2 ...`` does so for every combination of the grid, then
writes a summary table (CSV) of the runs with their parameters and the headline numbers each run
saved with :mod:`dvdlib.book.headlines`.

Parameters are checked against the notebook's ``parameters`` cell before anything runs: an
unknown name, or a value whose type does not fit the default's, is an error naming the parameter
and what it accepts. Each run gets its own build folder (``DVD_BUILD_DIR`` = the run folder), so
runs never overwrite each other's headline files or caches. The notebook is executed by the
book's one executor (:mod:`dvdlib.book.execute`): a run is finished when its ``output.ipynb``,
moved into place atomically, carries its finished-run record (``done.json`` repeats the record
for scripts). A rerun skips every finished run whose
notebook and parameters are unchanged, so an interrupted sweep resumes where it stopped; a run
finished with an earlier dvdlib is kept too but flagged (in the log and the summary), and
``--force`` reruns it.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import itertools
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dvdlib.book import headlines
from dvdlib.book.chapter_cache import chapter_key, library_fingerprint
from dvdlib.book.chapters import chapter_notebooks
from dvdlib.book.execute import NotebookFailed, execute_notebook, finished_record
from dvdlib.paths import project_root
from dvdlib.store import atomic_write_bytes

RESULTS = "results"  # results/<notebook stem>/<run name>/: `dvd run` in the working directory
OUTPUT = "output.ipynb"
FAILED = "failed.ipynb"  # the partial notebook of a failed run, kept for reading
PARAMS = "params.json"
DONE = "done.json"  # the finished run's record (as in output.ipynb), written last, for scripts
DEFAULTS_NAME = "defaults"  # the run folder of a run that sets no parameter
_MAX_NAME = 200  # folder names longer than this are shortened and suffixed with a hash

# The types a parameter accepts, given its default's type. A float also takes an int (3 means
# 3.0); bool is listed before int because bool is a subclass of int and must not pass as one.
_ACCEPTED = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell, and what the notebook declares it accepts."""

    name: str
    source: str  # the default as written, e.g. '""' or '8'
    default: object  # the default's value; None also when it is not a literal
    literal: bool  # False when the default is an expression (any value is then accepted)
    help: str
    rule: dict = field(default_factory=dict)  # metadata dvdbook.parameters.<name> (see RULE_KEYS)

    def accepted(self) -> str:
        """The values the declaration accepts, in words ("" when it declares nothing)."""
        return _rule_text(self.rule)

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
    """The parameters declared in the notebook's cell tagged ``parameters``, in order, with the
    ranges and choices its metadata declares for them (``dvdbook.parameters``, see
    :data:`RULE_KEYS`)."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    rules = parameter_rules(notebook)
    unknown = sorted(set(rules) - set(declared))
    if unknown:
        raise ParameterError(f"{notebook}: metadata dvdbook.parameters names {', '.join(unknown)}, "
                             f"which the parameters cell does not assign")
    parameters = {}
    for name, info in declared.items():
        source = str(info.get("default", ""))
        try:
            default, literal = ast.literal_eval(source), True
        except (ValueError, SyntaxError):
            default, literal = None, False
        parameters[name] = NotebookParameter(name, source, default, literal,
                                             str(info.get("help", "") or ""), rules.get(name, {}))
    return parameters


# ----------------------------------------------------------------------------- declared ranges

# What a notebook may declare for a parameter, in its metadata beside the smoke parameters:
#
#     "dvdbook": {"smoke": {...}, "parameters": {"top_n": {"min": 1},
#                 "operator": {"choices": ["zero", "mean", "scale"]},
#                 "bench_csv": {"kind": "prompt_file", "applies": {"model": "real"},
#                               "why": "a toy model draws the toy world's own prompts"}}}
#
# min / max: inclusive bounds; above / below: exclusive bounds (numbers; None passes when the
# default is None). choices: the accepted values. kind: a value that must name something usable
# (KINDS; "" passes: it means the default). applies: the parameter may differ from its default
# only when another parameter has one of the given values ("toy" / "real" for a model
# parameter: a toy model or any other); why: the reason, quoted in the error.
RULE_KEYS = ("min", "max", "above", "below", "choices", "kind", "applies", "why")
KINDS = {
    "prompt_file": "a prompt CSV in the authors' format",
    "zoo": "a folder written by `dvd toyworld zoo --export`",
    "model": "a toy model (toy, toy:NAME), sd1.4, sd2.1, a pipeline folder or a Hugging Face id",
    "fractions": "comma-separated fractions in (0, 1], e.g. 0.1,0.5",
}
PATH_KINDS = ("prompt_file", "zoo")  # values resolved from the working directory, given absolute


def parameter_rules(notebook: str | Path) -> dict[str, dict]:
    """The notebook's declared ranges and choices (metadata ``dvdbook.parameters``), checked."""
    try:
        nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ParameterError(f"cannot read notebook {notebook}: {err}") from None
    rules = nb.get("metadata", {}).get("dvdbook", {}).get("parameters", {})
    if not isinstance(rules, dict):
        raise ParameterError(f"{notebook}: metadata dvdbook.parameters must map parameter names "
                             f"to declarations, got {rules!r}")
    for name, rule in rules.items():
        where = f"{notebook}: metadata dvdbook.parameters.{name}"
        if not isinstance(rule, dict):
            raise ParameterError(f"{where} must be a mapping, got {rule!r}")
        bad = sorted(set(rule) - set(RULE_KEYS))
        if bad:
            raise ParameterError(f"{where}: unknown key(s) {', '.join(bad)}; accepted: "
                                 f"{', '.join(RULE_KEYS)}")
        if "kind" in rule and rule["kind"] not in KINDS:
            raise ParameterError(f"{where}: unknown kind {rule['kind']!r}; accepted: "
                                 f"{', '.join(KINDS)}")
        if "applies" in rule and not (isinstance(rule["applies"], dict) and rule["applies"]):
            raise ParameterError(f"{where}: applies must map a parameter to its values")
    return rules


def _rule_text(rule: dict) -> str:
    parts = []
    if "choices" in rule:
        parts.append("one of " + ", ".join(repr(c) for c in rule["choices"]))
    bounds = [f"{word} {rule[key]}" for key, word in
              (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<")) if key in rule]
    if bounds:
        parts.append(" and ".join(bounds))
    if "kind" in rule:
        parts.append(KINDS[rule["kind"]])
    return "; ".join(parts)


def _is_toy_model(value) -> bool:
    from dvdlib.models.spec import parse_model

    try:
        return parse_model(value).is_toy
    except ValueError:
        return False


def _condition_holds(wanted, value) -> bool:
    if wanted == "toy":
        return _is_toy_model(value)
    if wanted == "real":
        return isinstance(value, str) and bool(value) and not _is_toy_model(value)
    return value in (wanted if isinstance(wanted, list) else [wanted])


def _check_kind(kind: str, value, values: dict, declared: dict) -> object:
    """The value to inject (a path made absolute) if ``value`` is usable as ``kind``."""
    if value == "" or value is None:
        return value
    if kind in PATH_KINDS:
        path = Path(value).expanduser()
        if kind == "prompt_file":
            from dvdlib.prompts.prompt_sets import load_prompts

            load_prompts(path, report=lambda _note: None)
        else:
            from dvdlib.toyworld.zoo import check_zoo

            check_zoo(path)
        return str(path.absolute())
    if kind == "fractions":
        parts = [p.strip() for p in str(value).split(",")]
        for part in parts:
            try:
                fraction = float(part)
            except ValueError:
                fraction = None
            if fraction is None or not 0 < fraction <= 1:
                raise ValueError(f"{part!r} is not a fraction in (0, 1]")
        return value
    if kind == "model":
        _check_model(str(value), values, declared)
    return value


def _check_model(model: str, values: dict, declared: dict) -> None:
    """Refuse a model name that cannot be loaded, without loading it."""
    from dvdlib.models.spec import parse_model

    spec = parse_model(model)  # a ValueError naming the model if it names none
    if spec.is_toy:
        if not spec.zoo_name:
            return
        from dvdlib.toyworld.zoo import model_names

        zoos = [n for n, p in declared.items() if p.rule.get("kind") == "zoo" and values.get(n)]
        folder = values[zoos[0]] if zoos else None
        names = model_names(folder)
        if spec.zoo_name not in names:
            raise ValueError(f"the zoo{' ' + str(folder) if folder else ''} has no model "
                             f"{spec.zoo_name!r}; its models: {', '.join(names)}")
    elif spec.kind == "folder":
        if not spec.folder.is_dir():
            raise ValueError(f"model folder {model!r} does not exist")
        if not (spec.folder / "model_index.json").is_file():
            raise ValueError(f"folder {model!r} is not a diffusers pipeline folder (no "
                             f"model_index.json)")


def _check_rule(notebook, parameter: NotebookParameter, value, values: dict,
                declared: dict) -> object:
    """``value`` checked against the parameter's declaration; returns the value to inject."""
    rule = parameter.rule
    if not rule:
        return value

    def refuse(reason: str) -> ParameterError:
        return ParameterError(f"parameter {parameter.name!r} of {notebook}: {value!r} {reason}; "
                              f"accepted: {_rule_text(rule) or 'see the parameters cell'}")

    if "choices" in rule and value not in rule["choices"]:
        raise refuse("is not one of the choices")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, fails in (("min", lambda v, b: v < b), ("max", lambda v, b: v > b),
                           ("above", lambda v, b: v <= b), ("below", lambda v, b: v >= b)):
            if key in rule and fails(value, rule[key]):
                raise refuse("is out of range")
    if "kind" in rule:
        try:
            value = _check_kind(rule["kind"], value, values, declared)
        except (ValueError, FileNotFoundError) as err:
            raise ParameterError(f"parameter {parameter.name!r} of {notebook}: "
                                 f"{' '.join(str(err).split())}") from None
    return value


def _check_applies(notebook, parameter: NotebookParameter, value, values: dict) -> None:
    """Refuse a parameter set away from its default where it does not apply."""
    applies = parameter.rule.get("applies")
    if not applies or (parameter.literal and value == parameter.default):
        return
    for other, wanted in applies.items():
        if not _condition_holds(wanted, values.get(other)):
            if wanted in ("toy", "real"):
                what = "a toy model" if _is_toy_model(values.get(other)) else "not a toy model"
                need = "toy models" if wanted == "toy" else "real (non-toy) models"
                where = f"{other} is {values.get(other)!r} ({what}); it applies to {need} only"
            else:
                options = ", ".join(map(repr, wanted if isinstance(wanted, list) else [wanted]))
                where = f"{other} is {values.get(other)!r}; it applies only when {other} is {options}"
            why = f" ({parameter.rule['why']})" if parameter.rule.get("why") else ""
            raise ParameterError(
                f"parameter {parameter.name!r} of {notebook} does not apply here: {where}{why}; "
                f"leave it at its default {parameter.source}"
            )


def _accepted_list(declared: dict[str, NotebookParameter]) -> str:
    return ", ".join(f"{p.name} ({p.type_name})" for p in declared.values()) or "none"


def check_parameters(notebook: str | Path, given: dict,
                     declared: dict[str, NotebookParameter] | None = None) -> dict:
    """``given`` checked against the notebook's parameters cell; returns the values to inject.

    Raises :class:`ParameterError` naming the bad parameter and the accepted names, type, range
    or choices (declared in the notebook's metadata, see :data:`RULE_KEYS`). An int given for a
    float parameter is converted to float; a relative path of a path parameter (a prompt file, a
    zoo folder) is made absolute from the working directory, since the notebook runs elsewhere.
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
    # The declared ranges, choices and kinds, with every other parameter's value at hand.
    values = {name: p.default for name, p in declared.items()}
    values.update(checked)
    for name in list(checked):
        checked[name] = _check_rule(notebook, declared[name], checked[name], values, declared)
    for name in checked:
        _check_applies(notebook, declared[name], checked[name], values)
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


def _given(args) -> dict:
    given = pairs_to_dict(args.parameter)
    return pairs_to_dict(args.raw, raw=True, into=given)


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


def _command_root() -> Path:
    """The checkout whose chapters the command names: the one around the working directory,
    else dvdlib's own, so ``dvd run`` works from any folder."""
    try:
        return project_root()
    except FileNotFoundError:
        return library_root()


def run_command(args) -> int:
    """``dvd run`` once its arguments are parsed (:mod:`dvdlib.book.commands.run`)."""
    root = _command_root()
    notebook = resolve_notebook(args.notebook, root)
    try:
        run = run_notebook(notebook, _given(args), results=args.results or Path(RESULTS),
                           force=args.force, root=notebook_root(notebook))
    except NotebookFailed as err:
        print(f"dvd run: error: {err}", file=sys.stderr)
        return 1
    if run.reused:
        changed = "; dvdlib has changed since" if run.earlier_library else ""
        print(f"[run] finished earlier: {run.folder / OUTPUT}{changed} (--force reruns it)")
    return 0


def sweep_command(args) -> int:
    """``dvd sweep`` once its arguments are parsed (:mod:`dvdlib.book.commands.sweep`)."""
    root = _command_root()
    notebook = resolve_notebook(args.notebook, root)
    outcome = sweep(notebook, parse_grid(args.grid), fixed=_given(args),
                    results=args.results or Path(RESULTS), summary=args.summary, force=args.force,
                    root=notebook_root(notebook))
    return 1 if outcome.failures else 0
