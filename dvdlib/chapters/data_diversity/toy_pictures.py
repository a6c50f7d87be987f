"""Our diversity measure on the toy zoo: the sunset's training pictures, and what the models draw.

- :func:`concept_appearances`: the limited concept's pictures as training draws them, rendered
  alone; :func:`reference_renders`: the concept at full diversity, the measure's reference point.
- :func:`toy_embedders`: the world's two embeddings (detector features, pixels), each with its
  centre on the reference renders.
- :func:`training_diversity`: our measure (:mod:`dvdlib.chapters.data_diversity.measure`) of
  each model's training pictures of the concept, per embedding.
- :func:`drawn_diversity`: the same measure of what each model draws for the concept alone, in
  the images of a :class:`~dvdlib.chapters.data_diversity.toy_runs.Study`.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.chapters.data_diversity.measure import (detector_embeddings, diversity_measures,
                                                    pixel_embeddings)
from dvdlib.chapters.data_diversity.toy_runs import Study
from dvdlib.scoring.dvd import load_image
from dvdlib.toyworld.world import CONCEPT_ALONE


def concept_appearances(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` appearances of ``world``'s limited concept as training draws them, each rendered
    alone (full frame): ``[n, 3, 32, 32]`` in [0, 1].

    Every appearance of the concept in a training scene, alone or printed in a pair, is one
    ``World.draw_concept`` call; these are such calls from a generator seeded with ``seed``, so at
    K instances each image is one of the K fixed pictures, picked as often as training picks it.
    """
    from dvdlib.toyworld.world import Scene, render

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (pairs of images are compared), got {n!r}")
    rng = np.random.default_rng(seed)
    return render([Scene(concept=world.draw_concept(world.limited, rng)) for _ in range(n)])


def reference_renders(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` full-frame pictures of ``world``'s limited concept at full diversity (new from its
    rule each time): ``[n, 3, 32, 32]``. Their mean embedding, the concept's average picture, is
    the measure's reference point: what every sunset shares does not count as likeness, so
    pictures drawn independently by the rule have diversity near 1 and K equally frequent fixed
    pictures near 1 - 1/K."""
    from dvdlib.toyworld.world import ConceptInstance, Scene, draw_concept, render

    rng = np.random.default_rng(seed)
    return render([Scene(concept=ConceptInstance(world.limited, draw_concept(world.limited, rng)))
                   for _ in range(n)])


def toy_embedders(detector, world, n_reference: int = 300, seed: int | Sequence[int] = 0
                  ) -> dict[str, tuple[Callable, np.ndarray]]:
    """The toy world's two embeddings with their reference points: ``{name: (embed, centre)}``.

    "detector": the detector's convolutional features
    (:func:`dvdlib.chapters.data_diversity.measure.detector_embeddings`); "pixels": plain pixels.
    Each is centred on its mean over :func:`reference_renders` (the limited concept at full
    diversity).
    """
    reference = reference_renders(world, n_reference, seed)

    def by_detector(images):
        return detector_embeddings(detector, images)

    return {"detector": (by_detector, by_detector(reference).mean(axis=0)),
            "pixels": (pixel_embeddings, pixel_embeddings(reference).mean(axis=0))}


def training_diversity(worlds: Mapping[str, object], embedders: Mapping[str, tuple], n: int,
                       seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """Our diversity measures of the limited concept's training pictures, per model and embedding.

    ``embedders`` as :func:`toy_embedders` returns them. One row per (model, embedding) with
    ``K`` (None: unlimited), ``instance_seed`` and the columns of
    :func:`dvdlib.chapters.data_diversity.measure.diversity_measures`.
    """
    rows = []
    for name, world in worlds.items():
        images = concept_appearances(world, n, seed)
        for embedding, (embed, centre) in embedders.items():
            rows.append({"model": name, "K": world.instances, "instance_seed": world.instance_seed,
                         "embedding": embedding, **diversity_measures(embed(images), centre)})
    return pd.DataFrame(rows)


def drawn_diversity(study: Study, embedders: Mapping[str, tuple], condition: str) -> pd.DataFrame:
    """Our diversity of what each model draws for the concept alone, in one condition.

    Only the images in which the judge finds the concept count (an empty picture is not a look of
    it). One row per (model, embedding): ``n_prompted``, and the columns of
    :func:`dvdlib.chapters.data_diversity.measure.diversity_measures` (NaN when fewer than 2
    images count). A K = 1 model that reproduces its one training picture draws with diversity
    near 0.
    """
    rows = []
    alone = study.images[(study.images["arrangement"] == CONCEPT_ALONE)
                         & (study.images["condition"] == condition)]
    for model, group in alone.groupby("base_model", sort=False):
        kept = group[group["concept_present"]]
        images = [load_image(study.image_dir / r / f) for r, f in zip(kept["run"], kept["file"])]
        for embedding, (embed, centre) in embedders.items():
            measures = (diversity_measures(embed(images), centre) if len(images) >= 2 else
                        {"n": len(images), "similarity": np.nan, "diversity": np.nan,
                         "vendi": np.nan})
            rows.append({"model": model, "embedding": embedding, "n_prompted": len(group),
                         **measures})
    return pd.DataFrame(rows)
