"""Every interval and correlation the chapters report, in one place.

- :func:`bootstrap_ci`: percentile bootstrap interval of a statistic over values (seeded);
  :func:`mean_interval`: the mean with that interval.
- :func:`estimate_with_interval`: an estimate with the percentile interval of its resamples.
- :func:`nested_bootstrap_ci`: two-level bootstrap, clusters (prompts) then units (seeds).
- :func:`step_intervals`: the mean per denoising step with a cluster interval (over seeds, or
  images), resampling whole clusters so that the steps of one image move together.
- :func:`step_auc`: how well a per-step score predicts an image's later outcome (the AUC per
  step), with a cluster interval over seeds.
- :func:`rank_correlation`: Spearman's rho (average ranks for ties); :func:`bootstrap_rank_correlation`:
  rho with a percentile bootstrap interval over pairs, vectorised.
- :func:`two_level_interval`: a group mean, or a difference of two, over ``[model, object, seed]``
  values, resampling models within each group, then seeds shared by every model (chapter 2's toy
  zoo); :func:`fixed_models_interval`: the same with each group's models held fixed.
- :func:`crossed_bootstrap`: a statistic of ``[group, seed]`` arrays, resampling groups and seeds
  independently and keeping their cross product (chapter 2's real-model study).
- :func:`cluster_mean_interval`: the mean of per-image values, or a paired difference of two
  arms' means, resampling whole seeds; :func:`cluster_rank_correlation`: Spearman's rho (over
  all images, or its mean within prompts) resampling whole seeds (chapter 3).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.stats.verdicts import check_confidence


def bootstrap_ci(values, statistic: Callable = np.mean, *, n_resamples: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over ``values`` (resampled with replacement).

    ``statistic`` is a NumPy reduction taking ``axis`` (``np.mean``, ``np.median``). Seeded: the
    same inputs give the same interval. A single value gives the interval (value, value).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"bootstrap_ci needs a non-empty 1-D sequence, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("bootstrap_ci got NaN values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // values.size)  # bounds memory: at most ~16 MB of indices at once
    for start in range(0, n_resamples, chunk):
        count = min(chunk, n_resamples - start)
        picks = rng.integers(0, values.size, size=(count, values.size))  # [resample, value]
        stats[start:start + count] = statistic(values[picks], axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


def estimate_with_interval(estimate: float, resampled, confidence: float = 0.95
                           ) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the percentile interval of the ``resampled`` statistic's finite
    values; NaN bounds when fewer than half are finite (e.g. a ratio over zeros)."""
    resampled = np.asarray(resampled, dtype=float)
    finite = resampled[np.isfinite(resampled)]
    if finite.size < resampled.size / 2 or finite.size == 0:
        return float(estimate), float("nan"), float("nan")
    tail = (1 - confidence) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    return float(estimate), float(low), float(high)


def mean_interval(values, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95
                  ) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of ``values`` (as :func:`bootstrap_ci`)."""
    values = np.asarray(values, dtype=float)
    low, high = bootstrap_ci(values, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return float(values.mean()), low, high


def nested_bootstrap_ci(table: pd.DataFrame, value: str, cluster: str = "case_num", unit: str = "seed",
                        *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
                        ) -> tuple[float, float]:
    """Two-level percentile bootstrap of the mean of ``value``: prompts, then seeds within them.

    Each resample draws the clusters (prompts) with replacement and, within each drawn cluster,
    its units (seeds) with replacement; the statistic is the mean over all drawn values. The
    design must be balanced (every cluster has the same units). Seeded: same inputs, same interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if table.empty:
        raise ValueError("nested_bootstrap_ci got an empty table")
    ordered = table.sort_values([cluster, unit], kind="stable")
    clusters, units = ordered[cluster].unique(), np.sort(ordered[unit].unique())
    n_clusters, n_units = len(clusters), len(units)
    if len(ordered) != n_clusters * n_units or not np.array_equal(
            ordered[unit].to_numpy().reshape(n_clusters, n_units), np.tile(units, (n_clusters, 1))):
        raise ValueError(f"nested_bootstrap_ci needs exactly one {value!r} per ({cluster}, {unit}); "
                         f"the table has {len(table)} rows for {n_clusters} {cluster} x {n_units} {unit} "
                         "cells")
    values = ordered[value].to_numpy(dtype=float).reshape(n_clusters, n_units)  # [cluster, unit]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // values.size)  # bounds the index arrays' memory
    for start in range(0, n_resamples, chunk):
        count = min(chunk, n_resamples - start)
        drawn_clusters = rng.integers(0, n_clusters, size=(count, n_clusters, 1))  # [resample, cluster, 1]
        drawn_units = rng.integers(0, n_units, size=(count, n_clusters, n_units))  # [resample, cluster, unit]
        stats[start:start + count] = values[drawn_clusters, drawn_units].mean(axis=(1, 2))
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats, [tail, 1 - tail])
    return float(low), float(high)


def step_intervals(table: pd.DataFrame, value: str, by: Sequence[str] = (), *, unit: str = "image",
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of ``value`` per step (and ``by`` group), with a percentile cluster bootstrap interval.

    ``table`` holds one row per image and step (columns ``image``, ``step``, ``value``, ``unit``
    and the ``by`` columns). Each resample draws whole clusters of ``unit`` with replacement (every
    image of a drawn seed, with all its steps, when ``unit="seed"``), so images that share the
    independent unit stay together; ``unit="image"`` resamples images. One generator, seeded once,
    serves the groups in sorted order. NaN values are left out of every mean. One row per group and
    step: ``mean``, ``ci_low``, ``ci_high``, ``n_images``, ``n_units``.
    """
    for column in (value, unit):
        if column not in table.columns:
            raise KeyError(f"column {column!r} is not in the table; columns: {', '.join(table.columns)}")
    check_confidence(confidence)
    by = list(by)
    groups = table.groupby(by, observed=True, sort=True) if by else [((), table)]
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    rows = []
    for key, group in groups:
        wide = group.pivot_table(index="image", columns="step", values=value)  # [image, step]
        units = group.groupby("image")[unit].first().reindex(wide.index)
        codes, _ = pd.factorize(units, sort=True)
        matrix = wide.to_numpy()
        finite = np.isfinite(matrix)
        n_units = codes.max() + 1
        sums = np.zeros((n_units, matrix.shape[1]))  # [unit, step]
        counts = np.zeros((n_units, matrix.shape[1]))  # [unit, step]
        np.add.at(sums, codes, np.where(finite, matrix, 0.0))
        np.add.at(counts, codes, finite)
        means = np.empty((n_resamples, matrix.shape[1]))  # [resample, step]
        chunk = max(1, 2_000_000 // sums.size)  # bounds the resampled values' memory
        with np.errstate(invalid="ignore", divide="ignore"):
            for start in range(0, n_resamples, chunk):
                count = min(chunk, n_resamples - start)
                picks = rng.integers(0, n_units, size=(count, n_units))  # [resample, unit]
                means[start:start + count] = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
        low, high = np.nanquantile(means, [tail, 1 - tail], axis=0)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(pd.DataFrame({**dict(zip(by, key)), "step": wide.columns.to_numpy(),
                                  "mean": np.nanmean(matrix, axis=0), "ci_low": low,
                                  "ci_high": high, "n_images": len(matrix), "n_units": n_units}))
    out = pd.concat(rows, ignore_index=True)
    for column in by:
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            out[column] = pd.Categorical(out[column], categories=table[column].cat.categories)
    return out


def _auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of ``scores`` (``[row, item]``) for the items whose ``labels``
    (``[item]``, 0 or 1) are 1, row by row: the chance that a positive item scores above a negative
    one, ties counting half (the Mann-Whitney statistic). NaN without a positive or a negative."""
    positive, negative = scores[:, labels == 1], scores[:, labels == 0]  # [row, item]
    if not positive.shape[1] or not negative.shape[1]:
        return np.full(scores.shape[0], np.nan)
    above = (positive[:, :, None] > negative[:, None, :]).mean(axis=(1, 2))
    tied = (positive[:, :, None] == negative[:, None, :]).mean(axis=(1, 2))
    return above + tied / 2


def step_auc(table: pd.DataFrame, score: str, outcome: str, *, unit: str = "seed",
             n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How well ``score`` at each step predicts a later binary ``outcome``: the AUC per step with a
    cluster bootstrap interval over ``unit``.

    ``table`` holds one row per image and step (``image``, ``step``, ``score``, ``outcome`` (0/1,
    the same at every step of an image) and ``unit``). The AUC is the chance that an image with the
    outcome has the higher score (0.5 is chance). A resample draws whole ``unit`` clusters with
    replacement, every step of their images together, so the intervals of different steps come from
    the same resamples. One row per step: ``auc``, ``ci_low``, ``ci_high``, ``n_images``,
    ``n_positive``, ``n_units``.
    """
    for column in (score, outcome, unit):
        if column not in table.columns:
            raise KeyError(f"column {column!r} is not in the table; columns: {', '.join(table.columns)}")
    check_confidence(confidence)
    wide = table.pivot_table(index="image", columns="step", values=score)  # [image, step]
    per_image = table.groupby("image").agg(outcome=(outcome, "first"), unit=(unit, "first"))
    per_image = per_image.reindex(wide.index)
    labels = per_image["outcome"].to_numpy(dtype=float)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{outcome} must be 0 or 1 for every image")
    if wide.isna().to_numpy().any():
        raise ValueError(f"{score} must be finite at every step of every image")
    codes, _ = pd.factorize(per_image["unit"], sort=True)
    members = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]  # images of each unit
    matrix = wide.to_numpy().T  # [step, image]
    estimate = _auc(matrix, labels)
    rng = np.random.default_rng(seed)
    resampled = np.empty((n_resamples, matrix.shape[0]))  # [resample, step]
    for r in range(n_resamples):
        picks = rng.integers(0, len(members), size=len(members))
        images = np.concatenate([members[p] for p in picks])
        resampled[r] = _auc(matrix[:, images], labels[images])
    tail = (1 - confidence) / 2
    with _quiet_nanmean():
        low, high = np.nanquantile(resampled, [tail, 1 - tail], axis=0)
    return pd.DataFrame({"step": wide.columns.to_numpy(), "auc": estimate, "ci_low": low,
                         "ci_high": high, "n_images": len(labels),
                         "n_positive": int(labels.sum()), "n_units": len(members)})


def _average_ranks(codes: np.ndarray, n_values: int) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) of integer codes, row by row.

    ``codes`` is ``[row, item]`` with values in ``0 .. n_values - 1``.
    """
    rows, items = codes.shape
    flat = (codes + n_values * np.arange(rows)[:, None]).ravel()
    counts = np.bincount(flat, minlength=rows * n_values).reshape(rows, n_values)  # [row, value]
    below = np.cumsum(counts, axis=1) - counts  # items with a smaller value
    rank_of_value = below + (counts + 1) / 2
    return np.take_along_axis(rank_of_value, codes, axis=1)


def _rank_rho(x_codes: np.ndarray, nx: int, y_codes: np.ndarray, ny: int) -> np.ndarray:
    rx = _average_ranks(x_codes, nx)
    ry = _average_ranks(y_codes, ny)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=1) / denominator, np.nan)


def _codes(values) -> tuple[np.ndarray, int]:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-D sequence, got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("rank correlation got NaN values")
    unique, codes = np.unique(values, return_inverse=True)
    return codes.reshape(-1), len(unique)


def rank_correlation(x, y) -> float:
    """Spearman's rho of ``x`` and ``y`` (average ranks for ties); NaN when either is constant."""
    (xc, nx), (yc, ny) = _codes(x), _codes(y)
    if len(xc) != len(yc):
        raise ValueError(f"x and y differ in length: {len(xc)} and {len(yc)}")
    if len(xc) < 2:
        raise ValueError(f"rank correlation needs at least 2 pairs, got {len(xc)}")
    return float(_rank_rho(xc[None], nx, yc[None], ny)[0])


def bootstrap_rank_correlation(x, y, *, n_resamples: int = 2000, confidence: float = 0.95,
                               seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho and its percentile bootstrap interval, resampling (x, y) pairs.

    Returns ``(rho, low, high)``. Resamples in which x or y is constant (rho undefined) are left
    out of the interval; all three are NaN when rho itself is undefined.
    """
    rho = rank_correlation(x, y)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if math.isnan(rho):
        return rho, math.nan, math.nan
    (xc, nx), (yc, ny) = _codes(x), _codes(y)
    rng = np.random.default_rng(seed)
    stats = []
    chunk = max(1, 2_000_000 // len(xc))  # bounds memory
    for start in range(0, n_resamples, chunk):
        picks = rng.integers(0, len(xc), size=(min(chunk, n_resamples - start), len(xc)))
        stats.append(_rank_rho(xc[picks], nx, yc[picks], ny))
    stats = np.concatenate(stats)
    tail = (1 - confidence) / 2
    low, high = np.nanquantile(stats, [tail, 1 - tail])
    return rho, float(low), float(high)


# --------------------------------------------------------------------------------------------
# Designs of chapter 2: models within groups with shared seeds, and crossed groups and seeds


def two_level_interval(cube: np.ndarray, first: Sequence[int], second: Sequence[int] = (), *,
                       n_resamples: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float, float]:
    """Estimate and percentile interval of a group mean, or of a difference of two group means.

    ``cube`` is ``[model, object, seed]`` (NaN where an image is missing). A group's value is the
    mean over its models (indices ``first``) of each model's mean over objects and seeds; with
    ``second``, the value is first's minus second's. One resample draws, with replacement, the
    models of each group among its own models (level 1: the replication unit, e.g. the K = 1
    instance seeds), then the seeds (level 2: one draw shared by every model, because the same
    seeds made every model's images, so the comparison stays paired). Objects are not resampled:
    they are the world's whole set. Returns (estimate, low, high); the interval is NaN when fewer
    than half of the resamples give a finite value.
    """
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 3:
        raise ValueError(f"cube must be [model, object, seed], got shape {cube.shape}")
    groups = [np.asarray(list(g), dtype=int) for g in (first, second) if len(g)]
    if not len(first) or any(((g < 0) | (g >= cube.shape[0])).any() for g in groups):
        raise ValueError(f"groups must be non-empty lists of model indices below {cube.shape[0]}, "
                         f"got {list(first)} and {list(second)}")
    check_confidence(confidence)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    _, n_objects, n_seeds = cube.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))  # [resample, seed]
    objects = np.arange(n_objects)[None, None, :, None]
    with np.errstate(invalid="ignore"), _quiet_nanmean():
        sides, estimates = [], []
        for group in groups:
            estimates.append(np.nanmean(cube[group], axis=(1, 2)).mean())
            models = group[rng.integers(0, len(group), size=(n_resamples, len(group)))]
            picked = cube[models[:, :, None, None], objects, seeds[:, None, None, :]]
            sides.append(np.nanmean(picked, axis=(2, 3)).mean(axis=1))  # [resample]
        values = sides[0] - sides[1] if len(sides) == 2 else sides[0]
        estimate = float(estimates[0] - estimates[1] if len(estimates) == 2 else estimates[0])
    return estimate_with_interval(estimate, values, confidence)


def fixed_models_interval(cube: np.ndarray, first: Sequence[int], second: Sequence[int], *,
                          n_resamples: int = 2000, confidence: float = 0.95,
                          seed: int = 0) -> tuple[float, float, float]:
    """:func:`two_level_interval` of first's minus second's mean with each group's models
    averaged into one fixed model, so that only the seeds are resampled: how wide the interval
    would be if the models were not a sample."""
    cube = np.asarray(cube, dtype=float)
    with _quiet_nanmean():
        fixed = np.stack([np.nanmean(cube[list(first)], axis=0),
                          np.nanmean(cube[list(second)], axis=0)])  # [2, object, seed]
    return two_level_interval(fixed, [0], [1], n_resamples=n_resamples, confidence=confidence,
                              seed=seed)


class _quiet_nanmean:
    """Silence numpy's "mean of empty slice" warning (an all-NaN slice gives NaN, as wanted)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def crossed_bootstrap(arrays: Mapping[str, np.ndarray], statistic: Callable[[dict], np.ndarray],
                      *, n_resamples: int = 2000, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """Estimate and percentile interval of ``statistic`` under a bootstrap of a crossed design.

    Every array is ``[group, seed]`` over the same groups (prompts, objects, concepts) and the
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
    return estimate_with_interval(estimate, values, confidence)


# --------------------------------------------------------------------------------------------
# Per-image values clustered by seed: means, paired differences, rank correlations


def _unit_picks(units, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sorted unit labels, each item's code among them, and ``[resample, unit]`` draws."""
    labels, codes = np.unique(np.asarray(units), return_inverse=True)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    return labels, codes.reshape(-1), rng.integers(0, len(labels), size=(n_resamples, len(labels)))


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"{name} must be a non-empty 1-D sequence of finite numbers")
    return values


def cluster_mean_interval(values, units, minus=None, minus_units=None, *, n_resamples: int = 2000,
                          confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """The mean of ``values`` (one per image) with a percentile interval that resamples whole
    clusters: every image of a drawn ``unit`` (seed) together, as :func:`step_intervals` does.

    With ``minus`` (another arm's values, clustered by ``minus_units`` over the same labels) it
    is the difference of the two means, each resample drawing the unit labels once for both
    arms: a comparison paired by seed. Returns (estimate, low, high).
    """
    check_confidence(confidence)
    arms = [(_finite(values, "values"), np.asarray(units))]
    if minus is not None:
        arms.append((_finite(minus, "minus"), np.asarray(minus_units)))
    for arm_values, arm_units in arms:
        if arm_units.shape != arm_values.shape:
            raise ValueError(f"one unit per value: {arm_units.shape} units, "
                             f"{arm_values.shape} values")
    labels, _, picks = _unit_picks(np.concatenate([u for _, u in arms]), n_resamples, seed)
    means, estimates = [], []
    for arm_values, arm_units in arms:
        codes = np.searchsorted(labels, arm_units)
        sums = np.bincount(codes, arm_values, minlength=len(labels))  # [unit]
        counts = np.bincount(codes, minlength=len(labels)).astype(float)  # [unit]
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(sums[picks].sum(axis=1) / counts[picks].sum(axis=1))  # [resample]
        estimates.append(arm_values.mean())
    if minus is not None:
        return estimate_with_interval(estimates[0] - estimates[1], means[0] - means[1], confidence)
    return estimate_with_interval(estimates[0], means[0], confidence)


def cluster_rank_correlation(x, y, units, within=None, *, n_resamples: int = 2000,
                             confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Spearman's rho of ``x`` and ``y`` with a percentile interval resampling whole ``units``.

    With ``within`` (a group per item, e.g. the prompt), the statistic is the mean over groups of
    the rho within each group (groups whose x or y is constant left out), and one draw of the
    units serves every group. Returns (rho, low, high), NaN where rho is undefined; resamples with
    no defined rho are left out of the interval.
    """
    check_confidence(confidence)
    (xc, nx), (yc, ny) = _codes(x), _codes(y)
    units = np.asarray(units)
    if not len(xc) == len(yc) == len(units):
        raise ValueError(f"x, y and units differ in length: {len(xc)}, {len(yc)}, {len(units)}")
    groups = np.zeros(len(xc), dtype=int) if within is None else pd.factorize(
        np.asarray(within), sort=True)[0]
    _, codes, picks = _unit_picks(units, n_resamples, seed)
    members = [np.flatnonzero(codes == u) for u in range(codes.max() + 1)]  # items of each unit

    def statistic(items: np.ndarray) -> float:
        rhos = [_rank_rho(xc[None, part], nx, yc[None, part], ny)[0]
                for part in (items[groups[items] == g] for g in np.unique(groups[items]))
                if len(part) >= 2]
        with _quiet_nanmean():
            return float(np.nanmean(rhos)) if rhos else math.nan

    estimate = statistic(np.arange(len(xc)))
    if math.isnan(estimate):
        return estimate, math.nan, math.nan
    resampled = [statistic(np.concatenate([members[u] for u in row])) for row in picks]
    return estimate_with_interval(estimate, resampled, confidence)
