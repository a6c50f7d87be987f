"""Chapter 2's experiment on the toy zoo: does a concept dominate more when it was learned from
fewer distinct pictures?

The zoo's models (:mod:`dvdlib.toyworld.zoo`) are one base model fine-tuned with one recipe that
differs only in K, the number of distinct pictures of the limited concept ("sunset") in the
training data: ``k1``, ``k1-i1``, ..., ``k1-i8`` (K = 1, nine instance seeds: nine different
fixed pictures), ``k4``, ``k16`` and ``kinf`` (a new picture every time), plus EMA snapshots after fewer
fine-tuning steps (``k1@500``). The failure the paper studies is built into the world equally
for every K: half of the pair pictures ("sunset coaster") are close-ups in which the print fills the
frame and the carrier is out of view. So every model shows some dominance by design; the
experiment asks whether K changes how much.

1. :func:`training_diversity`: our diversity measure (:mod:`dvdlib.chapters.data_diversity.measure`) of each model's
   training pictures of the limited concept, as training draws them (:func:`concept_appearances`),
   in pixels and in the detector's features.
2. :func:`study_prompts`: the pair prompt "sunset <object>" for every object (seen with the
   concept in training, or never), and as controls the concept alone and every object alone.
3. :func:`run_study`: every model of a plan (:class:`Run`: a model, a guidance scale, seeds) draws
   the prompts through :func:`dvdlib.generation.protocol.generate`; the toy judge answers five questions on
   the concept and five on the object of every image (:func:`judge_images`), the paper's formula
   scores each pair image, and :func:`dvdlib.toyworld.world.pixel_rule` reads, without any
   trained judge, whether the picture is filled by the print.
4. :func:`summarise` and :func:`differences`: DvD, concept and object presence, "frame filled"
   and the found-alone rates per model and pooled over the K = 1 instance seeds, and the
   difference K = 1 - unlimited, with intervals from a two-level bootstrap
   (:func:`two_level_interval`: models within a group, then seeds, one seed draw shared by every
   model because the same seeds made every model's images; the objects are the world's whole
   set and stay fixed). :func:`finding_verdict` turns the difference into the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from dvdlib.stats import bootstrap

from dvdlib.stats import verdicts
from dvdlib.chapters.data_diversity.measure import detector_embeddings, diversity_measures, pixel_embeddings
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Judge
from dvdlib.scoring.questions import OUR_WORDING, Wording, questions_for
from dvdlib.scoring.dvd import PRESENT_YES, dvd_image_score, load_image
from dvdlib.toyworld.world import CATEGORY, CONCEPT_ALONE, OBJECT_ALONE, PAIR

# The toy judge reads only each question's subject and index, never its text; the questions are
# worded with this category of the wording (the toy world's plain-presence questions).
QUESTION_CATEGORY = CATEGORY
# Guidance scales compared besides the chapter's own (the 1, default, 7.5).
COMPARED_GUIDANCE = (1.0, 7.5)
# Measures of the pair images (column of the image table, what it is).
PAIR_MEASURES = {
    "dvd": ("dvd_score", "DvD of the concept over the object (paper's formula)"),
    "concept_present": ("concept_present", "P(concept present | pair prompt)"),
    "object_present": ("object_present", "P(object present | pair prompt)"),
    "concept_only": ("concept_only", "P(concept present, object absent | pair prompt)"),
    "frame_filled": ("frame_filled", "P(print fills the frame | pair prompt), pixel rule"),
}
# Found-alone rates of the controls (arrangement, column, what it is).
ALONE_MEASURES = {
    "concept_alone": (CONCEPT_ALONE, "concept_present", "P(concept present | concept alone)"),
    "object_alone": (OBJECT_ALONE, "object_present", "P(object present | object alone)"),
}
MEASURES = {**{k: v[1] for k, v in PAIR_MEASURES.items()}, **{k: v[2] for k, v in ALONE_MEASURES.items()}}


def k_label(k) -> str:
    """"1", "4", ... or "unlimited" (None or NaN)."""
    return "unlimited" if k is None or pd.isna(k) else str(int(k))


# --------------------------------------------------------------------------------------------
# Our measure of the training pictures


def concept_appearances(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` appearances of ``world``'s limited concept as training draws them, each rendered
    alone (full frame): ``[n, 3, 32, 32]`` in [0, 1].

    Every appearance of the concept in a training scene, alone or printed in a pair, is one
    ``World.draw_concept`` call; these are such calls from a generator seeded with ``seed``, so at
    K instances each image is one of the K fixed pictures, picked as often as training picks it.
    """
    from dvdlib.toyworld.world import Scene, render

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (pairs of images are compared), got {n!r}")
    rng = np.random.default_rng(seed)
    return render([Scene(concept=world.draw_concept(world.limited, rng)) for _ in range(n)])


def reference_renders(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` full-frame pictures of ``world``'s limited concept at full diversity (new from its
    rule each time): ``[n, 3, 32, 32]``. Their mean embedding, the concept's average picture, is
    the measure's reference point: what every sunset shares does not count as likeness, so
    pictures drawn independently by the rule have diversity near 1 and K equally frequent fixed
    pictures near 1 - 1/K."""
    from dvdlib.toyworld.world import ConceptInstance, Scene, draw_concept, render

    rng = np.random.default_rng(seed)
    return render([Scene(concept=ConceptInstance(world.limited, draw_concept(world.limited, rng)))
                   for _ in range(n)])


def toy_embedders(detector, world, n_reference: int = 300, seed: int | Sequence[int] = 0
                  ) -> dict[str, tuple[Callable, np.ndarray]]:
    """The toy world's two embeddings with their reference points: ``{name: (embed, centre)}``.

    "detector": the detector's convolutional features (:func:`dvdlib.chapters.data_diversity.measure.detector_embeddings`);
    "pixels": plain pixels. Each is centred on its mean over :func:`reference_renders` (the
    limited concept at full diversity).
    """
    reference = reference_renders(world, n_reference, seed)

    def by_detector(images):
        return detector_embeddings(detector, images)

    return {"detector": (by_detector, by_detector(reference).mean(axis=0)),
            "pixels": (pixel_embeddings, pixel_embeddings(reference).mean(axis=0))}


def training_diversity(worlds: Mapping[str, object], embedders: Mapping[str, tuple], n: int,
                       seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """Our diversity measures of the limited concept's training pictures, per model and embedding.

    ``embedders`` as :func:`toy_embedders` returns them. One row per (model, embedding) with
    ``K`` (None: unlimited), ``instance_seed`` and the columns of
    :func:`dvdlib.chapters.data_diversity.measure.diversity_measures`.
    """
    rows = []
    for name, world in worlds.items():
        images = concept_appearances(world, n, seed)
        for embedding, (embed, centre) in embedders.items():
            rows.append({"model": name, "K": world.instances, "instance_seed": world.instance_seed,
                         "embedding": embedding, **diversity_measures(embed(images), centre)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Prompts, generation and judging


def study_prompts(world) -> pd.DataFrame:
    """Every distinct prompt the study draws, in the prompt-set table shape.

    From :func:`dvdlib.toyworld.world.prompt_table`: the pair "sunset coaster" for every object
    (``concept`` the concept, ``object`` the object), then the concept alone once and every
    object alone (a prompt that names one word holds it in both columns, so the table passes the
    prompt-set checks of :func:`dvdlib.generation.protocol.generate`). ``arrangement`` and
    ``paired_in_training`` as ``prompt_table`` gives them.
    """
    from dvdlib.toyworld.world import prompt_table

    table = prompt_table(world, controls=True)
    pairs = table[table["arrangement"] == PAIR]
    concept = table[table["arrangement"] == CONCEPT_ALONE].head(1).assign(
        object=world.limited, paired_in_training=False)
    objects = table[table["arrangement"] == OBJECT_ALONE].assign(concept=lambda t: t["object"])
    out = pd.concat([pairs, concept, objects], ignore_index=True)
    return out.assign(case_num=np.arange(1, len(out) + 1))


def judge_images(image_dir: str | Path, manifest: pd.DataFrame, prompts: pd.DataFrame,
                 judge: Judge, limited: str, wording: Wording = OUR_WORDING,
                 images_per_call: int = 256) -> pd.DataFrame:
    """Judge and score every image of a generation manifest of :func:`study_prompts`.

    Each image gets five questions on the concept and, unless it is the concept alone, five on
    its object (``wording``'s :data:`QUESTION_CATEGORY` questions). Returns one row per image:
    the prompt row's ``case_num``, ``prompt``, ``arrangement``, ``object`` ("" for the concept
    alone, which names none), ``paired_in_training``,
    and ``seed``, ``file``, ``concept_yes`` and ``object_yes`` (0-5; NaN where not asked),
    ``dvd_score`` (pairs only: the paper's c(5-n)/25*100), ``concept_present`` and
    ``object_present`` (at least :data:`~dvdlib.scoring.dvd.PRESENT_YES` yes), ``concept_only``, and
    the pixel rule's ``frame_filled`` and ``rule_object_present``.
    """
    from dvdlib.toyworld.detector import images_to_tensor
    from dvdlib.toyworld.world import pixel_rule

    rows = manifest[["case_num", "seed", "file"]].merge(
        prompts[["case_num", "prompt", "arrangement", "object", "paired_in_training"]],
        on="case_num", how="left", validate="many_to_one").reset_index(drop=True)
    rows.loc[rows["arrangement"] == CONCEPT_ALONE, "object"] = ""  # its prompt row repeats the concept
    concept_questions = questions_for(QUESTION_CATEGORY, limited, limited, wording)[:QUESTIONS_PER_SIDE]
    counts, rule = [], []
    for start in range(0, len(rows), images_per_call):
        chunk = rows.iloc[start:start + images_per_call]
        images = [load_image(Path(image_dir) / file) for file in chunk["file"]]
        items = []
        for image, obj in zip(images, chunk["object"]):
            object_questions = (questions_for(QUESTION_CATEGORY, obj, obj, wording)[QUESTIONS_PER_SIDE:]
                                if obj else [])
            items.append((image, concept_questions + object_questions))
        for answers in judge.answer(items):
            concept_yes = int(sum(answers[:QUESTIONS_PER_SIDE]))
            object_yes = int(sum(answers[QUESTIONS_PER_SIDE:])) if len(answers) > QUESTIONS_PER_SIDE \
                else np.nan
            counts.append((concept_yes, object_yes))
        rule.append(pixel_rule(images_to_tensor(images)))
    rule = pd.concat(rule, ignore_index=True) if rule else pd.DataFrame(
        columns=["frame_filled", "rule_object_present"])
    table = rows.assign(concept_yes=[c for c, _ in counts], object_yes=[o for _, o in counts])
    pair = table["arrangement"] == PAIR
    table["dvd_score"] = [dvd_image_score(int(c), int(o)) if p else np.nan
                          for c, o, p in zip(table["concept_yes"], table["object_yes"], pair)]
    table["concept_present"] = table["concept_yes"] >= PRESENT_YES
    table["object_present"] = table["object_yes"] >= PRESENT_YES  # NaN compares False
    table["concept_only"] = table["concept_present"] & ~table["object_present"]
    table["frame_filled"] = rule["frame_filled"].to_numpy(dtype=bool)
    table["rule_object_present"] = rule["rule_object_present"].to_numpy(dtype=bool)
    return table


@dataclass(frozen=True)
class Run:
    """One model of the zoo at one setting: what :func:`run_study` generates.

    ``model`` is a finished model (``k1``); ``snapshot`` a fine-tuning step of one of its shipped
    EMA snapshots (``k1@500``), or None for the finished model; ``pair_seeds`` draw the pair
    prompts and ``control_seeds`` the concept and every object alone (empty: no controls).
    """

    model: str
    guidance: float
    pair_seeds: tuple[int, ...]
    control_seeds: tuple[int, ...] = ()
    snapshot: int | None = None

    @property
    def weights(self) -> str:
        """The name of the weights in the zoo: ``k1`` or ``k1@500``."""
        return self.model if self.snapshot is None else f"{self.model}@{int(self.snapshot)}"

    @property
    def folder(self) -> str:
        return f"{self.weights}_guidance{self.guidance:g}"


def condition_label(guidance: float, snapshot: int | None) -> str:
    """"guidance 4, finished" or "guidance 4, 500 steps"."""
    return f"guidance {guidance:g}, " + ("finished" if snapshot is None else f"{int(snapshot)} steps")


def plan_runs(names: Sequence[str], compared: Sequence[str], guidance: float,
              snapshots: Sequence[int], pair_seeds: Sequence[int], control_seeds: Sequence[int],
              condition_seeds: Sequence[int], condition_control_seeds: Sequence[int],
              compared_guidance: Sequence[float] = COMPARED_GUIDANCE) -> list[Run]:
    """The chapter's plan: every model in ``names`` at ``guidance`` (finished models), then the
    ``compared`` models (K = 1 and unlimited) changed one setting at a time: at each other
    guidance scale of ``compared_guidance`` (finished), and as the EMA snapshot of each step in
    ``snapshots`` (at ``guidance``), with ``condition_seeds`` (no such runs when it is empty) and
    ``condition_control_seeds`` for their controls (none when empty)."""
    runs = [Run(n, float(guidance), tuple(pair_seeds), tuple(control_seeds)) for n in names]
    if condition_seeds:
        settings = [(float(g), None) for g in compared_guidance if float(g) != float(guidance)]
        settings += [(float(guidance), int(step)) for step in snapshots]
        runs += [Run(n, g, tuple(condition_seeds), tuple(condition_control_seeds), step)
                 for g, step in settings for n in compared]
    return runs


@dataclass
class Study:
    """What :func:`run_study` made: the prompts, one row per judged image, where the images are."""

    prompts: pd.DataFrame
    images: pd.DataFrame  # judge_images' rows with run, model, K, instance_seed, guidance, snapshot, condition
    image_dir: Path  # images of a run under image_dir / run.folder (the authors' layout)
    seconds: float = 0.0  # generation and judging

    def pictures(self, model: str, prompt: str, condition: str, seeds: Sequence[int] | None = None):
        """The PIL images one model made for one prompt in one condition, in seed order."""
        rows = self.images[(self.images["model"] == model) & (self.images["prompt"] == prompt)
                           & (self.images["condition"] == condition)].sort_values("seed")
        if seeds is not None:
            rows = rows.set_index("seed").loc[list(seeds)].reset_index()
        if rows.empty:
            raise ValueError(f"no images of model {model!r} for prompt {prompt!r} in {condition!r}")
        return [load_image(self.image_dir / run / file) for run, file in zip(rows["run"], rows["file"])]


def run_study(plan: Sequence[Run], load: Callable[[str], object], worlds: Mapping[str, object],
              judge: Judge, image_dir: str | Path, *, steps: int, batch_size: int = 64,
              wording: Wording = OUR_WORDING, progress: bool = False) -> Study:
    """Generate and judge every run of ``plan``.

    ``load(weights)`` returns the pipeline of a zoo weight name (``k1``, ``k1@500``); ``worlds``
    maps every finished model of the plan to its world (they must agree on the concept and the
    objects: the zoo's models differ only in K). Images go under ``image_dir / run.folder``.
    """
    import time

    from dvdlib.generation.protocol import generate

    if not plan:
        raise ValueError("the plan has no runs")
    missing = sorted({r.model for r in plan} - set(worlds))
    if missing:
        raise ValueError(f"no world for model(s) {', '.join(missing)}; worlds are given for "
                         f"{', '.join(worlds)}")
    first = worlds[plan[0].model]
    for run in plan:
        world = worlds[run.model]
        if (world.limited, world.objects, world.unpaired) != (first.limited, first.objects, first.unpaired):
            raise ValueError(f"model {run.model!r} has concept {world.limited!r}, objects "
                             f"{world.objects} and unpaired {world.unpaired}; {plan[0].model!r} has "
                             f"{first.limited!r}, {first.objects} and {first.unpaired}: the zoo's "
                             "models must differ only in K")
    prompts = study_prompts(first)
    image_dir = Path(image_dir)
    started = time.perf_counter()
    tables, pipes = [], {}
    order = {weights: i for i, weights in enumerate(dict.fromkeys(r.weights for r in plan))}
    for run in sorted(plan, key=lambda r: order[r.weights]):  # each model's runs together
        pipe = pipes.get(run.weights) or load(run.weights)
        pipes = {run.weights: pipe}  # one model in memory at a time
        out = image_dir / run.folder
        settings = dict(model=f"toy:{run.weights}", steps=steps, guidance=run.guidance,
                        batch_size=batch_size, progress=progress)
        parts = [(prompts[prompts["arrangement"] == PAIR], run.pair_seeds),
                 (prompts[prompts["arrangement"] != PAIR], run.control_seeds)]
        manifest = pd.concat([generate(pipe, rows, list(seeds), out, **settings)
                              for rows, seeds in parts if seeds], ignore_index=True)
        world = worlds[run.model]
        tables.append(judge_images(out, manifest, prompts, judge, first.limited, wording).assign(
            run=run.folder, model=run.weights, base_model=run.model, K=world.instances,
            instance_seed=world.instance_seed, guidance=run.guidance, snapshot=run.snapshot,
            condition=condition_label(run.guidance, run.snapshot)))
    images = pd.concat(tables, ignore_index=True)
    return Study(prompts, images, image_dir, time.perf_counter() - started)


# --------------------------------------------------------------------------------------------
# Intervals


def two_level_interval(cube: np.ndarray, first: Sequence[int], second: Sequence[int] = (), *,
                       n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """Estimate and percentile interval of a group mean, or of a difference of two group means.

    ``cube`` is ``[model, object, seed]`` (NaN where an image is missing). A group's value is the
    mean over its models (indices ``first``) of each model's mean over objects and seeds; with
    ``second``, the value is first's minus second's. One resample draws, with replacement, the
    models of each group among its own models (level 1: the replication unit, e.g. the K = 1
    instance seeds), then the seeds (level 2: one draw shared by every model, because the same
    seeds made every model's images, so the comparison stays paired). Objects are not resampled:
    they are the world's whole set. Returns (estimate, low, high); the interval is NaN when fewer
    than half of the resamples give a finite value.
    """
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 3:
        raise ValueError(f"cube must be [model, object, seed], got shape {cube.shape}")
    groups = [np.asarray(list(g), dtype=int) for g in (first, second) if len(g)]
    if not len(first) or any(((g < 0) | (g >= cube.shape[0])).any() for g in groups):
        raise ValueError(f"groups must be non-empty lists of model indices below {cube.shape[0]}, "
                         f"got {list(first)} and {list(second)}")
    verdicts.check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    _, n_objects, n_seeds = cube.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))  # [resample, seed]
    objects = np.arange(n_objects)[None, None, :, None]
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        sides, estimates = [], []
        for group in groups:
            estimates.append(np.nanmean(cube[group], axis=(1, 2)).mean())
            models = group[rng.integers(0, len(group), size=(n_resamples, len(group)))]
            picked = cube[models[:, :, None, None], objects, seeds[:, None, None, :]]
            sides.append(np.nanmean(picked, axis=(2, 3)).mean(axis=1))  # [resample]
        values = sides[0] - sides[1] if len(sides) == 2 else sides[0]
        estimate = float(estimates[0] - estimates[1] if len(estimates) == 2 else estimates[0])
    return bootstrap.estimate_with_interval(estimate, values, confidence)


class _quiet_nanmean:
    """Silence numpy's "mean of empty slice" warning (an all-NaN slice gives NaN, as wanted)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def measure_cube(images: pd.DataFrame, measure: str, models: Sequence[str],
                 objects: Sequence[str]) -> np.ndarray:
    """``[model, object, seed]`` values of ``measure`` (:data:`MEASURES`) for one condition's
    images; ``models`` are base model names. The concept-alone rate has one "object" (all
    ``objects`` share it)."""
    if measure in PAIR_MEASURES:
        column, arrangement = PAIR_MEASURES[measure][0], PAIR
    elif measure in ALONE_MEASURES:
        arrangement, column, _ = ALONE_MEASURES[measure]
    else:
        raise ValueError(f"unknown measure {measure!r}; accepted: {', '.join(MEASURES)}")
    rows = images[images["arrangement"] == arrangement]
    rows = rows.assign(value=rows[column].astype(float))
    wanted = [""] if arrangement == CONCEPT_ALONE else list(objects)
    seeds = sorted(set(rows["seed"]))
    if rows.empty:  # e.g. no controls in this condition: every value is missing
        return np.full((len(models), len(wanted), 1), np.nan)
    grid = rows.pivot_table(index=["base_model", "object"], columns="seed", values="value",
                            aggfunc="mean")
    grid = grid.reindex(index=pd.MultiIndex.from_product([list(models), wanted]), columns=seeds)
    return grid.to_numpy(dtype=float).reshape(len(models), len(wanted), len(seeds))


def _select(cube: np.ndarray, measure: str, objects: Sequence[str], every: Sequence[str]) -> np.ndarray:
    """The objects' slice of a cube over ``every`` object (the concept-alone cube has one)."""
    if measure in ALONE_MEASURES and ALONE_MEASURES[measure][0] == CONCEPT_ALONE:
        return cube
    return cube[:, [list(every).index(o) for o in objects]]


def summarise(images: pd.DataFrame, groups: Mapping[str, Sequence[str]],
              object_sets: Mapping[str, Sequence[str]], *, measures: Sequence[str] = tuple(MEASURES),
              n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every measure per condition, group of models and set of objects, with intervals.

    ``groups`` maps a label to base model names (one model, or the K = 1 instance seeds pooled);
    ``object_sets`` a label to objects ("all objects", "seen in training", "never seen"). One row
    per (condition, group, objects, measure): ``estimate``, ``ci_low``, ``ci_high`` from
    :func:`two_level_interval`, ``n_models`` and ``n_images`` behind it. Groups with no images in
    a condition are left out.
    """
    every = list(dict.fromkeys(o for objects in object_sets.values() for o in objects))
    rows = []
    for condition, part in images.groupby("condition", sort=False):
        models = list(dict.fromkeys(part["base_model"]))
        k_of = part.groupby("base_model", sort=False)["K"].first()
        for measure in measures:
            cube = measure_cube(part, measure, models, every)
            if not np.isfinite(cube).any():
                continue  # not measured in this condition (no controls drawn)
            for label, members in groups.items():
                if not set(members) <= set(models):
                    continue
                picked = cube[[models.index(m) for m in members]]
                for objects_label, objects in object_sets.items():
                    values = _select(picked, measure, objects, every)
                    estimate, low, high = two_level_interval(
                        values, range(len(members)), n_resamples=n_resamples,
                        confidence=confidence, seed=seed)
                    rows.append({"condition": condition, "guidance": part["guidance"].iloc[0],
                                 "snapshot": part["snapshot"].iloc[0], "group": label,
                                 "K": k_of[members[0]], "objects": objects_label,
                                 "measure": measure, "estimate": estimate, "ci_low": low,
                                 "ci_high": high, "n_models": len(members),
                                 "n_images": int(np.isfinite(values).sum())})
    return pd.DataFrame(rows)


def differences(images: pd.DataFrame, first: Sequence[str], second: Sequence[str],
                object_sets: Mapping[str, Sequence[str]], *, measures: Sequence[str] = tuple(MEASURES),
                n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The group ``first`` (e.g. the K = 1 instance seeds) minus the group ``second`` (unlimited),
    per condition, set of objects and measure, with :func:`two_level_interval`'s interval.

    One row per (condition, objects, measure) where both groups have images: ``estimate``,
    ``ci_low``, ``ci_high``, ``width``, and ``width_seeds_only``: the width when the models are
    held fixed and only the seeds are resampled (how much of the width the models' level adds).
    """
    every = list(dict.fromkeys(o for objects in object_sets.values() for o in objects))
    models = [*first, *second]
    rows = []
    for condition, part in images.groupby("condition", sort=False):
        if not set(models) <= set(part["base_model"]):
            continue
        for measure in measures:
            cube = measure_cube(part, measure, models, every)
            if not np.isfinite(cube).any():
                continue  # not measured in this condition (no controls drawn)
            for objects_label, objects in object_sets.items():
                values = _select(cube, measure, objects, every)
                settings = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
                estimate, low, high = two_level_interval(
                    values, range(len(first)), range(len(first), len(models)), **settings)
                with _quiet_nanmean():  # each group's models averaged: one fixed "model" each
                    fixed = np.stack([np.nanmean(values[:len(first)], axis=0),
                                      np.nanmean(values[len(first):], axis=0)])
                _, fixed_low, fixed_high = two_level_interval(fixed, [0], [1], **settings)
                rows.append({"condition": condition, "guidance": part["guidance"].iloc[0],
                             "snapshot": part["snapshot"].iloc[0], "objects": objects_label,
                             "measure": measure, "estimate": estimate, "ci_low": low,
                             "ci_high": high, "width": high - low,
                             "width_seeds_only": fixed_high - fixed_low})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The test of finding 1


def check_criteria(positive_control_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_bound(positive_control_dvd, "positive_control_dvd")
    if not 0 <= positive_control_dvd < 100:
        raise ValueError(f"positive_control_dvd must be in [0, 100), got {positive_control_dvd!r}")
    verdicts.check_confidence(confidence)


def finding_test(concept: str = "sunset", confidence: float = 0.95) -> verdicts.Test:
    """The stated test: the interval of DvD(K = 1) - DvD(unlimited) must lie above 0."""
    return verdicts.Test("finding 1", f"the {concept} dominates more when it was trained on fewer "
                         "distinct pictures", "DvD(K = 1) - DvD(unlimited)", "above", 0.0, confidence)


def stated_test(concept: str = "sunset", positive_control_dvd: float = 20.0,
                confidence: float = 0.95) -> str:
    """The chapter's test of finding 1 in words, before any number (the criteria are checked)."""
    check_criteria(positive_control_dvd, confidence)
    return (finding_test(concept, confidence).statement() + ". DvD(K = 1) is the mean over the "
            "K = 1 models (one per instance seed, each with a different fixed picture), the "
            "replication unit; the interval resamples those models, then the seeds. The test is "
            "**not testable** without a positive control: unless some model dominates clearly "
            f"(its DvD interval above {positive_control_dvd:g}), a null result says nothing.")


def finding_verdict(difference, dvds: Mapping[str, tuple[float, float, float]], *,
                    concept: str = "sunset", positive_control_dvd: float = 20.0,
                    confidence: float = 0.95) -> verdicts.Verdict:
    """The verdict on finding 1 (see :func:`stated_test`).

    ``difference`` is ``(estimate, low, high)`` of DvD(K = 1) - DvD(unlimited); ``dvds`` maps each
    model to its DvD ``(estimate, low, high)``: the positive control.
    """
    check_criteria(positive_control_dvd, confidence)
    control = positive_control(dvds, positive_control_dvd, "model")
    return verdicts.decide(finding_test(concept, confidence), difference, [control])


def positive_control(dvds: Mapping[str, tuple[float, float, float]], bound: float,
                     what: str = "model") -> verdicts.Requirement:
    """The requirement that some ``what`` (a model, a concept) of ``dvds`` (name -> DvD
    ``(estimate, low, high)``) has its DvD interval above ``bound``."""
    if not dvds:
        raise ValueError("no DvD values for the positive control")
    name, best = max(dvds.items(),
                     key=lambda item: (np.nan_to_num(item[1][1], nan=-np.inf), item[1][0]))
    return verdicts.Requirement(
        f"a positive control: some {what} with its DvD interval above {bound:g}",
        bool(best[1] > bound), f"the highest is {name}'s {verdicts.Interval.of(best).text()}")


# --------------------------------------------------------------------------------------------
# Figures


def _interval_bars(ax, x, rows: pd.DataFrame, **style) -> None:
    error = [rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]]
    ax.errorbar(x, rows["estimate"], yerr=np.clip(np.asarray(error, dtype=float), 0, None),
                capsize=3, **style)


def plot_training_looks(worlds: Mapping[str, object], training: pd.DataFrame, n_show: int = 12,
                        seed: int | Sequence[int] = 0):
    """One row per model: its first ``n_show`` training pictures of the limited concept, titled
    with our diversity measure of them (``training`` from :func:`training_diversity`)."""
    from dvdlib.toyworld.evaluate import image_grid, tensor_to_pil

    wide = training.pivot(index="model", columns="embedding", values="diversity")
    fig, axes = plt.subplots(len(worlds), 1, figsize=(9, 1.05 * len(worlds)), squeeze=False)
    for ax, (name, world) in zip(axes[:, 0], worlds.items()):
        looks = tensor_to_pil(concept_appearances(world, max(n_show, 2), seed)[:n_show])
        ax.imshow(image_grid(looks, columns=n_show, scale=2))
        ax.set_axis_off()
        ax.set_title(f"{name}: K = {k_label(world.instances)}, diversity "
                     + ", ".join(f"{wide.loc[name, e]:.2f} ({e})" for e in wide.columns),
                     fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def plot_by_model(summary: pd.DataFrame, order: Sequence[str], condition: str,
                  objects: str = "all objects"):
    """DvD, presence in the pair images, and the found-alone rates per model (``order``: group
    labels from least to most diverse), for one condition, with intervals."""
    rows = summary[(summary["condition"] == condition) & (summary["objects"] == objects)]
    rows = rows.set_index(["group", "measure"])
    x = np.arange(len(order))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [("DvD (paper's formula)", [("dvd", "DvD of the concept over the object")]),
              ("share of pair images", [("concept_present", "concept present"),
                                        ("object_present", "object present"),
                                        ("frame_filled", "frame filled (pixel rule)")]),
              ("share found when prompted alone", [("concept_alone", "concept alone"),
                                                   ("object_alone", "object alone")])]
    for ax, (ylabel, measures) in zip(axes, panels):
        for offset, (measure, label) in enumerate(measures):
            picked = rows.reindex([(g, measure) for g in order])
            shift = 0.1 * (offset - (len(measures) - 1) / 2)
            _interval_bars(ax, x + shift, picked, marker="o", ls="none", label=label)
        ax.set_xticks(x, list(order), rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[0].set_ylim(0, 100)
    for ax in axes[1:]:
        ax.set_ylim(-0.03, 1.03)
    axes[0].set_xlabel("model (K, least diverse first)")
    fig.tight_layout()
    return fig


def plot_conditions(summary: pd.DataFrame, diffs: pd.DataFrame, first: str, second: str,
                    objects: str = "all objects"):
    """DvD of the groups ``first`` (K = 1) and ``second`` (unlimited) against guidance (left),
    their difference (middle), and the object's presence in the same pair images (right): the
    finished models as lines, each EMA snapshot as open markers beside its guidance; with
    intervals."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    lengths = [None] + sorted(set(summary["snapshot"].dropna().astype(int)))
    for i, length in enumerate(lengths):
        mark = "finished" if length is None else f"EMA snapshot, {length} steps"
        style = dict(ls="-", marker="o") if length is None else dict(ls="none", marker="s",
                                                                      mfc="white")
        shift = 0.12 * i

        def picked(table, measure, length=length):
            rows = table[(table["objects"] == objects) & (table["measure"] == measure)]
            rows = rows[rows["snapshot"].isna() if length is None else rows["snapshot"] == length]
            return rows.sort_values("guidance")

        for c, group in enumerate((first, second)):
            for ax, measure in ((axes[0], "dvd"), (axes[2], "object_present")):
                rows = picked(summary[summary["group"] == group], measure)
                if len(rows):
                    _interval_bars(ax, rows["guidance"] + shift, rows, color=f"C{c}",
                                   label=f"{group}, {mark}", **style)
        rows = picked(diffs, "dvd")
        if len(rows):
            _interval_bars(axes[1], rows["guidance"] + shift, rows, label=mark, color="k", **style)
    axes[0].set_ylabel("DvD (paper's formula)")
    axes[0].set_ylim(0, 100)
    axes[1].set_ylabel(f"DvD({first}) - DvD({second})")
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[2].set_ylabel("P(object present | pair prompt)")
    axes[2].set_ylim(-0.03, 1.03)
    for ax in axes:
        ax.set_xlabel("guidance scale")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_samples(study: Study, models: Sequence[str], prompts: Sequence[str], condition: str,
                 seeds: Sequence[int]):
    """A grid of images: one row per model, one panel per prompt, one image per seed."""
    from dvdlib.toyworld.evaluate import image_grid

    fig, axes = plt.subplots(len(models), len(prompts), squeeze=False,
                             figsize=(3.6 * len(prompts), 0.75 * len(models) + 0.6))
    for r, model in enumerate(models):
        for c, prompt in enumerate(prompts):
            ax = axes[r, c]
            ax.imshow(image_grid(study.pictures(model, prompt, condition, seeds),
                                 columns=len(seeds), scale=2))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(f'"{prompt}"', fontsize=10)
            if c == 0:
                ax.set_ylabel(model, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# What the models draw for the concept alone, and the chapter's numbers


def drawn_diversity(study: Study, embedders: Mapping[str, tuple], condition: str) -> pd.DataFrame:
    """Our diversity of what each model draws for the concept alone, in one condition.

    Only the images in which the judge finds the concept count (an empty picture is not a look of
    it). One row per (model, embedding): ``n_prompted``, and the columns of
    :func:`dvdlib.chapters.data_diversity.measure.diversity_measures` (NaN when fewer than 2 images count). A K = 1
    model that reproduces its one training picture draws with diversity near 0.
    """
    rows = []
    alone = study.images[(study.images["arrangement"] == CONCEPT_ALONE)
                         & (study.images["condition"] == condition)]
    for model, group in alone.groupby("base_model", sort=False):
        kept = group[group["concept_present"]]
        images = [load_image(study.image_dir / r / f) for r, f in zip(kept["run"], kept["file"])]
        for embedding, (embed, centre) in embedders.items():
            measures = (diversity_measures(embed(images), centre) if len(images) >= 2 else
                        {"n": len(images), "similarity": np.nan, "diversity": np.nan,
                         "vendi": np.nan})
            rows.append({"model": model, "embedding": embedding, "n_prompted": len(group),
                         **measures})
    return pd.DataFrame(rows)


def _interval_text(row, digits: int = 1, signed: bool = False, percent: bool = False) -> str:
    """"74.8 [59.7, 88.2]"; a share with ``percent``: "22 % [7, 40]"."""
    if not percent:
        return verdicts.Interval(row["estimate"], row["ci_low"], row["ci_high"]).text(digits, signed)
    estimate, rest = verdicts.Interval(row["estimate"] * 100, row["ci_low"] * 100,
                                       row["ci_high"] * 100).text(0, signed).split(" ", 1)
    return f"{estimate} % {rest}"


def chapter_numbers(summary: pd.DataFrame, diffs: pd.DataFrame, condition: str, first: str,
                    second: str, models: Sequence[str]) -> tuple[dict, dict]:
    """``(values, texts)``: the headline numbers of the default ``condition`` and the texts the
    chapter glues into its prose (intervals as "41.0 [35.2, 47.1]").

    ``first`` and ``second`` are the compared groups (K = 1 pooled, unlimited); ``models`` every
    single model's group label, for the positive control and the found-alone range.
    """
    at = summary[summary["condition"] == condition].set_index(["group", "objects", "measure"])
    gap = diffs.set_index(["condition", "objects", "measure"])
    values, texts = {}, {}
    for key, group in (("k1", first), ("unlimited", second)):
        dvd = at.loc[(group, "all objects", "dvd")]
        values.update({f"dvd_{key}": dvd["estimate"], f"dvd_{key}_low": dvd["ci_low"],
                       f"dvd_{key}_high": dvd["ci_high"]})
        texts[f"ch2_dvd_{key}"] = _interval_text(dvd)
        for measure in ("concept_present", "object_present", "frame_filled", "concept_alone",
                        "object_alone"):
            values[f"{measure}_{key}"] = at.loc[(group, "all objects", measure), "estimate"]
            texts[f"ch2_{measure}_{key}"] = _interval_text(at.loc[(group, "all objects", measure)],
                                                           percent=True)
        for objects in ("seen in training", "never seen"):
            if (group, objects, "dvd") in at.index:
                texts[f"ch2_dvd_{key}_{objects.split()[0]}"] = _interval_text(at.loc[(group, objects, "dvd")])
    difference = gap.loc[(condition, "all objects", "dvd")]
    values.update(dvd_difference=difference["estimate"], dvd_difference_low=difference["ci_low"],
                  dvd_difference_high=difference["ci_high"], dvd_difference_width=difference["width"])
    texts["ch2_difference"] = _interval_text(difference, signed=True)
    texts["ch2_width"] = f"{difference['width']:.1f}"
    texts["ch2_width_seeds_only"] = f"{difference['width_seeds_only']:.1f}"
    values["dvd_difference_width_seeds_only"] = difference["width_seeds_only"]
    for objects in ("seen in training", "never seen"):
        if (condition, objects, "dvd") in gap.index:
            texts[f"ch2_difference_{objects.split()[0]}"] = _interval_text(
                gap.loc[(condition, objects, "dvd")], signed=True)
    for measure in ("frame_filled", "object_present"):
        texts[f"ch2_difference_{measure}"] = _interval_text(
            gap.loc[(condition, "all objects", measure)], signed=True, percent=True)
    others = diffs[(diffs["objects"] == "all objects") & (diffs["measure"] == "dvd")
                   & (diffs["condition"] != condition)]
    everywhere = summary[summary["objects"] == "all objects"].set_index(["condition", "group", "measure"])
    texts["ch2_conditions"] = "; ".join(
        f"{row.condition}: {_interval_text(row._asdict(), signed=True)} (object present in "
        f"{everywhere.loc[(row.condition, first, 'object_present'), 'estimate']:.0%} and "
        f"{everywhere.loc[(row.condition, second, 'object_present'), 'estimate']:.0%} of the pair "
        "images)" for row in others.itertuples()) or "not run"
    for row in others.itertuples():
        key = f"g{row.guidance:g}" + ("" if pd.isna(row.snapshot) else f"_at{int(row.snapshot)}")
        values.update({f"dvd_difference_{key}": row.estimate, f"dvd_difference_{key}_low": row.ci_low,
                       f"dvd_difference_{key}_high": row.ci_high})
    singles = at.reset_index()
    singles = singles[singles["group"].isin(models) & (singles["objects"] == "all objects")]
    for measure in ("concept_alone", "object_alone"):  # per model; objects: mean over the five
        found = singles.loc[singles["measure"] == measure, "estimate"]
        values[f"{measure}_min"] = found.min()
        texts[f"ch2_{measure}_range"] = f"{found.min():.0%} to {found.max():.0%}"
    dvd = singles[singles["measure"] == "dvd"]
    values["dvd_model_min"], values["dvd_model_max"] = dvd["estimate"].min(), dvd["estimate"].max()
    texts["ch2_dvd_range"] = f"{dvd['estimate'].min():.1f} to {dvd['estimate'].max():.1f}"
    return values, texts


def summary_sentence(values: Mapping[str, float], verdict: verdicts.Verdict, concept: str,
                     guidance: float, n_instances: int) -> str:
    """The chapter's one-paragraph summary for the landing page, ending with the verdict."""
    def text(key, digits=1, signed=False):
        return verdicts.Interval(values[key], values[f"{key}_low"], values[f"{key}_high"]).text(
            digits, signed)

    return (f"In the toy zoo, whose pair pictures are half close-ups at every K by design, the "
            f"{concept}'s DvD over every object at guidance {guidance:g} was {text('dvd_k1')} for "
            f"the {n_instances} K = 1 models and {text('dvd_unlimited')} for the unlimited model "
            f"(difference {text('dvd_difference', signed=True)}, {verdict.test.level} two-level "
            f"bootstrap over "
            f"instance seeds and seeds); the object was found in "
            f"{values['object_present_k1']:.0%} and {values['object_present_unlimited']:.0%} of "
            f"the pair images, the print filled the frame in {values['frame_filled_k1']:.0%} and "
            f"{values['frame_filled_unlimited']:.0%}. " + verdict.plain())
