"""What chapter 3's run says about finding 2: two stated tests, decided apart, and the headline.

- :func:`check_criteria`: the tests' criteria in range, before any model runs.
- :func:`finding_verdicts`: the verdicts of the two tests (:func:`dvdlib.stats.verdicts.decide`):
  **early bias**, the interval of the dominant concept's mean pair share over the first steps
  against 0.5; **saturation**, the interval of the share of images saturated within the first
  steps against ``majority``. Neither is testable unless the dominated condition shows dominance
  to explain (its DvD interval above ``min_dvd``).
- :class:`ChapterResult`, :func:`chapter_result`: every table of the chapter and its verdicts,
  and the numbers it saves as headlines (:meth:`ChapterResult.headline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.attention_saturation.run import ChapterCondition, concept_name
from dvdlib.chapters.attention_saturation.summary import (TOKENS, between_prompt_share,
                                                          condition_stats, correlation_table,
                                                          early_steps_for, prompt_summary,
                                                          saturation_overview)
from dvdlib.stats import verdicts
from dvdlib.stats.bootstrap import mean_interval

ROLES = ("main", "reference", "balanced")


def check_criteria(early_fraction: float, threshold: float, saturation_by: float, majority: float,
                   min_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_fraction("early_fraction", early_fraction, include_high=True)
    verdicts.check_threshold(threshold, "saturation_threshold (tau)")
    verdicts.check_fraction("saturation_by", saturation_by, include_high=True)
    verdicts.check_fraction("majority", majority)
    verdicts.check_fraction("min_dvd", min_dvd, high=100.0, include_low=True)
    verdicts.check_confidence(confidence)


def finding_verdicts(summary: pd.DataFrame, condition: str, concept_name: str, *, early_steps: int,
                     saturation_window: int, threshold: float, majority: float = 0.5,
                     min_dvd: float = 0.0, confidence: float = 0.95,
                     n_resamples: int = 2000) -> dict[str, verdicts.Verdict]:
    """``early_bias_verdict`` and ``saturation_verdict`` on ``condition``'s images of an
    :func:`~dvdlib.chapters.attention_saturation.summary.image_summary` table (see the module
    notes); intervals resample images."""
    check_criteria(0.5, threshold, 0.5, majority, min_dvd, confidence)
    part = summary[summary["condition"] == condition]
    if part.empty:
        raise ValueError(f"no images of condition {condition!r}; conditions: "
                         f"{', '.join(map(str, summary['condition'].unique()))}")
    options = dict(n_resamples=n_resamples, confidence=confidence)
    dvd = mean_interval(part["dvd_score"], **options)
    dominance = verdicts.Requirement(
        f"dominance to explain: the DvD interval of {condition} above {min_dvd:g}", dvd[1] > min_dvd,
        f"its DvD is {verdicts.Interval.of(dvd).text()}")
    early = verdicts.Test("finding 2 (early bias)",
                          f"{concept_name} draws more than half of the pair's attention in the first "
                          f"{early_steps} steps", f"the mean early pair share on {condition}",
                          "above", 0.5, confidence, digits=2)
    saturated = verdicts.Test("finding 2 (saturation)",
                              f"{concept_name}'s pair share saturates at tau = {threshold:g} within "
                              f"the first {saturation_window} steps in most images",
                              f"the share of images of {condition} saturated within the first "
                              f"{saturation_window} steps", "above", majority, confidence, digits=2)
    within = (part["saturation_step"] < saturation_window).astype(float)
    return {"early_bias_verdict": verdicts.decide(early, mean_interval(part["early_share"], **options),
                                                  [dominance]),
            "saturation_verdict": verdicts.decide(saturated, mean_interval(within, **options),
                                                  [dominance])}


@dataclass
class ChapterResult:
    """The chapter's tables and verdicts, and the settings they were computed with."""

    conditions: list[ChapterCondition]
    concept: str  # as the verdicts name it: "the sunset"
    steps: int
    early_steps: int
    saturation_window: int
    threshold: float
    stats: pd.DataFrame  # condition_stats
    saturation: pd.DataFrame  # saturation_overview
    correlations: pd.DataFrame  # correlation_table, indexed by images
    between: pd.Series  # between_prompt_share of the early share
    per_prompt: pd.DataFrame  # prompt_summary
    verdicts: dict

    def label(self, role: str) -> str | None:
        """The label of the condition that plays ``role`` (one of :data:`ROLES`); None if none."""
        return next((c.label for c in self.conditions if c.role == role), None)

    def headline(self) -> tuple[dict, dict]:
        """``(values, texts)`` for :func:`dvdlib.book.headlines.save`; undefined correlations left
        out. The ``summary`` text is the verdicts' sentences, which state their intervals."""
        values = {"steps": self.steps, "early_steps": self.early_steps,
                  "saturation_threshold": self.threshold, "images": int(self.stats["images"].sum())}
        names = {"early": "early_share_{}", "final": "final_share_{}", "dvd": "dvd_{}",
                 "concept_present": "concept_present_{}", "object_present": "object_present_{}"}
        for role in ROLES:
            label = self.label(role)
            if label is None:
                continue
            row = self.stats.loc[label]
            for measure, name in names.items():
                for suffix in ("", "_low", "_high"):
                    values[name.format(role) + suffix] = float(row[measure + suffix])
            for token, prefix in TOKENS.items():
                saturation = self.saturation.loc[(label, token)]
                values[f"{prefix}median_saturation_step_{role}"] = saturation["median saturation step"]
                values[f"{prefix}saturated_from_start_{role}"] = saturation["saturated from step 0"]
                values[f"{prefix}never_saturated_{role}"] = saturation["never saturated"]
            values[f"early_share_between_prompts_{role}"] = self.between[label]
            rho = self.correlations.loc[label]
            for name, column in (("rho", "rho"), ("rho_low", "ci_low"), ("rho_high", "ci_high"),
                                 ("within_rho", "within_rho"), ("within_rho_low", "within_low"),
                                 ("within_rho_high", "within_high")):
                values[f"{name}_{role}"] = float(rho[column])
        texts = {"summary": " ".join(v.plain() for v in self.verdicts.values())}
        for key, verdict in self.verdicts.items():
            verdict_values, verdict_texts = verdict.headline(key)
            values.update(verdict_values)
            texts.update(verdict_texts)
        values = {k: float(v) for k, v in values.items() if np.isfinite(v)}
        return values, texts


def chapter_result(summary: pd.DataFrame, conditions: Sequence[ChapterCondition], *, steps: int,
                   early_fraction: float, threshold: float, saturation_by: float, majority: float,
                   min_dvd: float, confidence: float, n_resamples: int) -> ChapterResult:
    """Every table and verdict of the chapter from its
    :func:`~dvdlib.chapters.attention_saturation.summary.image_summary`."""
    early_steps, window = early_steps_for(steps, early_fraction), early_steps_for(steps, saturation_by)
    main, reference = conditions[0].label, next(
        (c.label for c in conditions if c.role == "reference"), None)
    concept = concept_name(conditions)
    found = finding_verdicts(summary, main, concept, early_steps=early_steps,
                             saturation_window=window, threshold=threshold, majority=majority,
                             min_dvd=min_dvd, confidence=confidence, n_resamples=n_resamples)
    return ChapterResult(
        list(conditions), concept, steps, early_steps, window, threshold,
        condition_stats(summary, n_resamples, confidence), saturation_overview(summary),
        correlation_table(summary, pooled=[main, reference] if reference else [],
                          n_resamples=n_resamples).set_index("images"),
        between_prompt_share(summary, "early_share"), prompt_summary(summary), found)
