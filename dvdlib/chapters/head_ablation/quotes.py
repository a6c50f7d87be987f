"""The numbers the chapter's text quotes, by the key it glues them under.

The chapter's wording lives in its Markdown; these functions return what it fills in: counts,
shares (fractions, formatted by the page), head labels, the small words of
:func:`~dvdlib.chapters.head_ablation.summaries.direction` and of the rescue outcomes, and
intervals written by :meth:`dvdlib.stats.verdicts.Interval.text`, the one way the book writes an
interval.

- :func:`effect_numbers`: one condition's DvD, its paired changes and both sides' presence.
- :func:`chapter_numbers`: everything the chapter's text quotes after the sweep;
  :data:`HEADLINE_COUNTS` names the counts it shares with the headline
  (:func:`~.verdict.headline`), which must agree (:func:`count_disagreements`).
- :func:`landing_summary`: the landing page's paragraph, from the same numbers.
- :func:`survey_numbers`: the choice of the default model (:mod:`.model_choice`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from dvdlib.chapters.head_ablation import rescue
from dvdlib.chapters.head_ablation.conditions import ALL_HEADS, CONCEPT_TOKENS
from dvdlib.chapters.head_ablation.model_choice import ENOUGH_DOMINANCE, model_to_ablate
from dvdlib.chapters.head_ablation.summaries import INTERVAL_UNIT, direction
from dvdlib.chapters.head_ablation.verdict import POINTS, Findings, head_label
from dvdlib.stats.verdicts import Interval

NOT_RUN = "not run"  # the survey's choice when no survey ran
NONE = "none"  # an empty list of heads, or no head count that halves DvD
SHOWN_HEADS = 6  # head labels listed before the rest are counted
# The counts the text quotes (key of chapter_numbers) that the headline saves (key of headline).
HEADLINE_COUNTS = {
    "rescuing": "heads_rescuing_object", "object_up": "heads_raising_object",
    "deleting": "heads_deleting_concept", "sets_rescuing": "sets_rescuing_object",
    "raising": "heads_raising_dvd", "lowering": "heads_lowering_dvd",
    "outside": "single_heads_outside_interval", "sets_raising": "sets_raising_dvd",
    "sets_lowering": "sets_lowering_dvd", "heads": "heads",
    "control_rescues": "positive_control_rescues",
    "control_concept_kept": "positive_control_concept_kept",
}


def _points(row: pd.Series, value: str) -> str:
    return Interval(row[f"{value}_change"], row[f"{value}_change_low"],
                    row[f"{value}_change_high"]).text(0, signed=True, scale=POINTS)


def effect_numbers(row: pd.Series, name: str, change: bool = True) -> dict:
    """A summary row as ``<name>_dvd`` (DvD with its interval), ``<name>_concept_present`` and
    ``<name>_object_present`` (fractions) and, with ``change``, ``<name>_change`` (the paired DvD
    change, signed, with its interval), ``<name>_direction`` ("raises", "lowers", ...),
    ``<name>_object_gain`` and ``<name>_concept_change`` (paired presence changes in percentage
    points, with intervals) and, for a classified row, ``<name>_outcome``."""
    numbers = {
        f"{name}_dvd": Interval(row["dvd_score"], row["dvd_score_low"], row["dvd_score_high"]
                                ).text(1),
        f"{name}_concept_present": float(row["concept_present"]),
        f"{name}_object_present": float(row["object_present"]),
    }
    if change:
        low, high = row["dvd_score_change_low"], row["dvd_score_change_high"]
        numbers[f"{name}_change"] = Interval(row["dvd_score_change"], low, high).text(
            1, signed=True)
        numbers[f"{name}_direction"] = direction(low, high)
        numbers[f"{name}_object_gain"] = _points(row, "object_present")
        numbers[f"{name}_concept_change"] = _points(row, "concept_present")
        if "outcome" in row.index:
            numbers[f"{name}_outcome"] = str(row["outcome"])
    return numbers


def head_list(labels: Sequence[str], limit: int = SHOWN_HEADS) -> str:
    """Head labels for the text: the first ``limit``, then how many more; :data:`NONE` if none."""
    if not labels:
        return NONE
    rest = len(labels) - limit
    return ", ".join(labels[:limit]) + (f" and {rest} more" if rest > 0 else "")


def drops_text(found: Findings) -> str:
    """Where the largest single-head DvD drops sit: one layer, or several."""
    drops = found.top_drops
    if len(drops) < 2:
        return (f"fewer than two heads lower DvD at all ({head_list(drops)}), so no layer "
                f"holds the largest drops")
    heads = " and ".join(drops)
    if found.top_layer is not None:
        return f"the {len(drops)} largest drops ({heads}) sit in one layer, {found.top_layer}"
    return f"the {len(drops)} largest drops ({heads}) sit in different layers"


def layer_text(found: Findings) -> str:
    """What ablating the layer of the largest drops whole did, or why it was not run."""
    layers = found.sets[found.sets["family"] == "layer"]
    if layers.empty:
        return "no layer was ablated whole (the largest drops do not share one)"
    row = layers.iloc[0]
    dvd = Interval(row["dvd_score"], row["dvd_score_low"], row["dvd_score_high"]).text(1)
    return (f"{row['label']} ablated together gives DvD {dvd}, the concept present in "
            f"{row['concept_present']:.0%} of the images and the object in "
            f"{row['object_present']:.0%}: {row['outcome']}")


def chapter_numbers(found: Findings, attention: pd.DataFrame, leak: Mapping, *,
                    rank_by: str) -> dict:
    """What the chapter quotes, by key: from :func:`~.verdict.findings`, the baseline's
    :func:`~.summaries.head_attention` (heads ranked by ``rank_by``) and
    :func:`~.leakage.leak_numbers`."""
    base, singles = found.baseline, found.singles
    top = attention.sort_values(rank_by, ascending=False).iloc[0]
    # Pooled as everywhere in the book: the mean over each layer's heads, then over the layers.
    pooled = attention.groupby("layer")[["concept_mass", "word_mass"]].mean().mean()
    halves = [NONE if n is None else str(n) for n in found.heads_to_halve_random.values()]
    rows = {"largest": found.largest, "strongest": found.strongest,
            "candidate": found.row(found.candidate), "control": found.row(found.control),
            "all_heads": found.row(ALL_HEADS), "concept_tokens": found.row(CONCEPT_TOKENS),
            "fresh": found.tested_row(found.candidate),
            "fresh_control": found.tested_row(found.control)}
    numbers = {key: value for name, row in rows.items()
               for key, value in effect_numbers(row, name).items()}
    numbers.update(effect_numbers(base, "baseline", change=False))
    numbers.update(effect_numbers(found.tested_baseline, "fresh_baseline", change=False))
    rescuing = found.single_heads_where([rescue.RESCUES])
    deepest = found.classified.sort_values("dvd_score_change", kind="stable").iloc[0]
    numbers.update(effect_numbers(deepest, "deepest"))
    return {
        **numbers, **{key: float(value) for key, value in leak.items()},
        "heads": found.total_heads, "single_heads": len(singles),
        "baseline_images": int(base["n_images"]), "seeds": int(base["n_seeds"]),
        "fresh_images": int(found.tested_baseline["n_images"]),
        "fresh_seeds": int(found.tested_baseline["n_seeds"]),
        "interval_unit": INTERVAL_UNIT,
        "tested_seeds": "fresh seeds" if found.confirmed else "the chapter's seeds",
        "baseline_concept_share": float(base["concept_share"]),
        "top_head": f"{top['layer_label']}:{int(top['head'])}",
        "top_head_value": float(top[rank_by]),
        "pair_share_low": float(attention["pair_share"].min()),
        "pair_share_high": float(attention["pair_share"].max()),
        "concept_mass": float(pooled["concept_mass"]), "word_mass": float(pooled["word_mass"]),
        "other_mass": float(1 - pooled["word_mass"]),
        "rescue_bound": float(POINTS * found.classified["rescue_bound"].iloc[0]),
        "fresh_bound": float(found.verdict.test.bound),
        "rescuing": len(rescuing), "rescuing_heads": head_list(rescuing),
        "object_up": len(found.single_heads_where([rescue.RESCUES, rescue.OBJECT_UP])),
        "short": len(found.single_heads_where([rescue.OBJECT_UP])),
        "deleting": len(found.single_heads_where([rescue.OUTCOMES[0]])),
        "changed": int(singles["dvd_change_excludes_zero"].sum()),
        "raising": len(found.single_heads_moving("raises")),
        "lowering": len(found.single_heads_moving("lowers")),
        "raising_heads": head_list(found.single_heads_moving("raises")),
        "lowering_heads": head_list(found.single_heads_moving("lowers")),
        "outside": int(singles["dvd_outside"].sum()), "level": found.verdict.test.level,
        "chance_flags": (1 - found.verdict.test.confidence) * len(singles),
        "largest_head": head_label(found.largest), "strongest_head": head_label(found.strongest),
        "candidate_head": head_label(found.row(found.candidate)),
        "control_label": str(found.row(found.control)["label"]),
        "control_rescues": int(found.control_rescues),
        "control_concept_kept": int(found.control_concept_kept),
        "control_found": "found" if found.control_rescues else "not found",
        "drops": drops_text(found), "layer_result": layer_text(found),
        "deepest_label": str(deepest["label"]),
        "halve_ranked": NONE if found.heads_to_halve_ranked is None else str(
            found.heads_to_halve_ranked),
        "halve_random": ", ".join(halves) or NONE,
        "sets": len(found.sets), "sets_raising": found.sets_moving("raises"),
        "sets_lowering": found.sets_moving("lowers"),
        "sets_rescuing": found.sets_where([rescue.RESCUES]),
        "sets_object_up": found.sets_where([rescue.RESCUES, rescue.OBJECT_UP]),
        "verdict": found.verdict.word,
    }


def count_disagreements(numbers: Mapping, values: Mapping) -> list[str]:
    """The counts of :data:`HEADLINE_COUNTS` on which the text's ``numbers`` and the headline's
    ``values`` differ (or that either lacks), one line each; empty when they agree."""
    problems = []
    for quoted, saved in HEADLINE_COUNTS.items():
        if quoted not in numbers or saved not in values:
            problems.append(f"{quoted} / {saved}: missing from the "
                            f"{'text' if quoted not in numbers else 'headline'}")
        elif int(numbers[quoted]) != values[saved]:
            problems.append(f"the text quotes {quoted} = {numbers[quoted]}, the headline saves "
                            f"{saved} = {values[saved]}")
    return problems


def landing_summary(numbers: Mapping, model: str, concept: str, verdict_plain: str) -> str:
    """The landing page's paragraph on chapter 4, from :func:`chapter_numbers`."""
    n = numbers
    control = "rescued" if n["control_rescues"] else "did not rescue"
    return (
        f"On `{model}` ({n['heads']} cross-attention heads; intervals over {n['interval_unit']}s) "
        f"the baseline DvD is {n['baseline_dvd']} ({concept} present in "
        f"{n['baseline_concept_present']:.0%} of images, object in "
        f"{n['baseline_object_present']:.0%}). A condition rescues the object when the object "
        f"comes back in more than {n['rescue_bound']:.0f} points more images with the {concept} "
        f"kept. Single heads that rescue it: {n['rescuing']}; that bring it back short of a "
        f"rescue: {n['short']}; that lower DvD: {n['lowering']}; sets of "
        f"heads that lower DvD: {n['sets_lowering']} of {n['sets']}. Every head ablated gives "
        f"DvD {n['all_heads_dvd']} ({concept} present in {n['all_heads_concept_present']:.0%}, "
        f"object in {n['all_heads_object_present']:.0%}). The {concept}'s own tokens removed "
        f"from every head give DvD {n['concept_tokens_dvd']} ({concept} present in "
        f"{n['concept_tokens_concept_present']:.0%}, object in "
        f"{n['concept_tokens_object_present']:.0%}); the end and padding tokens, which draw "
        f"{n['route_attention']:.0%} of the attention, carry the {concept} too (their text "
        f"states change by {n['route_imprint']:.2f} of their size when its tokens are blanked). "
        f"The positive control ({n['control_label']}) {control} the object on "
        f"{n['tested_seeds']}: object present in {n['fresh_control_object_present']:.0%}, "
        f"{concept} in {n['fresh_control_concept_present']:.0%}. {verdict_plain}")


def survey_numbers(survey: pd.DataFrame | None, objects: str) -> dict:
    """The survey's choice (:func:`~.model_choice.model_to_ablate` on ``objects``, or
    :data:`NOT_RUN`), the DvD it asks for, and the object set it was asked on."""
    chosen = NOT_RUN if survey is None else model_to_ablate(survey, objects)
    return {"chosen": chosen, "enough": ENOUGH_DOMINANCE, "objects": objects}
