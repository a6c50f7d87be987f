"""What chapter 3's run says about finding 2: three stated tests, decided apart, and the headline.

- :class:`Criteria`, :func:`criteria`: the tests' settings, checked before any model runs.
- :func:`chapter_tests`: the three tests, stated before any number
  (:meth:`dvdlib.stats.verdicts.Test.statement`):
  **early bias**, the interval of the dominant concept's mean pair share over the first steps
  against 0.5; **saturation**, the interval of the share of images saturated within the first
  steps at tau against ``majority``; **decided early**, whether the pair share at one of the first
  steps tells which images end up without their object: the per-step AUC's interval against
  0.5 + ``margin`` (the intervals of the window's steps at a Bonferroni level, since any one of
  them may decide).
- :func:`finding_verdicts`: their verdicts (:func:`dvdlib.stats.verdicts.decide`). None is
  testable unless the dominated condition shows dominance to explain (its DvD interval above
  ``min_dvd``); "decided early" also needs images of both outcomes.
- :class:`ChapterResult`, :func:`chapter_result`: every table of the chapter and its verdicts,
  and the numbers it saves as headlines (:meth:`ChapterResult.headline`).

Every interval resamples whole seeds (:data:`~dvdlib.chapters.attention_saturation.timing.UNIT`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.attention_saturation import timing
from dvdlib.chapters.attention_saturation.run import ChapterCondition, concept_name
from dvdlib.chapters.attention_saturation.summary import (TOKENS, between_prompt_share,
                                                          condition_differences, condition_stats,
                                                          correlation_table, early_steps_for,
                                                          object_held_from_start, prompt_summary,
                                                          saturation_overview)
from dvdlib.stats import verdicts
from dvdlib.stats.bootstrap import cluster_mean_interval, step_intervals

ROLES = ("main", "reference", "balanced")
KEYS = ("early_bias_verdict", "saturation_verdict", "decided_early_verdict")
MIN_PER_OUTCOME = 5  # "decided early" needs this many images with the object missing, and present


@dataclass(frozen=True)
class Criteria:
    """The settings of the chapter's tests, in steps (see :func:`criteria`)."""

    early_steps: int  # the early window of the early-bias test
    window: int  # saturated "early": within these first steps
    threshold: float  # tau
    majority: float  # the share of images that must saturate early
    decided_steps: int  # "decided early": within these first steps (steps 0 .. decided_steps - 1)
    margin: float  # "decided early": the AUC interval must lie above 0.5 + margin
    min_dvd: float
    confidence: float
    n_resamples: int

    @property
    def auc_bound(self) -> float:
        return 0.5 + self.margin

    @property
    def auc_confidence(self) -> float:
        """The level of each step's AUC interval: Bonferroni over the window's steps."""
        return 1 - (1 - self.confidence) / self.decided_steps


def criteria(steps: int, *, early_fraction: float, saturation_by: float, decided_by: float,
             threshold: float, majority: float, auc_margin: float, min_dvd: float,
             confidence: float, n_resamples: int) -> Criteria:
    """The tests' settings from the chapter's parameters (fractions of ``steps``); a ValueError
    names a criterion outside its range."""
    verdicts.check_fraction("early_fraction", early_fraction, include_high=True)
    verdicts.check_fraction("saturation_by", saturation_by, include_high=True)
    verdicts.check_fraction("decided_by", decided_by, include_high=True)
    verdicts.check_threshold(threshold, "saturation_threshold (tau)")
    verdicts.check_fraction("majority", majority)
    verdicts.check_fraction("auc_margin", auc_margin, include_low=True, high=0.5)
    verdicts.check_fraction("min_dvd", min_dvd, high=100.0, include_low=True)
    verdicts.check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return Criteria(early_steps_for(steps, early_fraction), early_steps_for(steps, saturation_by),
                    float(threshold), float(majority), early_steps_for(steps, decided_by),
                    float(auc_margin), float(min_dvd), float(confidence), n_resamples)


def first_steps(n: int) -> str:
    """``the first step`` or ``the first 4 steps``."""
    return "the first step" if n == 1 else f"the first {n} steps"


def chapter_tests(rules: Criteria, concept: str, condition: str) -> dict[str, verdicts.Test]:
    """The chapter's three tests of finding 2 on ``condition`` (see the module notes)."""
    last = rules.decided_steps - 1
    steps = "step 0" if last == 0 else f"one of steps 0 to {last}"
    return {
        "early_bias_verdict": verdicts.Test(
            "finding 2 (early bias)", f"{concept} draws more than half of the pair's attention in "
            f"{first_steps(rules.early_steps)}", f"the mean early pair share on {condition}",
            "above", 0.5, rules.confidence, digits=2),
        "saturation_verdict": verdicts.Test(
            "finding 2 (saturation)", f"{concept}'s pair share saturates at tau = "
            f"{rules.threshold:g} within {first_steps(rules.window)} in most images",
            f"the share of images of {condition} saturated within {first_steps(rules.window)}",
            "above", rules.majority, rules.confidence, digits=2),
        "decided_early_verdict": verdicts.Test(
            "finding 2 (decided early)", f"{concept}'s pair share at {steps} already tells which "
            "images will lose their object", f"the AUC of the pair share for a missing object on "
            f"{condition} at {steps}" + ("" if last == 0 else f" (the first whose interval lies "
                                         f"above {rules.auc_bound:.2f}, else the one reaching "
                                         "highest)"), "above", rules.auc_bound,
            rules.auc_confidence, digits=2),
    }


def finding_verdicts(summary: pd.DataFrame, auc: pd.DataFrame, rules: Criteria, condition: str,
                     concept: str) -> dict[str, verdicts.Verdict]:
    """The verdicts of :func:`chapter_tests` on ``condition``'s images of an
    :func:`~dvdlib.chapters.attention_saturation.summary.image_summary` table (with ``seed``) and
    its :func:`~dvdlib.chapters.attention_saturation.timing.auc_table` at
    :attr:`Criteria.auc_confidence`."""
    part = summary[summary["condition"] == condition]
    if part.empty:
        raise ValueError(f"no images of condition {condition!r}; conditions: "
                         f"{', '.join(map(str, summary['condition'].unique()))}")
    tests = chapter_tests(rules, concept, condition)
    options = dict(n_resamples=rules.n_resamples, confidence=rules.confidence)
    seeds = part[timing.UNIT]
    dvd = cluster_mean_interval(part["dvd_score"], seeds, **options)
    dominance = verdicts.Requirement(
        f"dominance to explain: the DvD interval of {condition} above {rules.min_dvd:g}",
        dvd[1] > rules.min_dvd, f"its DvD is {verdicts.Interval.of(dvd).text()}")
    within = (part["saturation_step"] < rules.window).astype(float)
    found = {
        "early_bias_verdict": verdicts.decide(
            tests["early_bias_verdict"], cluster_mean_interval(part["early_share"], seeds,
                                                               **options), [dominance]),
        "saturation_verdict": verdicts.decide(
            tests["saturation_verdict"], cluster_mean_interval(within, seeds, **options),
            [dominance])}
    missing = int((~part["object_present"].astype(bool)).sum())
    outcomes = verdicts.Requirement(
        f"images of both outcomes: at least {MIN_PER_OUTCOME} with the object missing and "
        f"{MIN_PER_OUTCOME} with it drawn", min(missing, len(part) - missing) >= MIN_PER_OUTCOME,
        f"{missing} of {len(part)} images lack the object")
    row = timing.decisive_row(auc, condition, rules.auc_bound, rules.decided_steps)
    test = tests["decided_early_verdict"]
    if row is None:
        interval = (np.nan, np.nan, np.nan)
    else:
        test = dataclasses.replace(test, measure=f"the AUC of the pair share at step "
                                   f"{int(row['step'])} for a missing object on {condition}")
        interval = (row["auc"], row["ci_low"], row["ci_high"])
    found["decided_early_verdict"] = verdicts.decide(test, interval, [dominance, outcomes])
    return found


@dataclass
class ChapterResult:
    """The chapter's tables and verdicts, and the settings they were computed with."""

    conditions: list[ChapterCondition]
    concept: str  # as the verdicts name it: "the sunset"
    steps: int
    rules: Criteria
    stats: pd.DataFrame  # condition_stats
    saturation: pd.DataFrame  # saturation_overview
    correlations: pd.DataFrame  # correlation_table, indexed by images
    between: pd.Series  # between_prompt_share of the early share
    per_prompt: pd.DataFrame  # prompt_summary
    step_means: pd.DataFrame  # step_intervals of the pair share per condition
    auc: pd.DataFrame  # timing.auc_table at rules.auc_confidence
    by_outcome: pd.DataFrame  # timing.outcome_shares
    sweep: pd.DataFrame  # timing.tau_sweep
    differences: pd.DataFrame | None  # condition_differences, main minus reference
    balanced_object: dict | None  # object_held_from_start on the balanced pairs
    largest: dict  # per role: the largest final share and the largest held share
    verdicts: dict

    def label(self, role: str) -> str | None:
        """The label of the condition that plays ``role`` (one of :data:`ROLES`); None if none."""
        return next((c.label for c in self.conditions if c.role == role), None)

    @property
    def decided_step(self) -> int | None:
        """The first step whose AUC interval (on the model under study) lies above the bound."""
        return timing.decided_step(self.auc, self.label("main"), self.rules.auc_bound)

    def verdict_changes(self) -> pd.DataFrame:
        """Where the saturation rule's word changes along the tau sweep (model under study)."""
        return timing.verdict_changes(self.sweep, self.label("main"), self.rules.majority)

    def headline(self) -> tuple[dict, dict]:
        """``(values, texts)`` for :func:`dvdlib.book.headlines.save`; undefined numbers left out.
        The ``summary`` text is the verdicts' sentences, which state their intervals; the tests'
        settings are saved too, so that the verdicts can be decided again from the saved tables."""
        rules = self.rules
        values = {"steps": self.steps, "early_steps": rules.early_steps,
                  "saturation_window": rules.window, "saturation_threshold": rules.threshold,
                  "majority": rules.majority, "decided_steps": rules.decided_steps,
                  "auc_margin": rules.margin, "min_dvd": rules.min_dvd,
                  "confidence": rules.confidence, "n_resamples": rules.n_resamples,
                  "images": int(self.stats["images"].sum()),
                  "seeds": int(self.stats["seeds"].max())}
        texts = {"interval_unit": timing.UNIT, "concept": self.concept}
        names = {"early": "early_share_{}", "final": "final_share_{}", "dvd": "dvd_{}",
                 "concept_present": "concept_present_{}", "object_present": "object_present_{}"}
        for role in ROLES:
            label = self.label(role)
            if label is None:
                continue
            texts[f"condition_{role}"] = label
            row = self.stats.loc[label]
            for measure, name in names.items():
                for suffix in ("", "_low", "_high"):
                    values[name.format(role) + suffix] = float(row[measure + suffix])
            for token, prefix in TOKENS.items():
                saturation = self.saturation.loc[(label, token)]
                values[f"{prefix}median_saturation_step_{role}"] = saturation[
                    "median saturation step"]
                values[f"{prefix}saturated_from_start_{role}"] = saturation["saturated from step 0"]
                values[f"{prefix}never_saturated_{role}"] = saturation["never saturated"]
            values[f"early_share_between_prompts_{role}"] = self.between[label]
            rho = self.correlations.loc[label]
            for name, column in (("rho", "rho"), ("rho_low", "ci_low"), ("rho_high", "ci_high"),
                                 ("within_rho", "within_rho"), ("within_rho_low", "within_low"),
                                 ("within_rho_high", "within_high")):
                values[f"{name}_{role}"] = float(rho[column])
            values[f"largest_final_share_{role}"] = self.largest[role]["final"]
            values[f"largest_held_share_{role}"] = self.largest[role]["held"]
        step = self.decided_step
        (values if step is not None else texts)["decided_step"] = step if step is not None \
            else "none"
        main_auc = self.auc[self.auc["condition"] == self.label("main")].set_index("step")
        if 0 in main_auc.index:
            for suffix, column in (("", "auc"), ("_low", "ci_low"), ("_high", "ci_high")):
                values[f"auc_step0_main{suffix}"] = float(main_auc.loc[0, column])
        if self.differences is not None:
            for measure, row in self.differences.iterrows():
                name = measure.replace(" ", "_") + "_difference"
                values[name] = row["difference"]
                values[f"{name}_low"], values[f"{name}_high"] = row["low"], row["high"]
        if self.balanced_object is not None:
            for name in ("held", "present"):
                for suffix, value in zip(("", "_low", "_high"), self.balanced_object[name]):
                    values[f"object_{name}_balanced{suffix}"] = value
        texts["saturation_verdict_changes"] = changes_text(self.verdict_changes())
        texts["summary"] = " ".join(v.plain() for v in self.verdicts.values())
        for key, verdict in self.verdicts.items():
            verdict_values, verdict_texts = verdict.headline(key)
            values.update(verdict_values)
            texts.update(verdict_texts)
        values = {k: float(v) for k, v in values.items() if np.isfinite(v)}
        return values, texts


def changes_text(changes: pd.DataFrame) -> str:
    """Where the saturation rule's word changes along the tau sweep, in words."""
    if changes.empty:
        return "the same word at every tau of the sweep"
    return "; ".join(f"{r.before} up to tau = {r.tau_before:.2f}, {r.after} from {r.tau_after:.2f}"
                     for r in changes.itertuples())


def largest_shares(summary: pd.DataFrame, label: str) -> dict:
    """The largest final pair share and the largest held share of ``label``'s images."""
    part = summary[summary["condition"] == label]
    return {"final": float(part["final_share"].max()), "held": float(part["held_share"].max())}


def chapter_result(summary: pd.DataFrame, shares: pd.DataFrame,
                   conditions: Sequence[ChapterCondition], rules: Criteria, steps: int,
                   taus: Sequence[float] = timing.TAUS) -> ChapterResult:
    """Every table and verdict of the chapter from its
    :func:`~dvdlib.chapters.attention_saturation.summary.image_summary` (with ``held_share`` at
    the saturation window) and its per-step ``shares``."""
    labels = {c.role: c.label for c in conditions}
    main, reference, balanced = (labels.get(role) for role in ROLES)
    concept = concept_name(conditions)
    options = dict(n_resamples=rules.n_resamples, confidence=rules.confidence)
    outcomes = timing.outcome_table(shares, summary)
    auc = timing.auc_table(outcomes, confidence=rules.auc_confidence,
                           n_resamples=rules.n_resamples)
    step_means = step_intervals(outcomes, "pair_share", ("condition",), unit=timing.UNIT,
                                **options)
    sweep = timing.tau_sweep(summary, sorted({*taus, rules.threshold}), **options)
    return ChapterResult(
        list(conditions), concept, steps, rules, condition_stats(summary, **options),
        saturation_overview(summary),
        correlation_table(summary, pooled=[main, reference] if reference else [],
                          n_resamples=rules.n_resamples).set_index("images"),
        between_prompt_share(summary, "early_share"), prompt_summary(summary), step_means, auc,
        timing.outcome_shares(outcomes, **options), sweep,
        condition_differences(summary, main, reference, **options) if reference else None,
        object_held_from_start(summary, balanced, **options) if balanced else None,
        {role: largest_shares(summary, label) for role, label in labels.items()},
        finding_verdicts(summary, auc, rules, main, concept))
