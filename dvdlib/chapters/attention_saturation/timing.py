"""When the outcome is settled, and how the saturation verdict depends on tau (chapter 3).

The level tests of finding 2 ask how large the concept's share is; these tables ask *when* it
tells what the image will be, and how much the saturation verdict owes to the threshold tau.

- :func:`outcome_table`: one row per image and step with the image's later outcome (``missing``:
  1 when the judge finds no object in the final image) and its seed.
- :func:`auc_table`: per condition and step, the AUC with which the pair share at that step
  predicts ``missing`` (:func:`dvdlib.stats.bootstrap.step_auc`, whole seeds resampled);
  :func:`decided_step`: the first step whose interval lies above a bound; :func:`decisive_row`:
  the step the "decided early" verdict is read from.
- :func:`outcome_shares`: the mean pair share per step of the images whose object ends up missing
  and of those where it survives, with seed-cluster intervals; :func:`parting_step`: the first
  step at which their intervals do not overlap.
- :func:`tau_sweep`: the share of images saturated within the window for each tau, with
  seed-cluster intervals; :func:`verdict_changes`: the taus at which the saturation rule's word
  changes. An image is saturated within the first ``w`` steps at tau exactly when its
  ``held_share`` (the lowest pair share from step ``w - 1`` to the last,
  :func:`~dvdlib.chapters.attention_saturation.summary.image_summary`) is at least tau, so the
  sweep needs no second pass over the steps.
- :func:`step_shape`: the mean pair share at step 0, at step 1, and its range after.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.stats import verdicts
from dvdlib.stats.bootstrap import cluster_mean_interval, step_auc, step_intervals

UNIT = "seed"  # the independent unit every interval of the chapter resamples
TAUS = tuple(np.round(np.arange(0.40, 0.7001, 0.01), 2))  # the sweep of Figure 3.5
OUTCOMES = {1: "object missing", 0: "object present"}


def outcome_table(shares: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """``shares`` (one row per image and step) with each image's ``missing`` outcome and seed."""
    outcome = summary[["image", "seed", "object_present"]].assign(
        missing=lambda t: (~t["object_present"].astype(bool)).astype(int))
    table = shares.drop(columns=[c for c in ("seed", "object_present") if c in shares])
    return table.merge(outcome[["image", "seed", "missing"]], on="image", how="inner",
                       validate="many_to_one")


def auc_table(outcomes: pd.DataFrame, *, confidence: float = 0.95, n_resamples: int = 2000,
              seed: int = 0) -> pd.DataFrame:
    """Per condition and step, the AUC of the pair share for ``missing`` with an interval over
    seeds at level ``confidence``. Conditions with only one outcome (no AUC) are left out."""
    parts = []
    for condition, part in outcomes.groupby("condition", observed=True, sort=False):
        if part["missing"].nunique() < 2:
            continue
        auc = step_auc(part, "pair_share", "missing", unit=UNIT, n_resamples=n_resamples,
                       confidence=confidence, seed=seed)
        parts.append(auc.assign(condition=condition))
    columns = ["condition", "step", "auc", "ci_low", "ci_high", "n_images", "n_positive", "n_units"]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)[columns]
    table["condition"] = pd.Categorical(table["condition"],
                                        categories=outcomes["condition"].cat.categories)
    return table


def decided_step(auc: pd.DataFrame, condition: str, bound: float) -> int | None:
    """The first step of ``condition`` whose AUC interval lies above ``bound``; None if none."""
    part = auc[(auc["condition"] == condition) & (auc["ci_low"] > bound)]
    return int(part["step"].min()) if len(part) else None


def decisive_row(auc: pd.DataFrame, condition: str, bound: float, window: int) -> pd.Series | None:
    """The step within the first ``window`` steps that decides "decided early": the first whose
    interval lies above ``bound`` if one does, else the one with the highest upper end (so the
    verdict is contradicted only when every step of the window lies below). None without AUCs."""
    part = auc[(auc["condition"] == condition) & (auc["step"] < window)].sort_values("step")
    if part.empty or part["ci_low"].isna().all():
        return None
    clear = part[part["ci_low"] > bound]
    return clear.iloc[0] if len(clear) else part.loc[part["ci_high"].idxmax()]


def outcome_shares(outcomes: pd.DataFrame, *, confidence: float = 0.95, n_resamples: int = 2000
                   ) -> pd.DataFrame:
    """Mean pair share per condition, outcome and step, with intervals over seeds; ``outcome``
    names the outcome (:data:`OUTCOMES`)."""
    table = step_intervals(outcomes, "pair_share", by=("condition", "missing"), unit=UNIT,
                           n_resamples=n_resamples, confidence=confidence)
    table["outcome"] = table["missing"].map(OUTCOMES)
    return table


def tau_sweep(summary: pd.DataFrame, taus: Sequence[float] = TAUS, *, confidence: float = 0.95,
              n_resamples: int = 2000) -> pd.DataFrame:
    """Per condition and tau, the share of images saturated within the window (``held_share``
    at least tau), with an interval over seeds. ``taus`` must lie in (0, 1]."""
    taus = sorted({verdicts.check_threshold(t, "tau") for t in taus})
    rows = []
    for condition, part in summary.groupby("condition", observed=True, sort=False):
        for tau in taus:
            saturated = (part["held_share"] >= tau).astype(float)
            share, low, high = cluster_mean_interval(saturated, part[UNIT], confidence=confidence,
                                                     n_resamples=n_resamples)
            rows.append({"condition": condition, "tau": tau, "saturated": share, "ci_low": low,
                         "ci_high": high, "images": len(part)})
    table = pd.DataFrame(rows)
    table["condition"] = pd.Categorical(table["condition"],
                                        categories=summary["condition"].cat.categories)
    return table


def verdict_changes(sweep: pd.DataFrame, condition: str, majority: float) -> pd.DataFrame:
    """Where the saturation rule's word (interval above ``majority``: supported, below:
    contradicted, else inconclusive) changes along the sweep of ``condition``: one row per change,
    with the last tau of the old word, the first of the new, and both words."""
    part = sweep[sweep["condition"] == condition].sort_values("tau")
    words = [verdicts.rule("above", majority, low, high)
             for low, high in zip(part["ci_low"], part["ci_high"])]
    taus = part["tau"].tolist()
    return pd.DataFrame([{"tau_before": taus[i - 1], "tau_after": taus[i], "before": words[i - 1],
                          "after": words[i]} for i in range(1, len(words))
                         if words[i] != words[i - 1]],
                        columns=["tau_before", "tau_after", "before", "after"])


def rule_at(sweep: pd.DataFrame, condition: str, tau: float, majority: float) -> str:
    """The saturation rule's word at ``tau`` on ``condition`` (the sweep's nearest tau)."""
    part = sweep[sweep["condition"] == condition]
    row = part.loc[(part["tau"] - tau).abs().idxmin()]
    return verdicts.rule("above", majority, row["ci_low"], row["ci_high"])


def step_shape(step_means: pd.DataFrame, condition: str) -> dict:
    """The mean pair share of ``condition`` at step 0 and at step 1, and the lowest and highest
    mean from step 2 to the last (NaN where the run has fewer steps)."""
    part = step_means[step_means["condition"] == condition].set_index("step")["mean"]
    after = part[part.index >= 2]
    return {"step0": float(part.get(0, np.nan)), "step1": float(part.get(1, np.nan)),
            "after_low": float(after.min()) if len(after) else np.nan,
            "after_high": float(after.max()) if len(after) else np.nan}


def parting_step(by_outcome: pd.DataFrame, condition: str) -> int | None:
    """The first step at which the intervals of the two outcomes' mean pair shares
    (:func:`outcome_shares`) do not overlap on ``condition``; None if none (or one outcome)."""
    part = by_outcome[by_outcome["condition"] == condition]
    wide = part.pivot_table(index="step", columns="missing", values=["ci_low", "ci_high"])
    if wide.empty or wide.columns.get_level_values("missing").nunique() < 2:
        return None
    apart = (wide["ci_low"][1] > wide["ci_high"][0]) | (wide["ci_low"][0] > wide["ci_high"][1])
    return int(apart[apart].index.min()) if apart.any() else None
