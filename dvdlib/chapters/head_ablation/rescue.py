"""The outcome of an ablation: does the object come back with the concept kept?

A drop in DvD can come from two opposite things: the object comes back (the dominance is
undone), or the concept vanishes (DvD is 0 when the concept is absent, whatever the object).
So each condition is classified by both sides' presence, paired image by image against a
baseline on the same seeds (:func:`classify`, intervals over seeds):

- the **concept is kept** when the lower end of the interval of its presence change lies at or
  above ``-concept_margin``; **lost** when the upper end lies below it; **unclear** otherwise;
- the condition **rescues the object** when the concept is kept and the lower end of the
  interval of the object's presence gain lies above the **rescue bound**: ``rescue_fraction`` of
  the share of the baseline's images (same seeds) that lack the object (:func:`rescue_bound`).

:data:`OUTCOMES`, in the order :func:`outcome` tests them: ``deletes the concept``, ``rescues``,
``object up, short of a rescue`` (concept kept, gain above 0 but not above the bound), ``object
up, concept unclear``, ``no rescue``.

:func:`candidate_head` picks the single head to re-measure on fresh seeds; :func:`positive_control`
the control that shows a rescue can be seen; :func:`largest_effects` the single heads with the
largest DvD drops and whether they share a layer.
"""

from __future__ import annotations

import pandas as pd

from dvdlib.stats import verdicts

OUTCOMES = ("deletes the concept", "rescues", "object up, short of a rescue",
            "object up, concept unclear", "no rescue")
RESCUES, OBJECT_UP = OUTCOMES[1], OUTCOMES[2]
KEPT, LOST, UNCLEAR = "kept", "lost", "unclear"


def check_rescue_criteria(rescue_fraction: float, concept_margin: float) -> None:
    """Raise a ValueError naming a rescue criterion outside its range."""
    verdicts.check_fraction("rescue_fraction", rescue_fraction, include_high=True)
    verdicts.check_fraction("concept_margin", concept_margin, include_low=True)


def rescue_bound(baseline_object_present: float, rescue_fraction: float) -> float:
    """The object-presence gain (a fraction of images) a rescue must exceed: ``rescue_fraction``
    of the baseline's images without the object."""
    return float(rescue_fraction * (1.0 - baseline_object_present))


def concept_state(low: float, high: float, margin: float) -> str:
    """``kept`` / ``lost`` / ``unclear``: the interval of a concept-presence change against
    ``-margin`` (see the module notes)."""
    if low >= -margin:
        return KEPT
    if high < -margin:
        return LOST
    return UNCLEAR


def outcome(row, bound: float, margin: float) -> str:
    """One of :data:`OUTCOMES` for a :func:`~.summaries.summarise` row (see the module notes)."""
    concept = concept_state(row["concept_present_change_low"], row["concept_present_change_high"],
                            margin)
    gain_low = row["object_present_change_low"]
    if concept == LOST:
        return OUTCOMES[0]
    if concept == KEPT:
        if gain_low > bound:
            return RESCUES
        return OBJECT_UP if gain_low > 0 else OUTCOMES[4]
    return OUTCOMES[3] if gain_low > 0 else OUTCOMES[4]


def classify(summary: pd.DataFrame, baseline_name: str, rescue_fraction: float,
             concept_margin: float) -> pd.DataFrame:
    """``summary`` with ``rescue_bound`` (from its own baseline row: the same seeds),
    ``concept_kept`` (:func:`concept_state`) and ``outcome`` for every row but the baseline's."""
    check_rescue_criteria(rescue_fraction, concept_margin)
    table = summary.set_index("condition")
    if baseline_name not in table.index:
        raise ValueError(f"no baseline {baseline_name!r} to classify against; conditions: "
                         f"{', '.join(map(str, table.index))}")
    bound = rescue_bound(table.loc[baseline_name, "object_present"], rescue_fraction)
    rows = summary[summary["condition"] != baseline_name].copy()
    rows["rescue_bound"] = bound
    rows["concept_kept"] = [concept_state(lo, hi, concept_margin) for lo, hi in
                            zip(rows["concept_present_change_low"],
                                rows["concept_present_change_high"])]
    rows["outcome"] = [outcome(row, bound, concept_margin) for _, row in rows.iterrows()]
    return rows.reset_index(drop=True)


def _by_gain(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows from the largest object gain down; ties: the larger DvD drop, then table order."""
    return rows.sort_values(["object_present_change", "dvd_score_change"],
                            ascending=[False, True], kind="stable")


def candidate_head(classified: pd.DataFrame) -> pd.Series:
    """The single head whose ablation brings the object back most with the concept kept (any
    single head when none keeps it): the head the finding's test re-measures."""
    singles = classified[classified["family"] == "single head"]
    if singles.empty:
        raise ValueError("the table holds no single-head conditions")
    kept = singles[singles["concept_kept"] == KEPT]
    return _by_gain(kept if len(kept) else singles).iloc[0]


def positive_control(classified: pd.DataFrame, families: tuple[str, ...]) -> pd.Series:
    """Among the conditions of ``families``, the one that rescues with the largest object gain;
    if none rescues, the largest gain with the concept kept; else the largest gain."""
    controls = classified[classified["family"].isin(families)]
    if controls.empty:
        raise ValueError(f"the table holds no condition of {', '.join(families)}")
    for chosen in (controls[controls["outcome"] == RESCUES],
                   controls[controls["concept_kept"] == KEPT], controls):
        if len(chosen):
            return _by_gain(chosen).iloc[0]
    raise AssertionError("unreachable")


def head_layer(label: str) -> str:
    """The layer of a single-head label (``head up.1.1.0:2`` -> ``up.1.1.0``)."""
    return str(label).removeprefix("head ").rsplit(":", 1)[0]


def largest_effects(summary: pd.DataFrame, n: int = 2) -> tuple[pd.DataFrame, str | None]:
    """Up to ``n`` single heads whose ablation lowers DvD most (mean change below 0; ties: table
    order), and the layer they share: its label when there are ``n`` of them in one layer,
    else None."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    singles = summary[(summary["family"] == "single head") & (summary["dvd_score_change"] < 0)]
    top = singles.sort_values("dvd_score_change", kind="stable").head(n)
    layers = {head_layer(label) for label in top["label"]}
    return top, (layers.pop() if len(top) == n and len(layers) == 1 else None)
