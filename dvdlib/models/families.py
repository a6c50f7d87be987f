"""Model families: which kind of text-to-image model a pipeline is, and how each kind generates.

The paper studied Stable Diffusion 1.4 and 2.1: a UNet with cross-attention to 77 CLIP positions,
sampled with DDIM, 50 steps, classifier-free guidance 7.5. The models people run now differ in
where text meets image, in their text encoders, their sampler and their guidance. A family
names one such kind, so that loading, generation and the attention instruments each decide per
family, in one place:

======  ==========================  ===========  ======================================  ==========
family  pipeline class              denoiser     text keys                               sampler
======  ==========================  ===========  ======================================  ==========
toy     ToyDiffusionPipeline        UNet         8 CLIP positions                        DDIM
sd      StableDiffusionPipeline     UNet         77 CLIP positions                       DDIM
sdxl    StableDiffusionXLPipeline   UNet         77 positions, CLIP-L and OpenCLIP-G     DDIM
sd3     StableDiffusion3Pipeline    MMDiT        77 CLIP positions, then the T5 block    its own
flux    FluxPipeline                MMDiT        the T5 block                            its own
======  ==========================  ===========  ======================================  ==========

"Its own" is the flow-matching Euler scheduler these models are trained for: DDIM does not apply
to them, so they keep it. Each family's generation defaults (:class:`Defaults`) say where they
come from.

- :func:`family_of`: a loaded pipeline's family (by its class, subclasses included);
- :func:`folder_family`: a pipeline folder's, from ``model_index.json`` (no weights read);
- :func:`model_family`: the family a model argument names (toy, the paper's and named models,
  folders, Hugging Face ids in the local cache), before anything loads;
- :func:`model_defaults` (a model argument) and :func:`pipeline_defaults` (a loaded pipeline):
  the steps, guidance and resolution a model runs with by default;
- :func:`native_resolution`, :func:`latent_size`: image and latent sizes of a pipeline;
- :func:`guidance_batch`: whether a call's denoiser batch holds unconditional rows;
- :func:`protocol_differences`: how a run's settings differ from the paper's protocol.

A pipeline of any other kind (Kandinsky, PixArt, ...) is refused with one line naming its class
and the families accepted (:class:`UnsupportedFamilyError`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dvdlib.models.spec import NAMED_MODELS, PAPER_MODELS, ModelSpec, parse_model

INDEX = "model_index.json"
GUIDANCE_KINDS = ("classifier-free", "embedded", "none")


class UnsupportedFamilyError(ValueError):
    """A pipeline of a kind dvdlib has no family for; the message names its class."""


@dataclass(frozen=True)
class Defaults:
    """How a model generates unless told otherwise."""

    steps: int
    guidance: float
    resolution: int | None  # pixels per side; None: the model's own (its config's sample size,
    # 1024 px for the published SDXL, SD3 and Flux weights)
    guidance_kind: str  # classifier-free (two passes per step), embedded (an input of a
    # guidance-distilled model, one pass), none
    source: str  # where these numbers come from

    def __post_init__(self):
        if self.guidance_kind not in GUIDANCE_KINDS:
            raise ValueError(f"guidance_kind {self.guidance_kind!r}; accepted: "
                             f"{', '.join(GUIDANCE_KINDS)}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Family:
    """A kind of text-to-image pipeline: its classes, architecture, sampler and defaults."""

    name: str
    pipelines: tuple[str, ...]  # diffusers pipeline class names (``_class_name``)
    title: str
    denoiser: str  # "unet" or "transformer": the pipeline attribute holding the denoiser
    text: str  # what the image attends to
    ddim: bool  # sampled with DDIM as in the paper (else the model's own scheduler)
    defaults: Defaults
    attention_kwargs: str = "cross_attention_kwargs"  # the call argument carrying per-call
    # attention options to the processors
    batched_guidance: bool = True  # guidance > 1 runs the denoiser on [unconditional; conditional]
    # rows of one batch (Flux: guidance is an input; true CFG is a separate call)

    @property
    def sampler(self) -> str:
        return "DDIM" if self.ddim else "the model's own (flow-matching Euler)"


PAPER = Defaults(50, 7.5, None, "classifier-free",
                 "the paper: DDIM, 50 steps, guidance 7.5, 512 px on SD 1.4 and 768 px on SD 2.1")

FAMILIES = {family.name: family for family in (
    Family("toy", ("ToyDiffusionPipeline",), "the toy world's UNet", "unet",
           "8 positions of CLIP's tokenizer", True,
           Defaults(20, 4.0, None, "classifier-free",
                    "ToyDiffusionPipeline's call defaults, which the toy world was tuned for")),
    Family("sd", ("StableDiffusionPipeline",), "Stable Diffusion 1.x/2.x", "unet",
           "77 CLIP positions", True, PAPER),
    Family("sdxl", ("StableDiffusionXLPipeline",), "Stable Diffusion XL", "unet",
           "77 positions, CLIP-L and OpenCLIP-G states side by side", True,
           Defaults(50, 5.0, None, "classifier-free",
                    "diffusers' StableDiffusionXLPipeline call defaults; the published model's "
                    "own size is 1024 px")),
    Family("sd3", ("StableDiffusion3Pipeline",), "Stable Diffusion 3 / 3.5", "transformer",
           "77 CLIP positions, then the T5 block", False,
           Defaults(28, 7.0, None, "classifier-free",
                    "diffusers' StableDiffusion3Pipeline call defaults; the published models' "
                    "own size is 1024 px"),
           "joint_attention_kwargs"),
    Family("flux", ("FluxPipeline",), "Flux.1", "transformer", "the T5 block", False,
           Defaults(28, 3.5, None, "embedded",
                    "diffusers' FluxPipeline call defaults (FLUX.1-dev is guidance-distilled); "
                    "the published models' own size is 1024 px"),
           "joint_attention_kwargs", batched_guidance=False),
)}

# Named models whose publishers give other steps or guidance than their family's (their size is
# their :class:`~dvdlib.models.spec.KnownModel` resolution).
NAMED_DEFAULTS = {
    "sd3.5-medium": Defaults(40, 4.5, None, "classifier-free",
                             "the model card's diffusers example"),
    "sd3.5-large": Defaults(28, 3.5, None, "classifier-free", "the model card's diffusers example"),
    "flux-schnell": Defaults(4, 0.0, None, "none",
                             "diffusers' Flux guide: FLUX.1-schnell is timestep-distilled, "
                             "guidance 0, a few steps"),
}
# A Flux transformer without a guidance input (FLUX.1-schnell's kind) cannot take guidance.
NO_GUIDANCE_FLUX = NAMED_DEFAULTS["flux-schnell"]


def accepted() -> str:
    """The families accepted, with their pipeline classes, as messages list them."""
    return "; ".join(f"{f.name} ({', '.join(f.pipelines)})" for f in FAMILIES.values())


def defaults_text(field: str) -> str:
    """Every family's and named model's default ``field``, e.g. ``toy 20, sd 50, ...``, for help
    texts: ``steps`` or ``guidance``, or ``resolution`` (the paper's and named models' sizes;
    other models make their own)."""
    if field == "resolution":
        known = {**PAPER_MODELS, **NAMED_MODELS}.values()
        return ", ".join(f"{model.name} {model.resolution}" for model in known)
    entries = [(f.name, f.defaults) for f in FAMILIES.values()] + list(NAMED_DEFAULTS.items())
    return ", ".join(f"{name} {getattr(defaults, field):g}" for name, defaults in entries)


def _family_of_class(names: list[str], what: str) -> Family:
    for name in names:
        for family in FAMILIES.values():
            if name in family.pipelines:
                return family
    raise UnsupportedFamilyError(f"{what} is a {names[0]}, which dvdlib does not support; "
                                 f"accepted families: {accepted()}")


def family_of(pipe) -> Family:
    """The family of a loaded pipeline, by its class or the nearest class it derives from."""
    names = [cls.__name__ for cls in type(pipe).__mro__]
    return _family_of_class(names, "the pipeline")


def _read_index(path: Path) -> dict:
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(index, dict) or not isinstance(index.get("_class_name"), str):
        raise ValueError(f"{path} names no pipeline class (_class_name)")
    return index


def folder_family(folder: str | Path) -> Family:
    """The family of the pipeline saved in ``folder``, from its ``model_index.json``."""
    index = _read_index(Path(folder) / INDEX)
    return _family_of_class([index["_class_name"]], f"the pipeline in {folder}")


def _cached_index(repo_ids) -> Path | None:
    """The first ``model_index.json`` of ``repo_ids`` found in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    for repo_id in repo_ids:
        found = try_to_load_from_cache(repo_id, INDEX)
        if isinstance(found, str):
            return Path(found)
    return None


def model_family(model: str | ModelSpec) -> Family | None:
    """The family ``model`` names, read without loading weights; None when that cannot be told
    before loading (a folder without ``model_index.json``, a Hugging Face id not in the cache),
    where loading says what is missing. An unsupported pipeline raises
    :class:`UnsupportedFamilyError`."""
    spec = model if isinstance(model, ModelSpec) else parse_model(model)
    if spec.is_toy:
        return FAMILIES["toy"]
    if spec.known is not None:
        return FAMILIES[spec.known.family]
    if spec.kind == "folder":
        return folder_family(spec.folder) if (spec.folder / INDEX).is_file() else None
    index = _cached_index(spec.repo_ids)
    if index is None:
        return None
    return _family_of_class([_read_index(index)["_class_name"]], f"{spec.text!r}")


def pipeline_defaults(pipe) -> Defaults:
    """The defaults of a loaded pipeline's family; a Flux transformer without a guidance input
    takes FLUX.1-schnell's."""
    family = family_of(pipe)
    if family.name == "flux" and not pipe.transformer.config.get("guidance_embeds", True):
        return NO_GUIDANCE_FLUX
    return family.defaults


def model_defaults(model: str | ModelSpec, pipe=None) -> Defaults:
    """The steps, guidance and resolution ``model`` generates with unless told otherwise.

    For the paper's models the paper's protocol, for a named model its publisher's
    (:data:`NAMED_DEFAULTS`) or its family's, each at the model's published size; else those of
    the loaded ``pipe`` (:func:`pipeline_defaults`) or, before loading, of the family the argument
    names (a Flux folder without a guidance input: schnell's), at the model's own size. A
    ValueError when the family cannot be told without loading and ``pipe`` is not given.
    """
    spec = model if isinstance(model, ModelSpec) else parse_model(model)
    known = spec.known
    if known is not None:
        base = PAPER if spec.paper else NAMED_DEFAULTS.get(known.name,
                                                           FAMILIES[known.family].defaults)
        return replace(base, resolution=known.resolution)
    if pipe is not None:
        return pipeline_defaults(pipe)
    family = model_family(spec)
    if family is None:
        raise ValueError(f"cannot tell the family of model {spec.text!r} before loading it")
    if family.name == "flux" and spec.kind == "folder":
        config = spec.folder / "transformer" / "config.json"
        if config.is_file() and not json.loads(config.read_text(encoding="utf-8")).get(
                "guidance_embeds", True):
            return NO_GUIDANCE_FLUX
    return family.defaults


def guidance_batch(pipe, guidance: float) -> bool:
    """Whether ``pipe`` at guidance ``guidance`` runs its denoiser on a classifier-free-guidance
    batch, ``[unconditional; conditional]`` (guidance above 1, in families that batch it)."""
    return family_of(pipe).batched_guidance and guidance > 1


def latent_factor(pipe) -> int:
    """Image pixels per latent position along a side (the VAE's downscaling; the toy pipeline
    folds 2x2 pixels into channels and has no VAE)."""
    factor = getattr(pipe, "vae_scale_factor", None)
    if factor is None:
        from dvdlib.toyworld.pipeline import FOLD

        factor = FOLD
    return int(factor)


def native_resolution(pipe) -> int:
    """The image side a pipeline makes when no size is given (its denoiser's sample size times
    :func:`latent_factor`)."""
    family = family_of(pipe)
    sample = getattr(pipe, "default_sample_size", None) or \
        getattr(pipe, family.denoiser).config.sample_size
    return int(sample) * latent_factor(pipe)


def latent_size(pipe, height: int | None, width: int | None) -> tuple[int, int] | None:
    """The denoiser's sample size for an image of ``height`` x ``width`` (None: the model's own)."""
    if height is None and width is None:
        return None
    factor, native = latent_factor(pipe), native_resolution(pipe)
    return ((height or native) // factor, (width or native) // factor)


def protocol_differences(family: Family, *, steps: int, guidance: float, size: str,
                         guidance_kind: str) -> list[str]:
    """How a run differs from the paper's protocol (DDIM, 50 steps, classifier-free guidance 7.5,
    SD 1.4 at 512 px or SD 2.1 at 768 px), one short phrase per difference; empty if none.
    ``size`` is the run's image size as text (``"1024x1024"``, or ``"the model's own"``)."""
    out = []
    if family.name != "sd":
        out.append(f"model family {family.name}: {family.title} (paper: Stable Diffusion 1.4 "
                   f"and 2.1)")
    if not family.ddim:
        out.append(f"sampler: {family.sampler} (paper: DDIM)")
    if steps != PAPER.steps:
        out.append(f"{steps} steps (paper: {PAPER.steps})")
    if guidance_kind == "embedded":
        out.append(f"guidance {guidance:g} is an input of a guidance-distilled model, one pass "
                   f"per step (paper: classifier-free guidance {PAPER.guidance:g})")
    elif guidance_kind == "none" or guidance <= 1:
        out.append(f"no classifier-free guidance (paper: {PAPER.guidance:g})")
    elif guidance != PAPER.guidance:
        out.append(f"guidance {guidance:g} (paper: {PAPER.guidance:g})")
    if size not in ("512x512", "768x768"):
        out.append(f"image size {size} (paper: 512 px on SD 1.4, 768 px on SD 2.1)")
    return out
