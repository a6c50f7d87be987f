"""Where the cross-attention layers of a diffusers UNet are: the locator of our attention instruments.

This module answers "which modules" only: it lists the cross-attention layers (``attn2`` in Stable
Diffusion) of a ``UNet2DConditionModel`` with their processor key, block, query resolution and head
count. What to do at those layers (record, ablate) is the processors' business
(:mod:`dvdlib.attention.recorder`, :mod:`dvdlib.attention.ablation`).

Works for any ``UNet2DConditionModel`` built from down / mid / up blocks: our toy model, SD 1.x
(16 layers of 8 heads), SD 2.x (16 layers, 5/10/20/20 heads per level) and SDXL (70 layers, several
transformer blocks per attention: 10 at 64x64 query positions with 10 heads and 60 at 32x32 with
20 heads at 1024 px). :func:`describe_layers` says it in one line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import pandas as pd
from diffusers.models.attention_processor import Attention

BLOCKS = ("down", "mid", "up")

_PATH = re.compile(
    r"^(?:(?P<block>down|up)_blocks\.(?P<block_index>\d+)|(?P<mid>mid)_block)"
    r"\.attentions\.(?P<attention>\d+)\.transformer_blocks\.(?P<transformer>\d+)\.(?P<attn>\w+)$"
)
_PROCESSOR_SUFFIX = ".processor"


@dataclass(frozen=True)
class CrossAttentionLayer:
    """One cross-attention layer: where it is and what shape its attention has."""

    index: int  # position in the UNet's forward order (down blocks, mid block, up blocks)
    name: str  # the processor key, as in ``unet.attn_processors`` and ``set_attn_processor``
    module_path: str  # the module's path, ``name`` without ``.processor``
    label: str  # short form of the path, e.g. ``down.1.0.0`` (block, block index, attention, transformer)
    block: str  # "down", "mid" or "up"
    block_index: int  # index in ``down_blocks`` / ``up_blocks``; 0 for the mid block
    heads: int
    head_dim: int
    query_height: int  # query resolution at the sample size the layers were located for
    query_width: int

    @property
    def query_positions(self) -> int:
        return self.query_height * self.query_width

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CrossAttentionLayer":
        return cls(**data)


def _sample_hw(unet, sample_size) -> tuple[int, int]:
    size = unet.config.sample_size if sample_size is None else sample_size
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(
            f"sample_size must be a positive int or (height, width) of the latent, got {sample_size!r}"
        )
    return int(size[0]), int(size[1])


def _block_resolutions(unet, sample_hw: tuple[int, int]) -> dict[tuple[str, int], tuple[int, int]]:
    """Query resolution of each down / mid / up block at the latent size ``sample_hw``."""
    resolutions: dict[tuple[str, int], tuple[int, int]] = {}
    height, width = sample_hw
    for i, block in enumerate(unet.down_blocks):
        resolutions[("down", i)] = (height, width)
        if getattr(block, "downsamplers", None):
            # A stride-2 convolution with padding 1: ceil(size / 2).
            height, width = -(-height // 2), -(-width // 2)
    resolutions[("mid", 0)] = (height, width)
    # Each up block works at the size of the skip connections it consumes: those of its mirror
    # down block (the UNet upsamples to the skip's size even for odd sizes).
    n_down = len(unet.down_blocks)
    for j in range(len(unet.up_blocks)):
        resolutions[("up", j)] = resolutions[("down", n_down - 1 - j)]
    return resolutions


def cross_attention_layers(unet, sample_size: int | Sequence[int] | None = None
                           ) -> tuple[CrossAttentionLayer, ...]:
    """The cross-attention layers of ``unet`` in forward order.

    ``sample_size`` is the latent size (int or ``(height, width)``) used for the query resolutions;
    by default the UNet's configured ``sample_size`` (64 for SD 1.x, i.e. 512 px images).
    """
    if not hasattr(unet, "down_blocks") or not hasattr(unet, "up_blocks"):
        raise TypeError(
            f"expected a diffusers UNet2DConditionModel (down / mid / up blocks), got {type(unet).__name__}"
        )
    resolutions = _block_resolutions(unet, _sample_hw(unet, sample_size))
    found = []
    for path, module in unet.named_modules():
        if not (isinstance(module, Attention) and module.is_cross_attention):
            continue
        match = _PATH.match(path)
        if match is None:
            raise ValueError(
                f"cross-attention module {path!r} is not inside a down / mid / up block's "
                f"transformer (expected e.g. 'down_blocks.1.attentions.0.transformer_blocks.0.attn2')"
            )
        block = "mid" if match["mid"] else match["block"]
        block_index = 0 if block == "mid" else int(match["block_index"])
        order = (BLOCKS.index(block), block_index, int(match["attention"]), int(match["transformer"]),
                 match["attn"])
        found.append((order, path, module, block, block_index, match))
    if not found:
        raise ValueError(f"{type(unet).__name__} has no cross-attention layers")
    found.sort(key=lambda item: item[0])
    layers = []
    for index, (_, path, module, block, block_index, match) in enumerate(found):
        height, width = resolutions[(block, block_index)]
        label_block = "mid" if block == "mid" else f"{block}.{block_index}"
        layers.append(CrossAttentionLayer(
            index=index,
            name=path + _PROCESSOR_SUFFIX,
            module_path=path,
            label=f"{label_block}.{match['attention']}.{match['transformer']}",
            block=block,
            block_index=block_index,
            heads=module.heads,
            head_dim=module.inner_dim // module.heads,
            query_height=height,
            query_width=width,
        ))
    return tuple(layers)


def find_layer(layers: Sequence[CrossAttentionLayer], key: str | int) -> CrossAttentionLayer:
    """The layer named by ``key``: its processor key, module path, label or index."""
    for layer in layers:
        if key in (layer.name, layer.module_path, layer.label) or (
            isinstance(key, int) and not isinstance(key, bool) and key == layer.index
        ):
            return layer
    shown = ", ".join(layer.label for layer in layers)
    raise KeyError(
        f"no cross-attention layer {key!r}; accepted: a processor key, a module path, an index "
        f"0..{len(layers) - 1} or a label ({shown})"
    )


def select_layers(layers: Sequence[CrossAttentionLayer], keys: Iterable[str | int] | str
                  ) -> tuple[CrossAttentionLayer, ...]:
    """Layers named by ``keys`` (see :func:`find_layer`), or a whole block: "down", "mid", "up", "all"."""
    if isinstance(keys, str) and keys in BLOCKS + ("all",):
        return tuple(layer for layer in layers if keys in ("all", layer.block))
    if isinstance(keys, (str, int)):
        keys = [keys]
    selected = {find_layer(layers, key).index: find_layer(layers, key) for key in keys}
    return tuple(selected[i] for i in sorted(selected))


def describe_layers(layers: Sequence[CrossAttentionLayer]) -> str:
    """The layers in one line: how many at each query resolution with how many heads, e.g.
    ``70 cross-attention layers (10 at 64x64 positions with 10 heads, 60 at 32x32 positions with
    20 heads), 1,300 heads in all``."""
    if not layers:
        raise ValueError("no layers to describe")
    counts: dict[tuple[int, int, int], int] = {}
    for layer in layers:
        key = (layer.query_height, layer.query_width, layer.heads)
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts.items(), key=lambda item: (-item[0][0] * item[0][1], item[0][2]))
    parts = ", ".join(f"{n} at {h}x{w} positions with {heads} head{'s' * (heads != 1)}"
                      for (h, w, heads), n in ordered)
    total = sum(layer.heads for layer in layers)
    return f"{len(layers)} cross-attention layers ({parts}), {total:,} heads in all"


def layers_frame(layers: Sequence[CrossAttentionLayer]) -> pd.DataFrame:
    """One row per layer: the metadata that tidy attention tables join on (column ``layer``)."""
    table = pd.DataFrame([layer.to_dict() for layer in layers])
    return table.rename(columns={"index": "layer"})
