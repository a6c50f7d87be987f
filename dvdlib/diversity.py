"""Instance diversity of a concept, and the analyses of the data-diversity chapter.

The paper's first finding: concepts learned from images with little instance diversity dominate
more. It publishes no measure of diversity, so the measures here are **ours**.

**The measure.** Embed ``n`` images of one concept, subtract a reference point ``r`` (what
all images share and should not count as similarity: the empty background, the mean embedding
of a reference set of images), and take the mean cosine similarity over the ``n(n-1)/2``
distinct pairs; the concept's *instance diversity* is one minus it:

    similarity = mean_{i<j} cos(e_i - r, e_j - r),        diversity = 1 - similarity.

A concept always drawn the same way has diversity 0; images whose differences from the
reference are unrelated have diversity near 1. Beside it we report the *Vendi score* (Friedman &
Dieng, 2023): the exponential of the entropy of the eigenvalues of the similarity matrix divided
by ``n``. It reads as an effective number of distinct looks: 1 for identical images, ``K`` for
``K`` equally frequent looks whose embeddings are orthogonal.

The images, embeddings and reference depend on what is measured:

- toy world, training data: ``n`` appearances of the circle drawn exactly as training draws them
  (:func:`concept_appearances`), as plain pixels minus the background (:func:`pixel_embeddings`)
  or as the shape detector's convolutional features (:func:`detector_embeddings`) minus their
  mean over renders of every shape (:func:`reference_renders`);
- any model, generations: the images a model makes from a concept-only prompt over many seeds
  (:func:`solo_prompts`), a proxy for the rigidity of its learned prior, embedded by the detector
  (toy, :func:`toy_generated_diversity`: only images that show the shape) or by a CLIP image
  encoder (:func:`clip_image_embeddings`, Stable Diffusion; reference: the mean over every
  concept's images; :func:`run_concept_study` relates it to each concept's DvD).

**The causal test (toy world).** Every model of the zoo is prompted with two-shape prompts that
pair the circle with each partner X in both word orders, with control pairs of two other shapes,
and with every shape alone (:func:`zoo_prompts`). The judge answers the five shape questions about
every shape of every image (:func:`judge_shapes`), from which the paper's DvD formula scores each
image in each role (:func:`role_tables`; all three steps: :func:`run_causal_test`), and
:func:`dose_response` condenses them per model with intervals from a bootstrap that resamples
partners and seeds together (:func:`crossed_bootstrap`; :func:`contrast` for two models).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from dvdlib import verdicts
from dvdlib.bench import validate_prompts
from dvdlib.judges.base import QUESTIONS_PER_SIDE, Judge
from dvdlib.questions import OUR_WORDING, Wording, questions_for
from dvdlib.score import PRESENT_YES, dvd_image_score, load_image

SHAPE = "shape"  # content_type of toy-world rows
# Concept-only prompts for the diversity of generations (ours); "{concept}" as the prompt set
# writes it.
SOLO_TEMPLATES = {
    "artist": "a painting by {concept}",
    "landmark": "a photo of the {concept}",
    "character": "a picture of {concept}",
    SHAPE: "a {concept}",
}
KINDS = ("circle pair", "control pair", "alone")
ORDERS = ("content first", "nm_word first")


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
    ``[image, 3*h*w]``. Pass the background image as the measure's centre (:func:`background_pixels`)
    so a shared empty background does not count as similarity."""
    return _as_tensor(images).flatten(1).numpy().astype(np.float64)


def background_pixels(colour: Sequence[float], size: int = 32) -> np.ndarray:
    """The flat pixel vector of an empty ``size`` x ``size`` image of one colour (a centre)."""
    plane = torch.tensor([float(c) for c in colour]).view(3, 1, 1).expand(3, size, size)
    return plane.flatten().numpy().astype(np.float64)


@torch.no_grad()
def detector_embeddings(detector, images: torch.Tensor | Sequence[Image.Image]) -> np.ndarray:
    """The toy shape detector's convolutional features, flattened: ``[image, channels*4*4]``.

    ``detector`` is a :class:`dvdlib.toyworld.detector.ShapeDetector`. These are the features its
    classifier head reads; they still hold where and in what colour a shape is drawn. (The head's
    hidden layer is trained to ignore exactly that, so it sees every circle as the same circle.)
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
    """The images a :func:`dvdlib.generate.generate` manifest lists, in its row order."""
    image_dir = Path(image_dir)
    return [load_image(image_dir / file) for file in manifest["file"]]


# --------------------------------------------------------------------------------------------
# The toy world's training data


def concept_appearances(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` appearances of the world's limited concept as training draws them, each rendered
    alone: ``[n, 3, 32, 32]`` in [0, 1].

    Every appearance of the concept in a training scene is one ``World.draw_shape`` call; these
    are such calls from a generator seeded with ``seed``, so at ``K`` instances each image is one
    of the ``K`` fixed looks, picked as often as training picks it.
    """
    from dvdlib.toyworld.world import render

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (pairs of images are compared), got {n!r}")
    rng = np.random.default_rng(seed)
    return render([[world.draw_shape(world.limited, rng)] for _ in range(n)])


def reference_renders(world, n: int, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """``n`` one-shape renders, every shape of ``world`` equally often and at full diversity:
    ``[n, 3, 32, 32]``. Their mean detector embedding is the detector's centre."""
    from dvdlib.toyworld.world import World, render

    diverse = World(shapes=world.shapes, limited=world.limited, instances=None, unpaired=())
    rng = np.random.default_rng(seed)
    return render([[diverse.draw_shape(world.shapes[i % len(world.shapes)], rng)]
                   for i in range(n)])


def toy_embedders(detector, world, n_reference: int = 500, seed: int | Sequence[int] = 0
                  ) -> dict[str, tuple[Callable, np.ndarray]]:
    """The toy world's two embeddings with their centres: ``{name: (embed, centre)}``.

    "detector": :func:`detector_embeddings`, centred on the mean over :func:`reference_renders`;
    "pixels": :func:`pixel_embeddings`, centred on the empty background.
    """
    from dvdlib.toyworld.world import BACKGROUND

    def by_detector(images):
        return detector_embeddings(detector, images)

    reference = by_detector(reference_renders(world, n_reference, seed)).mean(axis=0)
    return {"detector": (by_detector, reference),
            "pixels": (pixel_embeddings, background_pixels(BACKGROUND, world.resolution))}


def training_diversity(worlds: Mapping[str, object], embedders: Mapping[str, tuple], n: int,
                       seed: int | Sequence[int] = 0) -> pd.DataFrame:
    """Our diversity measures of the limited concept's training looks, per world and embedding.

    ``embedders`` as :func:`toy_embedders` returns them. One row per (model name, embedding) with
    ``K`` (None: unlimited), ``embedding`` and the columns of :func:`diversity_measures`.
    """
    rows = []
    for name, world in worlds.items():
        images = concept_appearances(world, n, seed)
        for embedding, (embed, centre) in embedders.items():
            rows.append({"model": name, "K": world.instances, "embedding": embedding,
                         **diversity_measures(embed(images), centre)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The causal test on the toy zoo


def zoo_prompts(world) -> pd.DataFrame:
    """Every distinct prompt the causal test generates, in the prompt-set table shape.

    - ``circle pair``: the limited concept with each partner, both word orders;
    - ``control pair``: every pair of two other shapes, both word orders;
    - ``alone``: every shape by itself.

    ``content`` and ``nm_word`` hold the first and the second shape named (a shape alone names
    itself in both), so the table passes the prompt-set checks of :func:`dvdlib.generate.generate`;
    the roles that are scored are set later, by :func:`role_tables`. ``kind`` says which row is
    which; ``content_type`` is "shape".
    """
    from dvdlib.toyworld.world import caption

    others = [s for s in world.shapes if s != world.limited]
    rows = []
    for partner in others:
        rows.append(("circle pair", world.limited, partner))
        rows.append(("circle pair", partner, world.limited))
    for i, first in enumerate(others):
        for second in others[i + 1:]:
            rows.append(("control pair", first, second))
            rows.append(("control pair", second, first))
    for shape in world.shapes:
        rows.append(("alone", shape, shape))
    table = pd.DataFrame(
        [(i + 1, SHAPE, a, b, caption([a] if kind == "alone" else [a, b]), kind)
         for i, (kind, a, b) in enumerate(rows)],
        columns=["case_num", "content_type", "content", "nm_word", "prompt", "kind"])
    validated = validate_prompts(table, categories=(SHAPE,), source="zoo prompts")
    return validated.assign(kind=table["kind"].to_numpy())


def judge_shapes(image_dir: str | Path, manifest: pd.DataFrame, judge: Judge,
                 shapes: Sequence[str], wording: Wording = OUR_WORDING,
                 images_per_call: int = 256) -> pd.DataFrame:
    """The judge's yes count (0-5) for every shape in every image of a generation manifest.

    Each shape gets the five "shape" questions of ``wording`` (the concept side's, which for
    shapes are the object side's too). Returns the manifest's ``case_num``, ``prompt``, ``seed``
    and ``file`` with one column ``yes_<shape>`` per shape.
    """
    if not shapes:
        raise ValueError("no shapes to ask about")
    questions = [q for shape in shapes
                 for q in questions_for(SHAPE, shape, shape, wording)[:QUESTIONS_PER_SIDE]]
    counts = []
    for start in range(0, len(manifest), images_per_call):
        files = manifest["file"].iloc[start:start + images_per_call]
        items = [(load_image(Path(image_dir) / file), questions) for file in files]
        for answers in judge.answer(items):
            per_shape = np.asarray(answers, dtype=int).reshape(len(shapes), QUESTIONS_PER_SIDE)
            counts.append(per_shape.sum(axis=1))
    table = manifest[["case_num", "prompt", "seed", "file"]].reset_index(drop=True).copy()
    table[[f"yes_{s}" for s in shapes]] = np.asarray(counts, dtype=int).reshape(len(table),
                                                                                len(shapes))
    return table


def role_tables(yes: pd.DataFrame, prompts: pd.DataFrame, limited: str
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every two-shape image in its roles, and read every one-shape image.

    ``yes`` is :func:`judge_shapes`'s table, ``prompts`` :func:`zoo_prompts`'s. Returns

    - ``pairs``: one row per (two-shape image, role) with the authors' column names: ``content``
      the shape that may dominate, ``nm_word`` the one that may be suppressed, ``content_score``
      and ``nm_score`` their yes counts, ``dvd_score`` the paper's c(5-n)/25*100, and ours:
      ``kind``, ``arrangement`` ("content first" or "nm_word first" in the prompt), and
      ``content_present``/``nm_present`` (at least :data:`PRESENT_YES` yes). A circle pair is
      scored with the circle as content; a control pair in both roles.
    - ``alone``: one row per one-shape image: ``shape``, ``seed``, ``yes``, ``present``.
    """
    table = yes.merge(prompts[["case_num", "content", "nm_word", "kind"]], on="case_num")
    pairs, alone = [], []
    for row in table.itertuples(index=False):
        first, second = row.content, row.nm_word
        if row.kind == "alone":
            count = getattr(row, f"yes_{first}")
            alone.append({"case_num": row.case_num, "prompt": row.prompt, "shape": first,
                          "seed": row.seed, "yes": count, "present": count >= PRESENT_YES})
            continue
        if row.kind == "circle pair":
            roles = [(first, second)] if first == limited else [(second, first)]
        else:
            roles = [(first, second), (second, first)]
        for content, nm_word in roles:
            c, n = getattr(row, f"yes_{content}"), getattr(row, f"yes_{nm_word}")
            pairs.append({"case_num": row.case_num, "content_type": SHAPE, "content": content,
                          "nm_word": nm_word, "prompt": row.prompt, "seed": row.seed,
                          "kind": row.kind,
                          "arrangement": ORDERS[0] if content == first else ORDERS[1],
                          "content_score": c, "nm_score": n, "dvd_score": dvd_image_score(c, n),
                          "content_present": c >= PRESENT_YES, "nm_present": n >= PRESENT_YES})
    return pd.DataFrame(pairs), pd.DataFrame(alone)


def crossed_bootstrap(arrays: Mapping[str, np.ndarray], statistic: Callable[[dict], np.ndarray],
                      *, n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Estimate and percentile interval of ``statistic`` under a bootstrap of a crossed design.

    Every array is ``[group, seed]`` over the same groups (prompts, partners, concepts) and the
    same seeds, as when every prompt is generated with the same seeds. A resample draws groups
    and seeds with replacement, independently, and keeps their cross product, so the interval
    counts both the spread between prompts and the spread between seeds (a bootstrap of images
    alone ignores that images of one prompt, or of one seed, are alike). ``statistic`` maps a dict
    of arrays ``[resample, group, seed]`` to one value per resample ``[resample]``; NaN entries are
    ignored by the ``np.nan*`` reductions it may use. Returns (estimate, low, high); the interval
    is NaN when fewer than half of the resamples give a finite value (e.g. a ratio over zeros).
    """
    if not arrays:
        raise ValueError("no arrays to resample")
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"arrays must all be [group, seed] of one shape, got {shapes}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    data = {name: np.asarray(a, dtype=float) for name, a in arrays.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(np.asarray(statistic({k: v[None] for k, v in data.items()}))[0])
        rng = np.random.default_rng(seed)
        groups = rng.integers(0, first[0], size=(n_resamples, first[0]))  # [resample, group]
        seeds = rng.integers(0, first[1], size=(n_resamples, first[1]))  # [resample, seed]
        rows, columns = groups[:, :, None], seeds[:, None, :]
        values = np.asarray(statistic({k: v[rows, columns] for k, v in data.items()}), dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size < n_resamples / 2:
        return estimate, float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return estimate, float(low), float(high)


def _mean(array: np.ndarray) -> np.ndarray:
    return np.nanmean(array, axis=(-2, -1))


def _ratio(numerator: str, denominator: str) -> Callable[[dict], np.ndarray]:
    return lambda a: _mean(a[numerator]) / _mean(a[denominator])


def _only(a: dict) -> np.ndarray:
    return _mean(a["circle_only"]) - _mean(a["partner_only"])


# measure -> (what it is, its statistic over the [resample, partner, seed] arrays)
MEASURES: dict[str, tuple[str, Callable[[dict], np.ndarray]]] = {
    "dvd": ("DvD of the circle over the partner (paper's formula)", lambda a: _mean(a["dvd"])),
    "dvd_control": ("DvD of another shape over the partner (control pairs)",
                    lambda a: _mean(a["dvd_control"])),
    "dvd_excess": ("circle's DvD minus the control's", lambda a: _mean(a["dvd"]) - _mean(a["dvd_control"])),
    "circle_pair": ("P(circle present | pair prompt)", lambda a: _mean(a["circle_pair"])),
    "partner_pair": ("P(partner present | pair prompt)", lambda a: _mean(a["partner_pair"])),
    "circle_alone": ("P(circle present | prompted alone)", lambda a: _mean(a["circle_alone"])),
    "partner_alone": ("P(partner present | prompted alone)", lambda a: _mean(a["partner_alone"])),
    "circle_retention": ("P(circle | pair) / P(circle | alone)", _ratio("circle_pair", "circle_alone")),
    "partner_retention": ("P(partner | pair) / P(partner | alone)",
                          _ratio("partner_pair", "partner_alone")),
    "dominance": ("P(circle only) - P(partner only) in pair prompts", _only),
}


def _by_partner_and_seed(table: pd.DataFrame, index: str, value: str, partners: Sequence[str],
                         seeds: Sequence[int]) -> np.ndarray:
    """``[partner, seed]`` means of ``value`` (over word orders and control shapes)."""
    numeric = table.assign(**{value: table[value].astype(float)})  # booleans count as 0/1
    matrix = numeric.pivot_table(index=index, columns="seed", values=value, aggfunc="mean")
    return matrix.reindex(index=list(partners), columns=list(seeds)).to_numpy(dtype=float)


def partner_arrays(pairs: pd.DataFrame, alone: pd.DataFrame, limited: str,
                   partners: Sequence[str]) -> dict[str, np.ndarray]:
    """The ``[partner, seed]`` arrays :data:`MEASURES` read, for one model's tables."""
    seeds = sorted(set(pairs["seed"]))
    circle = pairs[(pairs["kind"] == "circle pair") & (pairs["content"] == limited)]
    control = pairs[(pairs["kind"] == "control pair") & pairs["nm_word"].isin(partners)]
    circle = circle.assign(circle_only=circle["content_present"] & ~circle["nm_present"],
                           partner_only=~circle["content_present"] & circle["nm_present"])
    arrays = {name: _by_partner_and_seed(circle, "nm_word", column, partners, seeds)
              for name, column in (("dvd", "dvd_score"), ("circle_pair", "content_present"),
                                   ("partner_pair", "nm_present"), ("circle_only", "circle_only"),
                                   ("partner_only", "partner_only"))}
    arrays["dvd_control"] = _by_partner_and_seed(control, "nm_word", "dvd_score", partners, seeds)
    arrays["partner_alone"] = _by_partner_and_seed(alone, "shape", "present", partners, seeds)
    solo = alone[alone["shape"] == limited].set_index("seed")["present"].reindex(seeds)
    arrays["circle_alone"] = np.tile(solo.to_numpy(dtype=float), (len(partners), 1))
    return arrays


def dose_response(pairs: pd.DataFrame, alone: pd.DataFrame, limited: str,
                  partner_sets: Mapping[str, Sequence[str]], *, n_resamples: int = 2000,
                  confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every measure of :data:`MEASURES` per model and partner set, with crossed-bootstrap intervals.

    ``pairs`` and ``alone`` are :func:`role_tables`' tables with a ``model`` column (and ``K``);
    ``partner_sets`` names subsets of partners, e.g. ``{"all": [...], "seen in training": [...]}``.
    One row per (model, partners, measure): ``estimate``, ``ci_low``, ``ci_high``, ``n_images``
    (the pair images of the circle behind it).
    """
    rows = []
    for model, model_pairs in pairs.groupby("model", sort=False):
        model_alone = alone[alone["model"] == model]
        k = model_pairs["K"].iloc[0] if "K" in model_pairs else None
        for label, partners in partner_sets.items():
            arrays = partner_arrays(model_pairs, model_alone, limited, partners)
            n_images = int(((model_pairs["kind"] == "circle pair")
                            & model_pairs["nm_word"].isin(partners)).sum())
            for measure, (meaning, statistic) in MEASURES.items():
                estimate, low, high = crossed_bootstrap(arrays, statistic, n_resamples=n_resamples,
                                                        confidence=confidence, seed=seed)
                rows.append({"model": model, "K": k, "partners": label, "measure": measure,
                             "meaning": meaning, "estimate": estimate, "ci_low": low,
                             "ci_high": high, "n_images": n_images})
    return pd.DataFrame(rows)


def contrast(pairs: pd.DataFrame, alone: pd.DataFrame, limited: str, partners: Sequence[str],
             model_a: str, model_b: str, measure: str = "dvd", *, n_resamples: int = 2000,
             confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``measure`` of ``model_a`` minus that of ``model_b``, with a crossed-bootstrap interval.

    Both models are prompted with the same prompts and seeds, so one resample of partners and
    seeds is applied to both (a paired comparison).
    """
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; accepted: {', '.join(MEASURES)}")
    statistic = MEASURES[measure][1]
    arrays = {}
    for prefix, model in (("a", model_a), ("b", model_b)):
        if model not in set(pairs["model"]):
            raise ValueError(f"model {model!r} is not in the table; it has "
                             f"{', '.join(dict.fromkeys(pairs['model']))}")
        found = partner_arrays(pairs[pairs["model"] == model], alone[alone["model"] == model],
                               limited, partners)
        arrays.update({f"{prefix}:{k}": v for k, v in found.items()})

    def difference(a: dict) -> np.ndarray:
        return (statistic({k[2:]: v for k, v in a.items() if k.startswith("a:")})
                - statistic({k[2:]: v for k, v in a.items() if k.startswith("b:")}))

    return crossed_bootstrap(arrays, difference, n_resamples=n_resamples, confidence=confidence,
                             seed=seed)


@dataclass
class CausalTest:
    """What :func:`run_causal_test` made: the prompts, the judge's counts, the scored tables."""

    prompts: pd.DataFrame  # zoo_prompts
    yes: pd.DataFrame  # judge_shapes per image, with model, K and kind
    pairs: pd.DataFrame  # role_tables' pairs, with model and K
    alone: pd.DataFrame  # role_tables' alone, with model and K
    image_dir: Path  # images of model m under image_dir / m (the authors' layout)

    def images(self, model: str, prompt: str, seeds: Sequence[int] | None = None) -> list[Image.Image]:
        """The images one model made for one prompt (all seeds, or those given, in that order)."""
        rows = self.yes[(self.yes["model"] == model) & (self.yes["prompt"] == prompt)]
        if seeds is not None:
            rows = rows.set_index("seed").loc[list(seeds)].reset_index()
        if rows.empty:
            raise ValueError(f"no images of model {model!r} for prompt {prompt!r}")
        return load_images(self.image_dir / model, rows)


def run_causal_test(models: Mapping[str, object], worlds: Mapping[str, object], judge: Judge,
                    seeds: Sequence[int], image_dir: str | Path, *, steps: int, guidance: float,
                    batch_size: int = 64, wording: Wording = OUR_WORDING,
                    progress: bool = False) -> CausalTest:
    """Generate :func:`zoo_prompts` with every model and seed, judge every shape, score the roles.

    ``models`` maps names to toy pipelines, ``worlds`` the same names to their worlds (which must
    agree on shapes and limited concept: the models differ only in K). Images are written by
    :func:`dvdlib.generate.generate` under ``image_dir / name``. ``wording`` supplies the shape
    questions (:func:`judge_shapes`).
    """
    from dvdlib.generate import generate

    names = list(models)
    if not names or set(worlds) != set(names):
        raise ValueError(f"models and worlds must name the same models, got {names} and "
                         f"{list(worlds)}")
    first = worlds[names[0]]
    for name in names:
        if (worlds[name].shapes, worlds[name].limited) != (first.shapes, first.limited):
            raise ValueError(f"model {name!r} has shapes {worlds[name].shapes} and limited concept "
                             f"{worlds[name].limited!r}; {names[0]!r} has {first.shapes} and "
                             f"{first.limited!r}: the zoo's models must differ only in K")
    prompts = zoo_prompts(first)
    image_dir = Path(image_dir)
    yes_tables, pair_tables, alone_tables = [], [], []
    for name in names:
        manifest = generate(models[name], prompts, seeds, image_dir / name, model=f"toy:{name}",
                            steps=steps, guidance=guidance, batch_size=batch_size,
                            progress=progress)
        yes = judge_shapes(image_dir / name, manifest, judge, first.shapes, wording)
        pairs, alone = role_tables(yes, prompts, first.limited)
        k = worlds[name].instances
        kind = prompts.set_index("case_num")["kind"]
        yes_tables.append(yes.assign(model=name, K=k, kind=yes["case_num"].map(kind).to_numpy()))
        pair_tables.append(pairs.assign(model=name, K=k))
        alone_tables.append(alone.assign(model=name, K=k))
    return CausalTest(prompts, pd.concat(yes_tables, ignore_index=True),
                      pd.concat(pair_tables, ignore_index=True),
                      pd.concat(alone_tables, ignore_index=True), image_dir)


def plot_by_level(ax, table: pd.DataFrame, measures: Sequence[str], labels: Sequence[str],
                  models: Sequence[str], ticks: Sequence[str], ylabel: str) -> None:
    """Draw :func:`dose_response` rows of ``measures`` against the models' diversity levels.

    One line with 95 % interval bars per measure (``labels`` name them in the legend), the models
    at x = 0, 1, ... in the order of ``models`` with ``ticks`` as labels; lines are nudged apart
    sideways so that their bars do not hide each other.
    """
    if len(measures) != len(labels) or len(models) != len(ticks):
        raise ValueError("give one label per measure and one tick per model")
    position = {model: i for i, model in enumerate(models)}
    for offset, (measure, label) in enumerate(zip(measures, labels)):
        rows = table[table["measure"] == measure]
        rows = rows.assign(x=rows["model"].map(position)).dropna(subset=["x"]).sort_values("x")
        x = rows["x"] + 0.08 * (offset - (len(measures) - 1) / 2)
        error = [rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]]
        ax.errorbar(x, rows["estimate"], yerr=error, marker="o", capsize=3, label=label)
    ax.set_xticks(range(len(models)), list(ticks))
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)


def diversity_by_label(embeddings, labels: Sequence, centre=None) -> pd.DataFrame:
    """Our diversity measures per label (a concept, a shape) of precomputed embeddings.

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


def toy_generated_diversity(test: CausalTest, embedders: Mapping[str, tuple],
                            present_only: bool = True) -> pd.DataFrame:
    """Our diversity of what each zoo model draws for every shape prompted alone.

    Measured on the images of "a <shape>" over all seeds, embedded and centred as the training
    looks are (``embedders`` from :func:`toy_embedders`). With ``present_only`` only the images in
    which the judge finds the shape count: an image the model left empty is not a look of the
    shape, and empty images are all alike, so they would pass for rigidity. One row per (model,
    embedding, shape) with ``K``, ``n_prompted`` (images made) and the columns of
    :func:`diversity_measures` (NaN when fewer than 2 images count).
    """
    rows = []
    solo = test.yes[test.yes["kind"] == "alone"]
    shape_of = test.prompts.set_index("case_num")["content"]
    for model, group in solo.groupby("model", sort=False):
        shapes = shape_of.loc[group["case_num"]].to_numpy()
        counts = np.array([row[f"yes_{shape}"] for shape, (_, row) in zip(shapes, group.iterrows())])
        kept = counts >= PRESENT_YES if present_only else np.ones(len(group), dtype=bool)
        images = load_images(test.image_dir / model, group[kept])
        for embedding, (embed, centre) in embedders.items():
            vectors = np.asarray(embed(images)) if images else np.empty((0, 0))
            for shape in dict.fromkeys(shapes):
                picked = vectors[shapes[kept] == shape]
                measures = (diversity_measures(picked, centre) if len(picked) >= 2 else
                            {"n": len(picked), "similarity": np.nan, "diversity": np.nan,
                             "vendi": np.nan})
                rows.append({"model": model, "K": group["K"].iloc[0], "embedding": embedding,
                             "shape": shape, "n_prompted": int((shapes == shape).sum()),
                             **measures})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Real models: concept-only prompts and per-concept DvD


def solo_prompts(prompts: pd.DataFrame, templates: Mapping[str, str] = SOLO_TEMPLATES) -> pd.DataFrame:
    """One concept-only prompt per (category, concept) of a prompt set, in the set's table shape.

    The prompt is ``templates[category]`` filled with the concept as the set writes it ("a
    painting by van gogh"). A concept-only prompt names no object; its ``nm_word`` repeats the
    concept so that the table passes the prompt-set checks of :func:`dvdlib.generate.generate`
    (the column is not scored).
    """
    concepts = prompts[["content_type", "content"]].drop_duplicates().reset_index(drop=True)
    missing = sorted(set(concepts["content_type"]) - set(templates))
    if missing:
        raise ValueError(f"no concept-only template for categor(ies) {', '.join(missing)}; "
                         f"templates exist for {', '.join(templates)}")
    table = concepts.assign(
        case_num=np.arange(1, len(concepts) + 1),
        nm_word=concepts["content"],
        prompt=[templates[t].format(concept=c) for t, c in zip(concepts["content_type"],
                                                                concepts["content"])])
    columns = ["case_num", "content_type", "content", "nm_word", "prompt"]
    return validate_prompts(table[columns], categories=tuple(templates), source="concept-only prompts")


def concept_dvd(images: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95,
                seed: int = 0) -> pd.DataFrame:
    """Each concept's DvD: the mean over its prompts and seeds, with a crossed-bootstrap interval.

    ``images`` is a per-image table of :func:`dvdlib.score.score_folder` (``content_type``,
    ``content``, ``case_num``, ``seed``, ``dvd_score``). One row per concept: ``n_prompts``,
    ``n_images``, ``dvd``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for (category, concept), group in images.groupby(["content_type", "content"], sort=True):
        matrix = group.pivot_table(index="case_num", columns="seed", values="dvd_score",
                                   aggfunc="mean").to_numpy(dtype=float)
        estimate, low, high = crossed_bootstrap({"dvd": matrix}, lambda a: _mean(a["dvd"]),
                                                n_resamples=n_resamples, confidence=confidence,
                                                seed=seed)
        rows.append({"content_type": category, "content": concept, "n_prompts": matrix.shape[0],
                     "n_images": len(group), "dvd": estimate, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


@dataclass
class ConceptStudy:
    """What :func:`run_concept_study` made: per-image DvD of the prompt set, and per concept."""

    images: pd.DataFrame  # score_folder's per-image table of the two-concept prompts
    concepts: pd.DataFrame  # one row per concept: DvD with interval, diversity of its generations
    image_dir: Path  # pairs/ (the prompt set) and solo/ (concept-only prompts), authors' layout


def run_concept_study(pipe, model: str, prompts: pd.DataFrame, seeds: Sequence[int],
                      out_dir: str | Path, judge: Judge,
                      embed: Callable[[list[Image.Image]], np.ndarray], *, steps: int,
                      guidance: float, height: int | None = None, width: int | None = None,
                      batch_size: int = 1, wording: Wording = OUR_WORDING,
                      n_resamples: int = 2000, progress: bool = False) -> ConceptStudy:
    """Each concept's DvD over a prompt set next to the diversity of its concept-only images.

    1. Generate every prompt of ``prompts`` with every seed (:func:`dvdlib.generate.generate`)
       into ``out_dir / "pairs"`` and judge them (:func:`dvdlib.score.score_folder`, answers
       logged beside ``out_dir / "scores.csv"``, so a rerun resumes); :func:`concept_dvd`.
    2. Generate each concept's :func:`solo_prompts` prompt with the same seeds into
       ``out_dir / "solo"``, embed the images with ``embed`` (e.g. CLIP,
       :func:`clip_image_embeddings`), and measure each concept's diversity, centred on the mean
       embedding of all concepts' images.
    """
    from dvdlib.generate import generate
    from dvdlib.score import score_folder

    out_dir = Path(out_dir)
    settings = dict(model=model, steps=steps, guidance=guidance, height=height, width=width,
                    batch_size=batch_size, progress=progress)
    generate(pipe, prompts, seeds, out_dir / "pairs", **settings)
    images = score_folder(out_dir / "pairs", prompts, judge, out_dir / "scores.csv",
                          wording=wording, progress=progress)
    dvd = concept_dvd(images, n_resamples=n_resamples)

    solo = solo_prompts(prompts)
    manifest = generate(pipe, solo, seeds, out_dir / "solo", **settings)
    embeddings, labels = [], []
    for case_num, rows in manifest.groupby("case_num", sort=True):  # one concept in memory at a time
        embeddings.append(np.asarray(embed(load_images(out_dir / "solo", rows)), dtype=np.float64))
        labels += [case_num] * len(rows)
    embeddings = np.concatenate(embeddings)
    measured = diversity_by_label(embeddings, labels, centre=embeddings.mean(axis=0))
    measured = measured.rename(columns={"label": "case_num"}).merge(
        solo[["case_num", "content_type", "content", "prompt"]], on="case_num")
    concepts = dvd.merge(measured.drop(columns="case_num").rename(columns={"prompt": "solo_prompt"}),
                         on=["content_type", "content"])
    return ConceptStudy(images, concepts, out_dir)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's correlation of average ranks; ties share a rank).

    Pairs with a NaN are left out; NaN when fewer than 3 pairs remain or one side is constant.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-D sequences of one length, got shapes {x.shape} and {y.shape}")
    complete = ~(np.isnan(x) | np.isnan(y))
    rx, ry = pd.Series(x[complete]).rank(), pd.Series(y[complete]).rank()
    if len(rx) < 3 or rx.std() == 0 or ry.std() == 0:
        return float("nan")  # too few points, or a constant sequence: no ranking to correlate
    return float(np.corrcoef(rx, ry)[0, 1])


def rank_correlation(x: Sequence[float], y: Sequence[float], *, n_resamples: int = 2000,
                     confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` and ``y`` with a percentile bootstrap interval over the points."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        picks = rng.integers(0, len(x), size=len(x))
        values.append(spearman(x[picks], y[picks]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    if values.size < n_resamples / 2:
        return rho, float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return rho, float(low), float(high)


# --------------------------------------------------------------------------------------------
# What the chapter says about finding 1


def check_criteria(positive_control_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a test criterion outside its range (before any model runs)."""
    verdicts.check_bound(positive_control_dvd, "positive_control_dvd")
    if not 0 <= positive_control_dvd < 100:
        raise ValueError(f"positive_control_dvd must be in [0, 100), got {positive_control_dvd!r}")
    verdicts.check_confidence(confidence)


def stated_test(toy: bool, positive_control_dvd: float = 20.0, confidence: float = 0.95) -> str:
    """The chapter's test of finding 1 in words, before any number (the criteria are checked)."""
    check_criteria(positive_control_dvd, confidence)
    level = f"{confidence * 100:g} %"
    if toy:
        rule = (f"Finding 1 is **supported** when the {level} interval of DvD(least diverse model) - "
                f"DvD(unlimited diversity), the circle's DvD over the same partners and seeds, lies above 0; "
                "**contradicted** when it lies below 0; **inconclusive** when it contains 0.")
        control = "some model of the zoo"
    else:
        rule = (f"Finding 1 is **supported** when the {level} interval of Spearman's rho between a concept's "
                "diversity of generations and its DvD lies below 0 (less diverse, more dominant); "
                "**contradicted** when it lies above 0; **inconclusive** when it contains 0.")
        control = "some concept"
    return (rule + f" It is **not testable** without a positive control: unless {control} dominates "
            f"clearly (its DvD interval above {positive_control_dvd:g}), no difference is to be expected "
            "and a null result says nothing.")


def finding_verdict(effect, dvds: Mapping[str, tuple[float, float, float]], *, toy: bool,
                    positive_control_dvd: float = 20.0, confidence: float = 0.95,
                    first: str = "", last: str = "") -> verdicts.Verdict:
    """The verdict on finding 1 (see :func:`stated_test`).

    ``effect`` is ``(estimate, low, high)``: the DvD difference between the least and the most
    diverse model (``toy``), or the rank correlation of diversity and DvD over concepts. ``dvds``
    maps each model (toy) or concept to its DvD ``(estimate, low, high)``: the positive control.
    """
    check_criteria(positive_control_dvd, confidence)
    if not dvds:
        raise ValueError("no DvD values for the positive control")
    name, best = max(dvds.items(), key=lambda item: (np.nan_to_num(item[1][1], nan=-np.inf), item[1][0]))
    control = verdicts.Requirement(
        f"a positive control: {'some model' if toy else 'some concept'} with its DvD interval above "
        f"{positive_control_dvd:g}", bool(best[1] > positive_control_dvd),
        f"the highest is {name}'s {verdicts.Interval.of(best).text()}")
    if toy:
        test = verdicts.Test("finding 1", "the circle dominates more when trained on fewer distinct looks",
                             f"DvD({first}) - DvD({last})", "above", 0.0, confidence)
    else:
        test = verdicts.Test("finding 1", "concepts drawn less diversely dominate more",
                             "Spearman's rho of a concept's generated diversity and its DvD", "below", 0.0,
                             confidence, digits=2)
    return verdicts.decide(test, effect, [control])
