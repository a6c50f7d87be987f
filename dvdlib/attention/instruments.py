"""The attention instruments of a pipeline, chosen by its model family in one place.

:func:`instruments_for` is the one dispatch from a pipeline's family
(:mod:`dvdlib.models.families`) to the instruments that work on it. What it returns,
:class:`PipelineInstruments`, says where the processors go (the denoiser), how a prompt's text
keys are labelled and a phrase found among them, which record a call fills and with which per-call
options, how heads and tokens are ablated, and how the located layers read in one line. Everything
above the instruments (the generation hook, ``dvd probe``, chapters 3 and 4) asks it instead of
reading ``pipe.unet`` or ``pipe.tokenizer``, so a family gains instruments here and nowhere else:

======  ========================================================================================
family  instruments
======  ========================================================================================
toy     the UNet's cross-attention (``attn2``) layers; one CLIP tokenizer (8 positions)
sd      the same, 77 CLIP positions (:mod:`dvdlib.attention.recorder`, :mod:`.ablation`)
sdxl    the same processors on the UNet's 70 ``attn2`` layers; the text keys are one 77-position
        sequence fed by two tokenizers, checked to agree (:func:`.token_positions.tokenize_for_keys`);
        the UNet's ``added_cond_kwargs`` (pooled text, size and crop ids) feed its time
        embedding, not attention, and pass through untouched
sd3     the image-query x text-key block of each joint block's attention, ``joint.i``
        (:mod:`dvdlib.attention.joint`); text keys: 77 CLIP positions then the T5 block, a word
        found in both (:mod:`.joint_tokens`); SD3.5's image-only ``attn2`` is passed through; a
        :class:`~.joint_record.JointAttentionRecord` per call, the positive half of the guidance
        batch recorded; head ablation ``zero`` (the head's text values) or ``mask`` (its text keys)
flux    the same on the double-stream blocks ``double.i`` and the single-stream blocks
        ``single.j``; text keys: the T5 block; each call passes the text length the single-stream
        blocks need (``text_length``); guidance is an input (one pass per step)
======  ========================================================================================

:func:`check_instruments` refuses, before anything loads, a model whose family has none (no family
lacks them now; the check stays for the day one does). :func:`load_record` reads a record file with
the class that wrote it.
"""

from __future__ import annotations

import inspect
import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np

from dvdlib.attention.ablation import (OPERATORS, HeadAblation, ScaledTokenValueAblation,
                                       TokenValueAblation)
from dvdlib.attention.joint import TEXT_LENGTH_KWARG, call_guidance, joint_attention_instruments
from dvdlib.attention.joint_ablation import (JOINT_OPERATORS, JointHeadAblation,
                                             JointTokenValueAblation)
from dvdlib.attention.joint_layers import describe_joint_layers, joint_attention_layers
from dvdlib.attention.joint_record import JointAttentionRecord
from dvdlib.attention.joint_tokens import FLUX_T5_LENGTH, SD3_T5_LENGTH, pipeline_text_keys, word_groups
from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers, describe_layers
from dvdlib.attention.record import AttentionRecord, MapRequest
from dvdlib.attention.recorder import ABLATION_KWARG, RECORD_KWARG, attention_instruments
from dvdlib.attention.token_positions import PromptTokens, token_groups, tokenize_for_keys
from dvdlib.models.families import Family, family_of, model_family

_UNET_MEANING = ("a layer is one cross-attention layer (attn2) of the UNet, a head one of its "
                 "attention heads over the text positions")
_JOINT_MEANING = ("a layer is the joint attention of one block (image and text tokens in one "
                  "softmax), read at its image-query x text-key block; a head is one of its heads, "
                  "which reads the image and the text alike")


@dataclass(frozen=True)
class PipelineInstruments:
    """The instruments of one pipeline: where they go, how its text keys are placed, which record
    a call fills and how heads and tokens are ablated.

    A family's builder (:data:`INSTRUMENTS`) fills the fields; callers use the methods. This class
    serves the UNet families (cross-attention, :class:`~dvdlib.attention.record.AttentionRecord`);
    :class:`JointInstruments` the MMDiT ones.
    """

    family: Family
    denoiser: object  # the module whose attention processors are replaced
    tokenizers: tuple  # every tokenizer feeding the text keys' positions
    locate: Callable[..., tuple]  # locate(sample_size) -> the layers, in forward order
    installer: Callable[..., AbstractContextManager]  # installer(sample_size) -> installs them
    tokenize: Callable[[Sequence, str], PromptTokens] = tokenize_for_keys  # (tokenizers, prompt)

    record_class: ClassVar[type] = AttentionRecord
    operators: ClassVar[tuple[str, ...]] = OPERATORS  # head-ablation operators
    meaning: ClassVar[str] = _UNET_MEANING

    @property
    def tokenizer(self):
        """The tokenizer that places phrases among the text keys (the first; the others agree)."""
        return self.tokenizers[0]

    def prompt_tokens(self, prompt: str) -> PromptTokens:
        """``prompt`` as the text keys hold it, checked against every tokenizer."""
        return self.tokenize(self.tokenizers, prompt)

    def token_groups(self, tokens, groups: Mapping[str, str | Sequence[int]]) -> dict[str, list[int]]:
        """Text-key positions of each named group of ``tokens`` (:meth:`prompt_tokens`): a phrase
        (every occurrence) or positions; a ValueError naming the phrase and the words accepted
        when a phrase is not among the keys."""
        return token_groups(self.tokenizer, tokens, groups)

    def layers(self, sample_size: int | Sequence[int] | None = None
               ) -> tuple[CrossAttentionLayer, ...]:
        """The located layers (query resolutions at latent size ``sample_size``)."""
        return self.locate(sample_size)

    def install(self, sample_size: int | Sequence[int] | None = None
                ) -> AbstractContextManager[tuple[CrossAttentionLayer, ...]]:
        """Install the processors for a ``with`` block, which yields the layers; the previous
        processors come back on exit, error or not."""
        return self.installer(sample_size)

    def _describe_layers(self, layers) -> str:
        return f"{describe_layers(layers)}, each over {self.family.text}"

    def describe(self, sample_size: int | Sequence[int] | None = None) -> str:
        """The located layers and heads in one line, with the family, its text keys, and what a
        layer and a head are."""
        return f"{self.family.title}: {self._describe_layers(self.layers(sample_size))}; {self.meaning}"

    def new_record(self, layers: Sequence[CrossAttentionLayer], num_steps: int, prompts: Sequence,
                   guidance: float, maps: MapRequest | None = None, **options):
        """An empty record for one pipeline call of ``num_steps`` steps at guidance scale
        ``guidance`` on ``prompts`` (:meth:`prompt_tokens`, one per image); ``options`` go to
        :attr:`record_class`."""
        batched = self.family.batched_guidance and guidance > 1  # [unconditional; conditional]
        return AttentionRecord(layers, num_steps, prompts=prompts, classifier_free_guidance=batched,
                               maps=maps, **options)

    def call_kwargs(self, record=None, ablation=None) -> dict:
        """The per-call attention options (``cross_attention_kwargs`` or
        ``joint_attention_kwargs``, as :attr:`Family.attention_kwargs` names) of a call that
        fills ``record`` and applies ``ablation`` (either may be None)."""
        return {key: value for key, value in ((RECORD_KWARG, record), (ABLATION_KWARG, ablation))
                if value is not None}

    def head_ablation(self, layers: Sequence[CrossAttentionLayer],
                      heads: Mapping[str | int, Sequence[int] | str] | str,
                      operator: str = "zero", factor: float | None = None):
        """Heads to ablate in a call (:class:`~dvdlib.attention.ablation.HeadAblation`): layer ->
        head indices, or "all"; ``operator`` one of :attr:`operators`."""
        return HeadAblation(layers, heads, operator, factor)

    def token_ablation(self, layers: Sequence[CrossAttentionLayer],
                       positions: Sequence[Sequence[int]], num_tokens: int,
                       factor: float | None = None):
        """The values of ``positions`` (one list per image) zeroed, or scaled by ``factor``, in
        every head of every layer (:class:`~dvdlib.attention.ablation.TokenValueAblation`)."""
        if factor is None:
            return TokenValueAblation(positions, num_tokens)
        return ScaledTokenValueAblation(positions, num_tokens, factor)


@dataclass(frozen=True)
class JointInstruments(PipelineInstruments):
    """The instruments of an SD3/SD3.5 or Flux pipeline: the image-query x text-key block of each
    joint attention (:mod:`dvdlib.attention.joint`), text keys labelled per position
    (:class:`~dvdlib.attention.joint_tokens.TextKeys`), a
    :class:`~dvdlib.attention.joint_record.JointAttentionRecord` per call."""

    text_keys: Callable[[str], object] | None = None  # prompt -> TextKeys, as the pipeline's call
    text_length: int | None = None  # passed to every call (Flux's single-stream blocks); None: not

    record_class: ClassVar[type] = JointAttentionRecord
    operators: ClassVar[tuple[str, ...]] = JOINT_OPERATORS
    meaning: ClassVar[str] = _JOINT_MEANING

    def prompt_tokens(self, prompt: str):
        """``prompt``'s text keys, labelled per position (SD3: CLIP then T5; Flux: T5)."""
        return self.text_keys(prompt)

    def token_groups(self, tokens, groups: Mapping[str, str | Sequence[int]]) -> dict[str, list[int]]:
        """As :meth:`PipelineInstruments.token_groups`, by character offsets: a phrase counts its
        keys in every tokenization (SD3: CLIP and T5), and one missing from either is an error
        naming that tokenization and the words it holds."""
        return word_groups(tokens, groups)

    def _describe_layers(self, layers) -> str:
        return f"{describe_joint_layers(layers)} reading {self.family.text}"

    def new_record(self, layers: Sequence[CrossAttentionLayer], num_steps: int, prompts: Sequence,
                   guidance: float, maps: MapRequest | None = None, **options):
        return JointAttentionRecord(layers, num_steps, prompts=prompts, maps=maps,
                                    guidance=call_guidance(self.denoiser, guidance), **options)

    def call_kwargs(self, record=None, ablation=None) -> dict:
        kwargs = super().call_kwargs(record, ablation)
        if kwargs and self.text_length is not None:
            kwargs[TEXT_LENGTH_KWARG] = self.text_length
        return kwargs

    def head_ablation(self, layers: Sequence[CrossAttentionLayer],
                      heads: Mapping[str | int, Sequence[int] | str] | str,
                      operator: str = "zero", factor: float | None = None):
        """Heads to ablate in a call (:class:`~dvdlib.attention.joint_ablation.JointHeadAblation`);
        ``operator`` "zero" (the head's text values) or "mask" (its text keys); no ``factor``."""
        if factor is not None:
            raise ValueError(f"factor {factor!r}: joint attention has no 'scale' operator; "
                             f"accepted operators: {', '.join(self.operators)}, without a factor")
        return JointHeadAblation(layers, heads, operator)

    def token_ablation(self, layers: Sequence[CrossAttentionLayer],
                       positions: Sequence[Sequence[int]], num_tokens: int,
                       factor: float | None = None):
        """:class:`~dvdlib.attention.joint_ablation.JointTokenValueAblation` (``factor`` None: 0)."""
        return JointTokenValueAblation(layers, positions, num_tokens,
                                       0.0 if factor is None else factor)


def _unet_instruments(pipe, family: Family) -> PipelineInstruments:
    """The UNet's ``attn2`` layers (:mod:`.layers`) with the processors of :mod:`.recorder`."""
    tokenizers = tuple(t for t in (getattr(pipe, "tokenizer", None),
                                   getattr(pipe, "tokenizer_2", None)) if t is not None)
    if not tokenizers:
        raise ValueError(f"{type(pipe).__name__} has no tokenizer to place the prompt's tokens")
    return PipelineInstruments(family, pipe.unet, tokenizers,
                               locate=partial(cross_attention_layers, pipe.unet),
                               installer=partial(attention_instruments, pipe.unet))


def _call_default(pipe, name: str, fallback):
    """The default of argument ``name`` of the pipeline's call (what a call that omits it uses)."""
    parameter = inspect.signature(type(pipe).__call__).parameters.get(name)
    return fallback if parameter is None or parameter.default is inspect.Parameter.empty \
        else parameter.default


def _joint_instruments(pipe, family: Family) -> JointInstruments:
    """The joint attentions of the transformer (:mod:`.joint_layers`, :mod:`.joint`), with the
    text keys of the pipeline's own call: its default ``max_sequence_length`` of T5 positions."""
    flux = family.name == "flux"
    length = _call_default(pipe, "max_sequence_length", FLUX_T5_LENGTH if flux else SD3_T5_LENGTH)
    names = ("tokenizer_2",) if flux else ("tokenizer", "tokenizer_2", "tokenizer_3")
    tokenizers = tuple(getattr(pipe, name) for name in names if getattr(pipe, name, None) is not None)
    if not tokenizers:
        raise ValueError(f"{type(pipe).__name__} has no tokenizer to place the prompt's tokens "
                         f"(expected {', '.join(names)})")
    return JointInstruments(family, pipe.transformer, tokenizers,
                            locate=partial(joint_attention_layers, pipe.transformer),
                            installer=partial(joint_attention_instruments, pipe.transformer),
                            text_keys=partial(pipeline_text_keys, pipe, max_sequence_length=length),
                            text_length=length if flux else None)


# The dispatch: family -> the builder of its instruments; None where there are none. A builder
# takes the pipeline and its family and returns PipelineInstruments.
INSTRUMENTS: dict[str, Callable[[object, Family], PipelineInstruments] | None] = {
    "toy": _unet_instruments,
    "sd": _unet_instruments,
    "sdxl": _unet_instruments,
    "sd3": _joint_instruments,
    "flux": _joint_instruments,
}
# Record files by format (their metadata names it), for readers that hold no pipeline.
RECORD_CLASSES = {cls.FORMAT: cls for cls in (AttentionRecord, JointAttentionRecord)}


def supported_families() -> list[str]:
    return [name for name, build in INSTRUMENTS.items() if build is not None]


def _refuse(family: Family, what: str) -> ValueError:
    return ValueError(
        f"{what} is of the {family.name} family ({family.title}): attention instruments for it "
        f"are not yet supported; families with instruments: {', '.join(supported_families())}")


def instruments_for(pipe) -> PipelineInstruments:
    """The instruments of ``pipe``'s family; a ValueError for a family that has none, or for a
    pipeline of no family (:class:`~dvdlib.models.families.UnsupportedFamilyError`)."""
    family = family_of(pipe)
    build = INSTRUMENTS[family.name]
    if build is None:
        raise _refuse(family, f"the pipeline ({type(pipe).__name__})")
    return build(pipe, family)


def check_instruments(model: str) -> None:
    """Refuse, before anything loads, a model argument of an unsupported kind of pipeline (a
    :class:`~dvdlib.models.families.UnsupportedFamilyError` naming its class) or of a family
    without instruments (a family that cannot be told before loading is checked by
    :func:`instruments_for` then)."""
    family = model_family(model)
    if family is not None and INSTRUMENTS[family.name] is None:
        raise _refuse(family, f"model {model!r}")


def head_operators(model: str) -> tuple[str, ...]:
    """The head-ablation operators of ``model``'s instruments, known before anything loads: zero,
    mean and scale on a UNet (cross-attention), zero and mask on SD3 and Flux (joint attention);
    every one of them where the family cannot be told yet (loading checks it then)."""
    family = model_family(model)
    if family is None:
        return tuple(dict.fromkeys(PipelineInstruments.operators + JointInstruments.operators))
    check_instruments(model)
    joint = INSTRUMENTS[family.name] is _joint_instruments
    return (JointInstruments if joint else PipelineInstruments).operators


def load_record(path: str | Path) -> AttentionRecord | JointAttentionRecord:
    """The record saved at ``path``, read by the class that wrote it (its format says which)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            found = json.loads(bytes(data["metadata"]).decode("utf-8")).get("format")
    except (OSError, KeyError, ValueError, AttributeError) as err:
        raise ValueError(f"{path} is not an attention record ({type(err).__name__}: {err})") from None
    if found not in RECORD_CLASSES:
        raise ValueError(f"{path} is a record of format {found!r}; accepted: "
                         f"{', '.join(RECORD_CLASSES)}")
    return RECORD_CLASSES[found].load(path)
