"""What a run draws from: a prompt set (a file, the built-in set or the caller's own default), the
cases chosen from it, and the seeds.

- :func:`choose_prompts`: the prompt table of a run, checked once, and how messages name it.
- :func:`parse_cases`, :func:`select_cases`: case numbers as a command takes them (``1-10,201``).
- :func:`choose_targets`: the same for a prompt file naming several targets per prompt
  (:mod:`dvdlib.prompts.targets`).
- :func:`choose_seeds`: a number of seeds (the paper's ten first) or the seeds themselves.

Bad values raise :class:`~dvdlib.usage.ArgumentError` naming the argument (``cases``, ``seeds``),
so that a command can name its option instead; a bad file raises what
:func:`~dvdlib.prompts.prompt_sets.load_prompts` raises, naming the file's row and column.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable, Sequence

import pandas as pd

from dvdlib.prompts.prompt_sets import (CATEGORIES, MAX_CASE_NUM, PromptSetError, builtin_prompts,
                                        check_seeds, load_prompts, seeds as paper_seeds)
from dvdlib.prompts.targets import TargetSet, load_targets
from dvdlib.usage import MAX_SEED_COUNT, ArgumentError

BUILTIN = "built-in prompts"  # how messages name our built-in set


def parse_cases(text: str) -> set[int]:
    """``"1-10,15"`` -> {1, ..., 10, 15}; an :class:`ArgumentError` naming the bad part."""
    cases: set[int] = set()
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise ArgumentError("cases", f" {part.strip()!r} is not a case number or a range such "
                                         f"as 1-10")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last > MAX_CASE_NUM:  # before a range of billions is built
            raise ArgumentError("cases", f" {part.strip()!r}: case numbers go up to "
                                         f"{MAX_CASE_NUM:,}")
        cases.update(range(first, last + 1))
    return cases


def select_cases(prompts: pd.DataFrame, cases: str | Iterable[int], source: str) -> pd.DataFrame:
    """The rows of ``prompts`` whose case is in ``cases`` (text such as ``1-10,201``, or numbers);
    an :class:`ArgumentError` if none is."""
    wanted = parse_cases(cases) if isinstance(cases, str) else {int(c) for c in cases}
    chosen = prompts[prompts["case_num"].isin(wanted)].reset_index(drop=True)
    if chosen.empty:
        shown = cases if isinstance(cases, str) else ",".join(map(str, sorted(wanted)))
        raise ArgumentError("cases", f" {shown}: none of these cases is in {source}")
    return chosen


def choose_prompts(path=None, categories: Iterable[str] = CATEGORIES,
                   cases: str | Iterable[int] | None = None, *,
                   default: tuple[pd.DataFrame, str] | None = None,
                   report: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, str]:
    """The prompt table a run draws from and how messages name its source.

    ``path``: a prompt file in the authors' format, read and checked by
    :func:`~dvdlib.prompts.prompt_sets.load_prompts` (``report`` takes its notes); else
    ``default``, a ``(table, name)`` pair the caller's model brings (the toy world's prompts);
    else our built-in set. Either way every category must be one of ``categories`` (those the
    question wording asks about). ``cases`` keeps those cases only (see :func:`select_cases`).
    """
    categories = tuple(categories)
    if path:
        table, source = load_prompts(path, categories, report=report), str(path)
    else:
        table, source = default if default is not None else (builtin_prompts(), BUILTIN)
        unknown = sorted(set(table["category"]) - set(categories))
        if unknown:  # a file's rows are checked as it is read; a ready table only here
            raise PromptSetError(f"{source}: category {', '.join(map(repr, unknown))} has no "
                                 f"questions; accepted: {', '.join(categories)}")
    if cases is not None:
        table = select_cases(table, cases, source)
    return table, source


def choose_targets(path, cases: str | Iterable[int] | None = None, *, with_carrier: bool = False,
                   report: Callable[[str], None] | None = None) -> TargetSet:
    """The target set of a run: the file at ``path`` read and checked by
    :func:`~dvdlib.prompts.targets.load_targets` (``report`` takes its notes on the cases kept),
    with only ``cases`` if given (text such as ``1-10,201``, or numbers); an
    :class:`ArgumentError` if the file has none of them."""
    wanted = None if cases is None else (
        parse_cases(cases) if isinstance(cases, str) else {int(c) for c in cases})
    target_set = load_targets(path, with_carrier=with_carrier, report=report, cases=wanted)
    if target_set.prompts.empty:
        shown = cases if isinstance(cases, str) else ",".join(map(str, sorted(wanted)))
        raise ArgumentError("cases", f" {shown}: none of these cases is in {target_set.source}")
    return target_set


def choose_seeds(seeds: int | Sequence) -> list[int]:
    """``seeds`` seeds (an int: the paper's ten first, then 10001, ...) or the seeds themselves (a
    sequence of whole numbers in 0..``MAX_SEED``, none repeated; not one string: ``"1825"`` is
    not the four seeds 1, 8, 2, 5); an :class:`ArgumentError` otherwise."""
    try:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if seeds > MAX_SEED_COUNT:  # before a list of billions is built
                raise ValueError(f"{seeds} seeds: at most {MAX_SEED_COUNT:,} seeds per prompt")
            return paper_seeds(seeds)
        return check_seeds(seeds)
    except TypeError:
        raise ArgumentError("seeds", f" {seeds!r} is neither a number of seeds nor a list of "
                                     f"seeds") from None
    except ValueError as err:
        raise ArgumentError("seeds", f": {err}") from None
