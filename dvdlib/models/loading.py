"""Loading text-to-image pipelines: the paper's two models, any diffusers pipeline, the toy model.

``load_pipeline(model)`` accepts

- ``sd1.4`` / ``sd2.1``: the paper's models (:data:`PAPER_MODELS`), looked up under their
  Hugging Face ids (SD 2.1 also under its community mirror);
- ``sdxl``, ``sd3``, ``sd3.5-medium``, ``sd3.5-large``, ``flux-dev``, ``flux-schnell``: models of
  other families (:data:`~dvdlib.models.spec.NAMED_MODELS`), looked up the same way;
- a Hugging Face id (``CompVis/stable-diffusion-v1-4``): read from the local Hugging Face cache,
  without network; never downloaded (fetch it yourself with ``huggingface-cli download ID``);
- a local folder holding a saved pipeline (``model_index.json`` and one folder per component,
  e.g. ``unet/``), as ``save_pretrained`` or ``huggingface-cli download`` leave it;
- ``toy``, ``toy:NAME`` or a bare zoo name (``k1``, ``kinf``): a model of the toy world's zoo,
  loaded through :mod:`dvdlib.toyworld.zoo` (imported only then); ``toy`` is the zoo's default.

What a model argument names is decided once, by :func:`dvdlib.models.spec.parse_model`, and its
family (:mod:`dvdlib.models.families`) before any weights are read: a folder or cached pipeline
of a kind dvdlib does not support (Kandinsky, PixArt, ...) is refused with one line naming its
class. :func:`load_model` is the chapters' call: toy models from an exported zoo folder, real ones
as above.

A UNet model (toy, SD 1.x/2.x, SDXL) samples with DDIM, as in the paper: :func:`with_ddim` swaps
the scheduler for ``DDIMScheduler.from_config(pipe.scheduler.config)``, keeping the model's noise
schedule. SD3 and Flux keep their own flow-matching scheduler, to which DDIM does not apply.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dvdlib.models.families import PAPER, family_of, model_family
from dvdlib.models.spec import ACCEPTED, ModelSpec, parse_model
from dvdlib.usage import ArgumentError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PAPER_STEPS = PAPER.steps
PAPER_GUIDANCE = PAPER.guidance


class ModelNotFoundError(FileNotFoundError):
    """Weights that cannot be found; the message says where we looked and how to get them."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(name: str | None) -> None:
    """Refuse a device torch does not know or this machine does not have, before anything loads
    (an :class:`~dvdlib.usage.ArgumentError` naming ``device``). Empty or None: the default."""
    if not name:
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ArgumentError("device", f" {name!r} is not a device; accepted: cpu, cuda, cuda:N, "
                                      f"mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(),
                 "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise ArgumentError("device", f" {name!r}: this machine has no {device.type} device; "
                                      f"accepted here: {', '.join(k for k, v in available.items() if v)}")
    if device.type == "cuda" and device.index is not None \
            and device.index >= torch.cuda.device_count():
        raise ArgumentError("device", f" {name!r}: this machine has {torch.cuda.device_count()} "
                                      f"cuda devices (0 to {torch.cuda.device_count() - 1})")


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; accepted: {', '.join(DTYPES)}")
    return DTYPES[name]


def with_ddim(pipe):
    """Sample with DDIM (the paper's sampler), keeping the model's own noise schedule."""
    from diffusers import DDIMScheduler

    scheduler = getattr(pipe, "scheduler", None)
    if scheduler is None:
        raise ValueError(f"{type(pipe).__name__} has no scheduler to switch to DDIM")
    if not isinstance(scheduler, DDIMScheduler):
        pipe.scheduler = DDIMScheduler.from_config(scheduler.config)
    return pipe


def load_pipeline(model: str, device: str | None = None, dtype: str = "float32"):
    """Load ``model`` (see the module notes) on ``device`` with its family's sampler (DDIM for
    UNet models) and no progress bar."""
    torch_dtype = parse_dtype(dtype)
    device = device or default_device()
    try:
        spec = parse_model(model)
    except ValueError as err:
        raise ModelNotFoundError(str(err)) from None
    model_family(spec)  # an unsupported kind of pipeline is refused before its weights load
    if spec.is_toy:
        pipe = _load_toy(spec)
    elif spec.kind == "folder":
        if not spec.folder.exists():
            raise ModelNotFoundError(f"model folder {model!r} does not exist (looked for "
                                     f"{spec.folder.absolute()}); a model is {ACCEPTED}")
        pipe = _load_folder(spec.folder, torch_dtype)
    else:
        pipe = _load_hub(spec, torch_dtype)
    if family_of(pipe).ddim:
        pipe = with_ddim(pipe)
    pipe = pipe.to(device=device)
    if getattr(pipe, "dtype", torch_dtype) != torch_dtype:  # the toy zoo loads in float32
        pipe = pipe.to(dtype=torch_dtype)  # only then: diffusers warns on every dtype cast
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # generate() shows one bar over all images
    return pipe


def load_model(model: str, zoo_folder: str = "", device: str = "", dtype: str = "float32"):
    """The pipeline a chapter studies: a toy zoo model from ``zoo_folder`` (float32, default cpu),
    or any real model through :func:`load_pipeline` (default: a GPU if there is one) in ``dtype``."""
    spec = parse_model(model)
    if not spec.is_toy:
        return load_pipeline(model, device=device or None, dtype=dtype)
    from dvdlib.toyworld import zoo

    return zoo.load_model(spec.toy_name(), zoo_folder or None, device=device or "cpu")


def _load_toy(spec: ModelSpec):
    from dvdlib.toyworld import zoo  # torch-only callers never read the zoo

    try:
        return zoo.load_model(spec.toy_name())
    except FileNotFoundError as err:
        raise ModelNotFoundError(str(err)) from None


def _missing_components(folder: Path) -> list[str]:
    """Components that model_index.json names but the folder lacks, e.g. ``unet/``."""
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    return [
        f"{name}/ ({value[1]})" for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and value[0] is not None
        and not (folder / name).is_dir()
    ]


def _load_folder(folder: Path, torch_dtype: torch.dtype):
    from diffusers import DiffusionPipeline

    if not (folder / "model_index.json").is_file():
        raise ModelNotFoundError(
            f"{folder} is not a diffusers pipeline folder: model_index.json is missing. A pipeline "
            f"folder holds model_index.json and one folder per component (unet/, vae/, "
            f"text_encoder/, tokenizer/, scheduler/), as `huggingface-cli download "
            f"CompVis/stable-diffusion-v1-4 --local-dir {folder}` or save_pretrained() leave it"
        )
    missing = _missing_components(folder)
    if missing:
        raise ModelNotFoundError(
            f"{folder} lacks component folder(s) {', '.join(missing)} that its model_index.json "
            f"names; download the full pipeline (e.g. `huggingface-cli download <id> --local-dir "
            f"{folder}` on a machine with network) or copy the missing folders"
        )
    try:
        return DiffusionPipeline.from_pretrained(folder, dtype=torch_dtype)
    except (OSError, ValueError) as err:
        raise ModelNotFoundError(f"cannot load the pipeline in {folder}: {err}") from None


def _load_hub(spec: ModelSpec, torch_dtype: torch.dtype):
    from diffusers import DiffusionPipeline
    from huggingface_hub.constants import HF_HUB_CACHE

    errors = []
    for repo_id in spec.repo_ids:  # the local cache only: dvdlib never downloads during a run
        try:
            return DiffusionPipeline.from_pretrained(repo_id, dtype=torch_dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            errors.append(f"{repo_id}: {str(err).splitlines()[0]}")
    tried = " or ".join(spec.repo_ids)
    raise ModelNotFoundError(
        f"model {spec.text!r}: {tried} is not in the Hugging Face cache ({HF_HUB_CACHE}), and dvdlib "
        f"never downloads during a run. Fetch it once with `huggingface-cli download "
        f"{spec.repo_ids[0]}` (on a machine with network; copy the cache here), or pass a local "
        f"folder holding model_index.json and one folder per component (unet/ or transformer/, "
        f"vae/, text_encoder/, tokenizer/, scheduler/, ...)"
    )
