"""The numbers the chapter's text quotes, by the key it glues them under (``ch5_<key>``).

Shares are fractions (the page formats them as %), intervals are written by
:meth:`dvdlib.stats.verdicts.Interval.text`, verdict words come from the verdicts. The one-line
summary for the landing page (:func:`landing`) quotes each verdict's own sentence, as
:func:`dvdlib.stats.verdicts.check_headline` requires.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from dvdlib.chapters.rescue.run import PLAIN, arm_label
from dvdlib.chapters.rescue.summary import ALL
from dvdlib.interventions.catalogue import TITLES
from dvdlib.interventions.heads import HeadRanking
from dvdlib.stats.verdicts import Interval, Verdict

NONE = "none"


def _interval(row, value: str, **style) -> str:
    return Interval(row[value], row[f"{value}_low"], row[f"{value}_high"]).text(**style)


def chapter_numbers(found: Mapping[str, Verdict], summary: pd.DataFrame, images: pd.DataFrame,
                    ranking: HeadRanking | None, *, margin: float) -> dict:
    """What the chapter quotes: the plain model, each intervention at its test strength, the
    rescues, the largest change (the most positive) of the both-present share over every arm,
    and the top heads."""
    rows = summary[summary["objects"] == ALL].set_index("arm")
    plain = rows.loc[PLAIN]
    numbers = {
        "images_per_arm": int(plain["n_images"]), "seeds": int(plain["n_seeds"]),
        "prompts": int(images.loc[images["arm"] == PLAIN, "case_num"].nunique()),
        "arms": int(len(rows)), "margin": float(margin),
        "plain_both": float(plain["both_present"]),
        "plain_both_interval": _interval(plain, "both_present", digits=0, scale=100, unit=" %"),
        "plain_concept": float(plain["concept_present"]),
        "plain_object": float(plain["object_present"]),
        "plain_dvd": _interval(plain, "dvd_score", digits=1),
        "plain_concept_share": float(plain["concept_share"]),
        "plain_seconds": float(plain["seconds_per_image"]),
    }
    tested = rows[rows["is_test"].astype(bool)].set_index("intervention")
    for name in TITLES:
        if name not in tested.index:
            continue
        row = tested.loc[name]
        numbers.update({
            f"{name}_both": float(row["both_present"]),
            f"{name}_concept": float(row["concept_present"]),
            f"{name}_object": float(row["object_present"]),
            f"{name}_both_change": _interval(row, "both_present_change", digits=0, signed=True,
                                             scale=100),
            f"{name}_concept_share": float(row["concept_share"]),
            f"{name}_cost": float(row["relative_cost"]),
            f"{name}_verdict": found[name].word if name in found else NONE,
        })
    rescued = [TITLES[name] for name, verdict in found.items() if verdict.word == "supported"]
    numbers.update(rescues=len(rescued), rescuers=", ".join(rescued) or NONE,
                   inconclusive=sum(v.word == "inconclusive" for v in found.values()),
                   contradicted=sum(v.word == "contradicted" for v in found.values()),
                   not_testable=sum(v.word == "not testable" for v in found.values()))
    changes = rows[rows.index != PLAIN]
    best = changes.loc[changes["both_present_change"].idxmax()]
    numbers.update(largest_rise_arm=_arm_text(best),
                   largest_rise=_interval(best, "both_present_change", digits=0, signed=True,
                                          scale=100),
                   largest_rise_concept=float(best["concept_present"]))
    numbers.update(group_numbers(summary))
    numbers["top_heads"] = (", ".join(f"{label}:{head}" for label, head in ranking.order[:3])
                            if ranking is not None else NONE)
    return numbers


def group_numbers(summary: pd.DataFrame) -> dict:
    """Per object group (``seen``, ``unseen``): the plain model's both-present share and the arm
    with the largest (most positive) change of it, with that change and its concept presence;
    "not split" on a prompt set without groups."""
    numbers = {}
    for group in ("seen", "unseen"):
        rows = summary[summary["objects"] == group].set_index("arm")
        if rows.empty:
            numbers.update({f"{group}_plain_both": "not split", f"{group}_best": "not split",
                            f"{group}_best_rise": "not split", f"{group}_best_concept": "not split"})
            continue
        best = rows.drop(index=PLAIN).sort_values("both_present_change", kind="stable").iloc[-1]
        numbers.update({
            f"{group}_plain_both": f"{rows.loc[PLAIN, 'both_present']:.0%}",
            f"{group}_best": _arm_text(best),
            f"{group}_best_rise": _interval(best, "both_present_change", digits=0, signed=True,
                                            scale=100),
            f"{group}_best_concept": f"{best['concept_present']:.0%}"})
    return numbers


def _arm_text(row) -> str:
    return arm_label(row["intervention"], row["strength"])


def landing(model: str, concept: str, numbers: Mapping, found: Mapping[str, Verdict]) -> str:
    """The chapter's summary for the landing page: the plain model, the rescues, each verdict."""
    n = numbers
    head = (f"On `{model}`, the plain model draws both the {concept} and the object in "
            f"{n['plain_both']:.0%} of images ({concept} present in {n['plain_concept']:.0%}, "
            f"object in {n['plain_object']:.0%}). Interventions that bring the object back with "
            f"the {concept} kept, at their test strengths: {n['rescues']} of {len(found)} "
            f"({n['rescuers']}); the largest change of the both-present share is "
            f"{n['largest_rise']} points ({n['largest_rise_arm']}).")
    return " ".join([head, *(verdict.plain() for verdict in found.values())])
