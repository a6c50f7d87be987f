"""Which text-key positions a word has in the joint attention of SD3/SD3.5 and Flux.

In these models the image attends to the text inside one joint attention; the text keys are:

- **SD3/SD3.5**: 77 CLIP positions (CLIP-L and CLIP-G features side by side, padded to the T5
  width) then the T5 positions (``max_sequence_length``, 256 by default): every word has positions
  in both blocks, from two different tokenizations.
- **Flux**: the T5 positions only (``max_sequence_length``, 512 by default; CLIP gives a pooled
  vector to the time embedding, not keys).

T5's SentencePiece splits words into pieces ("▁" marks a word start: ▁N eu sch wan stein), so
words are mapped to positions by **character offsets**: a phrase is found in the prompt (as
whole words, case-insensitively: "mug" does not match "mugs"), and its positions are the word
tokens whose character span overlaps it, in each tokenization. The same rule serves CLIP, so one
record can be read without the tokenizers.

:class:`TextKeys` labels every key position (segment, token, kind, character span);
:func:`pipeline_text_keys` makes it as a pipeline tokenizes; :func:`find_words` and
:func:`word_groups` map phrases to positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from dvdlib.attention.token_positions import PhraseNotFoundError

SEGMENTS = ("clip", "t5")
SD3_T5_LENGTH = 256  # StableDiffusion3Pipeline's default max_sequence_length
FLUX_T5_LENGTH = 512  # FluxPipeline's


@dataclass(frozen=True)
class TextKeys:
    """The text keys of one prompt in a joint attention: one entry per key position."""

    prompt: str
    segments: tuple[str, ...]  # "clip" or "t5", per position
    ids: tuple[int, ...]
    tokens: tuple[str, ...]  # the tokenizer's token strings, e.g. "castle</w>", "▁castle"
    kinds: tuple[str, ...]  # "start", "word", "end" or "padding", per position
    spans: tuple[tuple[int, int], ...]  # characters of the prompt a position covers; (0, 0) if none

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.segments))

    def positions(self, kind: str | None = None, segment: str | None = None) -> tuple[int, ...]:
        """Positions of one kind (``None``: any) in one segment (``None``: all)."""
        return tuple(i for i, (k, s) in enumerate(zip(self.kinds, self.segments))
                     if kind in (None, k) and segment in (None, s))

    @property
    def word_positions(self) -> tuple[int, ...]:
        return self.positions("word")

    @property
    def end_positions(self) -> tuple[int, ...]:
        """The end tokens' positions, one per tokenization that has one (CLIP's, T5's ``</s>``)."""
        return self.positions("end")

    @property
    def padding_positions(self) -> tuple[int, ...]:
        return self.positions("padding")

    def covered(self, segment: str) -> int:
        """The prompt's characters read by ``segment``: past them, truncation cut the prompt."""
        ends = [self.spans[i][1] for i in self.positions("word", segment)]
        return max(ends, default=0)

    def describe(self, segment: str | None = None) -> str:
        """Word tokens with their positions per segment, e.g. ``clip: 1:castle | t5: 78:▁castle``."""
        parts = []
        for name in (self.segment_names if segment is None else (segment,)):
            shown = " ".join(f"{i}:{_readable(self.tokens[i])}" for i in self.positions("word", name))
            cut = self.prompt[self.covered(name):].strip()
            parts.append(f"{name}: {shown}" + (f" (cut by truncation: {cut!r})" if cut else ""))
        return " | ".join(parts)

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "segments": list(self.segments), "ids": list(self.ids),
                "tokens": list(self.tokens), "kinds": list(self.kinds),
                "spans": [list(span) for span in self.spans]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "TextKeys":
        return cls(prompt=data["prompt"], segments=tuple(data["segments"]), ids=tuple(data["ids"]),
                   tokens=tuple(data["tokens"]), kinds=tuple(data["kinds"]),
                   spans=tuple(tuple(span) for span in data["spans"]))

    def __add__(self, other: "TextKeys") -> "TextKeys":
        """Keys of the same prompt side by side (SD3: CLIP then T5)."""
        if other.prompt != self.prompt:
            raise ValueError(f"text keys of different prompts: {self.prompt!r} and {other.prompt!r}")
        return TextKeys(self.prompt, self.segments + other.segments, self.ids + other.ids,
                        self.tokens + other.tokens, self.kinds + other.kinds, self.spans + other.spans)


def _readable(token: str) -> str:
    return token.replace("</w>", "")


def segment_keys(tokenizer, prompt: str, max_length: int, segment: str) -> TextKeys:
    """The keys of one tokenizer, tokenized as the pipelines do (padding to ``max_length``,
    truncation on), each position labelled with its kind and character span."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}; accepted: {', '.join(SEGMENTS)}")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
    encoded = tokenizer(prompt, padding="max_length", max_length=max_length, truncation=True,
                        return_offsets_mapping=True, return_special_tokens_mask=True)
    kinds = []
    for i, (token_id, special, attended) in enumerate(zip(encoded.input_ids, encoded.special_tokens_mask,
                                                          encoded.attention_mask)):
        if not attended:
            kinds.append("padding")
        elif special and i == 0 and token_id == tokenizer.bos_token_id:
            kinds.append("start")
        elif special:
            kinds.append("end")
        else:
            kinds.append("word")
    n = len(encoded.input_ids)
    return TextKeys(prompt=prompt, segments=(segment,) * n, ids=tuple(encoded.input_ids),
                    tokens=tuple(tokenizer.convert_ids_to_tokens(encoded.input_ids)), kinds=tuple(kinds),
                    spans=tuple((int(a), int(b)) if kind == "word" else (0, 0)
                                for (a, b), kind in zip(encoded.offset_mapping, kinds)))


def sd3_text_keys(tokenizer, tokenizer_3, prompt: str, max_sequence_length: int = SD3_T5_LENGTH,
                  tokenizer_2=None) -> TextKeys:
    """SD3's keys: the CLIP block (``tokenizer``, 77 positions), then the T5 block.

    ``tokenizer_2`` (CLIP-G), when given, is checked to put the words at the same positions (its
    features sit beside CLIP-L's in the same 77 positions; only its padding token differs).
    Without a T5 tokenizer (a pipeline loaded without T5) the T5 block is ``max_sequence_length``
    zero vectors: positions of kind "padding".
    """
    clip = segment_keys(tokenizer, prompt, tokenizer.model_max_length, "clip")
    if tokenizer_2 is not None:
        other = segment_keys(tokenizer_2, prompt, tokenizer.model_max_length, "clip")
        if other.spans != clip.spans:
            raise ValueError(f"SD3's two CLIP tokenizers put the words of {prompt!r} at different "
                             f"positions: {clip.describe()} against {other.describe()}")
    if tokenizer_3 is None:
        n = max_sequence_length
        t5 = TextKeys(prompt, ("t5",) * n, (0,) * n, ("<none>",) * n, ("padding",) * n, ((0, 0),) * n)
    else:
        t5 = segment_keys(tokenizer_3, prompt, max_sequence_length, "t5")
    return clip + t5


def flux_text_keys(tokenizer_2, prompt: str, max_sequence_length: int = FLUX_T5_LENGTH) -> TextKeys:
    """Flux's keys: the T5 positions only (``tokenizer_2``)."""
    return segment_keys(tokenizer_2, prompt, max_sequence_length, "t5")


def pipeline_text_keys(pipe, prompt: str, max_sequence_length: int | None = None) -> TextKeys:
    """The text keys of ``prompt`` in an SD3 (has ``tokenizer_3``) or Flux pipeline's transformer,
    with the pipeline's default ``max_sequence_length`` (256 for SD3, 512 for Flux) unless given.

    Every text encoder reads ``prompt`` (the pipelines' default when ``prompt_2``/``prompt_3``
    are not given); calls with another prompt per encoder are not labelled by these keys.
    """
    if hasattr(pipe, "tokenizer_3"):
        return sd3_text_keys(pipe.tokenizer, pipe.tokenizer_3, prompt,
                             max_sequence_length or SD3_T5_LENGTH, tokenizer_2=pipe.tokenizer_2)
    if getattr(pipe, "tokenizer_2", None) is not None and hasattr(pipe, "transformer"):
        return flux_text_keys(pipe.tokenizer_2, prompt, max_sequence_length or FLUX_T5_LENGTH)
    raise ValueError(f"{type(pipe).__name__} is not an SD3 or Flux pipeline (accepted: a pipeline "
                     "with tokenizer_3, or a transformer pipeline with a T5 tokenizer_2)")


def _occurrences(prompt: str, phrase: str) -> list[tuple[int, int]]:
    """Character spans of ``phrase`` in ``prompt``: whole words, any case, any run of spaces."""
    words = phrase.split()
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"
    return [match.span() for match in re.finditer(pattern, prompt, flags=re.IGNORECASE)]


def find_words(keys: TextKeys, phrase: str, occurrence: int | str = "all",
               segments: Sequence[str] | None = None) -> list[int]:
    """Key positions of ``phrase`` in every segment of ``keys`` (or those named in ``segments``).

    Every occurrence by default, or only the ``occurrence``-th (0-based). A phrase missing from one
    tokenization (cut by its truncation: CLIP reads 77 tokens, T5 ``max_sequence_length``) is an
    error naming that segment.
    """
    if not isinstance(phrase, str) or not phrase.strip():
        raise ValueError(f"phrase must be a non-empty string, got {phrase!r}")
    chosen_segments = keys.segment_names if segments is None else tuple(segments)
    bad = [s for s in chosen_segments if s not in keys.segment_names]
    if bad or not chosen_segments:
        raise ValueError(f"segments {list(chosen_segments)!r}: accepted {list(keys.segment_names)}")
    spans = _occurrences(keys.prompt, phrase)
    if not spans:
        raise PhraseNotFoundError(f"phrase {phrase!r} is not a run of whole words of prompt "
                                  f"{keys.prompt!r}; its tokens: {keys.describe()}")
    if occurrence != "all":
        if isinstance(occurrence, bool) or not isinstance(occurrence, int) \
                or not 0 <= occurrence < len(spans):
            raise ValueError(f"occurrence {occurrence!r} is not available: phrase {phrase!r} occurs "
                             f"{len(spans)} time(s) in {keys.prompt!r}; accepted: 'all' or "
                             f"0..{len(spans) - 1}")
        spans = [spans[occurrence]]
    found = []
    for segment in chosen_segments:
        words = keys.positions("word", segment)
        for start, end in spans:
            hits = [i for i in words if keys.spans[i][0] < end and keys.spans[i][1] > start]
            if not hits:
                raise PhraseNotFoundError(
                    f"phrase {phrase!r} is not among the {segment} tokens of prompt {keys.prompt!r} "
                    f"(the {segment} tokenization reads its first {keys.covered(segment)} characters); "
                    f"accepted: words among {keys.describe(segment)}")
            found.extend(hits)
    return sorted(set(found))


def word_groups(keys: TextKeys, groups: Mapping[str, str | Sequence[int]],
                segments: Sequence[str] | None = None) -> dict[str, list[int]]:
    """Positions of each named group: a phrase (every occurrence, in ``segments``) or positions.

    Groups must not overlap: a key counted in two groups would make their shares add to more
    than the whole.
    """
    resolved: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for name, spec in groups.items():
        if isinstance(spec, str):
            positions = find_words(keys, spec, segments=segments)
        else:
            positions = [int(p) for p in spec]
            bad = [p for p in positions if not 0 <= p < keys.length]
            if bad:
                raise ValueError(f"group {name!r}: positions {bad} are outside 0..{keys.length - 1}")
        for p in positions:
            if owner.get(p, name) != name:
                raise ValueError(f"groups {owner[p]!r} and {name!r} share key position {p} "
                                 f"({_readable(keys.tokens[p])!r}) in {keys.prompt!r}; groups must "
                                 "not overlap")
            owner[p] = name
        resolved[name] = positions
    return resolved

