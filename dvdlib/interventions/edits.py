"""Edits of cross-attention probabilities, passed per call: the object boost and the concept cap.

An edit travels in ``cross_attention_kwargs`` under ``attention_edit`` and is applied by the
processors :func:`dvdlib.attention.recorder.attention_instruments` installs, in every
cross-attention layer and head, to the rows of the conditional images only (the unconditional
half of a guidance batch holds the empty or negative prompt, whose tokens are not the pair's).
Each edit has one strength and a zero point at which it is the identity (:attr:`is_identity`);
there the processors keep the fused attention kernel, so the output is the plain model's.

- :class:`ObjectBoost` (strength ``c >= 1``, zero point 1): the object's tokens' *logits* get
  ``log c`` added, i.e. their unnormalised attention is multiplied by ``c`` and every row is
  renormalised. Prompt-to-prompt's reweighting scales the probabilities and leaves rows
  unnormalised; ours keeps each row a distribution, so the shares a record reads stay shares.
- :class:`ConceptCap` (strength ``tau`` in (0, 1], zero point 1): in every row (image, head,
  query position), when the concept's share of the pair's attention ``c / (c + o)`` exceeds
  ``tau``, the concept's probabilities are scaled down until it equals ``tau`` and the row is
  renormalised (the freed mass goes to every other token in proportion). With ``leak=True`` the
  end and padding positions count as the concept's (a causal text encoder writes the concept
  into every later position). Since every row obeys the cap, so does any mean of rows: the
  share per step, layer or head that a record reads is at most ``tau`` too.

Both take per image the token positions of the concept and the object (one list per image of
the call, as :func:`~dvdlib.attention.token_positions.token_groups` finds them).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from dvdlib.attention.layers import CrossAttentionLayer


def _position_mask(positions: Sequence[Sequence[int]], num_tokens: int, what: str) -> torch.Tensor:
    """``[image, token]`` with 1 at each image's positions; a ValueError naming a bad position."""
    if not positions:
        raise ValueError(f"{what}: give one list of token positions per image")
    mask = torch.zeros(len(positions), num_tokens)  # [image, token]
    for image, chosen in enumerate(positions):
        bad = [p for p in chosen if isinstance(p, bool) or not isinstance(p, (int, np.integer))
               or not 0 <= p < num_tokens]
        if bad:
            raise ValueError(f"{what}, image {image}: token positions {bad} are outside "
                             f"0..{num_tokens - 1} or not whole numbers")
        mask[image, [int(p) for p in chosen]] = 1.0
    return mask


def _conditional(mask: torch.Tensor, batch: int, fill: float, label: str) -> torch.Tensor:
    """A per-image ``[image, token]`` tensor laid out for a UNet batch of ``batch`` rows: the
    conditional half of ``[uncond; cond]`` gets it, the unconditional half ``fill``."""
    images = mask.shape[0]
    if batch == 2 * images:
        return torch.cat([torch.full_like(mask, fill), mask])
    if batch == images:
        return mask
    raise ValueError(f"{label}: a batch of {batch} rows does not fit an edit made for {images} "
                     f"image(s) (expected {images} or {2 * images} rows)")


class ObjectBoost:
    """Add ``log c`` to the object tokens' attention logits (see the module notes)."""

    def __init__(self, objects: Sequence[Sequence[int]], num_tokens: int, factor: float):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) \
                or not math.isfinite(factor) or factor < 1:
            raise ValueError(f"object boost c {factor!r}: accepted: a finite number >= 1 "
                             f"(1 leaves the model as it is)")
        self.factor = float(factor)
        self.objects = _position_mask(objects, num_tokens, "object boost")  # [image, token]

    @property
    def is_identity(self) -> bool:
        return self.factor == 1.0

    def apply(self, layer: CrossAttentionLayer, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` ``[batch, head, query, token]`` with the object's rows boosted."""
        weights = 1.0 + (self.factor - 1.0) * _conditional(self.objects, probs.shape[0], 0.0,
                                                             layer.label)  # [batch, token]
        edited = probs * weights.to(probs.device, probs.dtype)[:, None, None, :]
        return edited / edited.sum(dim=-1, keepdim=True)

    def describe(self) -> str:
        return f"object boost c={self.factor:g}"


class ConceptCap:
    """Limit the concept's share of the pair's attention to ``tau`` in every row (module notes)."""

    def __init__(self, concepts: Sequence[Sequence[int]], objects: Sequence[Sequence[int]],
                 num_tokens: int, tau: float, leak: Sequence[Sequence[int]] | None = None):
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau <= 1:
            raise ValueError(f"concept cap tau {tau!r}: accepted: a number in (0, 1] (1 leaves "
                             f"the model as it is)")
        self.tau = float(tau)
        self.concepts = _position_mask(concepts, num_tokens, "concept cap")  # [image, token]
        if leak is not None:  # the end and padding positions count as the concept's
            self.concepts = torch.maximum(self.concepts,
                                          _position_mask(leak, num_tokens, "concept cap"))
        self.objects = _position_mask(objects, num_tokens, "concept cap")  # [image, token]
        if len(self.objects) != len(self.concepts):
            raise ValueError(f"concept cap: {len(self.concepts)} concept lists but "
                             f"{len(self.objects)} object lists")
        if (self.concepts * self.objects).any():
            raise ValueError("concept cap: the concept's and the object's positions overlap")

    @property
    def is_identity(self) -> bool:
        return self.tau == 1.0

    def apply(self, layer: CrossAttentionLayer, probs: torch.Tensor) -> torch.Tensor:
        """``probs`` ``[batch, head, query, token]`` with the concept capped in each row."""
        batch = probs.shape[0]
        concept = _conditional(self.concepts, batch, 0.0, layer.label).to(probs.device, probs.dtype)
        obj = _conditional(self.objects, batch, 0.0, layer.label).to(probs.device, probs.dtype)
        concept, obj = concept[:, None, None, :], obj[:, None, None, :]  # [batch, 1, 1, token]
        c = (probs * concept).sum(dim=-1, keepdim=True)  # [batch, head, query, 1]
        o = (probs * obj).sum(dim=-1, keepdim=True)
        allowed = self.tau / (1.0 - self.tau) * o if self.tau < 1 else c
        over = c > allowed
        factor = torch.where(over, allowed / torch.where(over, c, torch.ones_like(c)),
                             torch.ones_like(c))  # [batch, head, query, 1]
        edited = probs * (1.0 + concept * (factor - 1.0))
        return edited / edited.sum(dim=-1, keepdim=True)

    def describe(self) -> str:
        return f"concept cap tau={self.tau:g}"
