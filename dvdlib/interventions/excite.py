"""A guided latent update that raises the object's strongest attention: Attend-and-Excite's idea.

Attend-and-Excite (Chefer et al., 2023) observes that a neglected subject never wins a clear
peak of cross-attention anywhere in the image, and moves the latent, in the first denoising
steps, along the gradient that makes it win one. Written here from the paper's description:

1. at a step ``t``, one extra UNet call on the conditional prompt, with gradients to the latent
   ``z_t``; the cross-attention layers at the finest resolution not above 16 x 16
   (:data:`MAP_SIDE`; 16 x 16 in SD 1.x at 512 px, 8 x 8 in the toy model) hand their
   probabilities to an :class:`ObjectMaxProbe`;
2. the probe renormalises each query position's attention over the prompt's word tokens (the
   start token, which takes most of it, is left out), sums it over the object's tokens, averages
   over heads and layers, smooths the map with a 3 x 3 Gaussian (sigma 0.5) and takes its
   maximum ``a``;
3. the loss is ``1 - a`` (summed over the images, which move independently), and the latent
   takes one gradient step: ``z_t <- z_t - alpha * grad``. ``alpha`` is the strength; 0 is the
   plain model.

The update is made by a step-end callback (diffusers' ``callback_on_step_end``, which the toy
pipeline takes too), so it acts on the latent entering steps 1 to ``steps // 2``: the first
half of the sampling, as the paper guides its first 25 of 50 steps, less the initial noise,
which is left as drawn. Left out: the paper's iterative refinement at a few steps until a
target attention is reached, and its per-step schedule of ``alpha``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.attention.recorder import PROBE_KWARG

MAP_SIDE = 16  # the guide reads the layers at the finest resolution not above this
GUIDED_FRACTION = 0.5  # the latents entering steps 1 .. steps * this are updated
SMOOTHING = (3, 0.5)  # Gaussian kernel size and sigma


def guided_layers(layers: Sequence[CrossAttentionLayer]) -> tuple[CrossAttentionLayer, ...]:
    """The layers the guide reads: those at the largest query resolution not above
    :data:`MAP_SIDE` per side (the coarsest there is when every layer is finer)."""
    sides = sorted({max(layer.query_height, layer.query_width) for layer in layers})
    fitting = [side for side in sides if side <= MAP_SIDE]
    side = fitting[-1] if fitting else sides[0]
    return tuple(layer for layer in layers if max(layer.query_height, layer.query_width) == side)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    line = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(line, line)
    return (kernel / kernel.sum())[None, None]  # [1, 1, size, size]


class ObjectMaxProbe:
    """Collects the object's attention maps during one UNet call, with their gradient.

    ``objects`` and ``words`` hold one list of token positions per image (the conditional
    prompt's); the call's batch is those images alone (no guidance batch).
    """

    def __init__(self, layers: Sequence[CrossAttentionLayer], objects: Sequence[Sequence[int]],
                 words: Sequence[Sequence[int]], num_tokens: int):
        self.layers = {layer.name: layer for layer in guided_layers(layers)}
        self.objects = torch.zeros(len(objects), num_tokens)  # [image, token]
        self.words = torch.zeros(len(words), num_tokens)  # [image, token]
        for image, (obj, word) in enumerate(zip(objects, words)):
            self.objects[image, list(obj)] = 1.0
            self.words[image, list(word)] = 1.0
        self.maps: list[torch.Tensor] = []  # per layer read: [image, height, width]

    def add(self, layer: CrossAttentionLayer, probs: torch.Tensor) -> None:
        """Keep ``probs`` ``[image, head, query, token]`` of a guided layer as the object's map."""
        if layer.name not in self.layers:
            return
        objects = self.objects.to(probs.device, probs.dtype)[:, None, None, :]
        words = self.words.to(probs.device, probs.dtype)[:, None, None, :]
        share = (probs * objects).sum(-1) / (probs * words).sum(-1)  # [image, head, query]
        self.maps.append(share.mean(dim=1).view(-1, layer.query_height, layer.query_width))

    def peak(self) -> torch.Tensor:
        """The object's smoothed maximum attention per image, ``[image]``."""
        if not self.maps:
            raise RuntimeError("the probe saw no guided layer: was the UNet called inside "
                               "attention_instruments with the probe in cross_attention_kwargs?")
        maps = torch.stack(self.maps).mean(dim=0)[:, None]  # [image, 1, height, width]
        size, sigma = SMOOTHING
        kernel = _gaussian_kernel(size, sigma).to(maps.device, maps.dtype)
        smooth = F.conv2d(F.pad(maps, [size // 2] * 4, mode="replicate"), kernel)
        return smooth.flatten(1).max(dim=1).values


class ExciteGuide:
    """The step-end callback that makes the guided update (module notes).

    Pass it as ``callback_on_step_end`` with ``callback_on_step_end_tensor_inputs=
    ExciteGuide.TENSOR_INPUTS``, inside :func:`~dvdlib.attention.recorder.attention_instruments`.
    """

    TENSOR_INPUTS = ("latents", "prompt_embeds")

    def __init__(self, layers: Sequence[CrossAttentionLayer], objects: Sequence[Sequence[int]],
                 words: Sequence[Sequence[int]], num_tokens: int, step_size: float,
                 num_steps: int):
        if isinstance(step_size, bool) or not isinstance(step_size, (int, float)) \
                or not math.isfinite(step_size) or step_size < 0:
            raise ValueError(f"excite step size {step_size!r}: accepted: a finite number >= 0 "
                             f"(0 leaves the model as it is)")
        self.layers = tuple(layers)
        self.objects, self.words, self.num_tokens = objects, words, num_tokens
        self.step_size = float(step_size)
        self.last_guided = int(num_steps * GUIDED_FRACTION)  # latents entering 1..this are moved
        self.peaks: list[torch.Tensor] = []  # the object's peak before each update, [image]

    def probe(self) -> ObjectMaxProbe:
        return ObjectMaxProbe(self.layers, self.objects, self.words, self.num_tokens)

    def __call__(self, pipe, step_index: int, timestep, tensors: dict) -> dict:
        following = step_index + 1
        if self.step_size == 0 or not 1 <= following <= self.last_guided \
                or following >= len(pipe.scheduler.timesteps):
            return {}
        latents, embeds = tensors["latents"], tensors["prompt_embeds"]
        images = latents.shape[0]
        text = embeds[-images:]  # the conditional rows ([uncond; cond] under guidance)
        t = pipe.scheduler.timesteps[following]
        with torch.enable_grad():
            moving = latents.detach().requires_grad_(True)
            probe = self.probe()
            pipe.unet(pipe.scheduler.scale_model_input(moving, t), t, encoder_hidden_states=text,
                      cross_attention_kwargs={PROBE_KWARG: probe})
            peak = probe.peak()  # [image]
            (gradient,) = torch.autograd.grad((1 - peak).sum(), moving)
        self.peaks.append(peak.detach().cpu())
        return {"latents": (moving - self.step_size * gradient).detach()}
