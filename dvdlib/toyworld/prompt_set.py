"""The toy world as a prompt set: what a toy model draws when no prompt file is given, and the
check that a prompt file names only what the world can draw.

- :func:`toy_prompts`: the world's pair prompts ("sunset coaster", ...), validated.
- :func:`check_toy_words`: refuse rows whose concept or object the world lacks, all at once.
- :func:`run_prompts`: the prompt set of a generation or scoring run, on the toy world or not.
"""

from __future__ import annotations

from typing import Callable, Iterable

import pandas as pd

from dvdlib.prompts.prompt_sets import (CATEGORIES, PromptSetError, concept_phrase, object_phrase,
                                        validate_prompts)
from dvdlib.prompts.selection import choose_prompts
from dvdlib.toyworld.world import CATEGORY, CONCEPTS, OBJECTS, World, prompt_table, unknown_words

TOY_PROMPTS = "the toy world's prompts"  # how messages name the set


def toy_prompts() -> pd.DataFrame:
    """The toy world's pair prompts ("sunset coaster", ...), the default prompts of a toy model."""
    return validate_prompts(prompt_table(World(), controls=False), (CATEGORY,), TOY_PROMPTS)


def check_toy_words(prompts: pd.DataFrame, source: str) -> None:
    """Refuse rows whose concept is not a concept of the toy world or whose object is not one of
    its objects, listing them all (a :class:`~dvdlib.prompts.prompt_sets.PromptSetError`)."""
    bad = []
    for row in prompts.itertuples(index=False):
        strangers = unknown_words(concept_phrase(row), object_phrase(row))
        if strangers:
            bad.append(f"case {row.case_num}: {' and '.join(strangers)}")
    if bad:
        raise PromptSetError(
            f"{source}: the toy world draws only the concepts {', '.join(CONCEPTS)} printed on the "
            f"objects {', '.join(OBJECTS)}; {len(bad)} row(s) name other things: {'; '.join(bad)}. "
            f"Leave out the prompt file for the toy world's own prompts, or give one of its "
            f"concepts and objects"
        )


def run_prompts(path=None, categories: Iterable[str] = CATEGORIES, cases=None, *, toy: bool,
                report: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, str]:
    """The prompt table of a generation or scoring run and how messages name it
    (:func:`~dvdlib.prompts.selection.choose_prompts`): on the toy world (``toy``) its pair
    prompts are the default, and a prompt file must name only its concepts and objects."""
    default = (toy_prompts(), TOY_PROMPTS) if toy else None
    table, source = choose_prompts(path, categories, cases, default=default, report=report)
    if toy and path:
        check_toy_words(table, source)
    return table, source
