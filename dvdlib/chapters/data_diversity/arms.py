"""The arms of chapter 2's comparison: every training run the zoo has of each diversity level.

A run of the zoo is named by its level and, beyond the first run of that level, by which other
run it is: ``kinf`` is unlimited K's first run and ``kinf-r1``, ``kinf-r2``, ... its runs with
other training seeds; ``k4``, ``k4-r1``, ...; the K = 1 runs are ``k1`` and ``k1-i1`` ...
``k1-i8``, each with another instance seed (another fixed picture). An **arm** is every run of
one level; the K comparison resamples the runs of each arm, then the seeds, so the run-to-run
spread of every arm is in its interval. Nothing here names how many runs an arm has: the arms
are read from the zoo's names, so runs added to the zoo join their arm.

- :func:`parse_run`: a run name's level and its number within the level.
- :func:`arm_label`: an arm's label ("K = 1", "K = 16", "unlimited").
- :func:`arm_runs`: the arms of a list of names, least diverse first, runs in order.
- :func:`zoo_arms`: the arms of a zoo folder (the shipped zoo by default).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from dvdlib.toyworld.names import parse_name

UNLIMITED = "unlimited"  # the label of the unlimited-K arm


def parse_run(name: str) -> tuple[int | None, int]:
    """``(K, number)`` of a run name: ``k4`` -> (4, 0), ``kinf-r2`` -> (None, 2), ``k1-i3`` ->
    (1, 3). A ValueError names anything else, an EMA snapshot ``k1@500`` too (no finished run);
    names are read by :func:`dvdlib.toyworld.names.parse_name`."""
    parsed = parse_name(name)
    if parsed.step is not None:
        raise ValueError(f"not a finished run of the zoo: {name!r} is an EMA snapshot")
    return parsed.instances, parsed.instance_seed or parsed.run


def arm_label(level: int | None) -> str:
    """"K = 1", "K = 16" or "unlimited" (``level`` None)."""
    return UNLIMITED if level is None else f"K = {int(level)}"


def arm_runs(names: Iterable[str]) -> dict[str, list[str]]:
    """The arms of ``names`` by label, least diverse first (unlimited last); each arm's runs
    in order, its first run (the bare level name) first. Repeated names count once."""
    parsed = {name: parse_run(name) for name in dict.fromkeys(names)}
    if not parsed:
        raise ValueError("no runs: the zoo names no finished model")
    order = sorted(parsed, key=lambda n: (parsed[n][0] is None, parsed[n][0] or 0, parsed[n][1],
                                          n))
    arms: dict[str, list[str]] = {}
    for name in order:
        arms.setdefault(arm_label(parsed[name][0]), []).append(name)
    return arms


def check_levels(arms: Mapping[str, list[str]], instances: Mapping[str, int | None]) -> None:
    """A ValueError when a run's name and its world disagree on K (``instances``: run -> the K
    of the world it was trained on)."""
    for label, runs in arms.items():
        for run in runs:
            if arm_label(instances[run]) != label:
                raise ValueError(f"run {run!r} is named for {label} but its world has "
                                 f"K = {instances[run] or 'unlimited'}")


def zoo_arms(folder=None) -> dict[str, list[str]]:
    """The arms of the zoo in ``folder`` (None: the shipped zoo), from its finished models."""
    from dvdlib.toyworld import zoo

    return arm_runs(zoo.model_names(folder, runs=True))
