"""Random-weight models with the real architectures' layouts, built from configs (no download).

Like diffusers' ``get_dummy_components``: tests, benchmarks and examples use these to exercise the
same code paths that real Stable Diffusion takes. ``width_scale=1`` gives the real UNet widths
(860 M parameters for SD 1.x); smaller scales keep the real layer and head layout with narrow
channels so a CPU test stays quick. ``unet_config("sdxl")`` is SDXL's UNet (70 cross-attention
layers); :func:`dummy_sdxl_pipeline` is a whole SDXL pipeline in the layout of diffusers' own
SDXL tests (12 cross-attention layers of 4 heads), with both of SDXL's tokenizers built offline.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from diffusers import (AutoencoderKL, DDIMScheduler, EulerDiscreteScheduler, StableDiffusionPipeline,
                       StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from dvdlib.prompts.tokenizer import clip_tokenizer

LAYOUTS = ("sd1", "sd2", "sdxl")

# The real UNet configs of SD 1.4 and SD 2.1 (the fields that shape the attention layout).
_REAL_UNET = {
    "sd1": dict(
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=8,  # legacy name: the number of heads, 8 in every layer
        cross_attention_dim=768,
        use_linear_projection=False,
        sample_size=64,
    ),
    "sd2": dict(
        block_out_channels=(320, 640, 1280, 1280),
        attention_head_dim=(5, 10, 20, 20),  # heads per level: head dimension 64
        cross_attention_dim=1024,
        use_linear_projection=True,
        sample_size=96,
    ),
}
_SD_BLOCKS = dict(
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
)
_COMMON_UNET = dict(in_channels=4, out_channels=4, layers_per_block=2)
# SDXL base 1.0's UNet: no attention at the first level, 2 and 10 transformer blocks per attention
# at the others; cross-attention to CLIP-L (768) and OpenCLIP-G (1280) states side by side; the
# time embedding also takes the pooled OpenCLIP-G text (1280) and six size ids (6 x 256).
_REAL_UNET["sdxl"] = dict(
    block_out_channels=(320, 640, 1280),
    attention_head_dim=(5, 10, 20),  # heads per level: head dimension 64
    transformer_layers_per_block=(1, 2, 10),
    cross_attention_dim=2048,
    use_linear_projection=True,
    sample_size=128,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)


def unet_config(layout: str, width_scale: float = 1.0, sample_size: int | None = None,
                cross_attention_dim: int | None = None) -> dict:
    """The UNet config of ``layout`` ("sd1", "sd2" or "sdxl"), channels multiplied by ``width_scale``.

    Head counts stay the real ones, so the head dimension shrinks with the width.
    """
    if layout not in _REAL_UNET:
        raise ValueError(f"unknown layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    if not 0 < width_scale <= 1:
        raise ValueError(f"width_scale must be in (0, 1], got {width_scale!r}")
    config = {**_COMMON_UNET, **_SD_BLOCKS, **_REAL_UNET[layout]}
    if width_scale < 1:
        # Narrow channels that stay divisible by the head counts and the norm groups.
        heads = config["attention_head_dim"]
        heads = heads if isinstance(heads, tuple) else (heads,) * len(config["block_out_channels"])
        channels = tuple(
            max(8 * h, int(round(c * width_scale / (8 * h))) * 8 * h)
            for c, h in zip(config["block_out_channels"], heads)
        )
        config.update(block_out_channels=channels, norm_num_groups=8)
    if sample_size is not None:
        config["sample_size"] = sample_size
    if cross_attention_dim is not None:
        config["cross_attention_dim"] = cross_attention_dim
    return config


def _tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),  # four levels: the real 8x latent downsampling
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )


def _tiny_text_config(text_hidden: int, **extra) -> CLIPTextConfig:
    """A two-layer CLIP text encoder of width ``text_hidden`` on CLIP's real vocabulary."""
    return CLIPTextConfig(
        hidden_size=text_hidden,
        intermediate_size=2 * text_hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=49408,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        **extra,
    )


def dummy_sd_components(layout: str = "sd1", width_scale: float = 0.1, sample_size: int = 8,
                        text_hidden: int = 32, seed: int = 0) -> dict:
    """Components of a random-weight ``StableDiffusionPipeline`` with the ``layout`` UNet."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **unet_config(layout, width_scale, sample_size=sample_size, cross_attention_dim=text_hidden)
    )
    vae = _tiny_vae()
    text_encoder = CLIPTextModel(_tiny_text_config(text_hidden))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="v_prediction" if layout == "sd2" else "epsilon",
    )
    return dict(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
    )


def dummy_sd_pipeline(layout: str = "sd1", **kwargs) -> StableDiffusionPipeline:
    """A random-weight ``StableDiffusionPipeline`` (see :func:`dummy_sd_components`)."""
    pipe = StableDiffusionPipeline(**dummy_sd_components(layout, **kwargs),
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def dummy_sdxl_components(sample_size: int = 8, text_hidden: int = 32, seed: int = 0) -> dict:
    """Components of a random-weight ``StableDiffusionXLPipeline``.

    The UNet has the layout of diffusers' SDXL pipeline tests (two levels, attention at the second,
    2 transformer blocks per attention: 12 cross-attention layers of 4 heads) with wider channels
    (head dimension 16). Two CLIP text encoders of width ``text_hidden`` feed it side by side;
    the second's projection gives the pooled text that, with six size ids, conditions the time
    embedding, as in SDXL. Both tokenizers are CLIP's BPE; the second pads with "!" as
    OpenCLIP-G's does. The scheduler is SDXL's own (Euler); loading switches it to DDIM.
    """
    time_ids_width = 8  # per size id; SDXL: 256
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **_COMMON_UNET,
        block_out_channels=(32, 64),
        attention_head_dim=(2, 4),  # heads per level
        transformer_layers_per_block=(1, 2),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_ids_width,
        projection_class_embeddings_input_dim=6 * time_ids_width + text_hidden,
        cross_attention_dim=2 * text_hidden,
        sample_size=sample_size,
        norm_num_groups=8,
    )
    text_encoder = CLIPTextModel(_tiny_text_config(text_hidden))
    text_encoder_2 = CLIPTextModelWithProjection(_tiny_text_config(text_hidden,
                                                                   projection_dim=text_hidden))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1,
                                       timestep_spacing="leading")
    return dict(unet=unet, vae=_tiny_vae(), text_encoder=text_encoder,
                text_encoder_2=text_encoder_2, tokenizer=clip_tokenizer(),
                tokenizer_2=clip_tokenizer(pad_token="!"), scheduler=scheduler,
                image_encoder=None, feature_extractor=None)


def dummy_sdxl_pipeline(**kwargs) -> StableDiffusionXLPipeline:
    """A random-weight ``StableDiffusionXLPipeline`` (see :func:`dummy_sdxl_components`), without
    the invisible watermark (an optional package that would change the pixels)."""
    pipe = StableDiffusionXLPipeline(**dummy_sdxl_components(**kwargs), add_watermarker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def random_unet(layout: str, cross_attention_dim: int = 32, seed: int = 0) -> UNet2DConditionModel:
    """A random-weight UNet in eval mode: "toy" (the toy world's layout) or a narrow "sd1"/"sd2"."""
    torch.manual_seed(seed)
    if layout == "toy":
        from dvdlib.toyworld.pipeline import unet_config as toy_unet_config

        config = {**toy_unet_config(), "cross_attention_dim": cross_attention_dim}
    else:
        config = unet_config(layout, 0.1, sample_size=8, cross_attention_dim=cross_attention_dim)
    return UNet2DConditionModel(**config).eval()


class CallCounter:
    """A generation hook (see :func:`dvdlib.generation.protocol.generate`) noting each pipeline call's images
    as (case_num, seed) pairs."""

    def __init__(self):
        self.calls: list[list[tuple[int, int]]] = []

    @contextmanager
    def __call__(self, call):
        self.calls.append([(job.case_num, job.seed) for job in call.jobs])
        yield
