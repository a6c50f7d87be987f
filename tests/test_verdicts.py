"""Verdicts follow the stated rule: every branch of decide(), its validation, and the headline check."""

from __future__ import annotations

import math

import pytest

from dvdlib.stats import verdicts as vd

TEST = vd.Test(finding="finding 1", claim="low diversity dominates more", measure="DvD(K=1) - DvD(inf)",
               side="above", bound=0.0)


def test_supported_contradicted_inconclusive_follow_the_side_of_the_bound():
    assert vd.decide(TEST, (5.0, 1.0, 9.0)).word == "supported"
    assert vd.decide(TEST, (-5.0, -9.0, -1.0)).word == "contradicted"
    assert vd.decide(TEST, (2.0, -1.0, 6.0)).word == "inconclusive"
    assert vd.decide(TEST, (0.0, 0.0, 4.0)).word == "inconclusive"  # touching the bound is not beyond it
    below = vd.Test("finding 3", "no single head removes half", "the change", side="below", bound=-2.5)
    assert vd.decide(below, (-5.0, -7.0, -3.0)).word == "supported"
    assert vd.decide(below, (1.0, -1.0, 3.0)).word == "contradicted"
    assert vd.decide(below, (-2.0, -4.0, 0.0)).word == "inconclusive"
    for interval in ((5.0, 1.0, 9.0), (-5.0, -9.0, -1.0), (2.0, -1.0, 6.0)):
        low, high = interval[1:]
        assert vd.rule("above", 0.0, low, high) == vd.decide(TEST, interval).word


def test_unmet_requirement_or_missing_interval_is_not_testable():
    control = vd.Requirement("some model's DvD interval lies above 20", False, "the highest is 9.5 [3.9, 12.3]")
    verdict = vd.decide(TEST, (5.0, 1.0, 9.0), [control, vd.Requirement("a baseline", True)])
    assert verdict.word == "not testable" and verdict.unmet == (control,)
    assert "lies above 20, but the highest is 9.5" in verdict.reason
    assert "which does not hold" in vd.decide(TEST, (1, 0, 2), [vd.Requirement("x", False)]).reason
    no_interval = vd.decide(TEST, (5.0, math.nan, math.nan))
    assert no_interval.word == "not testable" and "too few images" in no_interval.reason


def test_sentences_open_with_their_words_phrase_and_state_the_interval():
    for interval, word in (((5, 1, 9), "supported"), ((-5, -9, -1), "contradicted"),
                           ((2, -1, 6), "inconclusive")):
        verdict = vd.decide(TEST, interval)
        assert verdict.word == word and verdict.sentence.startswith(vd.OPENINGS[word])
        assert verdict.markdown().startswith(f"**{vd.OPENINGS[word]}") and f"**{word}**" in verdict.markdown()
        assert vd.Interval.of(interval).text() in verdict.reason
    assert TEST.statement().startswith("Finding 1 (low diversity dominates more) is supported when the 95 %")


@pytest.mark.parametrize("kwargs, message", [
    (dict(side="left"), "side must be one of above, below, got 'left'"),
    (dict(confidence=1.0), r"confidence must be in \(0, 1\), got 1.0"),
    (dict(confidence=0), r"confidence must be in \(0, 1\), got 0"),
    (dict(bound=math.inf), "bound must be a finite number, got inf"),
    (dict(claim=" "), "non-empty claim"),
])
def test_bad_criteria_name_the_value(kwargs, message):
    settings = dict(finding="finding 1", claim="c", measure="m", side="above") | kwargs
    with pytest.raises(ValueError, match=message):
        vd.Test(**settings)


def test_range_checks_name_the_value_and_the_range():
    assert vd.check_threshold(1.0) == 1.0 and vd.check_confidence(0.9) == 0.9
    for bad in (0, 1.5, -0.1, math.nan, "0.5", True):
        with pytest.raises(ValueError, match=r"tau must be .*\(0, 1\]"):
            vd.check_threshold(bad)
    with pytest.raises(ValueError, match=r"removal_fraction must be in \[0.1, 1\], got 0.05"):
        vd.check_fraction("removal_fraction", 0.05, low=0.1, include_low=True, include_high=True)
    with pytest.raises(ValueError, match="interval low 3.0 is above its high 1.0"):
        vd.Interval(2, 3, 1)
    with pytest.raises(ValueError, match=r"an interval is \(estimate, low, high\)"):
        vd.decide(TEST, (1, 2))
    with pytest.raises(TypeError, match="verdicts.Test"):
        vd.decide("finding 1", (1, 0, 2))


def _document(verdict, summary, key="verdict"):
    values, texts = verdict.headline(key)
    return {"values": values, "texts": {**texts, "summary": summary}}


def test_headline_check_accepts_a_summary_that_quotes_its_verdict():
    verdict = vd.decide(TEST, (5.0, 1.0, 9.0))
    assert vd.check_headline(_document(verdict, f"DvD was 20. {verdict.plain()}")) == []
    untestable = vd.decide(TEST, (5.0, 1.0, 9.0), [vd.Requirement("a positive control", False)])
    assert vd.check_headline(_document(untestable, untestable.plain())) == []


def test_headline_check_catches_claims_the_verdict_does_not_support():
    verdict = vd.decide(TEST, (2.0, -1.0, 6.0))  # inconclusive
    problems = vd.check_headline(_document(verdict, f"{verdict.plain()} This run reproduces the paper."))
    assert problems == ["the summary claims 'reproduces', which no verdict sentence states"]
    problems = vd.check_headline(_document(verdict, f"{verdict.plain()} The data support finding 1."))
    assert any("'The data support' outside its verdict sentences" in p for p in problems)
    assert any("does not state the verdict sentence" in p for p in vd.check_headline(_document(verdict, "DvD 2.")))
    forged = _document(verdict, verdict.plain())
    forged["texts"]["verdict"] = "supported"  # the saved interval contains the bound
    assert any("saved verdict 'supported', but its saved interval and rule give 'inconclusive'" in p
               for p in vd.check_headline(forged))
    assert vd.check_headline({"values": {}, "texts": {"summary": "x"}})[0].startswith("no verdict is saved")


def test_a_difference_at_the_ceiling_is_not_testable_and_names_the_ceiling():
    test = vd.Test(finding="finding 1", claim="lower diversity makes a concept dominate more",
                   measure="DvD(K=1) - DvD(unlimited)", side="above")
    at_ceiling = vd.room_requirement((100.0, 100.0, 100.0), (98.0, 95.0, 100.0), "above",
                                     names=("K = 1", "unlimited"))
    verdict = vd.decide(test, (2.0, 0.0, 5.0), [at_ceiling])
    assert verdict.word == "not testable"
    assert "unlimited is at the ceiling (98.0, ceiling 100.0)" in verdict.reason
    # The same difference with room below the ceiling is decided by the interval.
    room = vd.room_requirement(87.3, 83.3, "above", names=("K = 1", "unlimited"))
    assert room.met and vd.decide(test, (4.0, -2.6, 13.9), [room]).word == "inconclusive"
    # Predicting a decrease (ablated below baseline): a baseline at the floor leaves no room,
    # an ablated arm at the floor is where the prediction points.
    floor = vd.room_requirement(2.0, 3.0, "below", names=("ablated", "baseline"))
    assert not floor.met and floor.found == "baseline is at the floor (3.0, floor 0.0)"
    assert vd.room_requirement(2.0, 40.0, "below", names=("ablated", "baseline")).met
    assert vd.room_left(83.3, "above") == pytest.approx(16.7)
    assert vd.room_left(vd.Interval(30.0, 20.0, 40.0), "below") == pytest.approx(30.0)


@pytest.mark.parametrize("kwargs", [{"margin": float("nan")}, {"margin": 60.0}, {"high": float("inf")},
                                    {"low": 100.0}])
def test_room_requirement_refuses_bad_bounds(kwargs):
    with pytest.raises(ValueError, match="margin|high|low"):
        vd.room_requirement(50.0, 40.0, "above", **kwargs)
