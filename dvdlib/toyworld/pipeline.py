"""The toy text-to-image model, packaged and called like Stable Diffusion.

``ToyDiffusionPipeline`` is a ``diffusers.DiffusionPipeline`` with Stable Diffusion's parts and
call: a ``UNet2DConditionModel`` with cross-attention (7 ``attn2`` layers x 4 heads), a
transformers ``CLIPTextModel`` (small), the real CLIP BPE tokenizer (with 8 positions instead
of 77, see :data:`TEXT_POSITIONS`) and a ``DDIMScheduler``. The attention recorder and the
head-ablation processors of dvdlib therefore work on it unchanged: the UNet batch under
classifier-free guidance is ``[unconditional; conditional]`` and ``cross_attention_kwargs``
reaches every UNet call as given.

The one difference is the "latent". There is no VAE: a 32x32 RGB image is folded into a 16x16x12
tensor by ``pixel_unshuffle`` (each 2x2 block of pixels becomes 12 channels), which has no
parameters and is exactly invertible (``pixel_shuffle``), then standardised with a shift and
scale measured on the world's scenes. Diffusion on raw pixels at full resolution learned the
dark background poorly in our prototype; the folded, standardised form with v-prediction and a
cosine noise schedule trains in minutes on a CPU.

Tokens outside the toy world's vocabulary (its concept and object words) have all-zero token
embeddings from initialisation on; they never receive a gradient, so they stay zero: an unknown
word reads as a blank, and a shipped checkpoint stores only the world's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from dvdlib.prompts.tokenizer import clip_tokenizer

FOLD = 2  # pixel_unshuffle factor: 32x32x3 pixels <-> 16x16x12 latent
# Mean and standard deviation of scene pixels in [-1, 1], measured on 2,000 training scenes of
# the default world, so the latent has roughly zero mean and unit variance.
LATENT_SHIFT = 0.19
LATENT_SCALE = 0.60
OUTPUT_TYPES = ("pil", "np", "pt", "latent")
# Token positions of the toy text encoder. A caption ("sunset coaster") is 2 words, 4 tokens with
# start and end-of-text, so 8 leaves room for longer user prompts. With Stable Diffusion's
# 77, seventy near-identical padding keys took about 90 % of the toy UNet's cross-attention and
# the word tokens 1-2 % each, and the first (shape) models barely told words apart.
TEXT_POSITIONS = 8


def unet_config(resolution: int = 32) -> dict:
    """The toy UNet: three levels, 7 cross-attention layers with 4 heads each (about 1.2 M
    parameters)."""
    return dict(
        sample_size=resolution // FOLD,
        in_channels=3 * FOLD * FOLD,
        out_channels=3 * FOLD * FOLD,
        block_out_channels=(32, 32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=4,  # legacy diffusers name: the number of heads per layer
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
    )


def text_config(positions: int = TEXT_POSITIONS) -> CLIPTextConfig:
    """A small CLIP text encoder on CLIP's vocabulary and ``positions`` token positions."""
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=positions,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )


def scheduler_config() -> dict:
    """Cosine noise schedule with v-prediction; DDIM sampling with trailing timesteps, so the
    first step starts from pure noise."""
    return dict(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction",
        clip_sample=False,
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing="trailing",
    )


def world_token_ids(tokenizer: CLIPTokenizer, words: Sequence[str]) -> list[int]:
    """Every token id a prompt made of ``words`` can produce, with start and end-of-text."""
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for word in words:
        ids.update(tokenizer(word, add_special_tokens=False).input_ids)
    return sorted(ids)


def toy_components(words: Sequence[str], seed: int = 0) -> dict:
    """Freshly initialised components of a :class:`ToyDiffusionPipeline` (seeded).

    Token-embedding rows outside ``words`` are set to zero (see the module docstring).
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet = UNet2DConditionModel(**unet_config())
        text_encoder = CLIPTextModel(text_config())
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's global stream alone
    tokenizer = clip_tokenizer(text_encoder.config.max_position_embeddings)
    keep = torch.zeros(text_encoder.config.vocab_size, dtype=torch.bool)
    keep[world_token_ids(tokenizer, words)] = True
    with torch.no_grad():
        text_encoder.get_input_embeddings().weight[~keep] = 0.0
    return dict(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
                scheduler=DDIMScheduler(**scheduler_config()))


def training_noise_scheduler(pipe: "ToyDiffusionPipeline") -> DDPMScheduler:
    """The DDPM forward process with the pipeline's noise schedule (for ``add_noise`` and
    ``get_velocity`` in training)."""
    return DDPMScheduler.from_config(pipe.scheduler.config)


@dataclass
class ToyPipelineOutput(BaseOutput):
    """``images``: one per prompt; PIL images, or an array/tensor for output_type np/pt/latent."""

    images: list[Image.Image] | np.ndarray | torch.Tensor


class ToyDiffusionPipeline(DiffusionPipeline):
    """Text-to-image diffusion on 32x32 toy scenes, with Stable Diffusion's call signature."""

    model_cpu_offload_seq = "text_encoder->unet"
    # What a step-end callback may ask for; prompt_embeds is [uncond; cond] under guidance.
    _callback_tensor_inputs = ["latents", "prompt_embeds"]

    def __init__(self, unet: UNet2DConditionModel, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, scheduler: DDIMScheduler,
                 latent_shift: float = LATENT_SHIFT, latent_scale: float = LATENT_SCALE):
        super().__init__()
        expected = 3 * FOLD * FOLD
        if unet.config.in_channels != expected or unet.config.out_channels != expected:
            raise ValueError(f"the UNet must have {expected} input and output channels (RGB "
                             f"folded {FOLD}x{FOLD}), got {unet.config.in_channels} and "
                             f"{unet.config.out_channels}")
        if latent_scale <= 0:
            raise ValueError(f"latent_scale must be > 0, got {latent_scale!r}")
        self.register_modules(unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
                              scheduler=scheduler)
        self.register_to_config(latent_shift=latent_shift, latent_scale=latent_scale)

    # --- the parameter-free "latent" --------------------------------------------------------
    def images_to_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[batch, 3, h, w]`` in [0, 1] -> latents ``[batch, 12, h/2, w/2]``."""
        pixels = images * 2 - 1
        return (F.pixel_unshuffle(pixels, FOLD) - self.config.latent_shift) / self.config.latent_scale

    def latents_to_images(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``[batch, 12, h/2, w/2]`` -> images ``[batch, 3, h, w]`` clamped to [0, 1]."""
        pixels = F.pixel_shuffle(latents * self.config.latent_scale + self.config.latent_shift, FOLD)
        return ((pixels + 1) / 2).clamp(0, 1)

    # --- text -------------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Text-encoder hidden states ``[batch, positions, hidden]``: the UNet's cross-attention
        input."""
        tokens = self.tokenizer(prompts, padding="max_length", truncation=True,
                                max_length=self.tokenizer.model_max_length, return_tensors="pt")
        return self.text_encoder(tokens.input_ids.to(self.device))[0]

    # --- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 4.0,
        negative_prompt: str | list[str] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        cross_attention_kwargs: dict | None = None,
        return_dict: bool = True,
        callback_on_step_end=None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ):
        """Generate one image per prompt; the keywords mean what they mean for Stable Diffusion.

        With a list of generators, each image's initial noise comes from its own generator, so
        an image is the same whether generated alone or in a batch. DDIM runs with eta 0 (no
        noise after the first draw).

        ``callback_on_step_end(pipe, step_index, timestep, tensors)`` is diffusers' step-end hook:
        called after each step with the tensors named in ``callback_on_step_end_tensor_inputs``
        (:attr:`_callback_tensor_inputs`); a ``latents`` entry in what it returns replaces the
        latents the next step starts from.
        """
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt must be a string or a non-empty list of strings, got {prompt!r}")
        batch = len(prompts)
        if negative_prompt is None:
            negatives = [""] * batch
        elif isinstance(negative_prompt, str):
            negatives = [negative_prompt] * batch
        else:
            negatives = list(negative_prompt)
            if len(negatives) != batch:
                raise ValueError(f"negative_prompt has {len(negatives)} entries for {batch} prompts")
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for {batch} prompts; pass one per "
                             "prompt, a single generator, or None")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"unknown output_type {output_type!r}; accepted: {', '.join(OUTPUT_TYPES)}")
        unknown = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown}: accepted: "
                             f"{', '.join(self._callback_tensor_inputs)}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps!r}")
        native = self.unet.config.sample_size * FOLD
        height, width = height or native, width or native
        step = FOLD * 2 ** (len(self.unet.config.block_out_channels) - 1)
        if height % step or width % step:
            raise ValueError(f"height and width must be multiples of {step}, got {height}x{width}")

        device = self.device
        guided = guidance_scale > 1.0
        prompt_embeds = self.encode_prompt(negatives + prompts if guided else prompts)
        # prompt_embeds: [(2)batch, pos, d]

        shape = (batch, self.unet.config.in_channels, height // FOLD, width // FOLD)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * self.scheduler.init_noise_sigma  # [batch, 12, h/2, w/2]

        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = torch.cat([latents, latents]) if guided else latents  # [uncond; cond]
            model_input = self.scheduler.scale_model_input(model_input, t)
            prediction = self.unet(model_input, t, encoder_hidden_states=prompt_embeds,
                                   cross_attention_kwargs=cross_attention_kwargs).sample
            if guided:
                unconditional, conditional = prediction.chunk(2)
                prediction = unconditional + guidance_scale * (conditional - unconditional)
            latents = self.scheduler.step(prediction, t, latents).prev_sample
            if callback_on_step_end is not None:
                tensors = {"latents": latents, "prompt_embeds": prompt_embeds}
                returned = callback_on_step_end(
                    self, i, t, {k: tensors[k] for k in callback_on_step_end_tensor_inputs})
                latents = returned.get("latents", latents)

        self.maybe_free_model_hooks()
        if output_type == "latent":
            images = latents
        else:
            images = self.latents_to_images(latents.float())  # [batch, 3, h, w] in [0, 1]
            if output_type in ("np", "pil"):
                images = images.permute(0, 2, 3, 1).cpu().numpy()  # [batch, h, w, 3]
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        if not return_dict:
            return (images,)
        return ToyPipelineOutput(images=images)


def new_pipeline(words: Sequence[str], seed: int = 0) -> ToyDiffusionPipeline:
    """A freshly initialised (untrained) toy pipeline whose text encoder knows ``words``."""
    pipe = ToyDiffusionPipeline(**toy_components(words, seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parameter_counts(pipe: ToyDiffusionPipeline) -> dict[str, int]:
    """Parameters per module; ``text_encoder_used`` counts only non-zero token-embedding rows."""
    embedding = pipe.text_encoder.get_input_embeddings().weight
    unused = int((embedding == 0).all(dim=1).sum()) * embedding.shape[1]
    text = sum(p.numel() for p in pipe.text_encoder.parameters())
    return dict(unet=sum(p.numel() for p in pipe.unet.parameters()), text_encoder=text,
                text_encoder_used=text - unused)


def cross_attention_layout(pipe: ToyDiffusionPipeline) -> list[tuple[str, int]]:
    """``(processor name, heads)`` of every cross-attention (``attn2``) layer, in UNet order."""
    return [(name + ".processor", module.heads) for name, module in pipe.unet.named_modules()
            if name.endswith("attn2")]
