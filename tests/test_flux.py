"""The joint-attention instruments on Flux: double- and single-stream blocks, outputs unchanged,
statistics equal to an explicit softmax, true-CFG calls recorded by call, T5 words found by offsets,
head ablation, a saved pipeline; and through the family dispatch: the text length passed per call,
the token ablation, dvd generate, dvd probe and chapter 4's sweep on a folder."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from diffusers import DiffusionPipeline, FluxPipeline
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import FluxAttnProcessor

from dvdlib.attention.instruments import instruments_for, load_record
from dvdlib.attention.joint import joint_attention_instruments
from dvdlib.attention.joint_ablation import JointHeadAblation
from dvdlib.attention.joint_layers import select_joint_layers
from dvdlib.attention.joint_record import JointAttentionRecord
from dvdlib.attention.joint_statistics import STATISTICS
from dvdlib.attention.joint_tokens import find_words, flux_text_keys, pipeline_text_keys
from dvdlib.attention.record import MapRequest
from dvdlib.book.cli import main
from dvdlib.prompts.prompt_sets import AUTHORS_COLUMNS
from dvdlib.models.random_mmdit import TINY_T5_LENGTH, save_tiny_mmdit_pipeline, tiny_mmdit_pipeline

PROMPT = "a Neuschwanstein Castle coaster on a table"
TEXT = TINY_T5_LENGTH  # Flux's text keys: the T5 positions only
RUN = dict(num_inference_steps=2, height=32, width=32, guidance_scale=3.5,
           max_sequence_length=TINY_T5_LENGTH, output_type="latent")


@pytest.fixture(scope="module")
def pipe() -> FluxPipeline:
    return tiny_mmdit_pipeline("flux")


def transformer_inputs(rows: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(rows, 64, 16, generator=g),
                encoder_hidden_states=torch.randn(rows, TEXT, 64, generator=g),
                pooled_projections=torch.randn(rows, 32, generator=g),
                timestep=torch.full((rows,), 0.5), guidance=torch.full((rows,), 3.5),
                img_ids=FluxPipeline._prepare_latent_image_ids(rows, 8, 8, "cpu", torch.float32),
                txt_ids=torch.zeros(TEXT, 3))


def explicit_qkv(module, hidden, text, rotary):
    """Queries, keys and values of Flux's attention, ``[batch, head, text + image, dim]``."""
    def heads(x):
        return x.unflatten(-1, (-1, module.head_dim))  # [batch, token, head, dim]

    q, k, v = module.norm_q(heads(module.to_q(hidden))), module.norm_k(heads(module.to_k(hidden))), \
        heads(module.to_v(hidden))
    if text is not None:  # double stream: the text's own projections, text first
        q = torch.cat([module.norm_added_q(heads(module.add_q_proj(text))), q], 1)
        k = torch.cat([module.norm_added_k(heads(module.add_k_proj(text))), k], 1)
        v = torch.cat([heads(module.add_v_proj(text)), v], 1)
    q, k = apply_rotary_emb(q, rotary, sequence_dim=1), apply_rotary_emb(k, rotary, sequence_dim=1)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def explicit_statistics(module, hidden, text, rotary) -> dict[str, torch.Tensor]:
    q, k, _ = explicit_qkv(module, hidden, text, rotary)
    probs = torch.softmax(q @ k.transpose(-1, -2) / module.head_dim ** 0.5, dim=-1)  # [batch, head, key, key]
    block = probs[:, :, TEXT:, :TEXT]  # image rows, text columns
    share = block / block.sum(-1, keepdim=True)
    return {"mass": share.mean(2), "max": share.amax(2), "mass_all_keys": block.mean(2),
            "max_all_keys": block.amax(2)}


def test_flux_idle_instruments_give_diffusers_outputs_and_are_removed(pipe):
    transformer = pipe.transformer
    inputs = transformer_inputs(2)
    before = transformer.attn_processors
    diffusers_call = FluxAttnProcessor.__call__
    with torch.no_grad():
        plain = transformer(**inputs).sample
        with joint_attention_instruments(transformer, sample_size=16) as layers:
            idle = transformer(**inputs).sample
            empty = transformer(**inputs, joint_attention_kwargs={
                "head_ablation": JointHeadAblation(layers, {}), "text_length": TEXT}).sample
    torch.testing.assert_close(idle, plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(empty, plain, atol=1e-6, rtol=0)
    assert [layer.label for layer in layers] == ["double.0", "double.1", "single.0", "single.1"]
    assert all(layer.heads == 2 and layer.head_dim == 16 and layer.query_positions == 64 for layer in layers)
    assert transformer.attn_processors == before
    assert FluxAttnProcessor.__call__ is diffusers_call


def test_flux_recorded_statistics_equal_an_explicit_softmax_in_both_kinds_of_block(pipe):
    transformer = pipe.transformer
    inputs = transformer_inputs(2, seed=1)
    seen = {}
    modules = {layer: transformer.get_submodule(f"{kind}.{i}.attn") for layer, (kind, i) in enumerate(
        [("transformer_blocks", 0), ("transformer_blocks", 1),
         ("single_transformer_blocks", 0), ("single_transformer_blocks", 1)])}
    hooks = [m.register_forward_pre_hook(lambda m, a, kw, i=i: seen.__setitem__(i, kw), with_kwargs=True)
             for i, m in modules.items()]
    try:
        with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
            record = JointAttentionRecord(layers, 1, num_images=2, chunk_bytes=2048)
            transformer(**inputs, joint_attention_kwargs={"attention_record": record, "text_length": TEXT})
            expected = {i: explicit_statistics(m, seen[i]["hidden_states"],
                                               seen[i].get("encoder_hidden_states"),
                                               seen[i]["image_rotary_emb"]) for i, m in modules.items()}
    finally:
        for hook in hooks:
            hook.remove()
    assert seen[2].get("encoder_hidden_states") is None  # a single-stream block: one sequence
    for layer in layers:
        for name in STATISTICS:
            torch.testing.assert_close(record.statistic(name)[:, 0, layer.index], expected[layer.index][name],
                                       atol=1e-5, rtol=1e-4)


def test_flux_text_length_is_needed_by_single_stream_blocks_and_checked_by_double(pipe):
    transformer = pipe.transformer
    inputs = transformer_inputs(1)
    with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 2, num_images=1)
        missing = (r"single\.0 is a single-stream block .* pass "
                   r"joint_attention_kwargs=\{'text_length': max_sequence_length\}")
        with pytest.raises(ValueError, match=missing):
            transformer(**inputs, joint_attention_kwargs={"attention_record": record})
        with pytest.raises(ValueError, match=r"double\.0: text_length=20 but the call has 32 text tokens"):
            transformer(**inputs, joint_attention_kwargs={"attention_record": record, "text_length": 20})
        double = JointAttentionRecord(select_joint_layers(layers, "double"), 1, num_images=1)
        transformer(**inputs, joint_attention_kwargs={"attention_record": double})  # no single block used
        assert double.mass().shape == (1, 1, 2, 2, TEXT)


def test_flux_true_cfg_records_each_call_under_its_own_name(pipe):
    negative = "a blurry photo"
    keys, negative_keys = (pipeline_text_keys(pipe, p, TINY_T5_LENGTH) for p in (PROMPT, negative))
    records = {}
    with joint_attention_instruments(pipe.transformer, sample_size=16) as layers:
        for name, prompt, options in (
                ("true_cfg", PROMPT, dict(negative_prompt=negative, true_cfg_scale=2.0)),
                ("positive_only", PROMPT, {}), ("negative_only", negative, {})):
            guidance = "separate" if name == "true_cfg" else "none"
            calls = ("positive", "negative") if name == "true_cfg" else ("positive",)
            records[name] = record = JointAttentionRecord(
                layers, 2, prompts=keys if name != "negative_only" else negative_keys, guidance=guidance,
                calls=calls, negative_prompts=negative_keys if name == "true_cfg" else None)
            pipe(prompt, generator=torch.manual_seed(0), **RUN, **options,
                 joint_attention_kwargs={"attention_record": record, "text_length": TEXT})
    both = records["true_cfg"]
    assert both.steps_recorded == 2
    # Step 0 starts from the same noise: each call equals the single-pass run of its own prompt.
    torch.testing.assert_close(both.mass("positive")[:, 0], records["positive_only"].mass()[:, 0])
    torch.testing.assert_close(both.mass("negative")[:, 0], records["negative_only"].mass()[:, 0])
    assert not torch.allclose(both.mass("positive")[:, 0], both.mass("negative")[:, 0])
    groups = both.group_frame(None, {"blur": "blurry"}, call="negative")
    with joint_attention_instruments(pipe.transformer, sample_size=16) as layers:  # true CFG left off
        odd = JointAttentionRecord(layers, 2, prompts=keys, guidance="separate")
        pipe(PROMPT, generator=torch.manual_seed(0), **RUN,
             joint_attention_kwargs={"attention_record": odd, "text_length": TEXT})
    with pytest.raises(RuntimeError, match=r"expects 4 calls of each layer and saw 2: was true CFG on"):
        odd.mass()
    blur = len(find_words(negative_keys, "blurry"))  # the negative prompt's own keys label that call
    assert blur and groups.query("group == 'blur'")["n_tokens"].tolist() == [blur, blur]


def test_flux_record_finds_t5_words_by_offsets(pipe):
    keys = flux_text_keys(pipe.tokenizer_2, PROMPT, TINY_T5_LENGTH)
    concept = find_words(keys, "Neuschwanstein castle")
    assert [keys.tokens[p] for p in concept] == ["▁N", "eu", "sch", "wan", "stein", "▁C", "a", "stle"]
    assert keys.kinds.count("end") == 1 and keys.kinds.count("start") == 0  # T5: words, </s>, <pad>
    with joint_attention_instruments(pipe.transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 2, prompts=keys, maps=MapRequest(["single.1"], concept))
        pipe(PROMPT, generator=torch.manual_seed(0), **RUN,
             joint_attention_kwargs={"attention_record": record, "text_length": TEXT})
    groups = record.group_frame(None, {"concept": "neuschwanstein castle", "object": "coaster"},
                                by=("image", "step", "layer"))
    first = groups.query("step == 0 and layer == 3").set_index("group")
    assert first.loc["concept", "n_tokens"] == 8 and first.loc["object", "n_tokens"] == 1
    assert first.loc["start", "n_tokens"] == 0 and first["mass"].sum() == pytest.approx(1.0, abs=1e-5)
    assert first.loc["concept", "layer_label"] == "single.1"
    table = record.to_frame()
    assert table.query(f"token == {concept[0]}")["token_text"].iloc[0] == "▁N"
    assert set(table["segment"]) == {"t5"} and set(table["block"]) == {"double", "single"}
    assert record.token_maps("single.1").shape == (1, 2, 8, 8, 8)


@pytest.mark.parametrize("operator", ["zero", "mask"])
@pytest.mark.parametrize("block", ["double", "single"])
def test_flux_ablation_changes_only_the_ablated_head(pipe, operator, block):
    transformer = pipe.transformer
    module = (transformer.transformer_blocks[0] if block == "double"
              else transformer.single_transformer_blocks[0]).attn
    g = torch.Generator().manual_seed(3)
    image_states = torch.randn(1, 64, 32, generator=g)
    text_states = torch.randn(1, TEXT, 32, generator=g)
    image_ids = FluxPipeline._prepare_latent_image_ids(1, 8, 8, "cpu", torch.float32)
    ids = torch.cat([torch.zeros(TEXT, 3), image_ids])
    rotary = transformer.pos_embed(ids)
    if block == "double":
        args = dict(hidden_states=image_states, encoder_hidden_states=text_states)
    else:
        args = dict(hidden_states=torch.cat([text_states, image_states], 1))

    def heads_before_projection(ablation) -> torch.Tensor:
        """``[batch, text + image, head, dim]``: what the projections get (single: the output)."""
        seen = {}
        hooks = [m.register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
                 for name, m in (("image", getattr(module, "to_out", [None])[0]),
                                 ("text", getattr(module, "to_add_out", None))) if m is not None]
        try:
            out = module(**args, image_rotary_emb=rotary, head_ablation=ablation, text_length=TEXT)
        finally:
            for hook in hooks:
                hook.remove()
        out = torch.cat([seen["text"], seen["image"]], 1) if block == "double" else out
        return out.view(1, TEXT + 64, 2, 16)

    with torch.no_grad(), joint_attention_instruments(transformer, sample_size=16) as layers:
        plain = heads_before_projection(None)
        ablated = heads_before_projection(JointHeadAblation(layers, {f"{block}.0": [1]}, operator))
        q, k, v = explicit_qkv(module, args["hidden_states"], args.get("encoder_hidden_states"), rotary)
    torch.testing.assert_close(ablated[:, :, 0], plain[:, :, 0], atol=1e-6, rtol=0)  # the other head
    scores = (q[:, 1] @ k[:, 1].transpose(-1, -2) / 4.0)[:, TEXT:]  # head 1's image rows (dim 16)
    if operator == "zero":  # text values gone: the image keys' share of the full softmax
        expected = scores.softmax(-1)[..., TEXT:] @ v[:, 1, TEXT:]
        assert (ablated[:, :TEXT, 1] - plain[:, :TEXT, 1]).abs().max() > 1e-3  # text-to-text gone too
    else:  # text keys masked: renormalised onto the image keys; text rows untouched
        expected = scores[..., TEXT:].softmax(-1) @ v[:, 1, TEXT:]
        torch.testing.assert_close(ablated[:, :TEXT, 1], plain[:, :TEXT, 1], atol=1e-6, rtol=0)
    torch.testing.assert_close(ablated[:, TEXT:, 1], expected, atol=1e-5, rtol=1e-4)


def test_flux_bad_inputs_stop_with_one_line(pipe):
    with joint_attention_instruments(pipe.transformer, sample_size=16) as layers:
        checks = [
            (lambda: JointHeadAblation(layers, {"single.1": [2]}),
             r"head 2 is not in layer single\.1; accepted: whole numbers 0\.\.1"),
            (lambda: JointHeadAblation(layers, {"single.9": [0]}),
             r"no layer 'single\.9' in this transformer; accepted: an index 0\.\.3, a label "
             r"\(double\.0 \.\.\. single\.1\)"),
            (lambda: select_joint_layers(layers, "joint"), r"no 'joint' blocks .* \['double', 'single'\]"),
            (lambda: JointAttentionRecord(layers, 2, num_images=1, calls=("negative",)),
             "guidance='none' there is no negative call"),
            (lambda: joint_attention_instruments(pipe.transformer, sample_size=15).__enter__(),
             "positive multiples of 2"),
        ]
        for make, message in checks:
            with pytest.raises(ValueError, match=message) as err:
                make()
            assert "\n" not in str(err.value)
        record = JointAttentionRecord(layers, 2, num_images=1, guidance="separate")
        wrong_batch = r"has 2 rows; a record for 1 image\(s\) with guidance='separate'"
        with pytest.raises(ValueError, match=wrong_batch):
            pipe.transformer(**transformer_inputs(2), joint_attention_kwargs={
                "attention_record": record, "text_length": TEXT})


def test_flux_saved_pipeline_folder_loads_runs_and_records(pipe, tmp_path):
    folder = save_tiny_mmdit_pipeline("flux", tmp_path / "tiny-flux")
    loaded = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(loaded, FluxPipeline)
    loaded.set_progress_bar_config(disable=True)
    keys = pipeline_text_keys(loaded, PROMPT, TINY_T5_LENGTH)
    with joint_attention_instruments(loaded.transformer, sample_size=16) as layers:
        record = JointAttentionRecord(layers, 2, prompts=keys)
        latents = loaded(PROMPT, generator=torch.manual_seed(0), **RUN,
                         joint_attention_kwargs={"attention_record": record, "text_length": TEXT}).images
    torch.testing.assert_close(latents, pipe(PROMPT, generator=torch.manual_seed(0), **RUN).images)
    assert record.mass().shape == (1, 2, 4, 2, TEXT)
    back = JointAttentionRecord.load(record.save(tmp_path / "record.npz", dtype="float32"))
    torch.testing.assert_close(back.statistic("max_all_keys"), record.statistic("max_all_keys"))
    assert back.layers == record.layers and back.guidance == "none"


# --------------------------------------------------------------------------------------------
# Through the one dispatch (instruments_for): per-call text length, the token ablation, dvd
# generate, dvd probe and chapter 4's sweep on a saved pipeline folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_mmdit_pipeline("flux", tmp_path_factory.mktemp("tiny") / "flux")


def test_flux_instruments_come_from_the_family_dispatch_and_pass_the_text_length(pipe):
    instruments = instruments_for(pipe)
    assert instruments.family.name == "flux" and instruments.denoiser is pipe.transformer
    assert instruments.tokenizers == (pipe.tokenizer_2,)  # T5: CLIP gives only a pooled vector
    assert [layer.label for layer in instruments.layers(16)] == ["double.0", "double.1", "single.0",
                                                                 "single.1"]
    assert instruments.describe(16).startswith(
        "Flux.1: 4 joint-attention layers (2 double-stream, double.0 to double.1; 2 single-stream, "
        "single.0 to single.1), 2 heads each, 8 heads in all, over 8x8 image tokens reading the T5 "
        "block; a layer is the joint attention of one block")
    keys = instruments.prompt_tokens(PROMPT)
    assert keys == flux_text_keys(pipe.tokenizer_2, PROMPT, 512)  # the call's default length
    assert [keys.tokens[p] for p in instruments.token_groups(keys, {"c": "neuschwanstein"})["c"]] \
        == ["▁N", "eu", "sch", "wan", "stein"]
    layers = instruments.layers(16)
    record = instruments.new_record(layers, 2, [keys], guidance=3.5)
    assert isinstance(record, JointAttentionRecord) and record.guidance == "none"
    ablation = instruments.head_ablation(layers, {"single.1": [0]}, "mask")
    assert instruments.call_kwargs(record, ablation) == {
        "attention_record": record, "head_ablation": ablation, "text_length": 512}
    assert instruments.call_kwargs() == {}


def test_flux_token_ablation_of_every_text_key_equals_zeroing_every_heads_text_values(pipe):
    instruments = instruments_for(pipe)
    run = {**RUN, "max_sequence_length": 512}  # the length the instruments pass per call

    def latents(ablation) -> torch.Tensor:
        kwargs = instruments.call_kwargs(ablation=ablation)
        return pipe(PROMPT, generator=torch.manual_seed(0), joint_attention_kwargs=kwargs, **run).images

    with instruments.install(16) as layers:
        plain = latents(None)
        every_key = instruments.token_ablation(layers, [range(512)], 512)
        torch.testing.assert_close(latents(every_key), latents(instruments.head_ablation(layers, "all")))
        torch.testing.assert_close(latents(instruments.token_ablation(layers, [range(512)], 512, 1.0)),
                                   plain)
        keys = instruments.prompt_tokens(PROMPT)
        route = instruments.token_ablation(layers, [[*keys.end_positions, *keys.padding_positions]],
                                           512, 0.5)
        assert (latents(route) - plain).abs().max() > 1e-4


def test_flux_dvd_generate_records_the_family_and_its_joint_attention(folder, tmp_path):
    out = tmp_path / "images"
    assert main(["generate", "--model", str(folder), "--out", str(out), "--cases", "1",
                 "--seed-list", "5", "--steps", "2", "--size", "32", "--device", "cpu",
                 "--record-attention", "--no-progress"]) == 0
    settings = json.loads((out / "generation.json").read_text())
    assert (settings["family"], settings["guidance"]) == ("flux", 3.5)
    assert settings["family_defaults"]["guidance_kind"] == "embedded"
    manifest = pd.read_csv(out / "manifest.csv")
    record = load_record(out / manifest.record_dir[0] / "attention.npz")
    assert isinstance(record, JointAttentionRecord) and record.guidance == "none"
    assert record.mass().shape == (1, 2, 4, 2, 512)  # every single-stream block recorded too
    assert record.layers[-1].query_height == 8


def test_flux_dvd_generate_checks_words_against_t5_not_clip(folder, tmp_path, capsys):
    header = ",".join(AUTHORS_COLUMNS)
    # The coaster lies past CLIP's 77 tokens, which give Flux only a pooled vector, but inside
    # T5's 512 keys: it is read, so it is generated.
    read = tmp_path / "read.csv"
    read.write_text(f"{header}\n1,print,sunset,coaster,sunset {' '.join(['very'] * 80)} coaster\n")
    out = tmp_path / "images"
    assert main(["generate", "--model", str(folder), "--out", str(out), "--prompts", str(read),
                 "--seed-list", "5", "--steps", "1", "--size", "32", "--device", "cpu",
                 "--no-progress"]) == 0
    assert len(pd.read_csv(out / "manifest.csv")) == 1
    # Past T5's 512 keys it is cut: refused in one line once the pipeline's tokenizer is loaded,
    # and no folder is left behind.
    cut = tmp_path / "cut.csv"
    cut.write_text(f"{header}\n1,print,sunset,coaster,sunset {' '.join(['very'] * 600)} coaster\n")
    capsys.readouterr()
    assert main(["generate", "--model", str(folder), "--out", str(tmp_path / "cut"), "--prompts",
                 str(cut), "--seed-list", "5", "--steps", "1", "--size", "32", "--device", "cpu",
                 "--no-progress"]) == 2
    lines = [line for line in capsys.readouterr().err.strip().splitlines()
             if line.strip() and not line.startswith(("Loading", "\x1b"))]  # progress bars
    assert len(lines) == 1 and "case 1: object" in lines[0] and "text keys" in lines[0], lines
    assert not (tmp_path / "cut").exists()


def test_flux_chapter_four_accepts_the_joint_operators_before_it_runs(folder):
    from dvdlib.book.parameters import check_parameters

    chapter = Path(__file__).parents[1] / "book" / "04_head_ablation.ipynb"
    check_parameters(chapter, {"model": str(folder), "operator": "mask"})
    with pytest.raises(ValueError, match=r"'mean' is not an operator of model .*accepted: zero, mask"):
        check_parameters(chapter, {"model": str(folder), "operator": "mean"})


def test_flux_dvd_probe_runs_end_to_end_and_writes_its_table_and_figure(folder, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["probe", "a Sunset coaster", "--concept", "sunset", "--object", "coaster", "-m",
                 str(folder), "--judge", "toy", "--seeds", "2", "--steps", "2", "--size", "32",
                 "--device", "cpu", "--out", str(out), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["steps"], summary["guidance"], summary["n_images"]) == (2, 3.5, 2)
    # T5 keeps the case: "Sunset" is ▁S un set, found by character offsets
    assert summary["attention"]["tokens"] == {"concept": 3, "object": 1}
    assert summary["attention"]["even_pair_share"] == 0.75
    attention = pd.read_csv(out / "attention.csv")
    assert len(attention) == 2 * 2 and attention.pair_share.between(0, 1).all()
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "images" / "generation.json").read_text())["family"] == "flux"


def test_flux_chapter_four_sweep_ablates_heads_and_tokens_through_the_instruments(folder, tmp_path):
    from dvdlib.chapters.head_ablation import conditions, leakage, run
    from dvdlib.models.loading import load_pipeline
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld.detector import PresenceDetector
    from dvdlib.toyworld.world import World, prompt_table

    pipe = load_pipeline(str(folder), device="cpu")
    torch.manual_seed(0)
    judge = ToyJudge(PresenceDetector().eval())
    prompts = prompt_table(World(), ["kite"], controls=False)
    sweep = run.HeadSweep(pipe, prompts, [3], tmp_path, judge, model=str(folder), steps=2,
                          guidance=3.5, height=32, width=32, batch_size=1)
    assert sweep.total_heads == 8 and sweep.layout.startswith("Flux.1: 4 joint-attention layers")
    result = sweep.run([conditions.baseline(), conditions.single_heads(sweep.layers)[-1],
                        conditions.concept_tokens(), *conditions.concept_routes([0.5])])
    assert len(result.heads) == 4 * sweep.total_heads and result.heads["concept_mass"].notna().all()
    assert result.images["concept_share"].between(0, 1).all()
    # Figure 4.5's table: T5 has no start token, and its end and padding keys read the concept
    leak = leakage.leak_table(result.heads, leakage.imprint_table(pipe, prompts)).set_index("kind")
    assert list(leak.index) == ["concept", "object", "end", "padding"]
    assert (leak.loc[["object", "end", "padding"], "imprint"] > 0).all()
    with pytest.raises(ValueError, match="unknown operator 'mean'; accepted: zero, mask"):
        run.HeadSweep(pipe, prompts, [3], tmp_path, judge, model="f", steps=2, guidance=3.5,
                      operator="mean")
