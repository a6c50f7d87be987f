"""The cross-attention locator: layer counts, heads, blocks and query resolutions."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from dvdlib.attention.layers import cross_attention_layers, find_layer, layers_frame, select_layers
from dvdlib.models.random_weights import unet_config


def toy_unet(**overrides) -> UNet2DConditionModel:
    """The toy world's UNet layout (7 cross-attention layers of 4 heads)."""
    torch.manual_seed(0)
    config = dict(sample_size=16, in_channels=12, out_channels=12, block_out_channels=(32, 32, 64),
                  layers_per_block=1, norm_num_groups=8, attention_head_dim=4, cross_attention_dim=64,
                  down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
    return UNet2DConditionModel(**{**config, **overrides}).eval()


def sd_unet(layout: str, sample_size: int = 8) -> UNet2DConditionModel:
    torch.manual_seed(0)
    config = unet_config(layout, 0.1, sample_size=sample_size, cross_attention_dim=32)
    return UNet2DConditionModel(**config).eval()


def observed_query_lengths(unet, sample_hw, text_dim) -> dict[str, int]:
    """Query lengths each attn2 module really sees in a forward pass (forward pre-hooks, removed after)."""
    seen = {}

    def hook(module, args, kwargs, path):
        seen[path] = (args[0] if args else kwargs["hidden_states"]).shape[1]

    handles = [module.register_forward_pre_hook(lambda m, a, k, path=path: hook(m, a, k, path),
                                                with_kwargs=True)
               for path, module in unet.named_modules() if path.endswith("attn2")]
    try:
        with torch.no_grad():
            unet(torch.randn(1, unet.config.in_channels, *sample_hw), 1, torch.randn(1, 77, text_dim))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_toy_layout():
    layers = cross_attention_layers(toy_unet())
    assert [layer.label for layer in layers] == [
        "down.1.0.0", "down.2.0.0", "mid.0.0", "up.0.0.0", "up.0.1.0", "up.1.0.0", "up.1.1.0"]
    assert [layer.index for layer in layers] == list(range(7))
    assert all(layer.heads == 4 for layer in layers)
    assert [layer.query_height for layer in layers] == [8, 4, 4, 4, 4, 8, 8]
    assert layers[0].name == "down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor"
    assert layers[0].module_path + ".processor" == layers[0].name
    assert layers[0].head_dim == 8 and layers[1].head_dim == 16


def test_sd1_layout_at_512px():
    layers = cross_attention_layers(sd_unet("sd1"), sample_size=64)
    assert len(layers) == 16
    assert all(layer.heads == 8 for layer in layers)
    assert [layer.block for layer in layers] == ["down"] * 6 + ["mid"] + ["up"] * 9
    assert [layer.query_height for layer in layers] == [
        64, 64, 32, 32, 16, 16, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]


def test_sd2_heads_per_level():
    layers = cross_attention_layers(sd_unet("sd2"))
    assert len(layers) == 16
    assert [layer.heads for layer in layers] == [5, 5, 10, 10, 20, 20, 20, 20, 20, 20, 10, 10, 10, 5, 5, 5]
    assert {layer.head_dim for layer in layers if layer.heads == 5} == {layers[0].head_dim}


@pytest.mark.parametrize("sample_hw", [(8, 8), (8, 16), (10, 6)])
def test_query_resolution_matches_a_forward_pass(sample_hw):
    unet = sd_unet("sd1")
    layers = cross_attention_layers(unet, sample_size=sample_hw)
    seen = observed_query_lengths(unet, sample_hw, 32)
    assert {layer.module_path: layer.query_positions for layer in layers} == seen


def test_several_transformer_blocks_per_attention():
    # SDXL-like: transformer depth 2 in the deeper block.
    unet = toy_unet(transformer_layers_per_block=(1, 1, 2))
    layers = cross_attention_layers(unet)
    labels = [layer.label for layer in layers]
    assert "down.2.0.1" in labels and "up.0.1.1" in labels
    seen = observed_query_lengths(unet, (16, 16), 64)
    assert {layer.module_path: layer.query_positions for layer in layers} == seen


def test_find_and_select():
    layers = cross_attention_layers(toy_unet())
    mid = layers[2]
    for key in (mid.name, mid.module_path, mid.label, 2):
        assert find_layer(layers, key) is mid
    with pytest.raises(KeyError, match="no cross-attention layer 'up.9'.*accepted"):
        find_layer(layers, "up.9")
    up = ["up.0.0.0", "up.0.1.0", "up.1.0.0", "up.1.1.0"]
    assert [layer.label for layer in select_layers(layers, "up")] == up
    assert select_layers(layers, [3, "down.1.0.0"]) == (layers[0], layers[3])
    assert len(select_layers(layers, "all")) == 7
    table = layers_frame(layers)
    assert list(table["layer"]) == list(range(7)) and set(table["block"]) == {"down", "mid", "up"}


def test_bad_inputs():
    unet = toy_unet()
    with pytest.raises(ValueError, match="sample_size"):
        cross_attention_layers(unet, sample_size=(8, 0))
    with pytest.raises(TypeError, match="UNet2DConditionModel"):
        cross_attention_layers(torch.nn.Linear(2, 2))
