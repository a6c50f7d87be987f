"""The chapter's figures and styled tables.

- Figure 4.1 :func:`figure_head_attention`: each head's baseline attention to the concept.
- Figure 4.2 :func:`figure_single_changes`: per head ablated alone, the paired changes.
- Figure 4.3 :func:`figure_single_rescue`: per head ablated alone, the object's gain against
  the rescue bound, and the DvD change beside it.
- Figure 4.4 :func:`figure_cumulative`: DvD and object presence as more heads are ablated.
- Figure 4.5 :func:`figure_leak`: where the concept travels: attention and imprint per kind of
  token position.
- Figure 4.6 :func:`figure_bounds` and Figure 4.7 :func:`figure_examples`: the conditions of
  :func:`shown_conditions` side by side, as numbers and as images.
- Tables 4.0 to 4.2, styled: :func:`survey_view` (None when no survey ran), :func:`sets_view`
  (head sets, and the controls).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, BASELINE, CONCEPT_TOKENS
from dvdlib.chapters.head_ablation.rescue import OUTCOMES
from dvdlib.chapters.head_ablation.summaries import head_grid
from dvdlib.toyworld.evaluate import image_grid

def _heatmap(grid: pd.DataFrame, ax, annotate: bool, fmt: str, **style) -> None:
    sns.heatmap(grid, annot=annotate, fmt=fmt, ax=ax, cbar=not annotate, **style)
    ax.set_xlabel("head")


def figure_head_attention(attention: pd.DataFrame, layers: Sequence[CrossAttentionLayer],
                          concept: str):
    """Figure 4.1: each head's baseline attention mass on the concept, and the concept's pair
    share."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(layers) + 1.6))
    annotate = max(layer.heads for layer in layers) <= 4  # numbers in the cells only where they fit
    panels = ((axes[0], "concept_mass", f"attention mass on the {concept}", ".3f"),
              (axes[1], "pair_share", f"{concept}'s pair share", ".2f"))
    for ax, column, title, fmt in panels:
        _heatmap(head_grid(attention, layers, column), ax, annotate, fmt, cmap="viridis")
        ax.set_title(title)
    axes[0].set_ylabel("layer")
    fig.tight_layout()
    return fig


SINGLE_PANELS = (("dvd_score_change", "DvD change (points)", "+.1f"),
                 ("concept_present_change", "{concept} present (change)", "+.0%"),
                 ("object_present_change", "object present (change)", "+.0%"),
                 ("concept_share_change", "{concept}'s attention share (change)", "+.1%"))


def figure_single_changes(summary: pd.DataFrame, layers: Sequence[CrossAttentionLayer],
                          concept: str):
    """Figure 4.2: per head ablated alone, the paired change of DvD, of both sides' presence and
    of the concept's attention share; framed cells: DvD change interval excludes 0."""
    annotate = max(layer.heads for layer in layers) <= 4
    marked = head_grid(summary, layers, "dvd_change_excludes_zero").fillna(False).astype(bool)
    fig, axes = plt.subplots(1, len(SINGLE_PANELS), figsize=(16, 0.45 * len(layers) + 1.8))
    for ax, (column, title, fmt) in zip(axes, SINGLE_PANELS):
        grid = head_grid(summary, layers, column)
        scale = max(np.nanmax(np.abs(grid.to_numpy())), 1e-9)
        _heatmap(grid, ax, annotate, fmt, cmap="vlag", center=0, vmin=-scale, vmax=scale)
        ax.set_title(title.format(concept=concept), fontsize=10)
    for (r, c), flag in np.ndenumerate(marked.to_numpy()):
        if flag:
            axes[0].add_patch(plt.Rectangle((c, r), 1, 1, fill=False, edgecolor="black", lw=2))
    axes[0].set_ylabel("layer")
    fig.tight_layout()
    return fig


OUTCOME_COLOURS = dict(zip(OUTCOMES, ("C7", "C3", "C1", "C4", "C0")))


def figure_single_rescue(classified: pd.DataFrame, concept: str):
    """Figure 4.3: per head ablated alone (sorted by the object's gain), the paired gain in
    object presence with its interval against the rescue bound, coloured by outcome, and the
    paired DvD change below it."""
    singles = classified[classified["family"] == "single head"]
    singles = singles.sort_values("object_present_change", kind="stable").reset_index(drop=True)
    x = np.arange(len(singles))
    fig, axes = plt.subplots(2, 1, figsize=(12, 6), sharex=True)
    panels = ((axes[0], "object_present_change", 100.0, "object present, gain (points)"),
              (axes[1], "dvd_score_change", 1.0, "DvD change (points)"))
    colours = [OUTCOME_COLOURS[o] for o in singles["outcome"]]
    for ax, column, scale, label in panels:
        middle = scale * singles[column]
        ax.errorbar(x, middle, yerr=[middle - scale * singles[f"{column}_low"],
                                     scale * singles[f"{column}_high"] - middle],
                    fmt="none", ecolor="C7", elinewidth=1)
        ax.scatter(x, middle, c=colours, zorder=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_ylabel(label)
    axes[0].axhline(100 * singles["rescue_bound"].iloc[0], color="C3", ls="--", lw=1,
                    label=f"rescue bound (object back, {concept} kept)")
    for name in dict.fromkeys(singles["outcome"]):
        axes[0].scatter([], [], c=OUTCOME_COLOURS[name], label=name)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_xticks(x, singles["label"].str.removeprefix("head "), rotation=90, fontsize=8)
    axes[1].set_xlabel("ablated head (layer:head), sorted by the object's gain")
    fig.tight_layout()
    return fig


def figure_cumulative(curves: pd.DataFrame, baseline_dvd: float, rank_by: str):
    """Figure 4.4: DvD and object presence as more heads are ablated, ranked against random
    orders."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    ranked, random_curves = curves[curves["order"] == "ranked"], curves[curves["kind"] == "random"]
    panels = ((axes[0], "dvd_score", "DvD"), (axes[1], "object_present", "object present"))
    for ax, column, label in panels:
        ax.plot(ranked["n_heads"], ranked[column], "o-", color="C3", label=f"ranked by {rank_by}")
        ax.fill_between(ranked["n_heads"], ranked[f"{column}_low"], ranked[f"{column}_high"],
                        color="C3", alpha=0.15)
        if len(random_curves):
            band = random_curves.groupby("n_heads")[column].agg(["mean", "min", "max"])
            ax.plot(band.index, band["mean"], "s-", color="C0", label="random orders (mean)")
            ax.fill_between(band.index, band["min"], band["max"], color="C0", alpha=0.2,
                            label="random orders (range)")
        ax.set_xlabel("heads ablated")
        ax.set_ylabel(label)
    axes[0].axhline(baseline_dvd / 2, color="k", lw=1, ls="--", label="half the baseline")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_leak(leak: pd.DataFrame, concept: str):
    """Figure 4.5: per kind of token position, the cross-attention it draws (baseline, and the
    concept's tokens removed) and its imprint (how much its text state holds the concept)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.4))
    y = np.arange(len(leak))
    axes[0].barh(y - 0.2, leak["attention_baseline"], height=0.4, label="baseline")
    axes[0].barh(y + 0.2, leak["attention_concept_removed"], height=0.4,
                 label=f"{concept}'s tokens removed")
    axes[0].set_xlabel("share of cross-attention")
    axes[0].legend(fontsize=8)
    axes[1].barh(y, leak["imprint"], color="C2")
    axes[1].set_xlabel(f"imprint: change of the text state when the {concept} is blanked")
    for ax in axes:
        ax.set_yticks(y, leak["kind"])
        ax.invert_yaxis()
    fig.tight_layout()
    return fig


def figure_bounds(summary: pd.DataFrame, shown: dict[str, str], concept: str):
    """Figure 4.6: DvD and both sides' presence under the ``shown`` conditions (name -> label)."""
    bars = summary.set_index("condition").loc[list(shown)].reset_index()
    bars["label"] = list(shown.values())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    for ax, column, title in ((axes[0], "dvd_score", "DvD"),
                              (axes[1], "concept_present", f"{concept} present"),
                              (axes[2], "object_present", "object present")):
        ax.barh(bars["label"], bars[column], color=[f"C{i}" for i in range(len(bars))])
        ax.errorbar(bars[column], np.arange(len(bars)), xerr=[bars[column] - bars[f"{column}_low"],
                    bars[f"{column}_high"] - bars[column]], fmt="none", ecolor="k", elinewidth=1)
        ax.set_title(title)
    axes[0].invert_yaxis()  # the baseline on top (the axes share y)
    fig.tight_layout()
    return fig


def figure_examples(images: pd.DataFrame, folder: str | Path, shown: dict[str, str], seed: int):
    """Figure 4.7: one image per prompt (columns) under each ``shown`` condition (rows)."""
    examples = images[images["seed"] == seed]
    prompts = examples.drop_duplicates("case_num").sort_values("case_num")["prompt"].tolist()
    pictures = []
    for condition in shown:
        files = examples[examples["condition"] == condition].sort_values("case_num")["file"]
        pictures += [Image.open(Path(folder) / f).convert("RGB") for f in files]
    thumb = min(96, pictures[0].width)  # Stable Diffusion's large images are shrunk for the figure
    grid = image_grid([p.resize((thumb, thumb), Image.LANCZOS) for p in pictures],
                      columns=len(prompts), scale=max(1, 96 // thumb))
    fig, ax = plt.subplots(figsize=(1.3 * len(prompts) + 2.5, 1.35 * len(shown) + 0.6))
    ax.imshow(grid)
    cell = grid.height / len(shown)
    ax.set_yticks([cell * (i + 0.5) for i in range(len(shown))], list(shown.values()), fontsize=8)
    ax.set_xticks([grid.width / len(prompts) * (i + 0.5) for i in range(len(prompts))], prompts,
                  rotation=30, ha="right", fontsize=7)
    ax.grid(False)
    fig.tight_layout()
    return fig


def shown_conditions(summary: pd.DataFrame, candidate: str, counts: Sequence[int],
                     total_heads: int, concept: str) -> dict[str, str]:
    """The conditions of Figures 4.6 and 4.7: baseline, the ``candidate`` single head, a layer
    ablated whole (if run), the ranked set nearest half the heads, every head, the concept's
    tokens removed and each concept-route control."""
    table = summary.set_index("condition")
    half = min(counts, key=lambda n: abs(n - total_heads / 2))
    shown = {BASELINE: "baseline",
             candidate: f"head {table.loc[candidate, 'label'].removeprefix('head ')}"}
    shown.update({name: row["label"] for name, row in table.iterrows()
                  if row["family"] == "layer"})
    routes = {name: row["label"].replace("concept,", f"{concept},")
              for name, row in table.iterrows() if row["family"] == "concept route"}
    shown.update({f"ranked_{half:03d}": f"top {half} ranked heads",
                  ALL_HEADS: f"all {total_heads} heads", CONCEPT_TOKENS: f"{concept} tokens removed"})
    shown.update(routes)
    return {name: label for name, label in shown.items() if name in table.index}


PERCENT = "{:.0%}"


def survey_view(survey: pd.DataFrame | None):
    """Table 4.0, DvD and presence per zoo model and object, styled; None when no survey ran."""
    if survey is None:
        return None
    return survey.style.format({"dvd_score": "{:.1f}", "concept_present": PERCENT,
                                "object_present": PERCENT})


def sets_view(rows: pd.DataFrame):
    """Tables 4.1 and 4.2: classified rows (:func:`~.rescue.classify`), styled, one per label:
    DvD and its paired change, both sides' presence, their paired changes, and the outcome."""
    percent = {column: PERCENT for column in ("concept_present", "object_present")}
    points = {column: "{:.1f}" for column in ("dvd_score", "dvd_score_low", "dvd_score_high")}
    changes = {column: "{:+.1f}" for column in ("dvd_score_change", "dvd_score_change_low",
                                                "dvd_score_change_high")}
    gains = {column: "{:+.0%}" for column in (
        "object_present_change", "object_present_change_low", "object_present_change_high",
        "concept_present_change", "concept_present_change_low", "concept_present_change_high")}
    columns = ["label", "n_heads", "dvd_score", "dvd_score_change", "dvd_score_change_low",
               "dvd_score_change_high", "concept_present", "concept_present_change",
               "concept_present_change_low", "concept_present_change_high", "object_present",
               "object_present_change", "object_present_change_low",
               "object_present_change_high", "outcome"]
    table = rows[columns].set_index("label")
    return table.style.format({**points, **changes, **percent, **gains})
