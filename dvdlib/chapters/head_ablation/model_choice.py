"""How the chapter picks its default model: a survey of the toy zoo, made before any ablation.

Dominance must be there to be ablated. :func:`dominance_survey` measures, with no head ablated,
the DvD and both sides' presence of every zoo model on every pair prompt, on seeds of its own
(:func:`survey_seeds`, outside the paper's draw, so the images that choose the model are never
those whose baseline the chapter reports); :func:`model_to_ablate` is the rule that picks the
model from it. :func:`run_survey` is the chapter's call (None for a real model, or with the
survey off); :func:`survey_means` gives each model's means over the seen and unseen objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.setup import ChapterSetup
from dvdlib.generation.protocol import generate
from dvdlib.models import spec
from dvdlib.models.loading import load_model
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.toyworld.world import prompt_table
from dvdlib.toyworld.zoo import model_names

# The survey's seeds lie outside the paper's draw (randint(1, 10000)), so the images that choose
# the model are never the images whose baseline the chapter reports or re-measures.
SURVEY_SEED_START = 10_001
SURVEY_SEEDS = 4  # seeds per model and object: 6 models x 5 objects x 4 = 120 images
ENOUGH_DOMINANCE = 40.0  # mean DvD a model needs on the survey for there to be dominance to ablate
MEASURES = ["dvd_score", "concept_present", "object_present"]


def survey_seeds(n: int, apart_from: Sequence[int] = ()) -> list[int]:
    """``n`` seeds for :func:`dominance_survey`; a ValueError if one of them is among
    ``apart_from`` (the seeds of the sweep)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the survey needs a positive number of seeds, got {n!r}")
    seeds = list(range(SURVEY_SEED_START, SURVEY_SEED_START + n))
    shared = sorted(set(seeds) & {int(s) for s in apart_from})
    if shared:
        raise ValueError(f"the sweep's seeds {shared} are the survey's own; the sweep takes at "
                         f"most the paper's seeds (n_seeds <= 10)")
    return seeds


def dominance_survey(models: Sequence[str], judge, out_dir: str | Path, *, zoo_folder: str = "",
                     seeds: Sequence[int], steps: int, guidance: float,
                     wording: Wording = OUR_WORDING, device: str = "",
                     batch_size: int = 32) -> pd.DataFrame:
    """DvD and both sides' presence of every zoo model on every pair prompt, no head ablated.

    One row per model and object: ``paired_in_training``, ``images``, ``dvd_score``,
    ``concept_present`` and ``object_present`` (means over ``seeds``). It is the measurement
    behind the chapter's choice of model and prompts (:func:`model_to_ablate`), made before and
    apart from any ablation.
    """
    rows = []
    for name in models:
        world = spec.toy_world(f"toy:{name}", zoo_folder)
        prompts = prompt_table(world, controls=False)
        pipe = load_model(f"toy:{name}", zoo_folder, device)
        folder = Path(out_dir) / name
        generate(pipe, prompts, seeds, folder / "images", model=f"toy:{name}", steps=steps,
                 guidance=guidance, batch_size=batch_size, progress=False)
        scored = score_folder(folder / "images", prompts, judge, folder / "dvd.csv",
                              wording=wording, images_per_call=batch_size, progress=False)
        scored = scored.merge(prompts[["case_num", "paired_in_training"]], on="case_num")
        scored = scored.assign(concept_present=scored["concept_yes"] >= PRESENT_YES,
                               object_present=scored["object_yes"] >= PRESENT_YES)
        table = scored.groupby(["object", "paired_in_training"], sort=False).agg(
            images=("dvd_score", "size"), dvd_score=("dvd_score", "mean"),
            concept_present=("concept_present", "mean"),
            object_present=("object_present", "mean"))
        rows.append(table.reset_index().assign(model=name, K=spec.k_text(world.instances)))
    columns = ["model", "K", "object", "paired_in_training", "images", *MEASURES]
    return pd.concat(rows, ignore_index=True)[columns]


def run_survey(chapter: ChapterSetup, judge, *, enabled: bool, steps: int, guidance: float,
               wording: Wording = OUR_WORDING, batch_size: int = 32) -> pd.DataFrame | None:
    """The chapter's survey of every model in its zoo (:func:`dominance_survey`, into
    ``<chapter folder>/survey``); None when ``enabled`` is off or the chapter's model is real
    (the survey runs the toy zoo's models)."""
    if not enabled or not chapter.is_toy:
        return None
    seeds = survey_seeds(SURVEY_SEEDS, apart_from=chapter.seeds)
    return dominance_survey(model_names(chapter.zoo_folder or None), judge, chapter.out / "survey",
                            zoo_folder=chapter.zoo_folder, seeds=seeds, steps=steps,
                            guidance=guidance, wording=wording, device=chapter.device,
                            batch_size=batch_size)


def model_to_ablate(survey: pd.DataFrame, objects: str = "seen",
                    enough: float = ENOUGH_DOMINANCE) -> str:
    """The rule for the chapter's default: the least diverse model (listed first in the survey,
    as the zoo lists them) whose mean DvD over the pair prompts of ``objects`` (seen: the objects
    the concept was printed on in training) is at least ``enough``; the paper expects dominance
    to be strongest there. If no model has that much, the one with the highest mean DvD."""
    seen = survey["paired_in_training"] == (objects == "seen")
    part = survey if objects == "all" else survey[seen]
    means = part.groupby("model", sort=False)["dvd_score"].mean()
    dominated = means[means >= enough]
    return str(dominated.index[0] if len(dominated) else means.idxmax())


def survey_means(survey: pd.DataFrame | None) -> pd.DataFrame | None:
    """Each model's mean DvD and presence over the objects seen and unseen with the concept in
    training (one row per model and kind); None when no survey ran."""
    if survey is None:
        return None
    kinds = survey["paired_in_training"].map({True: "seen", False: "unseen"}).rename("objects")
    means = survey.groupby(["model", "K", kinds], sort=False)[MEASURES].mean()
    return means.reset_index()
