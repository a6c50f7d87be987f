"""The interventions by name: each one's strength knob, zero point, accepted range and default,
and what one pipeline call needs to apply it (:func:`call_plan`).

=================  ===================  ==========  ======================================
name               strength             zero point  what it does
=================  ===================  ==========  ======================================
``boost``          c >= 1               1           the object's attention logits + log c
``cap``            tau in (0, 1]        1           the concept's pair share <= tau per row
``heads``          k in 0..heads        0           the first k heads of a ranking ablated
``random_heads``   k in 0..heads        0           k heads of a seeded random order ablated
``excite``         step size >= 0       0           Attend-and-Excite's latent update
``guidance``       scale in [0, g]      g (run's)   classifier-free guidance lowered
``object_first``   0 or 1               0           the object's words moved to the front
``negative``       0 or 1               0           a negative prompt naming the concept
=================  ===================  ==========  ======================================

Every strength is checked by :func:`check_strength` before any model loads: one line naming the
value and what is accepted. At its zero point an intervention is the plain model exactly.
Defaults (:data:`DEFAULTS`) are the strengths ``dvd probe --rescue`` tries and chapter 5's test
strengths on the toy zoo; they were set from a look at seeds outside the chapter's draw.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from dvdlib.attention.ablation import HeadAblation
from dvdlib.attention.recorder import ABLATION_KWARG
from dvdlib.attention.token_positions import PromptTokens, token_groups, tokenize_prompt
from dvdlib.interventions.edits import ConceptCap, ObjectBoost
from dvdlib.interventions.excite import ExciteGuide
from dvdlib.interventions.heads import HeadRanking, head_mask, layout_of, random_order
from dvdlib.attention.recorder import EDIT_KWARG
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase

NAMES = ("boost", "cap", "heads", "random_heads", "excite", "guidance", "object_first",
         "negative")
TITLES = {
    "boost": "object boost", "cap": "concept cap", "heads": "top-k heads ablated",
    "random_heads": "k random heads ablated", "excite": "attend-and-excite update",
    "guidance": "lower guidance", "object_first": "object first", "negative": "negative prompt",
}
KNOBS = {"boost": "c", "cap": "tau", "heads": "k", "random_heads": "k", "excite": "step size",
         "guidance": "guidance scale", "object_first": "on", "negative": "on"}
DEFAULTS = {"boost": 8.0, "cap": 0.75, "heads": 7, "random_heads": 7, "excite": 100.0,
            "guidance": 1.5, "object_first": 1, "negative": 1}
TOGGLES = ("object_first", "negative")
NEGATIVE_TEMPLATE = "{concept}"  # the concept's own scene: in the toy world, its caption alone
# The cap counts the end and padding positions as the concept's by default: chapter 4 finds the
# concept surviving the removal of its own tokens, carried by the later positions of a causal
# text encoder.
CAP_LEAK = True


def check_name(name) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown intervention {name!r}; accepted: {', '.join(NAMES)}")
    return name


def zero_point(name: str, guidance: float) -> float:
    """The strength at which ``name`` is the plain model."""
    return {"boost": 1.0, "cap": 1.0, "guidance": float(guidance)}.get(check_name(name), 0)


def check_strength(name: str, value, *, guidance: float | None = None,
                   total_heads: int | None = None) -> float:
    """``value`` as the strength of ``name`` if it is in the accepted range, else a one-line
    ValueError naming it. ``guidance`` (the run's) bounds lower guidance; ``total_heads`` (the
    model's, when known) bounds k."""
    check_name(name)
    knob = f"{TITLES[name]} {KNOBS[name]}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{knob} {value!r}: accepted: a finite number")
    value = float(value)
    if name == "boost" and value < 1:
        raise ValueError(f"{knob} {value:g}: accepted: a number >= 1 (1: the plain model)")
    if name == "cap" and not 0 < value <= 1:
        raise ValueError(f"{knob} {value:g}: accepted: a number in (0, 1] (1: the plain model)")
    if name in ("heads", "random_heads"):
        top = "the model's heads" if total_heads is None else str(total_heads)
        if not value.is_integer() or value < 0 or (total_heads is not None and value > total_heads):
            raise ValueError(f"{knob} {value:g}: accepted: a whole number from 0 to {top} "
                             f"(0: the plain model)")
    if name == "excite" and value < 0:
        raise ValueError(f"{knob} {value:g}: accepted: a number >= 0 (0: the plain model)")
    if name == "guidance":
        top = "the run's guidance" if guidance is None else f"{guidance:g}"
        if value < 0 or (guidance is not None and value > guidance):
            raise ValueError(f"{knob} {value:g}: accepted: a number from 0 to {top} (the run's "
                             f"guidance: the plain model)")
    if name in TOGGLES and value not in (0, 1):
        raise ValueError(f"{knob} {value:g}: accepted: 0 (off: the plain model) or 1 (on)")
    return value


def check_negative_template(template: str) -> str:
    """A negative-prompt template: text whose only field is ``{concept}``."""
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"negative prompt {template!r}: {err}; accepted: text with the field "
                         f"{{concept}} (doubled braces for literal ones)") from None
    if fields - {"concept"} or not template.strip():
        raise ValueError(f"negative prompt {template!r}: accepted: non-empty text whose only "
                         f"field is {{concept}}, e.g. {NEGATIVE_TEMPLATE!r}")
    return template


def curve_strengths(name: str, strength: float, n: int, guidance: float) -> list[float]:
    """``n`` strengths from the zero point (left out) to ``strength`` (the last): evenly spaced,
    geometric for the boost, whole numbers for k; a toggle has the one strength 1."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"strengths per curve {n!r}: accepted: a whole number >= 1")
    zero = zero_point(name, guidance)
    if name in TOGGLES or strength == zero:
        return [float(strength)]
    steps = [(i + 1) / n for i in range(n)]
    if name == "boost":
        return [float(strength ** s) for s in steps]
    values = [zero + (strength - zero) * s for s in steps]
    if name in ("heads", "random_heads"):
        values = sorted({float(max(1, round(v))) for v in values})
    return values


def object_first(prompt: str, phrase: str) -> str:
    """``prompt`` with ``phrase`` (whole words, any case) moved to its front: "sunset coaster"
    -> "coaster sunset"."""
    pattern = re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)", re.IGNORECASE)
    match = pattern.search(prompt)
    if match is None:
        raise ValueError(f"object {phrase!r} is not a whole phrase of the prompt {prompt!r}")
    rest = " ".join((prompt[:match.start()] + " " + prompt[match.end():]).split())
    return f"{match.group(0)} {rest}".strip()


@dataclass(frozen=True)
class Intervention:
    """One intervention at one strength (checked against what is known without a model)."""

    name: str
    strength: float

    def __post_init__(self):
        object.__setattr__(self, "strength", check_strength(self.name, self.strength))

    def describe(self) -> str:
        if self.name in TOGGLES:
            return TITLES[self.name] + ("" if self.strength else " (off)")
        return f"{TITLES[self.name]}, {KNOBS[self.name]} = {self.strength:g}"


@dataclass
class CallPlan:
    """What one pipeline call passes to apply an intervention."""

    prompts: list[str]
    tokens: list[PromptTokens]  # the prompts as the text encoder reads them
    negative_prompt: list[str] | None
    guidance: float
    kwargs: dict = field(default_factory=dict)  # cross_attention_kwargs
    callback: Callable | None = None  # callback_on_step_end
    tensor_inputs: Sequence[str] = ("latents",)

    def pipe_kwargs(self) -> dict:
        out = {"prompt": self.prompts, "guidance_scale": self.guidance}
        if self.negative_prompt is not None:
            out["negative_prompt"] = self.negative_prompt
        if self.callback is not None:
            out["callback_on_step_end"] = self.callback
            out["callback_on_step_end_tensor_inputs"] = list(self.tensor_inputs)
        return out


def call_plan(intervention: Intervention | None, rows: Sequence, *, tokenizer, layers, steps: int,
              guidance: float, ranking: HeadRanking | None = None, control_seed: int = 0,
              negative_template: str = NEGATIVE_TEMPLATE, cap_leak: bool = CAP_LEAK) -> CallPlan:
    """The call that applies ``intervention`` to the prompt rows ``rows`` (one per image: a
    prompt table's rows, with the concept and object phrases), inside
    :func:`~dvdlib.attention.recorder.attention_instruments` (which gave ``layers``).
    ``None`` is the plain model."""
    name, strength = ("plain", 0) if intervention is None else (intervention.name,
                                                                  intervention.strength)
    prompts = [row.prompt for row in rows]
    if name == "object_first" and strength:
        prompts = [object_first(row.prompt, object_phrase(row)) for row in rows]
    tokens = [tokenize_prompt(tokenizer, prompt) for prompt in prompts]
    groups = [token_groups(tokenizer, t, {"concept": concept_phrase(row), "object": object_phrase(row)})
              for t, row in zip(tokens, rows)]
    concepts, objects = [g["concept"] for g in groups], [g["object"] for g in groups]
    width = tokens[0].length
    plan = CallPlan(prompts, tokens, None, float(guidance))
    if name == "negative" and strength:
        plan.negative_prompt = [check_negative_template(negative_template).format(
            concept=concept_phrase(row)) for row in rows]
    elif name == "guidance":
        plan.guidance = check_strength(name, strength, guidance=guidance)
    elif name == "boost":
        plan.kwargs[EDIT_KWARG] = ObjectBoost(objects, width, strength)
    elif name == "cap":
        leak = [[p for p in range(width) if t.kinds[p] in ("end", "padding")] for t in tokens]
        plan.kwargs[EDIT_KWARG] = ConceptCap(concepts, objects, width, strength,
                                             leak if cap_leak else None)
    elif name in ("heads", "random_heads") and strength:
        layout = layout_of(layers)
        check_strength(name, strength, total_heads=sum(heads for _, heads in layout))
        if name == "heads":
            if ranking is None:
                raise ValueError("the heads intervention needs a head ranking of this model")
            ranking.check(layout)
            chosen = ranking.top(int(strength))
        else:
            chosen = random_order(layout, control_seed)[:int(strength)]
        plan.kwargs[ABLATION_KWARG] = HeadAblation(layers, head_mask(chosen), "zero")
    elif name == "excite":
        plan.callback = ExciteGuide(layers, objects, [list(t.word_positions) for t in tokens],
                                    width, strength, steps)
        plan.tensor_inputs = ExciteGuide.TENSOR_INPUTS
    return plan
