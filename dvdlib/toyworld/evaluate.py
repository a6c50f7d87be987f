"""Does the toy model show dominance? Generate the world's prompts and read them two ways.

``presence_table`` generates every prompt of a :func:`dvdlib.toyworld.world.prompt_table` with a
list of seeds and records, per image, the detector's probability for the concept (``concept``)
and for the object (``object``). ``dominance_summary`` condenses it with our measures (the
paper publishes none for the toy world):

- ``concept_only``: the share of pair images ("sunset coaster") where the concept is present and the
  object is not: the failure DvD scores, counted directly;
- ``object_only``, ``both``, ``neither``: the other outcomes of the same images;
- ``concept_alone``, ``object_alone``: found rates when each word is prompted alone. A concept
  or object drawn badly alone would "lose" in a pair for that reason, so these stand beside it.

:func:`~dvdlib.toyworld.world.pixel_rule` is a second reading that shares nothing with the detector: a carrier stands on
the plain background, so the picture's border is background; a concept alone fills the frame.
``rule_agreement`` compares the two readings on the same images.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dvdlib.toyworld.detector import PresenceDetector, images_to_tensor
from dvdlib.toyworld.pipeline import ToyDiffusionPipeline
from dvdlib.toyworld.world import CONCEPT_ALONE, OBJECT_ALONE, PAIR, pixel_rule

PRESENT = 0.5  # detector probability above which a concept or object counts as present


def sample_images(pipe: ToyDiffusionPipeline, prompts: Sequence[str], seeds: Sequence[int],
                  batch_size: int = 64, **call_kwargs) -> list[Image.Image]:
    """One image per (prompt, seed) pair, in that order; each from its own seeded generator.

    In memory and for the toy zoo only; :func:`dvdlib.generation.protocol.generate` is the resumable,
    file-writing generation of the book's experiments.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts and {len(seeds)} seeds; pass one seed per prompt")
    images: list[Image.Image] = []
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        generators = [torch.Generator(pipe.device).manual_seed(int(s)) for s in seeds[chunk]]
        images += pipe(list(prompts[chunk]), generator=generators, **call_kwargs).images
    return images


def prompt_images(pipe: ToyDiffusionPipeline, prompts: Sequence[str], seeds: Sequence[int],
                  batch_size: int = 64, **call_kwargs) -> dict[tuple[str, int], Image.Image]:
    """The image of every distinct prompt at every seed, by ``(prompt, seed)``."""
    jobs = [(p, int(s)) for p in dict.fromkeys(prompts) for s in seeds]
    images = sample_images(pipe, [p for p, _ in jobs], [s for _, s in jobs], batch_size,
                           **call_kwargs)
    return dict(zip(jobs, images))


def presence_table(pipe: ToyDiffusionPipeline, detector: PresenceDetector, prompts: pd.DataFrame,
                   seeds: Sequence[int], batch_size: int = 64,
                   images: Mapping[tuple[str, int], Image.Image] | None = None,
                   **call_kwargs) -> pd.DataFrame:
    """One row per (prompt row, seed): the detector's view of the generated image.

    Identical prompt texts (the controls repeat "sunset" per object) are generated once per
    seed and shared. ``images`` (from :func:`prompt_images`, same call options) are used instead
    of generating them again. Columns: the prompt table's, ``seed``, ``p_concept``,
    ``p_object``, ``concept_present``, ``object_present``, and the pixel rule's
    ``frame_filled`` and ``rule_object_present``.
    """
    if images is None:
        images = prompt_images(pipe, prompts["prompt"], seeds, batch_size, **call_kwargs)
    jobs = [(p, int(s)) for p in dict.fromkeys(prompts["prompt"]) for s in seeds]
    missing = [job for job in jobs if job not in images]
    if missing:
        raise ValueError(f"images lack {len(missing)} (prompt, seed) pairs, e.g. {missing[0]}; "
                         "pass the images of these prompts and seeds")
    pixels = images_to_tensor([images[job] for job in jobs])  # [image, 3, h, w]
    probabilities = detector.probabilities(pixels)  # [image, name]
    rule = pixel_rule(pixels)
    by_job = {job: i for i, job in enumerate(jobs)}
    rows = []
    for row in prompts.to_dict("records"):
        for seed in seeds:
            i = by_job[(row["prompt"], int(seed))]
            p = probabilities[i]
            p_concept = float(p[detector.names.index(row["concept"])])
            p_object = float(p[detector.names.index(row["object"])])
            rows.append({**row, "seed": int(seed), "p_concept": p_concept, "p_object": p_object,
                         "concept_present": p_concept > PRESENT, "object_present": p_object > PRESENT,
                         "frame_filled": bool(rule.at[i, "frame_filled"]),
                         "rule_object_present": bool(rule.at[i, "rule_object_present"])})
    return pd.DataFrame(rows)


def dominance_summary(presence: pd.DataFrame) -> dict[str, float]:
    """Our outcome shares of the pair prompts and the found-alone rates (see the module
    docstring) from a presence table."""
    pairs = presence[presence["arrangement"] == PAIR]
    if pairs.empty:
        raise ValueError(f"the presence table has no pair prompts (arrangement {PAIR!r})")
    alone_concept = presence[presence["arrangement"] == CONCEPT_ALONE]
    alone_object = presence[presence["arrangement"] == OBJECT_ALONE]
    concept, obj = pairs["concept_present"], pairs["object_present"]
    return dict(
        concept_only=float((concept & ~obj).mean()),
        object_only=float((~concept & obj).mean()),
        both=float((concept & obj).mean()),
        neither=float((~concept & ~obj).mean()),
        concept_alone=float(alone_concept["concept_present"].mean()) if len(alone_concept)
        else np.nan,
        object_alone=float(alone_object["object_present"].mean()) if len(alone_object) else np.nan,
        images=len(pairs),
    )


def rule_agreement(detector_object_present: Sequence[bool], rule: pd.DataFrame) -> dict:
    """How often the detector's "object present" and the pixel rule's agree, and how they differ."""
    detector = np.asarray(detector_object_present, dtype=bool)
    by_rule = rule["rule_object_present"].to_numpy(dtype=bool)
    if len(detector) != len(by_rule):
        raise ValueError(f"got {len(detector)} detector readings for {len(by_rule)} rule readings")
    return dict(images=len(detector), agreement=float((detector == by_rule).mean()),
                detector_only=int((detector & ~by_rule).sum()),
                rule_only=int((~detector & by_rule).sum()))


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


def found_alone(models: dict[str, ToyDiffusionPipeline], detector: PresenceDetector,
                words: Sequence[str], guidance_scales: Sequence[float], seeds: Sequence[int],
                **call_kwargs) -> pd.DataFrame:
    """How often each word prompted alone is found, per model and guidance scale.

    One row per (model, guidance, word): ``found`` (share of images where the detector finds the
    word, probability > :data:`PRESENT`), and the pixel rule's ``frame_filled`` and
    ``rule_object_present`` shares. A concept alone should fill the frame; an object alone should
    stand on the background. Guidance erasing a word shows as a falling ``found``.
    """
    rows = []
    for name, pipe in models.items():
        for guidance in guidance_scales:
            jobs = [(w, s) for w in words for s in seeds]
            images = sample_images(pipe, [w for w, _ in jobs], [s for _, s in jobs],
                              guidance_scale=guidance, **call_kwargs)
            pixels = images_to_tensor(images)  # [image, 3, h, w]
            present = detector.probabilities(pixels) > PRESENT  # [image, name]
            rule = pixel_rule(pixels)
            for word in words:
                at = [i for i, (w, _) in enumerate(jobs) if w == word]
                rows.append(dict(model=name, guidance=float(guidance), word=word,
                                 found=float(present[at, detector.names.index(word)].float().mean()),
                                 frame_filled=float(rule.loc[at, "frame_filled"].mean()),
                                 rule_object_present=float(rule.loc[at, "rule_object_present"].mean())))
    return pd.DataFrame(rows)


def binding_distances(pipe: ToyDiffusionPipeline, concept: str, objects: Sequence[str],
                      seeds: Sequence[int], **call_kwargs) -> dict[str, float]:
    """Does the concept word change the pair picture? Mean per-seed pixel distance.

    ``binding``: between "<concept> <object>" and "<object>" images of the same seed, averaged
    over objects and seeds; ``object_scale``: the same distance between two different objects
    ("coaster" and "shirt", ...) for scale. A model that ignores the concept word in pairs has a
    binding near zero.
    """
    if len(objects) < 2:
        raise ValueError(f"binding needs at least 2 objects for its scale, got {list(objects)}")
    prompts = [*objects, *(f"{concept} {o}" for o in objects)]
    jobs = [(p, s) for p in prompts for s in seeds]
    pixels = images_to_tensor(sample_images(pipe, [p for p, _ in jobs], [s for _, s in jobs],
                                            **call_kwargs))
    pixels = pixels.view(len(prompts), len(seeds), *pixels.shape[1:])  # [prompt, seed, 3, h, w]
    alone, paired = pixels[:len(objects)], pixels[len(objects):]
    return dict(binding=float((paired - alone).abs().mean()),
                object_scale=float((alone[1:] - alone[:-1]).abs().mean()))


def guidance_list(text: str) -> list[float]:
    """Comma-separated guidance scales ("1,4,7.5") as floats, each >= 0."""
    scales = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            value = -1.0
        if not value >= 0:
            raise ValueError(f"guidance scale {part.strip()!r} of {text!r} is not a number >= 0; "
                             f"accepted: comma-separated numbers >= 0, e.g. 1,4,7.5")
        scales.append(value)
    return scales
