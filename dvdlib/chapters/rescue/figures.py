"""Figures 5.1 and 5.2 and the chapter's tables, drawn from the summary tables.

- :func:`figure_presence`: object presence against concept presence, one curve per
  intervention over its strengths from the plain model (the star) to its test strength (the
  large marker, with its seed-cluster intervals); one panel per object group. The goal is the
  top right corner: both sides in every image.
- :func:`contact_sheet`: images side by side, one row per arm (the chapter's examples, the
  probe's contact sheet).
- :func:`rescue_table`: the plain model and each intervention at its test strength, as the
  chapter prints them: presence with intervals, DvD, the change of the both-present share,
  the verdict and the cost per image.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from dvdlib.chapters.rescue.run import PLAIN, arm_label
from dvdlib.chapters.rescue.summary import ALL
from dvdlib.interventions.catalogue import NAMES, TITLES
from dvdlib.stats.verdicts import Interval, Verdict

COLOURS = dict(zip(NAMES, plt.get_cmap("tab10").colors))


def figure_presence(curves: pd.DataFrame) -> plt.Figure:
    """Object presence (x) against concept presence (y), in %, per object group."""
    groups = [g for g in ("seen", "unseen") if g in set(curves["objects"])] or [ALL]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups) + 2.2, 4.6),
                             squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        table = curves[curves["objects"] == group]
        for name, curve in table.groupby("intervention", sort=False):
            colour = COLOURS.get(name, "grey")
            ax.plot(100 * curve["object_present"], 100 * curve["concept_present"], "-o",
                    color=colour, markersize=4, label=TITLES.get(name, name))
            end = curve[curve["is_test"].astype(bool)]
            if len(end):
                end = end.iloc[0]
                x, y = 100 * end["object_present"], 100 * end["concept_present"]
                ax.errorbar(x, y, fmt="o", color=colour, markersize=8,
                            xerr=[[x - 100 * end["object_present_low"]],
                                  [100 * end["object_present_high"] - x]],
                            yerr=[[y - 100 * end["concept_present_low"]],
                                  [100 * end["concept_present_high"] - y]], capsize=2)
        plain = table.iloc[0]
        ax.plot(100 * plain["object_present"], 100 * plain["concept_present"], "*", color="k",
                markersize=14, zorder=5, label="plain model")
        ax.annotate("goal", (100, 100), xytext=(-30, -12), textcoords="offset points",
                    fontsize=9, color="dimgray")
        ax.set(xlim=(-4, 104), ylim=(-4, 104), xlabel="object present (% of images)",
               title=f"objects {group} in training" if group != ALL else "all prompts")
    axes[0][0].set_ylabel("concept present (% of images)")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1 - 2.2 / fig.get_figwidth(), 1))
    return fig


def contact_sheet(rows: Mapping[str, Sequence], columns: Sequence[str],
                  inches: float = 0.9) -> plt.Figure:
    """``rows`` (label -> images, one per column) as one mosaic with the ``columns`` titles
    (drawn as a single image: quick however many cells)."""
    first = np.asarray(next(iter(next(iter(rows.values())))))
    height, width = first.shape[:2]
    gap = max(1, height // 16)
    mosaic = np.ones(((height + gap) * len(rows) - gap, (width + gap) * len(columns) - gap, 3))
    for r, images in enumerate(rows.values()):
        for c, image in enumerate(list(images)[:len(columns)]):
            y, x = r * (height + gap), c * (width + gap)
            mosaic[y:y + height, x:x + width] = np.asarray(image.convert("RGB")) / 255.0
    left, top = 2.9, 0.35  # inches for the row labels and the column titles
    wide, high = inches * len(columns), inches * len(rows)
    fig = plt.figure(figsize=(left + wide + 0.1, high + top + 0.1))
    ax = fig.add_axes((left / fig.get_figwidth(), 0.1 / fig.get_figheight(),
                       wide / fig.get_figwidth(), high / fig.get_figheight()))
    ax.imshow(mosaic, interpolation="nearest", aspect="auto")
    ax.set_xticks([c * (width + gap) + width / 2 for c in range(len(columns))],
                  list(columns), fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks([r * (height + gap) + height / 2 for r in range(len(rows))], list(rows),
                  fontsize=8)
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    return fig


def _share(row, value: str) -> str:
    return Interval(row[value], row[f"{value}_low"], row[f"{value}_high"]).text(
        0, scale=100, unit=" %")


def rescue_table(rows: pd.DataFrame, verdicts: Mapping[str, Verdict]) -> pd.DataFrame:
    """The rows of :func:`~dvdlib.chapters.rescue.summary.tested_rows` as the chapter shows them."""
    shown = []
    for _, row in rows.iterrows():
        name = row["intervention"]
        change = (Interval(row["both_present_change"], row["both_present_change_low"],
                           row["both_present_change_high"]).text(0, signed=True, scale=100)
                  if name != PLAIN else "")
        verdict = verdicts.get(name)
        shown.append({
            "arm": arm_label(name, row["strength"]),
            "both present": _share(row, "both_present"),
            "concept present": _share(row, "concept_present"),
            "object present": _share(row, "object_present"),
            "DvD": Interval(row["dvd_score"], row["dvd_score_low"], row["dvd_score_high"]).text(1),
            "change of both (points)": change,
            "rescue margin (points)": "" if verdict is None else verdict.interval.text(
                verdict.test.digits, signed=True),
            "verdict": "" if verdict is None else verdict.word,
            "s / image": f"{row['seconds_per_image']:.3f}",
            "cost vs plain": f"{row['relative_cost']:.1f}x",
        })
    return pd.DataFrame(shown)
