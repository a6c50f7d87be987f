"""Recording and ablating the image-to-text attention of SD3/SD3.5 and Flux, with diffusers' processors.

The MMDiT counterpart of :mod:`dvdlib.attention.recorder`. The instruments are installed once with
:func:`joint_attention_instruments` (a context manager around ``transformer.set_attn_processor``
that restores the previous processors on exit, error or not); each call says what to do through
``joint_attention_kwargs``::

    with joint_attention_instruments(pipe.transformer, sample_size=(64, 64)) as layers:
        keys = pipeline_text_keys(pipe, prompt, max_sequence_length=256)
        record = JointAttentionRecord(layers, num_steps=28, prompts=[keys], guidance="batched")
        pipe(prompt, num_inference_steps=28, height=512, width=512, max_sequence_length=256,
             joint_attention_kwargs={"attention_record": record})

- ``attention_record``: a :class:`~dvdlib.attention.joint_record.JointAttentionRecord`;
- ``head_ablation``: a :class:`~dvdlib.attention.joint_ablation.JointHeadAblation`;
- ``text_length``: the number of text keys (the call's ``max_sequence_length``; SD3 adds 77).
  Flux's single-stream blocks see one ``[text; image]`` stream and cannot tell where the text
  ends, so a call that records or ablates them must pass it (the double-stream blocks check it).

Each processor repeats the maths of the diffusers processor it replaces (``JointAttnProcessor2_0``
for SD3, ``FluxAttnProcessor`` for Flux, using diffusers' own projection, rotary and dispatch
helpers) and keeps its fused attention for the output; installed and idle, it gives the same
output. With a record it also computes the image-query x text-key statistics in chunks
(:func:`~dvdlib.attention.joint_statistics.text_statistics`). SD3.5's image-only ``attn2`` keeps its own
processor behind :class:`ImageOnlyPassThrough`, which accepts and ignores our keywords (diffusers
drops, with a warning, keywords a processor does not declare).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.attention_processor import JointAttnProcessor2_0
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor, _get_qkv_projections

from dvdlib.attention.joint_layers import joint_attention_layers, transformer_family
from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.attention.recorder import ABLATION_KWARG, RECORD_KWARG

TEXT_LENGTH_KWARG = "text_length"
# The processors our instruments replace, per family: their maths is what ours repeats.
_REPLACEABLE = {"sd3": JointAttnProcessor2_0, "flux": FluxAttnProcessor}


def _sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)


class SD3JointProcessor:
    """SD3's joint attention (``[image; text]``, image first) with the instruments."""

    def __init__(self, layer: CrossAttentionLayer):
        self.layer = layer

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None,
                 attention_record=None, head_ablation=None) -> tuple[torch.Tensor, torch.Tensor]:
        # attention_mask is accepted and unused, as by diffusers' JointAttnProcessor2_0.
        if hidden_states.ndim != 3 or encoder_hidden_states is None:
            text = None if encoder_hidden_states is None else tuple(encoder_hidden_states.shape)
            raise ValueError(f"{self.layer.label}: expected image states [batch, token, channel] and "
                             f"text states, got {tuple(hidden_states.shape)} and {text}")
        batch, n_image = hidden_states.shape[:2]
        heads, head_dim = attn.heads, self.layer.head_dim

        def split(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch, -1, heads, head_dim).transpose(1, 2)  # [batch, head, token, dim]

        query, key, value = (split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)),
                             split(attn.to_v(hidden_states)))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        text_query = split(attn.add_q_proj(encoder_hidden_states))
        text_key = split(attn.add_k_proj(encoder_hidden_states))
        text_value = split(attn.add_v_proj(encoder_hidden_states))
        if attn.norm_added_q is not None:
            text_query = attn.norm_added_q(text_query)
        if attn.norm_added_k is not None:
            text_key = attn.norm_added_k(text_key)
        if head_ablation is not None:
            text_value = head_ablation.text_values(self.layer, text_value, head_dim=1)
        query = torch.cat([query, text_query], dim=2)  # [batch, head, image + text, dim]
        key = torch.cat([key, text_key], dim=2)
        value = torch.cat([value, text_value], dim=2)

        out = _sdpa(query, key, value)  # [batch, head, image + text, dim]
        image, text = slice(0, n_image), slice(n_image, None)
        if head_ablation is not None:
            out = head_ablation.mask_text(self.layer, out, query, key, value, image, _sdpa)
        if attention_record is not None:
            attention_record.observe(self.layer, query, key, image, text, scale=head_dim ** -0.5)

        out = out.transpose(1, 2).reshape(batch, -1, heads * head_dim).to(query.dtype)
        hidden_states, encoder_hidden_states = out[:, :n_image], out[:, n_image:]
        if not attn.context_pre_only:
            encoder_hidden_states = attn.to_add_out(encoder_hidden_states)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))  # projection, dropout
        return hidden_states, encoder_hidden_states


class FluxJointProcessor:
    """Flux's attention (``[text; image]``, text first) with the instruments: double-stream blocks
    (separate text projections) and single-stream blocks (one stream; text length given per call)."""

    def __init__(self, layer: CrossAttentionLayer, replaced: FluxAttnProcessor):
        self.layer = layer
        # The attention backend and parallel settings of the processor replaced (set_attention_backend
        # sets these on every processor that has them, ours included).
        self._attention_backend = replaced._attention_backend
        self._parallel_config = replaced._parallel_config

    def _attend(self, query, key, value, attention_mask=None) -> torch.Tensor:
        """The fused attention, ``[batch, token, head, dim]`` in and out, as diffusers calls it."""
        return dispatch_attention_fn(query, key, value, attn_mask=attention_mask,
                                     backend=self._attention_backend, parallel_config=self._parallel_config)

    def _attend_heads_first(self, query, key, value) -> torch.Tensor:
        return self._attend(*(t.transpose(1, 2) for t in (query, key, value))).transpose(1, 2)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb=None,
                 attention_record=None, head_ablation=None, text_length: int | None = None):
        used = ((attention_record is not None and attention_record.covers(self.layer))
                or (head_ablation is not None and self.layer.name in head_ablation.heads))
        if used and attention_mask is not None:
            raise ValueError(f"{self.layer.label}: recording and ablating take no attention mask")
        query, key, value, text_query, text_key, text_value = _get_qkv_projections(
            attn, hidden_states, encoder_hidden_states)
        query = attn.norm_q(query.unflatten(-1, (-1, attn.head_dim)))  # [batch, token, head, dim]
        key = attn.norm_k(key.unflatten(-1, (-1, attn.head_dim)))
        value = value.unflatten(-1, (-1, attn.head_dim))
        if attn.added_kv_proj_dim is not None:  # double stream: text has its own projections
            n_text = encoder_hidden_states.shape[1]
            if text_length is not None and text_length != n_text:
                raise ValueError(f"{self.layer.label}: text_length={text_length!r} but the call has "
                                 f"{n_text} text tokens; pass the call's max_sequence_length")
            text_query = attn.norm_added_q(text_query.unflatten(-1, (-1, attn.head_dim)))
            text_key = attn.norm_added_k(text_key.unflatten(-1, (-1, attn.head_dim)))
            text_value = text_value.unflatten(-1, (-1, attn.head_dim))
            if head_ablation is not None:
                text_value = head_ablation.text_values(self.layer, text_value, head_dim=2)
            query = torch.cat([text_query, query], dim=1)  # [batch, text + image, head, dim]
            key = torch.cat([text_key, key], dim=1)
            value = torch.cat([text_value, value], dim=1)
        else:  # single stream: [text; image] arrives as one sequence
            n_text = self._text_length(text_length, hidden_states.shape[1]) if used else None
            if used and head_ablation is not None:
                value = torch.cat([head_ablation.text_values(self.layer, value[:, :n_text], head_dim=2),
                                   value[:, n_text:]], dim=1)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)

        out = self._attend(query, key, value, attention_mask)  # [batch, text + image, head, dim]
        if used:
            text, image = slice(0, n_text), slice(n_text, None)
            heads_first = [t.transpose(1, 2) for t in (out, query, key, value)]  # [batch, head, token, dim]
            if head_ablation is not None:
                out = head_ablation.mask_text(self.layer, *heads_first, image,
                                              self._attend_heads_first).transpose(1, 2)
            if attention_record is not None:
                attention_record.observe(self.layer, heads_first[1], heads_first[2], image, text,
                                         scale=attn.head_dim ** -0.5)
        out = out.flatten(2, 3).to(query.dtype)  # [batch, token, head * dim]
        if encoder_hidden_states is None:
            return out
        text_out, image_out = out.split_with_sizes([n_text, out.shape[1] - n_text], dim=1)
        image_out = attn.to_out[1](attn.to_out[0](image_out.contiguous()))
        return image_out, attn.to_add_out(text_out.contiguous())

    def _text_length(self, text_length, sequence: int) -> int:
        if isinstance(text_length, bool) or not isinstance(text_length, int) \
                or not 0 < text_length < sequence:
            raise ValueError(
                f"{self.layer.label} is a single-stream block ([text; image] in one sequence of {sequence}): "
                f"pass joint_attention_kwargs={{{TEXT_LENGTH_KWARG!r}: max_sequence_length}} (an int in "
                f"1..{sequence - 1}) to record or ablate it; got {text_length!r}")
        return text_length


class ImageOnlyPassThrough:
    """Runs an attention's previous processor unchanged (SD3.5's image-only ``attn2``); accepts
    and ignores the instruments' keywords."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, attention_record=None, head_ablation=None,
                 text_length=None):
        return self.processor(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                              attention_mask=attention_mask)


_OURS = (SD3JointProcessor, FluxJointProcessor, ImageOnlyPassThrough)


def call_guidance(transformer, guidance_scale: float, true_cfg_scale: float = 1.0,
                  negative_prompt: bool = False) -> str:
    """How a pipeline call with these settings calls ``transformer``: the record's ``guidance``.

    SD3's pipeline batches ``[negative; positive]`` when ``guidance_scale > 1`` ("batched"). Flux's
    ``guidance_scale`` is an embedding (one pass, "none"); it adds a separate negative call when
    ``true_cfg_scale > 1`` and a negative prompt is given ("separate").
    """
    if transformer_family(transformer) == "sd3":
        return "batched" if guidance_scale > 1 else "none"
    return "separate" if true_cfg_scale > 1 and negative_prompt else "none"


@contextmanager
def joint_attention_instruments(transformer, sample_size: int | Sequence[int] | None = None
                                ) -> Iterator[tuple[CrossAttentionLayer, ...]]:
    """Install the instruments on an SD3/SD3.5 or Flux ``transformer`` for the ``with`` block;
    yields its joint-attention layers (:func:`~dvdlib.attention.joint_layers.joint_attention_layers`).

    ``sample_size`` is the latent size of the calls to come (image size // the pipeline's
    ``vae_scale_factor``), used to shape spatial maps. The previous processors are restored on
    exit, also when the block raises.
    """
    family = transformer_family(transformer)
    layers = joint_attention_layers(transformer, sample_size)
    by_name = {layer.name: layer for layer in layers}
    previous = transformer.attn_processors  # a new dict: processor key -> processor
    installed = {}
    for key, processor in previous.items():
        if isinstance(processor, _OURS):
            raise RuntimeError(f"{key} is already instrumented: joint_attention_instruments does not nest")
        if key not in by_name:
            installed[key] = ImageOnlyPassThrough(processor)
            continue
        if type(processor) is not _REPLACEABLE[family]:
            raise ValueError(f"{key} uses {type(processor).__name__}; the instruments replace only "
                             f"{_REPLACEABLE[family].__name__} and would drop what it does")
        installed[key] = (SD3JointProcessor(by_name[key]) if family == "sd3"
                          else FluxJointProcessor(by_name[key], processor))
    missing = sorted(set(by_name) - set(previous))
    if missing:
        raise ValueError(f"{type(transformer).__name__} has no processors at {missing}")
    transformer.set_attn_processor(installed)  # (set_attn_processor empties the dict it is given)
    try:
        yield layers
    finally:
        transformer.set_attn_processor(dict(previous))
