"""What a head-ablation sweep says about the paper's finding 3, decided by a rule stated first.

- :func:`check_criteria`: the test's parameters in range, checked before any model loads.
- :class:`Findings` and :func:`findings`: the numbers the chapter reports and the verdict
  (:func:`dvdlib.stats.verdicts.decide`). A head *removes the dominance* when ablating it lowers
  DvD by at least ``removal_fraction`` of the baseline's; the finding (no single head does) is
  decided on the paired interval of the largest single-head drop, re-measured on fresh seeds.
  The test needs dominance to remove (the baseline's DvD interval above ``min_baseline_dvd``)
  and an upper bound that lowers DvD (every head ablated, or the concept's tokens removed).
- :func:`headline`: the values and verdict texts the chapter saves for the landing page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, BASELINE, CONCEPT_TOKENS
from dvdlib.chapters.head_ablation.summaries import (
    SET_FAMILIES, curve, direction, effects, heads_to_halve, largest_single_head,
    strongest_single_head)
from dvdlib.stats import verdicts
from dvdlib.stats.verdicts import Interval

MAX_BASELINE_DVD = 100.0  # DvD lies in [0, 100]: no baseline interval can lie above 100


def check_criteria(removal_fraction: float, min_baseline_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a verdict criterion outside its range."""
    verdicts.check_fraction("removal_fraction", removal_fraction, include_high=True)
    verdicts.check_fraction("min_baseline_dvd", min_baseline_dvd, low=0.0, high=MAX_BASELINE_DVD,
                            include_low=True)
    verdicts.check_confidence(confidence)



@dataclass(frozen=True)
class Findings:
    """The numbers a head-ablation chapter reports, and the verdict on the paper's finding 3.

    The verdict is :func:`dvdlib.stats.verdicts.decide` on the test of the module notes. The
    largest of many noisy drops overstates its head's effect (the winner's curse), so when a
    ``confirmation`` (the same head and the baseline re-measured on fresh seeds) is given, its
    paired interval decides; without one, the interval on the seeds that selected the head does.
    """

    baseline_dvd: float
    baseline_low: float
    baseline_high: float
    baseline_concept_present: float
    baseline_object_present: float
    total_heads: int
    single_heads: int
    outside_interval: int  # single heads whose DvD lies outside the baseline interval
    heads_raising: tuple[str, ...]  # single heads whose paired DvD change lies above 0
    heads_lowering: tuple[str, ...]  # ... below 0
    largest_label: str  # the single head whose DvD change is largest in absolute value
    largest_change: float  # signed
    largest_change_low: float
    largest_change_high: float
    largest_concept_present: float
    largest_object_present: float
    strongest: str  # the condition whose single head lowers DvD most
    strongest_label: str
    strongest_change: float
    strongest_change_low: float
    strongest_change_high: float
    sets: pd.DataFrame = field(repr=False, compare=False)  # effects() of head sets, upper bounds
    heads_to_halve_ranked: int | None = None
    heads_to_halve_random: dict = field(default_factory=dict)
    all_heads_dvd: float = float("nan")
    concept_tokens_dvd: float = float("nan")
    verdict: verdicts.Verdict | None = None
    largest: str = ""  # the condition of the single head whose DvD change is largest
    # The strongest head and the baseline re-measured on fresh seeds (NaN without a confirmation).
    confirmed_baseline_dvd: float = float("nan")
    confirmed_dvd: float = float("nan")
    confirmed_change: float = float("nan")
    confirmed_change_low: float = float("nan")
    confirmed_change_high: float = float("nan")
    confirmed_concept_present: float = float("nan")
    confirmed_object_present: float = float("nan")
    confirmed_baseline_concept_present: float = float("nan")
    confirmed_baseline_object_present: float = float("nan")

    @property
    def sets_raising(self) -> int:
        return int((self.sets["direction"] == "raises").sum())

    @property
    def sets_lowering(self) -> int:
        return int((self.sets["direction"] == "lowers").sum())


def head_label(row) -> str:
    """A single-head row's head as ``layer:head`` (its label without the word "head")."""
    return str(row["label"]).removeprefix("head ")


def _confirmed(confirmation: pd.DataFrame, strongest: pd.Series, baseline_name: str
               ) -> tuple[pd.Series, dict]:
    """The strongest head's row on fresh seeds, and the :class:`Findings` fields it fills."""
    again = confirmation.set_index("condition")
    if strongest["condition"] not in again.index or baseline_name not in again.index:
        raise ValueError(f"the confirmation must hold {baseline_name!r} and the strongest head "
                         f"{strongest['condition']!r}; it holds {', '.join(again.index)}")
    tested, fresh_base = again.loc[strongest["condition"]], again.loc[baseline_name]
    fields = dict(confirmed_baseline_dvd=fresh_base["dvd_score"], confirmed_dvd=tested["dvd_score"],
                  confirmed_change=tested["dvd_score_change"],
                  confirmed_change_low=tested["dvd_score_change_low"],
                  confirmed_change_high=tested["dvd_score_change_high"],
                  confirmed_concept_present=tested["concept_present"],
                  confirmed_object_present=tested["object_present"],
                  confirmed_baseline_concept_present=fresh_base["concept_present"],
                  confirmed_baseline_object_present=fresh_base["object_present"])
    return tested, {name: float(value) for name, value in fields.items()}


def _requirements(base: pd.Series, bounds: pd.DataFrame, min_baseline_dvd: float
                  ) -> list[verdicts.Requirement]:
    """What the test needs: dominance in the baseline, and an upper bound that lowers DvD."""
    best_bound = bounds["dvd_score_change_high"].min()
    baseline = Interval(base["dvd_score"], base["dvd_score_low"], base["dvd_score_high"])
    return [
        verdicts.Requirement(f"dominance to remove: the baseline's DvD interval above "
                             f"{min_baseline_dvd:g}", base["dvd_score_low"] > min_baseline_dvd,
                             f"the baseline's DvD is {baseline.text(1)}"),
        verdicts.Requirement("an upper bound that lowers DvD: every head ablated, or the concept's "
                             "tokens removed, with a paired interval of the change below 0",
                             best_bound < 0, f"the upper bounds' changes reach up to "
                             f"{best_bound:+.1f} at their interval's upper end"),
    ]


def _single_heads_moving(singles: pd.DataFrame, way: str) -> tuple[str, ...]:
    """The single heads whose paired DvD change ``way`` ("raises" or "lowers") it."""
    return tuple(head_label(row) for _, row in singles.iterrows()
                 if direction(row["dvd_score_change_low"], row["dvd_score_change_high"]) == way)


def findings(summary: pd.DataFrame, total_heads: int, confirmation: pd.DataFrame | None = None,
             baseline_name: str = BASELINE, *, removal_fraction: float = 0.5,
             min_baseline_dvd: float = 0.0, confidence: float = 0.95) -> Findings:
    """The :class:`Findings` of a summary holding the baseline, single heads, the cumulative
    orders, ``all_heads`` and ``concept_tokens``; ``confirmation`` is the summary of the
    baseline and the strongest single head on fresh seeds (see
    :meth:`dvdlib.chapters.head_ablation.run.HeadSweep.with_seeds`). ``removal_fraction``,
    ``min_baseline_dvd`` and ``confidence`` are the test's criteria (:func:`check_criteria`);
    ``confidence`` names the level the summaries' intervals were made at."""
    check_criteria(removal_fraction, min_baseline_dvd, confidence)
    table = summary.set_index("condition")
    needed = [baseline_name, ALL_HEADS, CONCEPT_TOKENS]
    missing = [name for name in needed if name not in table.index]
    singles = summary[summary["family"] == "single head"]
    if missing or singles.empty:
        raise ValueError(f"findings need the conditions {', '.join(needed)} and single heads; "
                         f"missing: "
                         f"{', '.join(missing + ([] if len(singles) else ['single heads']))}")
    base = table.loc[baseline_name]
    strongest, largest = strongest_single_head(summary), largest_single_head(summary)
    has_curves = summary["family"].isin(["ranked", "random"]).any()
    curves = curve(summary, baseline_name) if has_curves else None
    orders = [] if curves is None else sorted(curves["order"].unique())
    halve = {order: heads_to_halve(curves, base["dvd_score"], order) for order in orders}
    ranked = halve.pop("ranked", None)
    tested, confirmed = (strongest, {}) if confirmation is None else _confirmed(
        confirmation, strongest, baseline_name)
    test = verdicts.Test(
        finding="finding 3", claim="ablating any single head does not remove the dominance",
        measure=(f"the DvD change from ablating head {head_label(strongest)} (the largest drop)"
                 + (" on fresh seeds" if confirmation is not None else "")),
        side="above", bound=-removal_fraction * float(base["dvd_score"]), confidence=confidence)
    verdict = verdicts.decide(
        test, (tested["dvd_score_change"], tested["dvd_score_change_low"],
               tested["dvd_score_change_high"]),
        _requirements(base, table.loc[[ALL_HEADS, CONCEPT_TOKENS]], min_baseline_dvd))
    return Findings(
        baseline_dvd=float(base["dvd_score"]), baseline_low=float(base["dvd_score_low"]),
        baseline_high=float(base["dvd_score_high"]),
        baseline_concept_present=float(base["concept_present"]),
        baseline_object_present=float(base["object_present"]), total_heads=int(total_heads),
        single_heads=len(singles), outside_interval=int(singles["dvd_outside"].sum()),
        heads_raising=_single_heads_moving(singles, "raises"),
        heads_lowering=_single_heads_moving(singles, "lowers"),
        largest_label=head_label(largest), largest_change=float(largest["dvd_score_change"]),
        largest_change_low=float(largest["dvd_score_change_low"]),
        largest_change_high=float(largest["dvd_score_change_high"]),
        largest_concept_present=float(largest["concept_present"]),
        largest_object_present=float(largest["object_present"]), largest=str(largest["condition"]),
        strongest=str(strongest["condition"]), strongest_label=head_label(strongest),
        strongest_change=float(strongest["dvd_score_change"]),
        strongest_change_low=float(strongest["dvd_score_change_low"]),
        strongest_change_high=float(strongest["dvd_score_change_high"]),
        sets=effects(summary, SET_FAMILIES), heads_to_halve_ranked=ranked,
        heads_to_halve_random=halve, all_heads_dvd=float(table.loc[ALL_HEADS, "dvd_score"]),
        concept_tokens_dvd=float(table.loc[CONCEPT_TOKENS, "dvd_score"]), verdict=verdict,
        **confirmed)


def headline(found: Findings) -> tuple[dict, dict]:
    """``(values, texts)`` for :func:`dvdlib.book.headlines.save` (NaN values are left out)."""
    values = {
        "baseline_dvd": found.baseline_dvd, "baseline_dvd_low": found.baseline_low,
        "baseline_dvd_high": found.baseline_high, "heads": found.total_heads,
        "heads_raising_dvd": len(found.heads_raising),
        "heads_lowering_dvd": len(found.heads_lowering),
        "single_heads_outside_interval": found.outside_interval,
        "largest_single_head_change": found.largest_change,
        "largest_single_head_change_low": found.largest_change_low,
        "largest_single_head_change_high": found.largest_change_high,
        "largest_drop": found.strongest_change, "largest_drop_fresh_seeds": found.confirmed_change,
        "sets_raising_dvd": found.sets_raising, "sets_lowering_dvd": found.sets_lowering,
        "all_heads_dvd": found.all_heads_dvd,
        "concept_tokens_removed_dvd": found.concept_tokens_dvd,
    }
    if found.heads_to_halve_ranked is not None:
        values["heads_to_halve_ranked"] = found.heads_to_halve_ranked
    values.update({f"heads_to_halve_{name}": n for name, n in found.heads_to_halve_random.items()
                   if n is not None})
    verdict_values, texts = found.verdict.headline("verdict")
    values = {k: v for k, v in {**values, **verdict_values}.items() if np.isfinite(v)}
    return values, {**texts, "largest_single_head": found.largest_label}
