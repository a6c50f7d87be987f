"""Chapter 3's analysis: prompt tables, per-step intervals, saturation, rank correlation, records."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dvdlib.attention.image_shares import record_shares
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.shares import concept_share
from dvdlib.chapters.attention_saturation import figures, quotes, run, summary as tables, verdict
from dvdlib.generation.protocol import RECORD_FILE
from dvdlib.stats import bootstrap


# --------------------------------------------------------------------------------------------
# Inputs


def test_balanced_prompts_print_the_other_concepts_on_the_same_objects():
    from dvdlib.toyworld.world import World, prompt_table

    world = World(instances=1)
    table = run.balanced_prompt_table(world)
    assert len(table) == 2 * len(world.objects)  # ocean and forest, on every object
    assert set(table["concept"]) == {"ocean", "forest"} and set(table["object"]) == set(world.objects)
    assert not table["prompt"].str.contains(world.limited).any()
    assert table["case_num"].tolist() == list(range(1, len(table) + 1))
    assert table["prompt"].tolist()[:2] == ["ocean coaster", "forest coaster"]  # product titles, one order
    assert table["paired_in_training"].all() and set(table["arrangement"]) == {"pair"}
    assert list(table.columns) == list(prompt_table(world, controls=False).columns)
    assert run.balanced_prompt_table(world, ["hat"], ["forest"])["prompt"].tolist() == ["forest hat"]
    with pytest.raises(ValueError, match="other than 'sunset'.*got 'sunset'"):
        run.balanced_prompt_table(world, concepts=["sunset"])
    with pytest.raises(ValueError, match="unknown object 'square'; accepted: coaster"):
        run.balanced_prompt_table(world, ["square"])


def test_map_steps_and_early_window():
    assert run.map_steps_for(20) == [0, 1, 5, 10, 19]
    assert run.map_steps_for(50) == [0, 1, 12, 25, 49]
    assert run.map_steps_for(1) == [0]
    assert tables.early_steps_for(20, 0.1) == 2
    assert tables.early_steps_for(3, 0.1) == 1  # at least one step
    with pytest.raises(ValueError, match="early_fraction must be in"):
        tables.early_steps_for(20, 0)


# --------------------------------------------------------------------------------------------
# Summaries


def test_average_ranks_match_pandas_with_ties():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 5, size=(6, 30))
    ranks = bootstrap._average_ranks(codes, 5)
    for row, expected in zip(codes, ranks):
        assert np.allclose(pd.Series(row).rank(method="average").to_numpy(), expected)


def test_rank_correlation_is_spearmans_rho():
    x = [0.1, 0.4, 0.2, 0.9, 0.5]
    assert bootstrap.rank_correlation(x, [1, 4, 2, 9, 5]) == pytest.approx(1.0)
    assert bootstrap.rank_correlation(x, [-v for v in x]) == pytest.approx(-1.0)
    y = [0, 40, 40, 100, 0]  # ties, as DvD scores have them
    expected = np.corrcoef(pd.Series(x).rank(), pd.Series(y).rank())[0, 1]
    assert bootstrap.rank_correlation(x, y) == pytest.approx(expected)
    assert math.isnan(bootstrap.rank_correlation(x, [20] * 5))  # a constant side: undefined
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap.rank_correlation(x, y[:3])


def test_bootstrap_rank_correlation_brackets_rho_and_is_seeded():
    rng = np.random.default_rng(0)
    x = rng.normal(size=80)
    y = np.round(x + rng.normal(scale=1.0, size=80))  # ties
    rho, low, high = bootstrap.bootstrap_rank_correlation(x, y, n_resamples=500, seed=1)
    assert low < rho < high and 0 < low and high < 1
    assert bootstrap.bootstrap_rank_correlation(x, y, n_resamples=500, seed=1) == (rho, low, high)
    assert all(math.isnan(v) for v in bootstrap.bootstrap_rank_correlation(x, np.zeros(80)))


def shares_table(series: dict[int, list[float]], condition="c") -> pd.DataFrame:
    """A pooled share table (as record_shares gives) from each image's pair share per step."""
    rows = [{"condition": condition, "image": image, "step": step, "pair_share": value}
            for image, values in series.items() for step, value in enumerate(values)]
    table = pd.DataFrame(rows)
    table["condition"] = pd.Categorical(table["condition"])
    return table


def test_step_intervals_resample_whole_images():
    table = shares_table({0: [0.2, 0.8], 1: [0.4, 0.6], 2: [0.6, 0.4]})
    out = bootstrap.step_intervals(table, "pair_share", ("condition",), n_resamples=400)
    assert out["step"].tolist() == [0, 1]
    assert np.allclose(out["mean"], [0.4, 0.6]) and (out["n_images"] == 3).all()
    assert (out["ci_low"] <= out["mean"]).all() and (out["mean"] <= out["ci_high"]).all()
    # Each resample draws whole images: the two steps of an image sum to 1, so do the means,
    # and the interval of one step mirrors the other's.
    assert np.allclose(out["ci_low"].iloc[0] + out["ci_high"].iloc[1], 1.0)
    same = bootstrap.step_intervals(shares_table({0: [0.7, 0.7], 1: [0.7, 0.7]}), "pair_share",
                                    n_resamples=50)
    assert np.allclose(same[["ci_low", "ci_high"]], 0.7)
    with pytest.raises(KeyError, match="'word_share'"):
        bootstrap.step_intervals(table, "word_share")


def test_image_summary_counts_never_saturated_images_at_the_step_count():
    images = pd.DataFrame({"condition": pd.Categorical(["c"] * 3), "image": [0, 1, 2],
                           "dvd_score": [80.0, 40.0, 0.0]})
    shares = shares_table({0: [0.7, 0.8, 0.9, 0.9], 1: [0.5, 0.5, 0.7, 0.7], 2: [0.7, 0.7, 0.7, 0.3]})
    summary = tables.image_summary(images, shares, early_steps=2, threshold=0.6).set_index("image")
    assert np.allclose(summary["early_share"], [0.75, 0.5, 0.7])
    assert np.allclose(summary["final_share"], [0.9, 0.7, 0.3])
    assert summary["saturation_step"].tolist() == [0, 2, 4]
    assert summary["saturated"].tolist() == [True, True, False]
    # The object's share is 1 - pair share: only image 2 ends with the object at 0.7 >= 0.6.
    assert summary["object_saturation_step"].tolist() == [4, 4, 3]
    assert summary["object_saturated"].tolist() == [False, False, True]
    curve = tables.saturated_by_step(summary.reset_index())
    concept = curve[curve["token"] == "concept"]
    assert np.allclose(concept["saturated"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    obj = curve[curve["token"] == "object"]
    assert np.allclose(obj["saturated"], [0, 0, 0, 1 / 3])
    overview = tables.saturation_overview(summary.reset_index()).loc[("c", "concept")]
    assert overview["images"] == 3 and overview["saturated from step 0"] == pytest.approx(1 / 3)
    assert overview["never saturated"] == pytest.approx(1 / 3) and overview["median saturation step"] == 2


def test_between_prompt_share_of_variance():
    summary = pd.DataFrame({"condition": pd.Categorical(["c"] * 4), "prompt": ["a", "a", "b", "b"],
                            "early_share": [0.2, 0.2, 0.6, 0.6]})
    assert tables.between_prompt_share(summary)["c"] == pytest.approx(1.0)  # seeds never differ
    summary["early_share"] = [0.2, 0.6, 0.2, 0.6]
    assert tables.between_prompt_share(summary)["c"] == pytest.approx(0.0)  # prompts never differ
    summary["early_share"] = [0.1, 0.3, 0.5, 0.7]  # total variance 0.05, within 0.01
    assert tables.between_prompt_share(summary)["c"] == pytest.approx(0.8)


def test_level_shares_pool_masses_before_taking_the_share():
    rows = []
    for layer, (c, o) in enumerate([(0.3, 0.1), (0.1, 0.1)]):  # shares 0.75 and 0.5 in one level
        rows.append({"condition": "c", "image": 0, "step": 0, "layer": layer, "level": "up 8x8",
                     "concept_mass": c, "object_mass": o})
    out = tables.level_shares(pd.DataFrame(rows))
    assert out["pair_share"].tolist() == [pytest.approx(0.4 / 0.6)]  # not (0.75 + 0.5) / 2


# --------------------------------------------------------------------------------------------
# Generate, record, judge, read back (an untrained toy model: the plumbing is what is tested)


@pytest.fixture(scope="module")
def toy():
    from dvdlib.toyworld.detector import PresenceDetector
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld.pipeline import new_pipeline
    from dvdlib.toyworld.world import World, prompt_table

    world = World(instances=1)
    prompts = pd.concat([prompt_table(world, ["coaster"], controls=False),
                         run.balanced_prompt_table(world, ["coaster"], ["ocean"])], ignore_index=True)
    prompts["case_num"] = [1, 2]
    return new_pipeline(world.words, seed=0), ToyJudge(PresenceDetector().eval()), prompts


def test_a_condition_records_every_image_and_reads_its_shares_back(tmp_path, toy):
    pipe, judge, prompts = toy
    steps = 4
    result = run.run_condition("k1", pipe, prompts.head(2), [5, 6], judge, tmp_path, model="toy",
                               steps=steps, guidance=4.0, map_steps=run.map_steps_for(steps))
    images = result.images
    assert len(images) == 4 and images["record_dir"].nunique() == 2  # one call per prompt
    assert images["prompt"].drop_duplicates().tolist() == ["sunset coaster", "ocean coaster"]
    assert images["dvd_score"].notna().all() and (tmp_path / "dvd.csv").is_file()
    # The pooled shares are focus.concept_share of the record, image by image.
    row = images[(images["prompt"] == "ocean coaster") & (images["seed"] == 6)].iloc[0]
    record = AttentionRecord.load(tmp_path / "images" / row["record_dir"] / RECORD_FILE)
    direct = concept_share(record, "ocean", "coaster", tokenizer=pipe.tokenizer)
    direct = direct[direct["image"] == row["record_image"]]["pair_share"].to_numpy()
    mine = result.shares[(result.shares["case_num"] == row["case_num"]) & (result.shares["seed"] == 6)]
    assert np.allclose(mine.sort_values("step")["pair_share"], direct)
    assert len(direct) == steps
    # The object's word share completes the concept's: both divide by the word tokens' mass.
    assert np.allclose(mine["word_share"] / mine["object_word_share"],
                       mine["concept_mass"] / mine["object_mass"])
    # Per layer: 7 layers of the toy UNet, and their masses pool to the layer-pooled ones.
    layers = result.layer_shares
    assert layers["layer"].nunique() == 7 and set(layers["level"]) >= {"mid 4x4", "up 8x8"}
    pooled = layers.groupby(["case_num", "seed", "step"])[["concept_mass", "object_mass"]].mean()
    joined = result.shares.set_index(["case_num", "seed", "step"])[["concept_mass", "object_mass"]]
    assert np.allclose(pooled.loc[joined.index], joined, atol=1e-6)
    # Maps were kept for the concept and the object at the requested steps, and can be drawn.
    assert set(result.concentration["group"]) == {"concept", "object"}
    assert sorted(result.concentration["step"].unique()) == run.map_steps_for(steps)
    example = figures.token_map_example(result, "sunset coaster", 5)
    assert example["maps"]["concept"].shape == (len(run.map_steps_for(steps)), 8, 8)
    assert example["image"].size == (32, 32)
    with pytest.raises(ValueError, match="no image of prompt 'sunset'"):
        figures.token_map_example(result, "sunset", 5)


def test_records_that_mix_prompts_are_refused(tmp_path, toy):
    from dvdlib.generation.protocol import generate

    pipe, judge, prompts = toy
    with pytest.raises(ValueError, match="positive divisor of the number of seeds \\(3\\)"):
        run.run_condition("k1", pipe, prompts, [1, 2, 3], judge, tmp_path, model="toy", steps=2,
                          guidance=4.0, batch_size=2)
    manifest = generate(pipe, prompts.head(2), [1], tmp_path, model="toy", steps=2, guidance=1.0,
                        batch_size=2, hook=run.concept_hook(), progress=False)
    images = manifest.assign(condition="k1", dvd_score=0.0)
    with pytest.raises(ValueError, match="holds several prompts"):
        record_shares(images, tmp_path, RECORD_FILE, pipe.tokenizer, run.IMAGE_KEY)


def test_conditions_combine_with_image_ids_unique_over_all(tmp_path, toy):
    pipe, judge, prompts = toy
    results = [run.run_condition(label, pipe, prompts.head(1), [1], judge, tmp_path / label,
                                 model="toy", steps=2, guidance=4.0) for label in ("b", "a")]
    images, shares, layer_shares, concentration = run.combine(results)
    assert images["image"].tolist() == [0, 1]
    assert list(images["condition"].cat.categories) == ["b", "a"]  # the order given
    assert sorted(shares["image"].unique()) == [0, 1] and concentration.empty
    summary = tables.image_summary(images, shares, early_steps=1, threshold=0.5)
    assert summary["num_steps"].tolist() == [2, 2]


def test_the_stable_diffusion_path_runs_at_another_resolution(tmp_path):
    """A random-weight SD 1.x layout and a random tiny VLM judge: the calls the chapter makes on SD."""
    from dvdlib.prompts.prompt_sets import builtin_prompts
    from dvdlib.scoring.judges.vlm import QwenVLJudge, random_qwen2vl
    from dvdlib.models.random_weights import dummy_sd_pipeline

    pipe = dummy_sd_pipeline("sd1")  # latent 8x8 by default, 64 px images
    assert run.latent_size(pipe, None, None) is None
    assert run.latent_size(pipe, 128, 128) == (16, 16)
    judge = QwenVLJudge(*random_qwen2vl("tiny", seed=0), questions_per_call=10)
    prompts = builtin_prompts().head(1)
    result = run.run_condition("sd", pipe, prompts, [1, 2], judge, tmp_path, model="dummy-sd1",
                               steps=2, guidance=7.5, height=128, width=128, map_steps=[0, 1])
    assert len(result.images) == 2 and result.images["dvd_score"].between(0, 100).all()
    layers = result.layer_shares
    assert layers["layer"].nunique() == 16  # SD 1.x: 16 cross-attention layers
    assert set(layers["level"]) == {"down 16x16", "down 8x8", "down 4x4", "mid 2x2", "up 4x4", "up 8x8",
                                    "up 16x16"}
    row = result.images.iloc[0]
    example = figures.token_map_example(result, row["prompt"], row["seed"])
    assert example["maps"]["concept"].shape == (2, 16, 16)  # the finest layers at 128 px


def test_the_numbers_quoted_beside_figures_3_2_and_3_3_and_the_maps():
    from dvdlib.stats.verdicts import Interval

    levels = pd.DataFrame({"main": [0.4, 0.7, 0.5], "ref": [0.45, 0.3, 0.5]},
                          index=pd.Index(["down 8x8", "mid 4x4", "up 8x8"], name="level"))
    extremes = tables.level_extremes(levels, "main", "ref")
    assert extremes["lowest"] == ("down 8x8", 0.4) and extremes["highest"] == ("mid 4x4", 0.7)
    assert extremes["largest_gap"] == ("mid 4x4", 0.7, 0.3)
    quoted = quotes.level_quotes(extremes)
    assert quoted["ch3_gap_level"] == "mid 4x4" and quoted["ch3_gap_reference"] == "0.30"
    assert quotes.level_quotes(tables.level_extremes(levels, "main", None))["ch3_gap_main"] == quotes.NOT_RUN
    rows = [{"condition": c, "layer": layer, "layer_label": f"l{layer}", "level": "up 8x8", "step": step,
             "pair_share": share + 0.1 * step}
            for c, shares in (("main", [0.6, 0.4, 0.7]), ("ref", [0.5, 0.5, 0.5]))
            for layer, share in enumerate(shares) for step in range(4)]
    counts = tables.early_layer_counts(pd.DataFrame(rows), "main", "ref", early_steps=1)
    assert counts["layers"] == 3 and counts["above_half"] == 2 and counts["positive_difference"] == 2
    assert np.allclose(counts["range"], (0.4, 0.7)) and np.allclose(counts["difference_range"], (-0.1, 0.2))
    assert quotes.layer_quotes(counts)["ch3_difference_range"] == "-0.10 to +0.20"
    maps = pd.DataFrame({"condition": ["main"] * 6, "group": ["concept", "object"] * 3,
                         "step": [0, 0, 5, 5, 5, 5],
                         "entropy_concentration": [0.9, 0.7, 0.2, 0.4, 0.0, 0.4]})
    low, high, kept = tables.concentration_range(maps)  # means per condition, word and step
    assert (low, high, kept) == (pytest.approx(0.1), pytest.approx(0.9), 2)
    assert quotes.concentration_quotes(low, high, kept)["ch3_concentration_range"] == "0.10 to 0.90"
    assert quotes.concentration_quotes(*tables.concentration_range(maps.head(0)))[
        "ch3_concentration_range"] == quotes.NOT_RUN
    assert quotes.relation(Interval(0.6, 0.55, 0.65), Interval(0.4, 0.3, 0.5)) == "higher"
    assert quotes.relation(Interval(0.4, 0.3, 0.5), Interval(0.6, 0.55, 0.65)) == "lower"
    assert quotes.relation(Interval(0.5, 0.4, 0.6), Interval(0.55, 0.5, 0.65)) == "not separable"
    assert quotes.sign(0.3, 0.1, 0.5) == "positive" and quotes.sign(-0.3, -0.5, 0.1).startswith("not")
    assert quotes.sign(math.nan, math.nan, math.nan) == quotes.CONSTANT
