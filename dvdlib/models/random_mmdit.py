"""Tiny random-weight SD3, SD3.5 and Flux pipelines, built in code (no download).

Like diffusers' own ``get_dummy_components`` for these pipelines, but offline: the Hub's tiny
tokenizers and T5 config are replaced by

- the real CLIP BPE tokenizer (its vocabulary ships inside ``open_clip``;
  :func:`dvdlib.prompts.tokenizer.clip_tokenizer`), twice for SD3, the second padding with "!" as
  SD3's and SDXL's second tokenizer does;
- a T5-style SentencePiece tokenizer built here (:func:`t5_style_tokenizer`): a ``tokenizers``
  Unigram model with "▁" word starts, ``<pad>`` (id 0), ``</s>`` (id 1) and ``<unk>`` (id 2) as in
  T5, so words split into several pieces and offsets map them back to the prompt's characters;
- text encoders built from ``CLIPTextConfig`` and ``T5Config``.

The transformers keep the real architectures' structure at toy widths: SD3 with two or more joint
blocks (the last one is ``context_pre_only``, as in the real model), SD3.5 with a dual-attention
(image-only ``attn2``) first block and RMS-normed queries and keys, Flux with double-stream and
single-stream blocks and guidance embedding (like Flux.1-dev). A 32-pixel image is a 16x16 latent:
8x8 = 64 image tokens in either family. :func:`save_tiny_mmdit_pipeline` writes a pipeline folder
that ``DiffusionPipeline.from_pretrained`` loads as it would a user's weights.
"""

from __future__ import annotations

import math
import string
from pathlib import Path

import torch
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline,
                       FluxTransformer2DModel, SD3Transformer2DModel, StableDiffusion3Pipeline)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer,
                          T5Config, T5EncoderModel, T5Tokenizer)

from dvdlib.prompts.tokenizer import MAX_LENGTH, clip_vocab_and_merges

FAMILIES = ("sd3", "sd3.5", "flux")
# The text lengths the tiny pipelines are run with in tests (the real defaults are 256 and 512).
TINY_T5_LENGTH = 32
CLIP_HIDDEN = 32  # each CLIP encoder's width (SD3 concatenates two: 64)
T5_HIDDEN = 64  # the T5 encoder's width: SD3 pads its CLIP features to it


def t5_style_tokenizer(num_clip_tokens: int = 20000, clip_vocab: dict[str, int] | None = None
                       ) -> T5Tokenizer:
    """A T5-style SentencePiece (Unigram) tokenizer built in code, with offsets.

    Pieces: "▁" + every whole-word token among CLIP's first ``num_clip_tokens`` BPE tokens (a word
    start), the same strings without "▁" (word continuations), and every ASCII letter, digit and
    punctuation mark with and without "▁", so any ASCII text is tokenized. Scores fall with the
    CLIP rank (frequent words stay whole; rare ones split: "Neuschwanstein" -> ▁N eu sch wan stein).
    Case is kept, as in T5. Ids 0, 1, 2 are ``<pad>``, ``</s>``, ``<unk>``, as in T5.
    ``clip_vocab`` is CLIP's vocabulary when the caller has read it already.
    """
    if not isinstance(num_clip_tokens, int) or num_clip_tokens < 512:
        raise ValueError(f"num_clip_tokens must be an int >= 512, got {num_clip_tokens!r}")
    vocab = clip_vocab_and_merges()[0] if clip_vocab is None else clip_vocab
    pieces: dict[str, float] = {}
    for token, rank in vocab.items():
        if rank >= num_clip_tokens:
            continue
        word = token.removesuffix("</w>")
        if not word or not word.isascii() or not word.isprintable() or word.isspace():
            continue
        score = -math.log(2.0 + rank)
        if token.endswith("</w>"):
            pieces.setdefault("▁" + word, score)
        pieces.setdefault(word, score - 1.0)
    for char in string.ascii_letters + string.digits + string.punctuation:
        pieces.setdefault("▁" + char, -15.0)
        pieces.setdefault(char, -15.0)
    scored = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -3.0)]
    scored += sorted(pieces.items(), key=lambda item: (-item[1], item[0]))
    return T5Tokenizer(vocab=scored, extra_ids=0)


def _clip_encoder(with_projection: bool, seed: int):
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        hidden_size=CLIP_HIDDEN, intermediate_size=2 * CLIP_HIDDEN, projection_dim=CLIP_HIDDEN,
        num_hidden_layers=2, num_attention_heads=4, vocab_size=49408, max_position_embeddings=MAX_LENGTH,
        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_act="gelu")
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _t5_encoder(vocab_size: int, seed: int) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=T5_HIDDEN, d_kv=16, d_ff=2 * T5_HIDDEN,
                      num_layers=2, num_heads=4, relative_attention_num_buckets=8,
                      relative_attention_max_distance=32, dropout_rate=0.0,
                      feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False)
    return T5EncoderModel(config).eval()


def _vae(seed: int) -> AutoencoderKL:
    """Two levels: a latent at half the image size (the real ones are 8x smaller), 4 channels."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, block_out_channels=(8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, sample_size=32, use_quant_conv=False,
        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035).eval()


def _tokenizers(count: int) -> list:
    """``count`` CLIP tokenizers (the second pads with "!", id 0, like SD3's and SDXL's second
    tokenizer), then the T5-style one; CLIP's files are read once."""
    vocab, merges = clip_vocab_and_merges()
    clips = [CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH, pad_token=pad)
             for pad in ("<|endoftext|>", "!")[:count]]
    return [*clips, t5_style_tokenizer(clip_vocab=vocab)]


def tiny_sd3_transformer(variant: str = "sd3", num_layers: int = 2, heads: int = 4,
                         seed: int = 0) -> SD3Transformer2DModel:
    """A random SD3 (``variant="sd3"``) or SD3.5-like (``"sd3.5"``) transformer, patch size 2.

    SD3.5's layout: the first block has an image-only second attention (``attn2``,
    ``dual_attention_layers=(0,)``) and queries and keys are RMS-normed per head.
    """
    if variant not in ("sd3", "sd3.5"):
        raise ValueError(f"unknown SD3 variant {variant!r}; accepted: 'sd3', 'sd3.5'")
    if not isinstance(num_layers, int) or num_layers < 2:
        raise ValueError(f"num_layers must be an int >= 2 (the last block is context_pre_only), "
                         f"got {num_layers!r}")
    torch.manual_seed(seed)
    return SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=num_layers,
        attention_head_dim=8, num_attention_heads=heads, joint_attention_dim=T5_HIDDEN,
        caption_projection_dim=8 * heads, pooled_projection_dim=2 * CLIP_HIDDEN, pos_embed_max_size=32,
        dual_attention_layers=(0,) if variant == "sd3.5" else (),
        qk_norm="rms_norm" if variant == "sd3.5" else None).eval()


def tiny_flux_transformer(num_layers: int = 2, num_single_layers: int = 2, heads: int = 2,
                          guidance_embeds: bool = True, seed: int = 0) -> FluxTransformer2DModel:
    """A random Flux transformer: double-stream then single-stream blocks, head dimension 16."""
    torch.manual_seed(seed)
    return FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=num_layers, num_single_layers=num_single_layers,
        attention_head_dim=16, num_attention_heads=heads, joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=CLIP_HIDDEN, guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 6, 6)).eval()


# The real transformers' configs (the fields that shape the attention), from the published
# model configs: depth = heads for SD3 (head dim 64); Flux.1: 19 double + 38 single blocks of 24
# heads (head dim 128). ``max_sequence_length`` is the pipelines' default text length.
MMDIT_LAYOUTS = {
    "sd3-medium": dict(family="sd3", num_layers=24, heads=24, head_dim=64, text_length=77 + 256),
    "sd3.5-medium": dict(family="sd3", num_layers=24, heads=24, head_dim=64, text_length=77 + 256,
                         dual_attention_layers=tuple(range(13)), qk_norm="rms_norm"),
    "sd3.5-large": dict(family="sd3", num_layers=38, heads=38, head_dim=64, text_length=77 + 256,
                        qk_norm="rms_norm"),
    "flux-dev": dict(family="flux", num_layers=19, num_single_layers=38, heads=24, head_dim=128,
                     text_length=512),
}


def layout_transformer(layout: str, head_dim: int | None = None, num_layers: int | None = None,
                       num_single_layers: int | None = None, seed: int = 0):
    """A random transformer with a real model's head layout (:data:`MMDIT_LAYOUTS`).

    ``head_dim`` narrows every head (the head counts stay real: a CPU-sized model); ``num_layers``
    and ``num_single_layers`` keep only the first blocks. Text features are 4096 wide as in the real
    models (T5-XXL); SD3 latents have 16 channels and patch size 2, Flux's 64 packed channels.
    """
    if layout not in MMDIT_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(MMDIT_LAYOUTS)}")
    spec = dict(MMDIT_LAYOUTS[layout])
    head_dim = spec["head_dim"] if head_dim is None else head_dim
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 8 or head_dim % 8:
        raise ValueError(f"head_dim must be a multiple of 8, got {head_dim!r}")
    layers = spec["num_layers"] if num_layers is None else num_layers
    width = spec["heads"] * head_dim
    torch.manual_seed(seed)
    if spec["family"] == "sd3":
        dual = tuple(i for i in spec.get("dual_attention_layers", ()) if i < layers)
        return SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=layers,
            attention_head_dim=head_dim, num_attention_heads=spec["heads"], joint_attention_dim=4096,
            caption_projection_dim=width, pooled_projection_dim=2048, pos_embed_max_size=192,
            dual_attention_layers=dual, qk_norm=spec.get("qk_norm")).eval()
    single = spec["num_single_layers"] if num_single_layers is None else num_single_layers
    return FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=layers, num_single_layers=single,
        attention_head_dim=head_dim, num_attention_heads=spec["heads"], joint_attention_dim=4096,
        pooled_projection_dim=768, guidance_embeds=True,
        axes_dims_rope=_rope_axes(head_dim)).eval()


def _rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Flux's rotary split of a head (16, 56, 56 at 128), scaled to ``head_dim``; even parts."""
    first = max(2, 2 * (head_dim // 16))
    second = 2 * ((head_dim - first) // 4)
    return first, second, head_dim - first - second


def tiny_sd3_components(variant: str = "sd3", num_layers: int = 2, heads: int = 4,
                        seed: int = 0) -> dict:
    """Components of a random ``StableDiffusion3Pipeline`` (``variant`` "sd3" or "sd3.5")."""
    tokenizer, tokenizer_2, tokenizer_3 = _tokenizers(2)
    return dict(
        transformer=tiny_sd3_transformer(variant, num_layers, heads, seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed),
        text_encoder=_clip_encoder(True, seed),
        tokenizer=tokenizer,
        text_encoder_2=_clip_encoder(True, seed + 1),
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5_encoder(len(tokenizer_3), seed),
        tokenizer_3=tokenizer_3,
        image_encoder=None,
        feature_extractor=None,
    )


def tiny_flux_components(num_layers: int = 2, num_single_layers: int = 2, heads: int = 2,
                         guidance_embeds: bool = True, seed: int = 0) -> dict:
    """Components of a random ``FluxPipeline`` (guidance-distilled like Flux.1-dev by default)."""
    tokenizer, tokenizer_2 = _tokenizers(1)
    return dict(
        transformer=tiny_flux_transformer(num_layers, num_single_layers, heads, guidance_embeds, seed),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(seed),
        text_encoder=_clip_encoder(False, seed),
        tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(len(tokenizer_2), seed),
        tokenizer_2=tokenizer_2,
        image_encoder=None,
        feature_extractor=None,
    )


def tiny_mmdit_pipeline(family: str, **kwargs) -> StableDiffusion3Pipeline | FluxPipeline:
    """A tiny random pipeline of ``family`` ("sd3", "sd3.5" or "flux"); ``kwargs`` go to the
    components' builder. Run it at 32 px with ``max_sequence_length=TINY_T5_LENGTH``."""
    if family == "flux":
        pipe = FluxPipeline(**tiny_flux_components(**kwargs))
    elif family in ("sd3", "sd3.5"):
        pipe = StableDiffusion3Pipeline(**tiny_sd3_components(family, **kwargs))
    else:
        raise ValueError(f"unknown family {family!r}; accepted: {', '.join(FAMILIES)}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_mmdit_pipeline(family: str, folder: str | Path, **kwargs) -> Path:
    """Build a tiny ``family`` pipeline and save it as a diffusers pipeline folder; returns it.

    The folder holds ``model_index.json`` and one subfolder per component (safetensors weights,
    tokenizer files), so ``DiffusionPipeline.from_pretrained(folder)`` loads it with no network.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty; give a new or empty folder for the pipeline")
    tiny_mmdit_pipeline(family, **kwargs).save_pretrained(folder, safe_serialization=True)
    return folder
