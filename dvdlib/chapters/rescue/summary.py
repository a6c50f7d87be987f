"""What the rescue study's images say, arm by arm, with intervals over seeds.

The independent unit is the seed: every arm draws the same seeds for every prompt, and the
images of one seed (one starting noise per prompt) are resampled together. Each interval is a
percentile bootstrap over seeds (:func:`dvdlib.stats.bootstrap.crossed_bootstrap` on ``[1,
seed]`` arrays of per-seed means over the prompts: the prompts are held fixed, the seeds are
resampled), and a change against the plain model is the per-seed mean of the image-by-image
differences, resampled the same way.

- :func:`seed_means`: an arm's per-seed means of one value, over the prompts of an object group.
- :func:`seed_interval`: the mean of a statistic of such arrays with its seed-cluster interval.
- :func:`summarise`: one row per arm and object group (``seen``, ``unseen``, ``all``): presence
  of the concept, of the object, of both, the DvD score and the concept's attention share,
  each with its interval; their changes against the plain model with intervals; the arm's cost
  per image in seconds and relative to the plain model.
- :func:`curves`: the rows the presence figure draws, every curve starting at the plain model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from dvdlib.chapters.rescue.run import PLAIN
from dvdlib.interventions.catalogue import zero_point
from dvdlib.stats.bootstrap import crossed_bootstrap
from dvdlib.store import save_table

VALUES = ("concept_present", "object_present", "both_present", "dvd_score", "concept_share")
CHANGES = ("concept_present", "object_present", "both_present", "dvd_score")
ALL = "all"


def seed_means(images: pd.DataFrame, arm: str, value: str, objects: str = ALL) -> pd.Series:
    """Per seed (sorted), the mean of ``value`` over the prompts of ``objects`` in ``arm``."""
    chosen = images[images["arm"] == arm]
    if objects != ALL:
        chosen = chosen[chosen["objects"] == objects]
    if chosen.empty:
        raise ValueError(f"no images of arm {arm!r} with objects {objects!r}")
    return chosen.groupby("seed")[value].agg(lambda v: v.astype(float).mean()).sort_index()


def seed_interval(arrays: Mapping[str, pd.Series], statistic: Callable[[dict], np.ndarray], *,
                  n_resamples: int = 2000, confidence: float = 0.95,
                  seed: int = 0) -> tuple[float, float, float]:
    """``statistic`` of per-seed arrays (each ``[resample, 1, seed]`` when it is called) with
    its percentile interval over resampled seeds; every array must cover the same seeds."""
    index = next(iter(arrays.values())).index
    for name, series in arrays.items():
        if not series.index.equals(index):
            raise ValueError(f"{name}: the arrays cover different seeds")
    data = {name: series.to_numpy(dtype=float)[None, :] for name, series in arrays.items()}
    return crossed_bootstrap(data, statistic, n_resamples=n_resamples, confidence=confidence,
                             seed=seed)


def mean_of(name: str) -> Callable[[dict], np.ndarray]:
    return lambda d: np.nanmean(d[name], axis=(1, 2))


def change_of(name: str, base: str = "base") -> Callable[[dict], np.ndarray]:
    return lambda d: np.nanmean(d[name] - d[base], axis=(1, 2))


def summarise(images: pd.DataFrame, *, n_resamples: int = 2000, confidence: float = 0.95,
              seed: int = 0) -> pd.DataFrame:
    """One row per arm and object group (see the module notes); presence as shares in [0, 1]."""
    if PLAIN not in set(images["arm"]):
        raise ValueError(f"no plain arm among {', '.join(map(str, images['arm'].unique()))}")
    options = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    plain_seconds = images.loc[images["arm"] == PLAIN, "seconds_per_image"].iloc[0]
    groups = [g for g in ("seen", "unseen") if g in set(images["objects"])] + [ALL]
    rows = []
    for arm, table in images.groupby("arm", sort=False):
        first = table.iloc[0]
        for objects in groups:
            chosen = table if objects == ALL else table[table["objects"] == objects]
            row = {"arm": arm, "intervention": first["intervention"],
                   "strength": first["strength"], "is_test": bool(first["is_test"]),
                   "objects": objects, "n_images": len(chosen),
                   "n_seeds": chosen["seed"].nunique(),
                   "seconds_per_image": first["seconds_per_image"],
                   "relative_cost": first["seconds_per_image"] / plain_seconds}
            for value in VALUES:
                means = seed_means(images, arm, value, objects)
                row[value], row[f"{value}_low"], row[f"{value}_high"] = seed_interval(
                    {"x": means}, mean_of("x"), **options)
            for value in CHANGES:
                pair = {"x": seed_means(images, arm, value, objects),
                        "base": seed_means(images, PLAIN, value, objects)}
                estimate, low, high = seed_interval(pair, change_of("x"), **options)
                row.update({f"{value}_change": estimate, f"{value}_change_low": low,
                            f"{value}_change_high": high})
            rows.append(row)
    return pd.DataFrame(rows)


def curves(summary: pd.DataFrame, guidance: float) -> pd.DataFrame:
    """Per intervention, its rows of ``summary`` preceded by the plain rows at its zero point
    (one curve per intervention and object group, strengths from the zero point up)."""
    plain = summary[summary["intervention"] == PLAIN]
    parts = []
    for name in dict.fromkeys(summary["intervention"]):
        if name == PLAIN:
            continue
        start = plain.assign(intervention=name, strength=zero_point(name, guidance),
                             is_test=False)
        parts += [start, summary[summary["intervention"] == name]]
    return pd.concat(parts, ignore_index=True)


def tested_rows(summary: pd.DataFrame, objects: str = ALL) -> pd.DataFrame:
    """The plain row and each intervention's row at its test strength, for one object group."""
    chosen = summary[(summary["objects"] == objects)
                     & ((summary["intervention"] == PLAIN) | summary["is_test"])]
    return chosen.reset_index(drop=True)


def save_tables(folder: str | Path, **tables: pd.DataFrame) -> None:
    """Each table as ``<name>.csv`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        save_table(table, folder / f"{name}.csv")
