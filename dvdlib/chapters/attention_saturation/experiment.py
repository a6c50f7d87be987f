"""Chapter 3: does the dominant concept's cross-attention saturate early, and does that predict DvD?

The paper's second finding is that dominant tokens take over cross-attention in the first
denoising steps and keep it. The measures are ours (:mod:`dvdlib.attention.shares`, defined in
``book/definitions_attention.md``); this module runs them over a set of generated images and
turns the records into the chapter's tables and figures:

- :func:`run_condition`: generate a prompt set with one model (:func:`dvdlib.generation.protocol.generate`,
  one pipeline call per prompt), record cross-attention in every call (:func:`concept_hook`),
  judge every image (:func:`dvdlib.scoring.dvd.score_folder`) and read the records back
  (:func:`record_shares`). The result holds one row per image (with its DvD), one row per image
  and step (the concept's pair share and the concept's and the object's word shares), the same
  per layer, and the spatial concentration of both words' token maps.
- :func:`step_intervals`: mean per step with a bootstrap interval over images (seeds x prompts),
  resampling whole images so every step of an image moves together.
- :func:`level_shares`: the pair share pooled over the layers of one resolution level.
- :func:`image_summary`: per image, the share in the first steps, the saturation step of the
  concept and of the object, and DvD; :func:`saturated_by_step` and
  :func:`saturation_overview` condense it per condition.
- :func:`bootstrap_rank_correlation`: Spearman's rho over images with a bootstrap interval over
  images; :func:`within_prompt_correlation`: the mean rho between the seeds of one prompt, with an
  interval over prompts; :func:`between_prompt_share`: how much of a measure's variance lies
  between prompts.
- ``plot_*``: the chapter's figures, drawn from those tables.

Why one pipeline call per prompt: :meth:`AttentionRecord.group_frame` finds one pair of phrases
in every image of a record, so a record must not mix prompts. :func:`run_condition` therefore
cuts batches of the seeds of one prompt (``batch_size`` must divide the number of seeds) and
:func:`record_shares` checks it.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import seaborn as sns
import numpy as np
import pandas as pd
import torch
from PIL import Image

from dvdlib.models import spec
from dvdlib.models.loading import load_model

from dvdlib.stats import verdicts
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase, prompt_set
from dvdlib.attention.shares import concept_share, map_concentration, saturation_step
from dvdlib.generation.protocol import RECORD_FILE, BatchHook, PipelineCall, attention_hook, generate
from dvdlib.attention.layers import layers_frame
from dvdlib.attention.record import AttentionRecord, MapRequest
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.stats.bootstrap import bootstrap_ci, bootstrap_rank_correlation, mean_interval, rank_correlation
from dvdlib.store import save_table
from dvdlib.attention.token_positions import token_groups
from dvdlib.toyworld.pipeline import FOLD
from dvdlib.toyworld.world import CATEGORY, caption, check_name, prompt_table

CHAPTER = "03_attention_saturation"
GROUPS = ("concept", "object")  # the prompt's dominant concept and the object expected to lose
IMAGE_KEY = ("condition", "case_num", "seed")


# --------------------------------------------------------------------------------------------
# Inputs


def fresh_folder(path: str | Path) -> Path:
    """``path`` emptied and made again: a chapter never reuses images of an earlier run."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


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


def map_steps_for(steps: int) -> list[int]:
    """The steps whose spatial maps the chapter keeps: first, second, a quarter, half way, last."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return sorted({0, min(1, steps - 1), steps // 4, steps // 2, steps - 1})


def top_resolution_layers(layers) -> list[str]:
    """Labels of the cross-attention layers at the largest query resolution (the finest maps)."""
    finest = max(layer.query_positions for layer in layers)
    return [layer.label for layer in layers if layer.query_positions == finest]


def latent_size(pipe, height: int | None, width: int | None) -> tuple[int, int] | None:
    """The UNet's sample size for an image of ``height`` x ``width`` (None: the model's own)."""
    if height is None and width is None:
        return None
    factor = getattr(pipe, "vae_scale_factor", None)
    if factor is None:  # the toy pipeline folds 2x2 pixels into channels and has no VAE
        factor = FOLD
    native = pipe.unet.config.sample_size * factor
    return ((height or native) // factor, (width or native) // factor)


def concept_hook(classifier_free_guidance: bool, map_steps: Sequence[int] = (),
                 sample_size: tuple[int, int] | None = None) -> BatchHook:
    """A :func:`dvdlib.generation.protocol.generate` hook: records every call into ``attention.npz``.

    Like :func:`dvdlib.generation.protocol.attention_hook`, plus spatial maps: for each call it keeps the
    maps of the tokens of the call's concepts and objects (as its prompts write them), at the
    finest-resolution layers and at ``map_steps`` (none if empty).
    """
    map_steps = [int(s) for s in map_steps]

    def maps(call: PipelineCall, layers, prompts) -> MapRequest | None:
        if not map_steps:
            return None
        positions = sorted({p for job, tokens in zip(call.jobs, prompts)
                            for ps in token_groups(call.pipe.tokenizer, tokens, {
                                "concept": job.concept_words, "object": job.object_words}).values()
                            for p in ps})
        return MapRequest(layers=top_resolution_layers(layers), tokens=positions,
                          steps=[s for s in map_steps if s < call.num_inference_steps])

    return attention_hook(sample_size=sample_size, maps=maps,
                          classifier_free_guidance=classifier_free_guidance)


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
    tokenizer: object  # the model's tokenizer, which placed the concepts' tokens


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
    hook = concept_hook(guidance > 1, map_steps, latent_size(pipe, height, width))
    manifest = generate(pipe, prompts, seeds, image_dir, model=model, steps=steps, guidance=guidance,
                        height=height, width=width, batch_size=batch_size, hook=hook, progress=progress)
    results = out_dir / "dvd.csv"
    scores = score_folder(image_dir, prompts, judge, results, wording=wording, progress=progress)
    save_table(scores, results)
    images = image_rows(label, manifest, scores, prompts)
    shares, layer_shares, concentration = record_shares(images, image_dir, pipe.tokenizer)
    return ConditionResult(label, images, shares, layer_shares, concentration, image_dir, pipe.tokenizer)


def image_rows(label: str, manifest: pd.DataFrame, scores: pd.DataFrame,
               prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per generated image: the manifest's prompt, seed, file and record, and its DvD."""
    extra = [c for c in prompts.columns if c not in manifest.columns]  # e.g. "arrangement"
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
    table.insert(0, "condition", label)
    return table


def _layer_metadata(record: AttentionRecord) -> pd.DataFrame:
    meta = layers_frame(record.layers)[["layer", "label", "block", "query_height", "query_width"]]
    meta = meta.rename(columns={"label": "layer_label"})
    meta["level"] = [f"{b} {h}x{w}" for b, h, w in
                     zip(meta["block"], meta["query_height"], meta["query_width"])]
    return meta


def _with_object_word_share(shares: pd.DataFrame) -> pd.DataFrame:
    # The object's share of the word tokens, from the concept's: both divide by the same mass.
    shares["object_word_share"] = shares["word_share"] * shares["object_mass"] / shares["concept_mass"]
    return shares


def record_shares(images: pd.DataFrame, image_dir: str | Path, tokenizer
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read every record named in ``images``: pooled shares, per-layer shares, map concentration.

    Pooled and per-layer shares come from :func:`dvdlib.attention.shares.concept_share` (our definitions),
    with ``concept`` the row's concept and ``obj`` its object as the prompt writes them
    (:func:`dvdlib.prompts.prompt_sets.concept_phrase`, :func:`~dvdlib.prompts.prompt_sets.object_phrase`); ``object_word_share``
    is the object's share of the word tokens. Rows carry the image's key (condition,
    case_num, seed).
    """
    image_dir = Path(image_dir)
    pooled, per_layer, concentration = [], [], []
    for record_dir, rows in images.groupby("record_dir", sort=True):
        if not record_dir:
            raise ValueError(f"images {rows['file'].tolist()[:3]} have no attention record")
        record = AttentionRecord.load(image_dir / record_dir / RECORD_FILE)
        texts = {p.prompt for p in record.prompts}
        first = rows.iloc[0]
        concept, obj = concept_phrase(first), object_phrase(first)  # as the prompt writes them
        if len(texts) != 1 or rows[["concept", "object"]].drop_duplicates().shape[0] != 1:
            raise ValueError(f"record {record_dir} holds several prompts ({sorted(texts)}); make "
                             "one pipeline call per prompt (a batch size that divides the seeds)")
        key = rows.astype({"record_image": int}).set_index("record_image")[list(IMAGE_KEY)]
        for by, out in ((("image", "step"), pooled), (("image", "step", "layer"), per_layer)):
            table = concept_share(record, concept, obj, tokenizer=tokenizer, by=by)
            table = key.join(table.set_index("image"), how="inner").reset_index(drop=True)
            out.append(_with_object_word_share(table))
        per_layer[-1] = per_layer[-1].merge(_layer_metadata(record), on="layer", how="left")
        if record.map_layers:
            concentration.append(_group_concentration(record, key, tokenizer, concept, obj))
    shares = pd.concat(pooled, ignore_index=True)
    layer_table = pd.concat(per_layer, ignore_index=True)
    maps = pd.concat(concentration, ignore_index=True) if concentration else pd.DataFrame()
    return shares, layer_table, maps


def _group_concentration(record: AttentionRecord, key: pd.DataFrame, tokenizer, concept: str,
                         obj: str) -> pd.DataFrame:
    """Concentration of the concept's and the object's maps, averaged over their tokens and layers."""
    phrases = {"concept": concept, "object": obj}
    owners = pd.DataFrame([
        {"image": image, "token": position, "group": group}
        for image, prompt in enumerate(record.prompts)
        for group, positions in token_groups(tokenizer, prompt, phrases).items()
        for position in positions
    ])
    table = map_concentration(record).merge(owners, on=["image", "token"])
    table = table.groupby(["image", "step", "group"])[["entropy_concentration", "top_mass"]].mean()
    table = key.join(table.reset_index().set_index("image"), how="inner").reset_index(drop=True)
    return table[[*IMAGE_KEY, "step", "group", "entropy_concentration", "top_mass"]]


def group_maps(record: AttentionRecord, image: int, tokenizer, concept: str, obj: str
               ) -> dict[str, torch.Tensor]:
    """Spatial attention of ``image`` on each group, ``[map step, height, width]``.

    The kept maps of a group's tokens are summed (a concept's attention is that of all its
    tokens) and averaged over the kept layers, which share one resolution.
    """
    if not record.map_layers:
        raise ValueError("the record kept no spatial maps")
    tokens = record.map_tokens
    groups = token_groups(tokenizer, record.prompts[image], {"concept": concept, "object": obj})
    maps = torch.stack([record.token_maps(layer.name)[image] for layer in record.map_layers])
    maps = maps.mean(0)  # [map step, token, height, width]
    return {group: maps[:, [tokens.index(p) for p in positions]].sum(1)
            for group, positions in groups.items()}


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


# --------------------------------------------------------------------------------------------
# Summaries


def level_shares(layer_shares: pd.DataFrame) -> pd.DataFrame:
    """Pair share per image, step and resolution level, pooled over the level's layers.

    As in our pooled measure, masses are averaged over the layers first and the share is taken
    of the averages. ``level`` is the block and the query resolution (``down 8x8``).
    """
    keys = ["condition", "image", "step", "level"]
    order = list(dict.fromkeys(layer_shares.sort_values("layer")["level"]))
    table = layer_shares.groupby(keys, observed=True)[["concept_mass", "object_mass"]].mean().reset_index()
    table["pair_share"] = table["concept_mass"] / (table["concept_mass"] + table["object_mass"])
    table["level"] = pd.Categorical(table["level"], categories=order)
    return table


def step_intervals(table: pd.DataFrame, value: str, by: Sequence[str] = ("condition",), *,
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of ``value`` per step (and ``by``), with a percentile bootstrap interval over images.

    Each resample draws whole images with replacement, so the steps of one image stay together.
    One row per ``by`` group and step: ``mean``, ``ci_low``, ``ci_high``, ``n_images``.
    """
    if value not in table.columns:
        raise KeyError(f"column {value!r} is not in the table; columns: {', '.join(table.columns)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    by = list(by)
    rng = np.random.default_rng(seed)
    rows = []
    for key, group in table.groupby(by, observed=True, sort=True):
        wide = group.pivot_table(index="image", columns="step", values=value)  # [image, step]
        matrix = wide.to_numpy()
        picks = rng.integers(0, len(matrix), size=(n_resamples, len(matrix)))  # [resample, image]
        means = np.nanmean(matrix[picks], axis=1)  # [resample, step]
        tail = (1 - confidence) / 2
        low, high = np.nanquantile(means, [tail, 1 - tail], axis=0)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(pd.DataFrame({**dict(zip(by, key)), "step": wide.columns.to_numpy(),
                                  "mean": np.nanmean(matrix, axis=0), "ci_low": low, "ci_high": high,
                                  "n_images": len(matrix)}))
    out = pd.concat(rows, ignore_index=True)
    for column in by:
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            out[column] = pd.Categorical(out[column], categories=table[column].cat.categories)
    return out


def early_steps_for(steps: int, early_fraction: float) -> int:
    """How many first steps make the "early" window: ``round(fraction x steps)``, at least 1."""
    if not 0 < early_fraction <= 1:
        raise ValueError(f"early_fraction must be in (0, 1], got {early_fraction!r}")
    return max(1, round(early_fraction * steps))


def image_summary(images: pd.DataFrame, shares: pd.DataFrame, early_steps: int,
                  threshold: float) -> pd.DataFrame:
    """One row per image: early and final pair share, saturation steps, DvD.

    ``early_share`` is the mean pair share over steps ``0 .. early_steps - 1``; ``final_share``
    the share at the last step. ``saturation_step`` is :func:`dvdlib.attention.shares.saturation_step` of
    the concept's pair share at ``threshold``; ``object_saturation_step`` the same for the
    object's pair share (one minus the concept's), which asks whether the *object* takes over.
    An image whose share ends below the threshold gets the step count (``saturated`` /
    ``object_saturated`` False), so "saturated by step s" is ``saturation_step <= s`` for every
    image.
    """
    if not isinstance(early_steps, int) or early_steps < 1:
        raise ValueError(f"early_steps must be a positive integer, got {early_steps!r}")
    early = shares[shares["step"] < early_steps].groupby("image")["pair_share"].mean()
    last = shares.loc[shares.groupby("image")["step"].idxmax()].set_index("image")["pair_share"]
    table = images.set_index("image").copy()
    table["early_share"] = early
    table["final_share"] = last
    for prefix, share in (("", shares["pair_share"]), ("object_", 1 - shares["pair_share"])):
        cells = pd.DataFrame({"image": shares["image"], "step": shares["step"], "pair_share": share})
        saturation = saturation_step(cells, threshold).set_index("image")
        table[f"{prefix}saturated"] = saturation["saturation_step"].notna()
        table[f"{prefix}saturation_step"] = (saturation["saturation_step"]
                                             .fillna(saturation["num_steps"]).astype(int))
        table["num_steps"] = saturation["num_steps"]
    table["saturation_fraction"] = table["saturation_step"] / table["num_steps"]
    table["threshold"] = threshold
    return table.reset_index()


TOKENS = {"concept": "", "object": "object_"}  # whose saturation: column prefixes


def saturated_by_step(summary: pd.DataFrame) -> pd.DataFrame:
    """Share of each condition's images saturated by each step, for the concept and the object.

    One row per condition, ``token`` ("concept" / "object") and step: ``saturated`` is the share
    of images with ``saturation_step <= step`` (``object_saturation_step`` for the object).
    """
    rows = []
    for condition, group in summary.groupby("condition", observed=True, sort=True):
        steps = int(group["num_steps"].max())
        for token, prefix in TOKENS.items():
            column = group[f"{prefix}saturation_step"]
            for step in range(steps):
                rows.append({"condition": condition, "token": token, "step": step,
                             "saturated": float((column <= step).mean())})
    out = pd.DataFrame(rows)
    out["condition"] = pd.Categorical(out["condition"], categories=summary["condition"].cat.categories)
    return out


def saturation_overview(summary: pd.DataFrame) -> pd.DataFrame:
    """Per condition and token: images, share saturated from step 0, never, median step."""
    rows = []
    for condition, part in summary.groupby("condition", observed=True, sort=True):
        for token, prefix in TOKENS.items():
            step = part[f"{prefix}saturation_step"]
            rows.append({
                "condition": condition, "token": token, "images": len(part),
                "saturated from step 0": float(step.eq(0).mean()),
                "never saturated": float(1 - part[f"{prefix}saturated"].mean()),
                "median saturation step": float(step.median()),
            })
    return pd.DataFrame(rows).set_index(["condition", "token"])


def between_prompt_share(summary: pd.DataFrame, column: str = "early_share") -> pd.Series:
    """Per condition, the share of ``column``'s variance over images that lies between prompts.

    One minus the mean within-prompt variance over the total variance (both over images): 1
    when every seed of a prompt has the same value, near 0 when prompts do not differ.
    """
    out = {}
    for condition, part in summary.groupby("condition", observed=True, sort=True):
        total = part[column].var(ddof=0)
        within = (part[column] - part.groupby("prompt")[column].transform("mean")).pow(2).mean()
        out[condition] = float(1 - within / total) if total > 0 else float("nan")
    return pd.Series(out, name=f"{column}_between_prompts")


def within_prompt_correlation(summary: pd.DataFrame, x: str = "early_share", y: str = "dvd_score", *,
                              n_resamples: int = 2000, confidence: float = 0.95,
                              seed: int = 0) -> tuple[float, float, float, int]:
    """Mean over prompts of Spearman's rho between seeds of one prompt, with an interval over prompts.

    It asks whether, for a fixed prompt, the seeds whose concept draws more early attention end
    up more dominated: differences between prompts (which object, which word order) cannot
    drive it. Prompts whose ``x`` or ``y`` is constant over their seeds have no rho and are left
    out. Returns ``(mean rho, low, high, prompts used)``; NaN values when no prompt has a rho.
    """
    rhos = []
    for _, group in summary.groupby("prompt", sort=True):
        if len(group) >= 3:
            rho = rank_correlation(group[x], group[y])
            if not math.isnan(rho):
                rhos.append(rho)
    if not rhos:
        return math.nan, math.nan, math.nan, 0
    if len(rhos) == 1:
        return rhos[0], math.nan, math.nan, 1
    low, high = bootstrap_ci(rhos, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return float(np.mean(rhos)), low, high, len(rhos)


def correlation_table(summary: pd.DataFrame, x: str = "early_share", y: str = "dvd_score", *,
                      pooled: Sequence[str] = (), n_resamples: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Spearman's rho of ``x`` and ``y`` per condition (and over the ``pooled`` conditions together).

    ``rho`` is over all images, with a bootstrap interval over images; ``within_rho`` is
    :func:`within_prompt_correlation`, with an interval over prompts.
    """
    groups = [(str(c), g) for c, g in summary.groupby("condition", observed=True, sort=True)]
    if len(pooled) > 1:
        groups.append((" + ".join(pooled), summary[summary["condition"].isin(pooled)]))
    rows = []
    for name, group in groups:
        rho, low, high = bootstrap_rank_correlation(group[x], group[y], n_resamples=n_resamples,
                                                    seed=seed)
        within = within_prompt_correlation(group, x, y, n_resamples=n_resamples, seed=seed)
        rows.append({"images": name, "n_images": len(group), "rho": rho, "ci_low": low,
                     "ci_high": high, "within_rho": within[0], "within_low": within[1],
                     "within_high": within[2], "n_prompts": within[3]})
    return pd.DataFrame(rows)


PRESENCE = ("concept_present", "object_present")


def prompt_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per condition and prompt: mean early and final share, saturated from step 0, DvD,
    and the shares of images with the concept and with the object present."""
    keys = ["condition", "prompt", "concept", "object"]
    table = summary.groupby(keys, observed=True, sort=False).agg(
        images=("image", "size"), early_share=("early_share", "mean"),
        final_share=("final_share", "mean"),
        saturated_from_start=("saturation_step", lambda s: float((s == 0).mean())),
        dvd=("dvd_score", "mean"), **{side: (side, "mean") for side in PRESENCE if side in summary})
    return table.reset_index()


# --------------------------------------------------------------------------------------------
# Figures


def plot_step_shares(word: pd.DataFrame, pair: pd.DataFrame, threshold: float, axes) -> None:
    """Left: the concept's and the object's word shares per step; right: the pair share, per condition.

    ``word`` is :func:`step_intervals` of ``word_share`` and ``object_word_share`` stacked with a
    ``token`` column ("concept" / "object"); ``pair`` that of ``pair_share``.
    """
    left, right = axes
    conditions = list(pair["condition"].cat.categories)
    colours = dict(zip(conditions, [f"C{i}" for i in range(len(conditions))]))
    for (condition, token), part in word.groupby(["condition", "token"], observed=True, sort=False):
        style = "-" if token == "concept" else "--"
        left.plot(part["step"], part["mean"], style, color=colours[condition],
                  label=f"{condition}: {token}")
        left.fill_between(part["step"], part["ci_low"], part["ci_high"], color=colours[condition],
                          alpha=0.2, linewidth=0)
    left.set_xlabel("denoising step (0 = noisiest)")
    left.set_ylabel("share of word-token attention")
    left.set_title("word share: concept (solid), object (dashed)")
    left.legend(fontsize=7)
    for condition, part in pair.groupby("condition", observed=True, sort=False):
        right.plot(part["step"], part["mean"], color=colours[condition], label=condition)
        right.fill_between(part["step"], part["ci_low"], part["ci_high"], color=colours[condition],
                           alpha=0.2, linewidth=0)
    right.axhline(0.5, color="grey", linewidth=0.8)
    right.axhline(threshold, color="grey", linewidth=0.8, linestyle=":")
    right.set_xlabel("denoising step (0 = noisiest)")
    right.set_ylabel("pair share of the concept")
    right.set_title(f"pair share (dotted: threshold {threshold:g})")
    right.legend(fontsize=7)


def plot_level_shares(intervals: pd.DataFrame, fig) -> None:
    """One panel per resolution level: pair share per step, per condition, with intervals."""
    levels = list(intervals["level"].cat.categories)
    conditions = list(intervals["condition"].cat.categories)
    axes = fig.subplots(1, len(levels), sharey=True, squeeze=False)[0]
    for ax, level in zip(axes, levels):
        for i, condition in enumerate(conditions):
            part = intervals[(intervals["level"] == level) & (intervals["condition"] == condition)]
            ax.plot(part["step"], part["mean"], color=f"C{i}", label=condition)
            ax.fill_between(part["step"], part["ci_low"], part["ci_high"], color=f"C{i}", alpha=0.2,
                            linewidth=0)
        ax.axhline(0.5, color="grey", linewidth=0.8)
        ax.set_title(level)
        ax.set_xlabel("step")
    axes[0].set_ylabel("pair share of the concept")
    axes[-1].legend(fontsize=7)


def layer_step_matrix(layer_shares: pd.DataFrame, condition: str) -> pd.DataFrame:
    """Mean pair share, one row per layer (labelled ``index: label``) and one column per step."""
    part = layer_shares[layer_shares["condition"] == condition]
    if part.empty:
        raise ValueError(f"no rows for condition {condition!r}; conditions: "
                         f"{', '.join(map(str, layer_shares['condition'].unique()))}")
    matrix = part.pivot_table(index=["layer", "layer_label", "level"], columns="step",
                              values="pair_share", observed=True)
    matrix.index = [f"{layer}: {label} ({level.split()[1]})" for layer, label, level in matrix.index]
    return matrix


def plot_token_maps(examples: Sequence[dict], map_steps: Sequence[int], fig) -> None:
    """The image, then token maps over it: two rows (concept, object) per example, a column per step.

    ``examples``: dicts with ``title``, ``image`` (PIL), ``maps`` ({"concept": [step, h, w],
    "object": ...}) and ``words`` ({"concept": "sunset", "object": "coaster"}). One colour scale
    for all maps, so brighter means more attention everywhere in the figure. Draw on a figure
    with ``layout="constrained"``.
    """
    vmax = max(float(m.max()) for e in examples for m in e["maps"].values())
    axes = fig.subplots(2 * len(examples), len(map_steps) + 1, squeeze=False)
    shown = None
    for e, example in enumerate(examples):
        image = np.asarray(example["image"].convert("L"), dtype=float) / 255
        height, width = image.shape
        for g, group in enumerate(GROUPS):
            r = 2 * e + g
            axes[r, 0].axis("off")
            if g == 0:
                axes[r, 0].imshow(example["image"], interpolation="nearest")
                axes[r, 0].set_title(example["title"], fontsize=9)
            for c, step in enumerate(map_steps, start=1):
                ax = axes[r, c]
                ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0))
                shown = ax.imshow(example["maps"][group][c - 1].numpy(), cmap="magma", alpha=0.65,
                                  vmin=0, vmax=vmax, extent=(0, width, height, 0),
                                  interpolation="bilinear")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                if r == 0:
                    ax.set_title(f"step {step}", fontsize=9)
                if c == 1:
                    ax.set_ylabel(f"\"{example['words'][group]}\"", fontsize=9)
    fig.colorbar(shown, ax=axes[:, 1:], shrink=0.7, label="attention on the token")


def plot_early_vs_dvd(summary: pd.DataFrame, ax, jitter: float = 1.2, seed: int = 0) -> None:
    """Per image: early pair share (x) against DvD (y, jittered: it takes 15 values), per condition."""
    rng = np.random.default_rng(seed)
    for i, (condition, part) in enumerate(summary.groupby("condition", observed=True, sort=True)):
        ax.scatter(part["early_share"], part["dvd_score"] + rng.uniform(-jitter, jitter, len(part)),
                   s=10, alpha=0.55, color=f"C{i}", label=condition, linewidth=0)
    ax.set_xlabel("early pair share of the concept")
    ax.set_ylabel("DvD of the image (jittered)")
    ax.legend(fontsize=7)


def token_map_example(result: ConditionResult, prompt: str, seed: int,
                      title: str | None = None) -> dict:
    """The generated image of ``prompt`` and ``seed`` in one condition, with its concept maps.

    A dict for :func:`plot_token_maps`: ``title`` (default: the condition's label), ``image``,
    ``maps`` (see :func:`group_maps`), ``words`` and ``map_steps``.
    """
    rows = result.images[(result.images["prompt"] == prompt) & (result.images["seed"] == seed)]
    if rows.empty:
        raise ValueError(f"condition {result.label!r} has no image of prompt {prompt!r} with seed "
                         f"{seed}; its prompts: {sorted(result.images['prompt'].unique())}")
    row = rows.iloc[0]
    record = AttentionRecord.load(result.image_dir / row["record_dir"] / RECORD_FILE)
    with Image.open(result.image_dir / row["file"]) as image:
        picture = image.convert("RGB")
    return {"title": title or result.label, "image": picture,
            "maps": group_maps(record, int(row["record_image"]), result.tokenizer, concept_phrase(row),
                               object_phrase(row)),
            "words": {"concept": row["concept"], "object": row["object"]},
            "map_steps": record.map_steps}


# --------------------------------------------------------------------------------------------
# What the run says about finding 2: two tests, decided apart


def check_criteria(early_fraction: float, threshold: float, saturation_by: float, majority: float,
                   min_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_fraction("early_fraction", early_fraction, include_high=True)
    verdicts.check_threshold(threshold, "saturation_threshold (tau)")
    verdicts.check_fraction("saturation_by", saturation_by, include_high=True)
    verdicts.check_fraction("majority", majority)
    verdicts.check_bound(min_dvd, "min_dvd")
    if not 0 <= min_dvd < 100:
        raise ValueError(f"min_dvd must be in [0, 100), got {min_dvd!r}")
    verdicts.check_confidence(confidence)


def stated_tests(steps: int, early_fraction: float, threshold: float, saturation_by: float,
                 majority: float, min_dvd: float, confidence: float) -> str:
    """The chapter's two tests of finding 2 in words, before any number (the criteria are checked)."""
    check_criteria(early_fraction, threshold, saturation_by, majority, min_dvd, confidence)
    early, window = early_steps_for(steps, early_fraction), early_steps_for(steps, saturation_by)
    level = f"{confidence * 100:g} %"
    return (f"**Early bias** holds when the {level} interval of the dominant concept's mean pair share over "
            f"the first {early} of {steps} steps lies above 0.5 (contradicted below 0.5). **Saturation** "
            f"holds when the {level} interval of the share of images *saturated* within the first {window} "
            f"steps lies above {majority:g}, an image being saturated from step $s$ when its pair share "
            f"stays at or above tau = {threshold:g} from $s$ to the last step (contradicted when the "
            f"interval lies below {majority:g}). Both are inconclusive when the interval contains the "
            f"bound, and not testable unless the dominated condition shows dominance to explain (its DvD "
            f"interval above {min_dvd:g}). The two are decided apart: an early bias without saturation is "
            "reported as such.")


def finding_verdicts(summary: pd.DataFrame, condition: str, concept_name: str, *, early_steps: int,
                     saturation_window: int, threshold: float, majority: float = 0.5, min_dvd: float = 0.0,
                     confidence: float = 0.95, n_resamples: int = 2000) -> dict[str, verdicts.Verdict]:
    """``early_bias_verdict`` and ``saturation_verdict`` on ``condition``'s images of an
    :func:`image_summary` table (see :func:`stated_tests`); intervals resample images."""
    check_criteria(0.5, threshold, 0.5, majority, min_dvd, confidence)
    part = summary[summary["condition"] == condition]
    if part.empty:
        raise ValueError(f"no images of condition {condition!r}; conditions: "
                         f"{', '.join(map(str, summary['condition'].unique()))}")
    options = dict(n_resamples=n_resamples, confidence=confidence)
    dvd = mean_interval(part["dvd_score"], **options)
    dominance = verdicts.Requirement(
        f"dominance to explain: the DvD interval of {condition} above {min_dvd:g}", dvd[1] > min_dvd,
        f"its DvD is {verdicts.Interval.of(dvd).text()}")
    early = verdicts.Test("finding 2 (early bias)",
                          f"{concept_name} draws more than half of the pair's attention in the first "
                          f"{early_steps} steps", f"the mean early pair share on {condition}", "above", 0.5,
                          confidence, digits=2)
    saturated = verdicts.Test("finding 2 (saturation)",
                              f"{concept_name}'s pair share saturates at tau = {threshold:g} within the first "
                              f"{saturation_window} steps in most images",
                              f"the share of images of {condition} saturated within the first "
                              f"{saturation_window} steps", "above", majority, confidence, digits=2)
    within = (part["saturation_step"] < saturation_window).astype(float)
    return {"early_bias_verdict": verdicts.decide(early, mean_interval(part["early_share"], **options),
                                                  [dominance]),
            "saturation_verdict": verdicts.decide(saturated, mean_interval(within, **options), [dominance])}


# --------------------------------------------------------------------------------------------
# The chapter: its conditions, figures, numbers and sentences


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
    (``bench_csv`` or ours), on both models.
    """
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


def concept_name(conditions: Sequence[ChapterCondition]) -> str:
    """The dominant concept as sentences name it: "the sunset", or "the dominant concept"."""
    concepts = conditions[0].prompts["concept"].unique()
    return f"the {concepts[0]}" if len(concepts) == 1 else "the dominant concept"


def run_chapter(conditions: Sequence[ChapterCondition], seeds: Sequence[int], judge,
                out_dir: str | Path, *, zoo_folder: str = "", device: str = "",
                dtype: str = "float32", **options) -> list[ConditionResult]:
    """:func:`run_condition` for every condition, each model loaded by :func:`dvdlib.models.loading.load_model`;
    ``options`` go to :func:`run_condition` (steps, guidance, map_steps, wording, ...)."""
    results = []
    for i, condition in enumerate(conditions):
        pipe = load_model(condition.model, zoo_folder, device, dtype)
        results.append(run_condition(condition.label, pipe, condition.prompts, seeds, judge,
                                     Path(out_dir) / f"condition{i + 1}", model=condition.model,
                                     **options))
    return results


STAT_COLUMNS = {"early": "early_share", "final": "final_share", "dvd": "dvd_score",
                "concept_present": "concept_present", "object_present": "object_present"}


def condition_stats(summary: pd.DataFrame, n_resamples: int = 2000,
                    confidence: float = 0.95) -> pd.DataFrame:
    """One row per condition: early and final pair share, DvD, and the shares of images with the
    concept and with the object present, each with ``_low``/``_high`` (bootstrap over images)."""
    rows = []
    for condition, part in summary.groupby("condition", observed=True, sort=False):
        row = {"condition": condition, "images": len(part)}
        for name, column in STAT_COLUMNS.items():
            row[name], row[f"{name}_low"], row[f"{name}_high"] = mean_interval(
                part[column].astype(float), n_resamples, confidence=confidence)
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def interval_text(row, name: str, digits: int = 2, percent: bool = False) -> str:
    """``0.62 [0.58, 0.66]`` (or ``62 % [58, 66]``) from ``name``, ``name_low``, ``name_high``."""
    if percent:
        return (f"{row[name]:.0%} [{100 * row[f'{name}_low']:.0f}, "
                f"{100 * row[f'{name}_high']:.0f}]")
    return f"{row[name]:.{digits}f} [{row[f'{name}_low']:.{digits}f}, {row[f'{name}_high']:.{digits}f}]"


def dvd_with_presence(row, concept: str) -> str:
    """DvD with its interval and, beside it, how often each side is present."""
    return (f"DvD {interval_text(row, 'dvd', 1)}, {concept} present in "
            f"{interval_text(row, 'concept_present', percent=True)} and the object in "
            f"{interval_text(row, 'object_present', percent=True)} of the images")


def figure_step_shares(shares: pd.DataFrame, threshold: float, n_resamples: int = 2000):
    """Figure 3.1: the concept's and the object's word shares (left) and the pair share (right) per step."""
    word = pd.concat([
        step_intervals(shares, "word_share", n_resamples=n_resamples).assign(token="concept"),
        step_intervals(shares, "object_word_share", n_resamples=n_resamples).assign(token="object")])
    pair = step_intervals(shares, "pair_share", n_resamples=n_resamples)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    plot_step_shares(word, pair, threshold, axes)
    fig.tight_layout()
    return fig


def figure_levels(layer_shares: pd.DataFrame, n_resamples: int = 2000):
    """Figure 3.2: the pair share per step at each resolution level; returns (figure, levels)."""
    levels = level_shares(layer_shares)
    intervals = step_intervals(levels, "pair_share", by=("condition", "level"),
                               n_resamples=n_resamples)
    fig = plt.figure(figsize=(3.0 * levels["level"].nunique(), 3.6))
    plot_level_shares(intervals, fig)
    fig.tight_layout()
    return fig, levels


def figure_saturation(summary: pd.DataFrame, concept: str, threshold: float):
    """Figure 3.4: share of images saturated by each step, for the concept and for the object."""
    curve = saturated_by_step(summary)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    titles = {"concept": f"{concept}: pair share >= {threshold:g} from then on",
              "object": f"the object: 1 - pair share >= {threshold:g} from then on"}
    for ax, token in zip(axes, TOKENS):
        for i, (condition, part) in enumerate(curve[curve["token"] == token].groupby(
                "condition", observed=True, sort=False)):
            ax.step(part["step"], part["saturated"], where="post", color=f"C{i}", label=condition)
        ax.set_title(titles[token], fontsize=10)
        ax.set_xlabel("denoising step")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("share of images saturated")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def figure_token_maps(results: Sequence[ConditionResult], prompt: str, seed: int):
    """Figure 3.5: the token maps of ``prompt`` and ``seed`` in every condition that ran it."""
    examples = [token_map_example(r, prompt, seed) for r in results
                if prompt in set(r.images["prompt"])]
    if not examples:
        raise ValueError(f"no condition ran the prompt {prompt!r}; prompts: "
                         f"{sorted({p for r in results for p in r.images['prompt']})}")
    steps = examples[0]["map_steps"]
    fig = plt.figure(figsize=(1.9 * (len(steps) + 1) + 1.5, 1.9 * 2 * len(examples)),
                     layout="constrained")
    plot_token_maps(examples, steps, fig)
    return fig


def figure_early_vs_dvd(summary: pd.DataFrame):
    """Figure 3.6: per image, the early pair share against DvD."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    plot_early_vs_dvd(summary, ax)
    fig.tight_layout()
    return fig


def _rho_text(row) -> str:
    if math.isnan(row["rho"]):
        return f"undefined for *{row['images']}* (DvD or early share constant)"
    within = ("undefined within prompts" if math.isnan(row["within_rho"]) else
              f"{row['within_rho']:.2f} within its one prompt with a defined rho (no interval)"
              if math.isnan(row["within_low"]) else
              f"{row['within_rho']:.2f} [{row['within_low']:.2f}, {row['within_high']:.2f}] within "
              f"the {int(row['n_prompts'])} of its prompts with a defined rho")
    return (f"{row['rho']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] over the "
            f"{row['n_images']} images of *{row['images']}*, {within}")


def _sign(low: float, high: float) -> str:
    return "positive" if low > 0 else "negative" if high < 0 else "not distinguishable from zero"


@dataclass
class ChapterResult:
    """The chapter's tables, its verdicts, and the sentences and numbers it places in its text."""

    conditions: list[ChapterCondition]
    concept: str  # "the sunset"
    steps: int
    early_steps: int
    saturation_window: int
    threshold: float
    stats: pd.DataFrame  # condition_stats
    saturation: pd.DataFrame  # saturation_overview
    correlations: pd.DataFrame  # correlation_table, indexed by images
    between: pd.Series  # between_prompt_share of the early share
    per_prompt: pd.DataFrame  # prompt_summary
    verdicts: dict

    def label(self, role: str) -> str | None:
        return next((c.label for c in self.conditions if c.role == role), None)

    def condition_sentences(self) -> str:
        """Per condition: early and final pair share, DvD with both sides' presence."""
        return " ".join(
            f"*{c}* ({int(r['images'])} images): pair share {interval_text(r, 'early')} in the "
            f"first {self.early_steps} steps and {interval_text(r, 'final')} at the last step; "
            f"{dvd_with_presence(r, self.concept_of(c))}." for c, r in self.stats.iterrows())

    def concept_of(self, label: str) -> str:
        """How sentences name the concept of a condition: the balanced one has several."""
        return "the concept" if label == self.label("balanced") else self.concept

    def saturation_sentences(self) -> str:
        return " ".join(
            f"*{c}*, {'the concept' if token == 'concept' else 'the object'}: "
            f"{r['saturated from step 0']:.0%} saturated from the first step, "
            f"{r['never saturated']:.0%} never, median saturation step "
            f"{r['median saturation step']:.1f}." for (c, token), r in self.saturation.iterrows())

    def correlation_sentences(self) -> str:
        return ("Spearman's rho with 95 % bootstrap intervals: "
                + "; ".join(_rho_text(r) for r in self.correlations.reset_index().to_dict("records"))
                + ". Share of the early share's variance over images that lies between prompts: "
                + "; ".join(f"{v:.0%} (*{c}*)" for c, v in self.between.items()) + ".")

    def prompt_sentence(self) -> str:
        main = self.per_prompt[self.per_prompt["condition"] == self.label("main")]
        return (f"Over the prompts of *{self.label('main')}*, the prompt with the highest early "
                f"share is \"{main.nlargest(1, 'early_share')['prompt'].iloc[0]}\" and the one "
                f"with the highest DvD \"{main.nlargest(1, 'dvd')['prompt'].iloc[0]}\".")

    def findings(self) -> list[str]:
        """The closing list: the conditions compared, saturation, and the correlations."""
        main_label, reference_label = self.label("main"), self.label("reference")
        main, out = self.stats.loc[main_label], []
        if reference_label:
            reference = self.stats.loc[reference_label]
            relation = ("higher on the first, with intervals that do not overlap"
                        if main["early_low"] > reference["early_high"] else
                        "lower on the first, with intervals that do not overlap"
                        if main["early_high"] < reference["early_low"] else
                        "the intervals overlap, so this run does not separate them")
            out.append(f"In the first {self.early_steps} steps {self.concept}'s pair share is "
                       f"{interval_text(main, 'early')} on *{main_label}* and "
                       f"{interval_text(reference, 'early')} on *{reference_label}*: {relation}. "
                       f"At the last step: {interval_text(main, 'final')} and "
                       f"{interval_text(reference, 'final')}. {dvd_with_presence(main, self.concept)} "
                       f"on the first, {dvd_with_presence(reference, self.concept)} on the second.")
        if self.label("balanced"):
            balanced = self.stats.loc[self.label("balanced")]
            out.append(f"The other concepts on the same objects (*{self.label('balanced')}*) give "
                       f"an early pair share of {interval_text(balanced, 'early')} for the concept; "
                       f"{dvd_with_presence(balanced, 'the concept')}.")
        first, obj = (self.saturation.loc[(main_label, t)] for t in ("concept", "object"))
        out.append(f"With tau = {self.threshold:g}, {self.concept} is saturated from the first step "
                   f"in {first['saturated from step 0']:.0%} of the images of *{main_label}* and "
                   f"never in {first['never saturated']:.0%} (median saturation step "
                   f"{first['median saturation step']:.1f} of {self.steps}); the object is saturated "
                   f"from the first step in {obj['saturated from step 0']:.0%} and never in "
                   f"{obj['never saturated']:.0%}.")
        for role in ("main", "balanced"):
            label = self.label(role)
            if label is None:
                continue
            rho = self.correlations.loc[label]
            if math.isnan(rho["rho"]):
                out.append(f"Over the images of *{label}* the rank correlation of early share and "
                           "DvD is undefined (constant DvD or share).")
                continue
            text = (f"Over the images of *{label}* the early share and the image's DvD have "
                    f"Spearman's rho {rho['rho']:.2f} [{rho['ci_low']:.2f}, {rho['ci_high']:.2f}]: "
                    f"{_sign(rho['ci_low'], rho['ci_high'])}.")
            if role == "main" and not math.isnan(rho["within_low"]):
                text += (f" Between the seeds of one prompt the mean rho is {rho['within_rho']:.2f} "
                         f"[{rho['within_low']:.2f}, {rho['within_high']:.2f}] over "
                         f"{int(rho['n_prompts'])} prompts: {_sign(rho['within_low'], rho['within_high'])}; "
                         f"{self.between[label]:.0%} of the early share's variance lies between prompts.")
            out.append(text)
        return out

    def summary_text(self) -> str:
        """The landing page's sentence: the numbers, then the verdicts (no more than they decide)."""
        main_label, reference_label = self.label("main"), self.label("reference")
        main, first = self.stats.loc[main_label], self.saturation.loc[(main_label, "concept")]
        rho = self.correlations.loc[main_label]
        rho_text = (f"Spearman's rho {rho['rho']:.2f} [{rho['ci_low']:.2f}, {rho['ci_high']:.2f}]"
                    if not math.isnan(rho["rho"]) else "no defined rank correlation")
        return (f"On {main_label.split(':')[0]}, {self.concept}'s share of the two words' "
                f"cross-attention in the first {self.early_steps} of {self.steps} steps is "
                f"{interval_text(main, 'early')}"
                + (f", against {interval_text(self.stats.loc[reference_label], 'early')} on "
                   f"{reference_label.split(':')[0]}" if reference_label else "")
                + f", and {interval_text(main, 'final')} at the last step ({dvd_with_presence(main, self.concept)}); "
                f"with tau = {self.threshold:g}, {first['saturated from step 0']:.0%} of its images "
                f"are saturated from the first step, {first['never saturated']:.0%} never, median "
                f"saturation step {first['median saturation step']:.0f} of {self.steps}. An image's "
                f"early share and its DvD have {rho_text}. "
                + " ".join(v.plain() for v in self.verdicts.values()))

    def texts(self) -> dict[str, str]:
        """Markdown the chapter places into its text with myst-nb ``glue`` (one key each)."""
        out = {"ch3_conditions": "; ".join(f"**{c.label}** ({len(c.prompts)} prompts: "
                                           f"{', '.join(c.prompts['prompt'])})"
                                           for c in self.conditions),
               "ch3_fig1": self.condition_sentences(), "ch3_fig4": self.saturation_sentences(),
               "ch3_fig6": self.correlation_sentences(), "ch3_table2": self.prompt_sentence(),
               "ch3_findings": "\n".join(f"- {t}" for t in self.findings()),
               "ch3_verdicts": "\n\n".join(v.markdown() for v in self.verdicts.values()),
               "ch3_summary": self.summary_text(),
               "ch3_early_steps": str(self.early_steps), "ch3_steps": str(self.steps),
               "ch3_threshold": f"{self.threshold:g}", "ch3_window": str(self.saturation_window)}
        out.update({key: f"**{v.word}**" for key, v in self.verdicts.items()})
        return out

    def headline(self) -> tuple[dict, dict]:
        """``(values, texts)`` for :func:`dvdlib.book.headlines.save`; undefined correlations left out."""
        values = {"steps": self.steps, "early_steps": self.early_steps,
                  "saturation_threshold": self.threshold, "images": int(self.stats["images"].sum())}
        names = {"early": "early_share_{}", "final": "final_share_{}", "dvd": "dvd_{}",
                 "concept_present": "concept_present_{}", "object_present": "object_present_{}"}
        for role in ROLES:
            label = self.label(role)
            if label is None:
                continue
            row = self.stats.loc[label]
            for measure, name in names.items():
                for suffix in ("", "_low", "_high"):
                    values[name.format(role) + suffix] = float(row[measure + suffix])
            for token, prefix in TOKENS.items():
                saturation = self.saturation.loc[(label, token)]
                values[f"{prefix}median_saturation_step_{role}"] = saturation["median saturation step"]
                values[f"{prefix}saturated_from_start_{role}"] = saturation["saturated from step 0"]
                values[f"{prefix}never_saturated_{role}"] = saturation["never saturated"]
            values[f"early_share_between_prompts_{role}"] = self.between[label]
            rho = self.correlations.loc[label]
            for name, column in (("rho", "rho"), ("rho_low", "ci_low"), ("rho_high", "ci_high"),
                                 ("within_rho", "within_rho"), ("within_rho_low", "within_low"),
                                 ("within_rho_high", "within_high")):
                values[f"{name}_{role}"] = float(rho[column])
        texts = {"summary": self.summary_text()}
        for key, verdict in self.verdicts.items():
            verdict_values, verdict_texts = verdict.headline(key)
            values.update(verdict_values)
            texts.update(verdict_texts)
        values = {k: float(v) for k, v in values.items() if np.isfinite(v)}
        return values, texts


ROLES = ("main", "reference", "balanced")


def chapter_result(summary: pd.DataFrame, conditions: Sequence[ChapterCondition], *, steps: int,
                   early_fraction: float, threshold: float, saturation_by: float, majority: float,
                   min_dvd: float, confidence: float, n_resamples: int) -> ChapterResult:
    """Every table, verdict and sentence of the chapter from its :func:`image_summary`."""
    early_steps, window = early_steps_for(steps, early_fraction), early_steps_for(steps, saturation_by)
    main, reference = conditions[0].label, next(
        (c.label for c in conditions if c.role == "reference"), None)
    concept = concept_name(conditions)
    found = finding_verdicts(summary, main, concept, early_steps=early_steps,
                             saturation_window=window, threshold=threshold, majority=majority,
                             min_dvd=min_dvd, confidence=confidence, n_resamples=n_resamples)
    return ChapterResult(
        list(conditions), concept, steps, early_steps, window, threshold,
        condition_stats(summary, n_resamples, confidence), saturation_overview(summary),
        correlation_table(summary, pooled=[main, reference] if reference else [],
                          n_resamples=n_resamples).set_index("images"),
        between_prompt_share(summary, "early_share"), prompt_summary(summary), found)


def early_level_table(levels: pd.DataFrame, early_steps: int) -> pd.DataFrame:
    """Table 3.1: mean early pair share per resolution level (rows) and condition (columns)."""
    early = levels[levels["step"] < early_steps]
    return early.groupby(["level", "condition"], observed=True)["pair_share"].mean().unstack("condition")


def level_text(table: pd.DataFrame, main: str, reference: str | None, early_steps: int) -> str:
    """Figure 3.2's sentence: the main condition's range over levels, and the largest gap."""
    text = (f"In the first {early_steps} steps the share of *{main}* ranges from "
            f"{table[main].min():.2f} ({table[main].idxmin()}) to {table[main].max():.2f} "
            f"({table[main].idxmax()}).")
    if reference:
        level = (table[main] - table[reference]).abs().idxmax()
        text += (f" The largest early gap to *{reference}* is at {level}: "
                 f"{table.loc[level, main]:.2f} against {table.loc[level, reference]:.2f}.")
    return text


def figure_layers(layer_shares: pd.DataFrame, main: str, reference: str | None, early_steps: int):
    """Figure 3.3: pair share per layer and step on ``main`` (and its difference to ``reference``).

    Returns (figure, sentence): how many layers give the concept more than half early.
    """
    matrix = layer_step_matrix(layer_shares, main)
    panels = [(matrix, main, "rocket", None, "pair share")]
    if reference:
        panels.append((matrix - layer_step_matrix(layer_shares, reference),
                       f"{main}\nminus {reference}", "vlag", 0.0, "difference in pair share"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7.2 * len(panels), 0.45 * len(matrix) + 1.8),
                             squeeze=False)
    for ax, (table, title, cmap, center, scale) in zip(axes[0], panels):
        sns.heatmap(table, ax=ax, cmap=cmap, center=center, cbar_kws={"label": scale},
                    xticklabels=max(1, table.shape[1] // 10))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
    fig.tight_layout()
    early = [t.loc[:, t.columns < early_steps].mean(axis=1) for t, *_ in panels]
    text = (f"In the first {early_steps} steps, {int((early[0] > 0.5).sum())} of {len(matrix)} layers "
            f"give the concept more than half of the pair's attention (range {early[0].min():.2f} "
            f"to {early[0].max():.2f}).")
    if reference:
        text += (f" Right: the same minus *{reference}*; early, the difference is positive in "
                 f"{int((early[1] > 0).sum())} of {len(matrix)} layers (range "
                 f"{early[1].min():+.2f} to {early[1].max():+.2f}).")
    return fig, text


def token_map_text(concentration: pd.DataFrame, labels: Sequence[str]) -> str:
    """Figure 3.5's sentence: entropy concentration of both words' maps at the last kept step."""
    kept = concentration[concentration["condition"].isin(labels)]
    if kept.empty:
        return ""
    last = int(kept["step"].max())
    table = kept.groupby(["condition", "group", "step"], observed=True)["entropy_concentration"].mean()
    return (f"Over all images of each condition, the entropy concentration (0 = spread evenly, "
            f"1 = one position) at step {last} is "
            + "; ".join(f"{table.loc[(c, 'concept', last)]:.2f} for the concept and "
                        f"{table.loc[(c, 'object', last)]:.2f} for the object (*{c}*)"
                        for c in dict.fromkeys(kept["condition"])) + ".")


def settings_text(n_seeds: int, steps: int, guidance: float, judge_name: str, wording_source: str,
                  early_steps: int, threshold: float) -> str:
    """How every image of the chapter was made and judged, in one sentence."""
    return (f"Every prompt is generated with {n_seeds} seeds, {steps} DDIM steps and guidance "
            f"{guidance:g}, and judged by `{judge_name}` with {wording_source}. The early window is "
            f"the first {early_steps} of {steps} steps; the saturation threshold is tau = {threshold:g}.")
