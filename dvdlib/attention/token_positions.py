"""Which of the 77 text-token positions a word or phrase of a prompt occupies.

Cross-attention is recorded per token position; analyses are per concept ("neuschwanstein castle",
"coaster"). This module maps one to the other with the pipeline's own tokenizer, exactly as the
pipeline tokenizes (padding to ``model_max_length``, truncation on).

- A word can be several BPE tokens ("neuschwanstein" -> neu, sch, wan, stein): a phrase maps to all
  of its tokens. Matching is on token ids, so case and surrounding punctuation do not matter (CLIP
  lower-cases and splits punctuation into tokens of their own) but a phrase must cover whole words:
  "mug" does not match "mugs".
- A phrase that occurs several times maps to every occurrence by default (``occurrence="all"``);
  pass ``occurrence=k`` to take only the k-th (0-based).
- Position 0 is the start token, then the prompt's word tokens, then one end token, then padding.
  The start token draws a large, uninformative share of attention (the "attention sink"), so word
  analyses renormalise over the word tokens (see :func:`word_shares`).
- Prompts longer than the limit are truncated as the pipeline truncates them: words past the 75th
  word token are never seen by the model, and a phrase there is an error.
- Where several tokenizers feed the same positions (SDXL lays the states of CLIP-L and
  OpenCLIP-G side by side, one 77-position sequence), :func:`tokenize_for_keys` checks that they
  place every token alike. SDXL's two share CLIP's vocabulary and merges; the second pads with
  "!" (id 0) where the first repeats the end token. Its "!" being a special token, a "!" in the
  prompt is that token for the second tokenizer and CLIP's "!" for the first: one "!" keeps the
  positions aligned (the two halves of the channels then read different "!" tokens there), while
  "!!" is one token for the first and two for the second, which shifts every later position, and
  is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import torch

TOKEN_KINDS = ("start", "word", "end", "padding")


class PhraseNotFoundError(ValueError):
    """A phrase that is not (or not wholly) among the prompt's tokens; the message shows them."""


@dataclass(frozen=True)
class PromptTokens:
    """A prompt as the text encoder sees it: one entry per token position (77 for CLIP)."""

    prompt: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]  # the tokenizer's token strings, e.g. "castle</w>"
    kinds: tuple[str, ...]  # "start", "word", "end" or "padding", per position
    cut_words: tuple[str, ...]  # word tokens removed by truncation (empty when the prompt fits)

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def word_positions(self) -> tuple[int, ...]:
        return tuple(i for i, kind in enumerate(self.kinds) if kind == "word")

    @property
    def start_position(self) -> int | None:
        return self.kinds.index("start") if "start" in self.kinds else None

    @property
    def end_position(self) -> int | None:
        return self.kinds.index("end") if "end" in self.kinds else None

    @property
    def end_positions(self) -> tuple[int, ...]:
        """The end token's position (one, or none), as :class:`~.joint_tokens.TextKeys` gives
        one per tokenization."""
        return tuple(i for i, kind in enumerate(self.kinds) if kind == "end")

    @property
    def padding_positions(self) -> tuple[int, ...]:
        return tuple(i for i, kind in enumerate(self.kinds) if kind == "padding")

    @property
    def truncated(self) -> bool:
        return bool(self.cut_words)

    def describe(self) -> str:
        """The word tokens with their positions, e.g. ``1:neu 2:sch 3:wan 4:stein 5:castle``."""
        shown = " ".join(f"{i}:{_readable(self.tokens[i])}" for i in self.word_positions)
        if not self.truncated:
            return shown
        return f"{shown} | cut by truncation: {' '.join(_readable(t) for t in self.cut_words)}"

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> "PromptTokens":
        return cls(prompt=data["prompt"], ids=tuple(data["ids"]), tokens=tuple(data["tokens"]),
                   kinds=tuple(data["kinds"]), cut_words=tuple(data["cut_words"]))


def _readable(token: str) -> str:
    return token.replace("</w>", "")


def _phrase_ids(tokenizer, phrase: str) -> list[int]:
    return list(tokenizer(phrase, add_special_tokens=False, truncation=False, verbose=False).input_ids)


def tokenize_prompt(tokenizer, prompt: str) -> PromptTokens:
    """Tokenize ``prompt`` as a Stable Diffusion pipeline does and label each position."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
    max_length = tokenizer.model_max_length
    encoded = tokenizer(prompt, padding="max_length", max_length=max_length, truncation=True)
    ids = list(encoded.input_ids)
    n_real = int(sum(encoded.attention_mask))  # start + words + end
    has_start = tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id
    kinds = []
    for i in range(len(ids)):
        if i == 0 and has_start:
            kinds.append("start")
        elif i < n_real - 1:
            kinds.append("word")
        elif i == n_real - 1:
            kinds.append("end")
        else:
            kinds.append("padding")
    words = _phrase_ids(tokenizer, prompt)
    n_kept = kinds.count("word")
    cut = tokenizer.convert_ids_to_tokens(words[n_kept:])
    return PromptTokens(prompt=prompt, ids=tuple(ids), tokens=tuple(tokenizer.convert_ids_to_tokens(ids)),
                        kinds=tuple(kinds), cut_words=tuple(cut))


def tokenize_for_keys(tokenizers, prompt: str) -> PromptTokens:
    """``prompt`` as the text keys hold it when every tokenizer of ``tokenizers`` feeds the same
    positions: the first tokenizer's :class:`PromptTokens`, once each other one is checked to give
    the same length, the same kind at every position and, at every position but padding, the same
    id, or its own padding token for the same text (SDXL's "!", see the module notes). A
    ValueError naming the prompt
    and the first position where two disagree otherwise (a word's tokens would sit at different
    positions in different channels of the keys)."""
    tokenizers = [t for t in tokenizers if t is not None]
    if not tokenizers:
        raise ValueError("no tokenizer given: the pipeline has none to place the prompt's tokens")
    first = tokenize_prompt(tokenizers[0], prompt)
    for number, tokenizer in enumerate(tokenizers[1:], start=2):
        other = tokenize_prompt(tokenizer, prompt)
        if other.length != first.length:
            raise ValueError(f"tokenizer {number} gives {other.length} positions, tokenizer 1 "
                             f"{first.length}, for prompt {prompt!r}")
        for i, (kind, id_1, id_n) in enumerate(zip(first.kinds, first.ids, other.ids)):
            same = id_1 == id_n or (id_n == tokenizer.pad_token_id  # SDXL's "!": the same text
                                    and _readable(first.tokens[i]) == _readable(other.tokens[i]))
            if kind != other.kinds[i] or (kind != "padding" and not same):
                raise ValueError(
                    f"tokenizers 1 and {number} disagree at position {i} of prompt {prompt!r}: "
                    f"{kind} {_readable(first.tokens[i])!r} against {other.kinds[i]} "
                    f"{_readable(other.tokens[i])!r}")
    return first


def find_phrase(tokenizer, prompt: PromptTokens | str, phrase: str,
                occurrence: int | str = "all") -> list[int]:
    """Token positions of ``phrase`` in ``prompt``: every occurrence, or only the ``occurrence``-th."""
    tokens = prompt if isinstance(prompt, PromptTokens) else tokenize_prompt(tokenizer, prompt)
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"phrase must be a non-empty string, got {phrase!r}")
    target = _phrase_ids(tokenizer, phrase)
    words = tokens.word_positions
    word_ids = [tokens.ids[i] for i in words]
    n = len(target)
    starts = [s for s in range(len(word_ids) - n + 1) if word_ids[s : s + n] == target]
    if not starts:
        if tokens.truncated and _occurs_in_full_prompt(tokenizer, tokens.prompt, target):
            raise PhraseNotFoundError(
                f"phrase {phrase!r} lies (partly) past the {tokens.length}-token limit and is cut by "
                f"truncation in prompt {tokens.prompt!r}; tokens: {tokens.describe()}"
            )
        wanted = " ".join(_readable(t) for t in tokenizer.convert_ids_to_tokens(target))
        raise PhraseNotFoundError(
            f"phrase {phrase!r} (tokens: {wanted}) is not in prompt {tokens.prompt!r}; "
            f"its word tokens are: {tokens.describe()}"
        )
    if occurrence == "all":
        chosen = starts
    elif isinstance(occurrence, int) and not isinstance(occurrence, bool) and 0 <= occurrence < len(starts):
        chosen = [starts[occurrence]]
    else:
        raise ValueError(
            f"occurrence {occurrence!r} is not available: phrase {phrase!r} occurs {len(starts)} time(s) "
            f"in {tokens.prompt!r}; accepted: 'all' or 0..{len(starts) - 1}"
        )
    return [words[s + k] for s in chosen for k in range(n)]


def _occurs_in_full_prompt(tokenizer, prompt: str, target: list[int]) -> bool:
    full = _phrase_ids(tokenizer, prompt)
    return any(full[s : s + len(target)] == target for s in range(len(full) - len(target) + 1))


def token_groups(tokenizer, prompt: PromptTokens | str,
                 groups: Mapping[str, str | Sequence[int]]) -> dict[str, list[int]]:
    """Positions of each named group: a phrase (all its occurrences) or explicit positions.

    Groups must not overlap: a token counted in two concepts would make their shares add to more
    than the whole.
    """
    tokens = prompt if isinstance(prompt, PromptTokens) else tokenize_prompt(tokenizer, prompt)
    resolved: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for name, spec in groups.items():
        if isinstance(spec, str):
            positions = find_phrase(tokenizer, tokens, spec)
        else:
            positions = [int(p) for p in spec]
            bad = [p for p in positions if not 0 <= p < tokens.length]
            if bad:
                raise ValueError(f"group {name!r}: positions {bad} are outside 0..{tokens.length - 1}")
        for p in positions:
            if p in owner and owner[p] != name:
                raise ValueError(
                    f"groups {owner[p]!r} and {name!r} share token position {p} "
                    f"({_readable(tokens.tokens[p])!r}) in {tokens.prompt!r}; groups must not overlap"
                )
            owner[p] = name
        resolved[name] = positions
    return resolved


def word_shares(mass: torch.Tensor, prompt: PromptTokens) -> torch.Tensor:
    """Renormalise attention mass over the prompt's word tokens (last dimension = token position).

    Start, end and padding positions get NaN; the word positions sum to 1.
    """
    if mass.shape[-1] != prompt.length:
        raise ValueError(f"mass has {mass.shape[-1]} token positions, the prompt {prompt.length}")
    is_word = torch.tensor([kind == "word" for kind in prompt.kinds], device=mass.device)
    word_mass = torch.where(is_word, mass, torch.zeros((), dtype=mass.dtype, device=mass.device))
    total = word_mass.sum(dim=-1, keepdim=True)
    nan = torch.full((), float("nan"), dtype=mass.dtype, device=mass.device)
    return torch.where(is_word, word_mass / total, nan)


def check_alignment(tokenizer, prompts, source: str = "prompt set") -> None:
    """Check that every row's concept and object lie among the tokens the text encoder reads.

    ``prompts`` is a prompt table (:mod:`dvdlib.prompts.prompt_sets`); each side is the row's phrase
    (``concept_phrase``/``object_phrase``, else ``concept``/``object``). A side past the
    tokenizer's limit (``model_max_length``, 77 for CLIP) would be cut from the prompt, so the
    image could never show it. Raises :class:`PhraseNotFoundError` listing every bad row.
    """
    from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase

    problems = []
    for row in prompts.itertuples(index=False):
        tokens = tokenize_prompt(tokenizer, row.prompt)
        for side, phrase in (("concept", concept_phrase(row)), ("object", object_phrase(row))):
            try:
                find_phrase(tokenizer, tokens, phrase)
            except PhraseNotFoundError as err:
                problems.append(f"case {row.case_num}: {side} {err}")
    if problems:
        limit = tokenizer.model_max_length
        raise PhraseNotFoundError(
            f"{source}: the text encoder reads {limit} tokens (start and end included); "
            f"{len(problems)} concept(s) or object(s) are not among them: " + "; ".join(problems))
