"""Where the image-to-text attention of an MMDiT is: the locator of the joint-attention instruments.

SD3/SD3.5 and Flux have no cross-attention layer: image and text tokens attend to each other in
one joint attention per block, and the image-query x text-key block of it plays the part of the
UNet's ``attn2``. This module lists those attentions with the same
:class:`~dvdlib.attention.layers.CrossAttentionLayer` records as the UNet locator (processor key,
module path, label, block, head count and dimension, image-token grid), so records, tables and
head ablations name layers alike in every family:

- **SD3/SD3.5** (``SD3Transformer2DModel``): one layer per joint block, ``transformer_blocks.i.attn``,
  label ``joint.i``. The sequence is ``[image; text]`` (image first). SD3.5's second attention
  (``attn2``, image-only self-attention in its first blocks) sees no text and is not a layer.
  SD3-Medium and SD3.5-Medium have 24 blocks of 24 heads, SD3.5-Large 38 of 38 (head dim 64).
- **Flux** (``FluxTransformer2DModel``): the double-stream blocks ``transformer_blocks.i.attn``
  (label ``double.i``, separate image and text weights, sequence ``[text; image]``), then the
  single-stream blocks ``single_transformer_blocks.j.attn`` (label ``single.j``, one stream
  ``[text; image]``). Flux.1 has 19 double and 38 single blocks of 24 heads (head dim 128).

``sample_size`` is the VAE latent's size (image size // the pipeline's ``vae_scale_factor``, 8 for
the real models); the image-token grid is that divided by the patch size (SD3) or by 2 (Flux packs
2x2 latent pixels into one token).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

from dvdlib.attention.layers import CrossAttentionLayer, find_layer

JOINT_FAMILIES = ("sd3", "flux")
JOINT_BLOCKS = ("joint", "double", "single")
_FLUX_PACKING = 2
_FLUX_DEFAULT_LATENT = 128  # 1024 px at Flux's 8x VAE


def transformer_family(transformer) -> str:
    """"sd3" for an ``SD3Transformer2DModel``, "flux" for a ``FluxTransformer2DModel``."""
    if isinstance(transformer, SD3Transformer2DModel):
        return "sd3"
    if isinstance(transformer, FluxTransformer2DModel):
        return "flux"
    raise ValueError(f"{type(transformer).__name__} is not a joint-attention transformer; accepted: "
                     "SD3Transformer2DModel (SD3/SD3.5), FluxTransformer2DModel (Flux)")


def _grid(transformer, family: str, sample_size) -> tuple[int, int]:
    if sample_size is None:
        sample_size = transformer.config.sample_size if family == "sd3" else _FLUX_DEFAULT_LATENT
    size = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
    patch = transformer.config.patch_size if family == "sd3" else _FLUX_PACKING
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 and s % patch == 0
                                 for s in size):
        raise ValueError(f"sample_size {sample_size!r}: give the latent's size (image size // the "
                         f"pipeline's vae_scale_factor) as an int or (height, width) of positive "
                         f"multiples of {patch}")
    return size[0] // patch, size[1] // patch


def joint_attention_layers(transformer, sample_size: int | Sequence[int] | None = None
                           ) -> tuple[CrossAttentionLayer, ...]:
    """The joint attentions of ``transformer`` in forward order, as layers.

    ``query_height`` x ``query_width`` is the image-token grid at latent size ``sample_size``
    (default: the model's own, 128 x 128 = 1024 px for Flux).
    """
    family = transformer_family(transformer)
    height, width = _grid(transformer, family, sample_size)
    first = "joint" if family == "sd3" else "double"
    blocks = [(first, "transformer_blocks", transformer.transformer_blocks)]
    if family == "flux":
        blocks.append(("single", "single_transformer_blocks", transformer.single_transformer_blocks))
    layers = []
    for block, attribute, modules in blocks:
        for i, module in enumerate(modules):
            attn = module.attn
            heads = attn.heads
            layers.append(CrossAttentionLayer(
                index=len(layers), name=f"{attribute}.{i}.attn.processor",
                module_path=f"{attribute}.{i}.attn", label=f"{block}.{i}", block=block, block_index=i,
                heads=heads, head_dim=attn.inner_dim // heads, query_height=height, query_width=width))
    return tuple(layers)


def find_joint_layer(layers: Sequence[CrossAttentionLayer], key: str | int) -> CrossAttentionLayer:
    """The layer named by ``key`` (processor key, module path, label or index); a ValueError naming
    the accepted ones otherwise."""
    try:
        return find_layer(layers, key)
    except KeyError:
        labels = [layer.label for layer in layers]
        raise ValueError(f"no layer {key!r} in this transformer; accepted: an index 0..{len(layers) - 1}, "
                         f"a label ({labels[0]} ... {labels[-1]}), a module path or a processor key"
                         ) from None


def select_joint_layers(layers: Sequence[CrossAttentionLayer], keys: Iterable[str | int] | str
                        ) -> tuple[CrossAttentionLayer, ...]:
    """Layers named by ``keys`` (see :func:`find_joint_layer`), or a whole kind of block: "all",
    "joint" (SD3), "double" or "single" (Flux)."""
    if isinstance(keys, str) and keys in ("all",) + JOINT_BLOCKS:
        chosen = tuple(layer for layer in layers if keys in ("all", layer.block))
        if not chosen:
            present = sorted({layer.block for layer in layers})
            raise ValueError(f"no {keys!r} blocks in this transformer; accepted: 'all', {present}")
        return chosen
    if isinstance(keys, (str, int)):
        keys = [keys]
    found = {layer.index: layer for layer in (find_joint_layer(layers, key) for key in keys)}
    return tuple(found[i] for i in sorted(found))


def check_heads(layer: CrossAttentionLayer, heads: Iterable) -> tuple[int, ...]:
    """``heads`` as sorted whole numbers inside ``0..layer.heads - 1``; a ValueError otherwise."""
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Iterable):
        raise ValueError(f"heads of layer {layer.label} must be a list of head indices "
                         f"(0..{layer.heads - 1}) or 'all', got {heads!r}")
    chosen = []
    for head in heads:
        if isinstance(head, bool) or not hasattr(head, "__index__") or not 0 <= int(head) < layer.heads:
            raise ValueError(f"head {head!r} is not in layer {layer.label}; accepted: whole numbers "
                             f"0..{layer.heads - 1}, or 'all'")
        chosen.append(int(head))
    return tuple(sorted(set(chosen)))




_BLOCK_NAMES = {"double": "double-stream", "single": "single-stream"}


def describe_joint_layers(layers: Sequence[CrossAttentionLayer]) -> str:
    """The joint-attention layers in one line, by kind of block, e.g. ``57 joint-attention layers
    (19 double-stream, double.0 to double.18; 38 single-stream, single.0 to single.37), 24 heads
    each, 1,368 heads in all, over 64x64 image tokens``."""
    if not layers:
        raise ValueError("no layers to describe")
    kinds: dict[tuple[str, int], list[str]] = {}
    for layer in layers:
        kinds.setdefault((layer.block, layer.heads), []).append(layer.label)
    heads = {layer.heads for layer in layers}
    parts = []
    for (block, count), labels in kinds.items():
        span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
        name = f"{len(labels)} {_BLOCK_NAMES[block]}, " if block in _BLOCK_NAMES else ""
        parts.append(name + span + ("" if len(heads) == 1 else f", {count} heads"))
    each = f", {next(iter(heads))} heads each" if len(heads) == 1 else ""
    grids = " or ".join(f"{h}x{w}" for h, w in sorted({(layer.query_height, layer.query_width)
                                                        for layer in layers}))
    total = sum(layer.heads for layer in layers)
    return (f"{len(layers)} joint-attention layers ({'; '.join(parts)}){each}, {total:,} heads in "
            f"all, over {grids} image tokens")
