"""Head ablation in the joint attention of SD3/SD3.5 and Flux, per call.

A UNet head that is zeroed in ``attn2`` loses only its reading of the text: the image's
self-attention lives in another layer (``attn1``). An MMDiT head does both in one attention, so
zeroing its whole output would also delete its image self-attention. We offer two narrower
operators on the image-query x text-key block instead (the paper ablates UNet heads and publishes
no operator; these are ours):

- ``zero`` (default): **the head's text values are zeroed.** Image queries of the head still
  spend their attention on the text keys (the softmax is unchanged) but receive nothing from
  them: the closest analogue of the UNet's ``zero``, which also zeroes the head's values. Text
  queries read the same zeroed values, so the head also loses its **text-to-text** attention in
  the blocks that update the text (SD3's joint blocks except the last, Flux's double- and
  single-stream blocks).
- ``mask``: **the head's image queries cannot see the text keys**: their attention is renormalised
  onto the image keys, as an additive -inf mask on (head, image rows, text columns) would do. The
  head reads no text and spends the freed attention on the image; text queries are untouched.
  Computed without a mask: the ablated heads' image rows are recomputed by a second fused
  attention over the image keys only (a mask would hold ``heads x sequence^2`` entries, 0.5 GB for
  Flux at 1024 px).

:class:`JointTokenValueAblation` removes text keys rather than heads: the values of given text
positions (a concept's) are zeroed, or scaled, in every head of every joint attention: the joint
counterpart of :class:`~dvdlib.attention.ablation.TokenValueAblation`.

A :class:`JointHeadAblation` travels with one call in ``joint_attention_kwargs`` under
``head_ablation`` and applies to every row and every call of it (both halves of SD3's guidance
batch, Flux's negative call too): it changes the network, not the prompt. The attention record
of the same call shows the ablated layer's probabilities as they were before the ablation.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from dvdlib.attention.ablation import ScaledTokenValueAblation
from dvdlib.attention.joint_layers import check_heads, find_joint_layer
from dvdlib.attention.layers import CrossAttentionLayer

JOINT_OPERATORS = ("zero", "mask")


class JointHeadAblation:
    """Heads to ablate in one call, and how (``operator``: ``zero`` or ``mask``, see the module).

    ``heads`` maps a layer (index, label, module path or processor key) to head indices or
    ``"all"``; ``heads="all"`` ablates every head of every layer.
    """

    def __init__(self, layers: Sequence[CrossAttentionLayer],
                 heads: Mapping[str | int, Sequence[int] | str] | str, operator: str = "zero"):
        if operator not in JOINT_OPERATORS:
            raise ValueError(f"unknown operator {operator!r}; accepted: {', '.join(JOINT_OPERATORS)}")
        if heads == "all":
            heads = {layer.name: "all" for layer in layers}
        if not isinstance(heads, Mapping):
            raise ValueError(f"heads must be a mapping layer -> head indices, or 'all'; got {heads!r}")
        self.operator = operator
        self.heads: dict[str, tuple[int, ...]] = {}  # processor key -> sorted head indices
        self._layers: dict[str, CrossAttentionLayer] = {}
        for key, chosen in heads.items():
            layer = find_joint_layer(layers, key)
            indices = tuple(range(layer.heads)) if chosen == "all" else check_heads(layer, chosen)
            if indices:
                self.heads[layer.name] = tuple(sorted(set(self.heads.get(layer.name, ()) + indices)))
                self._layers[layer.name] = layer
        self._scales: dict[tuple, torch.Tensor] = {}  # per (layer, device, dtype, head axis)

    @property
    def num_heads(self) -> int:
        return sum(len(h) for h in self.heads.values())

    def text_values(self, layer: CrossAttentionLayer, value: torch.Tensor, head_dim: int) -> torch.Tensor:
        """``value`` of the text positions with the ablated heads zeroed (operator ``zero``);
        ``head_dim`` is the head axis of ``value`` (1 for ``[batch, head, token, dim]``, 2 for
        ``[batch, token, head, dim]``)."""
        heads = self.heads.get(layer.name)
        if heads is None or self.operator != "zero":
            return value
        key = (layer.name, value.device, value.dtype, head_dim)
        scale = self._scales.get(key)
        if scale is None:
            shape = [1] * value.ndim
            shape[head_dim] = layer.heads
            scale = torch.ones(layer.heads)
            scale[list(heads)] = 0.0
            scale = self._scales[key] = scale.view(shape).to(value.device, value.dtype)
        return value * scale

    def mask_text(self, layer: CrossAttentionLayer, out: torch.Tensor, query: torch.Tensor,
                  key: torch.Tensor, value: torch.Tensor, image: slice,
                  attend: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``out`` with the ablated heads' image rows recomputed over the image keys only
        (operator ``mask``). All tensors ``[batch, head, position, dim]`` (views are fine);
        ``attend(q, k, v)`` is the layer's own fused attention in that layout."""
        heads = self.heads.get(layer.name)
        if heads is None or self.operator != "mask":
            return out
        index = list(heads)
        q, k, v = (t[:, index, image] for t in (query, key, value))  # [batch, ablated head, image, dim]
        out = out.clone()
        out[:, index, image] = attend(q, k, v).to(out.dtype)
        return out

    def describe(self) -> str:
        parts = [f"{self._layers[name].label}:{','.join(map(str, h))}" for name, h in self.heads.items()]
        return f"{self.operator} {' '.join(parts) or '(no heads)'}"

    def __repr__(self) -> str:
        return f"JointHeadAblation({self.describe()})"


class JointTokenValueAblation:
    """Scale the values of given text-key positions in every head of every joint attention.

    ``positions`` holds one list of text-key positions per image of the call (SD3: among the 77
    CLIP positions and the T5 block; Flux: the T5 block), ``num_tokens`` the number of text keys;
    ``factor`` 0 (default) removes what those keys pass on, 0.5 halves it. Image queries still
    attend to them. The text queries of the blocks that update the text read the same scaled
    values. In SD3's guidance batch only the positive half is changed; a call of one row per image
    (Flux, or SD3 without guidance) is changed in every row. It travels under ``head_ablation``,
    like a :class:`JointHeadAblation`, and names every layer (Flux's single-stream blocks then need
    the call's ``text_length``).
    """

    operator = "zero"  # on values, as JointHeadAblation's "zero"; never "mask"

    def __init__(self, layers: Sequence[CrossAttentionLayer], positions: Sequence[Sequence[int]],
                 num_tokens: int, factor: float = 0.0):
        checked = ScaledTokenValueAblation(positions, num_tokens, factor)  # checks every argument
        self.keep, self.factor = checked.keep, checked.factor  # keep: [image, token]
        self.heads = {layer.name: tuple(range(layer.heads)) for layer in layers}

    def text_values(self, layer: CrossAttentionLayer, value: torch.Tensor, head_dim: int) -> torch.Tensor:
        """``value`` of the text positions with the chosen positions scaled; ``head_dim`` as in
        :meth:`JointHeadAblation.text_values` (the token axis is the other of axes 1 and 2)."""
        token_dim = 2 if head_dim == 1 else 1
        n_images, n_tokens = self.keep.shape
        if value.shape[token_dim] != n_tokens:
            raise ValueError(f"{layer.label}: the call has {value.shape[token_dim]} text keys, the "
                             f"ablation {n_tokens}")
        rows = value.shape[0]
        if rows == 2 * n_images:  # SD3's [negative; positive]: the concept is in the positive half
            keep = torch.cat([torch.ones_like(self.keep), self.keep])
        elif rows == n_images:
            keep = self.keep
        else:
            raise ValueError(f"{layer.label}: a batch of {rows} rows does not fit an ablation made "
                             f"for {n_images} image(s) (expected {n_images} or {2 * n_images} rows)")
        shape = [rows, 1, 1, 1]
        shape[token_dim] = n_tokens
        return value * keep.to(value.device, value.dtype).view(shape)

    def mask_text(self, layer: CrossAttentionLayer, out: torch.Tensor, *_) -> torch.Tensor:
        return out  # only the values change

    def describe(self) -> str:
        return f"text keys x{self.factor:g} in every layer"
