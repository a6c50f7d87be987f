"""The chapter's figures and styled tables.

- Figure 4.1 :func:`figure_head_attention`: each head's baseline attention to the concept.
- Figure 4.2 :func:`figure_single_changes`: per head ablated alone, the paired changes.
- Figure 4.3 :func:`figure_single_dvd`: DvD per head ablated alone, against the baseline.
- Figure 4.4 :func:`figure_cumulative`: DvD and object presence as more heads are ablated.
- Figure 4.5 :func:`figure_bounds` and Figure 4.6 :func:`figure_examples`: the conditions of
  :func:`shown_conditions` side by side, as numbers and as images.
- Tables 4.0 and 4.1, styled: :func:`survey_view` (None when no survey ran) and :func:`sets_view`.
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
from dvdlib.chapters.head_ablation.summaries import head_grid, strongest_single_head
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


def figure_single_dvd(summary: pd.DataFrame):
    """Figure 4.3: DvD with each head ablated alone, sorted, against the baseline's interval."""
    base = summary.set_index("condition").loc[BASELINE]
    singles = summary[summary["family"] == "single head"]
    singles = singles.sort_values("dvd_score").reset_index(drop=True)
    x = np.arange(len(singles))
    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.axhspan(base["dvd_score_low"], base["dvd_score_high"], color="C0", alpha=0.15,
               label="baseline 95 % interval")
    ax.axhline(base["dvd_score"], color="C0", lw=1)
    ax.axhline(base["dvd_score"] / 2, color="C3", lw=1, ls="--", label="half the baseline")
    ax.errorbar(x, singles["dvd_score"], yerr=[singles["dvd_score"] - singles["dvd_score_low"],
                                               singles["dvd_score_high"] - singles["dvd_score"]],
                fmt="none", ecolor="C7", elinewidth=1)
    ax.scatter(x, singles["dvd_score"], c=np.where(singles["dvd_outside"], "C3", "C7"), zorder=3)
    ax.set_xticks(x, singles["label"].str.removeprefix("head "), rotation=90, fontsize=8)
    ax.set_ylabel("DvD")
    ax.set_xlabel("ablated head (layer:head), sorted by DvD")
    ax.legend(loc="upper left", fontsize=8)
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


def figure_bounds(summary: pd.DataFrame, shown: dict[str, str], concept: str):
    """Figure 4.5: DvD and both sides' presence under the ``shown`` conditions (name -> label)."""
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
    """Figure 4.6: one image per prompt (columns) under each ``shown`` condition (rows)."""
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


def shown_conditions(summary: pd.DataFrame, counts: Sequence[int], total_heads: int,
                     concept: str) -> dict[str, str]:
    """The conditions of Figures 4.5 and 4.6: baseline, the strongest single head, the ranked
    set nearest half the heads, every head, and the concept's tokens removed."""
    strongest = strongest_single_head(summary)
    half = min(counts, key=lambda n: abs(n - total_heads / 2))
    head = strongest["label"].removeprefix("head ")
    return {BASELINE: "baseline", strongest["condition"]: f"strongest single head ({head})",
            f"ranked_{half:03d}": f"top {half} ranked heads",
            ALL_HEADS: f"all {total_heads} heads", CONCEPT_TOKENS: f"{concept} tokens removed"}



PERCENT = "{:.0%}"


def survey_view(survey: pd.DataFrame | None):
    """Table 4.0, DvD and presence per zoo model and object, styled; None when no survey ran."""
    if survey is None:
        return None
    return survey.style.format({"dvd_score": "{:.1f}", "concept_present": PERCENT,
                                "object_present": PERCENT})


def sets_view(sets: pd.DataFrame):
    """Table 4.1, the head sets and upper bounds of
    :attr:`dvdlib.chapters.head_ablation.verdict.Findings.sets`, styled, one row per label."""
    percent = {column: PERCENT for column in ("concept_present", "object_present",
                                               "concept_present_change", "object_present_change")}
    points = {column: "{:.1f}" for column in ("dvd_score", "dvd_score_low", "dvd_score_high")}
    changes = {column: "{:+.1f}" for column in ("dvd_score_change", "dvd_score_change_low",
                                                "dvd_score_change_high")}
    table = sets.drop(columns=["condition", "family", "draw"]).set_index("label")
    return table.style.format({**points, **changes, **percent})
