"""Head ablation: the operators against independent references, per-call masks, composition with recording."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from dvdlib.attention.ablation import HeadAblation, each_head, each_layer
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.record import AttentionRecord
from dvdlib.models.random_weights import dummy_sd_pipeline, random_unet

TEXT_DIM = 32


def toy_unet() -> UNet2DConditionModel:
    return random_unet("toy", TEXT_DIM)


def sd_unet(layout: str) -> UNet2DConditionModel:
    return random_unet(layout, TEXT_DIM)


def inputs(unet, rows: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    size = unet.config.sample_size
    return (torch.randn(rows, unet.config.in_channels, size, size, generator=g),
            torch.randn(rows, 77, TEXT_DIM, generator=g))


def run(unet, sample, text, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return unet(sample, 3, text, cross_attention_kwargs=kwargs or None).sample


def per_head_output(attn, hidden, text) -> torch.Tensor:
    """Each head's output with diffusers' own attention maths: ``[batch, head, query, dim]``."""
    query = attn.head_to_batch_dim(attn.to_q(hidden))
    key = attn.head_to_batch_dim(attn.to_k(text))
    value = attn.head_to_batch_dim(attn.to_v(text))
    out = torch.bmm(attn.get_attention_scores(query, key), value)  # [batch * head, query, dim]
    return out.view(hidden.shape[0], attn.heads, *out.shape[1:])


def project(attn, heads_out) -> torch.Tensor:
    batch, heads, queries, dim = heads_out.shape
    return attn.to_out[0](heads_out.transpose(1, 2).reshape(batch, queries, heads * dim))


@pytest.mark.parametrize("operator, factor", [("zero", None), ("scale", 0.5), ("scale", 3.0), ("mean", None)])
def test_operators_at_one_layer_match_a_reference(operator, factor):
    unet = sd_unet("sd2")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad(), attention_instruments(unet) as layers:
        layer = layers[2]  # 10 heads
        attn = unet.get_submodule(layer.module_path)
        hidden = torch.randn(3, layer.query_positions, attn.to_q.in_features, generator=g)
        text = torch.randn(3, 77, TEXT_DIM, generator=g)
        ablation = HeadAblation(layers, {layer.label: [1, 7]}, operator, factor)
        ablated = attn(hidden, encoder_hidden_states=text, head_ablation=ablation)
        expected = per_head_output(attn, hidden, text)
        chosen = expected[:, [1, 7]]
        expected[:, [1, 7]] = {"zero": lambda: chosen * 0, "scale": lambda: chosen * (factor or 1),
                               "mean": lambda: chosen.mean(dim=2, keepdim=True).expand_as(chosen)}[operator]()
    assert torch.allclose(ablated, project(attn, expected), atol=1e-5)


def test_zero_matches_removing_the_head_from_the_weights():
    unet = toy_unet()
    sample, text = inputs(unet)
    surgery = copy.deepcopy(unet)
    with attention_instruments(unet) as layers:
        layer = layers[4]
        columns = slice(2 * layer.head_dim, 3 * layer.head_dim)  # head 2
        with torch.no_grad():
            surgery.get_submodule(layer.module_path).to_out[0].weight[:, columns] = 0
        ablated = run(unet, sample, text, head_ablation=HeadAblation(layers, {layer.name: [2]}))
    assert torch.allclose(ablated, run(surgery, sample, text), atol=1e-5)
    assert not torch.allclose(ablated, run(unet, sample, text), atol=1e-4)


@pytest.mark.parametrize("kind", ["toy", "sd1", "sd2"])
def test_ablating_every_head_makes_the_output_independent_of_the_prompt(kind):
    unet = {"toy": toy_unet, "sd1": lambda: sd_unet("sd1"), "sd2": lambda: sd_unet("sd2")}[kind]()
    sample, text = inputs(unet, seed=1)
    _, other_text = inputs(unet, seed=2)
    with attention_instruments(unet) as layers:
        everything = HeadAblation(layers, "all")
        assert everything.num_heads == sum(layer.heads for layer in layers)
        first = run(unet, sample, text, head_ablation=everything)
        second = run(unet, sample, other_text, head_ablation=everything)
        unablated = run(unet, sample, other_text)
    assert torch.equal(first, second)
    assert not torch.allclose(first, unablated, atol=1e-4)


def test_mask_varies_per_call_without_reinstall():
    unet = toy_unet()
    sample, text = inputs(unet)
    plain = run(unet, sample, text)
    with attention_instruments(unet) as layers:
        installed = unet.attn_processors
        outputs = {}
        for layer, head, ablation in each_head(layers[:2]):
            outputs[(layer.label, head)] = run(unet, sample, text, head_ablation=ablation)
        assert all(unet.attn_processors[key] is installed[key] for key in installed)
        again = run(unet, sample, text, head_ablation=HeadAblation(layers, {"down.1.0.0": [0]}))
        none = run(unet, sample, text, head_ablation=HeadAblation(layers, {}))
        by_layer = [ablation for _, ablation in each_layer(layers)]
    assert len(outputs) == 8 and len(by_layer) == 7 and by_layer[3].num_heads == 4
    assert torch.equal(again, outputs[("down.1.0.0", 0)])
    assert not torch.allclose(outputs[("down.1.0.0", 0)], outputs[("down.1.0.0", 1)], atol=1e-6)
    assert torch.allclose(none, plain, atol=1e-6)


def test_composes_with_recording_in_one_call():
    unet = toy_unet()
    sample, text = inputs(unet)
    with attention_instruments(unet) as layers:
        ablation = HeadAblation(layers, {"down.1.0.0": "all", "mid.0.0": [1]}, "mean")
        clean = AttentionRecord(layers, num_steps=1, num_images=2)
        run(unet, sample, text, attention_record=clean)
        both = AttentionRecord(layers, num_steps=1, num_images=2)
        out_both = run(unet, sample, text, attention_record=both, head_ablation=ablation)
        out_ablation = run(unet, sample, text, head_ablation=ablation)
    assert torch.equal(out_both, out_ablation)
    # The first layer's probabilities do not depend on its own ablation; later layers see its effect.
    assert torch.allclose(both.mass()[:, :, 0], clean.mass()[:, :, 0], atol=1e-6)
    assert not torch.allclose(both.mass()[:, :, 1], clean.mass()[:, :, 1], atol=1e-5)


def test_pipeline_with_every_head_ablated_ignores_the_prompt():
    pipe = dummy_sd_pipeline("sd1")
    kwargs = dict(num_inference_steps=2, guidance_scale=7.5, output_type="pt")
    with attention_instruments(pipe.unet) as layers:
        ablation = {"head_ablation": HeadAblation(layers, "all")}
        castle = pipe("Neuschwanstein Castle Coaster", generator=torch.Generator().manual_seed(0),
                      cross_attention_kwargs=ablation, **kwargs).images
        mug = pipe("Van Gogh mug", generator=torch.Generator().manual_seed(0),
                   cross_attention_kwargs=ablation, **kwargs).images
        mug_plain = pipe("Van Gogh mug", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert torch.equal(castle, mug)
    assert not torch.equal(mug, mug_plain)


def test_bad_masks_are_named():
    with attention_instruments(toy_unet()) as layers:
        with pytest.raises(ValueError, match="unknown operator 'drop'; accepted: zero, mean, scale"):
            HeadAblation(layers, {0: [0]}, "drop")
        with pytest.raises(ValueError, match="factor is given with operator='scale' only"):
            HeadAblation(layers, {0: [0]}, "scale")
        with pytest.raises(ValueError, match="factor is given"):
            HeadAblation(layers, {0: [0]}, "zero", factor=2.0)
        with pytest.raises(ValueError, match="layer down.1.0.0 has heads 0..3; got \\[4\\]"):
            HeadAblation(layers, {0: [4]})
        with pytest.raises(KeyError, match="no cross-attention layer 'up_blocks.7'"):
            HeadAblation(layers, {"up_blocks.7": [0]})
        assert HeadAblation(layers, {"mid.0.0": [2, 0, 2]}).heads == {layers[2].name: (0, 2)}
        assert repr(HeadAblation(layers, {2: [0]}, "scale", 0.5)) == "HeadAblation(scale x0.5 mid.0.0:0)"
