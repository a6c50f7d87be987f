"""The numbers the chapter's text quotes, by the key it glues them under.

The chapter's wording lives in its Markdown; these functions return what it fills in: counts,
shares (fractions, formatted by the page), head labels, the small words of
:func:`~dvdlib.chapters.head_ablation.summaries.direction`, and intervals written by
:meth:`dvdlib.stats.verdicts.Interval.text`, the one way the book writes an interval.

- :func:`effect_numbers`: one condition's DvD, its paired change and both sides' presence.
- :func:`chapter_numbers`: everything the chapter's text quotes after the sweep.
- :func:`survey_numbers`: the choice of the default model (:mod:`.model_choice`).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, BASELINE, CONCEPT_TOKENS
from dvdlib.chapters.head_ablation.model_choice import ENOUGH_DOMINANCE, model_to_ablate
from dvdlib.chapters.head_ablation.summaries import direction
from dvdlib.chapters.head_ablation.verdict import Findings
from dvdlib.stats.verdicts import Interval

NOT_RUN = "not run"  # the survey's choice when no survey ran
NONE = "none"  # an empty list of heads, or no head count that halves DvD
SHOWN_HEADS = 6  # head labels listed before the rest are counted


def effect_numbers(row: pd.Series, name: str, change: bool = True) -> dict:
    """A summary row as ``<name>_dvd`` (DvD with its interval), ``<name>_concept_present`` and
    ``<name>_object_present`` (fractions) and, with ``change``, ``<name>_change`` (the paired
    change, signed, with its interval) and ``<name>_direction`` ("raises", "lowers", ...)."""
    numbers = {
        f"{name}_dvd": Interval(row["dvd_score"], row["dvd_score_low"], row["dvd_score_high"]
                                ).text(1),
        f"{name}_concept_present": float(row["concept_present"]),
        f"{name}_object_present": float(row["object_present"]),
    }
    if change:
        low, high = row["dvd_score_change_low"], row["dvd_score_change_high"]
        change_interval = Interval(row["dvd_score_change"], low, high)
        numbers[f"{name}_change"] = change_interval.text(1, signed=True)
        numbers[f"{name}_direction"] = direction(low, high)
    return numbers


def head_list(labels: Sequence[str], limit: int = SHOWN_HEADS) -> str:
    """Head labels for the text: the first ``limit``, then how many more; :data:`NONE` if none."""
    if not labels:
        return NONE
    rest = len(labels) - limit
    return ", ".join(labels[:limit]) + (f" and {rest} more" if rest > 0 else "")


def chapter_numbers(found: Findings, summary: pd.DataFrame, attention: pd.DataFrame,
                    fresh: pd.DataFrame, *, rank_by: str) -> dict:
    """What the chapter quotes, by key: from :func:`~.verdict.findings`, the :func:`~.summaries.
    summarise` table, the baseline's :func:`~.summaries.head_attention` (heads ranked by
    ``rank_by``) and the summary of the strongest head re-measured on fresh seeds."""
    table, again = summary.set_index("condition"), fresh.set_index("condition")
    base = table.loc[BASELINE]
    singles = summary[summary["family"] == "single head"]
    top = attention.sort_values(rank_by, ascending=False).iloc[0]
    # Pooled as everywhere in the book: the mean over each layer's heads, then over the layers.
    pooled = attention.groupby("layer")[["concept_mass", "word_mass"]].mean().mean()
    groups = found.sets[found.sets["family"].isin(["ranked", "random"])]
    halves = [NONE if n is None else str(n) for n in found.heads_to_halve_random.values()]
    rows = {"baseline": base, "largest": table.loc[found.largest],
            "strongest": table.loc[found.strongest], "fresh": again.loc[found.strongest],
            "all_heads": table.loc[ALL_HEADS], "concept_tokens": table.loc[CONCEPT_TOKENS]}
    numbers = {key: value for name, row in rows.items()
               for key, value in effect_numbers(row, name, change=name != "baseline").items()}
    return {
        **numbers, **effect_numbers(again.loc[BASELINE], "fresh_baseline", change=False),
        "heads": found.total_heads, "single_heads": len(singles),
        "baseline_images": int(base["n_images"]),
        "fresh_images": int(again.loc[found.strongest, "n_images"]),
        "baseline_concept_share": float(base["concept_share"]),
        "top_head": f"{top['layer_label']}:{int(top['head'])}",
        "top_head_value": float(top[rank_by]),
        "pair_share_low": float(attention["pair_share"].min()),
        "pair_share_high": float(attention["pair_share"].max()),
        "changed": int(singles["dvd_change_excludes_zero"].sum()),
        "raising": len(found.heads_raising), "lowering": len(found.heads_lowering),
        "raising_heads": head_list(found.heads_raising),
        "lowering_heads": head_list(found.heads_lowering),
        "outside": found.outside_interval, "level": found.verdict.test.level,
        "chance_flags": (1 - found.verdict.test.confidence) * len(singles),
        "single_dvd_low": float(singles["dvd_score"].min()),
        "single_dvd_high": float(singles["dvd_score"].max()),
        "largest_head": found.largest_label, "largest_change_estimate": found.largest_change,
        "strongest_head": found.strongest_label,
        "halve_ranked": NONE if found.heads_to_halve_ranked is None else str(
            found.heads_to_halve_ranked),
        "halve_random": ", ".join(halves) or NONE,
        "concept_mass": float(pooled["concept_mass"]), "word_mass": float(pooled["word_mass"]),
        "other_mass": float(1 - pooled["word_mass"]),
        "sets": len(groups), "sets_raising": int((groups["direction"] == "raises").sum()),
        "sets_lowering": int((groups["direction"] == "lowers").sum()),
        "verdict": found.verdict.word,
    }


def survey_numbers(survey: pd.DataFrame | None, objects: str) -> dict:
    """The survey's choice (:func:`~.model_choice.model_to_ablate` on ``objects``, or
    :data:`NOT_RUN`), the DvD it asks for, and the object set it was asked on."""
    chosen = NOT_RUN if survey is None else model_to_ablate(survey, objects)
    return {"chosen": chosen, "enough": ENOUGH_DOMINANCE, "objects": objects}
