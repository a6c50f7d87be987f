"""The rescue test, decided per intervention by the one verdict function, and the headline.

An intervention **rescues** when, at its test strength and against the plain model on the same
seeds, the share of images with both the concept and the object present rises (the interval of
the change lies above 0) and the concept's presence falls by less than ``margin`` points.
Both conditions are one number, the **rescue margin**

    r = min(change of the both-present share, change of concept presence + margin)

in percentage points: r > 0 exactly when both hold (r is rounded to 1e-9 points, so that a
fall of exactly ``margin`` gives 0 and not the sign of a rounding error). Its seed-cluster interval
(:func:`dvdlib.chapters.rescue.summary.seed_interval`, the minimum taken in every resample)
decides through :func:`dvdlib.stats.verdicts.decide`: above 0, supported (a rescue); below 0,
contradicted (the object does not come back, or the concept goes); containing 0,
inconclusive. The test needs room: when the plain model already has both sides in all but
:data:`ROOM` points of its images, no rise can show, and the verdict is "not testable".

:func:`findings` decides every intervention from the images table alone, so a saved
``images.csv`` decides again to the same words (:func:`redecide`); :func:`headline` gives the
numbers and texts the chapter saves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvdlib.chapters.rescue.run import PLAIN
from dvdlib.chapters.rescue.summary import ALL, seed_interval, seed_means
from dvdlib.interventions.catalogue import KNOBS, TITLES, TOGGLES
from dvdlib.stats.verdicts import Interval, Requirement, Test, Verdict, decide

ROOM = 5.0  # points below 100 % the plain model's both-present share must leave
INTERVAL_UNIT = "seed"


def rescue_test(name: str, strength: float, margin: float, confidence: float = 0.95) -> Test:
    """The stated test of intervention ``name`` at ``strength`` (a name not in the catalogue
    states the rule in general, for the chapter to print before any number)."""
    if name in TITLES:
        at = "" if name in TOGGLES else f" at {KNOBS[name]} = {strength:g}"
        finding, what = f"rescue by the {TITLES[name]}", f"the {TITLES[name]}{at}"
    else:
        at, finding = "", "rescue by an intervention"
        what = "the intervention at its test strength"
    return Test(finding=finding, claim=f"{what} brings the object back with the concept kept",
                measure=(f"the rescue margin{at}: min(change of the both-present share, change "
                         f"of concept presence + {margin:g}), in points"),
                side="above", bound=0.0, confidence=confidence, digits=2)


def rescue_interval(images: pd.DataFrame, arm: str, margin: float, *, n_resamples: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> Interval:
    """The rescue margin of ``arm`` against the plain arm, in points, with its interval."""
    arrays = {name: seed_means(images, who, value) for name, who, value in (
        ("both", arm, "both_present"), ("both_base", PLAIN, "both_present"),
        ("concept", arm, "concept_present"), ("concept_base", PLAIN, "concept_present"))}

    def statistic(d: dict) -> np.ndarray:
        both = np.nanmean(d["both"] - d["both_base"], axis=(1, 2)) * 100
        concept = np.nanmean(d["concept"] - d["concept_base"], axis=(1, 2)) * 100
        return np.round(np.minimum(both, concept + margin), 9)

    return Interval.of(seed_interval(arrays, statistic, n_resamples=n_resamples,
                                     confidence=confidence, seed=seed))


def room(images: pd.DataFrame) -> Requirement:
    """The plain model's both-present share leaves at least :data:`ROOM` points to rise."""
    share = 100 * seed_means(images, PLAIN, "both_present").mean()
    return Requirement(f"the plain model's both-present share more than {ROOM:g} points below "
                       f"100 %", share < 100 - ROOM,
                       f"it is {share:.1f} % (no room for a rise)")


def findings(images: pd.DataFrame, margin: float, *, n_resamples: int = 2000,
             confidence: float = 0.95) -> dict[str, Verdict]:
    """Each intervention's verdict at its test strength, from the images table alone."""
    tested = images[images["is_test"].astype(bool) & (images["intervention"] != PLAIN)]
    requirement = room(images)
    found = {}
    for name, table in tested.groupby("intervention", sort=False):
        arm, strength = table["arm"].iloc[0], float(table["strength"].iloc[0])
        interval = rescue_interval(images, arm, margin, n_resamples=n_resamples,
                                   confidence=confidence)
        found[name] = decide(rescue_test(name, strength, margin, confidence), interval,
                             [requirement])
    return found


def redecide(images: pd.DataFrame, margin: float, **options) -> dict[str, str]:
    """The verdict words a saved images table gives (the same rule, the same resamples)."""
    return {name: verdict.word for name, verdict in findings(images, margin, **options).items()}


def headline(found: dict[str, Verdict], summary: pd.DataFrame, *, margin: float,
             n_resamples: int) -> tuple[dict, dict]:
    """``(values, texts)`` to save: the plain model's both-present share, per intervention its
    both-present share and concept presence at the test strength (in %), its verdict (with
    what :func:`dvdlib.stats.verdicts.check_headline` re-decides it from), the seconds per
    image of the plain model and of each intervention (``*_seconds``: run times, which headline
    comparisons check for presence only), the number of rescues, the test's margin and
    resamples (with which :func:`redecide` decides again from the saved images table), and the
    interval unit."""
    rows = summary[summary["objects"] == ALL].set_index("arm")
    plain = rows.loc[PLAIN]
    values = {"both_present_baseline": 100 * plain["both_present"],
              "concept_present_baseline": 100 * plain["concept_present"],
              "object_present_baseline": 100 * plain["object_present"],
              "plain_image_seconds": plain["seconds_per_image"],
              "rescues": sum(v.word == "supported" for v in found.values()),
              "concept_margin": float(margin), "n_resamples": int(n_resamples)}
    texts = {"interval_unit": INTERVAL_UNIT}
    tested = rows[rows["is_test"].astype(bool)].set_index("intervention")
    for name, verdict in found.items():
        row = tested.loc[name]
        values[f"both_present_{name}"] = 100 * row["both_present"]
        values[f"concept_present_{name}"] = 100 * row["concept_present"]
        values[f"object_present_{name}"] = 100 * row["object_present"]
        values[f"{name}_image_seconds"] = row["seconds_per_image"]  # a time: never the same
        more_values, more_texts = verdict.headline(f"verdict_{name}")
        values.update(more_values)
        texts.update(more_texts)
    return values, texts
