"""Chapter 2's test of finding 1, stated before any number, for the toy zoo and for a real model.

- :func:`check_criteria`: the test's criteria in range (before any model runs).
- :func:`positive_control`: the requirement that some model (toy) or concept (real) dominates
  clearly, without which a null result says nothing.
- :func:`toy_test`, :func:`toy_verdict`: the causal test on the toy zoo, the interval of
  DvD(K = 1) - DvD(unlimited) above 0, DvD taken without the images that show a wrong carrier
  (a carrier that is not the prompted object is no dominance); in another condition than the
  default, the same test named with it. Its requirements are a positive control and the room
  the score's ceiling leaves (:func:`dvdlib.stats.verdicts.room_requirement`).
- :func:`real_test`, :func:`real_verdict`: the observation on a real model, the interval of
  Spearman's rho of a concept's generated diversity and its DvD below 0.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dvdlib.stats import verdicts


def check_criteria(positive_control_dvd: float, confidence: float,
                   ceiling_margin: float = 5.0) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_fraction("positive_control_dvd", positive_control_dvd, low=0.0, high=100.0,
                            include_low=True)
    verdicts.check_confidence(confidence)
    verdicts.check_fraction("ceiling_margin", ceiling_margin, low=0.0, high=50.0,
                            include_low=True)


def positive_control(dvds: Mapping[str, tuple[float, float, float]], bound: float,
                     what: str = "model") -> verdicts.Requirement:
    """The requirement that some ``what`` (a model, a concept) of ``dvds`` (name -> DvD
    ``(estimate, low, high)``) has its DvD interval above ``bound``."""
    if not dvds:
        raise ValueError("no DvD values for the positive control")
    name, best = max(dvds.items(),
                     key=lambda item: (np.nan_to_num(item[1][1], nan=-np.inf), item[1][0]))
    return verdicts.Requirement(
        f"a positive control: some {what} with its DvD interval above {bound:g}",
        bool(best[1] > bound), f"the highest is {name}'s {verdicts.Interval.of(best).text()}")


TOY_MEASURE = "DvD(K = 1) - DvD(unlimited), wrong carriers left out"


def toy_test(concept: str = "sunset", confidence: float = 0.95,
             condition: str = "") -> verdicts.Test:
    """The causal test: the interval of DvD(K = 1) - DvD(unlimited) must lie above 0, DvD taken
    over the pair images that show no wrong carrier. An arm's DvD is the mean over its training
    runs (the replication unit, with the seeds). ``condition`` names a setting other than the
    chapter's default ("guidance 7.5"), which the finding's name then carries."""
    finding = f"finding 1 at {condition}" if condition else "finding 1"
    return verdicts.Test(finding, f"the {concept} dominates more when it was trained on fewer "
                         "distinct pictures", TOY_MEASURE, "above", 0.0, confidence)


def room_statement(margin: float) -> str:
    """The room requirement in words, for the chapter to print with the test."""
    return (f"A comparison is **not testable (ceiling)** when the arm the finding predicts to be "
            f"lower (unlimited) has its DvD within {margin:g} points of the ceiling 100, or the "
            f"arm predicted higher (K = 1) within {margin:g} points of the floor 0: the score "
            "leaves no room for the predicted difference, so a difference near 0 says nothing")


def toy_verdict(difference, dvds: Mapping[str, tuple[float, float, float]], *,
                concept: str = "sunset", positive_control_dvd: float = 20.0,
                confidence: float = 0.95) -> verdicts.Verdict:
    """The verdict of :func:`toy_test`: ``difference`` is ``(estimate, low, high)`` of
    DvD(K = 1) - DvD(unlimited); ``dvds`` maps each model to its DvD ``(estimate, low, high)``,
    the positive control."""
    check_criteria(positive_control_dvd, confidence)
    control = positive_control(dvds, positive_control_dvd, "model")
    return verdicts.decide(toy_test(concept, confidence), difference, [control])


def real_test(confidence: float = 0.95) -> verdicts.Test:
    """The test over a real model's concepts: Spearman's rho of diversity and DvD below 0."""
    return verdicts.Test("finding 1", "concepts drawn less diversely dominate more",
                         "Spearman's rho of a concept's generated diversity and its DvD", "below",
                         0.0, confidence, digits=2)


def real_verdict(rho, dvds: Mapping[str, tuple[float, float, float]], *,
                 positive_control_dvd: float = 20.0, confidence: float = 0.95) -> verdicts.Verdict:
    """The verdict of :func:`real_test`: ``rho`` is ``(estimate, low, high)``; ``dvds`` maps each
    concept to its DvD ``(estimate, low, high)`` (the positive control)."""
    check_criteria(positive_control_dvd, confidence)
    control = positive_control(dvds, positive_control_dvd, "concept")
    return verdicts.decide(real_test(confidence), rho, [control])
