"""The toy world: a small text-to-image diffusion model that dvdlib trains itself on pictures
printed on carriers.

It lets every chapter run without downloads, and lets the book test the paper's first finding
causally: models that differ only in one concept's instance diversity.

- ``world``: concepts (full-frame pictures), objects (carriers), pairs (a concept printed on an
  object), captions, the diversity knob K, and the prompt table.
- ``pipeline``: ``ToyDiffusionPipeline``, packaged and called like Stable Diffusion.
- ``train``: seeded, checkpointed, resumable training and fine-tuning, with kept EMA snapshots.
- ``detector``: the multi-label concept and object detector (the toy judge built on it is
  :mod:`dvdlib.scoring.judges.toy`).
- ``zoo``: the models of every K; training, export, and loading the shipped copy.
- ``evaluate``: presence and dominance of generated images.
- ``prompt_set``: the world's pair prompts as a prompt set (a toy model's default) and the
  check that a prompt file names only the world's concepts and objects.

``dvd toyworld train | detector | zoo`` is :mod:`dvdlib.book.commands.toyworld`.
"""

from dvdlib.toyworld.pipeline import ToyDiffusionPipeline
from dvdlib.toyworld.world import CONCEPTS, OBJECTS, World, prompt_table
from dvdlib.toyworld.zoo import (DEFAULT_MODEL, load_detector, load_model, load_zoo,
                                 model_names, zoo_manifest)

__all__ = ["CONCEPTS", "OBJECTS", "DEFAULT_MODEL", "ToyDiffusionPipeline", "World",
           "load_detector", "load_model", "load_zoo", "model_names", "prompt_table", "zoo_manifest"]
