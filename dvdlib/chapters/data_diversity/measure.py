"""Instance diversity: our measure of how alike the images of one concept are, and the embeddings
it reads.

The paper's first finding: concepts learned from images with little instance diversity dominate
more. It publishes no measure of diversity, so the measure here is **ours**.

Embed ``n`` images of one concept, subtract a reference point ``r`` (what all images share and
should not count as similarity: an empty background, the mean embedding of a reference set of
images), and take the mean cosine similarity over the ``n(n-1)/2`` distinct pairs; the concept's
*instance diversity* is one minus it:

    similarity = mean_{i<j} cos(e_i - r, e_j - r),        diversity = 1 - similarity.

A concept always drawn the same way has diversity 0; images whose differences from the
reference are unrelated have diversity near 1. Beside it we report the *Vendi score* (Friedman &
Dieng, 2023): the exponential of the entropy of the eigenvalues of the similarity matrix divided
by ``n``. It reads as an effective number of distinct looks: 1 for identical images, ``K`` for
``K`` equally frequent looks whose embeddings are orthogonal.

Embeddings: plain pixels (:func:`pixel_embeddings`), the toy detector's convolutional features
(:func:`detector_embeddings`), a CLIP image encoder (:func:`clip_image_embeddings`).
:func:`diversity_by_label` measures several groups of precomputed embeddings at once. What is
embedded, and against which reference, is the experiment's choice: the toy world's training
pictures in :mod:`dvdlib.chapters.data_diversity.toy_pictures`, a real model's concept-only
generations in :mod:`dvdlib.chapters.data_diversity.real_study`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dvdlib.scoring.dvd import load_image

# --------------------------------------------------------------------------------------------
# The measure


def _unit_rows(embeddings, centre=None) -> np.ndarray:
    """``embeddings`` ``[image, dim]`` minus ``centre`` (``[dim]`` or None), scaled to unit length."""
    values = embeddings.detach().cpu().numpy() if isinstance(embeddings, torch.Tensor) else embeddings
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"embeddings must be [image, dimension] with at least 2 images, got shape "
                         f"{values.shape}")
    if centre is not None:
        centre = np.asarray(centre, dtype=np.float64)
        if centre.shape != values.shape[1:]:
            raise ValueError(f"centre must have shape {values.shape[1:]} (one embedding), got "
                             f"{centre.shape}")
        values = values - centre
    norms = np.linalg.norm(values, axis=1)
    if not np.all(norms > 1e-12):
        raise ValueError(f"embedding(s) {np.flatnonzero(norms <= 1e-12).tolist()} are zero (after "
                         "subtracting the centre): cosine similarity is undefined for them")
    return values / norms[:, None]


def cosine_similarities(embeddings, centre=None) -> np.ndarray:
    """The ``[image, image]`` cosine similarities of ``embeddings - centre``."""
    unit = _unit_rows(embeddings, centre)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def mean_pairwise_similarity(embeddings, centre=None) -> float:
    """Mean cosine similarity over the distinct pairs of images (the diagonal excluded)."""
    similarity = cosine_similarities(embeddings, centre)
    n = len(similarity)
    return float((similarity.sum() - np.trace(similarity)) / (n * (n - 1)))


def instance_diversity(embeddings, centre=None) -> float:
    """Our diversity measure: 1 - mean pairwise cosine similarity (0: all images alike)."""
    return 1.0 - mean_pairwise_similarity(embeddings, centre)


def vendi_score(embeddings, centre=None) -> float:
    """exp(entropy of the eigenvalues of similarity / n): an effective number of distinct looks.

    The cosine similarity matrix is a Gram matrix of unit vectors, so its eigenvalues are
    non-negative and, divided by ``n``, sum to 1.
    """
    unit = _unit_rows(embeddings, centre)
    eigenvalues = np.linalg.eigvalsh(unit @ unit.T / len(unit))
    eigenvalues = eigenvalues[eigenvalues > 1e-12]
    eigenvalues = eigenvalues / eigenvalues.sum()
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def diversity_measures(embeddings, centre=None) -> dict[str, float]:
    """``n``, ``similarity``, ``diversity`` and ``vendi`` of one concept's embeddings."""
    similarity = mean_pairwise_similarity(embeddings, centre)
    return {"n": int(len(embeddings)), "similarity": similarity, "diversity": 1.0 - similarity,
            "vendi": vendi_score(embeddings, centre)}


# --------------------------------------------------------------------------------------------
# Embeddings


def _as_tensor(images: torch.Tensor | Sequence[Image.Image]) -> torch.Tensor:
    from dvdlib.toyworld.detector import images_to_tensor

    images = images if isinstance(images, torch.Tensor) else images_to_tensor(list(images))
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [image, 3, h, w], got {tuple(images.shape)}")
    return images.detach().float().cpu()


def pixel_embeddings(images: torch.Tensor | Sequence[Image.Image]) -> np.ndarray:
    """Images (``[image, 3, h, w]`` in [0, 1], or PIL images of one size) as flat pixel vectors
    ``[image, 3*h*w]``. Pass what every image shares as the measure's centre (an empty background,
    :func:`background_pixels`, or the mean of a reference set) so that it does not count as
    similarity."""
    return _as_tensor(images).flatten(1).numpy().astype(np.float64)


def background_pixels(colour: Sequence[float], size: int = 32) -> np.ndarray:
    """The flat pixel vector of an empty ``size`` x ``size`` image of one colour (a centre)."""
    plane = torch.tensor([float(c) for c in colour]).view(3, 1, 1).expand(3, size, size)
    return plane.flatten().numpy().astype(np.float64)


@torch.no_grad()
def detector_embeddings(detector, images: torch.Tensor | Sequence[Image.Image]) -> np.ndarray:
    """The toy detector's convolutional features, flattened: ``[image, channels*4*4]``.

    ``detector`` is a :class:`dvdlib.toyworld.detector.PresenceDetector`. These are the features
    its classifier head reads; they still hold colours, horizon and sun. (The head's hidden layer
    is trained to ignore exactly that, so it sees every sunset as the same sunset.)
    """
    images = _as_tensor(images)
    was_training = detector.training
    detector.eval()
    try:
        features = detector.features(images.to(detector.device) * 2 - 1)  # [image, c, 4, 4]
    finally:
        detector.train(was_training)
    return features.flatten(1).cpu().numpy().astype(np.float64)


@torch.inference_mode()
def clip_image_embeddings(model, preprocess, images: Sequence[Image.Image],
                          batch_size: int = 32) -> np.ndarray:
    """CLIP image embeddings ``[image, dim]`` (L2-normalised) from an open_clip model.

    ``model`` and ``preprocess`` as ``open_clip.create_model_and_transforms`` return them, e.g.
    ``ClipJudge.from_pretrained(source)``'s ``model`` and ``preprocess`` (local weights only).
    """
    if not images:
        raise ValueError("no images to embed")
    device = next(model.parameters()).device
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([preprocess(image) for image in images[start:start + batch_size]])
        chunks.append(model.encode_image(pixels.to(device)).float())
    return torch.nn.functional.normalize(torch.cat(chunks), dim=-1).cpu().numpy().astype(np.float64)


def load_images(image_dir: str | Path, manifest: pd.DataFrame) -> list[Image.Image]:
    """The images a :func:`dvdlib.generation.protocol.generate` manifest lists, in its row order."""
    image_dir = Path(image_dir)
    return [load_image(image_dir / file) for file in manifest["file"]]


def diversity_by_label(embeddings, labels: Sequence, centre=None) -> pd.DataFrame:
    """Our diversity measures per label (a concept, a model) of precomputed embeddings.

    ``embeddings`` ``[image, dim]``; ``labels`` gives each image's group; ``centre`` is the
    measure's reference point. One row per label (first-seen order) with the columns of
    :func:`diversity_measures`.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    labels = np.asarray(labels, dtype=object)
    if len(embeddings) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    rows = []
    for label in dict.fromkeys(labels):
        picked = embeddings[labels == label]
        if len(picked) < 2:
            raise ValueError(f"label {label!r} has {len(picked)} image; the measure compares pairs")
        rows.append({"label": label, **diversity_measures(picked, centre)})
    return pd.DataFrame(rows)
