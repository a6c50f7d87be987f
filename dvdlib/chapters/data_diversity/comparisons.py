"""Chapter 2's comparisons of arms, each with the room its bounded scale leaves.

DvD runs from 0 to 100 and the shares from 0 to 1. When the arm that the finding predicts to be
lower already sits at the ceiling (every model at guidance 7.5 scores DvD 100), a difference of
zero is no null result: nothing could have shown. Every comparison here therefore carries
:func:`dvdlib.stats.verdicts.room_requirement` with the chapter's margin, and a comparison
without room reads "not testable (ceiling)" instead of a difference.

- :data:`PREDICTED`: the measures for which the finding predicts a side, and which side.
- :func:`compare_arms`: every arm minus the baseline arm (unlimited) in every condition where
  both were drawn, with run-and-seed intervals and the room each leaves.
- :func:`condition_verdicts`: the verdict of K = 1 against unlimited in every condition, from
  :func:`dvdlib.stats.verdicts.decide` (the room and a positive control as requirements), and
  :func:`verdicts_from_table`: the same verdicts again from the saved comparison table alone.
- :func:`dose_table`, :func:`order_text`: DvD over every K, and whether its order is monotone.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.data_diversity import toy_summary
from dvdlib.chapters.data_diversity.arms import UNLIMITED
from dvdlib.chapters.data_diversity.toy_summary import reading
from dvdlib.stats import verdicts
from dvdlib.stats.verdicts import Interval

# measure -> side of 0 on which the finding predicts (more diverse arm subtracted); range
PREDICTED = {"dvd": ("above", 100.0), "dvd_no_wrong_carrier": ("above", 100.0),
             "fills_frame": ("above", 1.0), "frame_filled": ("above", 1.0),
             "object_present": ("below", 1.0)}
VERDICT_MEASURE = "dvd_no_wrong_carrier"  # the measure the verdicts read


def compare_arms(images: pd.DataFrame, summary: pd.DataFrame, arms: Mapping[str, Sequence[str]],
                 object_sets: Mapping[str, Sequence[str]], *, margin: float,
                 baseline: str = UNLIMITED, measures: Sequence[str] = tuple(PREDICTED),
                 n_resamples: int = 2000, confidence: float = 0.95) -> pd.DataFrame:
    """Each arm of ``arms`` (label -> runs) minus ``baseline``, per condition, object set and
    measure, from :func:`toy_summary.differences` (runs of each arm, then seeds), with
    ``first``, ``second``, ``room_needs``, ``room_met`` and ``room_found`` (the room requirement
    with ``margin`` in DvD points, scaled to the measure's range; ``summary`` gives each arm's
    level)."""
    parts = []
    for label, runs in arms.items():
        if label == baseline:
            continue
        diffs = toy_summary.differences(images, runs, arms[baseline], object_sets,
                                        measures=measures, n_resamples=n_resamples,
                                        confidence=confidence)
        parts.append(diffs.assign(first=label, second=baseline))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if table.empty:
        return table
    level = summary.set_index(["condition", "group", "objects", "measure"])["estimate"]
    needs, met, found = [], [], []
    for row in table.itertuples():
        side, high = PREDICTED[row.measure]
        first = level[(row.condition, row.first, row.objects, row.measure)]
        second = level[(row.condition, row.second, row.objects, row.measure)]
        room = verdicts.room_requirement(first, second, side, high=high,
                                         margin=margin * high / 100, names=(row.first, row.second),
                                         digits=1 if high > 1 else 2)
        needs.append(room.description)
        met.append(room.met)
        found.append(room.found)
    return table.assign(room_needs=needs, room_met=met, room_found=found)


def _run_levels(summary: pd.DataFrame, condition: str, runs: Sequence[str], measure: str):
    rows = summary[(summary["condition"] == condition) & (summary["objects"] == "all objects")
                   & (summary["measure"] == measure) & summary["group"].isin(list(runs))]
    return {r.group: (r.estimate, r.ci_low, r.ci_high) for r in rows.itertuples()}


def condition_verdicts(comparisons: pd.DataFrame, summary: pd.DataFrame,
                       runs: Sequence[str], test_of: Callable[[str], verdicts.Test], *,
                       first: str, positive_control_dvd: float,
                       measure: str = VERDICT_MEASURE) -> dict[str, verdicts.Verdict]:
    """The verdict of ``first`` against unlimited on ``measure`` over every object, in every
    condition: ``test_of(condition)`` is the stated test; the requirements are the comparison's
    room and a positive control (some run of ``runs`` drawn in that condition with its DvD
    interval above ``positive_control_dvd``)."""
    from dvdlib.chapters.data_diversity.verdict import positive_control

    rows = comparisons[(comparisons["first"] == first) & (comparisons["measure"] == measure)
                       & (comparisons["objects"] == "all objects")]
    out = {}
    for row in rows.itertuples():
        room = verdicts.Requirement(row.room_needs, row.room_met, row.room_found)
        control = positive_control(_run_levels(summary, row.condition, runs, measure),
                                   positive_control_dvd, "run")
        out[row.condition] = verdicts.decide(test_of(row.condition),
                                             (row.estimate, row.ci_low, row.ci_high),
                                             [room, control])
    return out


def verdict_table(found: Mapping[str, verdicts.Verdict]) -> pd.DataFrame:
    """The verdicts of :func:`condition_verdicts` as a table (saved with the chapter): one row per
    condition with the word, the interval, the side, the bound and the unmet requirements."""
    return pd.DataFrame([{"condition": c, "verdict": v.word, "estimate": v.interval.estimate,
                          "ci_low": v.interval.low, "ci_high": v.interval.high,
                          "side": v.test.side, "bound": v.test.bound,
                          "unmet": "; ".join(r.description for r in v.unmet)}
                         for c, v in found.items()])


def verdicts_from_table(comparisons: pd.DataFrame, summary: pd.DataFrame, runs: Sequence[str],
                        *, first: str, positive_control_dvd: float,
                        measure: str = VERDICT_MEASURE) -> dict[str, str]:
    """Every condition's verdict word decided again from the saved tables alone (the comparison
    table with its room columns and the summary's per-run levels), with :func:`verdicts.rule`
    where every requirement is met: what a reader can check without rerunning anything."""
    rows = comparisons[(comparisons["first"] == first) & (comparisons["measure"] == measure)
                       & (comparisons["objects"] == "all objects")]
    out = {}
    for row in rows.itertuples():
        levels = _run_levels(summary, row.condition, runs, measure)
        control = any(low > positive_control_dvd for _, low, _ in levels.values())
        finite = all(np.isfinite([row.estimate, row.ci_low, row.ci_high]))
        if not (bool(row.room_met) and control and finite):
            out[row.condition] = "not testable"
        else:
            side = PREDICTED[measure][0]
            out[row.condition] = verdicts.rule(side, 0.0, row.ci_low, row.ci_high)
    return out


def dose_table(summary: pd.DataFrame, comparisons: pd.DataFrame, condition: str,
               arms: Mapping[str, Sequence[str]], objects: str = "all objects") -> pd.DataFrame:
    """Every arm at ``condition``: its runs, DvD, DvD without wrong carriers, the shares of pair
    images with the object present and with the concept filling the frame (with intervals), and
    its difference in DvD from the baseline (or "not testable" without room)."""
    at = summary[(summary["condition"] == condition) & (summary["objects"] == objects)]
    at = at.set_index(["group", "measure"])
    gap = comparisons[(comparisons["condition"] == condition) & (comparisons["objects"] == objects)
                      & (comparisons["measure"] == "dvd")].set_index("first")
    rows = []
    for label, runs in arms.items():
        if (label, "dvd") not in at.index:
            continue

        def text(measure, scale=1.0, unit="", digits=1):
            row = at.loc[(label, measure)]
            return Interval(row["estimate"], row["ci_low"], row["ci_high"]).text(
                digits, scale=scale, unit=unit)

        rows.append({"arm": label, "runs": len(runs), "DvD": text("dvd"),
                     "DvD without wrong carriers": text("dvd_no_wrong_carrier"),
                     "object present": text("object_present", 100, " %", 0),
                     "concept fills the frame": text("fills_frame", 100, " %", 0),
                     "DvD minus unlimited": reading(gap.loc[label]) if label in gap.index
                     else ""})
    return pd.DataFrame(rows)


def order_text(levels: Mapping[str, float]) -> tuple[bool, str]:
    """Whether ``levels`` (arm label -> DvD, least diverse first) fall as diversity rises (each
    arm at most the one before it), and the arms ordered by DvD, highest first ("K = 4 > K = 16 >
    K = 1 > unlimited")."""
    values = list(levels.values())
    monotone = all(a >= b for a, b in zip(values, values[1:]))
    ranked = sorted(levels, key=lambda label: -levels[label])
    return monotone, " > ".join(f"{label} ({levels[label]:.1f})" for label in ranked)
