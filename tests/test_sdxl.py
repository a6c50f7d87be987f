"""The instruments on SDXL: 70 cross-attention layers, two tokenizers feeding one sequence of text
keys, ``added_cond_kwargs`` left to the UNet; recording, ablation, loading and ``dvd probe``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from dvdlib.attention.ablation import HeadAblation
from dvdlib.attention.instruments import instruments_for
from dvdlib.attention.layers import cross_attention_layers, describe_layers
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.recorder import ABLATION_KWARG, RECORD_KWARG
from dvdlib.attention.token_positions import token_groups, tokenize_for_keys, tokenize_prompt
from dvdlib.book.cli import main
from dvdlib.models.families import folder_family
from dvdlib.models.loading import load_pipeline
from dvdlib.models.random_weights import dummy_sdxl_pipeline, unet_config
from dvdlib.prompts.tokenizer import clip_tokenizer

PROMPT = "Neuschwanstein Castle Coaster"


@pytest.fixture(scope="module")
def pipe():
    return dummy_sdxl_pipeline()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, pipe):
    path = tmp_path_factory.mktemp("tiny_sdxl")
    pipe.save_pretrained(path)
    return path


def unet_inputs(unet, images: int = 2, seed: int = 1, time_ids=None):
    """A guidance batch ``[uncond; cond]`` for the SDXL UNet, with its ``added_cond_kwargs``."""
    g = torch.Generator().manual_seed(seed)
    rows = 2 * images
    size = unet.config.sample_size
    sample = torch.randn(rows, unet.config.in_channels, size, size, generator=g)
    text = torch.randn(rows, 77, unet.config.cross_attention_dim, generator=g)
    pooled_width = unet.config.projection_class_embeddings_input_dim \
        - 6 * unet.config.addition_time_embed_dim
    added = {"text_embeds": torch.randn(rows, pooled_width, generator=g),
             "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * rows if time_ids is None
                                      else [time_ids] * rows)}
    return sample, text, added


def explicit_mass(unet, sample, text, added, rows: slice) -> dict[str, torch.Tensor]:
    """Per attn2 module: softmax(Q K^T * scale) written out, mean over queries, ``[image, head,
    token]``, from the module's own projections."""
    found = {}

    def hook(module, args, kwargs, path):
        hidden, states = args[0] if args else kwargs["hidden_states"], kwargs["encoder_hidden_states"]
        batch, heads = hidden.shape[0], module.heads
        query = module.to_q(hidden).view(batch, -1, heads, module.inner_dim // heads).transpose(1, 2)
        key = module.to_k(states).view(batch, -1, heads, module.inner_dim // heads).transpose(1, 2)
        scores = torch.exp(query @ key.transpose(-1, -2) * module.scale)  # [batch, head, query, token]
        found[path] = (scores / scores.sum(-1, keepdim=True))[rows].mean(dim=2)

    handles = [m.register_forward_pre_hook(lambda m, a, k, p=path: hook(m, a, k, p), with_kwargs=True)
               for path, m in unet.named_modules() if path.endswith("attn2")]
    try:
        with torch.no_grad():
            unet(sample, 3, text, added_cond_kwargs=added)
    finally:
        for handle in handles:
            handle.remove()
    return found


# --------------------------------------------------------------------------------------------
# Where the layers are


def test_sdxl_real_layout_has_70_cross_attention_layers_and_1300_heads():
    with torch.device("meta"):  # the real widths, no memory: only the module tree is read
        unet = UNet2DConditionModel(**unet_config("sdxl"))
    layers = cross_attention_layers(unet)
    assert len(layers) == 70
    assert {(l.query_height, l.heads, l.head_dim) for l in layers} == {(64, 10, 64), (32, 20, 64)}
    assert sum(l.query_height == 64 for l in layers) == 10
    assert sum(l.heads for l in layers) == 1300
    assert describe_layers(layers) == ("70 cross-attention layers (10 at 64x64 positions with 10 heads, "
                                       "60 at 32x32 positions with 20 heads), 1,300 heads in all")


def test_sdxl_tiny_pipeline_layout_and_its_family_description(pipe):
    instruments = instruments_for(pipe)
    layers = instruments.layers()
    assert instruments.family.name == "sdxl" and instruments.denoiser is pipe.unet
    assert len(layers) == 12 and {l.heads for l in layers} == {4}
    assert [l.label for l in layers][:4] == ["down.1.0.0", "down.1.0.1", "down.1.1.0", "down.1.1.1"]
    assert instruments.describe().startswith("Stable Diffusion XL: 12 cross-attention layers (12 at "
                                             "4x4 positions with 4 heads), 48 heads in all")
    assert all(type(p) is AttnProcessor2_0 for p in pipe.unet.attn_processors.values())


# --------------------------------------------------------------------------------------------
# Oracles: outputs as diffusers' own, probabilities as an explicit softmax


def test_sdxl_idle_and_recording_instruments_give_diffusers_own_outputs(pipe):
    unet = pipe.unet
    sample, text, added = unet_inputs(unet)
    with torch.no_grad():
        plain = unet(sample, 3, text, added_cond_kwargs=added).sample  # AttnProcessor2_0
        with instruments_for(pipe).install() as layers:
            idle = unet(sample, 3, text, added_cond_kwargs=added).sample
            record = AttentionRecord(layers, num_steps=1, num_images=2)
            recorded = unet(sample, 3, text, added_cond_kwargs=added,
                            cross_attention_kwargs={RECORD_KWARG: record}).sample
    assert (idle - plain).abs().max() <= 1e-6 and (recorded - plain).abs().max() <= 1e-6


def test_sdxl_added_cond_kwargs_reach_the_unet_untouched(pipe):
    unet = pipe.unet
    outputs = {}
    with torch.no_grad():
        for size in (64.0, 96.0):  # another original size: the time embedding changes
            sample, text, added = unet_inputs(unet, time_ids=[size, size, 0, 0, 64, 64])
            plain = unet(sample, 3, text, added_cond_kwargs=added).sample
            with instruments_for(pipe).install():
                outputs[size] = unet(sample, 3, text, added_cond_kwargs=added).sample
            assert (outputs[size] - plain).abs().max() <= 1e-6
    assert (outputs[64.0] - outputs[96.0]).abs().max() > 1e-4


def test_sdxl_recorded_probabilities_equal_an_explicit_softmax(pipe):
    unet = pipe.unet
    sample, text, added = unet_inputs(unet)
    expected = explicit_mass(unet, sample, text, added, slice(2, None))
    with torch.no_grad(), instruments_for(pipe).install() as layers:
        record = AttentionRecord(layers, num_steps=1, num_images=2)
        unet(sample, 3, text, added_cond_kwargs=added, cross_attention_kwargs={RECORD_KWARG: record})
    mass = record.mass()  # [image, step, layer, head, token]
    assert mass.shape == (2, 1, 12, 4, 77) and len(expected) == 12
    for slot, layer in enumerate(layers):
        assert (mass[:, 0, slot] - expected[layer.module_path]).abs().max() <= 1e-6


# --------------------------------------------------------------------------------------------
# Token positions from either tokenizer


def test_sdxl_tokenizers_give_the_same_word_positions(pipe):
    first, second = pipe.tokenizer, pipe.tokenizer_2
    assert second.pad_token == "!" and second.pad_token_id == 0 and first.pad_token_id == 49407
    for prompt in (PROMPT, "a t-shirt with Art by Andy Warhol", "sunset coaster!"):
        one, two = tokenize_prompt(first, prompt), tokenize_prompt(second, prompt)
        assert one.kinds == two.kinds and one.word_positions == two.word_positions
        assert set(two.ids[i] for i in two.padding_positions) == {0}  # "!" pads
        assert set(one.ids[i] for i in one.padding_positions) == {49407}
        assert tokenize_for_keys([first, second], prompt) == one
    groups = {"concept": "Neuschwanstein Castle", "object": "coaster"}
    assert token_groups(first, tokenize_prompt(first, PROMPT), groups) == \
        token_groups(second, tokenize_prompt(second, PROMPT), groups) == {"concept": [1, 2, 3, 4, 5],
                                                                          "object": [6]}


def test_sdxl_a_prompt_the_tokenizers_place_apart_is_refused(pipe):
    # "!!" is one CLIP token for the first tokenizer, two of its "!" pad tokens for the second:
    # every later word would sit at different positions in the two halves of the keys.
    with pytest.raises(ValueError, match=r"tokenizers 1 and 2 disagree at position 3 of prompt "
                                         r"'sunset coaster!! on a table': word '!!' against word '!'"):
        tokenize_for_keys([pipe.tokenizer, pipe.tokenizer_2], "sunset coaster!! on a table")
    with pytest.raises(ValueError, match="tokenizer 2 gives 8 positions, tokenizer 1 77"):
        tokenize_for_keys([pipe.tokenizer, clip_tokenizer(8)], "sunset coaster")


def test_sdxl_recording_a_pipeline_call_labels_both_images_tokens(pipe):
    prompts = [PROMPT, "sunset coaster"]
    instruments = instruments_for(pipe)
    tokens = [instruments.prompt_tokens(p) for p in prompts]
    with instruments.install() as layers:
        record = AttentionRecord(layers, num_steps=2, prompts=tokens)
        pipe(prompt=prompts, num_inference_steps=2, guidance_scale=5.0, output_type="latent",
             generator=[torch.Generator().manual_seed(s) for s in (1, 2)],
             cross_attention_kwargs={RECORD_KWARG: record})
    mass = record.mass()  # [image, step, layer, head, token]
    assert mass.shape == (2, 2, 12, 4, 77)
    assert torch.allclose(mass.sum(-1), torch.ones(2, 2, 12, 4), atol=1e-5)
    # "coaster" is token 6 of the first prompt and token 2 of the second: each image's own.
    frame = record.group_frame(instruments.tokenizer, {"object": "coaster"})
    coaster = frame[frame.group == "object"].set_index(["image", "step"])["mass"]
    for image, position in ((0, 6), (1, 2)):
        for step in (0, 1):
            expected = mass[image, step, :, :, position].mean().item()  # 4 heads in every layer
            assert coaster.loc[(image, step)] == pytest.approx(expected, rel=1e-5)


# --------------------------------------------------------------------------------------------
# Ablation


def test_sdxl_ablation_changes_only_the_ablated_head(pipe):
    unet = pipe.unet
    sample, text, added = unet_inputs(unet)
    layers = instruments_for(pipe).layers()
    target, head = layers[5], 2
    seen = {}

    def keep(module, args):  # the heads' outputs side by side, before the output projection
        seen["heads"] = args[0].detach().clone()  # [batch, query, head * dim]

    handle = unet.get_submodule(target.module_path).to_out[0].register_forward_pre_hook(keep)
    try:
        with torch.no_grad(), instruments_for(pipe).install() as installed:
            unet(sample, 3, text, added_cond_kwargs=added)
            plain = seen["heads"]
            record = AttentionRecord(installed, num_steps=1, num_images=2)
            ablation = HeadAblation(installed, {target.label: [head]})
            unet(sample, 3, text, added_cond_kwargs=added,
                 cross_attention_kwargs={ABLATION_KWARG: ablation, RECORD_KWARG: record})
            ablated = seen["heads"]
    finally:
        handle.remove()
    dims = slice(head * target.head_dim, (head + 1) * target.head_dim)
    assert plain[..., dims].abs().max() > 0 and ablated[..., dims].abs().max() == 0
    others = torch.ones(plain.shape[-1], dtype=torch.bool)
    others[dims] = False
    assert torch.equal(ablated[..., others], plain[..., others])
    assert target.label == "mid.0.1"
    with pytest.raises(ValueError, match=r"layer mid.0.1 has heads 0..3; got \[4\]"):
        HeadAblation(layers, {target.label: [4]})


# --------------------------------------------------------------------------------------------
# A saved pipeline loads as a user's would, and the commands run on it


def test_sdxl_folder_loads_through_the_user_path_with_ddim(folder, pipe):
    assert folder_family(folder).name == "sdxl"
    assert json.loads((folder / "model_index.json").read_text())["scheduler"][1] == "EulerDiscreteScheduler"
    loaded = load_pipeline(str(folder), device="cpu")
    assert isinstance(loaded, StableDiffusionXLPipeline) and isinstance(loaded.scheduler, DDIMScheduler)
    assert loaded.tokenizer_2.pad_token == "!" and len(instruments_for(loaded).layers()) == 12
    here = StableDiffusionXLPipeline(**{**pipe.components,
                                        "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)},
                                     add_watermarker=False)
    images = [p(prompt="sunset coaster", num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(3)).images for p in (loaded, here)]
    np.testing.assert_array_equal(images[0], images[1])


def test_sdxl_dvd_generate_records_the_family_and_its_attention(folder, tmp_path, capsys):
    out = tmp_path / "images"
    assert main(["generate", "--model", str(folder), "--out", str(out), "--cases", "1",
                 "--seed-list", "5", "--steps", "2", "--device", "cpu", "--record-attention",
                 "--no-progress"]) == 0
    settings = json.loads((out / "generation.json").read_text())
    assert settings["family"] == "sdxl" and settings["scheduler"] == "DDIMScheduler"
    # the model's own size (the published SDXL's is 1024 px; this tiny one makes 64 px)
    assert settings["family_defaults"] == {"steps": 50, "guidance": 5.0, "resolution": 64,
                                           "guidance_kind": "classifier-free"}
    assert settings["guidance"] == 5.0  # the family's default, not the paper's 7.5
    assert "guidance 5 (paper: 7.5)" in settings["differs_from_paper"]
    assert "image size 64x64 (paper: 512 px on SD 1.4, 768 px on SD 2.1)" in settings["differs_from_paper"]
    manifest = pd.read_csv(out / "manifest.csv")
    record = AttentionRecord.load(out / manifest.record_dir[0] / "attention.npz")
    assert record.mass().shape == (1, 2, 12, 4, 77)


def test_sdxl_dvd_probe_runs_end_to_end_and_writes_its_table_and_figure(folder, tmp_path, capsys):
    out = tmp_path / "probe"
    args = ["probe", "sunset coaster", "--concept", "sunset", "--object", "coaster", "-m",
            str(folder), "--judge", "toy", "--seeds", "2", "--steps", "2", "--device", "cpu",
            "--out", str(out), "--json", "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / "probe.json").read_text())
    assert (summary["steps"], summary["guidance"], summary["n_images"]) == (2, 5.0, 2)
    attention = pd.read_csv(out / "attention.csv")
    assert len(attention) == 2 * 2 and attention.pair_share.between(0, 1).all()
    assert summary["attention"]["tokens"] == {"concept": 1, "object": 1}
    judged = pd.read_csv(out / "judged.csv")
    assert summary["dvd"]["mean"] == pytest.approx(judged.dvd_score.mean())
    assert (out / "probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "images" / "generation.json").read_text())["family"] == "sdxl"
