"""Sampling under one intervention: the images of every (prompt, seed), their attention, the time.

:func:`sample` makes one image per prompt row and seed (rows in table order, seeds in the order
given, as :mod:`dvdlib.generation.protocol` orders them), in batches, with the intervention
applied through :func:`~dvdlib.interventions.catalogue.call_plan` inside
:func:`~dvdlib.attention.recorder.attention_instruments`. Each image gets its own CPU
generator seeded with its seed, so an image is the same whatever shares its batch, and the
same seed gives every intervention the same starting noise: changes are measured image by
image. The cross-attention of every step is recorded (after the intervention's edit), and the
seconds the pipeline calls take are kept: the intervention's cost per image. On the CPU they are
the process's CPU seconds (:func:`time.process_time`), which other programs sharing the machine
do not inflate; on a GPU, wall-clock seconds with the device synchronised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch

from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.recorder import RECORD_KWARG
from dvdlib.attention.token_positions import PromptTokens
from dvdlib.interventions.catalogue import CAP_LEAK, NEGATIVE_TEMPLATE, Intervention, call_plan
from dvdlib.interventions.heads import HeadRanking
from dvdlib.attention.recorder import attention_instruments


def _clock(device: torch.device) -> float:
    """Seconds: CPU time of this process on the CPU, wall-clock (synchronised) on a GPU."""
    if device.type == "cpu":
        return time.process_time()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@dataclass
class Sampled:
    """What :func:`sample` made, one entry per image in job order."""

    jobs: list[tuple[int, int]]  # (row position in the table, seed)
    images: list  # PIL images
    tokens: list[PromptTokens]  # each image's prompt as the text encoder read it
    mass: torch.Tensor | None  # [image, step, layer, head, token]; None when not recorded
    layers: tuple[CrossAttentionLayer, ...]
    seconds: float  # the pipeline calls' time (CPU seconds on the CPU; see the module notes)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.images)


def sample(pipe, rows: pd.DataFrame, seeds: Sequence[int], intervention: Intervention | None, *,
           steps: int, guidance: float, height: int | None = None, width: int | None = None,
           batch_size: int = 32, ranking: HeadRanking | None = None, control_seed: int = 0,
           negative_template: str = NEGATIVE_TEMPLATE, cap_leak: bool = CAP_LEAK,
           record: bool = True) -> Sampled:
    """Images of every (row, seed) under ``intervention`` (None: the plain model; see the
    module notes)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size {batch_size!r}: accepted: a whole number >= 1")
    table = rows.reset_index(drop=True)
    jobs = [(i, int(seed)) for i in range(len(table)) for seed in seeds]
    images, tokens, masses, seconds = [], [], [], 0.0
    with attention_instruments(pipe.unet) as layers:
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            plan = call_plan(intervention, [table.iloc[i] for i, _ in batch],
                             tokenizer=pipe.tokenizer, layers=layers, steps=steps,
                             guidance=guidance, ranking=ranking, control_seed=control_seed,
                             negative_template=negative_template, cap_leak=cap_leak)
            kwargs = dict(plan.kwargs)
            if record:
                kwargs[RECORD_KWARG] = AttentionRecord(
                    layers, steps, prompts=plan.tokens,
                    classifier_free_guidance=plan.guidance > 1)
            started = _clock(pipe.device)
            output = pipe(**plan.pipe_kwargs(), num_inference_steps=steps, height=height,
                          width=width, output_type="pil",
                          generator=[torch.Generator("cpu").manual_seed(s) for _, s in batch],
                          **({"cross_attention_kwargs": kwargs} if kwargs else {}))
            seconds += _clock(pipe.device) - started
            images += list(output.images)
            tokens += plan.tokens
            if record:
                masses.append(kwargs[RECORD_KWARG].mass())  # [image, step, layer, head, token]
    mass = torch.cat(masses) if masses else None
    return Sampled(jobs, images, tokens, mass, layers, seconds)
