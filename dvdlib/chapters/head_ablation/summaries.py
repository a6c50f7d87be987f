"""What a sweep's tables say, condition by condition: means, intervals and paired changes.

- :func:`head_attention`: per head, its attention to the concept in one condition;
  :func:`head_grid`: a per-head column as a layer x head grid (for the heatmaps).
- :func:`summarise`: one row per condition: means with a cluster bootstrap interval over seeds
  (:func:`seed_interval`: every image of a drawn seed, across the prompts, is drawn together,
  because one seed's starting noise decides the outcome across prompts) and paired changes
  against the baseline.
- :func:`curve` and :func:`heads_to_halve`: the cumulative conditions as curves from 0 heads to
  all, and the fewest heads that halve the baseline's DvD.
- :func:`direction`: whether a change raises or lowers DvD; :data:`SET_FAMILIES` are the head
  sets the chapter counts, :data:`CONTROL_FAMILIES` the conditions that change what every head
  passes on.
- :func:`strongest_single_head` (the largest drop) and :func:`largest_single_head` (the largest
  change either way).
- :func:`save_tables`: the tables into the chapter's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, BASELINE, single_heads
from dvdlib.stats.bootstrap import step_intervals
from dvdlib.store import save_table

INTERVAL_UNIT = "seed"  # what every interval of the chapter resamples

MASS_COLUMNS = ("concept_mass", "object_mass", "word_mass", "end_mass", "padding_mass")


def head_attention(heads: pd.DataFrame, condition: str = BASELINE) -> pd.DataFrame:
    """Per head, its attention to the concept in ``condition`` (means over images and steps).

    Columns: ``layer``, ``layer_label``, ``head``, the :data:`MASS_COLUMNS` the table holds
    (shares of all token positions: the concept's, the object's, all word tokens', the end
    token's and the padding's; the start token takes the rest), ``pair_share`` = concept /
    (concept + object) and ``word_share`` = concept / all word tokens, both ratios of the means.
    """
    chosen = heads[heads["condition"] == condition]
    if chosen.empty:
        raise ValueError(f"no attention rows for condition {condition!r}; conditions: "
                         f"{', '.join(map(str, heads['condition'].unique())) or 'none'}")
    masses = [column for column in MASS_COLUMNS if column in chosen.columns]
    table = chosen.groupby(["layer", "layer_label", "head"], sort=True)[masses].mean()
    table = table.reset_index()
    table["pair_share"] = table["concept_mass"] / (table["concept_mass"] + table["object_mass"])
    table["word_share"] = table["concept_mass"] / table["word_mass"]
    return table


SUMMARY_VALUES = ("dvd_score", "concept_present", "object_present", "concept_share")


def seed_interval(table: pd.DataFrame, value: str, unit: str = INTERVAL_UNIT, *,
                  n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                  ) -> tuple[float, float]:
    """Percentile interval of the mean of ``value`` under a cluster bootstrap over ``unit``.

    A resample draws whole ``unit`` clusters with replacement (every image of a drawn seed,
    whatever its prompt), so images that share a seed's starting noise move together; the
    prompts are the study's fixed set, not a sample. One row per image. NaN ends with fewer
    than two seeds: one seed is no sample of seeds.
    """
    if table[unit].nunique() < 2:
        return float("nan"), float("nan")
    frame = pd.DataFrame({"image": range(len(table)), "step": 0,
                          value: table[value].astype(float).to_numpy(),
                          unit: table[unit].to_numpy()})
    row = step_intervals(frame, value, unit=unit, n_resamples=n_resamples,
                         confidence=confidence, seed=seed).iloc[0]
    return float(row["ci_low"]), float(row["ci_high"])


def summarise(images: pd.DataFrame, baseline_name: str = BASELINE, *, n_resamples: int = 2000,
              confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per condition: means, seed-cluster intervals, and paired changes against the
    baseline.

    For each of :data:`SUMMARY_VALUES`: the mean, ``<value>_low``/``_high`` (:func:`seed_interval`),
    ``<value>_change`` (condition minus baseline, image by image, then averaged) and its interval
    ``<value>_change_low``/``_high`` (the same bootstrap over the paired differences).
    ``dvd_outside`` says whether the condition's DvD lies outside the baseline's interval;
    ``dvd_change_excludes_zero`` whether the paired interval of its change excludes 0.
    ``n_images`` and ``n_seeds`` count what the intervals rest on.
    """
    if baseline_name not in set(images["condition"]):
        raise ValueError(f"no baseline condition {baseline_name!r} among "
                         f"{', '.join(map(str, images['condition'].unique()))}")
    key = ["case_num", "seed"]
    base = images[images["condition"] == baseline_name].set_index(key)
    options = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    rows = []
    for name, group in images.groupby("condition", sort=False):
        row = {"condition": name, "family": group["family"].iloc[0],
               "label": group["label"].iloc[0], "n_heads": int(group["n_heads"].iloc[0]),
               "draw": int(group["draw"].iloc[0]), "n_images": len(group),
               "n_seeds": int(group["seed"].nunique())}
        paired = group.set_index(key)
        missing = paired.index.difference(base.index)
        if len(missing):
            raise ValueError(f"condition {name!r} has images the baseline lacks: "
                             f"{list(missing)[:5]}")
        for value in SUMMARY_VALUES:
            row[value] = group[value].astype(float).mean()
            row[f"{value}_low"], row[f"{value}_high"] = seed_interval(group, value, **options)
            change = (paired[value].astype(float) - base.loc[paired.index, value].astype(float))
            change = change.rename("change").reset_index()
            row[f"{value}_change"] = change["change"].mean()
            row[f"{value}_change_low"], row[f"{value}_change_high"] = seed_interval(
                change, "change", **options)
        rows.append(row)
    table = pd.DataFrame(rows)
    base_row = table.set_index("condition").loc[baseline_name]
    table["dvd_outside"] = ((table["dvd_score"] < base_row["dvd_score_low"])
                            | (table["dvd_score"] > base_row["dvd_score_high"]))
    table["dvd_change_excludes_zero"] = ((table["dvd_score_change_low"] > 0)
                                         | (table["dvd_score_change_high"] < 0))
    return table


def head_grid(summary: pd.DataFrame, layers: Sequence[CrossAttentionLayer], value: str
              ) -> pd.DataFrame:
    """A single-head column of :func:`summarise` (or of :func:`head_attention`) as layer x head."""
    if value not in summary.columns:
        raise KeyError(f"column {value!r} is not in the table; it has {', '.join(summary.columns)}")
    if "family" in summary.columns:
        rows = summary[summary["family"] == "single head"]
        keys = {c.name: c.heads[0] for c in single_heads(layers)}
        cells = [(keys[name][0], keys[name][1], v)
                 for name, v in zip(rows["condition"], rows[value])]
    else:
        cells = list(zip(summary["layer_label"], summary["head"], summary[value]))
    grid = pd.DataFrame(cells, columns=["layer", "head", value]).pivot(
        index="layer", columns="head", values=value)
    return grid.reindex(index=[layer.label for layer in layers],
                        columns=range(max(layer.heads for layer in layers)))


def curve(summary: pd.DataFrame, baseline_name: str = BASELINE, all_heads_name: str = ALL_HEADS
          ) -> pd.DataFrame:
    """The cumulative conditions as curves from 0 heads (the baseline) to all heads.

    One row per order (``ranked``, ``random0``, ...) and head count; the baseline and the all-heads
    condition are shared by every order.
    """
    table = summary.set_index("condition")
    ends = [table.loc[[n]] for n in (baseline_name, all_heads_name) if n in table.index]
    rows = []
    cumulative_rows = summary[summary["family"].isin(["ranked", "random"])]
    for (family, draw), group in cumulative_rows.groupby(["family", "draw"], sort=True):
        order = "ranked" if family == "ranked" else f"random{draw}"
        part = pd.concat([*ends, group.set_index("condition")]).reset_index()
        part["order"] = order
        part["kind"] = family
        rows.append(part)
    if not rows:
        raise ValueError("the summary holds no cumulative ('ranked' or 'random') conditions")
    curves = pd.concat(rows, ignore_index=True)
    return curves.sort_values(["order", "n_heads"]).reset_index(drop=True)


def heads_to_halve(curve_table: pd.DataFrame, baseline_dvd: float, order: str) -> int | None:
    """The fewest heads of ``order`` whose DvD is at most half the baseline's; None if none is."""
    rows = curve_table[(curve_table["order"] == order)
                       & (curve_table["dvd_score"] <= baseline_dvd / 2)]
    return None if rows.empty else int(rows["n_heads"].min())


SET_FAMILIES = ("ranked", "random", "layer")  # head sets smaller than every head
CONTROL_FAMILIES = ("all heads", "concept tokens", "concept route")  # every head changed


def direction(low: float, high: float) -> str:
    """``raises`` / ``lowers`` when a paired interval of a change lies above / below 0, else
    ``no clear change``."""
    if low > 0:
        return "raises"
    if high < 0:
        return "lowers"
    return "no clear change"


def strongest_single_head(summary: pd.DataFrame) -> pd.Series:
    """The summary row of the single head whose ablation lowers DvD most. Ties (common with
    few images: DvD moves in steps) go to the head first in the summary, so every caller
    picks the same head."""
    singles = summary[summary["family"] == "single head"]
    if singles.empty:
        raise ValueError("the summary holds no single-head conditions")
    return singles.sort_values("dvd_score_change", kind="stable").iloc[0]


def largest_single_head(summary: pd.DataFrame) -> pd.Series:
    """The summary row of the single head whose ablation changes DvD most in absolute value, in
    either direction (ties go to the head first in the summary)."""
    singles = summary[summary["family"] == "single head"]
    if singles.empty:
        raise ValueError("the summary holds no single-head conditions")
    by_size = singles["dvd_score_change"].abs().sort_values(ascending=False, kind="stable")
    return singles.loc[by_size.index[0]]


def save_tables(folder: str | Path, **tables: pd.DataFrame) -> None:
    """Each table as ``<name>.csv`` (``heads`` as parquet) in ``folder``, made if missing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        save_table(table, folder / (f"{name}.parquet" if name == "heads" else f"{name}.csv"))
