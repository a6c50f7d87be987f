"""Our shares, read from the attention records of a folder of generated images.

A generation run names, for every image, the record of its pipeline call (``record_dir``) and the
image's place in it (``record_image``). The functions here read those records back into tables
keyed by the caller's own image columns; chapter 3 and ``dvd probe`` both read their images so:

- :func:`record_shares`: per image and step (and per layer, and the spatial concentration of
  the concept's and the object's maps, on request) the shares of
  :func:`~dvdlib.attention.shares.concept_share`, plus the object's own share of the word tokens;
- :func:`layer_levels`: each recorded layer's block and query resolution (``down 8x8``);
- :func:`group_concentration`: how concentrated the concept's and the object's maps are;
- :func:`group_maps`: the spatial maps of one image on the concept and on the object;
- :func:`target_shares`: for a prompt with several targets (:mod:`dvdlib.prompts.targets`), per
  image, step and target, the target's mass, its share of the word tokens and its share of the
  targets' attention, each target read at its own tokens (the span its alignment gave it, so a
  word that recurs in the prompt counts only at its own occurrence).

The concept and the object are found as their prompt writes them
(:func:`dvdlib.prompts.prompt_sets.concept_phrase`,
:func:`~dvdlib.prompts.prompt_sets.object_phrase`), so a record must hold one prompt: one
pipeline call per prompt.

Records of every family are read alike: a record file is read by the class that wrote it
(:func:`~dvdlib.attention.instruments.load_record`: an
:class:`~dvdlib.attention.record.AttentionRecord` of a UNet's cross-attention, or a
:class:`~dvdlib.attention.joint_record.JointAttentionRecord` of an MMDiT's joint attention, whose
``mass`` is the share of the text keys and which finds phrases by character offsets, so
``tokenizer`` is used by the first kind only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from dvdlib.attention.instruments import load_record
from dvdlib.attention.joint_record import JointAttentionRecord
from dvdlib.attention.layers import layers_frame
from dvdlib.attention.record import AttentionRecord
from dvdlib.attention.shares import concept_share, map_concentration
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase

Record = AttentionRecord | JointAttentionRecord

SHARE_AXES = {"pooled": ("image", "step"), "per_layer": ("image", "step", "layer")}


@dataclass
class ImageShares:
    """What :func:`record_shares` read, keyed by the caller's image columns."""

    shares: pd.DataFrame  # one row per image and step, layers pooled
    layer_shares: pd.DataFrame  # one row per image, step and layer (empty unless asked for)
    concentration: pd.DataFrame  # one row per image, kept step and group (empty unless asked for)


def layer_levels(record: Record) -> pd.DataFrame:
    """One row per recorded layer: index, label, block, query size and ``level`` (``up 8x8``)."""
    meta = layers_frame(record.layers)[["layer", "label", "block", "query_height", "query_width"]]
    meta = meta.rename(columns={"label": "layer_label"})
    meta["level"] = [f"{b} {h}x{w}" for b, h, w in
                     zip(meta["block"], meta["query_height"], meta["query_width"])]
    return meta


def _shares(record: Record, tokenizer, concept: str, obj: str,
            by: Sequence[str]) -> pd.DataFrame:
    """:func:`concept_share` per ``by`` cell, with the object's share of the word tokens."""
    groups = record.group_frame(tokenizer, {"concept": concept, "object": obj}, by=by)
    table = concept_share(groups, "concept", "object")
    words = groups[groups["group"] == "object"][[*by, "word_share"]]
    return table.merge(words.rename(columns={"word_share": "object_word_share"}), on=list(by),
                       validate="one_to_one")


def record_shares(images: pd.DataFrame, image_dir: str | Path, record_file: str, tokenizer,
                  key: Sequence[str], *, per_layer: bool = False,
                  maps: bool = False) -> ImageShares:
    """Read the record of every image in ``images``: its shares per step (and layer, and maps).

    ``images`` has one row per image with ``record_dir``, ``record_image``, ``concept``,
    ``object`` (optionally ``concept_phrase`` / ``object_phrase``) and the ``key`` columns that
    name the image in the tables returned. A record lies at ``image_dir / record_dir /
    record_file``. Share columns: ``concept_mass``, ``object_mass``, ``pair_share``,
    ``word_share`` (the concept's share of the word tokens) and ``object_word_share``;
    ``per_layer`` adds the layers' :func:`layer_levels`. ``maps`` reads the concentration of
    the kept maps of records that kept any (:func:`group_concentration`).
    """
    image_dir, key = Path(image_dir), list(key)
    pooled, layers, concentration = [], [], []
    for record_dir, rows in images.groupby("record_dir", sort=True):
        if not record_dir:
            raise ValueError(f"images {rows['file'].tolist()[:3]} have no attention record")
        record = load_record(image_dir / record_dir / record_file)
        texts = {p.prompt for p in record.prompts}
        if len(texts) != 1 or rows[["concept", "object"]].drop_duplicates().shape[0] != 1:
            raise ValueError(f"record {record_dir} holds several prompts ({sorted(texts)}); make "
                             "one pipeline call per prompt (a batch size that divides the seeds)")
        first = rows.iloc[0]
        concept, obj = concept_phrase(first), object_phrase(first)  # as the prompt writes them
        # The record numbers the images of its pipeline call; the tables name them by ``key``.
        names = rows.astype({"record_image": int}).set_index("record_image")[key]
        wanted = [("pooled", pooled)] + ([("per_layer", layers)] if per_layer else [])
        for axes, out in wanted:
            table = _shares(record, tokenizer, concept, obj, SHARE_AXES[axes])
            out.append(names.join(table.set_index("image"), how="inner").reset_index(drop=True))
        if per_layer:
            layers[-1] = layers[-1].merge(layer_levels(record), on="layer", how="left")
        if maps and record.map_layers:
            concentration.append(group_concentration(record, names, tokenizer, concept, obj))

    def stacked(parts: list[pd.DataFrame]) -> pd.DataFrame:
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

    return ImageShares(stacked(pooled), stacked(layers), stacked(concentration))


def group_concentration(record: Record, names: pd.DataFrame, tokenizer, concept: str,
                        obj: str) -> pd.DataFrame:
    """Concentration of the concept's and the object's maps, averaged over their tokens and
    layers; ``names`` (indexed by the record's image) gives each row's image columns."""
    phrases = {"concept": concept, "object": obj}
    owners = pd.DataFrame([
        {"image": image, "token": position, "group": group}
        for image in range(record.num_images)
        for group, positions in record.token_groups(tokenizer, image, phrases).items()
        for position in positions
    ])
    table = map_concentration(record).merge(owners, on=["image", "token"])
    table = table.groupby(["image", "step", "group"])[["entropy_concentration", "top_mass"]].mean()
    table = names.join(table.reset_index().set_index("image"), how="inner").reset_index(drop=True)
    return table[[*names.columns, "step", "group", "entropy_concentration", "top_mass"]]


def group_maps(record: Record, image: int, tokenizer, concept: str, obj: str
               ) -> dict[str, torch.Tensor]:
    """Spatial attention of ``image`` on each group, ``[map step, height, width]``.

    The kept maps of a group's tokens are summed (a concept's attention is that of all its
    tokens) and averaged over the kept layers, which share one resolution.
    """
    if not record.map_layers:
        raise ValueError("the record kept no spatial maps")
    tokens = record.map_tokens
    groups = record.token_groups(tokenizer, image, {"concept": concept, "object": obj})
    maps = torch.stack([record.token_maps(layer.name)[image] for layer in record.map_layers])
    maps = maps.mean(0)  # [map step, token, height, width]
    return {group: maps[:, [tokens.index(p) for p in positions]].sum(1)
            for group, positions in groups.items()}


TARGET_SHARE_COLUMNS = ("slot", "word", "n_tokens", "mass", "word_share", "target_share")


def target_shares(images: pd.DataFrame, image_dir: str | Path, record_file: str,
                  positions: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """Per image, step and target: ``mass`` (the target's attention, summed over its tokens,
    averaged over heads and then layers), ``word_share`` (its share of the word tokens' mass)
    and ``target_share`` (its share of the targets' mass: they sum to 1 over the targets).

    ``images`` has one row per image with ``case_num``, ``record_dir``, ``record_image`` and the
    ``key`` columns; ``positions`` is :func:`~dvdlib.prompts.targets.target_token_positions`'s
    table (``case_num``, ``slot``, ``word``, ``token_positions``). A record holds one prompt."""
    image_dir, key = Path(image_dir), list(key)
    tables = []
    for record_dir, rows in images.groupby("record_dir", sort=True):
        if not record_dir:
            raise ValueError(f"images {rows[key].to_dict('records')[:3]} have no attention record")
        cases = rows["case_num"].unique()
        if len(cases) != 1:
            raise ValueError(f"record {record_dir} holds several prompts (cases {list(cases)}); "
                             "make one pipeline call per prompt")
        record = AttentionRecord.load(image_dir / record_dir / record_file)
        own = positions[positions["case_num"] == cases[0]].sort_values("slot")
        words = record.prompts[0].word_positions
        strays = [t.word for t in own.itertuples() if not set(t.token_positions) <= set(words)]
        if strays:
            raise ValueError(f"record {record_dir}: the tokens of {strays} are not word tokens of "
                             f"its prompt {record.prompts[0].prompt!r}")
        groups = {f"slot{t.slot}": list(t.token_positions) for t in own.itertuples()}
        frame = record.group_frame(None, groups, by=("image", "step"))
        frame = frame[frame["group"].isin(list(groups))].astype({"group": str})
        frame["slot"] = frame["group"].str.removeprefix("slot").astype(int)
        frame = frame.merge(own[["slot", "word"]], on="slot")
        frame["target_share"] = frame["mass"] / frame.groupby(["image", "step"])["mass"].transform("sum")
        names = rows.astype({"record_image": int}).set_index("record_image")[key]
        table = names.join(frame.set_index("image"), how="inner").reset_index(drop=True)
        tables.append(table[[*key, "step", *TARGET_SHARE_COLUMNS]])
    return pd.concat(tables, ignore_index=True).sort_values([*key, "step", "slot"]) \
        .reset_index(drop=True)
