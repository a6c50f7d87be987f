"""Head ablation in cross-attention: a per-call head mask, applied by the attention instruments.

A :class:`HeadAblation` names heads (layer -> head indices) and an operator, and travels with one
call in ``cross_attention_kwargs``; the processors installed once by
:func:`dvdlib.attention.recorder.attention_instruments` apply it. Nothing is stored on the model, so every
call can ablate different heads with no reinstall::

    with attention_instruments(pipe.unet) as layers:
        for layer, head, ablation in each_head(layers):
            pipe(prompt, cross_attention_kwargs={"head_ablation": ablation})

Operators (on the head's output, before the layer's output projection; the paper does not publish
its operator, these are ours):

- ``zero`` (default): the head contributes nothing.
- ``mean``: the head's output is replaced by its mean over query positions (per image), which keeps
  its average contribution but removes where in the image it puts it.
- ``scale``: the head's output is multiplied by ``factor``.

``zero`` and ``scale`` are applied to the head's values: a head's output is ``P_h V_h``, linear in
``V_h``, so scaling ``V_h`` scales the output exactly, on a ``[token, head * dim]`` tensor (77 rows)
instead of one per query position, and the attention itself stays on the fused kernel. The
attention probabilities are unchanged by an ablation of the same layer, so a record taken in the
same call shows the ablated layer's probabilities as they were (later layers see the change).

:class:`TokenValueAblation` travels the same way and removes tokens rather than heads: the value
vectors of given token positions (a concept's) are zeroed in every head of every layer;
:class:`ScaledTokenValueAblation` multiplies them by a factor instead.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from dvdlib.attention.layers import CrossAttentionLayer, find_layer
from dvdlib.stats.verdicts import check_bound

OPERATORS = ("zero", "mean", "scale")


class HeadAblation:
    """Heads to ablate in one call, and how.

    ``heads`` maps a layer (processor key, module path, label or index; see
    :func:`~dvdlib.attention.layers.find_layer`) to head indices or ``"all"``; ``heads="all"`` ablates every
    head of every layer. ``factor`` is given with ``operator="scale"`` only.
    """

    def __init__(self, layers: Sequence[CrossAttentionLayer],
                 heads: Mapping[str | int, Sequence[int] | str] | str,
                 operator: str = "zero", factor: float | None = None):
        if operator not in OPERATORS:
            raise ValueError(f"unknown operator {operator!r}; accepted: {', '.join(OPERATORS)}")
        if (operator == "scale") != (factor is not None):
            raise ValueError(f"factor is given with operator='scale' only (got operator={operator!r}, "
                             f"factor={factor!r})")
        if heads == "all":
            heads = {layer.name: "all" for layer in layers}
        if not isinstance(heads, Mapping):
            raise TypeError(f"heads must be a mapping layer -> head indices, or 'all'; got {heads!r}")
        self.operator = operator
        self.factor = None if factor is None else check_bound(factor, "factor")
        self.heads: dict[str, tuple[int, ...]] = {}  # processor key -> sorted head indices
        self._layers: dict[str, CrossAttentionLayer] = {}
        for key, chosen in heads.items():
            layer = find_layer(layers, key)
            indices = range(layer.heads) if chosen == "all" else _head_indices(layer, chosen)
            bad = [h for h in indices if not 0 <= h < layer.heads]
            if bad:
                raise ValueError(f"layer {layer.label} has heads 0..{layer.heads - 1}; got {bad}")
            if indices:
                self.heads[layer.name] = tuple(sorted(set(self.heads.get(layer.name, ()) + tuple(indices))))
                self._layers[layer.name] = layer
        # Device tensors made at first use, per (layer, device, dtype); they live with this object only.
        self._value_scales: dict[tuple, torch.Tensor] = {}
        self._mean_masks: dict[tuple, torch.Tensor] = {}

    @property
    def num_heads(self) -> int:
        return sum(len(h) for h in self.heads.values())

    def scale_values(self, layer: CrossAttentionLayer, value: torch.Tensor) -> torch.Tensor:
        """``value`` ``[batch, token, head * dim]`` with the ablated heads' values zeroed or scaled."""
        heads = self.heads.get(layer.name)
        if heads is None or self.operator == "mean":
            return value
        key = (layer.name, value.device, value.dtype)
        scale = self._value_scales.get(key)
        if scale is None:
            per_head = torch.ones(layer.heads)  # [head]
            per_head[list(heads)] = 0.0 if self.operator == "zero" else self.factor
            scale = per_head.repeat_interleave(layer.head_dim).to(value.device, value.dtype)  # [head * dim]
            self._value_scales[key] = scale
        return value * scale

    def replace_by_query_mean(self, layer: CrossAttentionLayer, out: torch.Tensor) -> torch.Tensor:
        """``out`` ``[batch, head, query, dim]`` with the ablated heads replaced by their query mean."""
        heads = self.heads.get(layer.name)
        if heads is None or self.operator != "mean":
            return out
        key = (layer.name, out.device)
        mask = self._mean_masks.get(key)
        if mask is None:
            mask = torch.zeros(1, layer.heads, 1, 1, dtype=torch.bool)  # [1, head, 1, 1]
            mask[0, list(heads)] = True
            mask = self._mean_masks[key] = mask.to(out.device)
        return torch.where(mask, out.mean(dim=2, keepdim=True), out)

    def describe(self) -> str:
        what = self.operator if self.factor is None else f"{self.operator} x{self.factor:g}"
        parts = [f"{self._layers[name].label}:{','.join(map(str, h))}" for name, h in self.heads.items()]
        return f"{what} {' '.join(parts) or '(no heads)'}"

    def __repr__(self) -> str:
        return f"HeadAblation({self.describe()})"


def _head_indices(layer: CrossAttentionLayer, chosen) -> list[int]:
    """Head indices as ints; a ValueError naming the first entry that is not a whole number."""
    if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Iterable):
        raise ValueError(f"heads of layer {layer.label} must be a list of head indices "
                         f"(0..{layer.heads - 1}) or 'all', got {chosen!r}")
    indices = []
    for head in chosen:
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)):
            raise ValueError(f"head {head!r} of layer {layer.label} is not a head index; "
                             f"accepted: whole numbers 0..{layer.heads - 1}, or 'all'")
        indices.append(int(head))
    return indices


def each_head(layers: Sequence[CrossAttentionLayer], operator: str = "zero", factor: float | None = None
              ) -> Iterator[tuple[CrossAttentionLayer, int, HeadAblation]]:
    """One ablation per single head, layer by layer: ``(layer, head, ablation)``."""
    for layer in layers:
        for head in range(layer.heads):
            yield layer, head, HeadAblation(layers, {layer.name: [head]}, operator, factor)


def each_layer(layers: Sequence[CrossAttentionLayer], operator: str = "zero", factor: float | None = None
               ) -> Iterator[tuple[CrossAttentionLayer, HeadAblation]]:
    """One ablation per layer, all its heads at once: ``(layer, ablation)``."""
    for layer in layers:
        yield layer, HeadAblation(layers, {layer.name: "all"}, operator, factor)


class TokenValueAblation:
    """Zero the value vectors of given token positions in every head of every cross-attention layer.

    ``positions`` holds one list of token positions per image of the call (its conditional rows);
    the unconditional rows of a guidance batch (the empty prompt) are left alone. The positions
    still draw attention, but pass nothing on: the concept is removed from what every head writes.
    It travels in ``cross_attention_kwargs`` under ``head_ablation``, like a :class:`HeadAblation`.
    """

    def __init__(self, positions: Sequence[Sequence[int]], num_tokens: int):
        if not positions:
            raise ValueError("positions: give one list of token positions per image")
        self.keep = torch.ones(len(positions), num_tokens)  # [image, token]: 0 where removed
        for image, chosen in enumerate(positions):
            bad = [p for p in chosen if isinstance(p, bool) or not isinstance(p, (int, np.integer))
                   or not 0 <= p < num_tokens]
            if bad:
                raise ValueError(f"image {image}: token positions {bad} are outside "
                                 f"0..{num_tokens - 1} or not whole numbers")
            self.keep[image, [int(p) for p in chosen]] = 0.0

    def scale_values(self, layer: CrossAttentionLayer, value: torch.Tensor) -> torch.Tensor:
        """``value`` ``[batch, token, head * dim]`` with the chosen tokens' rows zeroed."""
        n_images, n_tokens = self.keep.shape
        if value.shape[1] != n_tokens:
            raise ValueError(f"{layer.label}: values have {value.shape[1]} token positions, the "
                             f"ablation {n_tokens}")
        if value.shape[0] == 2 * n_images:  # [uncond; cond]: the concept is in the conditional half
            keep = torch.cat([torch.ones_like(self.keep), self.keep])
        elif value.shape[0] == n_images:
            keep = self.keep
        else:
            raise ValueError(f"{layer.label}: a batch of {value.shape[0]} rows does not fit an "
                             f"ablation made for {n_images} image(s) (expected {n_images} or "
                             f"{2 * n_images} rows)")
        return value * keep.to(value.device, value.dtype).unsqueeze(-1)  # [batch, token, 1]

    def replace_by_query_mean(self, layer: CrossAttentionLayer, out: torch.Tensor) -> torch.Tensor:
        return out  # only the values change


class ScaledTokenValueAblation(TokenValueAblation):
    """:class:`TokenValueAblation` that multiplies the chosen tokens' value vectors by ``factor``
    instead of zeroing them: ``factor=0`` removes them, ``0.5`` halves what they pass on.

    Used to turn a route of a concept down by degrees (its own tokens and the positions that
    carry it, such as the end and padding tokens of a causal text encoder) rather than only
    cutting it.
    """

    def __init__(self, positions: Sequence[Sequence[int]], num_tokens: int, factor: float):
        super().__init__(positions, num_tokens)
        self.factor = check_bound(factor, "factor")
        if self.factor < 0:
            raise ValueError(f"factor must be a finite number >= 0, got {factor!r}")
        self.keep = torch.where(self.keep == 0, torch.tensor(self.factor), self.keep)  # [image, token]
