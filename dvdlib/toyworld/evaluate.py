"""Does the toy model show dominance? Generate the world's prompts and read them with the detector.

``presence_table`` generates every prompt of a :func:`dvdlib.toyworld.world.prompt_table` with a
list of seeds and records, per image, the detector's probability for the content (the limited
concept) and for its partner. ``dominance_summary`` condenses it per model with our measures
(the paper publishes none for this):

- dominance = P(content only) - P(partner only), over the two-shape prompts in both word orders
  ("present" = probability > 0.5): +1 when the content always wins, -1 when the partner does;
- retention of X = P(X present | two-shape prompts) / P(X present | X prompted alone): how much of
  its solo presence a concept keeps next to the other. A concept drawn badly even alone "loses"
  for that reason, so retention is reported next to dominance.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dvdlib.toyworld.detector import ShapeDetector
from dvdlib.toyworld.pipeline import ToyDiffusionPipeline

PRESENT = 0.5  # detector probability above which a shape counts as present


def generate(pipe: ToyDiffusionPipeline, prompts: Sequence[str], seeds: Sequence[int],
             batch_size: int = 64, **call_kwargs) -> list[Image.Image]:
    """One image per (prompt, seed) pair, in that order; each from its own seeded generator."""
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts and {len(seeds)} seeds; pass one seed per prompt")
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        generators = [torch.Generator(pipe.device).manual_seed(int(s)) for s in seeds[chunk]]
        images += pipe(list(prompts[chunk]), generator=generators, **call_kwargs).images
    return images


def presence_table(pipe: ToyDiffusionPipeline, detector: ShapeDetector, prompts: pd.DataFrame,
                   seeds: Sequence[int], batch_size: int = 64, **call_kwargs) -> pd.DataFrame:
    """One row per (prompt row, seed): the detector's view of the generated image.

    Identical prompt texts (the controls repeat "a circle" per partner) are generated once per
    seed and shared. Columns: the prompt table's, ``seed``, ``p_content``, ``p_nm_word``,
    ``content_present``, ``nm_present``.
    """
    unique = list(dict.fromkeys(prompts["prompt"]))
    jobs = [(p, s) for p in unique for s in seeds]
    images = generate(pipe, [p for p, _ in jobs], [s for _, s in jobs], batch_size, **call_kwargs)
    probabilities = detector.probabilities(images)  # [image, shape]
    by_job = {job: probabilities[i] for i, job in enumerate(jobs)}
    rows = []
    for row in prompts.to_dict("records"):
        for seed in seeds:
            p = by_job[(row["prompt"], seed)]
            p_content = float(p[detector.shapes.index(row["content"])])
            p_nm = float(p[detector.shapes.index(row["nm_word"])])
            rows.append({**row, "seed": int(seed), "p_content": p_content, "p_nm_word": p_nm,
                         "content_present": p_content > PRESENT, "nm_present": p_nm > PRESENT})
    return pd.DataFrame(rows)


def dominance_summary(presence: pd.DataFrame) -> dict[str, float]:
    """Our dominance and retention measures (see the module docstring) from a presence table."""
    pairs = presence[presence["arrangement"].isin(["content first", "nm_word first"])]
    alone_content = presence[presence["arrangement"] == "content alone"]
    alone_nm = presence[presence["arrangement"] == "nm_word alone"]
    if pairs.empty:
        raise ValueError("the presence table has no two-shape prompts (arrangement 'content "
                         "first' or 'nm_word first')")
    content_only = float((pairs["content_present"] & ~pairs["nm_present"]).mean())
    nm_only = float((~pairs["content_present"] & pairs["nm_present"]).mean())
    solo_content = float(alone_content["content_present"].mean()) if len(alone_content) else np.nan
    solo_nm = float(alone_nm["nm_present"].mean()) if len(alone_nm) else np.nan
    return dict(
        dominance=content_only - nm_only,
        content_only=content_only,
        nm_only=nm_only,
        both=float((pairs["content_present"] & pairs["nm_present"]).mean()),
        neither=float((~pairs["content_present"] & ~pairs["nm_present"]).mean()),
        content_alone=solo_content,
        nm_alone=solo_nm,
        content_retention=float(pairs["content_present"].mean()) / solo_content
        if solo_content else np.nan,
        nm_retention=float(pairs["nm_present"].mean()) / solo_nm if solo_nm else np.nan,
        images=len(pairs),
    )


def image_grid(images: Sequence[Image.Image], columns: int, scale: int = 3,
               gap: int = 2) -> Image.Image:
    """Images (one size) tiled row by row on a white canvas, each enlarged ``scale`` times."""
    if not images:
        raise ValueError("no images to tile")
    width, height = images[0].size
    width, height = width * scale, height * scale
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + gap) + gap), "white")
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas.paste(image.resize((width, height), Image.NEAREST),
                     (gap + c * (width + gap), gap + r * (height + gap)))
    return canvas


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``[batch, 3, h, w]`` in [0, 1] -> PIL images."""
    array = (images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in array]
