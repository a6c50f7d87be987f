"""Per-step intervals over clusters of images, and the per-step AUC of a later outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dvdlib.stats.bootstrap import step_auc, step_intervals


def _steps_table(n_seeds=8, per_seed=4, steps=3, seed_effect=1.0, seed=0):
    """Images nested in seeds: each seed adds one shared offset to all its images' values."""
    rng = np.random.default_rng(seed)
    rows = []
    offsets = rng.normal(0, seed_effect, n_seeds)
    for s in range(n_seeds):
        for i in range(per_seed):
            noise = rng.normal(0, 0.1)
            for step in range(steps):
                rows.append({"image": s * per_seed + i, "seed": s, "step": step,
                             "value": offsets[s] + noise + step})
    return pd.DataFrame(rows)


def test_seed_clusters_widen_the_interval_when_images_of_a_seed_are_alike():
    table = _steps_table()
    by_image = step_intervals(table, "value", unit="image", n_resamples=2000)
    by_seed = step_intervals(table, "value", unit="seed", n_resamples=2000)
    width = lambda t: (t["ci_high"] - t["ci_low"]).to_numpy()  # noqa: E731
    assert (width(by_seed) > 1.4 * width(by_image)).all()
    assert np.allclose(by_seed["mean"], by_image["mean"])
    assert by_seed["n_units"].eq(8).all() and by_image["n_units"].eq(32).all()


def test_step_intervals_needs_its_unit_column():
    with pytest.raises(KeyError, match="'seed'"):
        step_intervals(_steps_table().drop(columns="seed"), "value", unit="seed")


def test_step_auc_finds_the_step_from_which_the_score_predicts_the_outcome():
    rng = np.random.default_rng(1)
    rows = []
    for image in range(60):
        outcome = image % 2
        for step in range(4):
            # Steps 0 and 1 carry no information; from step 2 the score separates the outcomes.
            signal = 2.0 * outcome if step >= 2 else 0.0
            rows.append({"image": image, "seed": image // 3, "step": step, "outcome": outcome,
                         "score": signal + rng.normal()})
    result = step_auc(pd.DataFrame(rows), "score", "outcome", n_resamples=500)
    early, late = result[result.step < 2], result[result.step >= 2]
    assert (early["ci_low"] < 0.5).all() and (early["ci_high"] > 0.5).all()
    assert (late["ci_low"] > 0.75).all()
    assert result["n_units"].eq(20).all() and result["n_positive"].eq(30).all()


def test_step_auc_counts_ties_as_half():
    table = pd.DataFrame({"image": [0, 1, 2, 3], "seed": [0, 1, 2, 3], "step": 0,
                          "outcome": [1, 1, 0, 0], "score": [1.0, 0.0, 1.0, 0.0]})
    assert step_auc(table, "score", "outcome", n_resamples=50)["auc"].iloc[0] == pytest.approx(0.5)


def test_step_auc_refuses_an_outcome_that_is_not_binary():
    table = pd.DataFrame({"image": [0, 1], "seed": [0, 1], "step": 0, "outcome": [0.5, 1.0],
                          "score": [0.1, 0.2]})
    with pytest.raises(ValueError, match="0 or 1"):
        step_auc(table, "score", "outcome")
