"""Chapter 3's intervals over seeds, its timing test ("decided early"), the tau sweep, and the
agreement of its headline with its text and with its saved tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dvdlib.chapters.attention_saturation import quotes, run, summary as tables, timing, verdict
from dvdlib.stats import verdicts
from dvdlib.stats.bootstrap import cluster_mean_interval, cluster_rank_correlation

MAIN, REFERENCE, BALANCED = "k1", "kinf", "k1 others"


def synthetic_run(n_seeds=12, steps=6, onset=2, seed=0, all_missing=False):
    """Images and per-step shares of three conditions, three objects each, in which the object
    goes missing at random (by seed and image) and, from step ``onset`` on, the images that lose
    their object give the concept 0.25 more of the pair's attention. Before ``onset`` the share
    carries no trace of the outcome."""
    rng = np.random.default_rng(seed)
    images, shares = [], []
    for condition, concept, base in ((MAIN, "sunset", 0.45), (REFERENCE, "sunset", 0.5),
                                     (BALANCED, "ocean", 0.2)):
        for case, obj in enumerate(("coaster", "shirt", "hat"), start=1):
            for s in range(n_seeds):
                missing = True if all_missing else bool(rng.random() < 0.6)
                image = len(images)
                images.append({"condition": condition, "image": image, "case_num": case,
                               "prompt": f"{concept} {obj}", "concept": concept, "object": obj,
                               "seed": 100 + s, "dvd_score": 100.0 if missing else 20.0,
                               "concept_present": True, "object_present": not missing})
                for step in range(steps):
                    lift = 0.25 if missing and step >= onset else 0.0
                    share = base + lift + rng.normal(0, 0.02)
                    shares.append({"condition": condition, "image": image, "seed": 100 + s,
                                   "step": step, "pair_share": share, "word_share": share / 2,
                                   "object_word_share": (1 - share) / 2})
    images, shares = pd.DataFrame(images), pd.DataFrame(shares)
    for table in (images, shares):
        table["condition"] = pd.Categorical(table["condition"], categories=[MAIN, REFERENCE,
                                                                            BALANCED])
    return images, shares


def rules_for(steps=6, decided_by=0.5, margin=0.1, **changes):
    options = dict(early_fraction=0.2, saturation_by=0.5, decided_by=decided_by, threshold=0.6,
                   majority=0.5, auc_margin=margin, min_dvd=0.0, confidence=0.95, n_resamples=300)
    return verdict.criteria(steps, **{**options, **changes})


def conditions():
    from dvdlib.toyworld.world import World, prompt_table

    world = World(instances=1)
    pairs = prompt_table(world, controls=False)
    return [run.ChapterCondition("main", MAIN, "toy:k1", pairs),
            run.ChapterCondition("reference", REFERENCE, "toy:kinf", pairs),
            run.ChapterCondition("balanced", BALANCED, "toy:k1", run.balanced_prompt_table(world))]


def chapter(images, shares, rules, steps=6):
    per_image = tables.image_summary(images, shares, rules.early_steps, rules.threshold,
                                     rules.window)
    return per_image, verdict.chapter_result(per_image, shares, conditions(), rules, steps,
                                             taus=(0.5, 0.55, 0.6, 0.65))


# --------------------------------------------------------------------------------------------
# Intervals over seeds


def test_cluster_intervals_resample_whole_seeds():
    rng = np.random.default_rng(0)
    seeds = np.repeat(np.arange(10), 8)  # 8 images per seed, alike within a seed
    values = np.repeat(rng.normal(0, 1, 10), 8) + rng.normal(0, 0.05, 80)
    mean, low, high = cluster_mean_interval(values, seeds, n_resamples=1000)
    image_low, image_high = np.quantile(
        [rng.choice(values, 80).mean() for _ in range(1000)], [0.025, 0.975])
    assert low < mean < high and mean == pytest.approx(values.mean())
    assert high - low > 2 * (image_high - image_low)  # 10 independent units, not 80
    # Paired by seed: a constant shift of every image is known exactly, however wide each arm.
    difference = cluster_mean_interval(values + 0.3, seeds, values, seeds, n_resamples=500)
    assert difference == pytest.approx((0.3, 0.3, 0.3))
    with pytest.raises(ValueError, match="finite numbers"):
        cluster_mean_interval([1.0, math.nan], [0, 1])
    with pytest.raises(ValueError, match="one unit per value"):
        cluster_mean_interval([1.0, 2.0], [0])


def test_cluster_rank_correlation_within_prompts_ignores_differences_between_prompts():
    # Across prompts, share and DvD go together; within each prompt they go against each other.
    x, y, seeds, prompts = [], [], [], []
    for p, base in enumerate([0.2, 0.5, 0.8]):
        for k in range(6):
            x.append(base + 0.01 * k), y.append(100 * base - 4.0 * k)
            seeds.append(k), prompts.append(f"p{p}")
    over_all = cluster_rank_correlation(x, y, seeds, n_resamples=300)
    within = cluster_rank_correlation(x, y, seeds, prompts, n_resamples=300)
    assert over_all[0] > 0.7
    assert within == pytest.approx((-1.0, -1.0, -1.0))
    assert all(math.isnan(v) for v in cluster_rank_correlation(x, [5.0] * 18, seeds))


# --------------------------------------------------------------------------------------------
# The tau sweep


def test_held_share_says_which_images_saturate_within_the_window_at_every_tau():
    images, shares = synthetic_run()
    for tau in (0.45, 0.5, 0.6, 0.66, 0.7):
        summary = tables.image_summary(images, shares, 1, tau, window=3)
        assert ((summary["held_share"] >= tau) == (summary["saturation_step"] < 3)).all()
    with pytest.raises(ValueError, match="window must be a positive integer, got 0"):
        tables.image_summary(images, shares, 1, 0.6, window=0)


def test_the_tau_sweep_and_where_the_saturation_rule_would_change_its_word():
    # Every seed has one image holding 0.45 and one holding 0.65 from the window on.
    summary = pd.DataFrame({"condition": pd.Categorical([MAIN] * 20),
                            "seed": np.repeat(range(10), 2),
                            "held_share": [0.45, 0.65] * 10})
    sweep = timing.tau_sweep(summary, (0.7, 0.4, 0.5, 0.6), n_resamples=200)
    assert sweep["tau"].tolist() == [0.4, 0.5, 0.6, 0.7]
    assert sweep["saturated"].tolist() == [1.0, 0.5, 0.5, 0.0]
    assert sweep[["ci_low", "ci_high"]].to_numpy().tolist() == [[1, 1], [0.5, 0.5], [0.5, 0.5],
                                                                [0, 0]]
    changes = timing.verdict_changes(sweep, MAIN, majority=0.5)
    assert changes.to_dict("records") == [
        {"tau_before": 0.4, "tau_after": 0.5, "before": "supported", "after": "inconclusive"},
        {"tau_before": 0.6, "tau_after": 0.7, "before": "inconclusive", "after": "contradicted"}]
    assert verdict.changes_text(changes).startswith("supported up to tau = 0.40, inconclusive from")
    assert timing.rule_at(sweep, MAIN, 0.62, 0.5) == "inconclusive"
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\], got 1.5"):
        timing.tau_sweep(summary, (0.5, 1.5))
    with pytest.raises(ValueError, match="tau must be a number"):
        timing.tau_sweep(summary, (math.nan,))


def test_the_shape_of_the_share_over_the_steps():
    means = pd.DataFrame({"condition": MAIN, "step": range(5),
                          "mean": [0.26, 0.48, 0.5, 0.52, 0.51]})
    assert timing.step_shape(means, MAIN) == pytest.approx(
        {"step0": 0.26, "step1": 0.48, "after_low": 0.5, "after_high": 0.52})
    assert math.isnan(timing.step_shape(means.head(1), MAIN)["step1"])


# --------------------------------------------------------------------------------------------
# When the outcome is decided


def test_the_first_step_that_predicts_the_outcome_is_found():
    images, shares = synthetic_run(onset=2)
    per_image = tables.image_summary(images, shares, 1, 0.6, window=3)
    auc = timing.auc_table(timing.outcome_table(shares, per_image), confidence=0.99,
                           n_resamples=300)
    main = auc[auc["condition"] == MAIN].set_index("step")
    assert (main.loc[[0, 1], "ci_low"] < 0.6).all()  # no trace of the outcome before step 2
    assert (main.loc[2:, "auc"] > 0.99).all() and (main.loc[2:, "ci_low"] > 0.9).all()
    assert timing.decided_step(auc, MAIN, 0.6) == 2
    assert timing.decided_step(auc, MAIN, 1.0) is None
    assert int(timing.decisive_row(auc, MAIN, 0.6, window=4)["step"]) == 2
    before = timing.decisive_row(auc, MAIN, 0.6, window=2)  # the window ends before step 2
    assert int(before["step"]) == int(main.loc[[0, 1], "ci_high"].idxmax())
    by_outcome = timing.outcome_shares(timing.outcome_table(shares, per_image), n_resamples=200)
    last = by_outcome[(by_outcome["condition"] == MAIN) & (by_outcome["step"] == 5)]
    assert last.set_index("outcome")["mean"].diff().abs().iloc[-1] == pytest.approx(0.25, abs=0.03)
    assert timing.parting_step(by_outcome, MAIN) == 2


@pytest.mark.parametrize("decided_by, margin, word", [
    (0.5, 0.1, "supported"),  # steps 0-2: step 2 separates the outcomes
    (0.5, 0.45, "supported"),  # even against the bound 0.95
    (1 / 3, 0.45, "contradicted"),  # steps 0-1 only: both lie below 0.95
    (1 / 3, 0.1, "inconclusive"),  # steps 0-1 against 0.6: chance-level intervals contain it
])
def test_decided_early_is_decided_from_the_window_steps_alone(decided_by, margin, word):
    images, shares = synthetic_run(onset=2)
    rules = rules_for(decided_by=decided_by, margin=margin)
    per_image, result = chapter(images, shares, rules)
    found = result.verdicts["decided_early_verdict"]
    assert found.word == word
    assert found.test.confidence == pytest.approx(1 - 0.05 / rules.decided_steps)  # Bonferroni
    if word == "supported":
        assert "at step 2 " in found.reason and result.decided_step == 2


def test_decided_early_needs_both_outcomes():
    images, shares = synthetic_run(all_missing=True)
    _, result = chapter(images, shares, rules_for())
    found = result.verdicts["decided_early_verdict"]
    assert found.word == "not testable" and "images of both outcomes" in found.reason
    assert result.auc.empty and result.decided_step is None
    values, texts = result.headline()
    assert texts["decided_step"] == "none" and "decided_step" not in values
    assert quotes.timing_quotes(result)["ch3_decided_step"] == "no step"
    assert verdicts.check_headline({"values": values, "texts": texts}) == []


def test_criteria_are_checked_before_any_model_runs():
    with pytest.raises(ValueError, match=r"saturation_threshold \(tau\) must be in \(0, 1\]"):
        rules_for(threshold=1.5)
    with pytest.raises(ValueError, match=r"auc_margin must be in \[0, 0.5\), got 0.5"):
        rules_for(margin=0.5)
    with pytest.raises(ValueError, match=r"decided_by must be in \(0, 1\], got 0"):
        rules_for(decided_by=0)
    with pytest.raises(ValueError, match=r"majority must be in \(0, 1\), got 1"):
        rules_for(majority=1)
    with pytest.raises(ValueError, match="n_resamples must be a positive integer, got 0"):
        rules_for(n_resamples=0)
    assert rules_for(steps=20, decided_by=0.2).decided_steps == 4
    with pytest.raises(ValueError, match="no images of condition 'other'"):
        verdict.finding_verdicts(pd.DataFrame({"condition": [MAIN]}), pd.DataFrame(), rules_for(),
                                 "other", "the sunset")


# --------------------------------------------------------------------------------------------
# The headline against the text


def test_the_headline_and_the_text_quote_the_same_numbers():
    images, shares = synthetic_run()
    rules = rules_for()
    per_image, result = chapter(images, shares, rules)
    values, texts = result.headline()
    assert texts["interval_unit"] == "seed" and texts["condition_main"] == MAIN
    assert {key: texts[key] for key in verdict.KEYS} == {
        key: v.word for key, v in result.verdicts.items()}
    assert verdicts.check_headline({"values": values, "texts": texts}) == []
    quoted = {**quotes.condition_quotes(result), **quotes.timing_quotes(result),
              **quotes.comparison_quotes(result)}
    for key in verdict.KEYS:
        assert quoted[key] == f"**{texts[key]}**"
    assert quoted["ch3_decided_step"] == f"step {int(values['decided_step'])}"
    assert quoted["ch3_decided_steps"] == str(int(values["decided_steps"]))
    assert values["images"] == sum(int(quoted[f"ch3_images_{role}"]) for role in verdict.ROLES)
    assert quoted["ch3_saturated_at_tau_main"].startswith(
        f"{values['saturation_verdict_estimate'] * 100:.0f} % [")
    assert quoted["ch3_object_held_balanced"].startswith(
        f"{values['object_held_balanced'] * 100:.0f} % [")
    assert quoted["ch3_largest_final_main"] == f"{values['largest_final_share_main']:.3f}"
    assert quoted["ch3_sweep_changes"] == texts["saturation_verdict_changes"]
    assert quoted["ch3_dvd_main"].startswith(f"{values['dvd_main']:.1f} [")
    assert quoted["ch3_diff_dvd"].startswith(f"{values['dvd_difference']:+.1f} [")
    # Presence beside every DvD, and the comparison paired by seed.
    assert quoted["ch3_object_present_main"].startswith(
        f"{values['object_present_main'] * 100:.0f} % [")
    assert result.differences.loc["early", "difference"] == pytest.approx(
        values["early_share_main"] - values["early_share_reference"])


def test_sentences_that_depend_on_the_numbers_are_written_from_them():
    import dataclasses

    images, shares = synthetic_run()
    _, result = chapter(images, shares, rules_for())

    def reading(final, dvd, steps=(6.0, 3.0), held=None):
        rows = {"final": final, "dvd": dvd, "median saturation step": (0.0, np.nan, np.nan)}
        table = pd.DataFrame([{"measure": k, "difference": v[0], "low": v[1], "high": v[2],
                               "main": steps[0] if k.startswith("median") else 0.0,
                               "reference": steps[1] if k.startswith("median") else 0.0}
                              for k, v in rows.items()]).set_index("measure")
        changed = dataclasses.replace(result, differences=table,
                                      balanced_object=held or result.balanced_object)
        return quotes.reading_quotes(changed)

    lower, higher, level = (-0.1, -0.15, -0.05), (0.1, 0.05, 0.15), (0.0, -0.1, 0.1)
    text = reading(lower, level)["ch3_comparison_reading"]
    assert "a lower final share there" in text and "saturates earlier" in text
    assert "the share differs while the dominance does not" in text
    assert "as the finding would have it" in reading(higher, (5, 1, 9))["ch3_comparison_reading"]
    assert "against the finding" in reading(higher, (-5, -9, -1))["ch3_comparison_reading"]
    assert "cannot be told apart" in reading(level, higher)["ch3_comparison_reading"]
    held = {"held": (0.99, 0.97, 1.0), "present": (0.39, 0.22, 0.57)}
    assert "not the sole cause" in reading(lower, level, held=held)["ch3_balanced_reading"]
    held = {"held": (0.5, 0.3, 0.7), "present": (0.39, 0.22, 0.57)}
    assert "cannot be told apart" in reading(lower, level, held=held)["ch3_balanced_reading"]
    reach = quotes.reading_quotes(result)["ch3_tau_reach"]
    largest = result.largest["main"]["final"]  # about 0.7: the lifted images pass tau = 0.6
    assert largest >= 0.6 and reach.startswith("The largest final pair share of an image of")
    high_tau = dataclasses.replace(result, rules=dataclasses.replace(result.rules, threshold=0.9))
    assert quotes.reading_quotes(high_tau)["ch3_tau_reach"].startswith(f"No image of *{MAIN}*")


def test_the_figures_draw_from_the_result():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dvdlib.chapters.attention_saturation import figures

    images, shares = synthetic_run()
    _, result = chapter(images, shares, rules_for())
    sweep = figures.figure_tau_sweep(result)
    assert any("pre-stated tau = 0.6" in t.get_text() for t in sweep.axes[0].get_legend().texts)
    timing_figure = figures.figure_timing(result)
    assert len(timing_figure.axes) == 2 and len(timing_figure.axes[0].lines) >= 3
    plt.close("all")


# --------------------------------------------------------------------------------------------
# The saved chapter (after the smoke chapters ran: scripts/test runs them first)


@pytest.mark.after_notebooks
def test_the_saved_verdicts_follow_from_the_saved_tables(saved_chapter):
    from dvdlib.store import load_table

    document, folder = saved_chapter("03_attention_saturation", "images.parquet")
    values, texts = document["values"], document["texts"]
    for key in ("interval_unit", "decided_early_verdict"):
        assert key in texts, f"the headline lacks {key}"
    assert texts["interval_unit"] == timing.UNIT
    assert ("decided_step" in values) != ("decided_step" in texts)
    per_image, shares = load_table(folder / "images.parquet"), load_table(folder / "shares.parquet")
    rules = verdict.Criteria(
        int(values["early_steps"]), int(values["saturation_window"]),
        values["saturation_threshold"], values["majority"], int(values["decided_steps"]),
        values["auc_margin"], values["min_dvd"], values["confidence"], int(values["n_resamples"]))
    main = texts["condition_main"]
    auc = timing.auc_table(timing.outcome_table(shares, per_image),
                           confidence=rules.auc_confidence, n_resamples=rules.n_resamples)
    found = verdict.finding_verdicts(per_image, auc, rules, main, texts["concept"])
    for key in verdict.KEYS:
        assert (found[key].word, found[key].reason) == (texts[key], texts[f"{key}_reason"])
    step = timing.decided_step(auc, main, rules.auc_bound)
    assert values.get("decided_step", texts.get("decided_step")) == ("none" if step is None
                                                                     else step)
    # The level tests' estimates, counted from the per-image table directly.
    part = per_image[per_image["condition"] == main]
    assert values["early_bias_verdict_estimate"] == pytest.approx(part["early_share"].mean())
    assert values["saturation_verdict_estimate"] == pytest.approx(
        (part["saturation_step"] < rules.window).mean())
    assert values["images"] == len(per_image)
    assert verdicts.check_headline(document) == []
