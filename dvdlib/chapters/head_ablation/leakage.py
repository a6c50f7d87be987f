"""Where the concept travels: the token positions that carry it to the UNet besides its own.

Removing the concept's own tokens from every head (the ``concept tokens`` condition) leaves the
rest of the text as it was. A causal text encoder (CLIP's) has written the concept into every
position after it by then: the object's token when it comes later, the end token and the
padding. (T5, which SD3 and Flux read, looks both ways: every key of its block can carry the
concept.) Two measurements say how much of the concept takes those routes:

- :func:`concept_imprint`: how much each text key's state changes when the concept's token
  embeddings are blanked at the input of every encoder writing keys (:func:`blanked_tokens`),
  relative to its size: 0 for a key that holds nothing of the concept (CLIP's start token, every
  position before it), about 1 or more for one that is mostly the concept. :func:`imprint_table`
  does it for every prompt, by position kind, on every family dvdlib has instruments for.
- :func:`attention_by_kind`: the cross-attention each kind of position draws (pooled over layers
  and heads as everywhere in the book), from a sweep's ``heads`` table, per condition.

:func:`leak_table` puts both side by side, one row per position kind (:data:`KINDS`).
"""

from __future__ import annotations

import inspect
from contextlib import ExitStack, contextmanager
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.attention.instruments import instruments_for
from dvdlib.attention.joint_tokens import TextKeys
from dvdlib.attention.token_positions import PromptTokens
from dvdlib.chapters.head_ablation.conditions import BASELINE, CONCEPT_TOKENS
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase

KINDS = ("start", "concept", "object", "other words", "end", "padding")


def position_kinds(tokens: PromptTokens | TextKeys, concept: Sequence[int],
                   obj: Sequence[int]) -> list[str]:
    """Each position's kind (:data:`KINDS`): the concept's and the object's tokens by their
    positions, the other word tokens as "other words", the rest as the tokenizer labels them."""
    kinds = []
    for position, kind in enumerate(tokens.kinds):
        if position in concept:
            kinds.append("concept")
        elif position in obj:
            kinds.append("object")
        else:
            kinds.append("other words" if kind == "word" else kind)
    return kinds


@contextmanager
def blanked_tokens(text_encoder, positions: Sequence[Sequence[int]]) -> Iterator[None]:
    """Within the block, the token embeddings at ``positions`` (one list per prompt of the batch)
    are zero when ``text_encoder`` reads its input; position embeddings are left alone.

    A forward hook on the encoder's input embedding, and on every embedding module tied to its
    weight (T5's encoder reads ``encoder.embed_tokens``, not ``shared``, which
    ``get_input_embeddings`` returns), removed on exit, error or not.
    """
    weight = text_encoder.get_input_embeddings().weight
    embeddings = [module for module in text_encoder.modules()
                  if isinstance(module, torch.nn.Embedding) and module.weight is weight]

    def blank(module, inputs, output):  # output: [prompt, token, dim]
        if output.shape[0] != len(positions):
            raise ValueError(f"blanked_tokens was given {len(positions)} position list(s) for a "
                             f"batch of {output.shape[0]} prompt(s)")
        keep = torch.ones(output.shape[:2], dtype=output.dtype, device=output.device)
        for row, chosen in enumerate(positions):
            keep[row, list(chosen)] = 0.0
        return output * keep.unsqueeze(-1)

    handles = [module.register_forward_hook(blank) for module in embeddings]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# The text encoders that write each family's text keys, and which keys each writes: a segment of
# a joint model's keys (``TextKeys.segments``), or None where every encoder writes every key
# position (SDXL's two CLIP encoders sit side by side in the features of the same 77 positions).
# Flux's CLIP encoder gives a pooled vector, not keys, so it is not blanked: no key would change.
KEY_ENCODERS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "toy": (("text_encoder", None),),
    "sd": (("text_encoder", None),),
    "sdxl": (("text_encoder", None), ("text_encoder_2", None)),
    "sd3": (("text_encoder", "clip"), ("text_encoder_2", "clip"), ("text_encoder_3", "t5")),
    "flux": (("text_encoder_2", "t5"),),
}


def key_states(pipe, prompt: str) -> torch.Tensor:
    """``[key, dim]``: the text states the denoiser reads for ``prompt``, as the pipeline's own
    ``encode_prompt`` makes them (no guidance rows, one image)."""
    parameters = inspect.signature(pipe.encode_prompt).parameters
    if "prompts" in parameters:  # the toy world's pipeline: encode_prompt(prompts)
        return pipe.encode_prompt([prompt])[0]
    options = dict(prompt_2=None, prompt_3=None, device=pipe.device, num_images_per_prompt=1,
                   do_classifier_free_guidance=False)
    encoded = pipe.encode_prompt(prompt, **{k: v for k, v in options.items() if k in parameters})
    return encoded[0][0]


def _encoder_positions(tokens, positions: Sequence[int], segment: str | None) -> list[int]:
    """``positions`` among the text keys, as positions of the encoder writing ``segment`` (its
    own tokenization, counted from the segment's first key)."""
    if segment is None:
        return list(positions)
    block = tokens.positions(segment=segment)
    inside = set(block)
    return [p - block[0] for p in positions if p in inside]


def concept_imprint(pipe, prompt: str, positions: Sequence[int]) -> np.ndarray:
    """``[key]``: for each text key of ``prompt`` (:meth:`PipelineInstruments.prompt_tokens`),
    ``|h - h'| / |h|``, where ``h`` is the state the denoiser reads there (:func:`key_states`) and
    ``h'`` the same with the token embeddings at ``positions`` blanked (:func:`blanked_tokens`) in
    every encoder writing keys (:data:`KEY_ENCODERS`), each at its own positions of them.

    A causal encoder (CLIP) leaves every key before the concept at 0; T5 reads both ways, so its
    earlier keys change too.
    """
    instruments = instruments_for(pipe)
    return _imprint(pipe, instruments.family.name, instruments.prompt_tokens(prompt), positions)


def _imprint(pipe, family: str, tokens, positions: Sequence[int]) -> np.ndarray:
    """:func:`concept_imprint` of a prompt whose text keys (``tokens``) are known already."""
    prompt = tokens.prompt
    bad = [p for p in positions if isinstance(p, bool) or not isinstance(p, (int, np.integer))
           or not 0 <= p < tokens.length]
    if bad or not len(positions):
        raise ValueError(f"positions must be a non-empty list of token positions in "
                         f"0..{tokens.length - 1}, got {list(positions)}")
    blanks = [(getattr(pipe, name), _encoder_positions(tokens, positions, segment))
              for name, segment in KEY_ENCODERS[family]
              if getattr(pipe, name, None) is not None]
    with torch.no_grad():
        full = key_states(pipe, prompt).float()  # [key, dim]
        with ExitStack() as stack:
            for encoder, chosen in blanks:
                if chosen:
                    stack.enter_context(blanked_tokens(encoder, [chosen]))
            blanked = key_states(pipe, prompt).float()  # [key, dim]
    if full.shape[0] != tokens.length:
        raise ValueError(f"{type(pipe).__name__}.encode_prompt gave {full.shape[0]} text states "
                         f"for {tokens.length} text keys of {prompt!r}")
    change = (full - blanked).norm(dim=-1) / full.norm(dim=-1).clamp_min(1e-12)
    return change.cpu().numpy()


def imprint_table(pipe, prompts: pd.DataFrame) -> pd.DataFrame:
    """:func:`concept_imprint` of every prompt's concept, one row per prompt and text key:
    ``case_num``, ``position``, ``kind`` (:func:`position_kinds`) and ``imprint``. Works on every
    family :func:`~dvdlib.attention.instruments.instruments_for` serves."""
    instruments = instruments_for(pipe)
    rows = []
    for row in prompts.itertuples(index=False):
        tokens = instruments.prompt_tokens(row.prompt)
        groups = instruments.token_groups(tokens, {"concept": concept_phrase(row),
                                                   "object": object_phrase(row)})
        imprint = _imprint(pipe, instruments.family.name, tokens, groups["concept"])
        kinds = position_kinds(tokens, groups["concept"], groups["object"])
        rows += [(row.case_num, position, kind, float(value))
                 for position, (kind, value) in enumerate(zip(kinds, imprint))]
    return pd.DataFrame(rows, columns=["case_num", "position", "kind", "imprint"])


def attention_by_kind(heads: pd.DataFrame, conditions: Sequence[str]) -> pd.DataFrame:
    """The share of cross-attention each position kind draws under each of ``conditions``, pooled
    as everywhere in the book (mean over each layer's heads, then over layers), mean over images.

    One row per condition and kind (:data:`KINDS`): ``attention``. "start" is what the word,
    end and padding positions leave of 1.
    """
    missing = [c for c in conditions if c not in set(heads["condition"])]
    if missing:
        raise ValueError(f"no attention rows for {missing}; conditions: "
                         f"{', '.join(map(str, heads['condition'].unique()))}")
    rows = []
    for condition in conditions:
        chosen = heads[heads["condition"] == condition]
        columns = ["concept_mass", "object_mass", "word_mass", "end_mass", "padding_mass"]
        pooled = chosen.groupby("layer")[columns].mean().mean()
        shares = {"start": 1 - pooled["word_mass"] - pooled["end_mass"] - pooled["padding_mass"],
                  "concept": pooled["concept_mass"], "object": pooled["object_mass"],
                  "other words": pooled["word_mass"] - pooled["concept_mass"]
                  - pooled["object_mass"], "end": pooled["end_mass"],
                  "padding": pooled["padding_mass"]}
        rows += [(condition, kind, float(shares[kind])) for kind in KINDS]
    return pd.DataFrame(rows, columns=["condition", "kind", "attention"])


def leak_table(heads: pd.DataFrame, imprints: pd.DataFrame, baseline: str = BASELINE,
               removed: str = CONCEPT_TOKENS) -> pd.DataFrame:
    """One row per position kind present in the prompts: the attention it draws in ``baseline``
    and with the concept's tokens ``removed``, and its mean imprint (NaN for a kind no prompt
    has, whose row is left out)."""
    attention = attention_by_kind(heads, [baseline, removed]).pivot(
        index="kind", columns="condition", values="attention")
    imprint = imprints.groupby("kind")["imprint"].mean()
    present = [kind for kind in KINDS if kind in imprint.index]
    return pd.DataFrame({"kind": present,
                         "attention_baseline": attention.loc[present, baseline].to_numpy(),
                         "attention_concept_removed": attention.loc[present, removed].to_numpy(),
                         "imprint": imprint.loc[present].to_numpy()})


def leak_numbers(table: pd.DataFrame, route: Sequence[str] = ("end", "padding")) -> dict:
    """What the text quotes of a :func:`leak_table`: the attention on the ``route`` kinds and on
    the object (baseline, and with the concept's tokens removed), and their mean imprints."""
    rows = table.set_index("kind")
    taken = [kind for kind in route if kind in rows.index]
    return {
        "route_attention": float(rows.loc[taken, "attention_baseline"].sum()),
        "route_attention_removed": float(rows.loc[taken, "attention_concept_removed"].sum()),
        "route_imprint": float(rows.loc[taken, "imprint"].mean()) if taken else float("nan"),
        "object_attention": float(rows.loc["object", "attention_baseline"]),
        "object_imprint": float(rows.loc["object", "imprint"]),
        "start_imprint": float(rows.loc["start", "imprint"]) if "start" in rows.index else 0.0,
        "leak_attention": float(rows.loc[[*taken, "object"], "attention_concept_removed"].sum()),
    }
