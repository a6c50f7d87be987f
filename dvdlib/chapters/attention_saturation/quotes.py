"""The numbers chapter 3's text quotes, one glue key each, written as the book writes numbers.

The chapter's sentences are in its notebook's Markdown; these functions give the values they
glue in (``ch3_<name>_<role>`` for a condition's numbers, the role being ``main``, ``reference``
or ``balanced``). Intervals are written by :meth:`dvdlib.stats.verdicts.Interval.text`; where a
sentence depends on a comparison, the word it needs is computed here (:func:`relation`,
:func:`sign`). A role this run did not have quotes :data:`NOT_RUN` for each of its numbers.

- :func:`condition_quotes`: per condition, its shares, DvD, presence, saturation, correlations;
  the relation of the model under study to the reference; the prompts that stand out; the
  verdicts.
- :func:`level_quotes`, :func:`layer_quotes`, :func:`concentration_quotes`: Figures 3.2, 3.3, 3.5.
"""

from __future__ import annotations

import math

import pandas as pd

from dvdlib.chapters.attention_saturation.summary import top_prompts
from dvdlib.chapters.attention_saturation.verdict import ROLES, ChapterResult
from dvdlib.stats.verdicts import Interval

NOT_RUN = "not run"
UNDEFINED = "undefined"  # a rank correlation of a constant measure
CONSTANT = "DvD or the early share is constant"  # why it is undefined


def interval(row, name: str, digits: int = 2) -> str:
    """``0.62 [0.58, 0.66]`` from ``row``'s ``name``, ``name_low`` and ``name_high``."""
    return Interval(row[name], row[f"{name}_low"], row[f"{name}_high"]).text(digits)


def percent(row, name: str) -> str:
    """A share with its interval as percentages: ``62 % [58 %, 66 %]``."""
    share = Interval(row[name], row[f"{name}_low"], row[f"{name}_high"])
    return share.text(0, scale=100, unit=" %")


def relation(first: Interval, second: Interval) -> str:
    """``higher`` or ``lower`` when the two intervals do not overlap, else ``not separable``."""
    if first.low > second.high:
        return "higher"
    if first.high < second.low:
        return "lower"
    return "not separable"


def sign(estimate: float, low: float, high: float) -> str:
    """What a correlation's interval says: ``positive``, ``negative`` or ``not distinguishable
    from zero``; why there is nothing to say when the correlation or its interval is undefined."""
    if math.isnan(estimate):
        return CONSTANT
    if math.isnan(low) or math.isnan(high):
        return "too few prompts for an interval"
    return "positive" if low > 0 else "negative" if high < 0 else "not distinguishable from zero"


def _correlation(estimate: float, low: float, high: float) -> str:
    return UNDEFINED if math.isnan(estimate) else Interval(estimate, low, high).text(2)


def _role_quotes(result: ChapterResult, label: str) -> dict[str, str]:
    """One condition's numbers, by name."""
    row = result.stats.loc[label]
    concept, obj = (result.saturation.loc[(label, token)] for token in ("concept", "object"))
    rho = result.correlations.loc[label]
    return {
        "label": label, "images": str(int(row["images"])),
        "early": interval(row, "early"), "final": interval(row, "final"),
        "dvd": interval(row, "dvd", 1), "concept_present": percent(row, "concept_present"),
        "object_present": percent(row, "object_present"),
        "saturated_from_start": f"{concept['saturated from step 0']:.0%}",
        "never_saturated": f"{concept['never saturated']:.0%}",
        "median_saturation_step": f"{concept['median saturation step']:.1f}",
        "object_saturated_from_start": f"{obj['saturated from step 0']:.0%}",
        "object_never_saturated": f"{obj['never saturated']:.0%}",
        "rho": _correlation(rho["rho"], rho["ci_low"], rho["ci_high"]),
        "rho_sign": sign(rho["rho"], rho["ci_low"], rho["ci_high"]),
        "within_rho": _correlation(rho["within_rho"], rho["within_low"], rho["within_high"]),
        "within_rho_sign": sign(rho["within_rho"], rho["within_low"], rho["within_high"]),
        "prompts_with_rho": str(int(rho["n_prompts"])),
        "between": f"{result.between[label]:.0%}",
    }


def condition_quotes(result: ChapterResult) -> dict[str, str]:
    """Every condition's numbers (``ch3_<name>_<role>``), the early share of the model under
    study against the reference's (``ch3_early_relation``), the prompts of the model under study
    with the highest early share and DvD, and the verdicts (``ch3_<key>``, and the bold word
    under the verdict's own key)."""
    main = _role_quotes(result, result.label("main"))
    out = {}
    for role in ROLES:
        label = result.label(role)
        numbers = _role_quotes(result, label) if label else dict.fromkeys(main, NOT_RUN)
        out.update({f"ch3_{name}_{role}": value for name, value in numbers.items()})
    reference = result.label("reference")
    out["ch3_early_relation"] = NOT_RUN if reference is None else relation(
        *(Interval(*result.stats.loc[label, ["early", "early_low", "early_high"]])
          for label in (result.label("main"), reference)))
    top = top_prompts(result.per_prompt, result.label("main"))
    out.update({"ch3_top_early_prompt": top["early_share"], "ch3_top_dvd_prompt": top["dvd"]})
    for key, verdict in result.verdicts.items():
        out[f"ch3_{key}"] = verdict.markdown()
        out[key] = f"**{verdict.word}**"
    return out


def level_quotes(extremes: dict) -> dict[str, str]:
    """Figure 3.2's numbers, from
    :func:`~dvdlib.chapters.attention_saturation.summary.level_extremes`."""
    out = {}
    for end in ("lowest", "highest"):
        level, share = extremes[end]
        out.update({f"ch3_{end}_level": str(level), f"ch3_{end}_level_share": f"{share:.2f}"})
    gap = extremes["largest_gap"]
    out.update(dict(zip(("ch3_gap_level", "ch3_gap_main", "ch3_gap_reference"),
                        (NOT_RUN,) * 3 if gap is None else
                        (str(gap[0]), f"{gap[1]:.2f}", f"{gap[2]:.2f}"))))
    return out


def layer_quotes(counts: dict) -> dict[str, str]:
    """Figure 3.3's numbers, from
    :func:`~dvdlib.chapters.attention_saturation.summary.early_layer_counts`."""
    out = {"ch3_heatmap_layers": str(counts["layers"]),
           "ch3_layers_above_half": str(counts["above_half"]),
           "ch3_layer_range": "{:.2f} to {:.2f}".format(*counts["range"])}
    if counts["difference_range"] is None:
        out.update({"ch3_layers_positive": NOT_RUN, "ch3_difference_range": NOT_RUN})
    else:
        low, high = counts["difference_range"]
        out.update({"ch3_layers_positive": str(counts["positive_difference"]),
                    "ch3_difference_range": f"{low:+.2f} to {high:+.2f}"})
    return out


def concentration_quotes(table: pd.DataFrame, result: ChapterResult) -> dict[str, str]:
    """Figure 3.5's numbers, from
    :func:`~dvdlib.chapters.attention_saturation.summary.last_step_concentration`: the step, and
    each condition's concentration of the concept's and the object's maps."""
    out = {"ch3_map_step": str(int(table["step"].iloc[0])) if len(table) else NOT_RUN}
    for role in ROLES:
        label = result.label(role)
        for group in ("concept", "object"):
            out[f"ch3_{group}_concentration_{role}"] = (
                f"{table.loc[label, group]:.2f}" if label in table.index else NOT_RUN)
    return out
