"""Chapter 2's figures, each from the tables the study made.

- :func:`plot_training_looks`: each toy model's first training pictures of the sunset, with our
  diversity measure of them (Figure 2.1).
- :func:`plot_by_model`: DvD, presence in the pair images and the found-alone rates per toy model
  at one condition (Figure 2.2).
- :func:`plot_conditions`: K = 1 against unlimited at every guidance scale and fine-tuning length
  (Figure 2.3).
- :func:`plot_samples`: the images themselves, one row per model (Figure 2.4).
- :func:`plot_concepts`: a real model's concepts, DvD against the diversity of their concept-only
  images.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dvdlib.chapters.data_diversity.toy_pictures import concept_appearances
from dvdlib.chapters.data_diversity.toy_runs import Study
from dvdlib.models.spec import k_text
from dvdlib.stats.verdicts import Interval
from dvdlib.toyworld.evaluate import image_grid, tensor_to_pil


def _interval_bars(ax, x, rows: pd.DataFrame, **style) -> None:
    error = [rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]]
    ax.errorbar(x, rows["estimate"], yerr=np.clip(np.asarray(error, dtype=float), 0, None),
                capsize=3, **style)


def plot_training_looks(worlds: Mapping[str, object], training: pd.DataFrame, n_show: int = 12,
                        seed: int | Sequence[int] = 0):
    """One row per model: its first ``n_show`` training pictures of the limited concept, titled
    with our diversity measure of them (``training`` from :func:`training_diversity`)."""
    wide = training.pivot(index="model", columns="embedding", values="diversity")
    fig, axes = plt.subplots(len(worlds), 1, figsize=(9, 1.05 * len(worlds)), squeeze=False)
    for ax, (name, world) in zip(axes[:, 0], worlds.items()):
        looks = tensor_to_pil(concept_appearances(world, max(n_show, 2), seed)[:n_show])
        ax.imshow(image_grid(looks, columns=n_show, scale=2))
        ax.set_axis_off()
        ax.set_title(f"{name}: K = {k_text(world.instances)}, diversity "
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
    fig, axes = plt.subplots(len(models), len(prompts), squeeze=False,
                             figsize=(3.6 * len(prompts), 0.75 * len(models) + 0.6))
    for row, model in zip(axes, models):
        for ax, prompt in zip(row, prompts):
            ax.imshow(image_grid(study.pictures(model, prompt, condition, seeds),
                                 columns=len(seeds), scale=2))
            ax.set(xticks=[], yticks=[])
            ax.grid(False)
        row[0].set_ylabel(model, rotation=0, ha="right", va="center")
    for ax, prompt in zip(axes[0], prompts):
        ax.set_title(f'"{prompt}"', fontsize=10)
    fig.tight_layout()
    return fig


def plot_concepts(concepts: pd.DataFrame, rho: tuple[float, float, float]):
    """Each concept's DvD (with its interval) against our diversity of its concept-only images;
    ``concepts`` as :func:`dvdlib.chapters.data_diversity.real_study.run_concept_study` makes it,
    ``rho`` Spearman's rho over them ``(estimate, low, high)``."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for category, rows in concepts.groupby("category"):
        ax.errorbar(rows["diversity"], rows["dvd"],
                    yerr=[rows["dvd"] - rows["ci_low"], rows["ci_high"] - rows["dvd"]],
                    fmt="o", capsize=2, label=category, alpha=0.8)
    ax.set_xlabel("diversity of the concept-only generations (CLIP)")
    ax.set_ylabel("DvD of the concept over its prompts")
    ax.set_title(f"Spearman rho = {Interval.of(rho).text(2, signed=True)}, "
                 f"{len(concepts)} concepts")
    ax.legend()
    fig.tight_layout()
    return fig
