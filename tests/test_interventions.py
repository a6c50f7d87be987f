"""The interventions: the plain model exactly at each zero point, and at a nonzero strength the
attention each one names changes as it says (measured with the record, or at the heads' outputs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.attention.layers import cross_attention_layers
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.recorder import RECORD_KWARG, attention_instruments
from dvdlib.attention.token_positions import token_groups, tokenize_prompt
from dvdlib.interventions import catalogue
from dvdlib.interventions.catalogue import Intervention, call_plan, check_strength, object_first
from dvdlib.interventions.edits import ConceptCap, ObjectBoost
from dvdlib.interventions.excite import ExciteGuide, guided_layers
from dvdlib.interventions.heads import (HeadRanking, layout_of, load_ranking, model_layout,
                                        random_order)
from dvdlib.attention.recorder import attention_instruments
from dvdlib.interventions.sampling import sample
from dvdlib.models.random_weights import dummy_sd_pipeline, random_unet

PROMPT, CONCEPT, OBJECT = "Neuschwanstein Castle Coaster", "neuschwanstein castle", "coaster"
ROWS = pd.DataFrame([(1, "landmark", CONCEPT, OBJECT, PROMPT)],
                    columns=["case_num", "category", "concept", "object", "prompt"])
GUIDANCE, STEPS = 7.5, 2


@pytest.fixture(scope="module")
def pipe():
    return dummy_sd_pipeline("sd1")


def _ranking(layers) -> HeadRanking:
    layout = layout_of(layers)
    return HeadRanking("random sd1", layout, tuple(random_order(layout, seed=5)))


def _call(pipe, intervention, *, instruments=True, record=False, seed=0, **options):
    """One image as a float array (no rounding to 8 bits), with the record if asked."""
    generator = torch.Generator().manual_seed(seed)
    if not instruments:
        return pipe(PROMPT, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                    generator=generator, output_type="np").images, None
    with attention_instruments(pipe.unet) as layers:
        plan = call_plan(intervention, [ROWS.iloc[0]], tokenizer=pipe.tokenizer, layers=layers,
                         steps=STEPS, guidance=GUIDANCE, ranking=_ranking(layers), **options)
        kwargs = dict(plan.kwargs)
        if record:
            kwargs[RECORD_KWARG] = AttentionRecord(layers, STEPS, prompts=plan.tokens,
                                                   classifier_free_guidance=plan.guidance > 1)
        images = pipe(**plan.pipe_kwargs(), num_inference_steps=STEPS, generator=generator,
                      output_type="np", cross_attention_kwargs=kwargs).images
    return images, kwargs.get(RECORD_KWARG)


# --------------------------------------------------------------------------------------------
# The zero points


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_every_zero_point_gives_the_plain_models_images_exactly(pipe, name):
    plain, _ = _call(pipe, None, instruments=False)
    zero = Intervention(name, catalogue.zero_point(name, GUIDANCE))
    images, record = _call(pipe, zero, record=True)
    assert np.array_equal(images, plain)  # bit for bit, before any rounding to 8 bits
    assert record.steps_recorded == STEPS  # recorded all along, without changing the output


def test_the_plain_arm_and_the_processors_restored_give_the_plain_images(pipe):
    plain, _ = _call(pipe, None, instruments=False)
    before = pipe.unet.attn_processors
    images, _ = _call(pipe, None)
    assert np.array_equal(images, plain)
    after = pipe.unet.attn_processors
    assert all(after[key] is before[key] for key in before)
    with pytest.raises(RuntimeError, match="boom"), attention_instruments(pipe.unet):
        raise RuntimeError("boom")
    assert all(pipe.unet.attn_processors[key] is before[key] for key in before)
    with attention_instruments(pipe.unet), pytest.raises(RuntimeError, match="does not nest"):
        with attention_instruments(pipe.unet):
            pass


@pytest.mark.parametrize("name, strength", [("boost", 4.0), ("cap", 0.5), ("heads", 12),
                                            ("random_heads", 12), ("excite", 50.0),
                                            ("guidance", 2.0), ("object_first", 1),
                                            ("negative", 1)])
def test_every_nonzero_strength_changes_the_images(pipe, name, strength):
    plain, _ = _call(pipe, None, instruments=False)
    images, _ = _call(pipe, Intervention(name, strength))
    assert not np.array_equal(images, plain)


# --------------------------------------------------------------------------------------------
# The attention each one names


def _group_mass(pipe, record, group: str) -> torch.Tensor:
    """``[step, layer, head]`` mass on a group of the prompt (image 0)."""
    tokens = record.prompts[0]
    positions = token_groups(pipe.tokenizer, tokens, {"concept": CONCEPT, "object": OBJECT})
    if group == "leak":
        positions = [p for p, kind in enumerate(tokens.kinds) if kind in ("end", "padding")]
    else:
        positions = positions[group]
    return record.mass()[0][..., positions].sum(-1)


def test_the_boost_raises_the_objects_share_of_attention(pipe):
    _, plain = _call(pipe, Intervention("boost", 1.0), record=True)
    _, boosted = _call(pipe, Intervention("boost", 4.0), record=True)
    before, after = _group_mass(pipe, plain, "object"), _group_mass(pipe, boosted, "object")
    assert (after[0, 0] > before[0, 0]).all()  # the first layer's input is the same in both
    assert after.nanmean() > 2 * before.nanmean()


def test_the_boost_matches_adding_log_c_to_the_logits():
    probs = torch.softmax(torch.randn(2, 3, 5, 8), dim=-1)  # [batch, head, query, token]
    edited = ObjectBoost([[2, 3]], 8, 3.0).apply(cross_attention_layers(random_unet("toy"))[0],
                                                 probs)
    logits = probs.log()
    logits[1, ..., [2, 3]] += np.log(3.0)  # the conditional row of a [uncond; cond] batch
    assert torch.allclose(edited, logits.softmax(-1), atol=1e-6)


@pytest.mark.parametrize("leak", [False, True])
def test_the_cap_holds_the_concepts_pair_share_at_tau(pipe, leak):
    tau = 0.3
    _, plain = _call(pipe, Intervention("cap", 1.0), record=True, cap_leak=leak)
    _, capped = _call(pipe, Intervention("cap", tau), record=True, cap_leak=leak)
    concept = "leak" if leak else "concept"

    def share(record):
        c, o = _group_mass(pipe, record, "concept"), _group_mass(pipe, record, "object")
        if leak:
            c = c + _group_mass(pipe, record, "leak")
        return c / (c + o)  # [step, layer, head]

    assert (share(plain).nan_to_num(0) > tau + 0.05).any(), concept  # the cap has work to do
    assert (share(capped).nan_to_num(0) <= tau + 1e-5).all()


def test_the_cap_leaves_rows_below_tau_and_the_unconditional_rows_alone():
    layer = cross_attention_layers(random_unet("toy"))[0]
    probs = torch.softmax(torch.randn(2, 4, 6, 8), dim=-1)  # [uncond; cond]
    edited = ConceptCap([[1]], [[2]], 8, 0.5).apply(layer, probs)
    assert torch.allclose(edited[0], probs[0], atol=1e-7)
    c, o = probs[1, ..., 1], probs[1, ..., 2]
    below = c <= 0.5 * (c + o)
    assert torch.allclose(edited[1][below], probs[1][below])
    assert torch.allclose(edited[1].sum(-1), torch.ones(4, 6))


def _head_outputs(pipe, intervention) -> dict[str, torch.Tensor]:
    """Per cross-attention layer, the input of its output projection (the heads' outputs side by
    side), conditional rows of the first step: ``[query, head * dim]``."""
    found: dict[str, torch.Tensor] = {}
    handles = []
    for path, module in pipe.unet.named_modules():
        if path.endswith("attn2"):
            handles.append(module.to_out[0].register_forward_pre_hook(
                lambda m, args, path=path: found.setdefault(path, args[0][-1].detach())))
    try:
        _call(pipe, intervention)
    finally:
        for handle in handles:
            handle.remove()
    return found


@pytest.mark.parametrize("name", ["heads", "random_heads"])
def test_the_head_ablations_zero_exactly_their_k_heads(pipe, name):
    k = 12
    outputs = _head_outputs(pipe, Intervention(name, k))
    layers = cross_attention_layers(pipe.unet)
    ranking = _ranking(layers)
    chosen = set(ranking.top(k) if name == "heads" else random_order(layout_of(layers))[:k])
    assert len(chosen) == k and (name == "random_heads" or chosen != set(random_order(
        layout_of(layers))[:k]))
    for layer in layers:
        heads = outputs[layer.module_path].view(-1, layer.heads, layer.head_dim)
        for head in range(layer.heads):
            zeroed = bool((heads[:, head] == 0).all())
            assert zeroed == ((layer.label, head) in chosen), (layer.label, head)


def test_the_excite_update_raises_the_objects_peak_attention():
    unet = random_unet("sd1", cross_attention_dim=32, seed=3)
    layers = cross_attention_layers(unet)
    tokens = tokenize_prompt(__import__("dvdlib.prompts.tokenizer", fromlist=["_"]).clip_tokenizer(),
                             PROMPT)
    objects = [[i for i, t in enumerate(tokens.tokens) if t == "coaster</w>"]]
    words = [list(tokens.word_positions)]
    text = torch.randn(1, 77, 32, generator=torch.Generator().manual_seed(1))
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))

    class Scheduler:  # the two things the guide reads of a pipeline's scheduler
        timesteps = torch.tensor([900, 500, 100])

        @staticmethod
        def scale_model_input(sample, t):
            return sample

    class Pipe:
        scheduler = Scheduler()

    Pipe.unet = unet

    def peak(z):
        guide = ExciteGuide(layers, objects, words, 77, 0.0, 3)
        probe = guide.probe()
        with torch.no_grad():
            unet(z, 500, encoder_hidden_states=text, cross_attention_kwargs={"attention_probe": probe})
        return float(probe.peak()[0])

    with attention_instruments(unet):
        guide = ExciteGuide(layers, objects, words, 77, 1.0, 3)
        moved = guide(Pipe, 0, 900, {"latents": latents, "prompt_embeds": text})["latents"]
        step = (moved - latents).norm()
        assert step > 0 and len(guide.peaks) == 1
        scale = 0.02 * float(latents.norm() / step)  # a small step along the same gradient
        guide = ExciteGuide(layers, objects, words, 77, scale, 3)
        moved = guide(Pipe, 0, 900, {"latents": latents, "prompt_embeds": text})["latents"]
        assert peak(moved) > peak(latents)
        assert guide(Pipe, 1, 500, {"latents": latents, "prompt_embeds": text}) == {}  # past half
    assert {layer.query_height for layer in guided_layers(layers)} == {8}  # the finest, <= 16


# --------------------------------------------------------------------------------------------
# The baselines, strengths, rankings


def test_the_baselines_change_the_prompt_the_negative_prompt_and_the_guidance(pipe):
    with attention_instruments(pipe.unet) as layers:
        options = dict(tokenizer=pipe.tokenizer, layers=layers, steps=STEPS, guidance=GUIDANCE)
        first = call_plan(Intervention("object_first", 1), [ROWS.iloc[0]], **options)
        negative = call_plan(Intervention("negative", 1), [ROWS.iloc[0]], **options,
                             negative_template="{concept} landscape")
        lower = call_plan(Intervention("guidance", 2.0), [ROWS.iloc[0]], **options)
    assert first.prompts == ["Coaster Neuschwanstein Castle"]
    assert first.tokens[0].tokens[1] == "coaster</w>"
    assert negative.negative_prompt == ["neuschwanstein castle landscape"]
    assert lower.guidance == 2.0 and lower.pipe_kwargs()["guidance_scale"] == 2.0
    assert object_first("sunset coaster", "coaster") == "coaster sunset"
    assert object_first("a Van Gogh mouse pad", "mouse pad") == "mouse pad a Van Gogh"


@pytest.mark.parametrize("name, value, fragment", [
    ("boost", 0.5, "object boost c 0.5: accepted: a number >= 1"),
    ("cap", 0, "concept cap tau 0: accepted: a number in (0, 1]"),
    ("cap", 1.5, "concept cap tau 1.5: accepted: a number in (0, 1]"),
    ("heads", 29, "top-k heads ablated k 29: accepted: a whole number from 0 to 28"),
    ("random_heads", 2.5, "a whole number from 0 to 28"),
    ("excite", -1, "step size -1: accepted: a number >= 0"),
    ("guidance", 9, "guidance scale 9: accepted: a number from 0 to 7.5"),
    ("negative", 0.5, "accepted: 0 (off: the plain model) or 1 (on)"),
    ("boost", float("nan"), "accepted: a finite number"),
    ("magic", 1, "unknown intervention 'magic'; accepted: boost, cap, heads"),
])
def test_a_strength_outside_its_range_is_refused_in_one_line(name, value, fragment):
    with pytest.raises(ValueError) as caught:
        check_strength(name, value, guidance=7.5, total_heads=28)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_ranking_from_another_model_is_refused_and_a_saved_one_reads_back(tmp_path, pipe):
    toy = model_layout("toy:k1")  # from the zoo's configuration: no weights loaded
    assert toy == layout_of(cross_attention_layers(random_unet("toy")))
    sd_layers = cross_attention_layers(pipe.unet)
    ranking = _ranking(sd_layers)
    path = ranking.save(tmp_path / "ranking.json")
    assert load_ranking(path) == ranking
    with pytest.raises(ValueError, match=r"made on random sd1 \(16 layers, 128 heads\) does not "
                                         r"fit toy:k1 \(7 layers, 28 heads\)"):
        load_ranking(path).check(toy, "toy:k1")
    ranking.check(layout_of(sd_layers))  # its own model
    with pytest.raises(ValueError, match="does not exist"):
        load_ranking(tmp_path / "none.json")


def test_sampling_keeps_each_seeds_image_whatever_shares_its_batch(pipe):
    one = sample(pipe, ROWS, [7], Intervention("boost", 4.0), steps=STEPS, guidance=GUIDANCE)
    two = sample(pipe, ROWS, [3, 7], Intervention("boost", 4.0), steps=STEPS, guidance=GUIDANCE)
    assert np.array_equal(np.asarray(one.images[0]), np.asarray(two.images[1]))
    assert two.mass.shape[:2] == (2, STEPS) and two.seconds > 0
    assert [seed for _, seed in two.jobs] == [3, 7]


def test_the_toy_pipeline_takes_the_step_end_hook_and_the_guided_update():
    from dvdlib.toyworld.pipeline import new_pipeline

    toy = new_pipeline(["sunset", "coaster"], seed=0)
    rows = pd.DataFrame([(1, "print", "sunset", "coaster", "sunset coaster")],
                        columns=["case_num", "category", "concept", "object", "prompt"])
    options = dict(num_inference_steps=4, guidance_scale=4.0, output_type="np")

    def draw(**extra):
        return toy("sunset coaster", generator=torch.Generator().manual_seed(3), **options,
                   **extra).images

    plain = draw()
    assert np.array_equal(draw(callback_on_step_end=lambda p, i, t, d: {}), plain)
    halved = draw(callback_on_step_end=lambda p, i, t, d: {"latents": d["latents"] / 2})
    assert not np.array_equal(halved, plain)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        draw(callback_on_step_end=lambda p, i, t, d: {}, callback_on_step_end_tensor_inputs=["x"])
    for strength, same in ((0.0, True), (50.0, False)):
        with attention_instruments(toy.unet) as layers:
            plan = call_plan(Intervention("excite", strength), [rows.iloc[0]],
                             tokenizer=toy.tokenizer, layers=layers, steps=4, guidance=4.0)
            images = toy(**plan.pipe_kwargs(), generator=torch.Generator().manual_seed(3),
                         num_inference_steps=4, output_type="np").images
        assert np.array_equal(images, plain) == same
        assert len(plan.callback.peaks) == (0 if same else 2)  # latents entering steps 1 and 2
