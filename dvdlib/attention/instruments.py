"""The attention instruments of a pipeline, chosen by its model family in one place.

:func:`instruments_for` is the one dispatch from a pipeline's family
(:mod:`dvdlib.models.families`) to the instruments that work on it. What it returns,
:class:`PipelineInstruments`, says where the processors go (the denoiser), which tokenizers place
the text keys, and how the located layers read in one line. Everything above the instruments (the
generation hook, ``dvd probe``, chapters 3 and 4) asks it instead of reading ``pipe.unet`` or
``pipe.tokenizer``, so a family gains instruments here and nowhere else:

======  ========================================================================================
family  instruments
======  ========================================================================================
toy     the UNet's cross-attention (``attn2``) layers; one CLIP tokenizer (8 positions)
sd      the same, 77 CLIP positions (:mod:`dvdlib.attention.recorder`, :mod:`.ablation`)
sdxl    the same processors on the UNet's 70 ``attn2`` layers; the text keys are one 77-position
        sequence fed by two tokenizers, checked to agree (:func:`.token_positions.tokenize_for_keys`);
        the UNet's ``added_cond_kwargs`` (pooled text, size and crop ids) feed its time
        embedding, not attention, and pass through untouched
sd3     none yet: joint attention (image and text in one softmax) needs processors of its own
flux    none yet: as sd3, with single-stream blocks
======  ========================================================================================

:func:`check_instruments` refuses a model whose family has none before anything loads.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers, describe_layers
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.token_positions import PromptTokens, tokenize_for_keys
from dvdlib.models.families import Family, family_of, model_family


@dataclass(frozen=True)
class PipelineInstruments:
    """The instruments of one pipeline: where they go and how its text keys are placed.

    A family's builder (:data:`INSTRUMENTS`) fills the fields; callers use the methods.
    """

    family: Family
    denoiser: object  # the module whose attention processors are replaced
    tokenizers: tuple  # every tokenizer feeding the text keys' positions (they agree)
    locate: Callable[..., tuple]  # locate(sample_size) -> the layers, in forward order
    installer: Callable[..., AbstractContextManager]  # installer(sample_size) -> installs them
    tokenize: Callable[[Sequence, str], PromptTokens] = tokenize_for_keys  # (tokenizers, prompt)

    @property
    def tokenizer(self):
        """The tokenizer that places phrases among the text keys (the first; the others agree)."""
        return self.tokenizers[0]

    def prompt_tokens(self, prompt: str) -> PromptTokens:
        """``prompt`` as the text keys hold it, checked against every tokenizer."""
        return self.tokenize(self.tokenizers, prompt)

    def layers(self, sample_size: int | Sequence[int] | None = None
               ) -> tuple[CrossAttentionLayer, ...]:
        """The located layers (query resolutions at latent size ``sample_size``)."""
        return self.locate(sample_size)

    def install(self, sample_size: int | Sequence[int] | None = None
                ) -> AbstractContextManager[tuple[CrossAttentionLayer, ...]]:
        """Install the processors for a ``with`` block, which yields the layers; the previous
        processors come back on exit, error or not."""
        return self.installer(sample_size)

    def describe(self, sample_size: int | Sequence[int] | None = None) -> str:
        """The located layers and heads in one line, with the family and its text keys."""
        return (f"{self.family.title}: {describe_layers(self.layers(sample_size))}, each over "
                f"{self.family.text}")


def _unet_instruments(pipe, family: Family) -> PipelineInstruments:
    """The UNet's ``attn2`` layers (:mod:`.layers`) with the processors of :mod:`.recorder`."""
    tokenizers = tuple(t for t in (getattr(pipe, "tokenizer", None),
                                   getattr(pipe, "tokenizer_2", None)) if t is not None)
    if not tokenizers:
        raise ValueError(f"{type(pipe).__name__} has no tokenizer to place the prompt's tokens")
    return PipelineInstruments(family, pipe.unet, tokenizers,
                               locate=partial(cross_attention_layers, pipe.unet),
                               installer=partial(attention_instruments, pipe.unet))


# The dispatch: family -> the builder of its instruments; None where there are none yet. A
# builder takes the pipeline and its family and returns PipelineInstruments.
INSTRUMENTS: dict[str, Callable[[object, Family], PipelineInstruments] | None] = {
    "toy": _unet_instruments,
    "sd": _unet_instruments,
    "sdxl": _unet_instruments,
    "sd3": None,
    "flux": None,
}


def supported_families() -> list[str]:
    return [name for name, build in INSTRUMENTS.items() if build is not None]


def _refuse(family: Family, what: str) -> ValueError:
    return ValueError(
        f"{what} is of the {family.name} family ({family.title}): attention instruments for it "
        f"are not yet supported (its text meets the image in joint attention, which the "
        f"cross-attention processors do not handle); families with instruments: "
        f"{', '.join(supported_families())}")


def instruments_for(pipe) -> PipelineInstruments:
    """The instruments of ``pipe``'s family; a ValueError for a family that has none yet, or for a
    pipeline of no family (:class:`~dvdlib.models.families.UnsupportedFamilyError`)."""
    family = family_of(pipe)
    build = INSTRUMENTS[family.name]
    if build is None:
        raise _refuse(family, f"the pipeline ({type(pipe).__name__})")
    return build(pipe, family)


def check_instruments(model: str) -> None:
    """Refuse, before anything loads, a model argument whose family has no instruments yet (a
    family that cannot be told before loading is checked by :func:`instruments_for` then)."""
    family = model_family(model)
    if family is not None and INSTRUMENTS[family.name] is None:
        raise _refuse(family, f"model {model!r}")
