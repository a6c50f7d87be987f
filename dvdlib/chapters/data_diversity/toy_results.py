"""Chapter 2's toy-zoo results from its judged images: every table, verdict and number at once.

:func:`analyse` turns the image table of :func:`dvdlib.chapters.data_diversity.toy_runs.run_study`
into :class:`ToyResults`: the summary per run and arm, the comparisons of every arm with unlimited
K (with the room each leaves), the verdict in every condition, the dose-response over K, the
amplification of the training data's close-up share, and the numbers the chapter quotes and saves.
Every interval resamples the training runs of each arm, then the seeds (``INTERVAL_UNIT``).

- :func:`condition_name`, :func:`condition_key`: a condition as a verdict names it ("guidance
  7.5") and as a headline key ends ("g7.5", "g4_at500").
- :func:`source_text`: which objects the K difference comes from, in words.
- :func:`wrong_carrier_counts`: how many pair images show a wrong carrier, and how many of those
  score DvD 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pandas as pd

from dvdlib.chapters.data_diversity import amplification as amp
from dvdlib.chapters.data_diversity import comparisons, toy_summary, verdict
from dvdlib.chapters.data_diversity.arms import UNLIMITED
from dvdlib.stats.verdicts import Interval, Verdict, room_left

INTERVAL_UNIT = "run and seed"  # what every interval of the toy zoo resamples
K1 = "K = 1"


def condition_name(condition: str) -> str:
    """"guidance 7.5, finished" -> "guidance 7.5"; "guidance 4, 500 steps" -> "guidance 4 after
    500 fine-tuning steps"."""
    guidance, length = condition.split(", ")
    return guidance if length == "finished" else f"{guidance} after {length.split()[0]} " \
                                                 "fine-tuning steps"


def condition_key(condition: str) -> str:
    """"guidance 7.5, finished" -> "g7.5"; "guidance 4, 500 steps" -> "g4_at500"."""
    match = re.fullmatch(r"guidance ([0-9.]+), (finished|([0-9]+) steps)", condition)
    if match is None:
        raise ValueError(f"not a condition label: {condition!r}")
    return f"g{match[1]}" + ("" if match[3] is None else f"_at{match[3]}")


def source_text(seen, never) -> str:
    """Where a difference comes from, in words: ``seen`` and ``never`` are the comparison rows
    (with the room columns) on the objects the concept met in training and on those it never met.
    The set whose difference is the larger in size is named, with both readings; without room on
    either, no set is named."""
    both = (f"{toy_summary.reading(never)} on the objects it never met against "
            f"{toy_summary.reading(seen)} on the objects it met")
    if not (seen["room_met"] and never["room_met"]):
        return "from no measurable place: one set of objects or both leave no room at this setting"
    if abs(never["estimate"]) == abs(seen["estimate"]):
        return f"alike from both sets of objects: {both}"
    where = "the objects it never met" if abs(never["estimate"]) > abs(seen["estimate"]) else \
        "the objects it met in training"
    return f"mostly from {where}: {both}"


def wrong_carrier_counts(images: pd.DataFrame, condition: str,
                         objects: Sequence[str]) -> tuple[int, int, int]:
    """``(pair images, wrong carriers, wrong carriers scoring DvD 100)`` of ``objects`` in
    ``condition``, over every run drawn there."""
    rows = images[(images["condition"] == condition) & (images["arrangement"] == "pair")
                  & images["object"].isin(list(objects))]
    wrong = rows[rows["wrong_carrier"].astype(bool)]
    return len(rows), len(wrong), int((wrong["dvd_score"] >= 100).sum())


@dataclass
class ToyResults:
    """What :func:`analyse` made (tables as saved with the chapter)."""

    summary: pd.DataFrame
    comparisons: pd.DataFrame
    verdicts: dict[str, Verdict]
    shares: pd.DataFrame
    amplification: pd.DataFrame
    dose: pd.DataFrame
    designs: pd.DataFrame
    values: dict = field(default_factory=dict)
    quoted: dict = field(default_factory=dict)


def analyse(images: pd.DataFrame, arms: Mapping[str, Sequence[str]], shares: pd.DataFrame,
            object_sets: Mapping[str, Sequence[str]], default: str, *, concept: str,
            margin: float, positive_control_dvd: float, n_resamples: int = 2000,
            confidence: float = 0.95) -> ToyResults:
    """Every result of the toy zoo from its judged ``images`` (``arms``: label -> runs, least
    diverse first, unlimited last; ``shares``: :func:`amp.training_shares`; ``default``: the
    chapter's own condition)."""
    intervals = dict(n_resamples=n_resamples, confidence=confidence)
    runs = [r for members in arms.values() for r in members]
    groups = {**{r: [r] for r in runs}, **arms}
    summary = toy_summary.summarise(images, groups, object_sets, **intervals)
    compared = comparisons.compare_arms(images, summary, arms, object_sets, margin=margin,
                                        **intervals)
    found = comparisons.condition_verdicts(
        compared, summary, runs,
        lambda c: verdict.toy_test(concept, confidence, "" if c == default else condition_name(c)),
        first=K1, positive_control_dvd=positive_control_dvd)
    amplified = amp.amplification(images, shares, arms, object_sets, **intervals)
    first_run = arms[K1][0]
    seen, never = object_sets["seen in training"], object_sets["never seen"]
    n_seeds = images.loc[images["condition"] == default, "seed"].nunique()
    every = object_sets["all objects"]
    plans = {"every object, every seed": (every, None),
             "the objects it met in training": (seen, None),
             "the objects it never met": (never, None)}
    if n_seeds >= 2:
        plans.update({"every object, first half of the seeds": (every, n_seeds // 2),
                      "every object, second half of the seeds": (every, n_seeds // 2 - n_seeds)})
    designs = toy_summary.dvd_by_design(images, first_run, default, plans, **intervals)
    results = ToyResults(summary, compared, found, shares, amplified,
                         comparisons.dose_table(summary, compared, default, arms),
                         designs.assign(run=first_run))
    _numbers(results, images, arms, default, object_sets, margin)
    return results


def _numbers(results: ToyResults, images: pd.DataFrame, arms: Mapping[str, Sequence[str]],
             default: str, object_sets: Mapping[str, Sequence[str]], margin: float) -> None:
    """Fill ``results.values`` (headline numbers) and ``results.quoted`` (the text's numbers)."""
    compared, summary = results.comparisons, results.summary
    singles = list(dict.fromkeys(r for members in arms.values() for r in members))
    values, quoted = toy_summary.chapter_numbers(summary, compared[compared["first"] == K1],
                                                 default, K1, UNLIMITED, singles)
    levels = summary[(summary["condition"] == default) & (summary["objects"] == "all objects")
                     & (summary["measure"] == "dvd")].set_index("group")["estimate"]
    monotone, order = comparisons.order_text({a: float(levels[a]) for a in arms if a in levels})
    room = room_left(values["dvd_unlimited"], "above")
    values.update(unlimited_runs=len(arms[UNLIMITED]), ceiling_margin=float(margin),
                  room_left=room, dvd_monotone_in_k=float(monotone),
                  **{f"runs_{a.replace('K = ', 'k').replace(' ', '_')}": len(r)
                     for a, r in arms.items()})
    quoted.update(ch2_margin=float(margin), ch2_room_left=room,
                  ch2_k1_headroom=100 - values["dvd_k1"], ch2_order=order,
                  ch2_monotone=("never rises from one K to the next" if monotone else
                                "is not monotone in K"),
                  ch2_unlimited_runs=len(arms[UNLIMITED]), ch2_k1_runs=len(arms[K1]),
                  ch2_runs=", ".join(f"{a}: {len(r)}" for a, r in arms.items()),
                  ch2_single_arms=", ".join(a for a, r in arms.items() if len(r) == 1) or "none",
                  ch2_first_run=arms[K1][0], ch2_interval_unit=INTERVAL_UNIT)
    gap = compared[(compared["first"] == K1) & (compared["condition"] == default)]
    gap = gap.set_index(["objects", "measure"])
    for measure, key in (("dvd", "ch2_source"), (comparisons.VERDICT_MEASURE,
                                                  "ch2_source_no_wrong")):
        quoted[key] = source_text(gap.loc[("seen in training", measure)],
                                  gap.loc[("never seen", measure)])
    for condition in (c for c in results.amplification["condition"].unique()):
        n, wrong, full = wrong_carrier_counts(images, condition, object_sets["never seen"])
        key = condition_key(condition)
        quoted.update({f"ch2_never_images_{key}": n, f"ch2_never_wrong_{key}": wrong,
                       f"ch2_never_wrong_full_{key}": full})
    _amplification_numbers(results.amplification, results.shares, values, quoted)
    for condition, found in results.verdicts.items():
        quoted[f"ch2_verdict_{condition_key(condition)}"] = found.word
    ceiling = [condition_name(c) for c, found in results.verdicts.items() if found.unmet
               and not compared.loc[(compared["condition"] == c) & (compared["first"] == K1)
                                    & (compared["measure"] == comparisons.VERDICT_MEASURE)
                                    & (compared["objects"] == "all objects"), "room_met"].all()]
    quoted["ch2_ceiling_conditions"] = ", ".join(ceiling) or "none"
    first = results.designs.iloc[0]
    alone = values["object_alone_min"]
    quoted.update(ch2_dvd_first_run=first["DvD"], ch2_first_run_width=float(first["width"]),
                  ch2_alone_heading=(
        "Every object is drawn when prompted alone" if alone >= 0.9 else
        "Not every object is drawn reliably even alone"))
    results.values, results.quoted = values, quoted


def _amplification_numbers(table: pd.DataFrame, shares: pd.DataFrame, values: dict,
                           quoted: dict) -> None:
    training = shares["share"].mean()
    values.update(training_share=float(training), training_share_min=float(shares["share"].min()),
                  training_share_max=float(shares["share"].max()))
    quoted.update(ch2_training_share=f"{training * 100:.0f} %",
                  ch2_training_share_range=f"{shares['share'].min() * 100:.0f} % to "
                                           f"{shares['share'].max() * 100:.0f} %",
                  ch2_training_pictures=int(shares["n_pictures"].sum()),
                  ch2_rule_agreement=float((shares["rule_agreement"] * shares["n_checked"]).sum()
                                           / shares["n_checked"].sum()))
    for row in table.itertuples():
        if row.objects == "all objects" and row.arm in (K1, UNLIMITED):
            key = f"amplification_g{row.guidance:g}" + ("" if row.arm == K1 else "_unlimited")
            values.update({key: row.amplification, f"{key}_low": row.amplification_low,
                           f"{key}_high": row.amplification_high})
        if row.arm in (K1, UNLIMITED):
            end = {"all objects": "", "seen in training": "_seen", "never seen": "_never"}[
                row.objects]
            arm = "k1" if row.arm == K1 else "unlimited"
            key = f"g{row.guidance:g}_{arm}{end}"
            quoted[f"ch2_generated_{key}"] = Interval(
                row.generated, row.generated_low, row.generated_high).text(0, scale=100, unit=" %")
            quoted[f"ch2_amplification_{key}"] = Interval(
                row.amplification, row.amplification_low, row.amplification_high).text(
                0, True, 100, " pp")


def summary_text(quoted: Mapping[str, object], found: Sequence[Verdict]) -> str:
    """The chapter's summary for the landing page: the arms and their DvD, the difference the
    verdict reads, the amplification, and every verdict's sentence with its reason."""
    parts = [f"In the toy zoo ({quoted['ch2_runs']} training runs; every interval resamples runs, "
             f"then seeds), the sunset's DvD at the default guidance was {quoted['ch2_dvd_k1']} "
             f"for K = 1 and {quoted['ch2_dvd_unlimited']} for unlimited diversity; with the "
             "images that show a wrong carrier left out, K = 1 minus unlimited is "
             f"{quoted['ch2_no_wrong_carrier_difference']}, {quoted['ch2_source']}."]
    if "ch2_generated_g1_k1" in quoted and "ch2_generated_g7.5_k1" in quoted:
        parts.append(f"The sunset's training pair pictures lack their carrier in "
                     f"{quoted['ch2_training_share']}; the K = 1 runs' generated pair images "
                     f"lack it in {quoted['ch2_generated_g1_k1']} at guidance 1 and "
                     f"{quoted['ch2_generated_g7.5_k1']} at guidance 7.5.")
    parts += [one.plain() for one in found]
    return " ".join(parts)
