"""Chapter 2's second study, for real models: is a concept that a model draws rigidly a
concept that dominates?

Stable Diffusion's training images cannot be measured, and no model can be retrained with one
concept's pictures made more varied, so this study only observes. For every concept of a prompt
set it measures our diversity (:mod:`dvdlib.chapters.data_diversity.measure`) of what the model
draws from a concept-only prompt over many seeds, embedded by a CLIP image encoder and centred on
the mean over every concept's images, a proxy for the rigidity of the learned prior; and the
concept's DvD over its prompts. A correlation across concepts that differ in much more than
diversity is an observation, not a causal test: the toy zoo's experiment is
:mod:`dvdlib.chapters.data_diversity.toy_runs`.

- :func:`solo_prompts`: one concept-only prompt per concept ("a painting by van gogh").
- :func:`concept_dvd`: each concept's DvD with an interval from
  :func:`dvdlib.stats.bootstrap.crossed_bootstrap` over prompts and seeds.
- :func:`run_concept_study`: both measures of every concept (:class:`ConceptStudy`).
- :func:`rank_correlation`: Spearman's rho of the two over concepts; the verdict is
  :func:`dvdlib.chapters.data_diversity.verdict.real_verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from dvdlib.chapters.data_diversity.measure import diversity_by_label, load_images
from dvdlib.prompts.prompt_sets import validate_prompts
from dvdlib.scoring.judges.base import Judge
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.stats.bootstrap import bootstrap_rank_correlation, crossed_bootstrap

# Concept-only prompts for the diversity of generations (ours); "{concept}" as the prompt set
# writes it.
SOLO_TEMPLATES = {
    "artist": "a painting by {concept}",
    "landmark": "a photo of the {concept}",
    "character": "a picture of {concept}",
}



def _mean(array: np.ndarray) -> np.ndarray:
    return np.nanmean(array, axis=(-2, -1))



def solo_prompts(prompts: pd.DataFrame,
                 templates: Mapping[str, str] = SOLO_TEMPLATES) -> pd.DataFrame:
    """One concept-only prompt per (category, concept) of a prompt set, in the set's table shape.

    The prompt is ``templates[category]`` filled with the concept as the set writes it ("a
    painting by van gogh"). A concept-only prompt names no object; its ``object`` repeats the
    concept so that the table passes the prompt-set checks of
    :func:`dvdlib.generation.protocol.generate` (the column is not scored).
    """
    concepts = prompts[["category", "concept"]].drop_duplicates().reset_index(drop=True)
    missing = sorted(set(concepts["category"]) - set(templates))
    if missing:
        raise ValueError(f"no concept-only template for categor(ies) {', '.join(missing)}; "
                         f"templates exist for {', '.join(templates)}")
    table = concepts.assign(
        case_num=np.arange(1, len(concepts) + 1),
        object=concepts["concept"],
        prompt=[templates[t].format(concept=c) for t, c in zip(concepts["category"],
                                                                concepts["concept"])])
    columns = ["case_num", "category", "concept", "object", "prompt"]
    return validate_prompts(table[columns], categories=tuple(templates),
                            source="concept-only prompts")


def concept_dvd(images: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95,
                seed: int = 0) -> pd.DataFrame:
    """Each concept's DvD: the mean over its prompts and seeds, with a crossed-bootstrap interval.

    ``images`` is a per-image table of :func:`dvdlib.scoring.dvd.score_folder` (``category``,
    ``concept``, ``case_num``, ``seed``, ``dvd_score``). One row per concept: ``n_prompts``,
    ``n_images``, ``dvd``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for (category, concept), group in images.groupby(["category", "concept"], sort=True):
        matrix = group.pivot_table(index="case_num", columns="seed", values="dvd_score",
                                   aggfunc="mean").to_numpy(dtype=float)
        estimate, low, high = crossed_bootstrap({"dvd": matrix}, lambda a: _mean(a["dvd"]),
                                                n_resamples=n_resamples, confidence=confidence,
                                                seed=seed)
        rows.append({"category": category, "concept": concept, "n_prompts": matrix.shape[0],
                     "n_images": len(group), "dvd": estimate, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


@dataclass
class ConceptStudy:
    """What :func:`run_concept_study` made: per-image DvD of the prompt set, and per concept."""

    images: pd.DataFrame  # score_folder's per-image table of the two-concept prompts
    concepts: pd.DataFrame  # one row per concept: DvD with interval, diversity of its generations
    image_dir: Path  # pairs/ (the prompt set) and solo/ (concept-only prompts), authors' layout


def run_concept_study(pipe, model: str, prompts: pd.DataFrame, seeds: Sequence[int],
                      out_dir: str | Path, judge: Judge,
                      embed: Callable[[list[Image.Image]], np.ndarray], *, steps: int,
                      guidance: float, height: int | None = None, width: int | None = None,
                      batch_size: int = 1, wording: Wording = OUR_WORDING,
                      n_resamples: int = 2000, progress: bool = False) -> ConceptStudy:
    """Each concept's DvD over a prompt set next to the diversity of its concept-only images.

    1. Generate every prompt of ``prompts`` with every seed
       (:func:`dvdlib.generation.protocol.generate`) into ``out_dir / "pairs"`` and judge them
       (:func:`dvdlib.scoring.dvd.score_folder`, answers logged beside
       ``out_dir / "scores.csv"``, so a rerun resumes); :func:`concept_dvd`.
    2. Generate each concept's :func:`solo_prompts` prompt with the same seeds into
       ``out_dir / "solo"``, embed the images with ``embed`` (e.g. CLIP,
       :func:`clip_image_embeddings`), and measure each concept's diversity, centred on the mean
       embedding of all concepts' images.
    """
    from dvdlib.generation.protocol import generate
    from dvdlib.scoring.dvd import score_folder

    out_dir = Path(out_dir)
    settings = dict(model=model, steps=steps, guidance=guidance, height=height, width=width,
                    batch_size=batch_size, progress=progress)
    generate(pipe, prompts, seeds, out_dir / "pairs", **settings)
    images = score_folder(out_dir / "pairs", prompts, judge, out_dir / "scores.csv",
                          wording=wording, progress=progress)
    dvd = concept_dvd(images, n_resamples=n_resamples)

    solo = solo_prompts(prompts)
    manifest = generate(pipe, solo, seeds, out_dir / "solo", **settings)
    embeddings, labels = [], []
    # One concept's images in memory at a time.
    for case_num, rows in manifest.groupby("case_num", sort=True):
        embeddings.append(np.asarray(embed(load_images(out_dir / "solo", rows)), dtype=np.float64))
        labels += [case_num] * len(rows)
    embeddings = np.concatenate(embeddings)
    measured = diversity_by_label(embeddings, labels, centre=embeddings.mean(axis=0))
    measured = measured.rename(columns={"label": "case_num"}).merge(
        solo[["case_num", "category", "concept", "prompt"]], on="case_num")
    measured = measured.drop(columns="case_num").rename(columns={"prompt": "solo_prompt"})
    concepts = dvd.merge(measured, on=["category", "concept"])
    return ConceptStudy(images, concepts, out_dir)


def rank_correlation(x: Sequence[float], y: Sequence[float], *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` and ``y`` over concepts with a percentile bootstrap interval
    (:func:`dvdlib.stats.bootstrap.bootstrap_rank_correlation`). Concepts with a NaN (no
    diversity or DvD measured) are left out; all three are NaN when fewer than 3 remain."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D sequences of one length, got shapes {x.shape} and "
                         f"{y.shape}")
    complete = ~(np.isnan(x) | np.isnan(y))
    if complete.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    return bootstrap_rank_correlation(x[complete], y[complete], n_resamples=n_resamples,
                                      confidence=confidence, seed=seed)

