"""Chapter 3's tables: per image, per step, per level and layer, per prompt and per condition.

- :func:`early_steps_for`: how many first steps make a window ("early", "saturated early").
- :func:`image_summary`: per image, the share in the first steps and at the last, the saturation
  step of the concept and of the object, and DvD; :func:`saturated_by_step` and
  :func:`saturation_overview` condense it per condition.
- :func:`condition_stats`: per condition, early and final share, DvD and presence, each with a
  bootstrap interval over seeds; :func:`condition_differences`: the model under study minus the
  reference, paired by seed; :func:`object_held_from_start`: how often the object holds the pair's
  attention from the first step, beside how often it is drawn.
- :func:`level_shares`, :func:`early_level_table`, :func:`level_extremes`: the pair share
  pooled over the layers of one resolution level; :func:`layer_step_matrix` and
  :func:`early_layer_counts`: per layer.
- :func:`between_prompt_share`: how much of a measure's variance lies between prompts;
  :func:`correlation_table`: Spearman's rho over images and its mean within prompts.
- :func:`prompt_summary`, :func:`top_prompts`: per prompt.
- :func:`concentration_range`: how concentrated the words' maps are, at the least and the most.

Every interval comes from :mod:`dvdlib.stats.bootstrap` and resamples whole seeds (the images
of one seed, over every prompt, together): the seed decides much of an image across prompts and
models, so images of one seed are not independent. The prompts are not resampled: on the toy
world they are its whole set of objects.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.attention.shares import saturation_step
from dvdlib.stats.bootstrap import cluster_mean_interval, cluster_rank_correlation

UNIT = "seed"  # the resampled unit of every interval

TOKENS = {"concept": "", "object": "object_"}  # whose saturation: column prefixes
PRESENCE = ("concept_present", "object_present")
STAT_COLUMNS = {"early": "early_share", "final": "final_share", "dvd": "dvd_score",
                "concept_present": "concept_present", "object_present": "object_present"}


# --------------------------------------------------------------------------------------------
# Per image


def early_steps_for(steps: int, early_fraction: float) -> int:
    """How many first steps make the "early" window: ``round(fraction x steps)``, at least 1."""
    if not 0 < early_fraction <= 1:
        raise ValueError(f"early_fraction must be in (0, 1], got {early_fraction!r}")
    return max(1, round(early_fraction * steps))


def image_summary(images: pd.DataFrame, shares: pd.DataFrame, early_steps: int,
                  threshold: float, window: int | None = None) -> pd.DataFrame:
    """One row per image: early and final pair share, saturation steps, DvD.

    ``early_share`` is the mean pair share over steps ``0 .. early_steps - 1``; ``final_share``
    the share at the last step. ``saturation_step`` is :func:`dvdlib.attention.shares.saturation_step`
    of the concept's pair share at ``threshold``; ``object_saturation_step`` the same for the
    object's pair share (one minus the concept's), which asks whether the *object* takes over.
    An image whose share ends below the threshold gets the step count (``saturated`` /
    ``object_saturated`` False), so "saturated by step s" is ``saturation_step <= s`` for every
    image. With ``window``, ``held_share`` is the lowest pair share from step ``window - 1`` to
    the last: the image is saturated within the first ``window`` steps at any tau up to it.
    """
    if not isinstance(early_steps, int) or early_steps < 1:
        raise ValueError(f"early_steps must be a positive integer, got {early_steps!r}")
    early = shares[shares["step"] < early_steps].groupby("image")["pair_share"].mean()
    last = shares.loc[shares.groupby("image")["step"].idxmax()].set_index("image")["pair_share"]
    table = images.set_index("image").copy()
    table["early_share"] = early
    table["final_share"] = last
    if window is not None:
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, got {window!r}")
        table["held_share"] = shares[shares["step"] >= window - 1].groupby("image")[
            "pair_share"].min()
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


# --------------------------------------------------------------------------------------------
# Per condition


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


def condition_stats(summary: pd.DataFrame, n_resamples: int = 2000,
                    confidence: float = 0.95) -> pd.DataFrame:
    """One row per condition: early and final pair share, DvD, and the shares of images with the
    concept and with the object present, each with ``_low``/``_high`` (bootstrap over seeds)."""
    rows = []
    for condition, part in summary.groupby("condition", observed=True, sort=False):
        row = {"condition": condition, "images": len(part), "seeds": part[UNIT].nunique()}
        for name, column in STAT_COLUMNS.items():
            row[name], row[f"{name}_low"], row[f"{name}_high"] = cluster_mean_interval(
                part[column].astype(float), part[UNIT], n_resamples=n_resamples,
                confidence=confidence)
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def condition_differences(summary: pd.DataFrame, main: str, reference: str,
                          n_resamples: int = 2000, confidence: float = 0.95) -> pd.DataFrame:
    """``main`` minus ``reference`` for each measure of :func:`condition_stats`, paired by seed
    (one draw of seeds serves both), and each one's median saturation step: one row per measure
    (``difference``, ``low``, ``high``, ``main``, ``reference``). Each condition is one model, one
    training run: the interval counts seeds, not the spread between training runs."""
    first, second = (summary[summary["condition"] == label] for label in (main, reference))
    rows = []
    for name, column in STAT_COLUMNS.items():
        difference = cluster_mean_interval(first[column].astype(float), first[UNIT],
                                           second[column].astype(float), second[UNIT],
                                           n_resamples=n_resamples, confidence=confidence)
        rows.append({"measure": name, "difference": difference[0], "low": difference[1],
                     "high": difference[2], "main": float(first[column].astype(float).mean()),
                     "reference": float(second[column].astype(float).mean())})
    steps = [float(part["saturation_step"].median()) for part in (first, second)]
    rows.append({"measure": "median saturation step", "difference": steps[0] - steps[1],
                 "low": np.nan, "high": np.nan, "main": steps[0], "reference": steps[1]})
    return pd.DataFrame(rows).set_index("measure")


def object_held_from_start(summary: pd.DataFrame, condition: str, n_resamples: int = 2000,
                           confidence: float = 0.95) -> dict:
    """On ``condition``: the share of images whose object holds at least tau of the pair's
    attention from the first step to the last (``held``), and the share with the object drawn
    (``present``), each ``(estimate, low, high)`` over seeds."""
    part = summary[summary["condition"] == condition]
    options = dict(n_resamples=n_resamples, confidence=confidence)
    held = (part["object_saturation_step"] == 0).astype(float)
    return {"held": cluster_mean_interval(held, part[UNIT], **options),
            "present": cluster_mean_interval(part["object_present"].astype(float), part[UNIT],
                                             **options),
            "threshold": float(part["threshold"].iloc[0]), "images": len(part)}


# --------------------------------------------------------------------------------------------
# Per resolution level and layer


def level_shares(layer_shares: pd.DataFrame) -> pd.DataFrame:
    """Pair share per image, step and resolution level, pooled over the level's layers.

    As in our pooled measure, masses are averaged over the layers first and the share is taken
    of the averages. ``level`` is the block and the query resolution (``down 8x8``); the image's
    ``seed`` is kept when the table has one.
    """
    keys = ["condition", "image", *(["seed"] if "seed" in layer_shares else []), "step", "level"]
    order = list(dict.fromkeys(layer_shares.sort_values("layer")["level"]))
    table = layer_shares.groupby(keys, observed=True)[["concept_mass", "object_mass"]].mean().reset_index()
    table["pair_share"] = table["concept_mass"] / (table["concept_mass"] + table["object_mass"])
    table["level"] = pd.Categorical(table["level"], categories=order)
    return table


def early_level_table(levels: pd.DataFrame, early_steps: int) -> pd.DataFrame:
    """Table 3.1: mean early pair share per resolution level (rows) and condition (columns)."""
    early = levels[levels["step"] < early_steps]
    return early.groupby(["level", "condition"], observed=True)["pair_share"].mean().unstack("condition")


def level_extremes(table: pd.DataFrame, main: str, reference: str | None) -> dict:
    """The levels where ``main``'s early share (a column of :func:`early_level_table`) is lowest
    and highest, and the level of the largest gap to ``reference`` (None without one)."""
    out = {"lowest": (table[main].idxmin(), table[main].min()),
           "highest": (table[main].idxmax(), table[main].max()), "largest_gap": None}
    if reference:
        level = (table[main] - table[reference]).abs().idxmax()
        out["largest_gap"] = (level, table.loc[level, main], table.loc[level, reference])
    return out


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


def early_layer_counts(layer_shares: pd.DataFrame, main: str, reference: str | None,
                       early_steps: int) -> dict:
    """Per layer, the mean early pair share on ``main`` (and its difference to ``reference``):
    how many layers give the concept more than half (and a positive difference), and the ranges."""
    matrix = layer_step_matrix(layer_shares, main)
    early = matrix.loc[:, matrix.columns < early_steps].mean(axis=1)
    out = {"layers": len(matrix), "above_half": int((early > 0.5).sum()),
           "range": (early.min(), early.max()), "positive_difference": None, "difference_range": None}
    if reference:
        difference = matrix - layer_step_matrix(layer_shares, reference)
        early = difference.loc[:, difference.columns < early_steps].mean(axis=1)
        out["positive_difference"] = int((early > 0).sum())
        out["difference_range"] = (early.min(), early.max())
    return out


def concentration_range(concentration: pd.DataFrame) -> tuple[float, float, int]:
    """The lowest and highest mean entropy concentration of the concept's and the object's maps
    (mean over images per condition, word and kept step; 0 = spread evenly, 1 = one position),
    and the number of kept steps. NaN and 0 when no maps were kept."""
    if concentration.empty:
        return float("nan"), float("nan"), 0
    means = concentration.groupby(["condition", "group", "step"], observed=True)[
        "entropy_concentration"].mean()
    return float(means.min()), float(means.max()), int(concentration["step"].nunique())


# --------------------------------------------------------------------------------------------
# Prompts and correlations


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


def correlation_table(summary: pd.DataFrame, x: str = "early_share", y: str = "dvd_score", *,
                      pooled: Sequence[str] = (), n_resamples: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """Spearman's rho of ``x`` and ``y`` per condition (and over the ``pooled`` conditions together).

    ``rho`` is over all images; ``within_rho`` the mean over prompts of the rho between the seeds
    of one prompt (prompts whose ``x`` or ``y`` is constant left out), which differences between
    prompts (which object, which word order) cannot drive. Both intervals resample whole seeds
    (:func:`dvdlib.stats.bootstrap.cluster_rank_correlation`).
    """
    groups = [(str(c), g) for c, g in summary.groupby("condition", observed=True, sort=True)]
    if len(pooled) > 1:
        groups.append((" + ".join(pooled), summary[summary["condition"].isin(pooled)]))
    rows = []
    for name, group in groups:
        options = dict(n_resamples=n_resamples, seed=seed)
        rho = cluster_rank_correlation(group[x], group[y], group[UNIT], **options)
        within = cluster_rank_correlation(group[x], group[y], group[UNIT], group["prompt"],
                                          **options)
        defined = sum(part[x].nunique() > 1 and part[y].nunique() > 1
                      for _, part in group.groupby("prompt"))
        rows.append({"images": name, "n_images": len(group), "rho": rho[0], "ci_low": rho[1],
                     "ci_high": rho[2], "within_rho": within[0], "within_low": within[1],
                     "within_high": within[2], "n_prompts": defined})
    return pd.DataFrame(rows)


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


def top_prompts(per_prompt: pd.DataFrame, condition: str) -> dict[str, str]:
    """The prompts of ``condition`` (in :func:`prompt_summary`) with the highest early share and
    with the highest DvD."""
    part = per_prompt[per_prompt["condition"] == condition]
    return {"early_share": part.nlargest(1, "early_share")["prompt"].iloc[0],
            "dvd": part.nlargest(1, "dvd")["prompt"].iloc[0]}
