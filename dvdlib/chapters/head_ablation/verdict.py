"""What a head-ablation sweep says about the paper's finding 3, decided by a rule stated first.

- :func:`check_criteria`: the test's parameters in range, checked before any model loads.
- :class:`Findings` and :func:`findings`: the numbers the chapter reports and the verdict
  (:func:`dvdlib.stats.verdicts.decide`).

The outcome of an ablation is whether the object comes back with the concept kept
(:mod:`.rescue`): a condition *rescues the object* when the interval of its object-presence gain
lies above ``rescue_fraction`` of the baseline's images without the object and the concept's
presence falls by no more than ``concept_margin``, both paired against the baseline on the same
seeds. Finding 3 (no single head carries the dominance) is decided on the single head that
brings the object back most with the concept kept, re-measured with the baseline on fresh seeds:
**supported** when the interval of its gain lies below the rescue bound of those seeds,
**contradicted** when it lies above (that head rescues), **inconclusive** otherwise. It is **not
testable** without dominance in the baseline (DvD interval above ``min_baseline_dvd``), without
objects to bring back on those seeds, when the head does not keep the concept there, or when no
positive control (the concept's route through its tokens, the end and the padding, turned down
in every head) rescues the object on those seeds: then the test could not see a rescue at all.
- :func:`headline`: the values and verdict texts the chapter saves for the landing page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dvdlib.chapters.head_ablation import rescue
from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, BASELINE, CONCEPT_TOKENS
from dvdlib.chapters.head_ablation.summaries import (
    CONTROL_FAMILIES, INTERVAL_UNIT, SET_FAMILIES, curve, direction, heads_to_halve,
    largest_single_head, strongest_single_head)
from dvdlib.stats import verdicts
from dvdlib.stats.verdicts import Interval

MAX_BASELINE_DVD = 100.0  # DvD lies in [0, 100]: no baseline interval can lie above 100
POSITIVE_CONTROLS = ("concept route",)  # the families a positive control is chosen from
POINTS = 100.0  # presence fractions are tested in percentage points


def check_criteria(rescue_fraction: float, concept_margin: float, min_baseline_dvd: float,
                   confidence: float) -> None:
    """Raise a ValueError naming a verdict criterion outside its range."""
    rescue.check_rescue_criteria(rescue_fraction, concept_margin)
    verdicts.check_fraction("min_baseline_dvd", min_baseline_dvd, low=0.0, high=MAX_BASELINE_DVD,
                            include_low=True)
    verdicts.check_confidence(confidence)


@dataclass(frozen=True)
class Findings:
    """The numbers a head-ablation chapter reports, and the verdict on the paper's finding 3.

    ``classified`` holds every condition of the chapter's seeds but the baseline, with its
    rescue outcome (:func:`.rescue.classify`); ``tested`` the same for the seeds the verdict was
    decided on (the fresh seeds of the confirmation, else the chapter's own).
    """

    baseline: pd.Series = field(repr=False, compare=False)  # the summary's baseline row
    total_heads: int
    rescue_fraction: float
    concept_margin: float
    min_baseline_dvd: float
    classified: pd.DataFrame = field(repr=False, compare=False)
    tested: pd.DataFrame = field(repr=False, compare=False)
    tested_baseline: pd.Series = field(repr=False, compare=False)
    candidate: str  # the single head re-measured (most object back, concept kept)
    control: str  # the positive control re-measured
    confirmed: bool  # whether the verdict's seeds are fresh ones
    verdict: verdicts.Verdict
    heads_to_halve_ranked: int | None = None
    heads_to_halve_random: dict = field(default_factory=dict)
    top_drops: tuple[str, ...] = ()  # the single heads with the largest DvD drops
    top_layer: str | None = None  # the layer they share, if they do

    def _rows(self, families) -> pd.DataFrame:
        return self.classified[self.classified["family"].isin(families)]

    @property
    def singles(self) -> pd.DataFrame:
        return self._rows(["single head"])

    @property
    def sets(self) -> pd.DataFrame:
        """The head sets smaller than every head (ranked, random, one layer), classified."""
        return self._rows(SET_FAMILIES).reset_index(drop=True)

    @property
    def controls(self) -> pd.DataFrame:
        """Every head ablated, the concept's tokens removed and the concept's route turned down."""
        return self._rows(CONTROL_FAMILIES).reset_index(drop=True)

    def _labels(self, rows: pd.DataFrame, mask) -> tuple[str, ...]:
        return tuple(head_label(row) for _, row in rows[mask].iterrows())

    def single_heads_where(self, outcomes) -> tuple[str, ...]:
        return self._labels(self.singles, self.singles["outcome"].isin(outcomes))

    def single_heads_moving(self, way: str) -> tuple[str, ...]:
        """The single heads whose paired DvD change ``way`` ("raises" or "lowers") it."""
        ways = [direction(lo, hi) for lo, hi in zip(self.singles["dvd_score_change_low"],
                                                    self.singles["dvd_score_change_high"])]
        return self._labels(self.singles, np.array(ways, dtype=object) == way)

    def sets_moving(self, way: str) -> int:
        return sum(direction(lo, hi) == way for lo, hi in
                   zip(self.sets["dvd_score_change_low"], self.sets["dvd_score_change_high"]))

    def sets_where(self, outcomes) -> int:
        return int(self.sets["outcome"].isin(outcomes).sum())

    def row(self, condition: str) -> pd.Series:
        """A classified row of the chapter's seeds."""
        return self.classified.set_index("condition").loc[condition]

    def tested_row(self, condition: str) -> pd.Series:
        """A classified row of the verdict's seeds."""
        return self.tested.set_index("condition").loc[condition]

    @property
    def control_rescues(self) -> bool:
        return self.tested_row(self.control)["outcome"] == rescue.RESCUES

    @property
    def control_concept_kept(self) -> bool:
        return self.tested_row(self.control)["concept_kept"] == rescue.KEPT

    @property
    def largest(self) -> pd.Series:
        return largest_single_head(self.classified)

    @property
    def strongest(self) -> pd.Series:
        return strongest_single_head(self.classified)


def head_label(row) -> str:
    """A single-head row's head as ``layer:head`` (its label without the word "head")."""
    return str(row["label"]).removeprefix("head ")


def _state_text(row: pd.Series) -> str:
    gain = Interval(row["object_present_change"], row["object_present_change_low"],
                    row["object_present_change_high"]).text(0, signed=True, scale=POINTS)
    concept = Interval(row["concept_present_change"], row["concept_present_change_low"],
                       row["concept_present_change_high"]).text(0, signed=True, scale=POINTS)
    return f"object presence {gain} points, concept presence {concept} points"


def _requirements(base: pd.Series, tested_base: pd.Series, head: pd.Series, control: pd.Series,
                  min_baseline_dvd: float, seeds: str) -> list[verdicts.Requirement]:
    """What the test needs (module notes): dominance, objects to bring back, the head keeping
    the concept, and a positive control that rescues, the last three on the verdict's seeds."""
    baseline = Interval(base["dvd_score"], base["dvd_score_low"], base["dvd_score_high"])
    missing = 1.0 - float(tested_base["object_present"])
    return [
        verdicts.Requirement(f"dominance to undo: the baseline's DvD interval above "
                             f"{min_baseline_dvd:g}", base["dvd_score_low"] > min_baseline_dvd,
                             f"the baseline's DvD is {baseline.text(1)}"),
        verdicts.Requirement(f"objects to bring back: the baseline on {seeds} lacks the object "
                             f"in some images", missing > 0,
                             f"the object is present in {1 - missing:.0%} of them"),
        verdicts.Requirement(f"the head to keep the concept on {seeds}, so that a gain of the "
                             f"object is a rescue", head["concept_kept"] == rescue.KEPT,
                             f"head {head_label(head)} gives {_state_text(head)}"),
        verdicts.Requirement(f"a positive control that rescues the object on {seeds}",
                             control["outcome"] == rescue.RESCUES,
                             f"the best control ({control['label']}) gives {_state_text(control)}"
                             f": {control['outcome']}"),
    ]


def findings(summary: pd.DataFrame, total_heads: int, confirmation: pd.DataFrame | None = None,
             baseline_name: str = BASELINE, *, rescue_fraction: float = 0.5,
             concept_margin: float = 0.1, min_baseline_dvd: float = 0.0,
             confidence: float = 0.95) -> Findings:
    """The :class:`Findings` of a :func:`~.summaries.summarise` table holding the baseline,
    single heads, ``all_heads``, ``concept_tokens`` and at least one ``concept route`` control
    (cumulative orders and a layer are optional). ``confirmation`` is the summary, on fresh
    seeds, of the baseline, the :func:`~.rescue.candidate_head` and the
    :func:`~.rescue.positive_control` (:meth:`~.run.HeadSweep.with_seeds`); without it the
    verdict is decided on the chapter's seeds. The keyword arguments are the test's criteria
    (:func:`check_criteria`); ``confidence`` names the level the summaries' intervals were made
    at."""
    check_criteria(rescue_fraction, concept_margin, min_baseline_dvd, confidence)
    table = summary.set_index("condition")
    missing = [name for name in (baseline_name, ALL_HEADS, CONCEPT_TOKENS)
               if name not in table.index]
    missing += [] if (summary["family"] == "single head").any() else ["single heads"]
    missing += [] if summary["family"].isin(POSITIVE_CONTROLS).any() else ["concept route"]
    if missing:
        raise ValueError(f"findings need the baseline, single heads, {ALL_HEADS}, "
                         f"{CONCEPT_TOKENS} and a concept route; missing: {', '.join(missing)}")
    classified = rescue.classify(summary, baseline_name, rescue_fraction, concept_margin)
    candidate = rescue.candidate_head(classified)
    control = rescue.positive_control(classified, POSITIVE_CONTROLS)
    tested = classified
    if confirmation is not None:
        wanted = [baseline_name, candidate["condition"], control["condition"]]
        absent = [name for name in wanted if name not in set(confirmation["condition"])]
        if absent:
            raise ValueError(f"the confirmation must hold {', '.join(map(repr, wanted))}; it "
                             f"lacks {', '.join(map(repr, absent))}")
        tested = rescue.classify(confirmation, baseline_name, rescue_fraction, concept_margin)
    tested_base = (summary if confirmation is None else confirmation).set_index(
        "condition").loc[baseline_name]
    head = tested.set_index("condition").loc[candidate["condition"]]
    seeds = "fresh seeds" if confirmation is not None else "the same seeds"
    bound = rescue.rescue_bound(tested_base["object_present"], rescue_fraction)
    test = verdicts.Test(
        finding="finding 3",
        claim="no single head carries the dominance: ablating any one head does not bring the "
              "object back with the concept kept",
        measure=(f"the object-presence gain from ablating head {head_label(candidate)} (the "
                 f"single head that brings the object back most with the concept kept), in "
                 f"points of images against the baseline on {seeds}"),
        side="below", bound=POINTS * bound, confidence=confidence)
    interval = tuple(POINTS * head[f"object_present_change{end}"] for end in ("", "_low", "_high"))
    verdict = verdicts.decide(test, interval, _requirements(
        table.loc[baseline_name], tested_base, head,
        tested.set_index("condition").loc[control["condition"]], min_baseline_dvd, seeds))
    curves = (curve(summary, baseline_name)
              if summary["family"].isin(["ranked", "random"]).any() else None)
    orders = [] if curves is None else sorted(curves["order"].unique())
    halve = {order: heads_to_halve(curves, table.loc[baseline_name, "dvd_score"], order)
             for order in orders}
    top, layer = rescue.largest_effects(summary)
    return Findings(
        baseline=table.loc[baseline_name], total_heads=int(total_heads),
        rescue_fraction=float(rescue_fraction), concept_margin=float(concept_margin),
        min_baseline_dvd=float(min_baseline_dvd), classified=classified, tested=tested, tested_baseline=tested_base,
        candidate=str(candidate["condition"]), control=str(control["condition"]),
        confirmed=confirmation is not None, verdict=verdict,
        heads_to_halve_ranked=halve.pop("ranked", None), heads_to_halve_random=halve,
        top_drops=tuple(head_label(row) for _, row in top.iterrows()), top_layer=layer)


def headline(found: Findings) -> tuple[dict, dict]:
    """``(values, texts)`` for :func:`dvdlib.book.headlines.save` (NaN values are left out)."""
    base, largest, strongest = found.baseline, found.largest, found.strongest
    control, head = found.tested_row(found.control), found.tested_row(found.candidate)
    values = {
        "baseline_dvd": base["dvd_score"], "baseline_dvd_low": base["dvd_score_low"],
        "baseline_dvd_high": base["dvd_score_high"],
        "baseline_concept_present": base["concept_present"],
        "baseline_object_present": base["object_present"], "heads": found.total_heads,
        "rescue_fraction": found.rescue_fraction, "concept_margin": found.concept_margin,
        "min_baseline_dvd": found.min_baseline_dvd,
        "rescue_bound": float(found.classified["rescue_bound"].iloc[0]),
        "heads_rescuing_object": len(found.single_heads_where([rescue.RESCUES])),
        "heads_raising_object": len(found.single_heads_where([rescue.RESCUES, rescue.OBJECT_UP])),
        "heads_deleting_concept": len(found.single_heads_where([rescue.OUTCOMES[0]])),
        "sets_rescuing_object": found.sets_where([rescue.RESCUES]),
        "heads_raising_dvd": len(found.single_heads_moving("raises")),
        "heads_lowering_dvd": len(found.single_heads_moving("lowers")),
        "single_heads_outside_interval": int(found.singles["dvd_outside"].sum()),
        "largest_single_head_change": largest["dvd_score_change"],
        "largest_single_head_change_low": largest["dvd_score_change_low"],
        "largest_single_head_change_high": largest["dvd_score_change_high"],
        "largest_drop": strongest["dvd_score_change"],
        "candidate_object_gain": head["object_present_change"],
        "candidate_dvd_change": head["dvd_score_change"],
        "sets_raising_dvd": found.sets_moving("raises"),
        "sets_lowering_dvd": found.sets_moving("lowers"),
        "all_heads_dvd": found.row(ALL_HEADS)["dvd_score"],
        "concept_tokens_removed_dvd": found.row(CONCEPT_TOKENS)["dvd_score"],
        "positive_control_rescues": int(found.control_rescues),
        "positive_control_concept_kept": int(found.control_concept_kept),
        "positive_control_concept_present": control["concept_present"],
        "positive_control_object_present": control["object_present"],
        "positive_control_dvd": control["dvd_score"],
    }
    if found.heads_to_halve_ranked is not None:
        values["heads_to_halve_ranked"] = found.heads_to_halve_ranked
    values.update({f"heads_to_halve_{name}": n for name, n in found.heads_to_halve_random.items()
                   if n is not None})
    verdict_values, texts = found.verdict.headline("verdict")
    values = {k: float(v) if isinstance(v, (float, np.floating)) else int(v)
              for k, v in {**values, **verdict_values}.items() if np.isfinite(v)}
    return values, {**texts, "interval_unit": INTERVAL_UNIT,
                    "largest_single_head": head_label(largest),
                    "candidate_head": head_label(found.row(found.candidate)),
                    "positive_control": str(control["label"]),
                    "largest_drops_layer": found.top_layer or ""}
