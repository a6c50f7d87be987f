"""Amplification: how often a pair picture lacks its carrier in training, and in what the models
draw, at every guidance scale.

The world's recipe prints a share of the pair pictures as close-ups (the print fills the frame,
the carrier out of view). That share is not quoted from the recipe here: it is counted in the
training data itself, drawn exactly as a fine-tune draws it (:func:`training_pairs`: batch
``step`` of a run is ``World.draw(batch_size, (seed, step))``, the scenes that
:func:`dvdlib.toyworld.train.scene_batches` renders), and a rendered subset is read with the same
pixel rule that reads the generated images. The generated share is the share of pair images in
which the concept fills the frame (:mod:`dvdlib.chapters.data_diversity.outcomes`).
Amplification is the generated share minus the training share: 0 when the model draws its data's
mix, positive when guidance turns the mix into collapse.

- :func:`training_pairs`: the limited concept's pair pictures of a run's first training batches.
- :func:`training_shares`: per run, the share of them without the carrier, with an interval over
  pictures, and how often the pixel rule agrees on rendered ones.
- :func:`amplification`: per condition, arm and object set, the generated share and the
  amplification, with run-and-seed intervals.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.data_diversity import toy_summary
from dvdlib.stats.bootstrap import mean_interval, two_level_interval


def training_pairs(world, seed: int, batch_size: int, n_batches: int) -> pd.DataFrame:
    """The pair pictures of ``world``'s limited concept in the first ``n_batches`` training
    batches of a run trained with ``seed`` and ``batch_size``: one row per picture with
    ``step``, ``object``, ``closeup`` (the carrier out of view) and ``scene`` (for rendering)."""
    for name, value in (("batch_size", batch_size), ("n_batches", n_batches)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    rows = []
    for step in range(int(n_batches)):
        for scene in world.draw(int(batch_size), (int(seed), step)):
            if scene.object is not None and scene.concept is not None \
                    and scene.concept.concept == world.limited:
                rows.append({"step": step, "object": scene.object.object,
                             "closeup": scene.closeup, "scene": scene})
    return pd.DataFrame(rows, columns=["step", "object", "closeup", "scene"])


def training_shares(runs: Mapping[str, tuple[object, int, int]], n_batches: int,
                    n_checked: int = 16, *, n_resamples: int = 2000,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Per run (``runs``: name -> ``(world, seed, batch_size)`` of its fine-tune), the share of
    the limited concept's training pair pictures without their carrier: one row with
    ``n_pictures``, ``share``, ``ci_low``, ``ci_high`` (bootstrap over pictures), and
    ``rule_agreement``: on the first ``n_checked`` of them, rendered, the share where the pixel
    rule's "frame filled" says the same as the close-up flag."""
    from dvdlib.toyworld.world import pixel_rule, render

    rows = []
    for name, (world, seed, batch_size) in runs.items():
        pairs = training_pairs(world, seed, batch_size, n_batches)
        if len(pairs) < 2:
            raise ValueError(f"run {name!r}: {len(pairs)} pair pictures of {world.limited!r} in "
                             f"{n_batches} batches; draw more batches")
        share, low, high = mean_interval(pairs["closeup"].astype(float), n_resamples=n_resamples,
                                         confidence=confidence)
        checked = pairs.head(n_checked)
        filled = pixel_rule(render(list(checked["scene"])))["frame_filled"].to_numpy()
        rows.append({"run": name, "K": world.instances, "n_pictures": len(pairs), "share": share,
                     "ci_low": low, "ci_high": high, "n_checked": len(checked),
                     "rule_agreement": float((filled == checked["closeup"].to_numpy()).mean())})
    return pd.DataFrame(rows)


def amplification(images: pd.DataFrame, shares: pd.DataFrame,
                  arms: Mapping[str, Sequence[str]], object_sets: Mapping[str, Sequence[str]], *,
                  n_resamples: int = 2000, confidence: float = 0.95) -> pd.DataFrame:
    """The share of generated pair images in which the concept fills the frame against the
    training share, per finished-model condition, arm (every run of it drawn there) and object
    set. One row each: ``generated`` and ``amplification`` (generated minus each run's own
    training share, averaged over runs) with ``*_low``/``*_high`` from
    :func:`two_level_interval` (runs, then seeds), ``training`` (mean over the arm's runs) and
    ``n_runs``. The concept is never printed on the never-seen objects in training; their
    reference is the same training share, the concept's pair pictures on the objects it met."""
    share = shares.set_index("run")["share"]
    every = list(dict.fromkeys(o for objects in object_sets.values() for o in objects))
    finished = images[images["snapshot"].isna()]
    rows = []
    for condition, part in finished.groupby("condition", sort=False):
        drawn = set(part["base_model"])
        for label, runs in arms.items():
            if not set(runs) <= drawn:
                continue
            cube = toy_summary.measure_cube(part, "fills_frame", list(runs), every)
            trained = share.loc[list(runs)].to_numpy()[:, None, None]  # [run, 1, 1]
            for objects_label, objects in object_sets.items():
                picked = cube[:, [every.index(o) for o in objects]]  # [run, object, seed]
                settings = dict(n_resamples=n_resamples, confidence=confidence)
                generated = two_level_interval(picked, range(len(runs)), **settings)
                amplified = two_level_interval(picked - trained, range(len(runs)), **settings)
                rows.append({"condition": condition, "guidance": float(part["guidance"].iloc[0]),
                             "arm": label, "objects": objects_label, "n_runs": len(runs),
                             "training": float(trained.mean()), "generated": generated[0],
                             "generated_low": generated[1], "generated_high": generated[2],
                             "amplification": amplified[0], "amplification_low": amplified[1],
                             "amplification_high": amplified[2]})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = [list(arms).index(a) * 1000 + list(object_sets).index(o) for a, o in
             zip(table["arm"], table["objects"])]  # arms, then object sets, as given
    return table.assign(_order=order).sort_values(["_order", "guidance"], kind="stable").drop(
        columns="_order").reset_index(drop=True)
