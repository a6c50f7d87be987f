"""The names of the zoo's models, written and read in one place.

A name is ``k<K>`` or ``kinf`` (unlimited K), then optionally ``-i<seed>`` (another instance
seed of K = 1: another fixed picture), ``-r<run>`` (another training run of the same level: run
0 has no suffix) and ``@<steps>`` (the EMA snapshot after that many fine-tuning steps):
``k1``, ``k1-i3``, ``kinf-r2``, ``k4-r1@500``. Every name has one spelling: ``k4-r0``, ``k04``
and ``k1-i0`` are refused, since they would name ``k4`` and ``k1`` twice.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_NAME = re.compile(r"k(?P<k>[0-9]+|inf)(?:-i(?P<seed>[0-9]+))?(?:-r(?P<run>[0-9]+))?"
                   r"(?:@(?P<step>[0-9]+))?")
_EXPECTED = ("expected k<integer> or kinf, optionally followed by -i<instance seed>, -r<run> and "
             "@<steps> (k1, k1-i3, kinf-r2, k4-r1@500)")


class ModelName(NamedTuple):
    """What a model's name says."""

    instances: int | None  # K; None is unlimited
    instance_seed: int  # as written after -i (0 without it); a later run of a finite K draws
    # its pictures from this seed plus its run (ZooConfig.models)
    run: int  # the training run, 0 for the first
    step: int | None  # the fine-tuning step of an EMA snapshot; None for the finished model


def parse_level(text: str) -> int | None:
    """A diversity level from the command line: a positive integer, or "unlimited"/"inf"."""
    if str(text).lower() in ("unlimited", "inf", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"diversity level {text!r} must be an integer >= 1 or 'unlimited'")
    return value


def level_name(instances: int | None, instance_seed: int = 0, run: int = 0) -> str:
    """The model name of a diversity level: ``k1``, ``k4``, ..., ``kinf`` (unlimited); another
    instance seed of the same K adds ``-i<seed>`` (``k1-i1``), another training run ``-r<run>``
    (``kinf-r1``)."""
    name = "kinf" if instances is None else f"k{int(instances)}"
    name += f"-i{int(instance_seed)}" if instance_seed else ""
    return name + (f"-r{int(run)}" if run else "")


def snapshot_name(name: str, step: int) -> str:
    """The name of a model's EMA snapshot after ``step`` fine-tuning steps: ``k1@500``."""
    return f"{name}@{int(step)}"


def parse_name(name: str) -> ModelName:
    """What a model name says; a ValueError naming it if it is not one."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"not a zoo model name: {name!r}; {_EXPECTED}")
    k, seed, run, step = match.group("k", "seed", "run", "step")
    parsed = ModelName(None if k == "inf" else int(k), int(seed or 0), int(run or 0),
                       None if step is None else int(step))
    written = level_name(parsed.instances, parsed.instance_seed, parsed.run)
    written = written if step is None else snapshot_name(written, parsed.step)
    if parsed.instances == 0 or parsed.step == 0 or written != name:
        raise ValueError(f"not a zoo model name: {name!r} (K and steps are >= 1, and no number "
                         f"is written with leading zeros or as -i0 or -r0); {_EXPECTED}")
    return parsed


def level_of(name: str) -> int | None:
    """K of a model name (``kinf`` -> None; ``k1-i2``, ``k4-r1`` and ``k1@500`` -> 1, 4, 1)."""
    return parse_name(name).instances


def run_of(name: str) -> int:
    """The training run of a model name (``kinf-r2`` -> 2; ``kinf`` and ``k1-i3`` -> 0)."""
    return parse_name(name).run
