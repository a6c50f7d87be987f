"""The recorder: processors installed and restored, outputs unchanged, probabilities recorded right."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnAddedKVProcessor

from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.record import AttentionRecord, MapRequest, RecordFullError
from dvdlib.models.random_weights import dummy_sd_pipeline, random_unet
from dvdlib.attention.token_positions import PhraseNotFoundError, tokenize_prompt

TEXT_DIM = 32


def toy_unet() -> UNet2DConditionModel:
    return random_unet("toy", TEXT_DIM)


def sd_unet(layout: str) -> UNet2DConditionModel:
    return random_unet(layout, TEXT_DIM)


UNETS = {"toy": toy_unet, "sd1": lambda: sd_unet("sd1"), "sd2": lambda: sd_unet("sd2")}


def inputs(unet, images: int = 2, guidance: bool = True, seed: int = 1):
    """A UNet batch: ``[uncond; cond]`` rows with guidance, else ``images`` rows."""
    g = torch.Generator().manual_seed(seed)
    rows = 2 * images if guidance else images
    size = unet.config.sample_size
    sample = torch.randn(rows, unet.config.in_channels, size, size, generator=g)
    text = torch.randn(rows, 77, TEXT_DIM, generator=g)
    return sample, text


def reference_mass(unet, sample, text, cond_rows: slice) -> dict[str, torch.Tensor]:
    """Per attn2 module: mean over queries of diffusers' own attention scores, ``[image, head, token]``."""
    found = {}

    def hook(module, args, kwargs, path):
        hidden = args[0] if args else kwargs["hidden_states"]
        enc = kwargs["encoder_hidden_states"]
        query = module.head_to_batch_dim(module.to_q(hidden))
        key = module.head_to_batch_dim(module.to_k(enc))
        probs = module.get_attention_scores(query, key)  # [batch * head, query, token]
        probs = probs.view(hidden.shape[0], module.heads, *probs.shape[1:])
        found[path] = probs[cond_rows].mean(dim=2)

    handles = [module.register_forward_pre_hook(lambda m, a, k, p=path: hook(m, a, k, p), with_kwargs=True)
               for path, module in unet.named_modules() if path.endswith("attn2")]
    try:
        with torch.no_grad():
            unet(sample, 3, text)
    finally:
        for handle in handles:
            handle.remove()
    return found


@pytest.mark.parametrize("kind", list(UNETS))
def test_outputs_unchanged_and_rows_sum_to_one(kind):
    unet = UNETS[kind]()
    sample, text = inputs(unet)
    with torch.no_grad():
        plain = unet(sample, 3, text).sample
        with attention_instruments(unet) as layers:
            record = AttentionRecord(layers, num_steps=1, num_images=2)
            recorded = unet(sample, 3, text, cross_attention_kwargs={"attention_record": record}).sample
            idle = unet(sample, 3, text).sample
    assert torch.allclose(recorded, plain, atol=1e-5, rtol=0)
    assert torch.allclose(idle, plain, atol=1e-5, rtol=0)
    mass = record.mass()  # [image, step, layer, head, token]
    assert mass.shape == (2, 1, len(layers), max(layer.heads for layer in layers), 77)
    for slot, layer in enumerate(layers):
        sums = mass[:, :, slot, : layer.heads].sum(-1)
        assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)
        assert mass[:, :, slot, layer.heads :].isnan().all()


def test_recorded_mass_equals_diffusers_attention_scores():
    unet = sd_unet("sd2")  # heads differ per level
    sample, text = inputs(unet)
    expected = reference_mass(unet, sample, text, slice(2, None))
    with torch.no_grad(), attention_instruments(unet) as layers:
        record = AttentionRecord(layers, num_steps=1, num_images=2)
        unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
    mass = record.mass()
    assert len(expected) == len(layers) == 16
    for slot, layer in enumerate(layers):
        assert torch.allclose(mass[:, 0, slot, : layer.heads], expected[layer.module_path], atol=1e-6)


def test_without_guidance_every_row_is_recorded():
    unet = toy_unet()
    sample, text = inputs(unet, images=3, guidance=False)
    expected = reference_mass(unet, sample, text, slice(None))
    with torch.no_grad(), attention_instruments(unet) as layers:
        record = AttentionRecord(layers, num_steps=1, num_images=3, classifier_free_guidance=False)
        unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
    assert torch.allclose(record.mass()[:, 0, 0], expected[layers[0].module_path], atol=1e-6)


def test_restores_processors_and_outputs_bit_for_bit():
    unet = toy_unet()
    sample, text = inputs(unet)
    before = unet.attn_processors
    with torch.no_grad():
        plain = unet(sample, 3, text).sample
        with attention_instruments(unet) as layers:
            assert all(unet.attn_processors[layer.name] is not before[layer.name] for layer in layers)
            record = AttentionRecord(layers, num_steps=1, num_images=2)
            unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
        after = unet(sample, 3, text).sample
    assert torch.equal(after, plain)
    now = unet.attn_processors
    assert now.keys() == before.keys() and all(now[key] is before[key] for key in before)


def test_restores_on_exception():
    unet = toy_unet()
    before = unet.attn_processors
    with pytest.raises(RuntimeError, match="boom"):
        with attention_instruments(unet):
            raise RuntimeError("boom")
    assert all(unet.attn_processors[key] is before[key] for key in before)
    # An error raised inside the UNet (a record made for another batch) restores too.
    sample, text = inputs(unet)
    with pytest.raises(ValueError, match="the UNet batch has 4 rows.*expects 2"):
        with torch.no_grad(), attention_instruments(unet) as layers:
            record = AttentionRecord(layers, num_steps=1, num_images=2, classifier_free_guidance=False)
            unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
    assert all(unet.attn_processors[key] is before[key] for key in before)


def test_no_warning_about_our_kwargs(caplog):
    unet = toy_unet()
    sample, text = inputs(unet)
    with caplog.at_level(logging.WARNING), torch.no_grad(), attention_instruments(unet) as layers:
        record = AttentionRecord(layers, num_steps=1, num_images=2)
        unet(sample, 3, text, cross_attention_kwargs={"attention_record": record, "head_ablation": None})
    assert "are not expected" not in caplog.text


def test_refuses_nesting_and_foreign_processors():
    unet = toy_unet()
    with attention_instruments(unet):
        with pytest.raises(RuntimeError, match="does not nest"):
            with attention_instruments(unet):
                pass
    processors = unet.attn_processors
    key = next(k for k in processors if "attn2" in k)
    unet.set_attn_processor({**processors, key: AttnAddedKVProcessor()})
    with pytest.raises(ValueError, match=f"{key} uses AttnAddedKVProcessor"):
        with attention_instruments(unet):
            pass


def test_steps_counted_by_each_layer_and_record_full():
    unet = toy_unet()
    with torch.no_grad(), attention_instruments(unet) as layers:
        record = AttentionRecord(layers, num_steps=2, num_images=2)
        steps = []
        for seed in (1, 2):
            sample, text = inputs(unet, seed=seed)
            steps.append(reference_mass(unet, sample, text, slice(2, None))[layers[-1].module_path])
            unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
        assert record.steps_recorded == 2
        mass = record.mass()
        for step in (0, 1):
            assert torch.allclose(mass[:, step, -1], steps[step], atol=1e-6)
        with pytest.raises(RecordFullError, match="room for 2 steps"):
            unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})


def test_nothing_recorded_is_an_error():
    layers = None
    with attention_instruments(toy_unet()) as layers:
        pass
    with pytest.raises(RuntimeError, match="nothing was recorded"):
        AttentionRecord(layers, num_steps=1, num_images=1).mass()


def test_spatial_maps_on_request():
    unet = toy_unet()
    sample, text = inputs(unet)
    with torch.no_grad(), attention_instruments(unet) as layers:
        record = AttentionRecord(layers, num_steps=3, num_images=2,
                                 maps=MapRequest(layers=["up.1.0.0", 1], tokens=[1, 5], steps=[0, 2]))
        for _ in range(3):
            unet(sample, 3, text, cross_attention_kwargs={"attention_record": record})
    assert [layer.label for layer in record.map_layers] == ["down.2.0.0", "up.1.0.0"]
    maps = record.token_maps("up.1.0.0")  # [image, map step, token, height, width]
    assert maps.shape == (2, 2, 2, 8, 8) and record.map_steps == [0, 2]
    # A map averaged over its positions is the head-mean of the recorded mass.
    mass = record.mass()[:, [0, 2], 5][..., [1, 5]].mean(dim=2)  # [image, map step, token]
    assert torch.allclose(maps.mean(dim=(-1, -2)), mass, atol=1e-6)
    with pytest.raises(KeyError, match="no maps kept for layer mid.0.0"):
        record.token_maps("mid.0.0")


def test_pipeline_call_with_guidance(tokenizer, tmp_path):
    pipe = dummy_sd_pipeline("sd1")
    prompts = ["Neuschwanstein Castle Coaster", "coaster of Neuschwanstein castle"]
    kwargs = dict(num_inference_steps=3, guidance_scale=7.5, output_type="pt", num_images_per_prompt=1)
    plain = pipe(prompts, generator=torch.Generator().manual_seed(0), **kwargs).images
    with attention_instruments(pipe.unet) as layers:
        tokens = [tokenize_prompt(pipe.tokenizer, p) for p in prompts]
        record = AttentionRecord(layers, num_steps=3, prompts=tokens)
        images = pipe(prompts, generator=torch.Generator().manual_seed(0),
                      cross_attention_kwargs={"attention_record": record}, **kwargs).images
    assert torch.allclose(images, plain, atol=1e-5)
    assert len(layers) == 16 and record.steps_recorded == 3

    table = record.to_frame()
    assert len(table) == 2 * 3 * 16 * 8 * 77
    columns = {"layer_label", "block", "query_height", "token_text", "token_kind", "mass", "word_share"}
    assert columns <= set(table)
    cells = table.groupby(["image", "step", "layer", "head"])
    assert np.allclose(cells["mass"].sum(), 1, atol=1e-5)
    words = table[table["token_kind"] == "word"]
    assert np.allclose(words.groupby(["image", "step", "layer", "head"])["word_share"].sum(), 1, atol=1e-5)
    assert table[table["token_kind"] != "word"]["word_share"].isna().all()
    first_cell = (words["image"] == 1) & (words["step"] == 0) & (words["layer"] == 0) & (words["head"] == 0)
    assert list(words[first_cell]["token_text"]) == ["coaster", "of", "neu", "sch", "wan", "stein", "castle"]

    groups = record.group_frame(pipe.tokenizer, {"concept": "neuschwanstein castle", "object": "coaster"})
    assert list(groups["group"].cat.categories) == ["concept", "object", "ungrouped_words", "start", "end", "padding"]
    assert np.allclose(groups.groupby(["image", "step"])["mass"].sum(), 1, atol=1e-5)
    word_groups = groups[groups["group"].isin(["concept", "object", "ungrouped_words"])]
    assert np.allclose(word_groups.groupby(["image", "step"])["word_share"].sum(), 1, atol=1e-5)
    n_tokens = groups[groups["step"] == 0].set_index(["image", "group"])["n_tokens"]
    assert n_tokens[(0, "concept")] == 5 and n_tokens[(0, "ungrouped_words")] == 0
    assert n_tokens[(1, "ungrouped_words")] == 1  # "of"
    assert n_tokens[(1, "padding")] == 77 - 9  # start, 7 words, end
    per_layer = record.group_frame(pipe.tokenizer, {"concept": [1, 2]}, by=("image", "step", "layer", "head"))
    assert len(per_layer) == 2 * 3 * 16 * 8 * 5 and "layer_label" in per_layer
    with pytest.raises(PhraseNotFoundError, match="'mug'.*not in prompt 'Neuschwanstein Castle Coaster'"):
        record.group_frame(pipe.tokenizer, {"object": "mug"})
    with pytest.raises(ValueError, match="needs 'layer' too"):
        record.group_frame(pipe.tokenizer, {"object": "coaster"}, by=("image", "step", "head"))

    path = record.save(tmp_path / "record.npz")
    loaded = AttentionRecord.load(path)
    assert torch.allclose(loaded.mass().nan_to_num(), record.mass().nan_to_num(), atol=1e-3)
    assert loaded.prompts == record.prompts and loaded.layers == record.layers
    assert [p.name for p in tmp_path.iterdir()] == ["record.npz"]
    assert path.stat().st_mode & 0o777 == 0o644  # readable by all, as every result dvdlib.store writes


def test_record_file_size_per_sd1_image(tmp_path):
    # 50 steps x 16 layers x 8 heads x 77 tokens, filled through the processors' entry point.
    with attention_instruments(sd_unet("sd1")) as layers:
        pass
    record = AttentionRecord(layers, num_steps=50, num_images=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        for layer in layers:
            record.add(layer, torch.softmax(3 * torch.randn(1, 8, 4, 77, generator=g), dim=-1))
    size = record.save(tmp_path / "sd1.npz").stat().st_size
    assert size <= 1_000_000, size
    assert torch.allclose(AttentionRecord.load(tmp_path / "sd1.npz").mass(), record.mass(), atol=1e-3)
