"""The model a chapter studies: loaded, named and given its prompts the same way for toy and real.

Chapters take a ``model`` parameter that is a toy zoo model (``toy:k1``) or a real one (``sd1.4``,
a pipeline folder, a Hugging Face id), and a ``zoo_folder`` (empty: the zoo shipped with dvdlib).

- :func:`load_model`: one call for both kinds (:func:`dvdlib.models.load_pipeline` for real models,
  :func:`dvdlib.toyworld.zoo.load_model` from ``zoo_folder`` for toy ones);
- :func:`toy_name`: the zoo name a model parameter asks for (the zoo's default for ``toy``), or
  None for a real model;
- :func:`model_label`: how tables and figures name a model: a toy model with its K;
- :func:`toy_world`: the world a toy model was fine-tuned on (its concepts, objects and K).
"""

from __future__ import annotations

from dvdlib.models import load_pipeline, toy_model_name
from dvdlib.toyworld import zoo
from dvdlib.toyworld.world import World


def _folder(zoo_folder: str | None) -> str | None:
    return zoo_folder or None


def toy_name(model: str) -> str | None:
    """The zoo name ``model`` asks for (``toy`` alone: the zoo's default), None for a real model."""
    name = toy_model_name(model)
    return None if name is None else (name or zoo.DEFAULT_MODEL)


def load_model(model: str, zoo_folder: str = "", device: str = "", dtype: str = "float32"):
    """The pipeline of ``model``: a toy zoo model from ``zoo_folder``, or any real model.

    Toy models run in float32 on ``device`` (default cpu); real models go through
    :func:`dvdlib.models.load_pipeline` (default: a GPU if there is one) in ``dtype``.
    """
    name = toy_name(model)
    if name is None:
        return load_pipeline(model, device=device or None, dtype=dtype)
    return zoo.load_model(name, _folder(zoo_folder), device=device or "cpu")


def toy_world(model: str, zoo_folder: str = "") -> World | None:
    """The world toy ``model`` was fine-tuned on; None for a real model."""
    name = toy_name(model)
    return None if name is None else zoo.world_of(name, _folder(zoo_folder))


def k_text(instances: int | None) -> str:
    """K as the book writes it: a number, or "unlimited"."""
    return "unlimited" if instances is None else str(instances)


def model_label(model: str, zoo_folder: str = "") -> str:
    """A model as figures and tables name it: ``k1 (K=1)`` for a toy model, else ``model``."""
    world = toy_world(model, zoo_folder)
    if world is None:
        return model
    return f"{toy_name(model)} (K={k_text(world.instances)})"
