"""The joint-attention record: image-to-text attention per ``[image, step, layer, head, token]``.

The MMDiT counterpart of :class:`dvdlib.attention.record.AttentionRecord`, filled by the processors
of :func:`dvdlib.attention.joint.joint_attention_instruments`. Per layer it holds four statistics
of the image-query x text-key block of the joint attention, reduced on the device at each call:

- ``mass``: the attention share of each text key, renormalised over the **text keys** and averaged
  over the image queries (sums to 1 over the text positions, like the UNet record's mass);
- ``mass_all_keys``: the raw attention probability of each text key, normalised over **all keys**
  (image and text) and averaged over the image queries: what the text really gets (sums to the
  text's share of the attention);
- ``max``, ``max_all_keys``: the largest of those probabilities over the image queries.

The full attention matrix is never built: the image queries are taken in chunks (at most
``chunk_bytes`` of float32 scores and probabilities each), scored against all keys, and only the
text columns are kept (:func:`~dvdlib.attention.joint_statistics.text_statistics`). Spatial maps
(``mass_all_keys`` per image token, averaged over heads) are kept only for the layers, steps and
text keys of a :class:`~dvdlib.attention.record.MapRequest` (positions among the text keys), and a
request above ``map_budget_bytes`` is refused.

**Calls.** Each layer counts its own calls. ``guidance`` says how the transformer is called:
``"none"`` (one call per step, every row conditional: Flux.1-dev's guidance-distilled single
pass, SD3 at guidance scale <= 1), ``"batched"`` (SD3's classifier-free guidance: one call per
step on ``[negative; positive]`` rows; a call with half the rows, SD3's skip-layer-guidance pass,
is not recorded) or ``"separate"`` (Flux true CFG: a positive call then a negative call per step,
each with its own rows; such a record is read only once it saw both calls of every step).
``calls`` says which are recorded, by call and not by batch half.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.attention.joint_layers import find_joint_layer, select_joint_layers
from dvdlib.attention.joint_statistics import DEFAULT_CHUNK_BYTES, STATISTICS, text_statistics
from dvdlib.attention.joint_tokens import TextKeys, word_groups
from dvdlib.attention.layers import CrossAttentionLayer
from dvdlib.attention.record import (GROUP_AXES, KeptMaps, MapRequest, RecordFullError,
                                     map_request, read_record_file, write_record_file)

GUIDANCE = ("none", "batched", "separate")
CALLS = ("positive", "negative")
DEFAULT_MAP_BUDGET = 2 * 2**30
_ADDED_GROUPS = ("ungrouped_words", "start", "end", "padding")
_FORMAT = "dvdlib.JointAttentionRecord/1"


class JointAttentionRecord(KeptMaps):
    """Image-to-text attention statistics per ``[image, step, layer, head, token]``.

    ``layers`` are those :func:`~dvdlib.attention.joint.joint_attention_instruments` yields, or a
    subset (:func:`~dvdlib.attention.joint_layers.select_joint_layers`). ``prompts`` (one
    :class:`~dvdlib.attention.joint_tokens.TextKeys` per image, or one for all) label the text
    keys; ``num_images`` is needed only without them. ``guidance`` and ``calls``: see the module.
    ``negative_prompts`` label the negative call's keys in its tables. Make one record per
    pipeline call.
    """

    FORMAT = _FORMAT  # the format its files name in their metadata

    def __init__(self, layers: Sequence[CrossAttentionLayer], num_steps: int, *,
                 prompts: TextKeys | Sequence[TextKeys] | None = None, num_images: int | None = None,
                 guidance: str = "none", calls: Sequence[str] = ("positive",),
                 negative_prompts: TextKeys | Sequence[TextKeys] | None = None,
                 maps: MapRequest | None = None, map_budget_bytes: int = DEFAULT_MAP_BUDGET,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES):
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("a record needs at least one layer")
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if guidance not in GUIDANCE:
            raise ValueError(f"guidance {guidance!r}: accepted {', '.join(GUIDANCE)}")
        calls = tuple(calls)
        if not calls or any(c not in CALLS for c in calls) or len(set(calls)) != len(calls):
            raise ValueError(f"calls {calls!r}: accepted a non-empty selection of {CALLS}")
        if guidance == "none" and calls != ("positive",):
            raise ValueError("with guidance='none' there is no negative call; record calls=('positive',)")
        for name, value in (("chunk_bytes", chunk_bytes), ("map_budget_bytes", map_budget_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int (bytes), got {value!r}")
        self.prompts = _per_image(prompts, num_images, "prompts")
        num_images = len(self.prompts) if self.prompts is not None else num_images
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"give prompts or a positive num_images; got num_images={num_images!r}")
        self.negative_prompts = _per_image(negative_prompts, num_images, "negative_prompts")
        self.num_steps, self.num_images = num_steps, num_images
        self.guidance, self.calls, self.chunk_bytes = guidance, calls, chunk_bytes
        self._slot = {layer.name: i for i, layer in enumerate(self.layers)}
        self._counts = [0] * len(self.layers)  # calls each layer has seen (recordable ones)
        # per layer: [step, call, stat, image, head, token]
        self._stats: list[torch.Tensor | None] = [None] * len(self.layers)
        self.maps = maps
        self._map_layers: dict[int, int] = {}  # slot -> index into _maps
        self._map_steps: dict[int, int] = {}
        self._map_tokens: list[int] = []
        self._maps: list[torch.Tensor | None] = []  # per kept layer: [map step, image, query, token]
        if maps is not None:
            self._request_maps(maps, map_budget_bytes)

    def _request_maps(self, maps: MapRequest, budget: int) -> None:
        chosen = select_joint_layers(self.layers, maps.layers)
        steps = range(self.num_steps) if maps.steps is None else [int(s) for s in maps.steps]
        bad = [s for s in steps if not 0 <= s < self.num_steps]
        if bad:
            raise ValueError(f"map steps {bad} are outside 0..{self.num_steps - 1}")
        self._map_layers = {self._slot[layer.name]: k for k, layer in enumerate(chosen)}
        self._map_steps = {s: k for k, s in enumerate(sorted(set(steps)))}
        self._map_tokens = [int(t) for t in maps.tokens]
        if not self._map_tokens:
            raise ValueError("a MapRequest needs at least one token position")
        if self.prompts is not None:
            self._check_map_tokens(self.prompts[0].length)
        queries = max(layer.query_positions for layer in chosen)
        cost = 4 * len(chosen) * len(self._map_steps) * self.num_images * queries * len(self._map_tokens)
        if cost > budget:
            raise ValueError(
                f"maps of {len(chosen)} layers x {len(self._map_steps)} steps x {queries} image tokens x "
                f"{len(self._map_tokens)} text tokens x {self.num_images} image(s) would hold "
                f"{cost / 1e9:.2f} GB (float32) on the device, over the limit of {budget / 1e9:.2f} GB: "
                f"keep maps for fewer layers, steps or tokens, or raise map_budget_bytes")
        self._maps = [None] * len(chosen)

    def _check_map_tokens(self, text_length: int) -> None:
        bad = [t for t in self._map_tokens if not 0 <= t < text_length]
        if bad:
            raise ValueError(f"map tokens {bad} are outside the text keys 0..{text_length - 1}")

    # -- filled by the processors --------------------------------------------------------------

    def covers(self, layer: CrossAttentionLayer) -> bool:
        """Whether the record was made for ``layer``."""
        return layer.name in self._slot

    def observe(self, layer: CrossAttentionLayer, query: torch.Tensor, key: torch.Tensor,
                image: slice, text: slice, scale: float) -> None:
        """One call of ``layer``: ``query`` and ``key`` ``[batch, head, position, dim]`` of the whole
        joint sequence, the image's and the text's slices of it, and the attention's scale."""
        slot = self._slot.get(layer.name)
        if slot is None:
            return  # a record made for a subset of the layers
        batch, n = query.shape[0], self.num_images
        if self.guidance == "batched" and batch == n:
            return  # SD3's skip-layer-guidance call (some layers skipped): not recorded
        expected = 2 * n if self.guidance == "batched" else n
        if batch != expected:
            raise ValueError(
                f"layer {layer.label}: the transformer batch has {batch} rows; a record for {n} image(s) "
                f"with guidance={self.guidance!r} expects {expected} (guidance 'batched' is "
                f"[negative; positive], 'none' and 'separate' one row per image)")
        count = self._counts[slot]
        per_step = 2 if self.guidance == "separate" else 1
        step = count // per_step
        if step >= self.num_steps:
            raise RecordFullError(
                f"layer {layer.label} was called a {count + 1}th time but the record has room for "
                f"{self.num_steps} steps x {per_step} call(s): make one record per pipeline call (Flux's "
                f"true CFG calls the transformer twice per step: guidance='separate')")
        self._counts[slot] = count + 1
        if self.guidance == "batched":
            todo = {"negative": slice(0, n), "positive": slice(n, None)}
        else:
            todo = {"positive" if count % per_step == 0 else "negative": slice(None)}
        text_length = len(range(key.shape[2])[text])
        if self.prompts is not None and text_length != self.prompts[0].length:
            raise ValueError(f"layer {layer.label}: the call has {text_length} text keys, the record's "
                             f"prompts {self.prompts[0].length}: make them with the call's "
                             "max_sequence_length")
        if self._map_tokens:
            self._check_map_tokens(text_length)
        for call, rows in todo.items():
            if call not in self.calls:
                continue
            tokens = None
            if call == "positive" and slot in self._map_layers and step in self._map_steps:
                tokens = torch.tensor(self._map_tokens, device=query.device)
            stats, maps = text_statistics(query[rows][:, :, image], key[rows], text, scale,
                                          map_tokens=tokens, chunk_bytes=self.chunk_bytes)
            if self._stats[slot] is None:
                self._stats[slot] = torch.zeros((self.num_steps, len(self.calls), *stats.shape),
                                                dtype=torch.float32, device=stats.device)
            self._stats[slot][step, self.calls.index(call)] = stats  # [stat, image, head, token]
            if maps is not None:
                self._keep_map(slot, layer, step, maps)

    def _keep_map(self, slot: int, layer: CrossAttentionLayer, step: int, maps: torch.Tensor) -> None:
        if maps.shape[1] != layer.query_positions:
            raise ValueError(
                f"layer {layer.label} has {maps.shape[1]} image tokens but was located for "
                f"{layer.query_height}x{layer.query_width}: pass the call's latent size as "
                f"joint_attention_instruments(transformer, sample_size=(height // vae_scale_factor, "
                f"width // vae_scale_factor))")
        k = self._map_layers[slot]
        if self._maps[k] is None:
            self._maps[k] = torch.zeros((len(self._map_steps), *maps.shape), dtype=torch.float32,
                                        device=maps.device)  # [map step, image, query, token]
        self._maps[k][self._map_steps[step]] = maps

    # -- read back -----------------------------------------------------------------------------

    @property
    def steps_recorded(self) -> int:
        """Steps recorded by every layer; an error if the layers disagree or nothing was recorded."""
        if len(set(self._counts)) != 1:
            counts = {layer.label: n for layer, n in zip(self.layers, self._counts)}
            raise RuntimeError(f"layers recorded different numbers of calls: {counts}")
        if self._counts[0] == 0:
            raise RuntimeError(
                "nothing was recorded: call the pipeline inside joint_attention_instruments(transformer) "
                "with joint_attention_kwargs={'attention_record': record} (a record with "
                "guidance='batched' skips calls of one row per image: was guidance off?)")
        if self.guidance == "separate" and self._counts[0] != 2 * self.num_steps:
            raise RuntimeError(
                f"with guidance='separate' (a positive and a negative call per step) the record "
                f"expects {2 * self.num_steps} calls of each layer and saw {self._counts[0]}: was true "
                "CFG on (true_cfg_scale > 1 and a negative prompt)? Otherwise use guidance='none'")
        return self._counts[0] // (2 if self.guidance == "separate" else 1)

    @property
    def classifier_free_guidance(self) -> bool:
        return self.guidance != "none"

    @property
    def nbytes(self) -> int:
        """Bytes held by the record's buffers (on the model's device while recording)."""
        return sum(b.numel() * b.element_size() for b in [*self._stats, *self._maps] if b is not None)

    @property
    def num_tokens(self) -> int:
        return next(b.shape[-1] for b in self._stats if b is not None)

    def statistic(self, name: str = "mass", call: str = "positive") -> torch.Tensor:
        """One of :data:`STATISTICS` of one recorded call, as a CPU tensor ``[image, step, layer,
        head, token]``; NaN where a layer has fewer heads than the largest."""
        if name not in STATISTICS:
            raise ValueError(f"statistic {name!r}: accepted {', '.join(STATISTICS)}")
        if call not in self.calls:
            raise ValueError(f"call {call!r} was not recorded; recorded: {', '.join(self.calls)}")
        steps = self.steps_recorded
        heads = max(layer.heads for layer in self.layers)
        out = torch.full((self.num_images, steps, len(self.layers), heads, self.num_tokens),
                         float("nan"))  # [image, step, layer, head, token]
        for slot, (layer, buffer) in enumerate(zip(self.layers, self._stats)):
            values = buffer[:steps, self.calls.index(call), STATISTICS.index(name)]
            # values: [step, image, head, token]
            out[:, :, slot, : layer.heads] = values.transpose(0, 1).float().cpu()
        return out

    def mass(self, call: str = "positive") -> torch.Tensor:
        """``mass`` (share of the text keys) ``[image, step, layer, head, token]``, as the UNet record's."""
        return self.statistic("mass", call)

    def _find(self, layer: str | int) -> CrossAttentionLayer:
        return find_joint_layer(self.layers, layer)

    def _keys(self, call: str) -> list[TextKeys] | None:
        return self.prompts if call == "positive" else self.negative_prompts

    def to_frame(self, call: str = "positive") -> pd.DataFrame:
        """Tidy table: one row per image, step, layer, head and text key, with the layer's metadata,
        the key's segment, text and kind, the four statistics and ``word_share`` (``mass``
        renormalised over the prompt's word keys; NaN elsewhere and without prompts)."""
        values = {name: self.statistic(name, call).numpy() for name in STATISTICS}
        shape = values["mass"].shape  # [image, step, layer, head, token]
        keys = self._keys(call)
        if keys is None:
            kinds = np.full((shape[0], shape[-1]), "unknown", dtype=object)
        else:
            kinds = np.array([list(k.kinds) for k in keys], dtype=object)  # [image, token]
        is_word = (kinds == "word")[:, None, None, None, :]
        word_total = np.where(is_word, values["mass"], 0.0).sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            word_share = np.where(is_word, values["mass"] / word_total, np.nan)
        image, step, layer, head, token = np.indices(shape).reshape(5, -1)
        keep = head < np.array([lay.heads for lay in self.layers])[layer]
        image, step, layer, head, token = image[keep], step[keep], layer[keep], head[keep], token[keep]
        table = pd.DataFrame({
            "image": image, "step": step, "layer": layer,
            "layer_label": pd.Categorical.from_codes(layer, [lay.label for lay in self.layers]),
            "block": pd.Categorical([self.layers[i].block for i in range(shape[2])])[layer],
            "query_height": np.array([lay.query_height for lay in self.layers])[layer],
            "query_width": np.array([lay.query_width for lay in self.layers])[layer],
            "head": head, "token": token,
            "token_kind": pd.Categorical(kinds[image, token],
                                         categories=("start", "word", "end", "padding", "unknown")),
            **{name: values[name].reshape(-1)[keep] for name in STATISTICS},
            "word_share": word_share.reshape(-1)[keep],
        })
        if keys is not None:
            at = table.columns.get_loc("token_kind")
            texts = np.array([[t.replace("</w>", "") for t in k.tokens] for k in keys], dtype=object)
            segments = np.array([list(k.segments) for k in keys], dtype=object)
            table.insert(at, "token_text", pd.Categorical(texts[image, token]))
            table.insert(at, "segment", pd.Categorical(segments[image, token]))
        return table

    def token_groups(self, tokenizer, image: int, groups: Mapping[str, str | Sequence[int]]
                     ) -> dict[str, list[int]]:
        """Text-key positions of each named group in the prompt of image ``image``, as
        :meth:`AttentionRecord.token_groups` (phrases found by offsets: ``tokenizer`` is unused)."""
        keys = self._keys("positive")
        if keys is None:
            raise ValueError("the record holds no prompts: make it with prompts=[TextKeys...]")
        return word_groups(keys[image], groups)

    def group_frame(self, tokenizer, groups: Mapping[str, str | Sequence[int]],
                    by: Sequence[str] = ("image", "step"), call: str = "positive",
                    segments: Sequence[str] | None = None) -> pd.DataFrame:
        """Attention per named group of text keys, one row per ``by`` cell and group.

        As :meth:`AttentionRecord.group_frame`: ``groups`` maps a name to a phrase or to key
        positions; ``ungrouped_words``, ``start``, ``end`` and ``padding`` are added; heads are
        averaged within a layer, then layers, unless ``by`` keeps them. A phrase counts its keys in
        every segment (SD3: CLIP and T5) unless ``segments`` names some. Phrases are found by
        character offsets, so ``tokenizer`` is not needed (``None`` will do; it is accepted so the
        same call reads either record). Columns ``mass`` (share of the text keys), ``word_share``
        and ``mass_all_keys`` (share of all keys).
        """
        by = tuple(by)
        if any(axis not in GROUP_AXES for axis in by) or "image" not in by or "step" not in by:
            raise ValueError(f"by={by!r}: accepted axes {GROUP_AXES}, with image and step always kept")
        if "head" in by and "layer" not in by:
            raise ValueError("by with 'head' needs 'layer' too: head h of one layer is unrelated to "
                             "head h of another")
        keys = self._keys(call)
        if keys is None:
            raise ValueError(f"group_frame needs the {call} call's text keys: make the record with "
                             f"{'prompts' if call == 'positive' else 'negative_prompts'}=[TextKeys...]")
        reserved = [name for name in groups if name in _ADDED_GROUPS]
        if reserved:
            raise ValueError(f"group names {reserved} are reserved for the added groups {_ADDED_GROUPS}")
        pooled = {}
        for name in ("mass", "mass_all_keys"):
            values = self.statistic(name, call)  # [image, step, layer, head, token]
            if "head" not in by:
                values = values.nanmean(dim=3, keepdim=True)
            if "layer" not in by:
                values = values.mean(dim=2, keepdim=True)
            pooled[name] = values
        cell = np.indices(pooled["mass"].shape[1:4]).reshape(3, -1)  # step, layer, head per cell
        valid = ~torch.isnan(pooled["mass"][0, ..., 0]).reshape(-1).numpy()
        axes = {"step": cell[0][valid], "layer": cell[1][valid], "head": cell[2][valid]}
        rows = []
        for image, prompt in enumerate(keys):
            positions = word_groups(prompt, groups, segments)
            grouped = {p for ps in positions.values() for p in ps}
            positions["ungrouped_words"] = [p for p in prompt.word_positions if p not in grouped]
            for kind in ("start", "end", "padding"):
                positions[kind] = list(prompt.positions(kind))
            words = list(prompt.word_positions)
            word_mass = pooled["mass"][image][..., words].sum(-1).reshape(-1)[valid]
            for name, pos in positions.items():
                group = {k: v[image][..., pos].sum(-1).reshape(-1)[valid] for k, v in pooled.items()}
                rows.append(pd.DataFrame({
                    "image": image, **{axis: axes[axis] for axis in by if axis != "image"},
                    "group": name, "n_tokens": len(pos), "mass": group["mass"].numpy(),
                    "word_share": ((group["mass"] / word_mass).numpy() if name not in _ADDED_GROUPS[1:]
                                   else np.nan),
                    "mass_all_keys": group["mass_all_keys"].numpy(),
                }))
        table = pd.concat(rows, ignore_index=True)
        table["group"] = pd.Categorical(table["group"], categories=[*groups, *_ADDED_GROUPS])
        if "layer" in by:
            table.insert(table.columns.get_loc("layer") + 1, "layer_label",
                         pd.Categorical.from_codes(table["layer"], [lay.label for lay in self.layers]))
        return table.sort_values([*by, "group"], kind="stable").reset_index(drop=True)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path, dtype: str = "float16") -> Path:
        """Write the record to ``path`` (.npz: arrays plus JSON metadata; no pickle), atomically."""
        stats = torch.stack([torch.stack([self.statistic(name, call) for name in STATISTICS])
                             for call in self.calls])  # [call, stat, image, step, layer, head, token]
        kept = [self._slot[layer.name] for layer in self.map_layers]
        values = {"stats": stats,
                  **{f"maps_{slot}": self.token_maps(self.layers[slot].name) for slot in kept}}
        metadata = {
            "format": _FORMAT, "layers": [layer.to_dict() for layer in self.layers],
            "num_images": self.num_images, "guidance": self.guidance, "calls": list(self.calls),
            "prompts": None if self.prompts is None else [k.to_dict() for k in self.prompts],
            "negative_prompts": (None if self.negative_prompts is None
                                 else [k.to_dict() for k in self.negative_prompts]),
            "map_layers": kept, "map_steps": self.map_steps, "map_tokens": self._map_tokens,
        }
        return write_record_file(path, values, metadata, dtype)

    @classmethod
    def load(cls, path: str | Path) -> "JointAttentionRecord":
        """Read a record written by :meth:`save` (values as float32 on the CPU)."""
        metadata, tensors = read_record_file(path, _FORMAT, "a joint-attention record")
        stats = tensors["stats"]  # [call, stat, image, step, layer, head, token]
        maps = {int(s): tensors[f"maps_{s}"] for s in metadata["map_layers"]}
        layers = [CrossAttentionLayer.from_dict(d) for d in metadata["layers"]]
        prompts, negative = (None if metadata[k] is None else [TextKeys.from_dict(d) for d in metadata[k]]
                             for k in ("prompts", "negative_prompts"))
        steps = stats.shape[3]
        record = cls(layers, steps, prompts=prompts, num_images=metadata["num_images"],
                     guidance=metadata["guidance"], calls=metadata["calls"], negative_prompts=negative,
                     maps=map_request(layers, metadata, list(maps)), map_budget_bytes=2**62)
        per_step = 2 if record.guidance == "separate" else 1
        for slot, layer in enumerate(layers):  # [call, stat, image, step, head, token] -> [step, call, ...]
            layer_stats = stats[:, :, :, :, slot, : layer.heads]
            record._stats[slot] = layer_stats.permute(3, 0, 1, 2, 4, 5).contiguous()
            record._counts[slot] = steps * per_step
        for slot, layer_maps in maps.items():  # [image, map step, token, height, width]
            record._maps[record._map_layers[slot]] = layer_maps.flatten(3).permute(1, 0, 3, 2).contiguous()
        return record

    def __repr__(self) -> str:
        done = self._counts[0] if len(set(self._counts)) == 1 else self._counts
        return (f"JointAttentionRecord({self.num_images} image(s), {done} call(s) of "
                f"{self.num_steps} steps, {len(self.layers)} layers, guidance={self.guidance!r})")


def _per_image(keys, num_images: int | None, name: str) -> list[TextKeys] | None:
    if keys is None:
        return None
    if isinstance(keys, TextKeys):
        return [keys] * (1 if num_images is None else num_images)
    keys = list(keys)
    if not keys or not all(isinstance(k, TextKeys) for k in keys):
        raise ValueError(f"{name}: give TextKeys (dvdlib.attention.joint_tokens), one per image")
    if num_images is not None and len(keys) != num_images:
        raise ValueError(f"num_images={num_images} but {len(keys)} {name} were given")
    if len({k.length for k in keys}) != 1:
        raise ValueError(f"{name} of different lengths: make them with one max_sequence_length")
    return keys
