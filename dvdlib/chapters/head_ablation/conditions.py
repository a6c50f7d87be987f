"""The conditions of a head-ablation sweep: which heads (or which tokens) each one removes.

Condition families (:data:`FAMILIES`):

- ``baseline``: no ablation;
- ``single head``: one head ablated (:func:`single_heads`);
- ``ranked`` / ``random``: the first n heads of an order ablated together (:func:`cumulative`),
  the order ranked by the heads' attention to the dominant concept in the baseline
  (:func:`ranked_order`) or drawn at random (:func:`random_orders`); :func:`many_heads` makes
  the chapter's whole grid of them, with every head ablated at the end;
- ``all heads``: every cross-attention head ablated, so the text reaches the UNet nowhere;
- ``concept tokens``: the dominant concept's token positions removed from every head of every
  layer (their value vectors zeroed; :class:`dvdlib.attention.ablation.TokenValueAblation`),
  everything else intact;
- ``concept route``: the concept's tokens and the end and padding positions, which a causal text
  encoder writes the concept into (:mod:`.leakage`), their value vectors multiplied by a
  ``scale`` in every head (:class:`dvdlib.attention.ablation.ScaledTokenValueAblation`;
  :func:`concept_routes`): the chapter's positive controls;
- ``layer``: every head of one layer (:func:`whole_layer`), the layer that holds the largest
  single-head effects.

Heads are ablated by the model's instruments (ours, the paper publishes none):
:class:`dvdlib.attention.ablation.HeadAblation` on a UNet (operators zero, mean, scale),
:class:`dvdlib.attention.joint_ablation.JointHeadAblation` on SD3 and Flux (zero, mask).
:func:`head_counts` turns fractions of all heads (a
parameter such as ``"0.1,0.25,0.5"``, read by :func:`parse_fractions`) into the grid's counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from dvdlib.attention.layers import CrossAttentionLayer

FAMILIES = ("baseline", "single head", "ranked", "random", "all heads", "concept tokens",
            "concept route", "layer")
HEAD_FAMILIES = ("single head", "ranked", "random", "all heads", "layer")  # they ablate heads
TOKEN_FAMILIES = ("concept tokens", "concept route")  # they scale token values in every head
BASELINE = "baseline"
ALL_HEADS = "all_heads"
CONCEPT_TOKENS = "concept_tokens"
RANK_COLUMNS = ("concept_mass", "pair_share", "word_share")


@dataclass(frozen=True)
class Condition:
    """One configuration of the network: which heads are ablated (or the concept's tokens)."""

    name: str  # unique in a sweep; the condition's folder name
    family: str  # one of FAMILIES
    heads: tuple[tuple[str, int], ...] = ()  # (layer label, head index) pairs ablated together
    draw: int | None = None  # which random order (family "random")
    scale: float | None = None  # what the token values are multiplied by (family "concept route")

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown condition family {self.family!r}; accepted: "
                             f"{', '.join(FAMILIES)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"condition name {self.name!r} must be letters, digits, '_', '.', '-' "
                             "(it names a folder)")
        bad = [h for _, h in self.heads
               if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 0]
        if bad:  # int(1.9) would ablate head 1
            raise ValueError(f"condition {self.name!r}: head index {bad[0]!r} is not a whole "
                             f"number >= 0; heads are numbered 0, 1, ... in each layer")
        object.__setattr__(self, "heads", tuple((str(label), int(h)) for label, h in self.heads))
        if len(set(self.heads)) != len(self.heads):
            raise ValueError(f"condition {self.name!r} names a head twice: {self.heads}")
        if self.family not in HEAD_FAMILIES and self.heads:
            raise ValueError(f"a {self.family!r} condition ablates no heads; got {self.heads}")
        if self.family in HEAD_FAMILIES and not self.heads:
            raise ValueError(f"a {self.family!r} condition needs heads to ablate")
        if (self.family == "concept route") != (self.scale is not None):
            raise ValueError(f"a scale is given with a 'concept route' condition only (got family "
                             f"{self.family!r}, scale {self.scale!r})")
        if self.scale is not None:
            object.__setattr__(self, "scale", check_scale(self.scale))

    @property
    def n_heads(self) -> int:
        return len(self.heads)

    def head_mask(self) -> dict[str, list[int]]:
        """The heads as :class:`HeadAblation` takes them: layer label -> head indices."""
        mask: dict[str, list[int]] = {}
        for label, head in self.heads:
            mask.setdefault(label, []).append(head)
        return mask

    def describe(self) -> str:
        """The condition as tables and figures label it (``head down.1.0.0:3``, ...)."""
        if self.family in ("baseline", "concept tokens", "all heads"):
            return self.family
        if self.family == "concept route":
            return f"concept, end and padding tokens x{self.scale:g}"
        if self.family == "single head":
            return f"head {self.heads[0][0]}:{self.heads[0][1]}"
        if self.family == "layer":
            return f"layer {self.heads[0][0]} (all {self.n_heads} heads)"
        order = "random order " + str(self.draw) if self.family == "random" else "ranked order"
        return f"first {self.n_heads} heads, {order}"


def all_head_keys(layers: Sequence[CrossAttentionLayer]) -> list[tuple[str, int]]:
    """Every (layer label, head) of ``layers``, layer by layer."""
    return [(layer.label, head) for layer in layers for head in range(layer.heads)]


def baseline() -> Condition:
    return Condition(BASELINE, "baseline")


def single_heads(layers: Sequence[CrossAttentionLayer]) -> list[Condition]:
    """One condition per head of ``layers``."""
    return [Condition(f"head_{label}_{head}", "single head", ((label, head),))
            for label, head in all_head_keys(layers)]


def all_heads(layers: Sequence[CrossAttentionLayer]) -> Condition:
    return Condition(ALL_HEADS, "all heads", tuple(all_head_keys(layers)))


def concept_tokens() -> Condition:
    return Condition(CONCEPT_TOKENS, "concept tokens")


def check_scale(value) -> float:
    """A factor for token values: a finite number in [0, 1] (0 removes them, 1 keeps them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 <= float(value) <= 1:
        raise ValueError(f"a token scale must be a number in [0, 1], got {value!r}")
    return float(value)


def concept_routes(scales: Sequence[float]) -> list[Condition]:
    """The positive controls: the concept's tokens and the end and padding positions, their
    values multiplied by each of ``scales`` (each in [0, 1], no repeats)."""
    checked = [check_scale(s) for s in scales]
    if not checked or len(set(checked)) != len(checked):
        raise ValueError(f"scales must be a non-empty list of distinct numbers in [0, 1], got "
                         f"{list(scales)}")
    return [Condition(f"route_x{s:.2f}", "concept route", scale=s) for s in checked]


def whole_layer(layers: Sequence[CrossAttentionLayer], label: str) -> Condition:
    """Every head of the layer ``label`` ablated together."""
    for layer in layers:
        if layer.label == label:
            return Condition(f"layer_{label}", "layer",
                             tuple((label, h) for h in range(layer.heads)))
    raise ValueError(f"no layer {label!r}; layers: {', '.join(l.label for l in layers)}")


def layer_sets(layers: Sequence[CrossAttentionLayer], label: str | None) -> list[Condition]:
    """``[whole_layer(layers, label)]``, or no condition when ``label`` is None (the largest
    single-head effects do not share a layer)."""
    return [] if label is None else [whole_layer(layers, label)]


def parse_fractions(text: str) -> list[float]:
    """Comma-separated fractions ("0.1,0.25,0.5") as floats: a parameter that ``-p`` can set."""
    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or not all(np.isfinite(values)):
        raise ValueError(f"expected comma-separated numbers such as '0.1,0.25,0.5', got {text!r}")
    return values


def head_counts(total: int, fractions: Sequence[float]) -> list[int]:
    """Head counts for a cumulative sweep: ``round(f * total)`` per fraction, each in 1..total-1.

    All ``total`` heads is its own condition (:func:`all_heads`), so counts stop below it.
    """
    if not isinstance(total, (int, np.integer)) or total < 2:
        raise ValueError(f"total must be an integer >= 2 heads, got {total!r}")
    bad = [f for f in fractions if not 0 < float(f) < 1]
    if bad or not len(fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1), got "
                         f"{list(fractions)}")
    return sorted({min(total - 1, max(1, int(round(float(f) * total)))) for f in fractions})


def cumulative(order: Sequence[tuple[str, int]], counts: Sequence[int], family: str = "ranked",
               draw: int | None = None) -> list[Condition]:
    """For each n in ``counts``, the first n heads of ``order`` ablated together."""
    if family not in ("ranked", "random"):
        raise ValueError(f"a cumulative family is 'ranked' or 'random', got {family!r}")
    if family == "random" and draw is None:
        raise ValueError("a random order needs its draw number")
    order = [(str(label), int(h)) for label, h in order]
    bad = [n for n in counts if not 1 <= int(n) <= len(order)]
    if bad:
        raise ValueError(f"head counts {bad} are outside 1..{len(order)} (the order's length)")
    prefix = "ranked" if family == "ranked" else f"random{draw}"
    return [Condition(f"{prefix}_{int(n):03d}", family, tuple(order[:int(n)]), draw)
            for n in counts]


def random_orders(layers: Sequence[CrossAttentionLayer], n_orders: int, seed: int = 0
                  ) -> list[list[tuple[str, int]]]:
    """``n_orders`` random permutations of every head of ``layers`` (seeded)."""
    if not isinstance(n_orders, (int, np.integer)) or n_orders < 0:
        raise ValueError(f"n_orders must be a non-negative integer, got {n_orders!r}")
    keys = all_head_keys(layers)
    rng = np.random.default_rng(seed)
    return [[keys[i] for i in rng.permutation(len(keys))] for _ in range(n_orders)]


def ranked_order(head_table: pd.DataFrame, by: str = "concept_mass") -> list[tuple[str, int]]:
    """Heads from the most to the least attention to the concept, by a column of
    :func:`dvdlib.chapters.head_ablation.summaries.head_attention`.

    Ties keep the layer order (stable sort), so the order is reproducible.
    """
    if by not in RANK_COLUMNS:
        raise ValueError(f"cannot rank heads by {by!r}; accepted: {', '.join(RANK_COLUMNS)}")
    ranked = head_table.sort_values(by, ascending=False, kind="stable")
    return [(str(label), int(head)) for label, head in zip(ranked["layer_label"], ranked["head"])]



def many_heads(order: Sequence[tuple[str, int]], layers: Sequence[CrossAttentionLayer],
               counts: Sequence[int], n_random_orders: int, seed: int = 0) -> list[Condition]:
    """The cumulative grid: the first n heads of ``order`` for each n in ``counts``, every head,
    then the same counts along ``n_random_orders`` random orders (seeded)."""
    conditions = cumulative(order, counts, "ranked") + [all_heads(layers)]
    for draw, random_order in enumerate(random_orders(layers, n_random_orders, seed=seed)):
        conditions += cumulative(random_order, counts, "random", draw)
    return conditions
