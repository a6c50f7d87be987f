"""Chapter 2's second study, for real models: is a concept that a model draws rigidly a
concept that dominates?

Stable Diffusion's training images cannot be measured, and no model can be retrained with one
concept's pictures made more varied, so this study only observes. For every concept of a prompt
set it measures our diversity (:mod:`dvdlib.chapters.data_diversity.measure`) of what the model draws from a
concept-only prompt over many seeds (:func:`solo_prompts`: "a painting by van gogh"), embedded by
a CLIP image encoder (:func:`dvdlib.chapters.data_diversity.measure.clip_image_embeddings`) and centred on the mean
over every concept's images, a proxy for the rigidity of the learned prior; and the concept's DvD
over its prompts (:func:`concept_dvd`, intervals from :func:`crossed_bootstrap` over prompts and
seeds). :func:`run_concept_study` does both; :func:`rank_correlation` relates them over concepts,
and :func:`finding_verdict` decides. A correlation across concepts that differ in much more than
diversity is an observation, not a causal test: the toy zoo's experiment is
:mod:`dvdlib.chapters.data_diversity.toy_study`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from dvdlib.stats import bootstrap

from dvdlib.stats import verdicts
from dvdlib.prompts.prompt_sets import validate_prompts
from dvdlib.chapters.data_diversity.toy_study import check_criteria, positive_control
from dvdlib.chapters.data_diversity.measure import diversity_by_label, load_images
from dvdlib.scoring.judges.base import Judge
from dvdlib.scoring.questions import OUR_WORDING, Wording

# Concept-only prompts for the diversity of generations (ours); "{concept}" as the prompt set
# writes it.
SOLO_TEMPLATES = {
    "artist": "a painting by {concept}",
    "landmark": "a photo of the {concept}",
    "character": "a picture of {concept}",
}


def crossed_bootstrap(arrays: Mapping[str, np.ndarray], statistic: Callable[[dict], np.ndarray],
                      *, n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Estimate and percentile interval of ``statistic`` under a bootstrap of a crossed design.

    Every array is ``[group, seed]`` over the same groups (prompts, objects, concepts) and the
    same seeds, as when every prompt is generated with the same seeds. A resample draws groups
    and seeds with replacement, independently, and keeps their cross product, so the interval
    counts both the spread between prompts and the spread between seeds (a bootstrap of images
    alone ignores that images of one prompt, or of one seed, are alike). ``statistic`` maps a dict
    of arrays ``[resample, group, seed]`` to one value per resample ``[resample]``; NaN entries are
    ignored by the ``np.nan*`` reductions it may use. Returns (estimate, low, high); the interval
    is NaN when fewer than half of the resamples give a finite value (e.g. a ratio over zeros).
    """
    if not arrays:
        raise ValueError("no arrays to resample")
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"arrays must all be [group, seed] of one shape, got {shapes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    data = {name: np.asarray(a, dtype=float) for name, a in arrays.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(np.asarray(statistic({k: v[None] for k, v in data.items()}))[0])
        rng = np.random.default_rng(seed)
        groups = rng.integers(0, first[0], size=(n_resamples, first[0]))  # [resample, group]
        seeds = rng.integers(0, first[1], size=(n_resamples, first[1]))  # [resample, seed]
        rows, columns = groups[:, :, None], seeds[:, None, :]
        values = np.asarray(statistic({k: v[rows, columns] for k, v in data.items()}), dtype=float)
    return bootstrap.estimate_with_interval(estimate, values, confidence)



def _mean(array: np.ndarray) -> np.ndarray:
    return np.nanmean(array, axis=(-2, -1))



def solo_prompts(prompts: pd.DataFrame, templates: Mapping[str, str] = SOLO_TEMPLATES) -> pd.DataFrame:
    """One concept-only prompt per (category, concept) of a prompt set, in the set's table shape.

    The prompt is ``templates[category]`` filled with the concept as the set writes it ("a
    painting by van gogh"). A concept-only prompt names no object; its ``object`` repeats the
    concept so that the table passes the prompt-set checks of :func:`dvdlib.generation.protocol.generate`
    (the column is not scored).
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
    return validate_prompts(table[columns], categories=tuple(templates), source="concept-only prompts")


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

    1. Generate every prompt of ``prompts`` with every seed (:func:`dvdlib.generation.protocol.generate`)
       into ``out_dir / "pairs"`` and judge them (:func:`dvdlib.scoring.dvd.score_folder`, answers
       logged beside ``out_dir / "scores.csv"``, so a rerun resumes); :func:`concept_dvd`.
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
    for case_num, rows in manifest.groupby("case_num", sort=True):  # one concept in memory at a time
        embeddings.append(np.asarray(embed(load_images(out_dir / "solo", rows)), dtype=np.float64))
        labels += [case_num] * len(rows)
    embeddings = np.concatenate(embeddings)
    measured = diversity_by_label(embeddings, labels, centre=embeddings.mean(axis=0))
    measured = measured.rename(columns={"label": "case_num"}).merge(
        solo[["case_num", "category", "concept", "prompt"]], on="case_num")
    concepts = dvd.merge(measured.drop(columns="case_num").rename(columns={"prompt": "solo_prompt"}),
                         on=["category", "concept"])
    return ConceptStudy(images, concepts, out_dir)


def rank_correlation(x: Sequence[float], y: Sequence[float], *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` and ``y`` over concepts with a percentile bootstrap interval
    (:func:`dvdlib.stats.bootstrap.bootstrap_rank_correlation`). Concepts with a NaN (no diversity or DvD
    measured) are left out; all three are NaN when fewer than 3 remain."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D sequences of one length, got shapes {x.shape} and {y.shape}")
    complete = ~(np.isnan(x) | np.isnan(y))
    if complete.sum() < 3:
        return float("nan"), float("nan"), float("nan")
    return bootstrap.bootstrap_rank_correlation(x[complete], y[complete], n_resamples=n_resamples,
                                            confidence=confidence, seed=seed)


def finding_test(confidence: float = 0.95) -> verdicts.Test:
    """The stated test over concepts: Spearman's rho of diversity and DvD must lie below 0."""
    return verdicts.Test("finding 1", "concepts drawn less diversely dominate more",
                         "Spearman's rho of a concept's generated diversity and its DvD", "below",
                         0.0, confidence, digits=2)


def stated_test(positive_control_dvd: float = 20.0, confidence: float = 0.95) -> str:
    """This study's test in words, before any number (the criteria are checked)."""
    check_criteria(positive_control_dvd, confidence)
    return (finding_test(confidence).statement() + ". It is **not testable** without a positive "
            "control: unless some concept dominates clearly (its DvD interval above "
            f"{positive_control_dvd:g}), a null result says nothing.")


def finding_verdict(rho, dvds: Mapping[str, tuple[float, float, float]], *,
                    positive_control_dvd: float = 20.0, confidence: float = 0.95) -> verdicts.Verdict:
    """The verdict of this study: ``rho`` is ``(estimate, low, high)``; ``dvds`` maps each concept
    to its DvD ``(estimate, low, high)`` (the positive control)."""
    check_criteria(positive_control_dvd, confidence)
    control = positive_control(dvds, positive_control_dvd, "concept")
    return verdicts.decide(finding_test(confidence), rho, [control])


@dataclass
class ProxyResult:
    """What :func:`run_real_model` made: the study, the rank correlation, the verdict."""

    study: ConceptStudy
    rho: tuple[float, float, float]
    verdict: verdicts.Verdict
    n_prompts: int
    clip_model: str


def run_real_model(model: str, seeds: Sequence[int], out_dir: str | Path, *, bench_csv: str = "",
                   max_prompts: int = 0, judge: str = "vlm", judge_model: str = "",
                   clip_model: str = "", device: str = "cpu", steps: int = 50,
                   guidance: float = 7.5, resolution: int | None = None, batch_size: int = 4,
                   wording: Wording = OUR_WORDING, n_resamples: int = 2000,
                   confidence: float = 0.95, positive_control_dvd: float = 20.0) -> ProxyResult:
    """The whole study on a real model (Stable Diffusion): load the model, the judge and CLIP,
    :func:`run_concept_study` over the prompt set (``bench_csv``, or the built-in set; the first
    ``max_prompts`` when given), then the rank correlation over concepts and the verdict.
    Writes ``concepts.csv`` into ``out_dir``."""
    from dvdlib.prompts import prompt_sets
    from dvdlib.chapters.data_diversity.measure import clip_image_embeddings
    from dvdlib.scoring.judges import load_judge
    from dvdlib.scoring.judges.clip import DEFAULT_CLIP, ClipJudge
    from dvdlib.models.loading import load_pipeline

    check_criteria(positive_control_dvd, confidence)
    prompts = prompt_sets.prompt_set(bench_csv or None)
    prompts = prompts.head(max_prompts) if max_prompts else prompts
    clip_model = clip_model or DEFAULT_CLIP
    clip = ClipJudge.from_pretrained(clip_model, device=device)
    study = run_concept_study(
        load_pipeline(model, device=device), model, prompts, seeds, out_dir,
        load_judge(judge, judge_model or None, device, None),
        lambda images: clip_image_embeddings(clip.model, clip.preprocess, images),
        steps=steps, guidance=guidance, height=resolution, width=resolution,
        batch_size=batch_size, wording=wording, n_resamples=n_resamples)
    study.concepts.to_csv(Path(out_dir) / "concepts.csv", index=False)
    concepts = study.concepts
    rho = rank_correlation(concepts["diversity"], concepts["dvd"], n_resamples=n_resamples,
                           confidence=confidence)
    verdict = finding_verdict(rho, {r.concept: (r.dvd, r.ci_low, r.ci_high)
                                    for r in concepts.itertuples()},
                              positive_control_dvd=positive_control_dvd, confidence=confidence)
    return ProxyResult(study, rho, verdict, len(prompts), clip_model)


def plot_concepts(result: ProxyResult):
    """Each concept's DvD (with its interval) against our diversity of its concept-only images."""
    import matplotlib.pyplot as plt

    concepts, rho = result.study.concepts, result.rho
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for category, rows in concepts.groupby("category"):
        ax.errorbar(rows["diversity"], rows["dvd"],
                    yerr=[rows["dvd"] - rows["ci_low"], rows["ci_high"] - rows["dvd"]],
                    fmt="o", capsize=2, label=category, alpha=0.8)
    ax.set_xlabel("diversity of the concept-only generations (CLIP)")
    ax.set_ylabel("DvD of the concept over its prompts")
    ax.set_title(f"Spearman rho = {rho[0]:+.2f} [{rho[1]:+.2f}, {rho[2]:+.2f}], "
                 f"{len(concepts)} concepts")
    ax.legend()
    fig.tight_layout()
    return fig
