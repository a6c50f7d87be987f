"""Which heads the head intervention ablates: a ranking made on one model, checked against another.

A :class:`HeadRanking` is an order of every cross-attention head of one model (most attention
to the concept first, as chapter 4 ranks them), with the layout it was made on (each layer's
label and head count) and the model's name. The head intervention ablates its first ``k``
heads; the control ablates ``k`` heads of a seeded random order (:func:`random_order`).

A ranking only means something on the model it was made on: :meth:`HeadRanking.check` refuses
it, in one line, on a model whose layers or head counts differ, and :func:`model_layout` reads a
model's layout from its configuration without loading its weights, so a ranking from another
model is refused before any model loads. Rankings are saved and read as JSON
(:meth:`HeadRanking.save`, :func:`load_ranking`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers
from dvdlib.store import atomic_write_json

FORMAT = "dvdlib.HeadRanking/1"
Layout = tuple[tuple[str, int], ...]  # (layer label, heads) of every cross-attention layer


def layout_of(layers: Sequence[CrossAttentionLayer]) -> Layout:
    return tuple((layer.label, layer.heads) for layer in layers)


def _layout_text(layout: Layout) -> str:
    return f"{len(layout)} layers, {sum(h for _, h in layout)} heads"


@dataclass(frozen=True)
class HeadRanking:
    """Every head of one model, from the most to the least attention to the concept."""

    model: str  # the model it was made on, as the run named it
    layout: Layout
    order: tuple[tuple[str, int], ...]  # (layer label, head)
    by: str = "concept_mass"  # the measure it ranks by

    def __post_init__(self):
        heads = {(label, h) for label, n in self.layout for h in range(n)}
        order = [(str(label), int(h)) for label, h in self.order]
        if len(order) != len(heads) or set(order) != heads:
            raise ValueError(f"a head ranking must list each of the {len(heads)} heads of its "
                             f"layout once; got {len(order)} entries")
        object.__setattr__(self, "order", tuple(order))
        object.__setattr__(self, "layout", tuple((str(l), int(n)) for l, n in self.layout))

    @property
    def total_heads(self) -> int:
        return len(self.order)

    def check(self, layout: Layout, model: str = "this model") -> None:
        """Refuse the ranking on a model whose layers or head counts differ (one line)."""
        if tuple(layout) != self.layout:
            raise ValueError(
                f"head ranking made on {self.model} ({_layout_text(self.layout)}) does not fit "
                f"{model} ({_layout_text(tuple(layout))}); accepted: a ranking made on the same "
                f"model, or none (the run ranks its own heads)")

    def top(self, k: int) -> list[tuple[str, int]]:
        """The first ``k`` heads."""
        return list(self.order[:check_head_count(k, self.total_heads)])

    def to_dict(self) -> dict:
        return {"format": FORMAT, "model": self.model, "by": self.by,
                "layout": [list(item) for item in self.layout],
                "order": [list(item) for item in self.order]}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(Path(path), self.to_dict())


def load_ranking(path: str | Path) -> HeadRanking:
    """A ranking saved by :meth:`HeadRanking.save`; a ValueError naming the file otherwise."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"head ranking {str(path)!r} does not exist; accepted: a JSON file a "
                         f"rescue run saved (tables/head_ranking.json)") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"head ranking {str(path)!r} is not readable JSON: "
                         f"{' '.join(str(err).split())}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"head ranking {str(path)!r} is not a head ranking ({FORMAT})")
    return HeadRanking(str(data["model"]), tuple(map(tuple, data["layout"])),
                       tuple(map(tuple, data["order"])), str(data.get("by", "concept_mass")))


def check_head_count(k, total: int) -> int:
    """``k`` as an int if it is a whole number of heads in 0..``total`` (one-line ValueError)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer, float)) \
            or (isinstance(k, float) and not k.is_integer()) or not 0 <= k <= total:
        raise ValueError(f"heads k {k!r}: accepted: a whole number of heads from 0 to {total} "
                         f"(the model's cross-attention heads)")
    return int(k)


def random_order(layout: Layout, seed: int = 0) -> list[tuple[str, int]]:
    """Every head of ``layout`` in a seeded random order (the control's)."""
    heads = [(label, h) for label, n in layout for h in range(n)]
    return [heads[i] for i in np.random.default_rng(seed).permutation(len(heads))]


def head_mask(heads: Sequence[tuple[str, int]]) -> dict[str, list[int]]:
    """Heads as :class:`~dvdlib.attention.ablation.HeadAblation` takes them: label -> indices."""
    mask: dict[str, list[int]] = {}
    for label, head in heads:
        mask.setdefault(label, []).append(int(head))
    return mask


def model_layout(model: str, zoo_folder: str = "") -> Layout | None:
    """The cross-attention layout of ``model`` read from its configuration, no weights loaded;
    None when the configuration is not on disk (loading the model will then say so)."""
    import torch
    from diffusers import UNet2DConditionModel

    from dvdlib.models.spec import parse_model

    spec = parse_model(model)
    if spec.is_toy:
        from dvdlib.toyworld.zoo import zoo_manifest

        config = zoo_manifest(zoo_folder or None)["components"]["unet"]
    else:
        config = _real_unet_config(spec)
        if config is None:
            return None
    with torch.device("meta"):  # the structure only: no memory, no weights
        unet = UNet2DConditionModel.from_config(config)
    return layout_of(cross_attention_layers(unet))


def _real_unet_config(spec) -> dict | None:
    """``unet/config.json`` of a pipeline folder or of a Hugging Face id in the local cache."""
    if spec.kind == "folder":
        path = spec.folder / "unet" / "config.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    for repo_id in spec.repo_ids:
        found = try_to_load_from_cache(repo_id, "unet/config.json")
        if isinstance(found, str):
            return json.loads(Path(found).read_text(encoding="utf-8"))
    return None
