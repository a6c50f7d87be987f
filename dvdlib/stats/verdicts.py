"""Verdicts: what an interval says about one of the paper's findings, decided by a rule stated first.

A finding chapter states its test before it shows a number: which interval decides, on which side
of which bound the finding predicts it, and what must hold for the test to count at all (there is
dominance to explain, a positive control reached). :func:`decide` then turns the interval into one
of four words, with the reason and the sentence the chapter prints::

    test = Test(finding="finding 1", claim="lower training diversity makes a concept dominate more",
                measure="DvD(K=1) - DvD(unlimited)", side="above", bound=0.0, confidence=0.95)
    verdict = decide(test, (3.1, -2.0, 8.4),
                     requirements=[Requirement("some model's DvD interval lies above 20", False,
                                               "the highest lower bound is 12.4")])
    verdict.word       # "not testable"
    verdict.markdown() # "**This run cannot test finding 1 ...**: some model's DvD ..."

A comparison on a bounded score (DvD runs from 0 to 100) carries a :func:`room_requirement`: when
the arm predicted to be lower sits at the ceiling, a difference of zero says nothing, and the
verdict is "not testable" with the ceiling named. :func:`room_left` gives the largest effect the
baseline leaves room for.

The rule, in order:

1. ``not testable`` if a requirement is not met, or the interval is not a finite interval
   (too few images for one);
2. ``supported`` if the whole interval lies on the side of ``bound`` the finding predicts;
3. ``contradicted`` if the whole interval lies on the other side;
4. ``inconclusive`` otherwise (the interval contains the bound).

Every verdict's sentence opens with a phrase that belongs to its word alone (:data:`OPENINGS`), so
a page, or a test, can check that a summary claims no more than its verdict
(:func:`check_headline`). :meth:`Verdict.headline` gives the numbers and texts a chapter saves,
from which :func:`check_headline` recomputes the verdict.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Mapping, Sequence

VERDICTS = ("supported", "contradicted", "inconclusive", "not testable")
SIDES = ("above", "below")
# The opening of each verdict's sentence; no other sentence of a summary may use one.
OPENINGS = {
    "supported": "The data support",
    "contradicted": "The data contradict",
    "inconclusive": "The data neither support nor contradict",
    "not testable": "This run cannot test",
}
# Words that claim a finding outright; a summary uses them only inside its verdict sentences.
CLAIM_WORDS = ("reproduces", "reproduced", "confirms", "confirmed", "proves", "disproves",
               "refutes", "removes the dominance")


def check_fraction(name: str, value, *, low: float = 0.0, high: float = 1.0,
                   include_low: bool = False, include_high: bool = False) -> float:
    """``value`` as a float if it lies in the interval from ``low`` to ``high``, else a ValueError
    naming ``name``, the value and the accepted range (brackets say which ends are included)."""
    text = (("[" if include_low else "(") + f"{low:g}, {high:g}" + ("]" if include_high else ")"))
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise ValueError(f"{name} must be a number in {text}, got {value!r}")
    number = float(value)
    above = number >= low if include_low else number > low
    below = number <= high if include_high else number < high
    if not (above and below):
        raise ValueError(f"{name} must be in {text}, got {value!r}")
    return number


def check_confidence(value, name: str = "confidence") -> float:
    """A confidence level: a number in (0, 1)."""
    return check_fraction(name, value)


def check_threshold(value, name: str = "tau") -> float:
    """A share threshold such as tau: a number in (0, 1]."""
    return check_fraction(name, value, include_high=True)


def check_bound(value, name: str) -> float:
    """A finite number (a bound on a measure such as DvD)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval ``[low, high]``; NaN ends mean no interval was computed."""

    estimate: float
    low: float
    high: float

    def __post_init__(self):
        for name in ("estimate", "low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"interval {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.finite and self.low > self.high:
            raise ValueError(f"interval low {self.low!r} is above its high {self.high!r}")

    @classmethod
    def of(cls, value) -> "Interval":
        """An :class:`Interval` from itself or an ``(estimate, low, high)`` sequence."""
        if isinstance(value, Interval):
            return value
        try:
            estimate, low, high = value
        except (TypeError, ValueError):
            raise ValueError(f"an interval is (estimate, low, high), got {value!r}") from None
        return cls(estimate, low, high)

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.estimate, self.low, self.high))

    def text(self, digits: int = 1, signed: bool = False, scale: float = 1.0, unit: str = "") -> str:
        """``7.8 [3.9, 12.3]`` (``+`` signs with ``signed``): the one way the book writes an
        interval. ``scale`` multiplies every number and ``unit`` follows each (``scale=100,
        unit=" %"`` writes shares as percentages: ``24 % [15 %, 32 %]``)."""
        spec = f"{'+' if signed else ''}.{digits}f"

        def number(value: float) -> str:
            return format(value * scale, spec) + unit

        if not self.finite:
            return f"{number(self.estimate)} (no interval)"
        return f"{number(self.estimate)} [{number(self.low)}, {number(self.high)}]"


@dataclass(frozen=True)
class Requirement:
    """A condition the test needs before its interval means anything (a positive control, say)."""

    description: str  # what must hold, e.g. "the baseline's DvD interval lies above 0"
    met: bool
    found: str = ""  # what this run found, e.g. "baseline 5.0 [0.0, 14.4]"

    def __post_init__(self):
        if not isinstance(self.description, str) or not self.description.strip():
            raise ValueError("a requirement needs a description")
        object.__setattr__(self, "met", bool(self.met))


def room_requirement(first, second, side: str, *, low: float = 0.0, high: float = 100.0,
                     margin: float = 5.0, names: tuple[str, str] = ("the first arm", "the second arm"),
                     digits: int = 1) -> Requirement:
    """Whether a comparison of two arms on a bounded score (first minus second, predicted
    ``side`` of 0) has room to show the predicted effect.

    A score's range ends a comparison: when the arm predicted to be lower already sits within
    ``margin`` of the ceiling ``high`` (or the arm predicted to be higher within ``margin`` of the
    floor ``low``), the difference cannot take the predicted sign however strong the effect, and
    a difference near zero is not a null result. The requirement is then unmet, so :func:`decide`
    says "not testable", and its ``found`` names the arm and the bound ("ceiling" or "floor").
    ``first`` and ``second`` are the arms' intervals (or estimates); only the estimates are used.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    low, high = check_bound(low, "low"), check_bound(high, "high")
    margin = check_bound(margin, "margin")
    if not (high > low and 0 <= margin < (high - low) / 2):
        raise ValueError(f"need low < high and 0 <= margin < half the range, got low {low!r}, "
                         f"high {high!r}, margin {margin!r}")
    levels = [_level(first), _level(second)]
    higher, lower = (0, 1) if side == "above" else (1, 0)
    spec = f".{digits}f"
    problems = []
    if not math.isfinite(levels[lower]) or levels[lower] >= high - margin:
        problems.append(f"{names[lower]} is at the ceiling ({format(levels[lower], spec)}, "
                        f"ceiling {format(high, spec)})")
    if not math.isfinite(levels[higher]) or levels[higher] <= low + margin:
        problems.append(f"{names[higher]} is at the floor ({format(levels[higher], spec)}, "
                        f"floor {format(low, spec)})")
    description = (f"room for the predicted difference: {names[lower]} more than {margin:g} below "
                   f"the ceiling {high:g} and {names[higher]} more than {margin:g} above the floor "
                   f"{low:g}")
    return Requirement(description, not problems, " and ".join(problems))


def _level(value) -> float:
    """The estimate of an arm given as a number, an :class:`Interval` or ``(estimate, low, high)``."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return Interval.of(value).estimate


def room_left(baseline, side: str, *, low: float = 0.0, high: float = 100.0) -> float:
    """The largest effect a bounded score leaves room for: how far ``baseline`` (the arm predicted
    to be lower when ``side`` is "above", higher when "below") can move before it hits the bound."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    level = check_bound(_level(baseline), "baseline")
    return float(high - level if side == "above" else level - low)


@dataclass(frozen=True)
class Test:
    """The stated test of a finding: the interval of ``measure`` must lie ``side`` ``bound``."""

    finding: str  # e.g. "finding 1"
    claim: str  # what the finding says, in words, e.g. "lower diversity makes a concept dominate more"
    measure: str  # the measure whose interval decides, e.g. "DvD(K=1) - DvD(unlimited)"
    side: str  # "above" or "below": where the finding predicts the interval
    bound: float = 0.0
    confidence: float = 0.95
    digits: int = 1  # decimals when numbers of this measure are written

    def __post_init__(self):
        for name in ("finding", "claim", "measure"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ValueError(f"a test needs a non-empty {name}, got {getattr(self, name)!r}")
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {', '.join(SIDES)}, got {self.side!r}")
        object.__setattr__(self, "bound", check_bound(self.bound, "bound"))
        object.__setattr__(self, "confidence", check_confidence(self.confidence))
        if not isinstance(self.digits, int) or self.digits < 0:
            raise ValueError(f"digits must be a non-negative integer, got {self.digits!r}")

    @property
    def level(self) -> str:
        return f"{self.confidence * 100:g} %"

    def statement(self) -> str:
        """The rule in words, for the chapter to print before any number."""
        other = "below" if self.side == "above" else "above"
        bound = format(self.bound, f".{self.digits}f")
        return (f"{self.finding.capitalize()} ({self.claim}) is supported when the {self.level} interval "
                f"of {self.measure} lies {self.side} {bound}, contradicted when it lies {other} {bound}, "
                f"and inconclusive when it contains {bound}")


@dataclass(frozen=True)
class Verdict:
    """What :func:`decide` made: the word, why, and the sentence a chapter prints."""

    test: Test
    word: str  # one of VERDICTS
    reason: str
    interval: Interval
    unmet: tuple[Requirement, ...] = field(default=())

    @property
    def sentence(self) -> str:
        """The verdict's sentence, opening with :data:`OPENINGS` of its word."""
        return f"{OPENINGS[self.word]} {self.test.finding}, that {self.test.claim}"

    def markdown(self) -> str:
        """The bold sentence and its reason, as the chapter prints it."""
        return f"**{self.sentence}**: {self.reason}. Verdict: **{self.word}**."

    def plain(self) -> str:
        """The sentence and reason without Markdown emphasis (for summaries)."""
        return f"{self.sentence}: {self.reason}. Verdict: {self.word}."

    def headline(self, key: str = "verdict") -> tuple[dict, dict]:
        """``(values, texts)`` to save with :func:`dvdlib.book.headlines.save`: the verdict word under
        ``key``, its sentence, the rule's side, and the interval and bound it was decided from,
        so that :func:`check_headline` can decide again from the saved numbers."""
        texts = {key: self.word, f"{key}_sentence": self.sentence, f"{key}_reason": self.reason,
                 f"{key}_side": self.test.side, f"{key}_finding": self.test.finding,
                 f"{key}_claim": self.test.claim, f"{key}_measure": self.test.measure,
                 f"{key}_interval": self.interval.text(self.test.digits, signed=True),
                 f"{key}_unmet": "; ".join(r.description for r in self.unmet),
                 f"{key}_unmet_found": "; ".join(r.found for r in self.unmet if r.found)}
        values = {f"{key}_bound": self.test.bound, f"{key}_confidence": self.test.confidence}
        if self.interval.finite:
            values.update({f"{key}_estimate": self.interval.estimate, f"{key}_low": self.interval.low,
                           f"{key}_high": self.interval.high})
        return values, texts


def decide(test: Test, interval, requirements: Sequence[Requirement] = ()) -> Verdict:
    """The verdict of ``test`` on ``interval`` (an :class:`Interval` or ``(estimate, low, high)``).

    See the module notes for the rule. ``requirements`` are checked first: any unmet one makes
    the verdict ``not testable``, whatever the interval.
    """
    if not isinstance(test, Test):
        raise TypeError(f"test must be a verdicts.Test, got {type(test).__name__}")
    interval = Interval.of(interval)
    requirements = tuple(requirements)
    for requirement in requirements:
        if not isinstance(requirement, Requirement):
            raise TypeError(f"requirements must be verdicts.Requirement, got {type(requirement).__name__}")
    digits, bound = test.digits, format(test.bound, f".{test.digits}f")
    shown = f"the {test.level} interval of {test.measure} is {interval.text(digits)}"
    unmet = tuple(r for r in requirements if not r.met)
    if unmet:
        reason = "; ".join(f"the test needs {r.description}" + (f", but {r.found}" if r.found else
                                                                  ", which does not hold")
                           for r in unmet)
        return Verdict(test, "not testable", reason, interval, unmet)
    if not interval.finite:
        return Verdict(test, "not testable", f"{shown}: too few images for an interval", interval)
    if test.side == "above":
        predicted, opposite = interval.low > test.bound, interval.high < test.bound
    else:
        predicted, opposite = interval.high < test.bound, interval.low > test.bound
    other = "below" if test.side == "above" else "above"
    if predicted:
        return Verdict(test, "supported", f"{shown}, {test.side} {bound}", interval)
    if opposite:
        return Verdict(test, "contradicted", f"{shown}, {other} {bound}", interval)
    return Verdict(test, "inconclusive", f"{shown}, which contains {bound}", interval)


def rule(side: str, bound: float, low: float, high: float) -> str:
    """The word :func:`decide` gives a finite interval with every requirement met."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    if (low > bound) if side == "above" else (high < bound):
        return "supported"
    if (high < bound) if side == "above" else (low > bound):
        return "contradicted"
    return "inconclusive"


def check_headline(document: Mapping, summary_key: str = "summary") -> list[str]:
    """Problems of a chapter's saved headlines (``{"values": ..., "texts": ...}``); empty if none.

    For every verdict in the texts (a key whose value is one of :data:`VERDICTS`, saved by
    :meth:`Verdict.headline`): its sentence opens with its word's phrase; the verdict follows
    from the saved interval and bound (``not testable`` when a requirement was unmet or no
    interval was saved); and the summary quotes the sentence. Outside its verdict sentences the
    summary may use no verdict's opening phrase and none of :data:`CLAIM_WORDS`.
    """
    values, texts = dict(document.get("values", {})), dict(document.get("texts", {}))
    keys = [k for k, v in texts.items() if v in VERDICTS and f"{k}_sentence" in texts]
    problems = []
    if not keys:
        return ["no verdict is saved (a text key with one of "
                f"{', '.join(VERDICTS)} and its _sentence)"]
    summary = texts.get(summary_key)
    if summary is None:
        return [f"no {summary_key!r} text is saved"]
    rest = summary
    for key in keys:
        word, sentence = texts[key], texts[f"{key}_sentence"]
        if not sentence.startswith(OPENINGS[word]):
            problems.append(f"{key}: the sentence {sentence!r} does not open with {OPENINGS[word]!r}")
        if texts.get(f"{key}_unmet"):
            expected = "not testable"
        elif f"{key}_low" not in values:
            expected = "not testable"
        else:
            expected = rule(texts.get(f"{key}_side", ""), values[f"{key}_bound"], values[f"{key}_low"],
                            values[f"{key}_high"])
        if word != expected:
            problems.append(f"{key}: saved verdict {word!r}, but its saved interval and rule give {expected!r}")
        if sentence not in summary:
            problems.append(f"{key}: the {summary_key} does not state the verdict sentence {sentence!r}")
        rest = rest.replace(sentence, "")
    lowered = rest.casefold()
    for word, opening in OPENINGS.items():
        if opening.casefold() in lowered:
            problems.append(f"the {summary_key} says {opening!r} outside its verdict sentences")
    for claim in CLAIM_WORDS:
        if claim in lowered:
            problems.append(f"the {summary_key} claims {claim!r}, which no verdict sentence states")
    return problems
