"""Chapter 2's test of finding 1, stated before any number, for the toy zoo and for a real model.

- :func:`check_criteria`: the test's criteria in range (before any model runs).
- :func:`positive_control`: the requirement that some model (toy) or concept (real) dominates
  clearly, without which a null result says nothing.
- :func:`toy_test`, :func:`toy_verdict`: the causal test on the toy zoo, the interval of
  DvD(K = 1) - DvD(unlimited) above 0.
- :func:`real_test`, :func:`real_verdict`: the observation on a real model, the interval of
  Spearman's rho of a concept's generated diversity and its DvD below 0.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dvdlib.stats import verdicts


def check_criteria(positive_control_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_fraction("positive_control_dvd", positive_control_dvd, low=0.0, high=100.0,
                            include_low=True)
    verdicts.check_confidence(confidence)


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


def toy_test(concept: str = "sunset", confidence: float = 0.95) -> verdicts.Test:
    """The causal test: the interval of DvD(K = 1) - DvD(unlimited) must lie above 0. DvD(K = 1)
    is the mean over the K = 1 models, one per instance seed (the replication unit)."""
    return verdicts.Test("finding 1", f"the {concept} dominates more when it was trained on fewer "
                         "distinct pictures", "DvD(K = 1) - DvD(unlimited)", "above", 0.0,
                         confidence)


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
