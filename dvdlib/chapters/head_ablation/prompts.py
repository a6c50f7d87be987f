"""The chapter's prompts: the toy world's pair prompts, or a prompt set for a real model.

- :func:`chapter_prompts`: the prompts a model is studied on, decided from the parsed model: a
  toy model takes the pair prompts of its world's limited concept (:func:`toy_prompts`), a real
  one the prompt set (the authors' file or our built-in set); both thinned by
  :func:`spread_prompts`.
- :func:`concept_word`: how figures and text name the dominant concept.
- :func:`shown_prompts`: the columns of the prompt table the chapter shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvdlib.attention.instruments import check_instruments
from dvdlib.models.spec import ModelSpec, toy_world
from dvdlib.prompts.prompt_sets import prompt_set
from dvdlib.toyworld.world import World, prompt_table

OBJECT_SETS = ("seen", "unseen", "all")
# The columns a toy prompt table is shown with; a table without them (a real prompt set) is
# shown whole.
TOY_COLUMNS = ("case_num", "concept", "object", "prompt", "paired_in_training")


def toy_prompts(world: World, objects: str = "seen") -> pd.DataFrame:
    """The limited concept's pair prompts on the objects of ``objects``: ``seen`` (printed on
    them in training), ``unseen`` (never) or ``all``."""
    if objects not in OBJECT_SETS:
        raise ValueError(f"objects must be one of {', '.join(OBJECT_SETS)}, got {objects!r}")
    chosen = {"seen": world.paired_objects, "unseen": world.unpaired,
              "all": world.objects}[objects]
    if not chosen:
        raise ValueError(f"the world has no {objects} objects for {world.limited!r}")
    return prompt_table(world, chosen, controls=False)


def spread_prompts(prompts: pd.DataFrame, n_prompts: int) -> pd.DataFrame:
    """``n_prompts`` rows taking the categories in turn (first rows of each), in table order.

    ``n_prompts`` 0 (or at least the table's length) keeps every row.
    """
    if not isinstance(n_prompts, (int, np.integer)) or n_prompts < 0:
        raise ValueError(f"n_prompts must be a non-negative integer (0: all), got {n_prompts!r}")
    if n_prompts == 0 or n_prompts >= len(prompts):
        return prompts.reset_index(drop=True)
    categories = list(dict.fromkeys(prompts["category"]))
    turn = prompts.groupby("category", sort=False).cumcount()  # rank within the category
    order = pd.DataFrame({"turn": turn, "category": prompts["category"].map(categories.index)})
    chosen = order.sort_values(["turn", "category"], kind="stable").index[:n_prompts]
    return prompts.loc[sorted(chosen)].reset_index(drop=True)


def chapter_prompts(model: ModelSpec, zoo_folder: str = "", *, objects: str = "seen",
                    bench_csv: str = "", n_prompts: int = 0) -> pd.DataFrame:
    """The prompts ``model`` is studied on: a toy model's pair prompts on ``objects`` (its world
    read from ``zoo_folder``), or for a real model the prompts of ``bench_csv`` (empty: our
    built-in set); ``n_prompts`` of them (0: all), categories taken in turn. A model whose family
    has no attention instruments, or a pipeline of an unsupported kind, is refused here, before
    anything loads."""
    check_instruments(model.text)
    if model.is_toy:
        prompts = toy_prompts(toy_world(model.text, zoo_folder), objects)
    else:
        prompts = prompt_set(bench_csv or None)
    return spread_prompts(prompts, n_prompts)


def concept_word(prompts: pd.DataFrame) -> str:
    """The dominant concept by name when every prompt shares it (the toy world's "sunset"),
    else "dominant concept"."""
    concepts = prompts["concept"]
    return str(concepts.iloc[0]) if concepts.nunique() == 1 else "dominant concept"


def shown_prompts(prompts: pd.DataFrame) -> pd.DataFrame:
    """The prompt table as the chapter shows it: a toy table's telling columns, else whole."""
    if set(TOY_COLUMNS) <= set(prompts.columns):
        return prompts[list(TOY_COLUMNS)]
    return prompts
