"""Instance diversity: the measure, the toy world's training looks, the causal test's tables and
statistics, and the real-model helpers (concept-only prompts, CLIP embeddings, rank correlation)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dvdlib import diversity as dv
from dvdlib.bench import builtin_prompts
from dvdlib.questions import check_prompt_words
from dvdlib.toyworld.detector import ShapeDetector
from dvdlib.toyworld.world import BACKGROUND, SHAPES, ShapeInstance, World, render


# --- the measure ---------------------------------------------------------------------------------
def test_identical_images_have_no_diversity_and_one_look():
    same = np.tile([[1.0, 2.0, 3.0]], (6, 1))
    measures = dv.diversity_measures(same)
    assert measures["similarity"] == pytest.approx(1.0)
    assert measures["diversity"] == pytest.approx(0.0, abs=1e-12)
    assert measures["vendi"] == pytest.approx(1.0)
    assert measures["n"] == 6


def test_k_orthogonal_looks_count_as_k_looks():
    looks = np.eye(4) * 3.0  # four unrelated looks, each drawn three times
    images = np.repeat(looks, 3, axis=0)
    assert dv.vendi_score(images) == pytest.approx(4.0)
    # Of the 66 distinct pairs, 4 * 3 = 12 show the same look (similarity 1), the rest 0.
    assert dv.mean_pairwise_similarity(images) == pytest.approx(12 / 66)
    assert dv.instance_diversity(images) == pytest.approx(1 - 12 / 66)


def test_the_centre_is_subtracted_before_the_cosine():
    shared = np.array([10.0, 10.0, 0.0, 0.0])
    images = shared + np.array([[0, 0, 1.0, 0], [0, 0, 0, 1.0]])
    assert dv.mean_pairwise_similarity(images) > 0.9  # the shared part dominates
    assert dv.mean_pairwise_similarity(images, centre=shared) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"centre must have shape \(4,\)"):
        dv.instance_diversity(images, centre=np.zeros(3))
    with pytest.raises(ValueError, match=r"embedding\(s\) \[0, 1\] are zero"):
        dv.instance_diversity(np.tile(shared, (2, 1)), centre=shared)
    with pytest.raises(ValueError, match="at least 2 images"):
        dv.instance_diversity(np.ones((1, 3)))


def test_shapes_apart_on_the_background_have_zero_pixel_similarity():
    left = ShapeInstance("circle", (1.0, 0.2, 0.2), 10.0, 8.0, 8.0)
    right = ShapeInstance("circle", (0.2, 1.0, 0.2), 10.0, 24.0, 24.0)
    images = render([[left], [right]])
    background = dv.background_pixels(BACKGROUND)
    assert dv.mean_pairwise_similarity(dv.pixel_embeddings(images)) > 0.05  # the shared dark
    assert dv.mean_pairwise_similarity(dv.pixel_embeddings(images), background) == \
        pytest.approx(0.0, abs=1e-6)


# --- the toy world's training looks ---------------------------------------------------------------
def test_training_looks_of_k_instances_show_at_most_k_distinct_images():
    for k in (1, 4):
        images = dv.concept_appearances(World(instances=k), 40, seed=3)
        assert images.shape == (40, 3, 32, 32)
        assert len({tuple(im.flatten().tolist()) for im in images}) == k
    unlimited = dv.concept_appearances(World(instances=None), 40, seed=3)
    assert len({tuple(im.flatten().tolist()) for im in unlimited}) == 40
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        dv.concept_appearances(World(), 1)


def test_training_diversity_rises_with_k_and_is_zero_at_one_instance():
    torch.manual_seed(0)
    detector = ShapeDetector()  # untrained: any fixed feature map gives 0 for identical images
    embedders = dv.toy_embedders(detector, World(), n_reference=50)
    worlds = {"k1": World(instances=1), "k4": World(instances=4), "kinf": World(instances=None)}
    table = dv.training_diversity(worlds, embedders, n=60, seed=1)
    assert set(table["embedding"]) == {"detector", "pixels"} and len(table) == 6
    pixels = table[table["embedding"] == "pixels"].set_index("model")
    assert pixels.loc["k1", "diversity"] == pytest.approx(0.0, abs=1e-9)
    assert pixels.loc["k1", "diversity"] < pixels.loc["k4", "diversity"] < pixels.loc["kinf", "diversity"]
    assert pixels.loc["k4", "vendi"] <= 4.0 + 1e-6 < pixels.loc["kinf", "vendi"]
    detector_rows = table[table["embedding"] == "detector"].set_index("model")
    assert detector_rows.loc["k1", "diversity"] == pytest.approx(0.0, abs=1e-9)
    assert detector_rows.loc["kinf", "diversity"] > 0.1


def test_detector_embeddings_read_tensors_and_pil_images_alike():
    torch.manual_seed(0)
    detector = ShapeDetector()
    images = World().sample(3, seed=0).images
    as_pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
              for im in images]
    from_tensor = dv.detector_embeddings(detector, images)
    assert from_tensor.shape == (3, detector.channels[-1] * 4 * 4)
    np.testing.assert_allclose(dv.detector_embeddings(detector, as_pil), from_tensor, atol=1e-2)


# --- the causal test ----------------------------------------------------------------------------
def test_zoo_prompts_hold_both_orders_controls_and_every_shape_alone():
    prompts = dv.zoo_prompts(World())
    counts = prompts["kind"].value_counts()
    assert counts["circle pair"] == 8 and counts["control pair"] == 12 and counts["alone"] == 5
    assert prompts["prompt"].is_unique
    texts = set(prompts["prompt"])
    assert {"a circle and a star", "a star and a circle", "a cross and a square", "a triangle"} <= texts
    assert not any("circle" in p for p in prompts.loc[prompts["kind"] == "control pair", "prompt"])
    check_prompt_words(prompts)  # generate() accepts it


class YesCodeJudge:
    """Answers from the image: pixel (0, i) encodes, in its red channel, how many of the five
    questions about the i-th shape of SHAPES are answered yes (red = 40 * count)."""

    name = "yes-code"

    def answer(self, items):
        out = []
        for image, questions in items:
            counts = {shape: round(image.getpixel((i, 0))[0] / 40) for i, shape in enumerate(SHAPES)}
            out.append([q.index < counts[q.subject] for q in questions])
        return out


def _coded(counts: dict[str, int]) -> Image.Image:
    image = Image.new("RGB", (8, 8), (0, 0, 0))
    for i, shape in enumerate(SHAPES):
        image.putpixel((i, 0), (40 * counts.get(shape, 0), 0, 0))
    return image


def test_pair_images_are_scored_with_the_papers_formula_in_each_role(tmp_path):
    world = World()
    prompts = dv.zoo_prompts(world)
    picked = prompts[prompts["prompt"].isin(
        ["a square and a circle", "a square and a cross", "a circle", "a cross"])]
    codes = {"a square and a circle": {"circle": 5, "square": 1},
             "a square and a cross": {"square": 4, "cross": 2},
             "a circle": {"circle": 3}, "a cross": {"cross": 2}}
    rows = []
    for row in picked.itertuples():
        file = f"case{row.case_num:03d}/seed00007.png"
        (tmp_path / file).parent.mkdir()
        _coded(codes[row.prompt]).save(tmp_path / file)
        rows.append({"case_num": row.case_num, "prompt": row.prompt, "seed": 7, "file": file})
    yes = dv.judge_shapes(tmp_path, pd.DataFrame(rows), YesCodeJudge(), world.shapes)
    assert yes.set_index("prompt").loc["a square and a circle", "yes_circle"] == 5
    pairs, alone = dv.role_tables(yes, prompts, world.limited)

    circle = pairs[pairs["kind"] == "circle pair"].iloc[0]
    assert (circle["content"], circle["nm_word"], circle["arrangement"]) == ("circle", "square",
                                                                             "nm_word first")
    assert circle["dvd_score"] == pytest.approx(5 * (5 - 1) / 25 * 100)
    control = pairs[pairs["kind"] == "control pair"].set_index("content")
    assert len(control) == 2  # a control pair is scored in both roles
    assert control.loc["square", "dvd_score"] == pytest.approx(4 * 3 * 4)
    assert control.loc["cross", "dvd_score"] == pytest.approx(2 * 1 * 4)
    assert control.loc["cross", "arrangement"] == "nm_word first"
    solo = alone.set_index("shape")
    assert bool(solo.loc["circle", "present"]) and not bool(solo.loc["cross", "present"])


def test_crossed_bootstrap_resamples_groups_and_seeds():
    constant = {"x": np.full((3, 5), 2.0)}
    assert dv.crossed_bootstrap(constant, lambda a: a["x"].mean(axis=(1, 2))) == (2.0, 2.0, 2.0)
    # Variation only between seeds: a bootstrap over groups alone would give a zero width.
    seeds_only = {"x": np.tile(np.arange(6.0), (4, 1))}
    estimate, low, high = dv.crossed_bootstrap(seeds_only, lambda a: a["x"].mean(axis=(1, 2)),
                                               n_resamples=500, seed=1)
    assert estimate == pytest.approx(2.5) and low < 2.5 < high
    assert dv.crossed_bootstrap(seeds_only, lambda a: a["x"].mean(axis=(1, 2)), n_resamples=500,
                                seed=1) == (estimate, low, high)  # seeded
    ratio = {"a": np.ones((2, 3)), "b": np.zeros((2, 3))}
    result = dv.crossed_bootstrap(ratio, lambda a: a["a"].mean(axis=(1, 2)) / a["b"].mean(axis=(1, 2)))
    assert np.isnan(result[1]) and np.isnan(result[2])  # a ratio over zeros has no interval
    with pytest.raises(ValueError, match=r"\[group, seed\] of one shape"):
        dv.crossed_bootstrap({"a": np.ones((2, 3)), "b": np.ones((3, 2))}, lambda a: a["a"])


def _tables(seeds=(1, 2, 3, 4)):
    """One model: the circle always wins (DvD 100), control shapes always tie (DvD 0), every
    shape is drawn alone; the cross is found alone only for half the seeds."""
    pairs, alone = [], []
    partners = ["square", "cross"]
    for seed in seeds:
        for partner in partners:
            for order in dv.ORDERS:
                pairs.append(dict(kind="circle pair", content="circle", nm_word=partner, seed=seed,
                                  arrangement=order, dvd_score=100.0, content_present=True,
                                  nm_present=False))
                pairs.append(dict(kind="control pair", content="star", nm_word=partner, seed=seed,
                                  arrangement=order, dvd_score=0.0, content_present=True,
                                  nm_present=True))
        for shape in ["circle", *partners]:
            alone.append(dict(shape=shape, seed=seed, present=shape != "cross" or seed % 2 == 0))
    pairs, alone = pd.DataFrame(pairs), pd.DataFrame(alone)
    return pairs.assign(model="k1", K=1), alone.assign(model="k1")


def test_dose_response_reads_the_measures_off_the_tables():
    pairs, alone = _tables()
    table = dv.dose_response(pairs, alone, "circle", {"all": ["square", "cross"], "seen": ["square"]},
                             n_resamples=200)
    got = table[table["partners"] == "all"].set_index("measure")["estimate"]
    assert got["dvd"] == 100 and got["dvd_control"] == 0 and got["dvd_excess"] == 100
    assert got["circle_pair"] == 1 and got["partner_pair"] == 0 and got["dominance"] == 1
    assert got["circle_alone"] == 1 and got["partner_alone"] == pytest.approx(0.75)
    assert got["circle_retention"] == 1 and got["partner_retention"] == 0
    assert set(table["measure"]) == set(dv.MEASURES)
    assert table.loc[table["partners"] == "all", "n_images"].iloc[0] == 16
    seen = table[table["partners"] == "seen"].set_index("measure")
    assert seen.loc["partner_alone", "estimate"] == 1 and seen.loc["partner_alone", "ci_low"] == 1
    spread = table[(table["partners"] == "all") & (table["measure"] == "partner_alone")].iloc[0]
    assert spread["ci_low"] < 0.75 < spread["ci_high"]


def test_plot_by_level_draws_one_line_per_measure_in_model_order():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = pd.DataFrame({"model": ["kinf", "k1", "kinf", "k1"], "measure": ["dvd", "dvd", "x", "x"],
                          "estimate": [10.0, 50.0, 1.0, 2.0], "ci_low": [5.0, 40.0, 0.5, 1.0],
                          "ci_high": [15.0, 60.0, 1.5, 3.0]})
    fig, ax = plt.subplots()
    dv.plot_by_level(ax, table, ["dvd"], ["circle"], ["k1", "kinf"], ["1", "unlimited"], "DvD")
    (line,) = ax.get_lines()[:1]
    assert line.get_xdata().tolist() == [0, 1] and line.get_ydata().tolist() == [50.0, 10.0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "unlimited"]
    with pytest.raises(ValueError, match="one label per measure"):
        dv.plot_by_level(ax, table, ["dvd", "x"], ["circle"], ["k1"], ["1"], "DvD")
    plt.close(fig)


def test_contrast_pairs_the_two_models_on_the_same_resamples():
    pairs, alone = _tables()
    weaker = pairs.assign(model="kinf", K=None,
                          dvd_score=np.where(pairs["kind"] == "circle pair", 40.0, 0.0))
    both_pairs = pd.concat([pairs, weaker])
    both_alone = pd.concat([alone, alone.assign(model="kinf")])
    assert dv.contrast(both_pairs, both_alone, "circle", ["square", "cross"], "k1", "kinf",
                       n_resamples=200) == (60.0, 60.0, 60.0)
    with pytest.raises(ValueError, match="unknown measure 'DvD'; accepted: dvd, dvd_control"):
        dv.contrast(both_pairs, both_alone, "circle", ["square"], "k1", "kinf", "DvD")
    with pytest.raises(ValueError, match="model 'k4' is not in the table; it has k1, kinf"):
        dv.contrast(both_pairs, both_alone, "circle", ["square"], "k1", "k4")


def test_the_causal_test_runs_end_to_end_on_untrained_models(tmp_path):
    from dvdlib.toyworld.judge import ToyJudge
    from dvdlib.toyworld.pipeline import new_pipeline

    worlds = {"k1": World(instances=1), "kinf": World(instances=None)}
    models = {name: new_pipeline(world.words, seed=i) for i, (name, world) in enumerate(worlds.items())}
    torch.manual_seed(0)
    detector = ShapeDetector()
    test = dv.run_causal_test(models, worlds, ToyJudge(detector), [1, 2], tmp_path, steps=1,
                              guidance=4.0)
    n_prompts = len(test.prompts)
    assert len(test.yes) == 2 * 2 * n_prompts
    assert test.yes[[f"yes_{s}" for s in SHAPES]].isin(range(6)).all().all()
    assert len(test.pairs) == 2 * 2 * (8 + 2 * 12) and len(test.alone) == 2 * 2 * 5
    assert test.pairs["dvd_score"].between(0, 100).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1", "kinf"]
    images = test.images("kinf", "a star and a circle", seeds=[2, 1])
    assert len(images) == 2 and images[0].size == (32, 32)
    # The images are the models' own: a different model draws different noise.
    assert np.asarray(images[1]).tolist() != np.asarray(test.images("k1", "a star and a circle",
                                                                   seeds=[1])[0]).tolist()
    embedders = dv.toy_embedders(detector, worlds["k1"], n_reference=20)
    every = dv.toy_generated_diversity(test, embedders, present_only=False)
    assert len(every) == 2 * 2 * 5 and (every["n"] == 2).all() and (every["n_prompted"] == 2).all()
    assert every["diversity"].notna().all()
    # Only images in which the judge finds the shape count; fewer than two give no measure.
    # Set the judge's counts: every shape found in every image, but k1's circle only for seed 1.
    for shape in SHAPES:
        test.yes[f"yes_{shape}"] = 5
    k1_circle = (test.yes["model"] == "k1") & (test.yes["prompt"] == "a circle")
    test.yes.loc[k1_circle & (test.yes["seed"] == 2), "yes_circle"] = 0
    drawn = dv.toy_generated_diversity(test, embedders).set_index(["embedding", "model", "shape"])
    assert drawn.loc[("pixels", "k1", "circle"), "n"] == 1
    assert np.isnan(drawn.loc[("pixels", "k1", "circle"), "diversity"])
    assert (drawn.drop(index="circle", level="shape")["n"] == 2).all()
    assert drawn.loc[("pixels", "kinf", "circle"), "diversity"] == pytest.approx(
        every.set_index(["embedding", "model", "shape"]).loc[("pixels", "kinf", "circle"), "diversity"])
    table = dv.dose_response(test.pairs, test.alone, "circle", {"all": list(SHAPES[1:])},
                             n_resamples=50)
    assert len(table) == 2 * len(dv.MEASURES)
    with pytest.raises(ValueError, match="must differ only in K"):
        dv.run_causal_test(models, {"k1": worlds["k1"], "kinf": World(limited="square")},
                           ToyJudge(detector), [1], tmp_path / "other", steps=1, guidance=4.0)


# --- real models ---------------------------------------------------------------------------------
def test_solo_prompts_name_each_concept_once():
    prompts = builtin_prompts()
    solo = dv.solo_prompts(prompts)
    assert len(solo) == prompts[["content_type", "content"]].drop_duplicates().shape[0]
    van_gogh = solo[solo["content"] == "van gogh"].iloc[0]
    assert van_gogh["prompt"] == "a painting by van gogh" and van_gogh["nm_word"] == "van gogh"
    check_prompt_words(solo)
    with pytest.raises(ValueError, match="no concept-only template for categor.*landmark"):
        dv.solo_prompts(prompts, templates={"artist": "{concept}", "character": "{concept}"})


def test_concept_dvd_averages_prompts_and_seeds_per_concept():
    images = pd.DataFrame({
        "content_type": "artist", "content": ["monet"] * 4 + ["titian"] * 2,
        "case_num": [1, 1, 2, 2, 3, 3], "seed": [10, 20, 10, 20, 10, 20],
        "dvd_score": [100.0, 60.0, 20.0, 20.0, 0.0, 0.0]})
    table = dv.concept_dvd(images, n_resamples=200).set_index("content")
    assert table.loc["monet", "dvd"] == pytest.approx(50.0) and table.loc["monet", "n_prompts"] == 2
    assert table.loc["monet", "ci_low"] < 50 < table.loc["monet", "ci_high"]
    assert table.loc["titian", ["dvd", "ci_low", "ci_high"]].tolist() == [0.0, 0.0, 0.0]


def test_rank_correlation():
    x = [0.1, 0.5, 0.2, 0.9, 0.7]
    assert dv.spearman(x, [1, 5, 2, 9, 7]) == pytest.approx(1.0)
    assert dv.spearman(x, [-1, -5, -2, -9, -7]) == pytest.approx(-1.0)
    assert dv.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(np.corrcoef([1, 2.5, 2.5, 4],
                                                                                 [1, 2, 3, 4])[0, 1])
    assert np.isnan(dv.spearman([1, 1, 1], [1, 2, 3]))
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    rho, low, high = dv.rank_correlation(a, a + rng.normal(scale=0.5, size=40), n_resamples=300)
    assert low < rho < high and rho > 0.5
    assert dv.spearman([1, 2, np.nan, 3], [3, 2, 5, 1]) == pytest.approx(-1.0)  # NaN pair left out
    assert np.isnan(dv.spearman([1, 2], [1, 2]))
    with pytest.raises(ValueError, match="one length"):
        dv.spearman([1, 2, 3], [1, 2])


def test_clip_image_embeddings_and_diversity_per_concept():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32,
                                                         head_width=16, patch_size=8),
                           text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                                         layers=1))
    preprocess = open_clip.image_transform(32, is_train=False)
    rng = np.random.default_rng(0)
    noise = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
    flat = [Image.new("RGB", (32, 32), (200, 30, 30))] * 3
    embeddings = dv.clip_image_embeddings(model, preprocess, noise + flat, batch_size=4)
    assert embeddings.shape == (6, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)

    table = dv.diversity_by_label(embeddings, ["noise"] * 3 + ["flat"] * 3).set_index("label")
    assert table.loc["flat", "diversity"] == pytest.approx(0.0, abs=1e-6)
    assert table.loc["noise", "diversity"] > table.loc["flat", "diversity"]
    with pytest.raises(ValueError, match="label 'alone' has 1 image"):
        dv.diversity_by_label(embeddings[:3], ["noise", "noise", "alone"])


class RedJudge:
    """Concept question i is answered yes when the image's mean red level exceeds 40 * (i + 1);
    object question i when its mean green level does."""

    name = "red"

    def answer(self, items):
        out = []
        for image, questions in items:
            red, green = np.asarray(image, dtype=float).reshape(-1, 3).mean(axis=0)[:2]
            level = {"concept": red, "object": green}
            out.append([level[q.side] > 40 * (q.index + 1) for q in questions])
        return out


def test_the_concept_study_scores_and_measures_every_concept(tmp_path):
    from dvdlib.testing import dummy_sd_pipeline

    prompts = builtin_prompts().iloc[[0, 21, 100, 101]].reset_index(drop=True)  # 3 concepts
    assert prompts["content"].tolist()[:2] == ["amedeo modigliani"] * 2

    def embed(images):
        return dv.pixel_embeddings(images)

    study = dv.run_concept_study(dummy_sd_pipeline("sd1"), "dummy", prompts, [1, 2], tmp_path,
                                 RedJudge(), embed, steps=1, guidance=7.5, n_resamples=100)
    assert len(study.images) == 4 * 2
    concepts = study.concepts.set_index("content")
    assert set(concepts.index) == set(prompts["content"])
    assert concepts.loc["amedeo modigliani", "n_prompts"] == 2
    assert concepts.loc["amedeo modigliani", "n_images"] == 4 and (concepts["n"] == 2).all()
    assert concepts["dvd"].between(0, 100).all() and concepts["diversity"].between(0, 2).all()
    assert concepts.loc["amedeo modigliani", "solo_prompt"] == "a painting by amedeo modigliani"
    assert len(list((tmp_path / "solo").glob("case*/seed*.png"))) == 3 * 2
    expected = study.images.groupby("content")["dvd_score"].mean()
    np.testing.assert_allclose(concepts.loc[expected.index, "dvd"], expected)


def test_finding_1_needs_a_positive_control_before_its_interval_counts():
    from dvdlib import diversity as dv_

    dvds = {"K = 1": (7.8, 3.9, 12.3), "K = unlimited": (9.5, 5.0, 14.0)}
    verdict = dv_.finding_verdict((-1.7, -8.0, 4.5), dvds, toy=True, first="K=1", last="K=unlimited")
    assert verdict.word == "not testable"
    assert "DvD interval above 20, but the highest is K = unlimited's 9.5 [5.0, 14.0]" in verdict.reason
    strong = {"K = 1": (60.0, 45.0, 75.0), "K = unlimited": (20.0, 10.0, 30.0)}
    assert dv_.finding_verdict((40, 20, 60), strong, toy=True).word == "supported"
    assert dv_.finding_verdict((-40, -60, -20), strong, toy=True).word == "contradicted"
    assert dv_.finding_verdict((5, -10, 20), strong, toy=True).word == "inconclusive"
    assert dv_.finding_verdict((-0.5, -0.8, -0.2), strong, toy=False).word == "supported"  # rho below 0
    with pytest.raises(ValueError, match=r"positive_control_dvd must be in \[0, 100\), got 120"):
        dv_.stated_test(True, positive_control_dvd=120)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        dv_.finding_verdict((1, 0, 2), strong, toy=True, confidence=95)
