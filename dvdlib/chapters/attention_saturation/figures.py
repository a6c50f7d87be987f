"""Chapter 3's figures, drawn from its tables (:mod:`~dvdlib.chapters.attention_saturation.summary`).

- :func:`figure_step_shares` (3.1): the concept's and the object's word shares, and the pair
  share, per step; :func:`plot_step_shares` draws it on given axes.
- :func:`figure_levels` (3.2): the pair share per step at each resolution level
  (:func:`plot_level_shares`).
- :func:`figure_layers` (3.3): the pair share per layer and step, and its difference to the
  reference.
- :func:`figure_saturation` (3.4): the share of images saturated by each step.
- :func:`figure_tau_sweep` (3.5): the share of images saturated within the window against tau,
  with the pre-stated tau and the taus where the saturation rule's word would change.
- :func:`figure_timing` (3.6): the per-step AUC of the pair share for a missing object, and the
  pair share of the images that lose their object and of those that keep it.
- :func:`figure_early_vs_dvd` (3.7): early pair share against DvD, per image
  (:func:`plot_early_vs_dvd`).
- :func:`figure_token_maps`: the token maps of one prompt and seed over the image
  (:func:`token_map_example`, :func:`plot_token_maps`). The chapter does not draw them on the
  toy world, whose maps are near uniform; they are for models whose maps have structure.

Bands are intervals of :func:`dvdlib.stats.bootstrap.step_intervals` with whole seeds resampled.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from dvdlib.attention.image_shares import group_maps
from dvdlib.attention.instruments import load_record
from dvdlib.chapters.attention_saturation.run import ConditionResult
from dvdlib.chapters.attention_saturation.summary import (TOKENS, UNIT, layer_step_matrix,
                                                          level_shares, saturated_by_step)
from dvdlib.chapters.attention_saturation.verdict import ChapterResult
from dvdlib.generation.protocol import RECORD_FILE
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase
from dvdlib.stats.bootstrap import step_intervals

GROUPS = ("concept", "object")  # the prompt's dominant concept and the object expected to lose
BY_CONDITION = ("condition",)


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
                ax.set(xticks=[], yticks=[])
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
    record = load_record(result.image_dir / row["record_dir"] / RECORD_FILE)  # of any family
    with Image.open(result.image_dir / row["file"]) as image:
        picture = image.convert("RGB")
    return {"title": title or result.label, "image": picture,
            "maps": group_maps(record, int(row["record_image"]), result.tokenizer, concept_phrase(row),
                               object_phrase(row)),
            "words": {"concept": row["concept"], "object": row["object"]},
            "map_steps": record.map_steps}



def figure_step_shares(shares: pd.DataFrame, threshold: float, n_resamples: int = 2000):
    """Figure 3.1: the concept's and the object's word shares (left) and the pair share (right)
    per step."""
    def per_step(value: str) -> pd.DataFrame:
        return step_intervals(shares, value, BY_CONDITION, unit=UNIT, n_resamples=n_resamples)

    word = pd.concat([per_step("word_share").assign(token="concept"),
                      per_step("object_word_share").assign(token="object")])
    pair = per_step("pair_share")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    plot_step_shares(word, pair, threshold, axes)
    fig.tight_layout()
    return fig


def figure_levels(layer_shares: pd.DataFrame, n_resamples: int = 2000):
    """Figure 3.2: the pair share per step at each resolution level; returns (figure, levels)."""
    levels = level_shares(layer_shares)
    intervals = step_intervals(levels, "pair_share", by=("condition", "level"), unit=UNIT,
                               n_resamples=n_resamples)
    fig = plt.figure(figsize=(3.0 * levels["level"].nunique(), 3.6))
    plot_level_shares(intervals, fig)
    fig.tight_layout()
    return fig, levels


def figure_layers(layer_shares: pd.DataFrame, main: str, reference: str | None):
    """Figure 3.3: pair share per layer and step on ``main`` (and its difference to ``reference``)."""
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
    return fig


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
    """The token maps of ``prompt`` and ``seed`` in every condition that ran it."""
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
    """Figure 3.7: per image, the early pair share against DvD."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    plot_early_vs_dvd(summary, ax)
    fig.tight_layout()
    return fig


def figure_tau_sweep(result: ChapterResult):
    """Figure 3.5: per condition, the share of images saturated within the window against tau,
    with intervals over seeds; the pre-stated tau (which alone decides), the bound ``majority``,
    the taus at which the rule's word changes on the model under study, and its largest final
    share."""
    rules, main = result.rules, result.label("main")
    fig, ax = plt.subplots(figsize=(8.5, 4.2))
    for i, (condition, part) in enumerate(result.sweep.groupby("condition", observed=True,
                                                                sort=False)):
        ax.plot(part["tau"], part["saturated"], color=f"C{i}", label=condition)
        ax.fill_between(part["tau"], part["ci_low"], part["ci_high"], color=f"C{i}", alpha=0.2,
                        linewidth=0)
    ax.axhline(rules.majority, color="grey", linewidth=0.8)
    ax.axvline(rules.threshold, color="black", linewidth=1.2,
               label=f"pre-stated tau = {rules.threshold:g} (decides)")
    for change in result.verdict_changes().itertuples():
        ax.axvspan(change.tau_before, change.tau_after, color="C3", alpha=0.25, linewidth=0)
        ax.annotate(f"{change.before}\n-> {change.after}", (change.tau_after, 0.97), fontsize=7,
                    va="top", ha="left", color="C3")
    ax.axvline(result.largest["main"]["final"], color="C0", linestyle=":",
               label=f"largest final share on {main}")
    ax.set(xlabel="tau", ylim=(-0.02, 1.02),
           ylabel=f"share saturated within the first {rules.window} steps")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def figure_timing(result: ChapterResult):
    """Figure 3.6: left, per condition and step, the AUC of the pair share for a missing object
    with intervals at the test's level (the window of the "decided early" test shaded, its bound
    dotted); right, the mean pair share per step of the images that end up without their object
    (solid) and of those that keep it (dashed), with intervals over seeds."""
    rules = result.rules
    conditions = list(result.step_means["condition"].cat.categories)
    colours = {c: f"C{i}" for i, c in enumerate(conditions)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2))
    for condition, part in result.auc.groupby("condition", observed=True, sort=False):
        left.plot(part["step"], part["auc"], color=colours[condition], label=condition)
        left.fill_between(part["step"], part["ci_low"], part["ci_high"], alpha=0.2,
                          color=colours[condition], linewidth=0)
    left.axvspan(-0.5, rules.decided_steps - 0.5, color="grey", alpha=0.12, linewidth=0)
    left.axhline(0.5, color="grey", linewidth=0.8)
    left.axhline(rules.auc_bound, color="black", linewidth=0.8, linestyle=":")
    left.set(xlabel="denoising step (0 = noisiest)", ylabel="AUC for a missing object",
             ylim=(0.3, 1.02), title=f"{rules.auc_confidence:.2%} intervals; shaded: the first "
             f"{rules.decided_steps} steps")
    left.legend(fontsize=7, loc="lower right")
    for (condition, outcome), part in result.by_outcome.groupby(["condition", "outcome"],
                                                                observed=True, sort=False):
        style = "-" if outcome == "object missing" else "--"
        right.plot(part["step"], part["mean"], style, color=colours[condition],
                   label=f"{condition}: {outcome}")
        right.fill_between(part["step"], part["ci_low"], part["ci_high"], alpha=0.15,
                           color=colours[condition], linewidth=0)
    right.axhline(0.5, color="grey", linewidth=0.8)
    right.set(xlabel="denoising step (0 = noisiest)", ylabel="pair share of the concept",
              title="object missing (solid) or drawn (dashed) in the final image")
    right.legend(fontsize=6)
    fig.tight_layout()
    return fig
