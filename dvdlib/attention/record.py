"""The attention record: cross-attention mass per ``[image, step, layer, head, token]``.

The record (:class:`AttentionRecord`) holds, per layer, a buffer ``[step, image, head, token]``
allocated on the model's device at the layer's first call and filled in place: no host copy during
sampling. Each layer counts its own calls, so the step index needs no help from the caller (a
"step" is one UNet call: schedulers that call the UNet twice per step fill two).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.attention.layers import CrossAttentionLayer, find_layer, select_layers
from dvdlib.attention.recorder import RECORD_KWARG
from dvdlib.attention.token_positions import PromptTokens, token_groups
from dvdlib.store import atomic_write

GROUP_AXES = ("image", "step", "layer", "head")
_ADDED_GROUPS = ("ungrouped_words", "start", "end", "padding")
_FORMAT = "dvdlib.AttentionRecord/1"


def write_record_file(path: str | Path, values: Mapping[str, torch.Tensor], metadata: dict,
                      dtype: str = "float16") -> Path:
    """Write a record's tensors ``values`` (by array name) and its JSON ``metadata`` to ``path``
    (.npz, no pickle) in ``dtype``, atomically: the one file format of every record class."""
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype {dtype!r}: accepted 'float16', 'float32'")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"record files end in .npz, got {path}")
    arrays = {name: value.numpy().astype(dtype) for name, value in values.items()}
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)

    def write(temporary: Path) -> None:
        with temporary.open("wb") as file:  # a file, not a name: numpy would add ".npz"
            np.savez_compressed(file, **arrays)

    return atomic_write(path, write)


def read_record_file(path: str | Path, expected_format: str, what: str
                     ) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(metadata, tensors)`` of a file :func:`write_record_file` wrote, the tensors as float32
    on the CPU; a ValueError names the file when its format is not ``expected_format`` (``what``
    says in words what was expected, e.g. "an attention record")."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        metadata = json.loads(bytes(data["metadata"]).decode("utf-8"))
        if metadata.get("format") != expected_format:
            raise ValueError(f"{path} is not {what} ({expected_format}); "
                             f"format {metadata.get('format')!r}")
        tensors = {name: torch.from_numpy(data[name].astype(np.float32))
                   for name in data.files if name != "metadata"}
    return metadata, tensors


def map_request(layers: Sequence[CrossAttentionLayer], metadata: dict,
                slots: Sequence[int]) -> "MapRequest | None":
    """The :class:`MapRequest` a saved record's maps answer (None without maps)."""
    if not slots:
        return None
    return MapRequest(layers=[layers[s].name for s in slots], tokens=metadata["map_tokens"],
                      steps=metadata["map_steps"])


class RecordFullError(RuntimeError):
    """A layer was called more often than the record has steps for."""


@dataclass(frozen=True)
class MapRequest:
    """Which spatial maps to keep: chosen layers, token positions, and steps (None: every step).

    A kept map is the attention of each query position on the token, averaged over the layer's heads
    (conditional rows only).
    """

    layers: Sequence[str | int] | str
    tokens: Sequence[int]
    steps: Sequence[int] | None = None


class MapsNotKeptError(KeyError, ValueError):
    """Maps were asked of a layer whose maps the record did not keep."""

    def __str__(self) -> str:  # the message, not KeyError's quoted repr of it
        return str(self.args[0])


class KeptMaps:
    """The kept spatial maps of a record class that fills ``_maps`` (per kept layer:
    ``[map step, image, query, token]``), ``_map_layers`` (layer slot -> index in ``_maps``),
    ``_map_steps`` and ``_map_tokens``, and finds a layer with ``_find``."""

    def token_maps(self, layer: str | int) -> torch.Tensor:
        """Kept maps of ``layer``: ``[image, map step, token, height, width]`` (see
        :attr:`map_steps`; a joint record's are its positive call's)."""
        chosen = self._find(layer)
        k = self._map_layers.get(self._slot[chosen.name])
        if k is None or self._maps[k] is None:
            kept = ", ".join(layer.label for layer in self.map_layers) or "none"
            raise MapsNotKeptError(f"no maps kept for layer {chosen.label}; kept: {kept}")
        steps = len(self.map_steps)
        maps = self._maps[k][:steps].float().cpu()  # [map step, image, query, token]
        return maps.permute(1, 0, 3, 2).reshape(
            self.num_images, steps, len(self._map_tokens), chosen.query_height, chosen.query_width)

    @property
    def map_layers(self) -> tuple[CrossAttentionLayer, ...]:
        """The layers whose spatial maps were kept (and reached at least one requested step)."""
        return tuple(self.layers[slot] for slot, k in sorted(self._map_layers.items())
                     if self._maps[k] is not None)

    @property
    def map_steps(self) -> list[int]:
        return [s for s in sorted(self._map_steps) if s < self.steps_recorded]

    @property
    def map_tokens(self) -> list[int]:
        return list(self._map_tokens)


class AttentionRecord(KeptMaps):
    """Cross-attention mass per ``[image, step, layer, head, token]``, filled by the instruments.

    ``mass[i, s, l, h, t]`` is the attention probability on token position ``t``, averaged over the
    query positions of layer ``l``, head ``h``, for image ``i`` (the conditional half of the batch
    under classifier-free guidance), at UNet call ``s``. Over the tokens it sums to 1.

    ``layers`` are those :func:`attention_instruments` yields, or a subset of them (see
    :func:`~dvdlib.attention.layers.select_layers`) to record only those. Make one record per pipeline call.
    ``prompts`` (one :class:`~dvdlib.attention.token_positions.PromptTokens` per image, or one for all) label the token
    positions in tables; ``num_images`` is needed only without them. ``classifier_free_guidance``
    says whether the UNet batch is ``[uncond; cond]`` (guidance scale > 1 in the pipelines) or
    conditional only.
    """

    FORMAT = _FORMAT  # the format its files name in their metadata

    def __init__(self, layers: Sequence[CrossAttentionLayer], num_steps: int, *,
                 prompts: PromptTokens | Sequence[PromptTokens] | None = None, num_images: int | None = None,
                 classifier_free_guidance: bool = True, maps: MapRequest | None = None):
        self.layers = tuple(layers)
        if not self.layers:
            raise ValueError("a record needs at least one layer")
        if not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        if isinstance(prompts, PromptTokens):
            prompts = [prompts] * (1 if num_images is None else num_images)
        if prompts is not None:
            prompts = list(prompts)
            if num_images is not None and num_images != len(prompts):
                raise ValueError(f"num_images={num_images} but {len(prompts)} prompts were given")
            num_images = len(prompts)
        if not isinstance(num_images, int) or num_images < 1:
            raise ValueError(f"give prompts or a positive num_images; got num_images={num_images!r}")
        self.num_steps = num_steps
        self.num_images = num_images
        self.prompts: list[PromptTokens] | None = prompts
        self.classifier_free_guidance = bool(classifier_free_guidance)
        self._slot = {layer.name: i for i, layer in enumerate(self.layers)}
        self._calls = [0] * len(self.layers)  # each layer counts its own calls: the step index
        self._mass: list[torch.Tensor | None] = [None] * len(self.layers)  # [step, image, head, token]
        self.maps = maps
        self._map_layers: dict[int, int] = {}  # slot -> index into _maps
        self._map_steps: dict[int, int] = {}  # step -> index into a map buffer
        self._maps: list[torch.Tensor | None] = []  # per kept layer: [map step, image, query, token]
        self._map_tokens: list[int] = []
        self._map_token_index: dict[torch.device, torch.Tensor] = {}  # the positions on each device
        if maps is not None:
            self._request_maps(maps)

    def _request_maps(self, maps: MapRequest) -> None:
        chosen = select_layers(self.layers, maps.layers)
        self._map_layers = {self._slot[layer.name]: k for k, layer in enumerate(chosen)}
        self._maps = [None] * len(chosen)
        steps = range(self.num_steps) if maps.steps is None else [int(s) for s in maps.steps]
        bad = [s for s in steps if not 0 <= s < self.num_steps]
        if bad:
            raise ValueError(f"map steps {bad} are outside 0..{self.num_steps - 1}")
        self._map_steps = {s: k for k, s in enumerate(sorted(set(steps)))}
        self._map_tokens = [int(t) for t in maps.tokens]
        if not self._map_tokens:
            raise ValueError("a MapRequest needs at least one token position")

    # -- filled by the processors --------------------------------------------------------------

    def conditional_rows(self, batch: int) -> slice:
        """The rows of a UNet batch that belong to the conditional branch."""
        if self.classifier_free_guidance:
            if batch != 2 * self.num_images:
                raise ValueError(
                    f"the UNet batch has {batch} rows; with classifier-free guidance a record for "
                    f"{self.num_images} image(s) expects {2 * self.num_images} ([uncond; cond]). "
                    f"Make the record with classifier_free_guidance={batch == self.num_images} or "
                    f"num_images to match"
                )
            return slice(self.num_images, None)
        if batch != self.num_images:
            raise ValueError(
                f"the UNet batch has {batch} rows; without classifier-free guidance a record for "
                f"{self.num_images} image(s) expects {self.num_images}"
            )
        return slice(None)

    def add(self, layer: CrossAttentionLayer, probs: torch.Tensor) -> None:
        """Keep one call's probabilities ``[image, head, query, token]`` of ``layer``."""
        slot = self._slot.get(layer.name)
        if slot is None:
            return  # a record made for a subset of the layers
        step = self._calls[slot]
        if step >= self.num_steps:
            raise RecordFullError(
                f"layer {layer.label} was called a {step + 1}th time but the record has room for "
                f"{self.num_steps} steps: make one record per pipeline call, with num_steps = the "
                f"number of UNet calls (num_inference_steps for DDIM)"
            )
        self._calls[slot] = step + 1
        buffer = self._mass[slot]
        if buffer is None:
            if probs.shape[1] != self.layers[slot].heads or probs.shape[0] != self.num_images:
                raise ValueError(
                    f"layer {layer.label}: probabilities of shape {tuple(probs.shape)} do not fit a record "
                    f"of {self.num_images} image(s) x {self.layers[slot].heads} heads: was the record made "
                    f"for this UNet's layers?"
                )
            buffer = self._mass[slot] = torch.zeros(
                (self.num_steps, probs.shape[0], probs.shape[1], probs.shape[3]),
                dtype=torch.float32, device=probs.device)  # [step, image, head, token]
        torch.mean(probs, dim=2, dtype=torch.float32, out=buffer[step])
        if slot in self._map_layers and step in self._map_steps:
            self._add_map(slot, layer, step, probs)

    def _add_map(self, slot: int, layer: CrossAttentionLayer, step: int, probs: torch.Tensor) -> None:
        if probs.shape[2] != layer.query_positions:
            raise ValueError(
                f"layer {layer.label} has {probs.shape[2]} query positions but was located for "
                f"{layer.query_height}x{layer.query_width}: pass the latent size of the call as "
                f"attention_instruments(unet, sample_size=(height // 8, width // 8))"
            )
        k = self._map_layers[slot]
        if self._maps[k] is None:
            self._maps[k] = torch.zeros(
                (len(self._map_steps), probs.shape[0], probs.shape[2], len(self._map_tokens)),
                dtype=torch.float32, device=probs.device)  # [map step, image, query, token]
        tokens = self._map_token_index.get(probs.device)
        if tokens is None:
            tokens = self._map_token_index[probs.device] = torch.tensor(self._map_tokens, device=probs.device)
        torch.mean(probs.index_select(-1, tokens), dim=1, dtype=torch.float32,
                   out=self._maps[k][self._map_steps[step]])

    # -- read back -----------------------------------------------------------------------------

    @property
    def steps_recorded(self) -> int:
        """Steps recorded by every layer; an error if the layers disagree or nothing was recorded."""
        if len(set(self._calls)) != 1:
            counts = {layer.label: n for layer, n in zip(self.layers, self._calls)}
            raise RuntimeError(f"layers recorded different numbers of steps: {counts}")
        if self._calls[0] == 0:
            raise RuntimeError(
                "nothing was recorded: call the pipeline or UNet inside attention_instruments(unet) "
                f"with cross_attention_kwargs={{{RECORD_KWARG!r}: record}}"
            )
        return self._calls[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the record's buffers (on the model's device while recording)."""
        return sum(b.numel() * b.element_size() for b in [*self._mass, *self._maps] if b is not None)

    @property
    def num_tokens(self) -> int:
        return next(b.shape[-1] for b in self._mass if b is not None)

    def mass(self) -> torch.Tensor:
        """The record as one CPU tensor ``[image, step, layer, head, token]``.

        NaN where a layer has fewer heads than the largest layer."""
        steps = self.steps_recorded
        max_heads = max(layer.heads for layer in self.layers)
        out = torch.full((self.num_images, steps, len(self.layers), max_heads, self.num_tokens),
                         float("nan"))  # [image, step, layer, head, token]
        for slot, (layer, buffer) in enumerate(zip(self.layers, self._mass)):
            out[:, :, slot, : layer.heads] = buffer[:steps].transpose(0, 1).float().cpu()
        return out

    def _find(self, layer: str | int) -> CrossAttentionLayer:
        return find_layer(self.layers, layer)

    def _token_kinds(self) -> np.ndarray:
        """``[image, token]`` kinds; "unknown" without prompts."""
        if self.prompts is None:
            return np.full((self.num_images, self.num_tokens), "unknown", dtype=object)
        return np.array([list(p.kinds) for p in self.prompts], dtype=object)

    def to_frame(self) -> pd.DataFrame:
        """Tidy table: one row per image, step, layer, head and token, with layer metadata.

        ``mass`` is the raw share of all token positions; ``word_share`` the share renormalised over
        the prompt's word tokens (NaN for start, end and padding positions, and without prompts).
        """
        mass = self.mass().numpy()  # [image, step, layer, head, token]
        n_img, n_step, n_layer, n_head, n_tok = mass.shape
        kinds = self._token_kinds()  # [image, token]
        is_word = kinds == "word"
        word_total = np.where(is_word[:, None, None, None, :], mass, 0.0).sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            word_share = np.where(is_word[:, None, None, None, :], mass / word_total, np.nan)
        grid = np.indices(mass.shape).reshape(5, -1)
        image, step, layer, head, token = grid
        heads = np.array([lay.heads for lay in self.layers])
        keep = head < heads[layer]
        image, step, layer, head, token = image[keep], step[keep], layer[keep], head[keep], token[keep]
        table = pd.DataFrame({
            "image": image, "step": step, "layer": layer,
            "layer_label": pd.Categorical.from_codes(layer, [lay.label for lay in self.layers]),
            "block": pd.Categorical([self.layers[i].block for i in range(n_layer)])[layer],
            "query_height": np.array([lay.query_height for lay in self.layers])[layer],
            "query_width": np.array([lay.query_width for lay in self.layers])[layer],
            "head": head, "token": token,
            "token_kind": pd.Categorical(kinds[image, token], categories=("start", "word", "end", "padding",
                                                                          "unknown")),
            "mass": mass.reshape(-1)[keep], "word_share": word_share.reshape(-1)[keep],
        })
        if self.prompts is not None:
            texts = np.array([[t.replace("</w>", "") for t in p.tokens] for p in self.prompts], dtype=object)
            table.insert(table.columns.get_loc("token_kind"), "token_text",
                         pd.Categorical(texts[image, token]))
        return table

    def token_groups(self, tokenizer, image: int, groups: Mapping[str, str | Sequence[int]]
                     ) -> dict[str, list[int]]:
        """Token positions of each named group (a phrase, found with ``tokenizer``, or positions)
        in the prompt of image ``image``."""
        if self.prompts is None:
            raise ValueError("the record holds no prompts: make it with prompts=[tokenize_prompt(...)]")
        return token_groups(tokenizer, self.prompts[image], groups)

    def group_frame(self, tokenizer, groups: Mapping[str, str | Sequence[int]],
                    by: Sequence[str] = ("image", "step")) -> pd.DataFrame:
        """Attention mass per named token group, one row per ``by`` cell and group.

        ``groups`` maps a name to a phrase (found in each image's prompt with ``tokenizer``, all
        occurrences) or to token positions. Four groups are added: ``ungrouped_words`` (the
        prompt's word tokens in no named group), ``start``, ``end`` and ``padding``. Mass is
        averaged over a layer's heads, then over layers (each layer weighs the same), unless
        ``by`` keeps those axes. ``mass`` is the share of all positions; ``word_share`` the share
        of the word tokens' mass (NaN for start, end and padding).
        """
        by = tuple(by)
        bad = [axis for axis in by if axis not in GROUP_AXES]
        if bad or "image" not in by or "step" not in by:
            raise ValueError(f"by={by!r}: accepted axes {GROUP_AXES}, with image and step always kept")
        if "head" in by and "layer" not in by:
            raise ValueError("by with 'head' needs 'layer' too: head h of one layer is unrelated "
                             "to head h of another")
        if self.prompts is None:
            raise ValueError("group_frame needs the prompts: make the record with "
                             "prompts=[tokenize_prompt(...)]")
        reserved = [name for name in groups if name in _ADDED_GROUPS]
        if reserved:
            raise ValueError(f"group names {reserved} are reserved for the added groups {_ADDED_GROUPS}")
        mass = self.mass()  # [image, step, layer, head, token]
        if "head" not in by:
            mass = mass.nanmean(dim=3, keepdim=True)  # mean over each layer's own heads
        if "layer" not in by:
            mass = mass.mean(dim=2, keepdim=True)
        cell = np.indices(mass.shape[1:4]).reshape(3, -1)  # step, layer, head of each cell
        valid = ~torch.isnan(mass[0, ..., 0]).reshape(-1).numpy()  # drops the padded heads
        axes = {"step": cell[0][valid], "layer": cell[1][valid], "head": cell[2][valid]}
        rows = []
        for image, prompt in enumerate(self.prompts):
            positions = token_groups(tokenizer, prompt, groups)
            grouped = {p for ps in positions.values() for p in ps}
            positions["ungrouped_words"] = [p for p in prompt.word_positions if p not in grouped]
            positions["start"] = [] if prompt.start_position is None else [prompt.start_position]
            positions["end"] = [] if prompt.end_position is None else [prompt.end_position]
            positions["padding"] = list(prompt.padding_positions)
            word_mass = mass[image][..., list(prompt.word_positions)].sum(-1).reshape(-1)[valid]
            for name, pos in positions.items():
                group_mass = mass[image][..., pos].sum(-1).reshape(-1)[valid]  # [cell]
                is_word_group = name not in ("start", "end", "padding")
                rows.append(pd.DataFrame({
                    "image": image, **{axis: axes[axis] for axis in by if axis != "image"},
                    "group": name, "n_tokens": len(pos), "mass": group_mass.numpy(),
                    "word_share": (group_mass / word_mass).numpy() if is_word_group else np.nan,
                }))
        table = pd.concat(rows, ignore_index=True)
        table["group"] = pd.Categorical(table["group"], categories=[*groups, *_ADDED_GROUPS])
        if "layer" in by:
            labels = [layer.label for layer in self.layers]
            table.insert(table.columns.get_loc("layer") + 1, "layer_label",
                         pd.Categorical.from_codes(table["layer"], labels))
        return table.sort_values([*by, "group"], kind="stable").reset_index(drop=True)

    # -- files ---------------------------------------------------------------------------------

    def save(self, path: str | Path, dtype: str = "float16") -> Path:
        """Write the record to ``path`` (.npz: arrays plus JSON metadata; no pickle), atomically."""
        kept = [self._slot[layer.name] for layer in self.map_layers]
        values = {"mass": self.mass(),
                  **{f"maps_{slot}": self.token_maps(self.layers[slot].name) for slot in kept}}
        metadata = {
            "format": _FORMAT,
            "layers": [layer.to_dict() for layer in self.layers],
            "num_images": self.num_images,
            "classifier_free_guidance": self.classifier_free_guidance,
            "prompts": None if self.prompts is None else [p.to_dict() for p in self.prompts],
            "map_layers": kept,
            "map_steps": self.map_steps,
            "map_tokens": self._map_tokens,
        }
        return write_record_file(path, values, metadata, dtype)

    @classmethod
    def load(cls, path: str | Path) -> "AttentionRecord":
        """Read a record written by :meth:`save` (values as float32 on the CPU)."""
        metadata, tensors = read_record_file(path, _FORMAT, "an attention record")
        mass = tensors["mass"]  # [image, step, layer, head, token]
        maps = {int(slot): tensors[f"maps_{slot}"] for slot in metadata["map_layers"]}
        layers = [CrossAttentionLayer.from_dict(d) for d in metadata["layers"]]
        prompts = metadata["prompts"]
        prompts = None if prompts is None else [PromptTokens.from_dict(d) for d in prompts]
        steps = mass.shape[1]
        record = cls(layers, steps, prompts=prompts, num_images=metadata["num_images"],
                     classifier_free_guidance=metadata["classifier_free_guidance"],
                     maps=map_request(layers, metadata, list(maps)))
        for slot, layer in enumerate(layers):
            record._mass[slot] = mass[:, :, slot, : layer.heads].transpose(0, 1).contiguous()
            record._calls[slot] = steps
        for slot, layer_maps in maps.items():  # [image, map step, token, height, width]
            record._maps[record._map_layers[slot]] = layer_maps.flatten(3).permute(1, 0, 3, 2).contiguous()
        return record

    def __repr__(self) -> str:
        done = self._calls[0] if len(set(self._calls)) == 1 else self._calls
        return (f"AttentionRecord({self.num_images} image(s), {done}/{self.num_steps} steps, "
                f"{len(self.layers)} layers, guidance={self.classifier_free_guidance})")
