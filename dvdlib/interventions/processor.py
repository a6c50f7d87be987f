"""The processors that carry the interventions, and the context manager that installs them.

:func:`intervention_instruments` installs, with ``unet.set_attn_processor``, one
:class:`InterventionCrossAttnProcessor` per cross-attention layer (self-attention keeps its own
processor behind :class:`PassThrough`) and restores the previous processors on exit, error or
not. Each call then says what to do through ``cross_attention_kwargs``::

    with intervention_instruments(pipe.unet) as layers:
        pipe(prompt, cross_attention_kwargs={"attention_edit": ObjectBoost(...)})

Per-call options, all declared parameters of ``__call__`` (diffusers drops undeclared ones):

- ``attention_edit``: an :mod:`~dvdlib.interventions.edits` edit (object boost, concept cap);
- ``head_ablation``: a :class:`~dvdlib.attention.ablation.HeadAblation`, applied as the
  attention instruments apply it;
- ``attention_record``: an :class:`~dvdlib.attention.record.AttentionRecord`; it receives the
  probabilities as the layer used them, after the edit;
- ``attention_probe``: the Attend-and-Excite guide's collector
  (:class:`~dvdlib.interventions.excite.ObjectMaxProbe`), which keeps the object's maps with
  their gradient.

Without an edit (or with one at its zero point) and without a probe, the output comes from the
fused kernel with the arguments diffusers' ``AttnProcessor2_0`` passes, so the images equal the
plain model's bit for bit. With either, the probabilities softmax(QK^T / sqrt(d)) are computed
(77 keys at most: cheap), edited, and multiplied by the values.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers
from dvdlib.attention.recorder import attention_probabilities

EDIT_KWARG = "attention_edit"
PROBE_KWARG = "attention_probe"
# diffusers' default processors, whose maths ours repeats on cross-attention layers.
REPLACEABLE = (AttnProcessor2_0, AttnProcessor)


class InterventionCrossAttnProcessor:
    """Cross-attention with a per-call edit, head ablation, record and probe (module notes)."""

    def __init__(self, layer: CrossAttentionLayer):
        self.layer = layer

    def __call__(self, attn, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, attention_record=None,
                 head_ablation=None, attention_edit=None, attention_probe=None) -> torch.Tensor:
        if hidden_states.ndim != 3 or encoder_hidden_states is None:
            raise ValueError(f"{self.layer.name}: expected hidden states [batch, query, channel] "
                             f"and text states; got {tuple(hidden_states.shape)} and "
                             f"{encoder_hidden_states is not None}")
        residual = hidden_states
        batch, heads, head_dim = hidden_states.shape[0], attn.heads, self.layer.head_dim
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask,
                                                         encoder_hidden_states.shape[1], batch)
            attention_mask = attention_mask.view(batch, heads, -1, attention_mask.shape[-1])
        query = attn.to_q(hidden_states)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        if head_ablation is not None:
            value = head_ablation.scale_values(self.layer, value)
        query = query.view(batch, -1, heads, head_dim).transpose(1, 2)  # [batch, head, query, dim]
        key = key.view(batch, -1, heads, head_dim).transpose(1, 2)  # [batch, head, token, dim]
        value = value.view(batch, -1, heads, head_dim).transpose(1, 2)  # [batch, head, token, dim]
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        if attention_edit is not None and attention_edit.is_identity:
            attention_edit = None
        probs = None
        if attention_edit is None and attention_probe is None:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                 dropout_p=0.0, is_causal=False)
        else:
            probs = attention_probabilities(attn, query, key, attention_mask)  # [b, head, q, token]
            if attention_edit is not None:
                probs = attention_edit.apply(self.layer, probs)
            if attention_probe is not None:
                attention_probe.add(self.layer, probs)
            out = torch.matmul(probs.to(value.dtype), value)  # [batch, head, query, dim]
        if attention_record is not None:
            rows = attention_record.conditional_rows(batch)
            if probs is None:
                mask = None if attention_mask is None else attention_mask[rows]
                probs = attention_probabilities(attn, query[rows], key[rows], mask)
            else:
                probs = probs[rows]
            attention_record.add(self.layer, probs.detach())
        if head_ablation is not None:
            out = head_ablation.replace_by_query_mean(self.layer, out)

        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class PassThrough:
    """Runs a self-attention layer's previous processor unchanged; takes and ignores our options."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, attn, hidden_states: torch.Tensor,
                 encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, attention_record=None,
                 head_ablation=None, attention_edit=None, attention_probe=None) -> torch.Tensor:
        return self.processor(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask)


@contextmanager
def intervention_instruments(unet, sample_size: int | Sequence[int] | None = None
                             ) -> Iterator[tuple[CrossAttentionLayer, ...]]:
    """Install the intervention processors on ``unet`` for the ``with`` block; yields its
    cross-attention layers (located for ``sample_size``, by default the UNet's own latent size).
    The previous processors come back on exit, also when the block raises."""
    layers = cross_attention_layers(unet, sample_size)
    previous = unet.attn_processors  # a new dict: processor key -> processor
    by_name = {layer.name: layer for layer in layers}
    for key, processor in previous.items():
        if isinstance(processor, (InterventionCrossAttnProcessor, PassThrough)):
            raise RuntimeError(f"{key} already carries the interventions: they do not nest")
        if key in by_name:
            if type(processor) not in REPLACEABLE:
                raise ValueError(f"{key} uses {type(processor).__name__}; the interventions "
                                 f"replace only {', '.join(p.__name__ for p in REPLACEABLE)}")
            attn = unet.get_submodule(by_name[key].module_path)
            for feature in ("spatial_norm", "group_norm"):
                if getattr(attn, feature, None) is not None:
                    raise ValueError(f"{key} uses {feature}, which the interventions do not handle")
    unet.set_attn_processor({
        key: (InterventionCrossAttnProcessor(by_name[key]) if key in by_name
              else PassThrough(processor))
        for key, processor in previous.items()})  # (set_attn_processor empties the dict it gets)
    try:
        yield layers
    finally:
        unet.set_attn_processor(dict(previous))
