"""Our measures of how a concept takes over cross-attention across the denoising steps.

The paper names a "Focus Score" but does not publish its formula. The measures here are ours,
defined in ``book/definitions_attention.md``:

- :func:`concept_share`: per step, the concept's share of the attention that goes to the prompt's
  word tokens, against the pair's object (``pair_share = c / (c + o)``) and against all word tokens
  (``word_share``).
- :func:`saturation_step`: the first step from which a share stays at or above a threshold until the
  last step.
- :func:`entropy_concentration`, :func:`top_mass`, :func:`map_concentration`: how concentrated a
  token's spatial attention map is (1 - normalised entropy; mass in the top fraction of positions).

They take the record (:class:`~dvdlib.attention.record.AttentionRecord`) or its tidy tables.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.attention.record import GROUP_AXES, AttentionRecord

SHARE_COLUMNS = ("pair_share", "word_share")


def concept_share(source: AttentionRecord | pd.DataFrame, concept: str, obj: str, tokenizer=None,
                  by: Sequence[str] = ("image", "step")) -> pd.DataFrame:
    """Per step, the concept's share against the object ``obj`` and against all word tokens.

    ``source`` is a record (then ``concept`` and ``obj`` are phrases of the prompt, found with
    ``tokenizer``, and ``by`` says which axes to keep) or a table from
    :meth:`AttentionRecord.group_frame` (then they are group names). Columns: the table's axes,
    ``concept_mass``, ``object_mass`` (shares of all 77 positions), ``pair_share`` = concept /
    (concept + object) and ``word_share`` = concept / all word tokens.
    """
    if isinstance(source, AttentionRecord):
        if tokenizer is None:
            raise ValueError("concept_share of a record needs the pipeline's tokenizer to find the phrases")
        source = source.group_frame(tokenizer, {"concept": concept, "object": obj}, by=by)
        concept, obj = "concept", "object"
    groups = set(source["group"].astype(str))
    missing = [name for name in (concept, obj) if name not in groups]
    if missing:
        raise KeyError(f"groups {missing} are not in the table; its groups: {sorted(groups)}")
    axes = [axis for axis in GROUP_AXES if axis in source.columns]
    wide = source.pivot_table(index=axes, columns="group", values=["mass", "word_share"], observed=True)
    table = pd.DataFrame({
        "concept_mass": wide[("mass", concept)],
        "object_mass": wide[("mass", obj)],
        "word_share": wide[("word_share", concept)],
    })
    table.insert(2, "pair_share", table["concept_mass"] / (table["concept_mass"] + table["object_mass"]))
    return table.reset_index()


def saturation_step(shares: pd.DataFrame, threshold: float, column: str = "pair_share") -> pd.DataFrame:
    """The first step from which ``column`` stays >= ``threshold`` at every later recorded step.

    One row per cell of the table's other axes (image, and layer / head if kept):
    ``saturation_step`` (NA when the share ends below the threshold), ``num_steps`` and
    ``saturation_fraction`` = saturation_step / num_steps (0 = saturated from the first step).
    """
    if column not in shares.columns:
        accepted = [c for c in SHARE_COLUMNS if c in shares]
        raise KeyError(f"column {column!r} is not in the table; accepted: {accepted}")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    axes = [axis for axis in GROUP_AXES if axis in shares.columns and axis != "step"]
    rows = []
    for key, cell in shares.sort_values("step").groupby(axes, observed=True, sort=True):
        values = cell[column].to_numpy()
        steps = cell["step"].to_numpy()
        below = np.flatnonzero(~(values >= threshold))  # NaN counts as below
        if len(below) == 0:
            first = int(steps[0])
        elif below[-1] == len(values) - 1:
            first = None
        else:
            first = int(steps[below[-1] + 1])
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(axes, key)), "saturation_step": first, "num_steps": len(values)})
    table = pd.DataFrame(rows)
    table["saturation_step"] = table["saturation_step"].astype("Int64")
    table["saturation_fraction"] = table["saturation_step"] / table["num_steps"]
    table["threshold"] = threshold
    return table


def entropy_concentration(maps: torch.Tensor) -> torch.Tensor:
    """1 - H(p) / log(n) of each map ``[..., height, width]`` normalised to p: 0 uniform, 1 one position."""
    flat = maps.flatten(-2).double()  # [..., position]
    n = flat.shape[-1]
    if n < 2:
        raise ValueError(f"a map needs at least 2 positions to measure concentration, got {n}")
    p = flat / flat.sum(-1, keepdim=True)
    entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)  # 0 log 0 = 0
    return (1 - entropy / math.log(n)).to(maps.dtype)


def top_mass(maps: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """Share of each map's mass in its top ``ceil(fraction * n)`` positions (``fraction`` when uniform)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    flat = maps.flatten(-2)  # [..., position]
    k = math.ceil(fraction * flat.shape[-1])
    return flat.topk(k, dim=-1).values.sum(-1) / flat.sum(-1)


def map_concentration(record: AttentionRecord, fraction: float = 0.1) -> pd.DataFrame:
    """Both concentration measures for every kept map: one row per image, step, layer and token."""
    if not record.map_layers:
        raise ValueError("the record kept no spatial maps: make it with maps=MapRequest(...)")
    rows = []
    tokens = record.map_tokens
    for layer in record.map_layers:
        maps = record.token_maps(layer.name)  # [image, map step, token, height, width]
        entropy = entropy_concentration(maps)  # [image, map step, token]
        top = top_mass(maps, fraction)
        image, step, token = np.indices(entropy.shape).reshape(3, -1)
        rows.append(pd.DataFrame({
            "image": image, "step": np.array(record.map_steps)[step], "layer": record.layers.index(layer),
            "layer_label": layer.label, "token": np.array(tokens)[token],
            "entropy_concentration": entropy.reshape(-1).numpy(),
            "top_mass": top.reshape(-1).numpy(), "top_fraction": fraction,
        }))
    return pd.concat(rows, ignore_index=True)
