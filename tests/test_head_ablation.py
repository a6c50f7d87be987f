"""Head-ablation sweeps: conditions, the concept-token ablation, the statistics and a whole sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.attention.ablation import TokenValueAblation
from dvdlib.attention.layers import cross_attention_layers
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.shares import concept_share
from dvdlib.attention.token_positions import tokenize_prompt
from dvdlib.chapters.head_ablation import conditions, model_choice, quotes, run, summaries, verdict
from dvdlib.chapters.head_ablation import prompts as chapter_prompts
from dvdlib.models.random_weights import dummy_sd_pipeline
from dvdlib.models.spec import parse_model
from dvdlib.prompts.prompt_sets import PAPER_SEEDS, builtin_prompts
from dvdlib.scoring.judges.toy import ToyJudge
from dvdlib.stats import verdicts
from dvdlib.stats.bootstrap import bootstrap_ci, nested_bootstrap_ci
from dvdlib.toyworld.detector import PresenceDetector
from dvdlib.toyworld.pipeline import new_pipeline
from dvdlib.toyworld.world import World, prompt_table


@pytest.fixture(scope="module")
def toy_pipe():
    return new_pipeline(World().words, seed=0)


@pytest.fixture(scope="module")
def judge():
    torch.manual_seed(0)
    return ToyJudge(PresenceDetector().eval())


# --- conditions and orders -----------------------------------------------------------------------
def test_conditions_cover_every_head_and_nest(toy_pipe):
    layers = cross_attention_layers(toy_pipe.unet)
    singles = conditions.single_heads(layers)
    assert len(singles) == 28 == len({c.name for c in singles})
    assert {c.heads[0] for c in singles} == set(conditions.all_head_keys(layers))
    assert conditions.all_heads(layers).n_heads == 28
    order = conditions.random_orders(layers, 1, seed=3)[0]
    steps = conditions.cumulative(order, [3, 7, 14], "random", draw=0)
    assert [c.n_heads for c in steps] == [3, 7, 14]
    assert steps[1].heads[:3] == steps[0].heads and steps[2].heads[:7] == steps[1].heads
    assert steps[0].head_mask() == {label: [h for lab, h in order[:3] if lab == label]
                                    for label, _ in order[:3]}


def test_orders():
    layers = cross_attention_layers(new_pipeline(World().words).unet)
    a, b = conditions.random_orders(layers, 2, seed=5)
    assert sorted(a) == sorted(conditions.all_head_keys(layers)) and a != b
    assert conditions.random_orders(layers, 2, seed=5) == [a, b]
    table = pd.DataFrame({"layer_label": ["x", "x", "y", "y"], "head": [0, 1, 0, 1],
                          "concept_mass": [0.1, 0.3, 0.3, 0.2], "pair_share": [0.9, 0.1, 0.5, 0.6],
                          "word_share": [0.0, 0.0, 0.0, 0.0]})
    assert conditions.ranked_order(table) == [("x", 1), ("y", 0), ("y", 1), ("x", 0)]  # ties keep table order
    assert conditions.ranked_order(table, by="pair_share")[0] == ("x", 0)
    with pytest.raises(ValueError, match="accepted: concept_mass, pair_share, word_share"):
        conditions.ranked_order(table, by="mass")


def test_head_counts_and_condition_checks():
    assert conditions.head_counts(28, conditions.parse_fractions("0.1, 0.25,0.5,0.75")) == [3, 7, 14, 21]
    with pytest.raises(ValueError, match="comma-separated numbers"):
        conditions.parse_fractions("a quarter")
    assert conditions.head_counts(128, [0.001, 0.5, 0.999]) == [1, 64, 127]  # never 0, never all
    for bad in ([0.0], [1.0], []):
        with pytest.raises(ValueError, match="fractions"):
            conditions.head_counts(28, bad)
    with pytest.raises(ValueError, match="accepted: baseline, single head"):
        conditions.Condition("x", "one head", (("a", 0),))
    with pytest.raises(ValueError, match="needs heads"):
        conditions.Condition("x", "single head")
    with pytest.raises(ValueError, match="names a head twice"):
        conditions.Condition("x", "ranked", (("a", 0), ("a", 0)))
    with pytest.raises(ValueError, match="outside 1..2"):
        conditions.cumulative([("a", 0), ("a", 1)], [3])


def test_spread_prompts_takes_categories_in_turn():
    prompts = builtin_prompts()
    five = chapter_prompts.spread_prompts(prompts, 5)
    assert list(five["category"]) == ["artist", "artist", "landmark", "landmark", "character"]
    assert list(five["case_num"]) == [1, 2, 101, 102, 201]
    assert len(chapter_prompts.spread_prompts(prompts, 0)) == 300
    with pytest.raises(ValueError, match="n_prompts"):
        chapter_prompts.spread_prompts(prompts, -1)


# --- the concept-token ablation --------------------------------------------------------------------
def _reference_output(attn, hidden, text, zero_rows):
    """Cross-attention with diffusers' own maths, the value rows in ``zero_rows`` set to zero."""
    value = attn.to_v(text)
    for row, positions in zero_rows.items():
        value[row, positions] = 0
    query, key = attn.head_to_batch_dim(attn.to_q(hidden)), attn.head_to_batch_dim(attn.to_k(text))
    out = torch.bmm(attn.get_attention_scores(query, key), attn.head_to_batch_dim(value))
    return attn.to_out[0](attn.batch_to_head_dim(out))


def test_token_value_ablation_matches_a_reference_and_spares_the_unconditional_rows(toy_pipe):
    unet = toy_pipe.unet
    g = torch.Generator().manual_seed(0)
    with torch.no_grad(), attention_instruments(unet) as layers:
        layer = layers[3]
        attn = unet.get_submodule(layer.module_path)
        hidden = torch.randn(4, layer.query_positions, attn.to_q.in_features, generator=g)
        text = torch.randn(4, 77, attn.to_k.in_features, generator=g)
        ablation = TokenValueAblation([[2], [5, 6]], num_tokens=77)  # two images: rows 2 and 3
        ablated = attn(hidden, encoder_hidden_states=text, head_ablation=ablation)
        plain = attn(hidden, encoder_hidden_states=text)
        expected = _reference_output(attn, hidden, text, {2: [2], 3: [5, 6]})
        # Without guidance the same two images are rows 0 and 1.
        alone = attn(hidden[2:], encoder_hidden_states=text[2:], head_ablation=ablation)
        with pytest.raises(ValueError, match="expected 2 or 4 rows"):
            attn(hidden[:3], encoder_hidden_states=text[:3], head_ablation=ablation)
    assert torch.allclose(ablated, expected, atol=1e-5)
    assert torch.equal(ablated[:2], plain[:2])  # the unconditional half is untouched
    assert not torch.allclose(ablated[2:], plain[2:], atol=1e-4)
    assert torch.allclose(alone, ablated[2:], atol=1e-6)
    with pytest.raises(ValueError, match="outside 0..76"):
        TokenValueAblation([[77]], num_tokens=77)


# --- statistics --------------------------------------------------------------------------------
def _grid(values: np.ndarray, value: str = "v") -> pd.DataFrame:
    """A tidy table of ``values[prompt, seed]``."""
    prompt, seed = np.indices(values.shape)
    return pd.DataFrame({"case_num": prompt.ravel() + 1, "seed": seed.ravel(), value: values.ravel()})


def test_nested_bootstrap_resamples_prompts_then_seeds():
    rng = np.random.default_rng(0)
    assert nested_bootstrap_ci(_grid(np.full((5, 3), 7.0)), "v") == (7.0, 7.0)
    # Variation between prompts only: the interval of the prompt means, as a one-level bootstrap.
    between = np.repeat(rng.normal(size=(20, 1)), 4, axis=1)
    low, high = nested_bootstrap_ci(_grid(between), "v", n_resamples=4000)
    ref_low, ref_high = bootstrap_ci(between[:, 0], n_resamples=4000)
    assert low < between.mean() < high
    assert (high - low) == pytest.approx(ref_high - ref_low, rel=0.15)
    # Variation within prompts only (equal prompt means): the seeds' resampling still shows it.
    within = np.tile(rng.normal(size=(1, 6)), (8, 1))
    low, high = nested_bootstrap_ci(_grid(within), "v")
    assert high - low > 0.1
    assert nested_bootstrap_ci(_grid(within), "v", seed=1) == \
        nested_bootstrap_ci(_grid(within), "v", seed=1)
    with pytest.raises(ValueError, match="exactly one 'v' per"):
        nested_bootstrap_ci(_grid(within).iloc[1:], "v")


def _images(condition, family, dvd, concept=True, obj=False, share=0.6, n_heads=0):
    table = _grid(np.asarray(dvd, dtype=float), "dvd_score")
    return table.assign(condition=condition, family=family, label=condition, n_heads=n_heads, draw=-1,
                        concept_present=concept, object_present=obj, concept_share=share)


def test_summarise_pairs_each_image_with_its_baseline():
    rng = np.random.default_rng(1)
    base = rng.uniform(20, 80, size=(6, 4))
    images = pd.concat([
        _images("baseline", "baseline", base),
        _images("same", "single head", base, n_heads=1),
        _images("lower", "single head", base - 30, obj=True, n_heads=1),
    ])
    summary = summaries.summarise(images, n_resamples=500).set_index("condition")
    assert summary.loc["same", "dvd_score_change"] == 0
    assert tuple(summary.loc["same", ["dvd_score_change_low", "dvd_score_change_high"]]) == (0, 0)
    assert summary.loc["lower", "dvd_score_change"] == pytest.approx(-30)
    assert summary.loc["lower", "dvd_score_change_high"] == pytest.approx(-30)  # every image moved by 30
    assert summary.loc["lower", "object_present_change"] == 1.0
    assert summary.loc["lower", "dvd_outside"] and summary.loc["lower", "dvd_change_excludes_zero"]
    assert not summary.loc["same", "dvd_outside"] and not summary.loc["same", "dvd_change_excludes_zero"]
    low, high = summary.loc["baseline", ["dvd_score_low", "dvd_score_high"]]
    assert low < base.mean() < high
    with pytest.raises(ValueError, match="no baseline condition 'baseline'"):
        summaries.summarise(images[images["condition"] != "baseline"])


def test_curve_and_heads_to_halve():
    base = np.full((2, 2), 60.0)
    images = pd.concat([
        _images("baseline", "baseline", base),
        _images("ranked_003", "ranked", base - 20, n_heads=3),
        _images("ranked_007", "ranked", base - 35, n_heads=7),
        _images("all_heads", "all heads", base - 50, n_heads=28),
    ])
    curves = summaries.curve(summaries.summarise(images, n_resamples=50))
    assert list(curves["n_heads"]) == [0, 3, 7, 28] and set(curves["order"]) == {"ranked"}
    assert summaries.heads_to_halve(curves, 60.0, "ranked") == 7
    assert summaries.heads_to_halve(curves, 10.0, "ranked") is None


# --- whole sweeps --------------------------------------------------------------------------------
def test_sweep_on_the_toy_model(toy_pipe, judge, tmp_path):
    prompts = prompt_table(World(), ["coaster", "shirt"], controls=False)  # one word apart
    sweep = run.HeadSweep(toy_pipe, prompts, [1, 2], tmp_path, judge, model="toy:untrained", steps=2,
                          guidance=4.0)
    layers = sweep.layers
    tried = [conditions.baseline(), conditions.single_heads(layers)[5], conditions.all_heads(layers),
             conditions.concept_tokens()]
    result = sweep.run(tried)
    images, heads = result.images, result.heads
    assert len(images) == 4 * 4 and len(heads) == 4 * 4 * 28
    assert images["dvd_score"].between(0, 100).all() and images["concept_share"].between(0, 1).all()
    assert heads["concept_mass"].between(0, 1).all()

    def files(condition):
        rows = images[images["condition"] == condition].sort_values(["seed", "case_num"])
        return [(tmp_path / f).read_bytes() for f in rows["file"]]

    # With every head ablated the text reaches the UNet nowhere: both prompts give one image.
    everything = files("all_heads")
    assert everything[0] == everything[1] and everything[2] == everything[3]
    baseline_files = files("baseline")
    assert baseline_files[0] != baseline_files[1]
    assert files("concept_tokens") != baseline_files
    assert files(tried[1].name) != baseline_files
    assert result.condition(tried[1].name) == tried[1]
    with pytest.raises(KeyError, match="no condition 'head_x'"):
        result.condition("head_x")

    # The sweep's pooled share equals the chapter-3 measure (dvdlib.attention.shares) of a direct recording.
    prompt = prompts["prompt"].iloc[0]
    with attention_instruments(toy_pipe.unet) as instruments:
        record = AttentionRecord(instruments, 2, prompts=[tokenize_prompt(toy_pipe.tokenizer, prompt)])
        toy_pipe(prompt, num_inference_steps=2, guidance_scale=4.0,
                 generator=[torch.Generator().manual_seed(1)],
                 cross_attention_kwargs={"attention_record": record})
    direct = concept_share(record, "sunset", "coaster", tokenizer=toy_pipe.tokenizer)["pair_share"].mean()
    swept = images[(images["condition"] == "baseline") & (images["prompt"] == prompt) & (images["seed"] == 1)]
    assert swept["concept_share"].iloc[0] == pytest.approx(direct, abs=1e-4)

    # A finished condition is loaded, not redone; other settings redo it.
    done = tmp_path / "baseline" / "images.csv"
    stamp = done.stat().st_mtime_ns
    again = sweep.run([conditions.baseline()])
    assert done.stat().st_mtime_ns == stamp
    kept = images[images["condition"] == "baseline"].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.images, kept)
    fresh = sweep.with_seeds([7], tmp_path / "fresh").run([conditions.baseline()]).images
    assert list(fresh["seed"].unique()) == [7] and (tmp_path / "fresh" / "baseline" / "images.csv").is_file()
    mean_sweep = run.HeadSweep(toy_pipe, prompts, [1, 2], tmp_path, judge, model="toy:untrained",
                               steps=2, guidance=4.0, operator="mean")
    mean_sweep.run([tried[1]])
    assert (tmp_path / tried[1].name / "condition.json").read_text().count('"mean"') == 1
    with pytest.raises(ValueError, match="accepted: zero, mean, scale"):
        run.HeadSweep(toy_pipe, prompts, [1], tmp_path, judge, model="toy", steps=2, guidance=4.0,
                      operator="drop")


def test_sweep_on_a_stable_diffusion_layout(judge, tmp_path):
    pipe = dummy_sd_pipeline("sd2")  # 16 layers of 5, 10, 20 and 20 heads: uneven head counts
    prompts = prompt_table(World(), ["kite"], controls=False)
    sweep = run.HeadSweep(pipe, prompts, [3], tmp_path, judge, model="dummy-sd2", steps=2, guidance=7.5)
    assert sweep.total_heads == sum(layer.heads for layer in sweep.layers) > 16 * 5
    result = sweep.run([conditions.baseline(), conditions.single_heads(sweep.layers)[-1],
                        conditions.concept_tokens()])
    assert len(result.heads) == 3 * sweep.total_heads
    assert result.heads["concept_mass"].notna().all()
    attention = summaries.head_attention(result.heads)
    grid = summaries.head_grid(attention, sweep.layers, "concept_mass")
    assert grid.shape == (16, 20) and grid.notna().sum().sum() == sweep.total_heads


def _summary(single_dvds, ranked, all_heads, tokens, baseline=60.0):
    """A summary of one baseline, single heads, a ranked order {n: dvd}, all heads and the tokens."""
    base = np.full((3, 2), baseline)
    parts = [_images("baseline", "baseline", base),
             _images("all_heads", "all heads", base * 0 + all_heads, n_heads=28),
             _images("concept_tokens", "concept tokens", base * 0 + tokens)]
    parts += [_images(f"head_x_{i}", "single head", base * 0 + d, n_heads=1)
              for i, d in enumerate(single_dvds)]
    parts += [_images(f"ranked_{n:03d}", "ranked", base * 0 + d, n_heads=n) for n, d in ranked.items()]
    return summaries.summarise(pd.concat(parts), n_resamples=50)


def test_strongest_head_ties_go_to_the_first_head_everywhere():
    # Heads 1, 2 and 3 tie (DvD moves in steps with few images); an unstable sort may pick any.
    summary = _summary([58, 50, 50, 50] + [59] * 20, {7: 40}, all_heads=10, tokens=5)
    strongest = summaries.strongest_single_head(summary)
    assert strongest["condition"] == "head_x_1"
    assert verdict.findings(summary, total_heads=28).strongest == "head_x_1"
    with pytest.raises(ValueError, match="no single-head conditions"):
        summaries.strongest_single_head(summary[summary["family"] != "single head"])


def test_findings_verdicts():
    found = verdict.findings(_summary([58, 50], {7: 40, 14: 25}, all_heads=10, tokens=5), total_heads=28)
    assert found.verdict.word == "supported" and found.heads_to_halve_ranked == 14
    assert found.strongest == "head_x_1" and found.strongest_change == pytest.approx(-10)
    assert found.verdict.test.bound == pytest.approx(-30)  # half the baseline of 60
    assert found.outside_interval == 2 and found.heads_lowering == ("head_x_0", "head_x_1")
    assert found.heads_raising == () and (found.sets_lowering, found.sets_raising) == (4, 0)
    # One head removes more than half of the dominance: contradicted.
    assert verdict.findings(_summary([25], {7: 40}, 10, 5), 28).verdict.word == "contradicted"
    # Re-measured on fresh seeds, the strongest head decides: here its drop does not hold up.
    fresh = summaries.summarise(pd.concat([_images("baseline", "baseline", np.full((3, 2), 50.0)),
                                    _images("head_x_0", "single head", np.full((3, 2), 45.0), n_heads=1)]),
                         n_resamples=50)
    found = verdict.findings(_summary([25], {7: 40}, 10, 5), 28, confirmation=fresh)
    assert found.verdict.word == "supported" and "on fresh seeds" in found.verdict.test.measure
    assert (found.confirmed_baseline_dvd, found.confirmed_dvd, found.confirmed_change) == (50, 45, -5)
    # One prompt of three goes the other way on fresh seeds: the interval contains the bound.
    mixed = summaries.summarise(pd.concat([
        _images("baseline", "baseline", np.full((3, 2), 50.0)),
        _images("head_x_0", "single head", np.array([[0.0, 0.0], [0.0, 0.0], [60.0, 60.0]]), n_heads=1)]),
        n_resamples=500)
    found = verdict.findings(_summary([25], {7: 40}, 10, 5), 28, confirmation=mixed)
    assert found.verdict.word == "inconclusive"
    with pytest.raises(ValueError, match="strongest head 'head_x_1'"):
        verdict.findings(_summary([58, 50], {7: 40}, 10, 5), 28, confirmation=fresh)
    # No upper bound lowers DvD: the test could not see a removal.
    found = verdict.findings(_summary([58], {7: 50}, 60, 60), 28)
    assert found.verdict.word == "not testable" and "upper bound" in found.verdict.reason
    # No dominance in the baseline: nothing to remove, whatever the heads do.
    found = verdict.findings(_summary([0], {7: 0}, 0, 0, baseline=0.0), 28)
    assert found.verdict.word == "not testable" and "baseline's DvD is 0.0 [0.0, 0.0]" in found.verdict.reason
    with pytest.raises(ValueError, match="missing: concept_tokens"):
        summary = _summary([58], {7: 50}, 40, 45)
        verdict.findings(summary[summary["condition"] != "concept_tokens"], 28)


def test_findings_report_effects_in_both_directions():
    summary = _summary([58, 95, 60], {3: 80, 7: 40}, all_heads=10, tokens=5)
    found = verdict.findings(summary, 28)
    assert found.heads_raising == ("head_x_1",) and found.heads_lowering == ("head_x_0",)
    assert found.largest_label == "head_x_1" and found.largest_change == pytest.approx(35)  # signed
    assert found.strongest_label == "head_x_0" and found.verdict.word == "supported"
    assert (found.sets_raising, found.sets_lowering) == (1, 3)
    assert list(found.sets["direction"]) == ["lowers", "lowers", "raises", "lowers"]
    values, texts = verdict.headline(found)
    assert (values["heads_raising_dvd"], values["heads_lowering_dvd"]) == (1, 1)
    assert values["largest_single_head_change"] == pytest.approx(35) and texts["verdict"] == "supported"
    largest = quotes.effect_numbers(summary.set_index("condition").loc[found.largest], "largest")
    assert largest == {"largest_dvd": "95.0 [95.0, 95.0]", "largest_change": "+35.0 [+35.0, +35.0]",
                       "largest_direction": "raises", "largest_concept_present": 1.0,
                       "largest_object_present": 0.0}
    assert quotes.head_list(found.heads_raising) == "head_x_1"
    assert quotes.head_list(()) == "none"
    assert quotes.head_list([f"h{i}" for i in range(9)]) == "h0, h1, h2, h3, h4, h5 and 3 more"
    page = found.verdict.plain()  # the least a landing-page summary states
    assert verdicts.check_headline({"values": values, "texts": {**texts, "summary": page}}) == []


def test_the_chapter_numbers_quote_the_findings():
    summary = _summary([58, 95, 60], {3: 80, 7: 40}, all_heads=10, tokens=5)
    fresh = summaries.summarise(pd.concat([
        _images("baseline", "baseline", np.full((3, 2), 50.0)),
        _images("head_x_0", "single head", np.full((3, 2), 45.0), n_heads=1)]), n_resamples=50)
    found = verdict.findings(summary, 28, confirmation=fresh)
    attention = pd.DataFrame({"layer": [0, 0, 1], "layer_label": ["a", "a", "b"], "head": [0, 1, 0],
                              "concept_mass": [0.1, 0.3, 0.2], "word_mass": [0.5, 0.5, 0.8],
                              "pair_share": [0.4, 0.9, 0.6]})
    numbers = quotes.chapter_numbers(found, summary, attention, fresh, rank_by="concept_mass")
    assert numbers["top_head"] == "a:1" and numbers["top_head_value"] == pytest.approx(0.3)
    assert (numbers["pair_share_low"], numbers["pair_share_high"]) == (0.4, 0.9)
    assert numbers["concept_mass"] == pytest.approx(0.2) and numbers["other_mass"] == pytest.approx(0.35)
    assert (numbers["raising"], numbers["lowering"], numbers["changed"]) == (1, 1, 2)
    assert numbers["strongest_change"] == "-2.0 [-2.0, -2.0]"
    assert numbers["fresh_change"] == "-5.0 [-5.0, -5.0]" and numbers["fresh_images"] == 6
    assert numbers["fresh_baseline_dvd"] == "50.0 [50.0, 50.0]" and "fresh_baseline_change" not in numbers
    assert (numbers["halve_ranked"], numbers["halve_random"]) == ("28", "none")  # all heads halve it
    assert (numbers["sets"], numbers["sets_raising"], numbers["sets_lowering"]) == (2, 1, 1)
    assert numbers["all_heads_direction"] == "lowers" and numbers["verdict"] == "supported"
    assert numbers["chance_flags"] == pytest.approx(0.15) and numbers["level"] == "95 %"
    # Glued values are plain Python numbers and strings: the page formats them itself.
    assert all(type(value) in (int, float, str) for value in numbers.values())


@pytest.mark.parametrize("criteria, message", [
    (dict(removal_fraction=0), r"removal_fraction must be in \(0, 1\], got 0"),
    (dict(removal_fraction=1.5), r"removal_fraction must be in \(0, 1\], got 1.5"),
    (dict(confidence=1), r"confidence must be in \(0, 1\), got 1"),
    (dict(min_baseline_dvd=-5), r"min_baseline_dvd must be in \[0, 100\), got -5"),
])
def test_findings_criteria_are_checked(criteria, message):
    with pytest.raises(ValueError, match=message):
        verdict.findings(_summary([58], {7: 50}, 10, 5), 28, **criteria)
    with pytest.raises(ValueError, match=message):
        verdict.check_criteria(**{"removal_fraction": 0.5, "min_baseline_dvd": 0.0, "confidence": 0.95,
                                  **criteria})


def test_the_chapter_prompts_and_the_rule_that_picks_its_model():
    world = World(instances=1)
    assert chapter_prompts.toy_prompts(world)["prompt"].tolist() == ["sunset coaster", "sunset shirt",
                                                                     "sunset notebook"]
    assert chapter_prompts.toy_prompts(world, "unseen")["prompt"].tolist() == ["sunset hat", "sunset kite"]
    assert len(chapter_prompts.toy_prompts(world, "all")) == 5
    with pytest.raises(ValueError, match="objects must be one of seen, unseen, all, got 'some'"):
        chapter_prompts.toy_prompts(world, "some")
    survey = pd.DataFrame(
        [(model, "1" if model == "k1" else "unlimited", obj, obj in world.paired_objects, 8, dvd, 0.9, 0.2)
         for model, seen_dvd, unseen_dvd in (("k1", 50.0, 90.0), ("kinf", 60.0, 10.0))
         for obj, dvd in (("coaster", seen_dvd), ("hat", unseen_dvd))],
        columns=["model", "K", "object", "paired_in_training", "images", "dvd_score",
                 "concept_present", "object_present"])
    # the least diverse model (listed first) with enough dominance on the chosen objects
    assert model_choice.model_to_ablate(survey) == "k1"  # seen: k1 50 >= 40
    assert model_choice.model_to_ablate(survey, enough=55.0) == "kinf"  # k1's 50 is not enough, kinf's 60 is
    assert model_choice.model_to_ablate(survey, "unseen", enough=95.0) == "k1"  # none reaches it: the most
    assert model_choice.model_to_ablate(survey, "all", enough=60.0) == "k1"  # k1 70, kinf 35
    assert model_choice.survey_seeds(3) == [10001, 10002, 10003]
    assert not set(model_choice.survey_seeds(10)) & set(range(1, 10_001))  # never a seed of the sweep
    with pytest.raises(ValueError, match=r"the sweep's seeds \[10002\] are the survey's own"):
        model_choice.survey_seeds(3, apart_from=[1825, 10002])
    means = model_choice.survey_means(survey).set_index(["model", "objects"])
    assert means.loc[("k1", "seen"), "dvd_score"] == 50.0
    assert means.loc[("kinf", "unseen"), "K"] == "unlimited"
    assert model_choice.survey_means(None) is None
    assert quotes.survey_numbers(survey, "seen") == {"chosen": "k1", "enough": 40.0, "objects": "seen"}
    assert quotes.survey_numbers(None, "seen")["chosen"] == "not run"


def test_the_chapter_decides_its_prompts_and_seeds_from_the_model():
    toy = chapter_prompts.chapter_prompts(parse_model("toy:k1"), objects="unseen")
    assert toy["prompt"].tolist() == ["sunset hat", "sunset kite"]
    assert list(chapter_prompts.shown_prompts(toy).columns) == list(chapter_prompts.TOY_COLUMNS)
    assert chapter_prompts.concept_word(toy) == "sunset"
    real = chapter_prompts.chapter_prompts(parse_model("sd1.4"), objects="ignored", n_prompts=5)
    assert list(real["case_num"]) == [1, 2, 101, 102, 201]
    assert chapter_prompts.shown_prompts(real) is real
    assert chapter_prompts.concept_word(real) == "dominant concept"
    assert run.confirmation_seeds(3) == [1, 2, 3]
    assert not set(run.confirmation_seeds(10)) & set(PAPER_SEEDS)
    with pytest.raises(ValueError, match="confirm_seeds must be a positive integer, got 0"):
        run.confirmation_seeds(0)


def test_the_grid_of_many_heads_matches_its_parts(toy_pipe):
    layers = cross_attention_layers(toy_pipe.unet)
    order = conditions.all_head_keys(layers)[::-1]
    grid = conditions.many_heads(order, layers, [3, 14], n_random_orders=2)
    assert [c.name for c in grid] == ["ranked_003", "ranked_014", "all_heads", "random0_003",
                                      "random0_014", "random1_003", "random1_014"]
    assert grid[:2] == conditions.cumulative(order, [3, 14])
    assert grid[3:5] == conditions.cumulative(conditions.random_orders(layers, 1)[0], [3, 14],
                                              "random", 0)
