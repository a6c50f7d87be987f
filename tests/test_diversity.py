"""Instance diversity: the measure, chapter 2's toy-zoo experiment (training pictures, prompts,
judging, the two-level bootstrap, the verdict), and the real-model study's helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dvdlib.chapters.data_diversity import measure as dv
from dvdlib.chapters.data_diversity import real_study as px
from dvdlib.chapters.data_diversity import toy_pictures, toy_runs, toy_summary, verdict
from dvdlib.prompts.prompt_sets import builtin_prompts
from dvdlib.scoring.questions import check_prompt_words
from dvdlib.stats.bootstrap import two_level_interval
from dvdlib.toyworld.detector import PresenceDetector
from dvdlib.toyworld.world import (BACKGROUND, CONCEPT_ALONE, OBJECT_ALONE, OBJECTS, PAIR,
                                   ConceptInstance, Scene, World, draw_concept, render)


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


def test_pictures_that_differ_only_where_the_reference_does_not_are_unrelated():
    # Two carriers apart on the background: subtracting the empty background leaves two
    # non-overlapping patches, whose cosine is 0; without it the shared background counts.
    from dvdlib.toyworld.world import ObjectInstance

    left = Scene(object=ObjectInstance("kite", (1.0, 0.2, 0.2), 10.0, 7.0, 7.0))
    right = Scene(object=ObjectInstance("kite", (0.2, 1.0, 0.2), 10.0, 25.0, 25.0))
    images = render([left, right])
    background = dv.background_pixels(BACKGROUND)
    assert dv.mean_pairwise_similarity(dv.pixel_embeddings(images)) > 0.5
    assert dv.mean_pairwise_similarity(dv.pixel_embeddings(images), background) == \
        pytest.approx(0.0, abs=1e-6)


# --- the toy world's training pictures ------------------------------------------------------------
def _distinct(images: torch.Tensor) -> int:
    return len({tuple(im.flatten().tolist()) for im in images})


def test_training_pictures_of_k_instances_show_at_most_k_distinct_images():
    for k in (1, 4):
        images = toy_pictures.concept_appearances(World(instances=k), 40, seed=3)
        assert images.shape == (40, 3, 32, 32)
        assert _distinct(images) == k
    # Three instance seeds at K = 1: three different fixed pictures.
    firsts = [toy_pictures.concept_appearances(World(instances=1, instance_seed=s), 2)[0] for s in range(3)]
    assert _distinct(torch.stack(firsts)) == 3
    assert _distinct(toy_pictures.concept_appearances(World(instances=None), 40, seed=3)) == 40
    # The pictures are the whole concept picture, as training prints or shows it.
    rng = np.random.default_rng(3)
    world = World(instances=1)
    expected = render([Scene(concept=world.draw_concept("sunset", rng))])[0]
    assert torch.equal(toy_pictures.concept_appearances(world, 2, seed=3)[0], expected)
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        toy_pictures.concept_appearances(World(), 1)


def test_training_diversity_rises_with_k_and_is_zero_at_one_instance():
    torch.manual_seed(0)
    detector = PresenceDetector()  # untrained: any fixed feature map gives 0 for identical images
    embedders = toy_pictures.toy_embedders(detector, World(), n_reference=30)
    worlds = {"k1": World(instances=1), "k4": World(instances=4), "kinf": World(instances=None)}
    table = toy_pictures.training_diversity(worlds, embedders, n=60, seed=1)
    assert set(table["embedding"]) == {"detector", "pixels"} and len(table) == 6
    pixels = table[table["embedding"] == "pixels"].set_index("model")
    assert pixels.loc["k1", "diversity"] == pytest.approx(0.0, abs=1e-9)
    assert pixels.loc["k1", "diversity"] < pixels.loc["k4", "diversity"] < pixels.loc["kinf", "diversity"]
    assert pixels.loc["k4", "vendi"] <= 4.0 + 1e-6 < pixels.loc["kinf", "vendi"]
    assert pixels.loc["kinf", "diversity"] > 0.8  # independent pictures: departures unrelated
    detector_rows = table[table["embedding"] == "detector"].set_index("model")
    assert detector_rows.loc["k1", "diversity"] == pytest.approx(0.0, abs=1e-9)
    assert detector_rows.loc["kinf", "diversity"] > 0.05


def test_reference_renders_hold_the_concept_at_full_diversity():
    world = World(instances=1)
    images = toy_pictures.reference_renders(world, 6, seed=0)
    rng = np.random.default_rng(0)
    expected = render([Scene(concept=ConceptInstance("sunset", draw_concept("sunset", rng)))
                       for _ in range(6)])
    assert torch.equal(images, expected) and _distinct(images) == 6


def test_detector_embeddings_read_tensors_and_pil_images_alike():
    torch.manual_seed(0)
    detector = PresenceDetector()
    images = World().sample(3, seed=0).images
    as_pil = [Image.fromarray((im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
              for im in images]
    from_tensor = dv.detector_embeddings(detector, images)
    assert from_tensor.shape == (3, detector.channels[-1] * 4 * 4)
    np.testing.assert_allclose(dv.detector_embeddings(detector, as_pil), from_tensor, atol=1e-2)


# --- prompts, judging ---------------------------------------------------------------------------
def test_study_prompts_pair_the_concept_with_every_object_and_hold_the_controls_once():
    world = World()
    prompts = toy_runs.study_prompts(world)
    pairs = prompts[prompts["arrangement"] == PAIR]
    assert pairs["prompt"].tolist() == [f"sunset {o}" for o in OBJECTS]
    assert pairs.set_index("object")["paired_in_training"].to_dict() == {
        "coaster": True, "shirt": True, "notebook": True, "hat": False, "kite": False}
    concept = prompts[prompts["arrangement"] == CONCEPT_ALONE]
    # The concept alone names no object: its object column repeats the concept, for the checks.
    assert concept["prompt"].tolist() == ["sunset"] and concept["object"].tolist() == ["sunset"]
    objects = prompts[prompts["arrangement"] == OBJECT_ALONE]
    assert objects["prompt"].tolist() == list(OBJECTS)
    assert (objects["concept"] == objects["object"]).all()
    assert prompts["prompt"].is_unique and prompts["case_num"].tolist() == list(range(1, 12))
    check_prompt_words(prompts)  # generate() accepts it


class YesCodeJudge:
    """Answers from the image: pixel (i, 0) encodes, in its red channel, how many of the five
    questions about the i-th word of ``World().names`` are answered yes (red = 40 * count)."""

    name = "yes-code"
    names = World().names

    def answer(self, items):
        out = []
        for image, questions in items:
            counts = {w: round(image.getpixel((i, 0))[0] / 40) for i, w in enumerate(self.names)}
            out.append([q.index < counts[q.subject] for q in questions])
        return out


def _coded(counts: dict[str, int], fill=BACKGROUND) -> Image.Image:
    image = Image.new("RGB", (32, 32), tuple(int(round(c * 255)) for c in fill))
    for i, word in enumerate(YesCodeJudge.names):
        image.putpixel((i, 0), (40 * counts.get(word, 0), 0, 0))
    return image


def test_images_are_judged_and_scored_with_the_papers_formula(tmp_path):
    prompts = toy_runs.study_prompts(World())
    codes = {"sunset coaster": ({"sunset": 5, "coaster": 1}, (0.9, 0.4, 0.2)),  # the print fills the frame
             "sunset kite": ({"sunset": 4, "kite": 4}, BACKGROUND),
             "sunset": ({"sunset": 3}, (0.9, 0.4, 0.2)), "hat": ({"hat": 2, "sunset": 1}, BACKGROUND)}
    rows = []
    for row in prompts[prompts["prompt"].isin(codes)].itertuples():
        file = f"case{row.case_num:03d}/seed00007.png"
        (tmp_path / file).parent.mkdir()
        _coded(*codes[row.prompt]).save(tmp_path / file)
        rows.append({"case_num": row.case_num, "seed": 7, "file": file})
    table = toy_runs.judge_images(tmp_path, pd.DataFrame(rows), prompts, YesCodeJudge(), "sunset")
    table = table.set_index("prompt")
    coaster = table.loc["sunset coaster"]
    assert (coaster["concept_yes"], coaster["object_yes"]) == (5, 1)
    assert coaster["dvd_score"] == pytest.approx(5 * (5 - 1) / 25 * 100)
    assert coaster["concept_only"] and coaster["frame_filled"] and not coaster["rule_object_present"]
    kite = table.loc["sunset kite"]
    assert kite["dvd_score"] == pytest.approx(4 * 1 * 4) and kite["object_present"]
    assert not kite["frame_filled"] and not kite["paired_in_training"]
    concept = table.loc["sunset"]
    assert concept["concept_present"] and np.isnan(concept["object_yes"])
    assert np.isnan(concept["dvd_score"]) and not concept["object_present"] and concept["object"] == ""
    hat = table.loc["hat"]
    assert (hat["object"], hat["object_yes"], hat["concept_yes"]) == ("hat", 2, 1)
    assert not hat["object_present"] and np.isnan(hat["dvd_score"])


def test_an_absent_object_is_told_apart_by_what_the_image_shows(tmp_path):
    """A pair image without its object shows the concept filling the frame, another carrier,
    or nothing: the judge is asked about every other object, and the outcome says which."""
    from dvdlib.chapters.data_diversity import outcomes

    prompts = toy_runs.study_prompts(World())
    sunset = (0.9, 0.4, 0.2)
    codes = {"sunset coaster": ({"sunset": 5}, sunset),  # fills the frame
             "sunset hat": ({"sunset": 5, "shirt": 4, "kite": 3}, BACKGROUND),  # a shirt instead
             "sunset kite": ({}, BACKGROUND),  # nothing recognisable
             "sunset shirt": ({"sunset": 2, "shirt": 4}, BACKGROUND)}  # the object
    rows = []
    for row in prompts[prompts["prompt"].isin(codes)].itertuples():
        file = f"case{row.case_num:03d}/seed00001.png"
        (tmp_path / file).parent.mkdir()
        _coded(*codes[row.prompt]).save(tmp_path / file)
        rows.append({"case_num": row.case_num, "seed": 1, "file": file})
    table = toy_runs.judge_images(tmp_path, pd.DataFrame(rows), prompts, YesCodeJudge(), "sunset")
    table = table.set_index("prompt")
    assert table["outcome"].to_dict() == {
        "sunset coaster": outcomes.FILLS, "sunset hat": outcomes.WRONG,
        "sunset kite": outcomes.NOTHING, "sunset shirt": outcomes.PRESENT}
    assert table.loc["sunset hat", "other_object"] == "shirt"  # the most yes among the others
    assert table.loc["sunset shirt", "other_object"] == ""  # its own object is not "other"
    assert table.loc["sunset hat", "dvd_score"] == 100.0  # the paper counts it as dominance
    assert np.isnan(table.loc["sunset hat", "dvd_no_wrong_carrier"])  # the verdict does not
    assert table.loc["sunset coaster", "dvd_no_wrong_carrier"] == 100.0
    assert table[["fills_frame", "wrong_carrier", "nothing_recognisable"]].sum().tolist() == \
        [1, 1, 1]


# --- the plan, the intervals, the summaries -------------------------------------------------------
def test_the_plan_compares_k1_and_unlimited_at_every_other_setting():
    plan = toy_runs.plan_runs(["k1", "k1-i1", "k4", "kinf"], ["k1", "k1-i1", "kinf"], 4.0, [500],
                        [1, 2, 3], [1], [1, 2], [1])
    default = [r for r in plan if r.guidance == 4.0 and r.snapshot is None]
    assert [r.model for r in default] == ["k1", "k1-i1", "k4", "kinf"]
    assert all(r.pair_seeds == (1, 2, 3) and r.control_seeds == (1,) for r in default)
    others = {(r.guidance, r.snapshot) for r in plan} - {(4.0, None)}
    assert others == {(1.0, None), (2.0, None), (7.5, None), (4.0, 500)}  # one at a time
    assert all(r.pair_seeds == (1, 2) for r in plan if r not in default)
    assert {r.model for r in plan if r not in default} == {"k1", "k1-i1", "kinf"}
    snapshot = next(r for r in plan if r.snapshot == 500)
    assert snapshot.weights == f"{snapshot.model}@500" and snapshot.folder.endswith("_guidance4")
    assert toy_runs.plan_runs(["k1", "kinf"], ["k1", "kinf"], 4.0, [500], [1], [1], [], []) == \
        [toy_runs.Run("k1", 4.0, (1,), (1,)), toy_runs.Run("kinf", 4.0, (1,), (1,))]
    assert toy_runs.condition_label(4.0, None) == "guidance 4, finished"
    assert toy_runs.condition_label(7.5, 500) == "guidance 7.5, 500 steps"


def test_two_level_interval_resamples_models_then_seeds():
    constant = np.full((3, 2, 5), 40.0)
    assert two_level_interval(constant, [0, 1, 2]) == (40.0, 40.0, 40.0)
    # Models differ, seeds do not: only the first level gives the interval its width.
    models = np.stack([np.full((2, 6), v) for v in (10.0, 20.0, 60.0)])
    estimate, low, high = two_level_interval(models, [0, 1, 2], n_resamples=500)
    assert estimate == pytest.approx(30.0) and 10.0 <= low < 30.0 < high <= 60.0
    # One model against another, the seeds shared: a constant paired difference has no width,
    # however much the seeds differ.
    seeds = np.tile(np.arange(8.0) * 10, (2, 1))  # [object, seed]
    paired = np.stack([seeds + 25.0, seeds])
    assert two_level_interval(paired, [0], [1], n_resamples=300) == (25.0, 25.0, 25.0)
    unpaired_width = np.subtract(*two_level_interval(paired, [0], n_resamples=300)[2:0:-1])
    assert unpaired_width > 10
    # NaN images are left out; seeded.
    holes = models.copy()
    holes[0, 0, :3] = np.nan
    assert two_level_interval(holes, [0, 1, 2], n_resamples=100, seed=4) == \
        two_level_interval(holes, [0, 1, 2], n_resamples=100, seed=4)
    with pytest.raises(ValueError, match=r"\[model, object, seed\]"):
        two_level_interval(np.ones((2, 3)), [0])
    with pytest.raises(ValueError, match="non-empty lists of model indices below 3"):
        two_level_interval(constant, [0, 3])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\)"):
        two_level_interval(constant, [0], confidence=95)


def _images(seeds=(1, 2, 3, 4)):
    """Judged images of three models at one setting: k1 and k1-i1 always draw the print alone
    (DvD 100), kinf always draws the carrier (DvD 0); every word alone is found, except the hat,
    found alone only for even seeds."""
    rows = []
    for model, k, full in (("k1", 1, True), ("k1-i1", 1, True), ("kinf", None, False)):
        for seed in seeds:
            for obj in OBJECTS:
                rows.append(dict(arrangement=PAIR, object=obj, dvd_score=100.0 if full else 0.0,
                                 dvd_no_wrong_carrier=100.0 if full else 0.0,
                                 concept_present=True, object_present=not full,
                                 concept_only=full, frame_filled=full, fills_frame=full,
                                 wrong_carrier=False, nothing_recognisable=False))
                rows.append(dict(arrangement=OBJECT_ALONE, object=obj, concept_present=False,
                                 object_present=obj != "hat" or seed % 2 == 0))
            rows.append(dict(arrangement=CONCEPT_ALONE, object="", concept_present=True,
                             object_present=False))
            for row in rows[-2 * len(OBJECTS) - 1:]:
                row.update(seed=seed, base_model=model, model=model, K=k, guidance=4.0,
                           snapshot=None, condition=toy_runs.condition_label(4.0, None))
    return pd.DataFrame(rows)


SETS = {"all objects": list(OBJECTS), "seen in training": ["coaster", "shirt", "notebook"],
        "never seen": ["hat", "kite"]}


def test_summarise_reads_every_measure_per_model_and_pooled_group():
    groups = {"k1": ["k1"], "K = 1": ["k1", "k1-i1"], "kinf": ["kinf"], "k16": ["k16"]}
    table = toy_summary.summarise(_images(), groups, SETS, n_resamples=200)
    assert set(table["group"]) == {"k1", "K = 1", "kinf"}  # k16 has no images: left out
    assert set(table["measure"]) == set(toy_summary.MEASURES)
    at = table.set_index(["group", "objects", "measure"])
    assert at.loc[("K = 1", "all objects", "dvd"), ["estimate", "ci_low", "ci_high"]].tolist() == \
        [100.0, 100.0, 100.0]
    assert at.loc[("K = 1", "all objects", "dvd"), "n_images"] == 2 * 5 * 4
    assert at.loc[("kinf", "all objects", "object_present"), "estimate"] == 1.0
    assert at.loc[("kinf", "all objects", "frame_filled"), "estimate"] == 0.0
    assert at.loc[("k1", "all objects", "object_alone"), "estimate"] == pytest.approx(0.9)
    assert at.loc[("k1", "seen in training", "object_alone"), "estimate"] == 1.0
    assert at.loc[("k1", "never seen", "object_alone"), "estimate"] == pytest.approx(0.75)
    assert at.loc[("k1", "never seen", "concept_alone"), "estimate"] == 1.0
    spread = at.loc[("k1", "never seen", "object_alone")]
    assert spread["ci_low"] < 0.75 < spread["ci_high"]
    # A condition without controls: its found-alone rates are left out, not reported as NaN.
    extra = _images().query("arrangement == @PAIR").assign(condition="guidance 1, finished",
                                                              guidance=1.0)
    both = toy_summary.summarise(pd.concat([_images(), extra]), groups, SETS, n_resamples=50)
    other = both[both["condition"] == "guidance 1, finished"]
    assert set(other["measure"]) == set(toy_summary.PAIR_MEASURES) and other["estimate"].notna().all()
    assert at.loc[("kinf", "all objects", "dvd"), "K"] is None or np.isnan(
        at.loc[("kinf", "all objects", "dvd"), "K"])


def test_differences_compare_the_groups_on_the_same_seeds():
    table = toy_summary.differences(_images(), ["k1", "k1-i1"], ["kinf"], SETS, n_resamples=200)
    at = table.set_index(["objects", "measure"])
    assert at.loc[("all objects", "dvd"), ["estimate", "ci_low", "ci_high", "width"]].tolist() == \
        [100.0, 100.0, 100.0, 0.0]
    assert at.loc[("never seen", "object_present"), "estimate"] == -1.0
    assert at.loc[("all objects", "dvd"), "width_seeds_only"] == 0.0
    assert at.loc[("all objects", "object_alone"), "estimate"] == 0.0
    assert toy_summary.differences(_images(), ["k1"], ["k4"], SETS).empty  # k4 has no images
    # The two K = 1 models disagree: the models' level widens the interval, the seeds do not.
    images = _images()
    images.loc[(images["base_model"] == "k1-i1") & (images["arrangement"] == PAIR), "dvd_score"] = 0.0
    split = toy_summary.differences(images, ["k1", "k1-i1"], ["kinf"], SETS, measures=["dvd"],
                           n_resamples=200).set_index("objects").loc["all objects"]
    assert split["estimate"] == 50.0 and split["width_seeds_only"] == 0.0
    assert split["ci_low"] == 0.0 and split["ci_high"] == 100.0


def _compared(images, groups, **intervals):
    """Summary and comparisons of the arms K = 1 (k1, k1-i1) and unlimited (kinf)."""
    from dvdlib.chapters.data_diversity import comparisons

    arms = {"K = 1": ["k1", "k1-i1"], "unlimited": ["kinf"]}
    summary = toy_summary.summarise(images, {**groups, **arms}, SETS, **intervals)
    return summary, comparisons.compare_arms(images, summary, arms, SETS, margin=5.0, **intervals)


def test_chapter_numbers_and_summary_claim_no_more_than_the_verdict():
    from dvdlib.stats import verdicts

    images = _images()
    groups = {"k1": ["k1"], "k1-i1": ["k1-i1"], "kinf": ["kinf"]}
    summary, diffs = _compared(images, groups, n_resamples=100)
    condition = toy_runs.condition_label(4.0, None)
    values, quoted = toy_summary.chapter_numbers(summary, diffs, condition, "K = 1", "unlimited",
                                                 ["k1", "k1-i1", "kinf"])
    assert values["dvd_k1"] == 100.0 and values["dvd_unlimited"] == 0.0
    assert values["dvd_difference"] == 100.0 and values["dvd_difference_width"] == 0.0
    assert values["dvd_no_wrong_carrier_difference"] == 100.0
    assert values["object_present_unlimited"] == 1.0 and values["object_alone_min"] == 0.9
    assert values["fills_frame_k1"] == 1.0 and values["wrong_carrier_unlimited"] == 0.0
    assert values["concept_alone_min"] == 1.0
    assert quoted["ch2_object_alone_min"] == quoted["ch2_object_alone_max"] == 0.9
    assert quoted["ch2_dvd_k1"] == "100.0 [100.0, 100.0]"
    assert quoted["ch2_difference"] == "+100.0 [+100.0, +100.0]"
    assert quoted["ch2_object_present_unlimited"] == "100 % [100 %, 100 %]"
    assert quoted["ch2_width"] == 0.0 and quoted["ch2_dvd_model_max"] == 100.0
    assert toy_summary.condition_table(summary, diffs, condition, "K = 1", "unlimited").empty
    dvds = {m: (values["dvd_k1"], 100.0, 100.0) for m in ("k1", "k1-i1")}
    found = verdict.toy_verdict((100.0, 100.0, 100.0), dvds)
    assert found.word == "supported"
    saved_values, saved_texts = found.headline()
    assert verdicts.check_headline({"values": {**values, **saved_values},
                                    "texts": {**saved_texts, "summary": found.plain()}}) == []


def test_the_condition_table_holds_every_other_condition():
    extra = _images().query("arrangement == @PAIR").assign(condition="guidance 1, finished",
                                                           guidance=1.0)
    images = pd.concat([_images(), extra], ignore_index=True)
    summary, diffs = _compared(images, {}, n_resamples=50)
    table = toy_summary.condition_table(summary, diffs, "guidance 4, finished", "K = 1",
                                        "unlimited", {"guidance 1, finished": "supported"})
    assert table.to_dict("records") == [{
        "condition": "guidance 1, finished", "DvD difference": "+100.0 [+100.0, +100.0]",
        "without wrong carriers": "+100.0 [+100.0, +100.0]", "object present, K = 1": 0.0,
        "object present, unlimited": 1.0, "verdict": "supported"}]


def test_the_study_runs_end_to_end_on_untrained_models(tmp_path):
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld.pipeline import new_pipeline

    worlds = {"k1": World(instances=1), "kinf": World(instances=None)}
    loaded = []

    def load(weights):
        loaded.append(weights)
        return new_pipeline(World().words, seed=len(weights))

    torch.manual_seed(0)
    judge = ToyJudge(PresenceDetector())
    plan = [toy_runs.Run("k1", 4.0, (1, 2), (1,)), toy_runs.Run("kinf", 4.0, (1, 2), (1,)),
            toy_runs.Run("k1", 1.0, (1,), ())]
    study = toy_runs.run_study(plan, load, worlds, judge, tmp_path, steps=1, batch_size=8)
    assert loaded == ["k1", "kinf"]  # each model loaded once, its runs together
    pairs = study.images[study.images["arrangement"] == PAIR]
    assert len(study.images) == 2 * (5 * 2 + 6) + 5
    assert len(pairs) == 2 * 5 * 2 + 5 and pairs["dvd_score"].between(0, 100).all()
    assert set(study.images["condition"]) == {"guidance 4, finished", "guidance 1, finished"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1_guidance1", "k1_guidance4",
                                                          "kinf_guidance4"]
    images = study.pictures("kinf", "sunset hat", "guidance 4, finished", seeds=[2, 1])
    assert len(images) == 2 and images[0].size == (32, 32)
    # The images are the models' own: a different model draws different noise.
    other = study.pictures("k1", "sunset hat", "guidance 4, finished", seeds=[1])[0]
    assert np.asarray(images[1]).tolist() != np.asarray(other).tolist()
    from dvdlib.chapters.data_diversity.figures import plot_samples

    grid = plot_samples(study, ["k1", "kinf"], ["sunset coaster", "sunset hat"],
                        "guidance 4, finished", [1, 2])
    assert [ax.get_ylabel() for ax in grid.axes[::2]] == ["k1", "kinf"]
    embedders = toy_pictures.toy_embedders(judge.detector, worlds["k1"], n_reference=10)
    study.images["concept_present"] = True  # as if the judge found the sunset everywhere
    drawn = toy_pictures.drawn_diversity(study, embedders, "guidance 4, finished")
    assert len(drawn) == 2 * 2 and (drawn["n"] == 1).all() and drawn["diversity"].isna().all()
    with pytest.raises(ValueError, match="must differ only in K"):
        toy_runs.run_study(plan, load, {"k1": worlds["k1"], "kinf": World(limited="ocean")}, judge,
                     tmp_path / "other", steps=1)
    with pytest.raises(ValueError, match="no world for model"):
        toy_runs.run_study([toy_runs.Run("k4", 4.0, (1,))], load, worlds, judge, tmp_path / "x", steps=1)


# --- the verdict ---------------------------------------------------------------------------------
def test_finding_1_needs_a_positive_control_before_its_interval_counts():
    dvds = {"k1": (7.8, 3.9, 12.3), "kinf": (9.5, 5.0, 14.0)}
    found = verdict.toy_verdict((-1.7, -8.0, 4.5), dvds)
    assert found.word == "not testable"
    assert "DvD interval above 20, but the highest is kinf's 9.5 [5.0, 14.0]" in found.reason
    strong = {"k1": (60.0, 45.0, 75.0), "kinf": (20.0, 10.0, 30.0)}
    assert verdict.toy_verdict((40, 20, 60), strong).word == "supported"
    assert verdict.toy_verdict((-40, -60, -20), strong).word == "contradicted"
    assert verdict.toy_verdict((5, -10, 20), strong).word == "inconclusive"
    assert "DvD(K = 1) - DvD(unlimited)" in verdict.toy_test().statement()
    assert verdict.real_verdict((-0.5, -0.8, -0.2), {"monet": (60.0, 45.0, 75.0)}).word == "supported"
    assert "Spearman" in verdict.real_test().statement()
    with pytest.raises(ValueError, match=r"positive_control_dvd must be in \[0, 100\), got 120"):
        verdict.check_criteria(120, 0.95)
    with pytest.raises(ValueError, match=r"positive_control_dvd must be a number in \[0, 100\)"):
        verdict.check_criteria(float("nan"), 0.95)
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        verdict.toy_verdict((1, 0, 2), strong, confidence=95)


# --- real models ---------------------------------------------------------------------------------
def test_solo_prompts_name_each_concept_once():
    prompts = builtin_prompts()
    solo = px.solo_prompts(prompts)
    assert len(solo) == prompts[["category", "concept"]].drop_duplicates().shape[0]
    van_gogh = solo[solo["concept"] == "van gogh"].iloc[0]
    assert van_gogh["prompt"] == "a painting by van gogh" and van_gogh["object"] == "van gogh"
    check_prompt_words(solo)
    with pytest.raises(ValueError, match="no concept-only template for categor.*landmark"):
        px.solo_prompts(prompts, templates={"artist": "{concept}", "character": "{concept}"})


def test_concept_dvd_averages_prompts_and_seeds_per_concept():
    images = pd.DataFrame({
        "category": "artist", "concept": ["monet"] * 4 + ["titian"] * 2,
        "case_num": [1, 1, 2, 2, 3, 3], "seed": [10, 20, 10, 20, 10, 20],
        "dvd_score": [100.0, 60.0, 20.0, 20.0, 0.0, 0.0]})
    table = px.concept_dvd(images, n_resamples=200).set_index("concept")
    assert table.loc["monet", "dvd"] == pytest.approx(50.0) and table.loc["monet", "n_prompts"] == 2
    assert table.loc["monet", "ci_low"] < 50 < table.loc["monet", "ci_high"]
    assert table.loc["titian", ["dvd", "ci_low", "ci_high"]].tolist() == [0.0, 0.0, 0.0]


def test_rank_correlation_over_concepts_leaves_out_unmeasured_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=40)
    rho, low, high = px.rank_correlation(a, a + rng.normal(scale=0.5, size=40), n_resamples=300)
    assert low < rho < high and rho > 0.5
    x, y = [0.1, 0.5, np.nan, 0.9, 0.7], [1.0, 5.0, 3.0, 9.0, np.nan]  # two concepts unmeasured
    assert px.rank_correlation(x, y, n_resamples=50)[0] == pytest.approx(1.0)
    assert all(np.isnan(v) for v in px.rank_correlation([1, 2, np.nan], [1, 2, 3]))  # 2 remain
    with pytest.raises(ValueError, match="one length"):
        px.rank_correlation([1, 2, 3], [1, 2])


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
    from dvdlib.models.random_weights import dummy_sd_pipeline

    prompts = builtin_prompts().iloc[[0, 21, 100, 101]].reset_index(drop=True)  # 3 concepts
    assert prompts["concept"].tolist()[:2] == ["amedeo modigliani"] * 2

    def embed(images):
        return dv.pixel_embeddings(images)

    study = px.run_concept_study(dummy_sd_pipeline("sd1"), "dummy", prompts, [1, 2], tmp_path,
                                 RedJudge(), embed, steps=1, guidance=7.5, n_resamples=100)
    assert len(study.images) == 4 * 2
    concepts = study.concepts.set_index("concept")
    assert set(concepts.index) == set(prompts["concept"])
    assert concepts.loc["amedeo modigliani", "n_prompts"] == 2
    assert concepts.loc["amedeo modigliani", "n_images"] == 4 and (concepts["n"] == 2).all()
    assert concepts["dvd"].between(0, 100).all() and concepts["diversity"].between(0, 2).all()
    assert concepts.loc["amedeo modigliani", "solo_prompt"] == "a painting by amedeo modigliani"
    assert len(list((tmp_path / "solo").glob("case*/seed*.png"))) == 3 * 2
    expected = study.images.groupby("concept")["dvd_score"].mean()
    np.testing.assert_allclose(concepts.loc[expected.index, "dvd"], expected)


# --- the chapter: one call opens it on a toy or a real model -----------------------------------
def test_open_study_checks_the_criteria_before_it_writes_anything(tmp_path, monkeypatch):
    from dvdlib.chapters.data_diversity.chapter import open_study

    monkeypatch.setenv("DVD_BUILD_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"positive_control_dvd must be in \[0, 100\), got 120"):
        open_study(positive_control_dvd=120)
    with pytest.raises(ValueError, match="is not a local folder"):
        open_study("nomodel")
    assert not (tmp_path / "chapters").exists()
    study = open_study(n_seeds=3)
    assert study.kind == "toy" and study.settings.steps == 20 and study.settings.n_seeds == 3
    assert study.test.measure == "DvD(K = 1) - DvD(unlimited), wrong carriers left out"
    assert study.settings.ceiling_margin == 5.0
    with pytest.raises(ValueError, match=r"ceiling_margin must be in \[0, 50\), got 60"):
        open_study(ceiling_margin=60)
    with pytest.raises(ValueError, match="n_training_batches must be an integer >= 1, got 0"):
        open_study(n_training_batches=0)
    assert study.setup.out == tmp_path / "chapters" / "02_data_diversity"


def test_the_real_model_path_runs_on_random_weights(tmp_path, monkeypatch, capsys):
    import json

    import open_clip
    from safetensors.torch import save_file

    from dvdlib.chapters.data_diversity.chapter import open_study
    from dvdlib.models.random_weights import dummy_sd_pipeline
    from dvdlib.stats import verdicts

    monkeypatch.setenv("DVD_BUILD_DIR", str(tmp_path / "build"))
    dummy_sd_pipeline("sd1").save_pretrained(tmp_path / "sd")
    clip_config = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32,
                                                     head_width=16, patch_size=8),
                       text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                                     layers=1))
    torch.manual_seed(0)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "open_clip_config.json").write_text(json.dumps({"model_cfg": clip_config}))
    save_file(open_clip.CLIP(**clip_config).state_dict(),
              str(tmp_path / "clip" / "open_clip_model.safetensors"))

    study = open_study(str(tmp_path / "sd"), device="cpu", n_seeds=2, steps=1, max_prompts=4,
                       judge="clip", judge_model=str(tmp_path / "clip"),
                       clip_model=str(tmp_path / "clip"), n_resamples=50)
    assert study.kind == "real" and study.settings.guidance == 7.5 and len(study.prompts) == 4
    study.measure_training(16)  # toy only: a note, nothing measured
    assert study.plot_by_model() is None and study.training_table() is None
    assert capsys.readouterr().out.count("Skipped") == 2  # one note per skipped part
    study.run_real_study()
    assert (study.setup.out / "sd" / "concepts.csv").is_file()
    assert set(study.concept_table()["concept"]) == set(study.prompts["concept"])
    assert study.plot_concepts() is not None
    values, texts = study.headline()
    assert values["n_concepts"] == len(study.concepts) and texts["verdict"] in verdicts.VERDICTS
    assert verdicts.check_headline({"values": values, "texts": texts}) == []
    assert study.numbers()["ch2_verdict"] == texts["verdict"]
