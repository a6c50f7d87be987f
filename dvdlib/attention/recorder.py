"""Recording cross-attention per step, layer, head and token, with diffusers' attention processors.

The instruments are installed once with :func:`attention_instruments` (a context manager around
``unet.set_attn_processor`` that restores the previous processors on exit, error or not). Each
call then says what to do through ``cross_attention_kwargs``::

    with attention_instruments(pipe.unet) as layers:
        record = AttentionRecord(layers, num_steps=50, prompts=[tokenize_prompt(pipe.tokenizer, prompt)])
        pipe(prompt, num_inference_steps=50, cross_attention_kwargs={"attention_record": record})

- Cross-attention layers get :class:`InstrumentedCrossAttnProcessor`. Its output stays on the fused
  path (``scaled_dot_product_attention``); when a record is passed it also computes the attention
  probabilities softmax(QK^T / sqrt(d)) of the conditional rows only (77 keys: cheap) and hands them
  to the record, which keeps their mean over query positions. The same processor applies a
  :class:`~dvdlib.attention.ablation.HeadAblation` passed as ``head_ablation``, so recording and ablation
  compose in one call with one processor. Two more per-call options serve the interventions
  (:mod:`dvdlib.interventions`): ``attention_edit``, an object whose ``apply(layer, probs)``
  returns edited probabilities (its ``is_identity`` zero point keeps the fused path, so the
  images equal the plain model's bit for bit), and ``attention_probe``, whose ``add(layer,
  probs)`` keeps the probabilities with their gradient. With either, the output is ``probs @ V``
  from the probabilities as edited, and a record receives those.
- Self-attention layers keep their own (fused) processor behind :class:`SelfAttentionPassThrough`,
  which only accepts and ignores our keyword arguments (diffusers warns on every call about keyword
  arguments a processor does not take).

Why the output is not computed as ``probs @ V`` from the recorded probabilities: that needs the
probabilities of the whole batch, where the record needs only the conditional half of a
classifier-free-guidance batch, plus copies into and out of the batched matrix products, while the
fused kernel writes its output in the layout the output projection reads. On the CPU (toy UNet,
cross-attention layers alone) ``probs @ V`` added about twice the time this design adds; see
``benchmarks/attention_overhead.py`` for the figures on a machine at hand.

The record the processors fill is :class:`dvdlib.attention.record.AttentionRecord`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers

RECORD_KWARG = "attention_record"
ABLATION_KWARG = "head_ablation"
EDIT_KWARG = "attention_edit"  # an edit of the probabilities (dvdlib.interventions.edits)
PROBE_KWARG = "attention_probe"  # a collector of the probabilities with their gradient
# The processors we replace on cross-attention layers: diffusers' defaults, whose maths ours repeats.
_REPLACEABLE = (AttnProcessor2_0, AttnProcessor)


# --------------------------------------------------------------------------------------------
# Processors


def attention_probabilities(attn, query: torch.Tensor, key: torch.Tensor,
                            attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(Q K^T * scale) per head, as the layer's attention uses them: ``[batch, head, query, token]``.

    Honours the layer's ``upcast_attention`` / ``upcast_softmax`` (SD 2.x sets them for fp16).
    """
    if attn.upcast_attention:
        query, key = query.float(), key.float()
    # Scaling the keys (77 rows) costs less than scaling the scores (one row per query position).
    scores = torch.matmul(query, (key * attn.scale).transpose(-1, -2))  # [batch, head, query, token]
    if attention_mask is not None:
        scores = scores + attention_mask
    return scores.softmax(dim=-1, dtype=torch.float32 if attn.upcast_softmax else None)


class InstrumentedCrossAttnProcessor:
    """Cross-attention on the fused path; records probabilities and ablates heads when asked per call."""

    def __init__(self, layer: CrossAttentionLayer):
        self.layer = layer

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 attention_record=None, head_ablation=None, attention_edit=None,
                 attention_probe=None) -> torch.Tensor:
        # attention_record: an AttentionRecord (dvdlib.attention.record) or None; attention_edit
        # and attention_probe: see the module notes (dvdlib.interventions uses them)
        if hidden_states.ndim != 3 or encoder_hidden_states is None:
            raise ValueError(
                f"{self.layer.name}: expected hidden states [batch, query, channel] and text states; got "
                f"hidden_states of shape {tuple(hidden_states.shape)} and encoder_hidden_states "
                f"{None if encoder_hidden_states is None else tuple(encoder_hidden_states.shape)}"
            )
        residual = hidden_states
        batch = hidden_states.shape[0]
        heads, head_dim = attn.heads, self.layer.head_dim
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)

        query = attn.to_q(hidden_states)
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
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, key.shape[2], batch)
            attention_mask = attention_mask.view(batch, heads, -1, key.shape[2])  # [batch, head, 1, token]

        if attention_edit is not None and attention_edit.is_identity:
            attention_edit = None  # its zero point: the plain layer, on the fused path
        if attention_edit is None and attention_probe is None:
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                 scale=attn.scale)  # [batch, head, query, dim]
            if attention_record is not None:
                rows = attention_record.conditional_rows(batch)
                mask = None if attention_mask is None else attention_mask[rows]
                attention_record.add(self.layer,
                                     attention_probabilities(attn, query[rows], key[rows], mask))
        else:  # the probabilities are needed in full: edited, probed, then multiplied by V
            probs = attention_probabilities(attn, query, key, attention_mask)  # [b, head, q, token]
            if attention_edit is not None:
                probs = attention_edit.apply(self.layer, probs)
            if attention_probe is not None:
                attention_probe.add(self.layer, probs)
            out = torch.matmul(probs.to(value.dtype), value)  # [batch, head, query, dim]
            if attention_record is not None:  # what the layer used: after the edit
                rows = attention_record.conditional_rows(batch)
                attention_record.add(self.layer, probs[rows].detach())
        if head_ablation is not None:
            out = head_ablation.replace_by_query_mean(self.layer, out)

        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim)  # [batch, query, head * dim]
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        if attn.residual_connection:
            out = out + residual
        if attn.rescale_output_factor != 1.0:
            out = out / attn.rescale_output_factor
        return out


class SelfAttentionPassThrough:
    """Runs the layer's previous processor unchanged; accepts and ignores the instruments' kwargs."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, attention_record=None,
                 head_ablation=None, attention_edit=None, attention_probe=None) -> torch.Tensor:
        return self.processor(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask)


@contextmanager
def attention_instruments(unet, sample_size: int | Sequence[int] | None = None
                          ) -> Iterator[tuple[CrossAttentionLayer, ...]]:
    """Install the instruments on ``unet`` for the ``with`` block; yields its cross-attention layers.

    ``sample_size`` is the latent size of the calls to come (the layers' query resolutions, used to
    shape spatial maps); by default the UNet's own. The previous processors are restored on exit,
    also when the block raises.
    """
    layers = cross_attention_layers(unet, sample_size)
    previous = unet.attn_processors  # a new dict: processor key -> processor
    by_name = {layer.name: layer for layer in layers}
    for key, processor in previous.items():
        if isinstance(processor, (InstrumentedCrossAttnProcessor, SelfAttentionPassThrough)):
            raise RuntimeError(f"{key} is already instrumented: attention_instruments does not nest")
        if key in by_name:
            attn = unet.get_submodule(by_name[key].module_path)
            if type(processor) not in _REPLACEABLE:
                raise ValueError(
                    f"{key} uses {type(processor).__name__}; the instruments replace only "
                    f"{', '.join(p.__name__ for p in _REPLACEABLE)} and would drop what it does"
                )
            for feature in ("spatial_norm", "group_norm"):
                if getattr(attn, feature, None) is not None:
                    raise ValueError(f"{key} uses {feature}, which the instruments do not handle")
    installed = {
        key: (InstrumentedCrossAttnProcessor(by_name[key]) if key in by_name
              else SelfAttentionPassThrough(processor))
        for key, processor in previous.items()
    }
    unet.set_attn_processor(installed)  # (set_attn_processor empties the dict it is given)
    try:
        yield layers
    finally:
        unet.set_attn_processor(dict(previous))


