"""Chapter 2's figures, each from the tables the study made.

- :func:`plot_training_looks`: each toy model's first training pictures of the sunset, with our
  diversity measure of them (Figure 2.1).
- :func:`plot_by_model`: DvD two ways and what the pair images show, per run and arm, at one
  condition (Figure 2.2).
- :func:`plot_dose_response`: DvD and the pair images' outcomes against K, every arm.
- :func:`plot_amplification`, :func:`amplification_table`: the share of pair pictures without
  the carrier in training and in the generated images, against guidance.
- :func:`plot_conditions`: K = 1 against unlimited at every guidance scale and fine-tuning length,
  a comparison without room marked as such.
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


OUTCOME_COLOURS = {"fills_frame": "C3", "wrong_carrier": "C1", "nothing_recognisable": "C7",
                   "object_present": "C2"}  # the pair images' outcomes, stacked in this order
OUTCOME_LABELS = {"fills_frame": "concept fills the frame", "wrong_carrier": "a wrong carrier",
                  "nothing_recognisable": "nothing recognisable",
                  "object_present": "object present"}


def _stacked_outcomes(ax, rows: pd.DataFrame, order: Sequence[str]) -> None:
    """Stacked bars of the four outcomes' shares per group (``rows`` indexed by group and
    measure)."""
    x = np.arange(len(order))
    bottom = np.zeros(len(order))
    for measure, colour in OUTCOME_COLOURS.items():
        share = rows.reindex([(g, measure) for g in order])["estimate"].to_numpy(dtype=float)
        ax.bar(x, np.nan_to_num(share), bottom=bottom, color=colour, width=0.7,
               label=OUTCOME_LABELS[measure])
        bottom += np.nan_to_num(share)
    ax.set_xticks(x, list(order), rotation=30, ha="right")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("share of pair images")


def plot_by_model(summary: pd.DataFrame, order: Sequence[str], condition: str,
                  objects: str = "all objects"):
    """Per run and pooled arm (``order``, least diverse first), for one condition: DvD as the
    paper scores it and without the images that show a wrong carrier (left), with intervals;
    what the pair images show, in four outcomes that add up to 1 (right)."""
    rows = summary[(summary["condition"] == condition) & (summary["objects"] == objects)]
    rows = rows.set_index(["group", "measure"])
    x = np.arange(len(order))
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.2))
    for offset, (measure, label) in enumerate((("dvd", "DvD (paper's formula)"),
                                               ("dvd_no_wrong_carrier",
                                                "DvD, wrong carriers left out"))):
        picked = rows.reindex([(g, measure) for g in order])
        _interval_bars(axes[0], x + 0.12 * (offset - 0.5), picked, marker="o", ls="none",
                       label=label)
    axes[0].set_xticks(x, list(order), rotation=30, ha="right")
    axes[0].set(ylim=(0, 102), ylabel="DvD", xlabel="run or arm (least diverse first)")
    axes[0].legend(fontsize=8)
    _stacked_outcomes(axes[1], rows, order)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_dose_response(summary: pd.DataFrame, arms: Sequence[str], condition: str):
    """DvD against K, one point per arm with its run-and-seed interval, over every object and
    apart for the objects met and never met in training (left); what the arms' pair images
    show, in four outcomes that add up to 1 (right)."""
    at = summary[summary["condition"] == condition]
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    x = np.arange(len(arms))
    for offset, (objects, colour) in enumerate((("all objects", "k"), ("seen in training", "C0"),
                                                ("never seen", "C1"))):
        rows = at[(at["objects"] == objects) & (at["measure"] == "dvd")].set_index("group")
        _interval_bars(axes[0], x + 0.08 * (offset - 1), rows.reindex(list(arms)), marker="o",
                       color=colour, label=objects)
    axes[0].set_xticks(x, list(arms))
    axes[0].set(ylim=(0, 102), ylabel="DvD (paper's formula)",
                xlabel="diversity K of the sunset (runs pooled)")
    axes[0].legend(fontsize=8, loc="lower left")
    rows = at[at["objects"] == "all objects"].set_index(["group", "measure"])
    _stacked_outcomes(axes[1], rows, arms)
    axes[1].set_xlabel("diversity K of the sunset, every object")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_amplification(table: pd.DataFrame, shares: pd.DataFrame):
    """The share of pair pictures without their carrier: in the training data (grey band: the
    runs' range; line: their mean) and in the generated pair images, against guidance, per arm,
    for the objects met and never met in training, with run-and-seed intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, objects in zip(axes, ("seen in training", "never seen")):
        ax.axhspan(shares["share"].min(), shares["share"].max(), color="0.85",
                   label="training pictures (range over runs)")
        ax.axhline(shares["share"].mean(), color="0.4", lw=1, ls="--", label="training, mean")
        for c, (arm, rows) in enumerate(table[table["objects"] == objects].groupby(
                "arm", sort=False)):
            shift = 0.06 * (c - 0.5)
            rows = rows.rename(columns={"generated": "estimate", "generated_low": "ci_low",
                                        "generated_high": "ci_high"})
            _interval_bars(ax, rows["guidance"] + shift, rows, marker="o", color=f"C{c}",
                           label=f"generated, {arm} (runs: {int(rows['n_runs'].iloc[0])})")
        ax.set(title=f"objects {objects}", xlabel="guidance scale", ylim=(-0.02, 1.02))
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("share of pair pictures without the carrier")
    fig.tight_layout()
    return fig


def amplification_table(table: pd.DataFrame) -> pd.DataFrame:
    """The amplification table as the chapter prints it: one row per arm, object set and
    guidance, the shares in percent with their intervals."""
    def text(row, name, signed=False, unit=" %"):
        return Interval(row[name], row[f"{name}_low"], row[f"{name}_high"]).text(
            0, signed, 100, unit)

    return pd.DataFrame([{"arm": r["arm"], "objects": r["objects"], "guidance": r["guidance"],
                          "runs": int(r["n_runs"]), "training": f"{r['training']:.0%}",
                          "generated": text(r, "generated"),
                          "generated - training": text(r, "amplification", True, " pp")}
                         for _, r in table.iterrows()])


def plot_conditions(summary: pd.DataFrame, diffs: pd.DataFrame, first: str, second: str,
                    objects: str = "all objects"):
    """DvD of the arms ``first`` (K = 1) and ``second`` (unlimited) against guidance (left),
    their difference (middle; a comparison without room is drawn as an open grey marker at 0
    with "ceiling", not as a difference), and the object's presence in the same pair images
    (right): the finished models as lines, each EMA snapshot as open markers beside its
    guidance; with intervals."""
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
        for m, (measure, name, colour) in enumerate((("dvd", "paper's DvD", "k"), (
                "dvd_no_wrong_carrier", "wrong carriers left out", "C0"))):
            rows = picked(diffs, measure)
            roomy = rows[rows["room_met"].astype(bool)]
            if len(roomy):
                _interval_bars(axes[1], roomy["guidance"] + shift + 0.06 * m, roomy,
                               label=f"{name}, {mark}", color=colour, **style)
        rows = picked(diffs, "dvd")
        for g in rows.loc[~rows["room_met"].astype(bool), "guidance"]:
            axes[1].plot(g + shift, 0, marker="x", color="0.5", ls="none")
            axes[1].annotate("ceiling", (g + shift, 0), textcoords="offset points",
                             xytext=(0, 6), ha="center", fontsize=7, color="0.4")
    axes[0].set_ylabel("DvD (paper's formula)")
    axes[0].set_ylim(0, 102)
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
