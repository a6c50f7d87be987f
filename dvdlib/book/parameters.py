"""A notebook's declared parameters, and the checks a value passes before a run starts.

A chapter declares its parameters in its cell tagged ``parameters`` (name, default, help in a
trailing comment) and, in its metadata ``dvdbook.parameters``, the ranges, choices and kinds of
value each accepts (:data:`RULE_KEYS`). :func:`check_parameters` checks given values against
both before anything runs: an unknown name, a value whose type does not fit the default's, or
one outside its declaration is a :class:`ParameterError` naming the parameter and what it
accepts; a name the chapters have renamed is refused with its new one (:data:`RENAMED`).

- the declarations: :func:`notebook_parameters`, :func:`parameter_rules`,
  :class:`NotebookParameter`;
- the checks: :func:`check_parameters`, :func:`check_renamed`;
- values as the command line gives them: :func:`parse_value` (papermill's ``-p``),
  :func:`pairs_to_dict` (``-p``/``-r``), :func:`parse_grid` and :func:`combinations` (``--grid``).
"""

from __future__ import annotations

import math

import ast
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

# The types a parameter accepts, given its default's type. A float also takes an int (3 means
# 3.0); bool is listed before int because bool is a subclass of int and must not pass as one.
_ACCEPTED = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell, and what the notebook declares it
    accepts."""

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
    unknown = sorted((set(rules) | {r["divides"] for r in rules.values() if "divides" in r})
                     - set(declared))
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
# min / max: inclusive bounds; above / below: exclusive bounds (finite numbers; None passes when
# the default is None). choices: the accepted values. kind: a value that must name something
# usable (KINDS); "" (or None) passes only where it is the default, or where "empty" says what it
# means ("empty": "no reference model"). divides: the name of another parameter whose value a
# positive value must divide (batch_size of n_seeds). applies: the parameter may differ from its
# default only when another parameter has one of the given values ("toy" / "real" for a model
# parameter: a toy model or any other); why: the reason, quoted in the error.
RULE_KEYS = ("min", "max", "above", "below", "choices", "kind", "empty", "divides", "applies",
             "why")
KINDS = {
    "prompt_file": "a prompt CSV in the authors' format",
    "target_file": "a prompt CSV with several targets per prompt (target1, ...: the authors' "
                   "pilot or factorial layout)",
    "zoo": "a folder written by `dvd toyworld zoo --export`",
    "model": "a toy model (toy, toy:NAME), sd1.4, sd2.1, a named model such as sdxl, a pipeline "
             "folder or a Hugging Face id",
    "fractions": "comma-separated fractions in (0, 1), e.g. 0.1,0.5",
    "guidance_scales": "comma-separated finite guidance scales >= 0, e.g. 1,4,7.5",
    "question_file": "a question wording JSON file (format: see dvdlib.scoring.questions)",
    "device": "a torch device this machine has (cpu, cuda, cuda:N, mps)",
    "head_count": "a whole number of heads, at most the model's cross-attention heads",
    "head_operator": "a head-ablation operator of the model's family: zero, mean or scale on a "
                     "UNet (toy, sd, sdxl), zero or mask on sd3 and flux",
    "head_ranking": "a head ranking file (a rescue run's head_ranking.json) of the same model",
}
# values resolved from the working directory, given absolute
PATH_KINDS = ("prompt_file", "target_file", "zoo", "question_file", "head_ranking")


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
        if "divides" in rule and not isinstance(rule["divides"], str):
            raise ParameterError(f"{where}: divides must name another parameter")
    return rules


def _rule_text(rule: dict) -> str:
    parts = []
    if "choices" in rule:
        parts.append("one of " + ", ".join(repr(c) for c in rule["choices"]))
    bounds = [f"{word} {rule[key]}" for key, word in
              (("min", ">="), ("above", ">"), ("max", "<="), ("below", "<")) if key in rule]
    if bounds:
        parts.append(" and ".join(bounds))
    if "divides" in rule:
        parts.append(f"a divisor of {rule['divides']}")
    if "kind" in rule:
        parts.append(KINDS[rule["kind"]])
    if "empty" in rule:
        parts.append(f"'' for {rule['empty']}")
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


def _check_kind(parameter: NotebookParameter, value, values: dict, declared: dict) -> object:
    """The value to inject (a path made absolute) if ``value`` is usable as the parameter's kind."""
    kind = parameter.rule["kind"]
    if value == "" or value is None:
        if value == parameter.default or "empty" in parameter.rule:
            return value
        raise ValueError(f"{value!r} is empty; accepted: {KINDS[kind]}")
    if kind in PATH_KINDS:
        path = Path(value).expanduser()
        if kind == "prompt_file":
            from dvdlib.prompts.prompt_sets import load_prompts

            load_prompts(path, report=lambda _note: None)
        elif kind == "target_file":
            from dvdlib.prompts.targets import load_targets, target_token_positions
            from dvdlib.prompts.tokenizer import clip_tokenizer

            target_token_positions(load_targets(path, report=lambda _note: None), clip_tokenizer())
        elif kind == "question_file":
            from dvdlib.scoring.questions import load_wording

            load_wording(path)
        elif kind == "head_ranking":
            from dvdlib.interventions.heads import load_ranking

            layout, model = _model_layout(values, declared)
            ranking = load_ranking(path)
            if layout is not None:
                ranking.check(layout, model)
        else:
            from dvdlib.toyworld.zoo import check_zoo

            check_zoo(path)
        return str(path.absolute())
    if kind in ("fractions", "guidance_scales"):
        for part in (p.strip() for p in str(value).split(",")):
            try:
                number = float(part)
            except ValueError:
                number = math.nan
            if kind == "fractions" and not 0 < number < 1:  # NaN fails too
                raise ValueError(f"{part!r} is not a fraction in (0, 1)")
            if kind == "guidance_scales" and not 0 <= number < math.inf:
                raise ValueError(f"{part!r} of {value!r} is not a finite guidance scale >= 0")
        return value
    if kind == "device":
        from dvdlib.models.loading import check_device

        check_device(str(value))
    if kind == "model":
        _check_model(str(value), values, declared)
    if kind == "head_operator":
        from dvdlib.attention.instruments import head_operators

        model = _value_of_kind("model", values, declared)
        accepted = head_operators(model) if model else ()
        if accepted and value not in accepted:
            raise ValueError(f"{value!r} is not an operator of model {model!r}; accepted: "
                             f"{', '.join(accepted)}")
    if kind == "head_count":
        from dvdlib.interventions.heads import check_head_count

        layout, _ = _model_layout(values, declared)
        if layout is not None:
            check_head_count(value, sum(heads for _, heads in layout))
    return value


def _model_layout(values: dict, declared: dict):
    """The cross-attention layout of the run's model (the parameter of kind "model", from its
    configuration, no weights loaded) and its name; (None, name) when it is not on disk."""
    from dvdlib.interventions.heads import model_layout

    model = _value_of_kind("model", values, declared)
    if not model:
        return None, model
    return model_layout(model, _value_of_kind("zoo", values, declared)), model


def _value_of_kind(kind: str, values: dict, declared: dict) -> str:
    """The run's value of the first parameter declared of ``kind`` ("" if none is set)."""
    names = [n for n, p in declared.items() if p.rule.get("kind") == kind and values.get(n)]
    return str(values[names[0]]) if names else ""


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
        names = model_names(folder, runs=True)
        if spec.zoo_name not in names:
            raise ValueError(f"the zoo{' ' + str(folder) if folder else ''} has no model "
                             f"{spec.zoo_name!r}; its models: {', '.join(names)}")
    elif spec.kind == "folder":
        if not spec.folder.is_dir():
            raise ValueError(f"model folder {model!r} does not exist")
        if not (spec.folder / "model_index.json").is_file():
            raise ValueError(f"folder {model!r} is not a diffusers pipeline folder (no "
                             f"model_index.json)")
        from dvdlib.models.families import folder_family

        folder_family(spec.folder)  # a pipeline of a kind dvdlib does not support is refused


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
    if isinstance(value, float) and not math.isfinite(value) and any(
            key in rule for key in ("min", "max", "above", "below")):
        raise refuse("is not a finite number")  # NaN passes every comparison; inf passes min
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, fails in (("min", lambda v, b: v < b), ("max", lambda v, b: v > b),
                           ("above", lambda v, b: v <= b), ("below", lambda v, b: v >= b)):
            if key in rule and fails(value, rule[key]):
                raise refuse("is out of range")
    if "kind" in rule:
        try:
            value = _check_kind(parameter, value, values, declared)
        except (ValueError, FileNotFoundError) as err:
            raise ParameterError(f"parameter {parameter.name!r} of {notebook}: "
                                 f"{' '.join(str(err).split())}") from None
    return value


def _check_divides(notebook, parameter: NotebookParameter, values: dict) -> None:
    """Refuse a positive value that does not divide the value of the parameter its rule names."""
    other = parameter.rule["divides"]
    value, total = values.get(parameter.name), values.get(other)
    whole = [isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (value, total)]
    if all(whole) and total % value:
        divisors = [d for d in range(1, total + 1) if total % d == 0]
        raise ParameterError(
            f"parameter {parameter.name!r} of {notebook}: {value!r} does not divide {other} = "
            f"{total}; accepted: {_rule_text(parameter.rule)} "
            f"({', '.join(map(str, divisors[:12]))}{', ...' if len(divisors) > 12 else ''})")


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
                where = (f"{other} is {values.get(other)!r}; it applies only when {other} is "
                         f"{options}")
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
    or choices (declared in the notebook's metadata, see :data:`RULE_KEYS`), or the new name of
    a renamed one (:data:`RENAMED`). An int given for a float parameter is converted to float; a
    relative path of a path parameter (a prompt file, a zoo folder) is made absolute from the
    working directory, since the notebook runs elsewhere.
    """
    declared = notebook_parameters(notebook) if declared is None else declared
    check_renamed(given, declared)
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
    values.update(checked)
    for name, parameter in declared.items():  # either side of a divisibility may be the one given
        if "divides" in parameter.rule and {name, parameter.rule["divides"]} & set(checked):
            _check_divides(notebook, parameter, values)
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


# The chapters' parameters that now carry the names every chapter shares. An old name is refused
# with its new one wherever a notebook declares the new name and not the old.
RENAMED = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "guidance_scales": "guidance_sweep",
    "bootstrap_resamples": "n_resamples",
    "seeds_per_prompt": "n_seeds",
}


def check_renamed(names, declared: dict[str, NotebookParameter], option: str = "-p") -> None:
    """Refuse a renamed parameter (:data:`RENAMED`) given under its old name, naming the new one
    as ``option`` takes it: ``-p bootstrap_resamples: renamed; use -p n_resamples``."""
    for name in names:
        new = RENAMED.get(name)
        if new is not None and name not in declared and new in declared:
            raise ParameterError(f"{option} {name}: renamed; use {option} {new}")
