"""Chapter 2's analysis: the arms read from the zoo's run names, what an absent object shows, the
training data's close-up share against the generated one, comparisons that know the score's
ceiling, and verdicts decided again from the tables the chapter saves."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from dvdlib.chapters.data_diversity import amplification as amp
from dvdlib.chapters.data_diversity import arms, comparisons, outcomes, toy_results, toy_summary
from dvdlib.chapters.data_diversity import figures, verdict
from dvdlib.stats import verdicts
from dvdlib.toyworld.world import OBJECTS, PAIR, World
from dvdlib.toyworld.names import run_of

SETS = {"all objects": list(OBJECTS), "seen in training": ["coaster", "shirt", "notebook"],
        "never seen": ["hat", "kite"]}
DEFAULT, HIGH = "guidance 4, finished", "guidance 7.5, finished"


# --- the arms: every run of a level, read from the zoo's names ---------------------------------
def test_runs_are_grouped_into_arms_by_their_names():
    names = ["kinf-r2", "k1", "k16", "kinf", "k1-i2", "k4-r1", "k1-i1", "kinf-r1", "k4", "k1-i10"]
    assert arms.arm_runs(names) == {"K = 1": ["k1", "k1-i1", "k1-i2", "k1-i10"],
                                    "K = 4": ["k4", "k4-r1"], "K = 16": ["k16"],
                                    "unlimited": ["kinf", "kinf-r1", "kinf-r2"]}
    assert arms.parse_run("kinf-r2") == (None, 2) and arms.parse_run("k16") == (16, 0)
    for bad in ("kinf-r0", "k0", "base", "k4-x1", "kinf-r"):
        with pytest.raises(ValueError, match=re.escape(f"not a zoo model name: {bad!r}")):
            arms.parse_run(bad)
    with pytest.raises(ValueError, match=re.escape("'k1@500' is an EMA snapshot")):
        arms.parse_run("k1@500")
    with pytest.raises(ValueError, match="no runs"):
        arms.arm_runs([])
    with pytest.raises(ValueError, match="run 'k4-r1' is named for K = 4 but its world has K = 16"):
        arms.check_levels({"K = 4": ["k4-r1"]}, {"k4-r1": 16})


def _zoo_folder(folder, names):
    """A zoo folder whose manifest names ``names`` (finished runs) and their 500-step snapshots."""
    models = {}
    for name in names:
        level, number = arms.parse_run(name)
        # as export_zoo writes it: the training run beside K and the world
        entry = dict(instances=level, steps=1000, snapshot_of=None, run=run_of(name),
                     world=World(instances=level, instance_seed=number).to_dict())
        models[name] = entry
        models[f"{name}@500"] = dict(entry, steps=500, snapshot_of=name)
    folder.mkdir()
    (folder / "toyworld.json").write_text(json.dumps(
        {"models": models, "components": {}, "detector": {}}))
    return folder


def test_a_zoo_folder_gives_every_run_to_its_arm_and_new_runs_join_theirs(tmp_path):
    today = _zoo_folder(tmp_path / "today", ["k1", "k1-i1", "k4", "k16", "kinf"])
    assert arms.zoo_arms(today) == {"K = 1": ["k1", "k1-i1"], "K = 4": ["k4"], "K = 16": ["k16"],
                                    "unlimited": ["kinf"]}
    grown = _zoo_folder(tmp_path / "grown", ["k1", "k1-i1", "k4", "k4-r1", "k16", "kinf",
                                             "kinf-r1", "kinf-r2"])
    found = arms.zoo_arms(grown)
    assert found["unlimited"] == ["kinf", "kinf-r1", "kinf-r2"] and found["K = 4"] == ["k4", "k4-r1"]


# --- what an absent object shows ------------------------------------------------------------------
@pytest.mark.parametrize("present, concept, filled, carrier, other, expected", [
    (True, True, False, True, "", outcomes.PRESENT),
    (False, True, True, False, "", outcomes.FILLS),
    (False, False, True, False, "", outcomes.NOTHING),  # filled, but not by the concept
    (False, True, False, True, "", outcomes.WRONG),  # a carrier on the background
    (False, True, False, False, "shirt", outcomes.WRONG),  # another object found
    (False, False, True, False, "kite", outcomes.WRONG),
    (False, True, False, False, "", outcomes.NOTHING),
])
def test_every_absent_object_falls_in_one_outcome(present, concept, filled, carrier, other,
                                                  expected):
    assert outcomes.outcome(present, concept, filled, carrier, other) == expected


def test_the_verdicts_dvd_leaves_out_the_wrong_carriers_and_nothing_else():
    table = pd.DataFrame({"object_present": [False, False, False, True],
                          "concept_present": [True, True, False, True],
                          "frame_filled": [True, False, False, False],
                          "rule_object_present": [False, True, False, True],
                          "other_object": ["", "hat", None, ""],
                          "dvd_score": [100.0, 100.0, 0.0, 20.0]})
    kinds = outcomes.outcomes(table)
    assert kinds.tolist() == [outcomes.FILLS, outcomes.WRONG, outcomes.NOTHING, outcomes.PRESENT]
    kept = outcomes.dvd_without_wrong_carriers(table["dvd_score"], kinds)
    assert kept.isna().tolist() == [False, True, False, False]
    assert kept.mean() == pytest.approx(40.0)  # (100 + 0 + 20) / 3, the shirt left out
    assert outcomes.flags(kinds).sum().to_dict() == {"fills_frame": 1, "wrong_carrier": 1,
                                                     "nothing_recognisable": 1}
    with pytest.raises(KeyError, match="the table lacks other_object"):
        outcomes.outcomes(table.drop(columns="other_object"))


# --- the training data's close-ups ----------------------------------------------------------------
def test_the_training_pairs_are_the_scenes_the_fine_tune_draws():
    from dvdlib.toyworld.train import TrainConfig, scene_batches

    world = World(instances=1)
    config = TrainConfig(world=world.to_dict(), steps=3, batch_size=16, seed=5)
    rendered = list(scene_batches(world, config, 0, 3, ahead=False))
    pairs = amp.training_pairs(world, seed=5, batch_size=16, n_batches=3)
    expected = [(step, s.object.object, s.closeup) for step, batch in enumerate(rendered)
                for s in batch.scenes if s.object and s.concept and s.concept.concept == "sunset"]
    assert list(zip(pairs["step"], pairs["object"], pairs["closeup"])) == expected
    assert set(pairs["object"]) <= set(world.paired_objects)  # never printed on the hat, kite
    with pytest.raises(ValueError, match="n_batches must be an integer >= 1, got 0"):
        amp.training_pairs(world, 5, 16, 0)


def test_the_close_up_share_is_counted_and_the_pixel_rule_reads_it():
    runs = {"k1": (World(instances=1), 1, 32), "shut": (World(instances=1, closeup=0.0), 1, 32),
            "all": (World(closeup=1.0), 1, 32)}
    shares = amp.training_shares(runs, n_batches=20, n_checked=6, n_resamples=200).set_index("run")
    assert shares.loc["shut", "share"] == 0.0 and shares.loc["all", "share"] == 1.0
    assert 0.35 < shares.loc["k1", "share"] < 0.65  # the recipe's 0.5, counted in the data
    assert shares.loc["k1", "ci_low"] < shares.loc["k1", "share"] < shares.loc["k1", "ci_high"]
    assert (shares["rule_agreement"] == 1.0).all() and (shares["n_checked"] == 6).all()
    assert shares.loc["k1", "n_pictures"] > 20


def _pair_images(filled: dict[str, dict[str, float]], seeds=range(8),
                 condition=DEFAULT, guidance=4.0):
    """Pair images of each run with the concept filling the frame in the first share of seeds
    given per object set ("seen", "never")."""
    rows = []
    for run, share in filled.items():
        for obj in OBJECTS:
            kind = "seen" if obj in SETS["seen in training"] else "never"
            for seed in seeds:
                full = seed < share[kind] * len(seeds)
                rows.append(dict(base_model=run, object=obj, seed=seed, arrangement=PAIR,
                                 fills_frame=full, condition=condition, guidance=guidance,
                                 snapshot=np.nan))
    return pd.DataFrame(rows)


def test_amplification_is_the_generated_share_minus_each_runs_training_share():
    images = pd.concat([
        _pair_images({"k1": {"seen": 0.5, "never": 0.5}, "k1-i1": {"seen": 0.5, "never": 1.0},
                      "kinf": {"seen": 0.5, "never": 0.5}}, condition="guidance 1, finished",
                     guidance=1.0),
        _pair_images({"k1": {"seen": 1.0, "never": 1.0}, "k1-i1": {"seen": 1.0, "never": 1.0},
                      "kinf": {"seen": 0.75, "never": 1.0}}, condition=HIGH, guidance=7.5)])
    shares = pd.DataFrame({"run": ["k1", "k1-i1", "kinf"], "share": [0.5, 0.25, 0.5]})
    found = amp.amplification(images, shares, {"K = 1": ["k1", "k1-i1"], "unlimited": ["kinf"]},
                              SETS, n_resamples=200)
    at = found.set_index(["arm", "objects", "guidance"])
    low = at.loc[("K = 1", "seen in training", 1.0)]
    assert low["generated"] == 0.5 and low["training"] == pytest.approx(0.375)
    assert low["amplification"] == pytest.approx(0.125)  # (0.5 - 0.5 + 0.5 - 0.25) / 2
    never = at.loc[("K = 1", "never seen", 1.0)]
    assert never["generated"] == 0.75  # the runs differ: the interval counts the runs
    assert never["generated_low"] <= 0.5 < 0.75 < never["generated_high"] == 1.0
    high = at.loc[("unlimited", "all objects", 7.5)]
    assert high["generated"] == pytest.approx(0.85) and high["amplification"] == pytest.approx(0.35)
    assert list(found["arm"].unique()) == ["K = 1", "unlimited"] and set(found["n_runs"]) == {1, 2}
    printed = figures.amplification_table(found)
    assert printed.iloc[0]["generated - training"].startswith("+22 pp [")  # K = 1, guidance 1


# --- comparisons that know the ceiling, and the verdicts decided from the saved tables ----------
def _judged(levels: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Pair images whose DvD is 100 for the first share of seeds (per condition and run), the
    rest 0 with the object present."""
    rows = []
    for condition, per_run in levels.items():
        guidance = float(condition.split()[1].rstrip(","))
        for run, share in per_run.items():
            for obj in OBJECTS:
                for seed in range(10):
                    full = seed < share * 10
                    rows.append(dict(
                        condition=condition, guidance=guidance, snapshot=np.nan, base_model=run,
                        object=obj, seed=seed, arrangement=PAIR, dvd_score=100.0 * full,
                        dvd_no_wrong_carrier=100.0 * full, object_present=not full,
                        fills_frame=full, frame_filled=full, concept_present=True,
                        wrong_carrier=False, nothing_recognisable=False, concept_only=full,
                        K=1 if run.startswith("k1") else None))
    return pd.DataFrame(rows)


ARMS = {"K = 1": ["k1", "k1-i1"], "unlimited": ["kinf", "kinf-r1"]}


def _analysed(tmp_path=None):
    images = _judged({DEFAULT: {"k1": 1.0, "k1-i1": 0.9, "kinf": 0.3, "kinf-r1": 0.4},
                      HIGH: {"k1": 1.0, "k1-i1": 1.0, "kinf": 1.0, "kinf-r1": 1.0}})
    runs = [r for members in ARMS.values() for r in members]
    summary = toy_summary.summarise(images, {**{r: [r] for r in runs}, **ARMS}, SETS,
                                    measures=list(comparisons.PREDICTED), n_resamples=200)
    compared = comparisons.compare_arms(images, summary, ARMS, SETS, margin=5.0, n_resamples=200)
    found = comparisons.condition_verdicts(
        compared, summary, runs,
        lambda c: verdict.toy_test("sunset", 0.95, "" if c == DEFAULT else
                                   toy_results.condition_name(c)),
        first="K = 1", positive_control_dvd=20.0)
    return summary, compared, found, runs


def test_a_comparison_at_the_ceiling_is_not_testable_instead_of_a_zero_difference():
    summary, compared, found, _ = _analysed()
    at = compared.set_index(["condition", "objects", "measure"])
    high = at.loc[(HIGH, "all objects", "dvd")]
    assert high["estimate"] == 0.0 and not high["room_met"]
    assert toy_summary.reading(high) == \
        "not testable: unlimited is at the ceiling (100.0, ceiling 100.0)"
    default = at.loc[(DEFAULT, "all objects", "dvd")]
    assert default["room_met"] and toy_summary.reading(default).startswith("+60.0 [")
    assert found[DEFAULT].word == "supported"
    assert found[HIGH].word == "not testable" and "ceiling" in found[HIGH].reason
    assert found[HIGH].sentence.startswith("This run cannot test finding 1 at guidance 7.5")
    presence = at.loc[(HIGH, "all objects", "object_present")]  # predicted lower, at the floor
    assert not presence["room_met"] and "floor" in presence["room_found"]
    assert verdicts.room_left(summary.set_index(["condition", "group", "objects", "measure"]).loc[
        (DEFAULT, "unlimited", "all objects", "dvd"), "estimate"], "above") == pytest.approx(65.0)


def test_the_verdicts_are_decided_again_from_the_saved_tables(tmp_path):
    summary, compared, found, runs = _analysed()
    summary.to_csv(tmp_path / "summary.csv", index=False)
    compared.to_csv(tmp_path / "comparisons.csv", index=False)
    comparisons.verdict_table(found).to_csv(tmp_path / "verdicts.csv", index=False)
    saved = {name: pd.read_csv(tmp_path / f"{name}.csv") for name in
             ("summary", "comparisons", "verdicts")}
    again = comparisons.verdicts_from_table(saved["comparisons"], saved["summary"], runs,
                                            first="K = 1", positive_control_dvd=20.0)
    assert again == {c: v.word for c, v in found.items()}
    assert saved["verdicts"].set_index("condition")["verdict"].to_dict() == again
    # Without a positive control every condition is not testable, from the tables as well.
    assert set(comparisons.verdicts_from_table(saved["comparisons"], saved["summary"], runs,
                                               first="K = 1",
                                               positive_control_dvd=100.0).values()) == \
        {"not testable"}


def test_the_dose_response_says_when_the_order_of_k_is_not_monotone():
    assert comparisons.order_text({"K = 1": 87.3, "K = 4": 100.0, "K = 16": 98.3,
                                   "unlimited": 83.3}) == \
        (False, "K = 4 (100.0) > K = 16 (98.3) > K = 1 (87.3) > unlimited (83.3)")
    assert comparisons.order_text({"K = 1": 90.0, "K = 4": 90.0, "unlimited": 50.0})[0]
    summary, compared, _, _ = _analysed()
    table = comparisons.dose_table(summary, compared, DEFAULT, ARMS)
    assert table["arm"].tolist() == ["K = 1", "unlimited"] and table["runs"].tolist() == [2, 2]
    assert table.loc[0, "DvD minus unlimited"].startswith("+60.0")
    assert table.loc[1, "DvD minus unlimited"] == ""


def test_the_source_of_a_difference_names_the_larger_object_set():
    row = dict(estimate=9.0, ci_low=-0.4, ci_high=25.6, room_met=True, room_found="")
    seen = dict(row, estimate=0.6, ci_low=-5.0, ci_high=6.0)
    assert toy_results.source_text(seen, row).startswith(
        "mostly from the objects it never met: +9.0 [-0.4, +25.6] on the objects it never met "
        "against +0.6 [-5.0, +6.0]")
    assert toy_results.source_text(dict(seen, room_met=False), row).startswith("from no measurable")
    assert toy_results.condition_key("guidance 4, 500 steps") == "g4_at500"
    assert toy_results.condition_name("guidance 4, 500 steps") == \
        "guidance 4 after 500 fine-tuning steps"


# --- what the smoke chapter saved (scripts/test runs it first) ------------------------------------
@pytest.mark.after_notebooks
def test_the_chapters_verdicts_follow_from_its_saved_tables(saved_chapter):
    document, folder = saved_chapter("02_data_diversity", "comparisons.csv")
    summary = pd.read_csv(folder / "summary.csv")
    compared = pd.read_csv(folder / "comparisons.csv")
    runs = [g for g in summary["group"].unique() if re.fullmatch(r"k(\d+|inf)(-[ir]\d+)?", g)]
    again = comparisons.verdicts_from_table(compared, summary, runs, first="K = 1",
                                            positive_control_dvd=document["values"][
                                                "positive_control_dvd"])
    texts = document["texts"]
    assert texts["verdict"] == again[DEFAULT]
    if HIGH in again:
        assert texts["verdict_g7.5"] == again[HIGH]
    saved = pd.read_csv(folder / "verdicts.csv").set_index("condition")["verdict"].to_dict()
    assert saved == again
    assert verdicts.check_headline(document) == []


@pytest.mark.after_notebooks
def test_the_counts_in_the_headline_and_its_summary_agree(saved_chapter):
    document, folder = saved_chapter("02_data_diversity", "comparisons.csv")
    values, texts = document["values"], document["texts"]
    assert texts["interval_unit"] == "run and seed"
    counted = dict(re.findall(r"(K = \d+|unlimited): (\d+)", texts["summary"]))
    assert {arm: int(n) for arm, n in counted.items()} == {
        "K = 1": values["runs_k1"], "K = 4": values["runs_k4"], "K = 16": values["runs_k16"],
        "unlimited": values["unlimited_runs"]}
    summary = pd.read_csv(folder / "summary.csv")
    pooled = summary[(summary["measure"] == "dvd") & (summary["objects"] == "all objects")
                     & (summary["condition"] == DEFAULT)].set_index("group")["n_models"]
    assert pooled["unlimited"] == values["unlimited_runs"] and pooled["K = 1"] == values["runs_k1"]
    for g in ("1", "4", "7.5"):
        key = f"amplification_g{g}"
        assert values[f"{key}_low"] <= values[key] <= values[f"{key}_high"]
    assert values["ceiling_margin"] >= 0
