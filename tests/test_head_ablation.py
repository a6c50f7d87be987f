"""Head-ablation sweeps: conditions, the concept-token ablation, the statistics and a whole sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.attention.ablation import ScaledTokenValueAblation, TokenValueAblation
from dvdlib.attention.layers import cross_attention_layers
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.shares import concept_share
from dvdlib.attention.token_positions import tokenize_prompt
from dvdlib.chapters.head_ablation import (conditions, leakage, model_choice, quotes, rescue,
                                          run, summaries, verdict)
from dvdlib.chapters.head_ablation import prompts as chapter_prompts
from dvdlib.models.random_weights import dummy_sd_pipeline, dummy_sdxl_pipeline
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
    routes = conditions.concept_routes([0.0, 0.5])
    assert [(c.name, c.scale, c.describe()) for c in routes] == [
        ("route_x0.00", 0.0, "concept, end and padding tokens x0"),
        ("route_x0.50", 0.5, "concept, end and padding tokens x0.5")]
    for bad in ([1.5], [0.5, 0.5], [], [float("nan")]):
        with pytest.raises(ValueError, match=r"in \[0, 1\]"):
            conditions.concept_routes(bad)
    with pytest.raises(ValueError, match="a scale is given with a 'concept route' condition only"):
        conditions.Condition("x", "concept tokens", scale=0.5)
    with pytest.raises(ValueError, match="comma-separated numbers"):
        conditions.parse_fractions("0.5,nan")


def test_a_whole_layer(toy_pipe):
    layers = cross_attention_layers(toy_pipe.unet)
    layer = conditions.whole_layer(layers, layers[3].label)
    assert layer.heads == tuple((layers[3].label, h) for h in range(4))
    assert layer.describe() == f"layer {layers[3].label} (all 4 heads)"
    assert conditions.layer_sets(layers, None) == [] and conditions.layer_sets(
        layers, layers[3].label) == [layer]
    with pytest.raises(ValueError, match="no layer 'up.9'"):
        conditions.whole_layer(layers, "up.9")


def test_spread_prompts_takes_categories_in_turn():
    prompts = builtin_prompts()
    five = chapter_prompts.spread_prompts(prompts, 5)
    assert list(five["category"]) == ["artist", "artist", "landmark", "landmark", "character"]
    assert list(five["case_num"]) == [1, 2, 101, 102, 201]
    assert len(chapter_prompts.spread_prompts(prompts, 0)) == 300
    with pytest.raises(ValueError, match="n_prompts"):
        chapter_prompts.spread_prompts(prompts, -1)


# --- the concept-token ablation --------------------------------------------------------------------
def _reference_output(attn, hidden, text, zero_rows, scale=0.0):
    """Cross-attention with diffusers' own maths, the value rows in ``zero_rows`` multiplied by
    ``scale`` (zero by default)."""
    value = attn.to_v(text)
    for row, positions in zero_rows.items():
        value[row, positions] = value[row, positions] * scale
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


def test_scaled_token_value_ablation_scales_the_chosen_rows(toy_pipe):
    unet = toy_pipe.unet
    g = torch.Generator().manual_seed(2)
    with torch.no_grad(), attention_instruments(unet) as layers:
        attn = unet.get_submodule(layers[2].module_path)
        hidden = torch.randn(2, layers[2].query_positions, attn.to_q.in_features, generator=g)
        text = torch.randn(2, 8, attn.to_k.in_features, generator=g)

        def out(ablation):
            return attn(hidden, encoder_hidden_states=text, head_ablation=ablation)

        halved = out(ScaledTokenValueAblation([[1, 3]], num_tokens=8, factor=0.5))
        removed = out(ScaledTokenValueAblation([[1, 3]], num_tokens=8, factor=0.0))
        kept = out(ScaledTokenValueAblation([[1, 3]], num_tokens=8, factor=1.0))
        expected = _reference_output(attn, hidden, text, {1: [1, 3]}, scale=0.5)
        zeroed = out(TokenValueAblation([[1, 3]], num_tokens=8))
        plain = attn(hidden, encoder_hidden_states=text)
    assert torch.allclose(halved, expected, atol=1e-5)
    assert torch.equal(removed, zeroed) and torch.equal(kept, plain)
    assert torch.equal(halved[:1], plain[:1])  # the unconditional row is untouched
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="factor must be a finite number"):
            ScaledTokenValueAblation([[1]], num_tokens=8, factor=bad)


def test_the_concept_imprint_follows_the_causal_text_encoder(toy_pipe):
    encoder = toy_pipe.text_encoder
    # Positions: start, sunset, coaster, end, 4 x padding.
    imprint = leakage.concept_imprint(toy_pipe, "sunset coaster", [1])
    assert imprint.shape == (8,) and imprint[0] == 0.0  # the start token never reads the concept
    assert (imprint[1:] > 0.01).all()  # the object, end and padding tokens carry it
    later = leakage.concept_imprint(toy_pipe, "sunset coaster", [2])
    assert (later[:2] == 0.0).all() and (later[2:] > 0.01).all()
    assert not encoder.get_input_embeddings()._forward_hooks  # the hook is gone
    ids = torch.tensor([tokenize_prompt(toy_pipe.tokenizer, "sunset coaster").ids])
    with pytest.raises(ValueError, match="2 position list"), torch.no_grad():
        with leakage.blanked_tokens(encoder, [[1], [1]]):
            encoder(ids)
    assert not encoder.get_input_embeddings()._forward_hooks  # gone after an error too
    for bad in ([8], [], [True]):
        with pytest.raises(ValueError, match=r"positions must be a non-empty list .* 0..7"):
            leakage.concept_imprint(toy_pipe, "sunset coaster", bad)


def test_the_imprint_table_labels_every_position(toy_pipe):
    prompts = prompt_table(World(), ["coaster", "shirt"], controls=False)
    table = leakage.imprint_table(toy_pipe, prompts)
    assert len(table) == 2 * 8
    first = table[table["case_num"] == prompts["case_num"].iloc[0]]
    assert list(first["kind"]) == ["start", "concept", "object", "end"] + ["padding"] * 4
    assert (first["imprint"].iloc[0] == 0.0) and (first["imprint"].iloc[1:] > 0).all()


def _no_embedding_hooks(pipe) -> bool:
    encoders = [getattr(pipe, name, None) for name in ("text_encoder", "text_encoder_2",
                                                        "text_encoder_3")]
    return not any(m._forward_hooks for e in encoders if e is not None for m in e.modules()
                   if isinstance(m, torch.nn.Embedding))


def test_sdxl_imprint_blanks_the_concept_in_both_clip_encoders():
    pipe = dummy_sdxl_pipeline()
    prompt = "sunset coaster"  # start, sunset, coaster, end, padding
    imprint = leakage.concept_imprint(pipe, prompt, [1])
    assert imprint.shape == (77,) and imprint[0] == 0.0 and (imprint[1:] > 0).all()
    with torch.no_grad():
        full = leakage.key_states(pipe, prompt).float()  # [key, 32 + 32]: CLIP-L beside CLIP-G
        with leakage.blanked_tokens(pipe.text_encoder, [[1]]):
            first_only = leakage.key_states(pipe, prompt).float()
    assert full.shape == (77, 64)
    # The second encoder's half changes too: blanking the first alone leaves it as it was.
    torch.testing.assert_close(first_only[:, 32:], full[:, 32:])
    change = (full - first_only).norm(dim=-1) / full.norm(dim=-1)
    assert (imprint[2:] > change[2:].numpy() + 1e-4).all()
    assert _no_embedding_hooks(pipe)


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_sd3_and_flux_imprint_tables_cover_every_text_key_of_each_encoder(family):
    from dvdlib.models.random_mmdit import tiny_mmdit_pipeline

    pipe = tiny_mmdit_pipeline(family)
    prompts = prompt_table(World(), ["kite"], controls=False)  # "sunset kite"
    table = leakage.imprint_table(pipe, prompts)
    # SD3: the CLIP block, then T5 (the call's default 256 positions); Flux: T5 only (512)
    clip, t5_length = (77, 256) if family == "sd3" else (0, 512)
    assert len(table) == clip + t5_length and table["imprint"].notna().all()
    t5 = table.iloc[clip:]
    assert list(t5["kind"][:2]) == ["concept", "object"]
    # T5 reads both ways and SD3/Flux pass no mask to it: every key of its block carries the
    # concept, which only blanking T5's own input can show.
    assert (t5["imprint"] > 0).all()
    if family == "sd3":
        block = table.iloc[:clip]
        assert list(block["kind"][:3]) == ["start", "concept", "object"]
        assert block["imprint"].iloc[0] == 0.0 and (block["imprint"].iloc[1:] > 0).all()
    assert _no_embedding_hooks(pipe)


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
             conditions.concept_tokens(), *conditions.concept_routes([0.0, 1.0])]
    result = sweep.run(tried)
    images, heads = result.images, result.heads
    assert len(images) == 6 * 4 and len(heads) == 6 * 4 * 28
    assert images["dvd_score"].between(0, 100).all() and images["concept_share"].between(0, 1).all()
    assert heads["concept_mass"].between(0, 1).all() and heads["padding_mass"].between(0, 1).all()
    kinds = leakage.attention_by_kind(heads, ["baseline", "concept_tokens"])
    assert kinds.groupby("condition")["attention"].sum().to_numpy() == pytest.approx([1, 1])
    assert (kinds["attention"] >= -1e-6).all()
    leak = leakage.leak_table(heads, leakage.imprint_table(toy_pipe, prompts))
    assert list(leak["kind"]) == ["start", "concept", "object", "end", "padding"]

    def files(condition):
        rows = images[images["condition"] == condition].sort_values(["seed", "case_num"])
        return [(tmp_path / f).read_bytes() for f in rows["file"]]

    # With every head ablated the text reaches the UNet nowhere: both prompts give one image.
    everything = files("all_heads")
    assert everything[0] == everything[1] and everything[2] == everything[3]
    baseline_files = files("baseline")
    assert baseline_files[0] != baseline_files[1]
    assert files("concept_tokens") != baseline_files
    assert files("route_x1.00") == baseline_files  # values x1: nothing changes
    assert files("route_x0.00") != baseline_files
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


def _side(condition, family, concept, obj, dvd=None, n_heads=0, seeds=4, prompts=3):
    """Images of one condition whose presence is ``concept`` / ``obj`` ([prompt, seed] arrays or
    fractions of the seeds, first seeds present) and whose DvD follows them."""
    def grid(value):
        if np.ndim(value) == 2:
            return np.asarray(value, dtype=bool)
        return np.tile(np.arange(seeds) < round(value * seeds), (prompts, 1))
    c, o = grid(concept), grid(obj)
    table = _images(condition, family, np.where(c & ~o, 100.0, 0.0) if dvd is None else
                    np.full(c.shape, float(dvd)), n_heads=n_heads)
    return table.assign(concept_present=c.ravel(), object_present=o.ravel())


def _rescue_summary(singles, sets=(), controls=None, baseline=(1.0, 0.0), seeds=4):
    """A summary: the baseline (concept, object presence), single heads, head sets, every head,
    the concept's tokens and one concept route per ``controls`` entry, each given as (concept,
    object) presence (fractions of the seeds)."""
    controls = {"route_x0.00": (0.0, 1.0), "route_x0.50": (1.0, 1.0)} if controls is None \
        else controls
    parts = [_side("baseline", "baseline", *baseline, seeds=seeds),
             _side("all_heads", "all heads", 0.0, 0.0, n_heads=28, seeds=seeds),
             _side("concept_tokens", "concept tokens", *baseline, seeds=seeds)]
    parts += [_side(f"head_x_{i}", "single head", *sides, n_heads=1, seeds=seeds)
              for i, sides in enumerate(singles)]
    parts += [_side(f"ranked_{i + 2:03d}", "ranked", *sides, n_heads=i + 2, seeds=seeds)
              for i, sides in enumerate(sets)]
    parts += [_side(name, "concept route", *sides, seeds=seeds) for name, sides in controls.items()]
    images = pd.concat(parts)
    images["label"] = [f"head l{c[-1]}:0" if f == "single head" else c
                       for c, f in zip(images["condition"], images["family"])]
    return summaries.summarise(images, n_resamples=300)


def test_seed_intervals_draw_every_image_of_a_seed_together():
    # The seed decides the outcome for every prompt: 10 prompts x 4 seeds are 4 units, not 40.
    by_seed = np.array([0.0, 0.0, 1.0, 1.0])
    table = _grid(np.tile(by_seed, (10, 1)))
    low, high = summaries.seed_interval(table, "v", n_resamples=4000)
    ref_low, ref_high = bootstrap_ci(by_seed, n_resamples=4000)
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=0.03)
    images_low, images_high = bootstrap_ci(table["v"].to_numpy(), n_resamples=4000)
    assert high - low > 2 * (images_high - images_low)  # resampling images is far too narrow
    assert np.isnan(summaries.seed_interval(table[table["seed"] == 0], "v")).all()  # one seed


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
    assert summary.loc["lower", "dvd_score_change_high"] == pytest.approx(-30)  # every image moved
    assert summary.loc["lower", "object_present_change"] == 1.0
    assert summary.loc["lower", "dvd_outside"] and summary.loc["lower", "dvd_change_excludes_zero"]
    assert not summary.loc["same", "dvd_outside"]
    assert not summary.loc["same", "dvd_change_excludes_zero"]
    assert (summary["n_seeds"] == 4).all() and (summary["n_images"] == 24).all()
    low, high = summary.loc["baseline", ["dvd_score_low", "dvd_score_high"]]
    assert low < base.mean() < high
    with pytest.raises(ValueError, match="no baseline condition 'baseline'"):
        summaries.summarise(images[images["condition"] != "baseline"])


def test_rescue_outcomes_on_a_synthetic_table():
    # Baseline: concept in every image, object in none; the bound is half of the missing 100 %.
    summary = _rescue_summary([(1.0, 1.0), (1.0, 0.25), (0.0, 1.0), (1.0, 0.0),
                               ([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]], 1.0)])
    table = rescue.classify(summary, "baseline", 0.5, 0.1).set_index("condition")
    assert set(table["rescue_bound"]) == {0.5} and "baseline" not in table.index
    assert list(table.loc[[f"head_x_{i}" for i in range(5)], "outcome"]) == [
        "rescues", "no rescue", "deletes the concept", "no rescue", "object up, concept unclear"]
    assert table.loc["head_x_4", "concept_kept"] == "unclear"  # one prompt loses it
    assert table.loc["route_x0.50", "outcome"] == "rescues"
    assert table.loc["route_x0.00", "outcome"] == "deletes the concept"  # the DvD drop is no rescue
    assert table.loc["all_heads", "outcome"] == "deletes the concept"
    # Short of a rescue: one prompt of three gets its object back, for every seed: a gain of a
    # third, sure to be above 0 and sure to be below the bound of one half.
    short = _rescue_summary([(1.0, [[1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]),
                             (1.0, [[0, 1, 0, 0]] * 3)])
    short_table = rescue.classify(short, "baseline", 0.5, 0.1).set_index("condition")
    assert short_table.loc["head_x_0", "outcome"] == "object up, short of a rescue"
    assert short_table.loc["head_x_1", "outcome"] == "no rescue"  # one seed of four: low end 0
    # The bound uses the baseline of the table it classifies: the same seeds.
    assert rescue.rescue_bound(0.25, 0.5) == pytest.approx(0.375)
    with pytest.raises(ValueError, match=r"concept_margin must be in \[0, 1\), got 1.5"):
        rescue.classify(summary, "baseline", 0.5, 1.5)
    with pytest.raises(ValueError, match="no baseline 'base'"):
        rescue.classify(summary, "base", 0.5, 0.1)


def test_the_candidate_head_and_the_positive_control_are_chosen_by_rescue():
    summary = _rescue_summary([(1.0, 0.5), (0.0, 1.0), (1.0, 0.75)])
    table = rescue.classify(summary, "baseline", 0.5, 0.1)
    # Head 1 brings back the most objects but deletes the concept: head 2 is the candidate.
    assert rescue.candidate_head(table)["condition"] == "head_x_2"
    assert rescue.positive_control(table, ("concept route",))["condition"] == "route_x0.50"
    none = rescue.classify(_rescue_summary([(1.0, 0.0)], controls={"route_x0.00": (0.0, 1.0),
                                                                   "route_x0.50": (1.0, 0.25)}),
                           "baseline", 0.5, 0.1)
    # No control rescues: the largest gain with the concept kept.
    assert rescue.positive_control(none, ("concept route",))["condition"] == "route_x0.50"
    with pytest.raises(ValueError, match="no condition of layer"):
        rescue.positive_control(none, ("layer",))


def test_the_largest_drops_and_their_layer():
    summary = _rescue_summary([(1.0, 0.0)] * 3)
    summary.loc[summary["condition"] == "head_x_1", ["dvd_score_change", "label"]] = [-20, "head up.1:0"]
    summary.loc[summary["condition"] == "head_x_2", ["dvd_score_change", "label"]] = [-10, "head up.1:2"]
    top, layer = rescue.largest_effects(summary)
    assert list(top["condition"]) == ["head_x_1", "head_x_2"] and layer == "up.1"
    summary.loc[summary["condition"] == "head_x_2", "label"] = "head down.0:1"
    assert rescue.largest_effects(summary)[1] is None
    summary.loc[summary["condition"] == "head_x_2", "dvd_score_change"] = 0.0  # not a drop
    top, layer = rescue.largest_effects(summary)
    assert list(top["condition"]) == ["head_x_1"] and layer is None


def _fresh(candidate="head_x_2", control="route_x0.50", head=(1.0, 0.0), route=(1.0, 1.0),
           baseline=(1.0, 0.0)):
    images = pd.concat([_side("baseline", "baseline", *baseline),
                        _side(candidate, "single head", *head, n_heads=1),
                        _side(control, "concept route", *route)])
    return summaries.summarise(images, n_resamples=300)


def test_findings_verdicts():
    summary = _rescue_summary([(1.0, 0.0), (0.0, 1.0), (1.0, 0.25)], sets=[(1.0, 1.0), (1.0, 0.0)])
    found = verdict.findings(summary, 28, confirmation=_fresh())
    assert found.candidate == "head_x_2" and found.control == "route_x0.50" and found.confirmed
    assert found.verdict.word == "supported" and found.verdict.test.side == "below"
    assert found.verdict.test.bound == pytest.approx(50)  # half the fresh baseline's missing 100 %
    assert "on fresh seeds" in found.verdict.test.measure
    assert found.single_heads_where(["rescues"]) == () and found.sets_where(["rescues"]) == 1
    assert found.single_heads_where(["deletes the concept"]) == ("l1:0",)
    # The head rescues on the fresh seeds: contradicted.
    found = verdict.findings(summary, 28, confirmation=_fresh(head=(1.0, 1.0)))
    assert found.verdict.word == "contradicted"
    # The bound comes from the seeds of the change: a fresh baseline that lacks the object in one
    # prompt of three has a bound of a sixth (not the chapter baseline's half), and a head that
    # brings back that prompt's object on every fresh seed rescues it.
    two_of_three = [[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    fresh = _fresh(head=(1.0, 1.0), baseline=(1.0, two_of_three))
    found = verdict.findings(summary, 28, confirmation=fresh)
    assert found.verdict.test.bound == pytest.approx(100 / 6)
    assert found.verdict.word == "contradicted"
    # Half the seeds bring the object back, half do not: the interval contains the bound.
    mixed = _fresh(head=(1.0, [[1, 1, 0, 0]] * 3))
    assert verdict.findings(summary, 28, confirmation=mixed).verdict.word == "inconclusive"
    # No positive control rescues on the fresh seeds: the test could not see a rescue.
    found = verdict.findings(summary, 28, confirmation=_fresh(route=(0.0, 1.0)))
    assert found.verdict.word == "not testable" and "positive control" in found.verdict.reason
    assert not found.control_rescues and not found.control_concept_kept
    # The head deletes the concept on the fresh seeds: its gain is no rescue.
    found = verdict.findings(summary, 28, confirmation=_fresh(head=(0.0, 1.0)))
    assert found.verdict.word == "not testable" and "keep the concept" in found.verdict.reason
    # Every object present in the fresh baseline: nothing to bring back.
    found = verdict.findings(summary, 28, confirmation=_fresh(baseline=(1.0, 1.0)))
    assert found.verdict.word == "not testable" and "objects to bring back" in found.verdict.reason
    # No dominance in the baseline.
    found = verdict.findings(_rescue_summary([(1.0, 0.0)], baseline=(0.0, 0.0)), 28)
    assert found.verdict.word == "not testable" and "dominance to undo" in found.verdict.reason
    # Without a confirmation, the chapter's own seeds decide, against their own bound.
    found = verdict.findings(summary, 28)
    assert not found.confirmed and "on the same seeds" in found.verdict.test.measure
    with pytest.raises(ValueError, match="lacks 'route_x0.50'"):
        verdict.findings(summary, 28, confirmation=_fresh(control="route_x0.00"))
    with pytest.raises(ValueError, match="missing: concept_tokens"):
        verdict.findings(summary[summary["condition"] != "concept_tokens"], 28)
    with pytest.raises(ValueError, match="missing: concept route"):
        verdict.findings(summary[summary["family"] != "concept route"], 28)


def test_one_seed_gives_no_interval_and_no_verdict():
    summary = _rescue_summary([(1.0, 0.0), (1.0, 1.0)], seeds=1)
    assert summary["dvd_score_low"].isna().all()
    found = verdict.findings(summary, 28)
    assert found.verdict.word == "not testable"


def test_headline_and_text_counts_agree():
    summary = _rescue_summary([(1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.5)],
                              sets=[(1.0, 1.0), (0.0, 1.0), (1.0, 0.0)])
    found = verdict.findings(summary, 28, confirmation=_fresh())
    values, texts = verdict.headline(found)
    attention = pd.DataFrame({"layer": [0, 0, 1], "layer_label": ["a", "a", "b"], "head": [0, 1, 0],
                              "concept_mass": [0.1, 0.3, 0.2], "word_mass": [0.5, 0.5, 0.8],
                              "pair_share": [0.4, 0.9, 0.6]})
    numbers = quotes.chapter_numbers(found, attention, {"route_attention": 0.3},
                                     rank_by="concept_mass")
    assert quotes.count_disagreements(numbers, values) == []
    # The sets the text counts are the sets the headline counts: head sets, not the controls.
    assert (numbers["sets"], numbers["sets_lowering"], values["sets_lowering_dvd"]) == (3, 2, 2)
    assert values["heads_rescuing_object"] == numbers["rescuing"] == 1
    assert values["heads_deleting_concept"] == 1 and values["sets_rescuing_object"] == 1
    assert texts["interval_unit"] == "seed" and texts["candidate_head"] == "l2:0"
    assert values["positive_control_concept_kept"] == 1 and values["positive_control_rescues"] == 1
    wrong = {**values, "sets_lowering_dvd": 3}
    assert quotes.count_disagreements(numbers, wrong) == [
        "the text quotes sets_lowering = 2, the headline saves sets_lowering_dvd = 3"]
    assert quotes.count_disagreements({}, values)[0].endswith("missing from the text")
    page = quotes.landing_summary({**numbers, "route_imprint": 1.0}, "toy:k1", "sunset",
                                  found.verdict.plain())
    assert "Single heads that rescue it: 1;" in page and "that lower DvD: 2 of 3" in page
    assert verdicts.check_headline({"values": values, "texts": {**texts, "summary": page}}) == []
    assert all(type(value) in (int, float, str) for value in numbers.values())


def test_the_chapter_numbers_quote_the_findings():
    summary = _rescue_summary([(1.0, 0.0), (1.0, 0.5)])
    found = verdict.findings(summary, 28, confirmation=_fresh(candidate="head_x_1",
                                                               head=(1.0, 0.25)))
    attention = pd.DataFrame({"layer": [0, 0, 1], "layer_label": ["a", "a", "b"], "head": [0, 1, 0],
                              "concept_mass": [0.1, 0.3, 0.2], "word_mass": [0.5, 0.5, 0.8],
                              "pair_share": [0.4, 0.9, 0.6]})
    numbers = quotes.chapter_numbers(found, attention, {}, rank_by="concept_mass")
    assert numbers["top_head"] == "a:1" and numbers["top_head_value"] == pytest.approx(0.3)
    assert (numbers["pair_share_low"], numbers["pair_share_high"]) == (0.4, 0.9)
    assert numbers["concept_mass"] == pytest.approx(0.2) and numbers["other_mass"] == pytest.approx(0.35)
    assert numbers["candidate_head"] == "l1:0" and numbers["candidate_object_gain"].startswith("+50")
    assert numbers["fresh_object_gain"].startswith("+25") and numbers["fresh_images"] == 12
    assert numbers["fresh_baseline_dvd"] == "100.0 [100.0, 100.0]"
    assert "fresh_baseline_change" not in numbers
    assert numbers["rescue_bound"] == pytest.approx(50) and numbers["fresh_bound"] == pytest.approx(50)
    assert numbers["control_found"] == "found" and numbers["interval_unit"] == "seed"
    assert numbers["all_heads_outcome"] == "deletes the concept"
    assert numbers["chance_flags"] == pytest.approx(0.1) and numbers["level"] == "95 %"
    assert numbers["drops"].startswith("fewer than two heads lower DvD")


@pytest.mark.parametrize("criteria, message", [
    (dict(rescue_fraction=0), r"rescue_fraction must be in \(0, 1\], got 0"),
    (dict(rescue_fraction=1.5), r"rescue_fraction must be in \(0, 1\], got 1.5"),
    (dict(concept_margin=-0.1), r"concept_margin must be in \[0, 1\), got -0.1"),
    (dict(confidence=1), r"confidence must be in \(0, 1\), got 1"),
    (dict(min_baseline_dvd=-5), r"min_baseline_dvd must be in \[0, 100\), got -5"),
])
def test_findings_criteria_are_checked(criteria, message):
    with pytest.raises(ValueError, match=message):
        verdict.findings(_rescue_summary([(1.0, 0.0)]), 28, **criteria)
    with pytest.raises(ValueError, match=message):
        verdict.check_criteria(**{"rescue_fraction": 0.5, "concept_margin": 0.1,
                                  "min_baseline_dvd": 0.0, "confidence": 0.95, **criteria})


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
