"""The joint-attention instruments on SD3 and SD3.5: outputs unchanged, statistics equal to an explicit
softmax, guidance halves, word positions in both tokenizations, head ablation, a saved pipeline; and
through the family dispatch: the token ablation, dvd generate, dvd probe and chapter 3 on a folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import DiffusionPipeline, StableDiffusion3Pipeline
from diffusers.models.attention_processor import JointAttnProcessor2_0

from dvdlib.attention.instruments import instruments_for, load_record
from dvdlib.attention.joint import joint_attention_instruments
from dvdlib.attention.joint_ablation import JointHeadAblation
from dvdlib.attention.joint_layers import joint_attention_layers
from dvdlib.attention.joint_record import JointAttentionRecord
from dvdlib.attention.joint_statistics import STATISTICS
from dvdlib.attention.joint_tokens import find_words, pipeline_text_keys
from dvdlib.attention.record import MapRequest
from dvdlib.attention.token_positions import PhraseNotFoundError
from dvdlib.book.cli import main
from dvdlib.models.random_mmdit import (TINY_T5_LENGTH, save_tiny_mmdit_pipeline, tiny_mmdit_pipeline,
                                        tiny_sd3_transformer)

VARIANTS = ("sd3", "sd3.5")
PROMPT = "a Neuschwanstein Castle coaster on a table"
TEXT = 77 + TINY_T5_LENGTH  # SD3's text keys: the CLIP block, then the T5 block


@pytest.fixture(scope="module")
def pipes() -> dict[str, StableDiffusion3Pipeline]:
    return {variant: tiny_mmdit_pipeline(variant) for variant in VARIANTS}


def transformer_inputs(rows: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(rows, 4, 16, 16, generator=g),
                encoder_hidden_states=torch.randn(rows, TEXT, 64, generator=g),
                pooled_projections=torch.randn(rows, 64, generator=g),
                timestep=torch.full((rows,), 500.0))


def split_heads(module, states: torch.Tensor) -> torch.Tensor:
    return states.view(states.shape[0], -1, module.heads, states.shape[-1] // module.heads).transpose(1, 2)


def explicit_qkv(module, hidden, text):
    """Queries, keys and values of SD3's joint attention, ``[batch, head, image + text, dim]``."""
    q, k, v = (split_heads(module, f(hidden)) for f in (module.to_q, module.to_k, module.to_v))
    tq, tk, tv = (split_heads(module, f(text)) for f in (module.add_q_proj, module.add_k_proj,
                                                          module.add_v_proj))
    if module.norm_q is not None:
        q, k, tq, tk = module.norm_q(q), module.norm_k(k), module.norm_added_q(tq), module.norm_added_k(tk)
    return torch.cat([q, tq], 2), torch.cat([k, tk], 2), torch.cat([v, tv], 2)


def explicit_statistics(module, hidden, text) -> dict[str, torch.Tensor]:
    """The four statistics from the whole attention matrix: ``[batch, head, text token]``."""
    q, k, _ = explicit_qkv(module, hidden, text)
    probs = torch.softmax(q @ k.transpose(-1, -2) * module.scale, dim=-1)  # [batch, head, key, key]
    block = probs[:, :, : hidden.shape[1], hidden.shape[1]:]  # image rows, text columns
    share = block / block.sum(-1, keepdim=True)
    return {"mass": share.mean(2), "max": share.amax(2), "mass_all_keys": block.mean(2),
            "max_all_keys": block.amax(2)}


def capture_attention_inputs(transformer, run) -> dict[int, list[tuple]]:
    """The (image, text) states each block's joint attention gets, per call, in ``run()``."""
    seen: dict[int, list[tuple]] = {}
    def keep(index, kwargs):
        seen.setdefault(index, []).append((kwargs["hidden_states"], kwargs["encoder_hidden_states"]))

    handles = [block.attn.register_forward_pre_hook(lambda m, a, kw, i=i: keep(i, kw), with_kwargs=True)
               for i, block in enumerate(transformer.transformer_blocks)]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("variant", VARIANTS)
def test_sd3_idle_instruments_give_diffusers_outputs_and_are_removed(pipes, variant):
    transformer = pipes[variant].transformer
    inputs = transformer_inputs(2)
    before = transformer.attn_processors
    diffusers_call = JointAttnProcessor2_0.__call__
    with torch.no_grad():
        plain = transformer(**inputs).sample
        with joint_attention_instruments(transformer, sample_size=16) as layers:
            kinds = sorted({type(p).__name__ for p in transformer.attn_processors.values()})
            idle = transformer(**inputs).sample
            empty = transformer(**inputs, joint_attention_kwargs={
                "head_ablation": JointHeadAblation(layers, {})}).sample
    torch.testing.assert_close(idle, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(empty, plain, atol=1e-6, rtol=0)
    assert [layer.label for layer in layers] == ["joint.0", "joint.1"]  # SD3.5's attn2 is no layer
    assert all(layer.heads == 4 and layer.query_positions == 64 for layer in layers)
    assert kinds == (["ImageOnlyPassThrough", "SD3JointProcessor"] if variant == "sd3.5"
                     else ["SD3JointProcessor"])
    assert transformer.attn_processors == before  # the very same processor objects are back
    assert JointAttnProcessor2_0.__call__ is diffusers_call  # no class-level override


@pytest.mark.parametrize("variant", VARIANTS)
def test_sd3_recorded_statistics_equal_an_explicit_softmax_on_the_positive_half(pipes, variant):
    transformer = pipes[variant].transformer
    inputs = transformer_inputs(4, seed=1)  # [negative; positive] for two images
    with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 1, num_images=2, guidance="batched",
                                      calls=("positive", "negative"), chunk_bytes=4096)
        seen = capture_attention_inputs(transformer, lambda: transformer(
            **inputs, joint_attention_kwargs={"attention_record": record}))
        for layer in layers:
            (hidden, text), = seen[layer.block_index]
            module = transformer.get_submodule(layer.module_path)
            expected = explicit_statistics(module, hidden, text)
            for name in STATISTICS:
                for call, rows in (("positive", slice(2, None)), ("negative", slice(0, 2))):
                    got = record.statistic(name, call)[:, 0, layer.index]  # [image, head, token]
                    torch.testing.assert_close(got, expected[name][rows], atol=1e-5, rtol=1e-4)
    mass = record.mass()
    assert mass.shape == (2, 1, 2, 4, TEXT)
    torch.testing.assert_close(mass.sum(-1), torch.ones(2, 1, 2, 4))
    assert (record.statistic("mass_all_keys").sum(-1) < 0.999).all()  # the image keys get the rest


def test_sd3_pipeline_record_maps_words_in_both_tokenizations(pipes):
    pipe = pipes["sd3"]
    keys = pipeline_text_keys(pipe, PROMPT, TINY_T5_LENGTH)
    concept = find_words(keys, "neuschwanstein castle")
    clip = [p for p in concept if p < 77]
    assert clip and len(clip) < len(concept)  # positions in the CLIP block and in the T5 block
    assert [keys.tokens[p] for p in clip] == ["neu", "sch", "wan", "stein</w>", "castle</w>"]
    assert [keys.tokens[p] for p in concept if p >= 77][0] == "▁N"  # T5 keeps the case
    with joint_attention_instruments(pipe.transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 2, prompts=keys, guidance="batched",
                                      maps=MapRequest(layers=[1], tokens=clip, steps=[1]))
        pipe(PROMPT, num_inference_steps=2, height=32, width=32, guidance_scale=5.0,
             max_sequence_length=TINY_T5_LENGTH, output_type="latent",
             joint_attention_kwargs={"attention_record": record})
    assert record.steps_recorded == 2 and record.mass().shape == (1, 2, 2, 4, TEXT)
    groups = record.group_frame(None, {"concept": "neuschwanstein castle", "object": "coaster"})
    assert groups.set_index(["step", "group"], drop=False).loc[(0, "concept"), "n_tokens"] == len(concept)
    clip_only = record.group_frame(None, {"concept": "neuschwanstein castle"}, segments=["clip"])
    assert clip_only.query("group == 'concept'")["n_tokens"].tolist() == [len(clip)] * 2
    per_step = groups.groupby("step")["mass"].sum()  # the groups partition the text keys
    assert per_step.tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    table = record.to_frame()
    assert set(table["segment"]) == {"clip", "t5"} and len(table) == 2 * 2 * 4 * TEXT
    assert table.query("token == 2")["token_text"].iloc[0] == "neu"
    assert record.token_maps("joint.1").shape == (1, 1, len(clip), 8, 8)


def test_sd3_skip_layer_guidance_call_is_not_recorded_and_a_wrong_batch_is_refused(pipes):
    transformer = pipes["sd3"].transformer
    with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 1, num_images=1, guidance="batched")
        kwargs = {"attention_record": record}
        transformer(**transformer_inputs(2), joint_attention_kwargs=kwargs)
        transformer(**transformer_inputs(1), joint_attention_kwargs=kwargs, skip_layers=[1])
        assert record.steps_recorded == 1  # the one-row, layer-skipping call left no trace
        with pytest.raises(ValueError, match=r"has 3 rows; .* expects 2"):
            transformer(**transformer_inputs(3), joint_attention_kwargs=kwargs)


@pytest.mark.parametrize("operator", ["zero", "mask"])
def test_sd3_ablation_changes_only_the_ablated_head(pipes, operator):
    transformer = pipes["sd3.5"].transformer
    module = transformer.transformer_blocks[0].attn
    g = torch.Generator().manual_seed(2)
    hidden, text = torch.randn(1, 64, 32, generator=g), torch.randn(1, TEXT, 32, generator=g)
    outputs = {}

    def heads_before_projection(ablation) -> tuple[torch.Tensor, torch.Tensor]:
        seen = {}
        hooks = [m.register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
                 for name, m in (("image", module.to_out[0]), ("text", module.to_add_out))]
        try:
            module(hidden, encoder_hidden_states=text, head_ablation=ablation)
        finally:
            for hook in hooks:
                hook.remove()
        return tuple(seen[k].view(1, -1, 4, 8) for k in ("image", "text"))  # [batch, token, head, dim]

    with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
        outputs["plain"] = heads_before_projection(None)
        outputs["ablated"] = heads_before_projection(JointHeadAblation(layers, {"joint.0": [2]}, operator))
        q, k, v = explicit_qkv(module, hidden, text)
    (image, text_out), (image_ab, text_ab) = outputs["plain"], outputs["ablated"]
    others = [0, 1, 3]
    torch.testing.assert_close(image_ab[:, :, others], image[:, :, others], atol=1e-6, rtol=0)
    torch.testing.assert_close(text_ab[:, :, others], text_out[:, :, others], atol=1e-6, rtol=0)
    assert (image_ab[:, :, 2] - image[:, :, 2]).abs().max() > 1e-3
    scores = (q[:, 2] @ k[:, 2].transpose(-1, -2) * module.scale)[:, :64]  # head 2's image rows
    if operator == "zero":  # text values gone: the image keys' share of the full softmax
        expected = scores.softmax(-1)[..., :64] @ v[:, 2, :64]
        assert (text_ab[:, :, 2] - text_out[:, :, 2]).abs().max() > 1e-3  # text-to-text gone too
    else:  # text keys masked: renormalised onto the image keys
        expected = scores[..., :64].softmax(-1) @ v[:, 2, :64]
        torch.testing.assert_close(text_ab[:, :, 2], text_out[:, :, 2], atol=1e-6, rtol=0)
    torch.testing.assert_close(image_ab[:, :, 2], expected, atol=1e-5, rtol=1e-4)


def test_sd3_bad_inputs_stop_with_one_line(pipes):
    pipe = pipes["sd3"]
    layers = joint_attention_layers(pipe.transformer, sample_size=16)
    short = pipeline_text_keys(pipe, "a castle painted on a big blue coaster", max_sequence_length=4)
    errors = []
    with pytest.raises(PhraseNotFoundError, match="not among the t5 tokens") as err:
        find_words(short, "coaster")  # in the CLIP block, cut from the T5 block
    errors.append(err)
    assert find_words(short, "coaster", segments=["clip"])
    for heads, message in (({0: [4]}, r"head 4 is not in layer joint\.0; accepted: whole numbers 0\.\.3"),
                           ({7: [0]}, r"no layer 7 in this transformer; accepted: an index 0\.\.1"),
                           ({0: ["all"]}, "head 'all' is not in layer")):
        with pytest.raises(ValueError, match=message) as err:
            JointHeadAblation(layers, heads)
        errors.append(err)
    with pytest.raises(ValueError, match="unknown operator 'mean'") as err:
        JointHeadAblation(layers, "all", operator="mean")
    errors.append(err)
    # Full maps at every step of SD3-Medium at 1024 px: 24 layers, 64 x 64 image tokens, 333 keys.
    medium = joint_attention_layers(tiny_sd3_transformer(num_layers=24), sample_size=128)
    cost = (r"maps of 24 layers x 28 steps x 4096 image tokens x 333 text tokens x 1 image\(s\) "
            r"would hold 3\.67 GB .* limit of 2\.15 GB")
    with pytest.raises(ValueError, match=cost) as err:
        JointAttentionRecord(medium, 28, num_images=1, maps=MapRequest("all", tokens=range(333)))
    errors.append(err)
    with pytest.raises(ValueError, match="not a joint-attention transformer") as err:
        with joint_attention_instruments(pipe.vae):
            pass
    errors.append(err)
    assert all("\n" not in str(e.value) for e in errors)


def test_sd3_instruments_restore_on_error_and_do_not_nest(pipes):
    transformer = pipes["sd3.5"].transformer
    before = transformer.attn_processors
    with pytest.raises(RuntimeError, match="boom"):
        with joint_attention_instruments(transformer):
            raise RuntimeError("boom")
    assert transformer.attn_processors == before
    with joint_attention_instruments(transformer):
        with pytest.raises(RuntimeError, match="does not nest"):
            with joint_attention_instruments(transformer):
                pass
    assert transformer.attn_processors == before


def test_sd3_saved_pipeline_folder_loads_runs_and_records(pipes, tmp_path):
    folder = save_tiny_mmdit_pipeline("sd3.5", tmp_path / "tiny-sd3.5")
    loaded = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(loaded, StableDiffusion3Pipeline)
    loaded.set_progress_bar_config(disable=True)
    run = dict(num_inference_steps=2, height=32, width=32, guidance_scale=5.0,
               max_sequence_length=TINY_T5_LENGTH, output_type="latent")
    keys = pipeline_text_keys(loaded, PROMPT, TINY_T5_LENGTH)
    assert keys == pipeline_text_keys(pipes["sd3.5"], PROMPT, TINY_T5_LENGTH)  # the same tokenizers
    with joint_attention_instruments(loaded.transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 2, prompts=keys, guidance="batched",
                                      maps=MapRequest("all", tokens=[2, 3]))
        latents = loaded(PROMPT, generator=torch.manual_seed(0),
                         joint_attention_kwargs={"attention_record": record}, **run).images
    expected = pipes["sd3.5"](PROMPT, generator=torch.manual_seed(0), **run).images
    torch.testing.assert_close(latents, expected)  # the same weights, saved and read back
    path = record.save(tmp_path / "record.npz")
    back = JointAttentionRecord.load(path)
    torch.testing.assert_close(back.mass(), record.mass(), atol=2e-3, rtol=2e-3)  # float16 file
    assert back.prompts == record.prompts and back.map_steps == [0, 1]
    torch.testing.assert_close(back.token_maps(0), record.token_maps(0), atol=1e-3, rtol=1e-2)


def test_sd3_and_flux_calls_name_their_record_guidance(pipes):
    from dvdlib.attention.joint import call_guidance
    from dvdlib.models.random_mmdit import tiny_flux_transformer

    sd3, flux = pipes["sd3"].transformer, tiny_flux_transformer()
    assert [call_guidance(sd3, g) for g in (1.0, 7.0)] == ["none", "batched"]
    assert call_guidance(flux, 3.5) == "none"
    assert call_guidance(flux, 3.5, true_cfg_scale=4.0) == "none"  # no negative prompt: one pass
    assert call_guidance(flux, 3.5, true_cfg_scale=4.0, negative_prompt=True) == "separate"


# --------------------------------------------------------------------------------------------
# Through the one dispatch (instruments_for): the generation hook, dvd generate, dvd probe and
# chapters 3 and 4 on a saved pipeline folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_mmdit_pipeline("sd3.5", tmp_path_factory.mktemp("tiny") / "sd3.5")


def test_sd3_instruments_come_from_the_family_dispatch(pipes):
    pipe = pipes["sd3.5"]
    instruments = instruments_for(pipe)
    assert instruments.family.name == "sd3" and instruments.denoiser is pipe.transformer
    assert instruments.record_class is JointAttentionRecord and instruments.operators == ("zero", "mask")
    assert [layer.label for layer in instruments.layers(16)] == ["joint.0", "joint.1"]
    assert instruments.describe(16) == (
        "Stable Diffusion 3 / 3.5: 2 joint-attention layers (joint.0 to joint.1), 4 heads each, 8 "
        "heads in all, over 8x8 image tokens reading 77 CLIP positions, then the T5 block; a layer "
        "is the joint attention of one block (image and text tokens in one softmax), read at its "
        "image-query x text-key block; a head is one of its heads, which reads the image and the "
        "text alike")
    keys = instruments.prompt_tokens(PROMPT)  # as the pipeline's call makes them: 77 + 256 keys
    assert keys == pipeline_text_keys(pipe, PROMPT, 256) and keys.length == 77 + 256
    groups = instruments.token_groups(keys, {"concept": "neuschwanstein castle", "object": "coaster"})
    assert groups["concept"] == find_words(keys, "neuschwanstein castle")
    assert [keys.tokens[p] for p in groups["object"]] == ["coaster</w>", "▁coaster"]  # CLIP and T5
    t5_words = keys.positions("word", "t5")
    assert keys.end_positions == (11, t5_words[-1] + 1)  # CLIP's end token, then T5's </s>
    # a word past CLIP's 77 positions but inside T5's 256 is refused, naming the CLIP block
    long = instruments.prompt_tokens("sunset " + "very " * 80 + "coaster")
    with pytest.raises(PhraseNotFoundError, match=r"^phrase 'coaster' is not among the clip tokens"):
        instruments.token_groups(long, {"object": "coaster"})
    assert instruments.call_kwargs() == {}  # idle: nothing passed, nothing recorded


def test_sd3_token_ablation_of_every_text_key_equals_zeroing_every_heads_text_values(pipes):
    pipe = pipes["sd3"]
    instruments = instruments_for(pipe)
    run = dict(num_inference_steps=2, height=32, width=32, guidance_scale=1.0,  # one row per image
               max_sequence_length=256, output_type="latent")

    def latents(ablation) -> torch.Tensor:
        kwargs = instruments.call_kwargs(ablation=ablation)
        return pipe(PROMPT, generator=torch.manual_seed(0), joint_attention_kwargs=kwargs, **run).images

    with instruments.install(16) as layers:
        plain = latents(None)
        every_key = instruments.token_ablation(layers, [range(77 + 256)], 77 + 256)
        torch.testing.assert_close(latents(every_key),
                                   latents(instruments.head_ablation(layers, "all")))
        kept = instruments.token_ablation(layers, [range(77 + 256)], 77 + 256, factor=1.0)
        torch.testing.assert_close(latents(kept), plain)
        concept = instruments.token_ablation(layers, [find_words(instruments.prompt_tokens(PROMPT),
                                                                 "castle")], 77 + 256)
        assert (latents(concept) - plain).abs().max() > 1e-4
    with pytest.raises(ValueError, match="joint attention has no 'scale' operator"):
        instruments.head_ablation(layers, "all", "scale", factor=0.5)


def test_sd3_dvd_generate_records_the_family_and_its_joint_attention(folder, tmp_path):
    out = tmp_path / "images"
    assert main(["generate", "--model", str(folder), "--out", str(out), "--cases", "1",
                 "--seed-list", "5", "--steps", "2", "--size", "32", "--device", "cpu",
                 "--record-attention", "--no-progress"]) == 0
    settings = json.loads((out / "generation.json").read_text())
    assert (settings["family"], settings["guidance"], settings["scheduler"]) == (
        "sd3", 7.0, "FlowMatchEulerDiscreteScheduler")
    manifest = pd.read_csv(out / "manifest.csv")
    record = load_record(out / manifest.record_dir[0] / "attention.npz")
    assert isinstance(record, JointAttentionRecord) and record.guidance == "batched"
    assert record.mass().shape == (1, 2, 2, 4, 77 + 256)  # [image, step, layer, head, token]
    assert (record.layers[0].query_height, record.prompts[0].prompt) == (8, manifest.prompt[0])
    with pytest.raises(ValueError, match=r"manifest\.csv is not an attention record"):
        load_record(out / "manifest.csv")


def test_sd3_dvd_probe_runs_end_to_end_and_writes_its_table_and_figure(folder, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["probe", "sunset coaster", "--concept", "sunset", "--object", "coaster", "-m",
                 str(folder), "--judge", "toy", "--seeds", "2", "--steps", "2", "--size", "32",
                 "--device", "cpu", "--out", str(out), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["steps"], summary["guidance"], summary["n_images"]) == (2, 7.0, 2)
    assert summary["attention"]["tokens"] == {"concept": 2, "object": 2}  # CLIP and T5 each
    attention = pd.read_csv(out / "attention.csv")
    assert len(attention) == 2 * 2 and attention.pair_share.between(0, 1).all()
    first = attention[attention.image == 0].sort_values("step")
    manifest = pd.read_csv(out / "images" / "manifest.csv").set_index("seed")
    record_dir = manifest.loc[first.seed.iloc[0], "record_dir"]  # the record of image 0's call
    record = load_record(out / "images" / record_dir / "attention.npz")
    groups = record.token_groups(None, 0, {"concept": "sunset", "object": "coaster"})
    assert [record.prompts[0].tokens[p] for p in groups["concept"]] == ["sunset</w>", "▁sunset"]
    mass = record.mass().nanmean(3).mean(2)  # [image, step, token]: heads, then layers pooled
    concept, obj = mass[..., groups["concept"]].sum(-1), mass[..., groups["object"]].sum(-1)
    np.testing.assert_allclose(first.pair_share, (concept / (concept + obj))[0], rtol=1e-5)
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "images" / "generation.json").read_text())["family"] == "sd3"


def test_sd3_chapter_three_condition_runs_with_maps_through_the_instruments(folder, tmp_path):
    from dvdlib.chapters.attention_saturation import figures, run
    from dvdlib.models.loading import load_pipeline
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld.detector import PresenceDetector
    from dvdlib.toyworld.world import World, prompt_table

    pipe = load_pipeline(str(folder), device="cpu")
    torch.manual_seed(0)
    judge = ToyJudge(PresenceDetector().eval())
    prompts = prompt_table(World(), ["kite"], controls=False)
    result = run.run_condition("sd3.5", pipe, prompts, [1, 2], judge, tmp_path, model=str(folder),
                               steps=2, guidance=7.0, height=32, width=32, map_steps=[0, 1])
    assert result.layout.startswith("Stable Diffusion 3 / 3.5: 2 joint-attention layers")
    assert set(result.layer_shares["level"]) == {"joint 8x8"}
    assert len(result.shares) == 2 * 2 and result.shares["pair_share"].between(0, 1).all()
    assert set(result.concentration["group"]) == {"concept", "object"}
    row = result.images.iloc[0]
    example = figures.token_map_example(result, row["prompt"], row["seed"])
    assert example["maps"]["concept"].shape == (2, 8, 8)
