"""The numbers chapter 3's text quotes, one glue key each, written as the book writes numbers.

The chapter's sentences are in its notebook's Markdown; these functions give the values they
glue in (``ch3_<name>_<role>`` for a condition's numbers, the role being ``main``, ``reference``
or ``balanced``). Intervals are written by :meth:`dvdlib.stats.verdicts.Interval.text`; where a
sentence depends on a comparison, the word it needs is computed here (:func:`relation`,
:func:`sign`). A role this run did not have quotes :data:`NOT_RUN` for each of its numbers.

- :func:`test_quotes`: the tests' statements, glued before any number.
- :func:`condition_quotes`: per condition, its shares, DvD, presence, saturation, correlations,
  the shape of its share over the steps, its largest shares; the relation of the model under
  study to the reference; the prompts that stand out; the verdicts.
- :func:`timing_quotes`: Figures 3.5 and 3.6 (the tau sweep, the per-step AUC, the shares by
  outcome); :func:`comparison_quotes`: the model under study against the reference, and the
  balanced pairs' object.
- :func:`reading_quotes`: the sentences whose words depend on the numbers (whether any image
  can saturate at tau, when the outcomes part, how the two models compare read from either side,
  what the balanced pairs show), written from the numbers.
- :func:`level_quotes`, :func:`layer_quotes`, :func:`concentration_quotes`: Figures 3.2 and 3.3,
  and the token maps' concentration.
"""

from __future__ import annotations

import math

import pandas as pd

from dvdlib.chapters.attention_saturation import timing
from dvdlib.chapters.attention_saturation.summary import top_prompts
from dvdlib.chapters.attention_saturation.verdict import ROLES, ChapterResult, changes_text
from dvdlib.stats.verdicts import Interval, Test

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


def share(value: float) -> str:
    """A share as a whole percentage, as the book writes one: ``62 %``."""
    return f"{value * 100:.0f} %"


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


def test_quotes(tests: dict[str, Test]) -> dict[str, str]:
    """``ch3_test_<key>``: each test's rule in words (:meth:`Test.statement`)."""
    return {f"ch3_test_{key}": test.statement() + "." for key, test in tests.items()}


def step_text(step: int | None) -> str:
    """``step 0``, or ``no step`` when none."""
    return "no step" if step is None else f"step {step}"


def _role_quotes(result: ChapterResult, label: str, role: str) -> dict[str, str]:
    """One condition's numbers, by name."""
    row = result.stats.loc[label]
    shape = timing.step_shape(result.step_means, label)
    concept, obj = (result.saturation.loc[(label, token)] for token in ("concept", "object"))
    rho = result.correlations.loc[label]
    return {
        "label": label, "images": str(int(row["images"])),
        "early": interval(row, "early"), "final": interval(row, "final"),
        "dvd": interval(row, "dvd", 1), "concept_present": percent(row, "concept_present"),
        "object_present": percent(row, "object_present"),
        "saturated_from_start": share(concept["saturated from step 0"]),
        "never_saturated": share(concept["never saturated"]),
        "median_saturation_step": f"{concept['median saturation step']:.1f}",
        "object_saturated_from_start": share(obj["saturated from step 0"]),
        "object_never_saturated": share(obj["never saturated"]),
        "rho": _correlation(rho["rho"], rho["ci_low"], rho["ci_high"]),
        "rho_sign": sign(rho["rho"], rho["ci_low"], rho["ci_high"]),
        "within_rho": _correlation(rho["within_rho"], rho["within_low"], rho["within_high"]),
        "within_rho_sign": sign(rho["within_rho"], rho["within_low"], rho["within_high"]),
        "prompts_with_rho": str(int(rho["n_prompts"])),
        "between": share(result.between[label]),
        "step0": f"{shape['step0']:.2f}", "step1": f"{shape['step1']:.2f}",
        "plateau": f"{shape['after_low']:.2f} and {shape['after_high']:.2f}",
        "largest_final": f"{result.largest[role]['final']:.3f}",
        "largest_held": f"{result.largest[role]['held']:.3f}",
        "seeds": str(int(row["seeds"])),
    }


def condition_quotes(result: ChapterResult) -> dict[str, str]:
    """Every condition's numbers (``ch3_<name>_<role>``), the early share of the model under
    study against the reference's (``ch3_early_relation``), the prompts of the model under study
    with the highest early share and DvD, and the verdicts (``ch3_<key>``, and the bold word
    under the verdict's own key)."""
    main = _role_quotes(result, result.label("main"), "main")
    out = {}
    for role in ROLES:
        label = result.label(role)
        numbers = _role_quotes(result, label, role) if label else dict.fromkeys(main, NOT_RUN)
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


NEAR_UNIFORM = 0.1  # maps whose entropy concentration stays below this are called near uniform


def concentration_quotes(low: float, high: float, steps: int) -> dict[str, str]:
    """The token maps' concentration range, from
    :func:`~dvdlib.chapters.attention_saturation.summary.concentration_range`, and what it means
    for drawing them."""
    if not steps:
        return {"ch3_concentration_range": NOT_RUN, "ch3_map_steps": "0",
                "ch3_concentration_reading": "no maps were kept"}
    reading = (f"every mean stays below {NEAR_UNIFORM:g}, so the maps are near uniform and a "
               "figure of them would show no structure" if high < NEAR_UNIFORM else
               f"some mean reaches {NEAR_UNIFORM:g} or more, so the maps have structure worth "
               "drawing")
    return {"ch3_concentration_range": f"{low:.2f} to {high:.2f}", "ch3_map_steps": str(steps),
            "ch3_concentration_reading": reading}


def timing_quotes(result: ChapterResult) -> dict[str, str]:
    """Figures 3.5 and 3.6: the share saturated at the pre-stated tau, where the rule's word
    changes, the AUC's test settings and first clearing step, the AUC at step 0 and at the
    window's last step, and the shares of the images that lose or keep their object."""
    rules, main = result.rules, result.label("main")
    sweep = result.sweep[(result.sweep["condition"] == main)
                         & (result.sweep["tau"] == rules.threshold)].iloc[0]
    out = {"ch3_saturated_at_tau_main": percent(sweep.rename({"ci_low": "saturated_low",
                                                              "ci_high": "saturated_high"}),
                                                "saturated"),
           "ch3_sweep_changes": changes_text(result.verdict_changes()),
           "ch3_sweep_range": f"{min(result.sweep['tau']):.2f} to {max(result.sweep['tau']):.2f}",
           "ch3_decided_steps": str(rules.decided_steps),
           "ch3_decided_last": str(rules.decided_steps - 1),
           "ch3_auc_bound": f"{rules.auc_bound:.2f}", "ch3_auc_margin": f"{rules.margin:g}",
           "ch3_auc_level": f"{rules.auc_confidence:.2%}".replace("%", " %"),
           "ch3_decided_step": step_text(result.decided_step)}
    auc = result.auc[result.auc["condition"] == main].set_index("step")
    for name, step in (("step0", 0), ("window_end", rules.decided_steps - 1)):
        out[f"ch3_auc_{name}_main"] = (Interval(*auc.loc[step, ["auc", "ci_low", "ci_high"]])
                                       .text(2) if step in auc.index else UNDEFINED)
    by = result.by_outcome[result.by_outcome["condition"] == main]
    last = int(by["step"].max())
    for outcome, name in (("object missing", "missing"), ("object present", "present")):
        part = by[by["outcome"] == outcome].set_index("step")
        for step_name, step in (("step0", 0), ("step1", 1), ("last", last)):
            out[f"ch3_{name}_{step_name}_main"] = (
                Interval(*part.loc[step, ["mean", "ci_low", "ci_high"]]).text(2)
                if step in part.index else NOT_RUN)
    return out


def comparison_quotes(result: ChapterResult) -> dict[str, str]:
    """The model under study minus the reference (early and final share, DvD, object presence,
    each with an interval over seeds, and the word :func:`relation` gives), both median
    saturation steps, and on the balanced pairs how often the object holds the pair's attention
    from the first step and how often it is drawn."""
    out = {}
    differences = result.differences
    for name in ("early", "final", "dvd", "object_present"):
        if differences is None:
            out[f"ch3_diff_{name}"] = out[f"ch3_diff_{name}_word"] = NOT_RUN
            continue
        row = differences.loc[name]
        digits, scale, unit = (1, 1, "") if name == "dvd" else (
            (0, 100, " pp") if name == "object_present" else (2, 1, ""))
        out[f"ch3_diff_{name}"] = Interval(row["difference"], row["low"], row["high"]).text(
            digits, signed=True, scale=scale, unit=unit)
        out[f"ch3_diff_{name}_word"] = ("higher" if row["low"] > 0 else "lower"
                                        if row["high"] < 0 else "not separable")
    held = result.balanced_object
    out["ch3_object_held_balanced"] = NOT_RUN if held is None else Interval(*held["held"]).text(
        0, scale=100, unit=" %")
    out["ch3_object_drawn_balanced"] = NOT_RUN if held is None else Interval(
        *held["present"]).text(0, scale=100, unit=" %")
    return out


def _tau_reach(result: ChapterResult) -> str:
    """Whether any image of the model under study can saturate at the pre-stated tau."""
    rules, main = result.rules, result.label("main")
    largest = result.largest["main"]["final"]
    if largest < rules.threshold:
        return (f"No image of *{main}* ends with a pair share as high as tau = "
                f"{rules.threshold:g} (the largest final share is {largest:.3f}), so at that tau "
                "no image can saturate, early or late")
    return (f"The largest final pair share of an image of *{main}* is {largest:.3f}, at or "
            f"above tau = {rules.threshold:g}")


def _comparison_reading(result: ChapterResult) -> str:
    """The model under study and the reference compared from either side, from the words of
    their paired differences (final share, DvD) and their median saturation steps."""
    main, reference = result.label("main"), result.label("reference")
    if result.differences is None:
        return "No reference model ran."
    words = {name: ("higher" if row["low"] > 0 else "lower" if row["high"] < 0 else
                    "not separable") for name, row in result.differences.iterrows()
             if name in ("final", "dvd")}
    steps = result.differences.loc["median saturation step", ["main", "reference"]]
    earlier = ("earlier" if steps["main"] < steps["reference"] else "later"
               if steps["main"] > steps["reference"] else "at the same median step")
    share, dvd = words["final"], words["dvd"]
    other = {"higher": "lower", "lower": "higher"}
    if share == "not separable":
        return (f"The final pair shares of *{main}* and *{reference}* cannot be told apart, so "
                "between these two runs the share says nothing about dominance.")
    first = (f"Read from *{main}*: the concept holds a {share} final share there than on "
             f"*{reference}*")
    reverse = {"earlier": "later", "later": "earlier"}.get(earlier, earlier)
    second = (f"Read from *{reference}*: the concept holds the {other[share]} share there and "
              f"saturates {reverse} at tau = {result.rules.threshold:g}")
    if dvd == "not separable":
        return (f"{first}, at a DvD that cannot be told apart. {second}, yet its images are "
                "dominated as often: between these two runs the share differs while the dominance "
                "does not.")
    agrees = "as the finding would have it" if dvd == share else "against the finding"
    return (f"{first}, and a {dvd} DvD. {second}, and a {other[dvd]} DvD: between these two "
            f"runs the higher share goes with the {'higher' if dvd == share else 'lower'} DvD, "
            f"{agrees}.")


def _balanced_reading(result: ChapterResult) -> str:
    """What the balanced pairs' object attention and presence say together."""
    held = result.balanced_object
    if held is None:
        return "The balanced pairs did not run."
    attention, drawn = Interval(*held["held"]), Interval(*held["present"])
    if attention.low > drawn.high:
        return ("The object holds the pair's attention in more images than it is drawn in: on "
                "these pairs a concept takes over the picture while the object holds most of the "
                "pair's attention, so the attention share is not the sole cause of dominance.")
    if attention.high < drawn.low:
        return ("The object is drawn in more images than it holds the pair's attention in: on "
                "these pairs the attention share understates the object.")
    return ("The share of images in which the object holds the pair's attention and the share "
            "in which it is drawn cannot be told apart.")


def reading_quotes(result: ChapterResult) -> dict[str, str]:
    """The sentences whose words depend on the numbers (see the module notes)."""
    main, balanced = result.label("main"), result.label("balanced")
    parting = timing.parting_step(result.by_outcome, main)
    balanced_step = (timing.decided_step(result.auc, balanced, result.rules.auc_bound)
                     if balanced else None)
    return {
        "ch3_tau_reach": _tau_reach(result),
        "ch3_parting": ("the intervals of the two groups do not overlap at any step"
                        if parting is None else "the intervals of the two groups first stop "
                        f"overlapping at step {parting}"),
        "ch3_comparison_reading": _comparison_reading(result),
        "ch3_balanced_reading": _balanced_reading(result),
        "ch3_balanced_decided": NOT_RUN if balanced is None else step_text(balanced_step),
    }
