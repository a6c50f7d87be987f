"""Chapter 3's conditions, and running them: generate, record attention, judge, read back.

- :class:`ChapterCondition`, :func:`chapter_conditions`: the models and prompt sets compared
  (on the toy world: the dominated prompts on ``k1`` and ``kinf``, and the balanced control of
  :func:`balanced_prompt_table`), checked before any model loads; :func:`conditions_table` lists
  them.
- :func:`run_condition`: one model on one prompt set (:func:`dvdlib.generation.protocol.generate`,
  one pipeline call per prompt), with attention recorded in every call
  (:func:`concept_hook`), every image judged (:func:`dvdlib.scoring.dvd.score_folder`) and the
  records read back (:func:`dvdlib.attention.image_shares.record_shares`); :func:`run_chapter`
  runs every condition and :func:`combine` stacks their tables.
- :func:`image_rows`: one row per generated image with its DvD (``dvd probe`` reads its images
  with it too).

Why one pipeline call per prompt: a record's shares are read for one pair of phrases in every
image, so a record must not mix prompts. :func:`run_condition` therefore cuts batches of the
seeds of one prompt (``batch_size`` must divide the number of seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.attention.image_shares import record_shares
from dvdlib.attention.instruments import check_instruments, instruments_for
from dvdlib.attention.record import MapRequest
from dvdlib.generation.protocol import RECORD_FILE, BatchHook, PipelineCall, attention_hook, generate
from dvdlib.models import spec
from dvdlib.models.families import latent_size
from dvdlib.models.loading import load_model
from dvdlib.prompts.prompt_sets import prompt_set
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.store import save_table
from dvdlib.toyworld.world import CATEGORY, caption, check_name, prompt_table

IMAGE_KEY = ("condition", "case_num", "seed")


# --------------------------------------------------------------------------------------------
# The conditions


def balanced_prompt_table(world, objects: Sequence[str] | None = None,
                          concepts: Sequence[str] | None = None) -> pd.DataFrame:
    """Pair prompts of the world's *other* concepts: "ocean coaster", "forest coaster", ...

    The control for the dominated prompts: the other concepts have unlimited diversity in every
    model of the zoo and were printed on every object in training, so nothing in the data makes
    them take over more than the limited concept's full-diversity twin would. Each (concept,
    object) gives one prompt in the world's product-title form, in the table shape of
    :func:`dvdlib.toyworld.world.prompt_table` (``concept``, ``object``,
    ``arrangement`` "pair", ``paired_in_training`` True). ``objects`` defaults to every object of
    the world, ``concepts`` to every concept but the limited one.
    """
    others = [c for c in world.concepts if c != world.limited]
    concepts = list(others if concepts is None else concepts)
    objects = list(world.objects if objects is None else objects)
    for name in concepts:
        if name not in others:
            raise ValueError(f"balanced pairs use the world's concepts other than {world.limited!r} "
                             f"({', '.join(others)}); got {name!r}")
    for name in objects:
        check_name(name, world.objects, "object")
    if not concepts or not objects:
        raise ValueError(f"balanced pairs need at least one concept and one object, got concepts "
                         f"{concepts} and objects {objects}")
    rows = [(concept, obj, caption(concept, obj)) for obj in objects for concept in concepts]
    return pd.DataFrame(
        [(i + 1, CATEGORY, c, o, p, "pair", True) for i, (c, o, p) in enumerate(rows)],
        columns=["case_num", "category", "concept", "object", "prompt", "arrangement",
                 "paired_in_training"],
    )


@dataclass(frozen=True)
class ChapterCondition:
    """One condition of the chapter: its role, how it is named, its model and prompts."""

    role: str  # "main" (the model under study), "reference" (same prompts) or "balanced"
    label: str
    model: str
    prompts: pd.DataFrame


def chapter_conditions(model: str, reference_model: str = "", balanced: bool = True,
                       zoo_folder: str = "", judge: str = "toy", bench_csv: str = "",
                       prompts_per_category: int = 4) -> list[ChapterCondition]:
    """The chapter's conditions, checked before any model loads.

    On a toy model: the limited concept printed on every object ("sunset coaster", ..., seen and
    unseen objects), on ``model`` and on ``reference_model``, and with ``balanced`` the other
    concepts on the same objects on ``model`` (:func:`balanced_prompt_table`). On a real model:
    the first ``prompts_per_category`` prompts of each category of the prompt set
    (``bench_csv`` or ours), on both models. A model of an unsupported kind (or of a family
    without attention instruments) is refused here.
    """
    for name in (model, reference_model):
        if name:
            check_instruments(name)
    world = spec.toy_world(model, zoo_folder)
    if world is None:
        if judge == "toy":
            raise ValueError(f"judge 'toy' reads the toy world's concepts and objects only; for "
                             f"model {model!r} choose vlm or clip")
        prompts = prompt_set(bench_csv or None).groupby("category", sort=False).head(
            prompts_per_category)
        kind = "bench prompts"
    else:
        prompts, kind = prompt_table(world, controls=False), f"{world.limited} + object"
    out = [ChapterCondition("main", f"{spec.model_label(model, zoo_folder)}: {kind}", model,
                            prompts)]
    if reference_model:
        out.append(ChapterCondition("reference", f"{spec.model_label(reference_model, zoo_folder)}: "
                                    f"{kind}", reference_model, prompts))
    if balanced and world is not None:
        others = balanced_prompt_table(world)
        kind = " or ".join(others["concept"].unique()) + " + object"
        out.append(ChapterCondition("balanced", f"{spec.model_label(model, zoo_folder)}: {kind}",
                                    model, others))
    return out


def conditions_table(conditions: Sequence[ChapterCondition]) -> pd.DataFrame:
    """One row per condition: its role, model, number of prompts and the prompts themselves."""
    return pd.DataFrame([{"role": c.role, "model": c.model, "prompts": len(c.prompts),
                          "prompt texts": ", ".join(c.prompts["prompt"])} for c in conditions],
                        index=pd.Index([c.label for c in conditions], name="condition"))


def concept_name(conditions: Sequence[ChapterCondition]) -> str:
    """The dominant concept as the verdicts name it: "the sunset", or "the dominant concept"."""
    concepts = conditions[0].prompts["concept"].unique()
    return f"the {concepts[0]}" if len(concepts) == 1 else "the dominant concept"


# --------------------------------------------------------------------------------------------
# What is recorded


def map_steps_for(steps: int) -> list[int]:
    """The steps whose spatial maps the chapter keeps: first, second, a quarter, half way, last."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return sorted({0, min(1, steps - 1), steps // 4, steps // 2, steps - 1})


def top_resolution_layers(layers) -> list[str]:
    """Labels of the layers at the largest query resolution (the finest maps)."""
    finest = max(layer.query_positions for layer in layers)
    return [layer.label for layer in layers if layer.query_positions == finest]


def concept_hook(map_steps: Sequence[int] = (),
                 sample_size: tuple[int, int] | None = None) -> BatchHook:
    """A :func:`dvdlib.generation.protocol.generate` hook: records every call into ``attention.npz``.

    Like :func:`dvdlib.generation.protocol.attention_hook` (which tells the guidance rows from
    the call), plus spatial maps: for each call it keeps the maps of the tokens of the call's
    concepts and objects (as its prompts write them), at the finest-resolution layers and at
    ``map_steps`` (none if empty).
    """
    map_steps = [int(s) for s in map_steps]

    def maps(call: PipelineCall, layers, prompts) -> MapRequest | None:
        if not map_steps:
            return None
        instruments = instruments_for(call.pipe)
        positions = sorted({p for job, tokens in zip(call.jobs, prompts)
                            for ps in instruments.token_groups(tokens, {
                                "concept": job.concept_words, "object": job.object_words}).values()
                            for p in ps})
        return MapRequest(layers=top_resolution_layers(layers), tokens=positions,
                          steps=[s for s in map_steps if s < call.num_inference_steps])

    return attention_hook(sample_size=sample_size, maps=maps)


# --------------------------------------------------------------------------------------------
# One condition: generate, judge, read the records


@dataclass
class ConditionResult:
    """Everything one condition (a model on a prompt set) produced, as tidy tables."""

    label: str
    images: pd.DataFrame  # one row per image: prompt, seed, file, record, DvD
    shares: pd.DataFrame  # one row per image and step, layers pooled
    layer_shares: pd.DataFrame  # one row per image, step and layer
    concentration: pd.DataFrame  # one row per image, kept step and group (concept / object)
    image_dir: Path
    tokenizer: object  # the model's tokenizer (its records find phrases with it, or by offsets)
    layout: str  # the model's located layers and heads in one line


def image_rows(manifest: pd.DataFrame, scores: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per generated image, in the manifest's order: its prompt (with the prompt table's
    extra columns, e.g. ``arrangement``), seed, file and record, the judge's yes counts, DvD,
    and whether the concept and the object are present (:data:`~dvdlib.scoring.dvd.PRESENT_YES`)."""
    extra = [c for c in prompts.columns if c not in manifest.columns]
    table = manifest[["case_num", "category", "concept", "object", "prompt", "seed", "model",
                      "steps", "file", "record_dir", "record_image"]]
    table = table.merge(prompts[["case_num", *extra]], on="case_num", how="left")
    judged = scores[["case_num", "seed", "concept_yes", "object_yes", "dvd_score"]].astype({"seed": int})
    table = table.astype({"seed": int}).merge(judged, on=["case_num", "seed"], how="left",
                                              validate="one_to_one")
    missing = table[table["dvd_score"].isna()]
    if len(missing):
        raise ValueError(f"{len(missing)} generated images have no DvD score, e.g. "
                         f"{missing['file'].iloc[0]}")
    table["concept_present"] = table["concept_yes"] >= PRESENT_YES
    table["object_present"] = table["object_yes"] >= PRESENT_YES
    return table


def run_condition(label: str, pipe, prompts: pd.DataFrame, seeds: Sequence[int], judge,
                  out_dir: str | Path, *, model: str, steps: int, guidance: float,
                  height: int | None = None, width: int | None = None,
                  map_steps: Sequence[int] = (), batch_size: int | None = None,
                  wording: Wording = OUR_WORDING, progress: bool = False) -> ConditionResult:
    """Generate ``prompts`` x ``seeds`` with ``pipe``, record attention, judge and tabulate.

    Files go to ``out_dir``: ``images/`` (the images, manifest and records) and ``dvd.csv`` (the
    judge's per-image table). ``batch_size`` (default: all seeds of a prompt in one call) must
    divide the number of seeds, so that every call, and every record, holds one prompt.
    ``wording`` is the judge's question wording (:mod:`dvdlib.scoring.questions`).
    """
    seeds = list(seeds)
    batch_size = len(seeds) if batch_size is None else batch_size
    if not isinstance(batch_size, int) or batch_size < 1 or len(seeds) % batch_size:
        raise ValueError(f"batch_size must be a positive divisor of the number of seeds "
                         f"({len(seeds)}) so that each pipeline call holds one prompt; got {batch_size!r}")
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    instruments = instruments_for(pipe)  # the family's: a ValueError where none exist yet
    sample_size = latent_size(pipe, height, width)
    hook = concept_hook(map_steps, sample_size)
    manifest = generate(pipe, prompts, seeds, image_dir, model=model, steps=steps, guidance=guidance,
                        height=height, width=width, batch_size=batch_size, hook=hook, progress=progress)
    results = out_dir / "dvd.csv"
    scores = score_folder(image_dir, prompts, judge, results, wording=wording, progress=progress)
    save_table(scores, results)
    images = image_rows(manifest, scores, prompts)
    images.insert(0, "condition", label)
    read = record_shares(images, image_dir, RECORD_FILE, instruments.tokenizer, IMAGE_KEY,
                         per_layer=True, maps=True)
    return ConditionResult(label, images, read.shares, read.layer_shares, read.concentration,
                           image_dir, instruments.tokenizer, instruments.describe(sample_size))


def run_chapter(conditions: Sequence[ChapterCondition], seeds: Sequence[int], judge,
                out_dir: str | Path, *, zoo_folder: str = "", device: str = "",
                dtype: str = "float32", **options) -> list[ConditionResult]:
    """:func:`run_condition` for every condition, each model loaded by
    :func:`dvdlib.models.loading.load_model`; ``options`` go to :func:`run_condition` (steps,
    guidance, map_steps, wording, ...)."""
    results = []
    for i, condition in enumerate(conditions):
        pipe = load_model(condition.model, zoo_folder, device, dtype)
        results.append(run_condition(condition.label, pipe, condition.prompts, seeds, judge,
                                     Path(out_dir) / f"condition{i + 1}", model=condition.model,
                                     **options))
    return results


def combine(results: Sequence[ConditionResult]) -> tuple[pd.DataFrame, ...]:
    """The conditions' tables stacked, with an ``image`` id unique over all conditions.

    Returns (images, shares, layer_shares, concentration); the condition column is categorical
    in the order given.
    """
    images = pd.concat([r.images for r in results], ignore_index=True)
    images.insert(1, "image", np.arange(len(images)))
    order = [r.label for r in results]
    ids = images[[*IMAGE_KEY, "image"]]
    out = [images]
    for name in ("shares", "layer_shares", "concentration"):
        parts = [getattr(r, name) for r in results if len(getattr(r, name))]
        table = pd.concat(parts, ignore_index=True).merge(ids, on=list(IMAGE_KEY), how="left") \
            if parts else pd.DataFrame(columns=[*IMAGE_KEY, "image"])
        out.append(table)
    for table in out:
        table["condition"] = pd.Categorical(table["condition"], categories=order)
    return tuple(out)
