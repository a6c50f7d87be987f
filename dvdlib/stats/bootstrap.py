"""Every interval and correlation the chapters report, in one place.

- :func:`bootstrap_ci`: percentile bootstrap interval of a statistic over values (seeded);
  :func:`mean_interval`: the mean with that interval.
- :func:`estimate_with_interval`: an estimate with the percentile interval of its resamples.
- :func:`nested_bootstrap_ci`: two-level bootstrap, clusters (prompts) then units (seeds).
- :func:`step_intervals`: the mean per denoising step with an interval over images, resampling
  whole images so that the steps of one image move together.
- :func:`rank_correlation`: Spearman's rho (average ranks for ties); :func:`bootstrap_rank_correlation`:
  rho with a percentile bootstrap interval over pairs, vectorised.

Chapter 2's two-level interval over instance-seed models (:func:`dvdlib.chapters.data_diversity.toy_study.two_level_interval`)
and the crossed bootstrap of its real-model proxy resample designs of their own and stay beside
their experiments.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd


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


def step_intervals(table: pd.DataFrame, value: str, by: Sequence[str] = (), *,
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of ``value`` per step (and ``by`` group), with a percentile bootstrap interval over images.

    ``table`` holds one row per image and step (columns ``image``, ``step``, ``value`` and the
    ``by`` columns). Each resample draws whole images with replacement, so the steps of one image
    stay together; one generator, seeded once, serves the groups in sorted order. NaN values are
    left out of every mean. One row per group and step: ``mean``, ``ci_low``, ``ci_high``,
    ``n_images``.
    """
    if value not in table.columns:
        raise KeyError(f"column {value!r} is not in the table; columns: {', '.join(table.columns)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    by = list(by)
    groups = table.groupby(by, observed=True, sort=True) if by else [((), table)]
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2
    rows = []
    for key, group in groups:
        wide = group.pivot_table(index="image", columns="step", values=value)  # [image, step]
        matrix = wide.to_numpy()
        means = np.empty((n_resamples, matrix.shape[1]))  # [resample, step]
        chunk = max(1, 2_000_000 // matrix.size)  # bounds the resampled values' memory
        for start in range(0, n_resamples, chunk):
            count = min(chunk, n_resamples - start)
            picks = rng.integers(0, len(matrix), size=(count, len(matrix)))  # [resample, image]
            means[start:start + count] = np.nanmean(matrix[picks], axis=1)
        low, high = np.nanquantile(means, [tail, 1 - tail], axis=0)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(pd.DataFrame({**dict(zip(by, key)), "step": wide.columns.to_numpy(),
                                  "mean": np.nanmean(matrix, axis=0), "ci_low": low,
                                  "ci_high": high, "n_images": len(matrix)}))
    out = pd.concat(rows, ignore_index=True)
    for column in by:
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            out[column] = pd.Categorical(out[column], categories=table[column].cat.categories)
    return out


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
