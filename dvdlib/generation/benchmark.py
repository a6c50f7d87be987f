"""A prompt set's images for a model named by its argument, as ``dvd generate`` makes them.

:func:`generate_benchmark` is the one call: it reads what the model argument names, chooses the
prompt set (a file, the built-in set, or the toy world's pairs for a toy model), checks every
argument once, before any model loads, then loads the model and makes the images with
:func:`~dvdlib.generation.protocol.make_images`. A prompt file with several targets per prompt
(a ``target1`` column, :mod:`dvdlib.prompts.targets`) is read as one: every target must lie
among the tokens the text encoder reads. Started by ``accelerate launch`` with several
processes, each process makes its share and the main process merges the shares into the one
manifest (:mod:`dvdlib.sharding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from dvdlib.attention.instruments import instruments_for
from dvdlib.generation.protocol import (attention_hook, check_generation, check_text_keys,
                                        make_images)
from dvdlib.models.families import PAPER, model_defaults, model_family
from dvdlib.models.loading import check_device, load_pipeline
from dvdlib.models.spec import ModelSpec, parse_model
from dvdlib.prompts.selection import choose_targets
from dvdlib.prompts.targets import is_target_file, target_token_positions
from dvdlib.prompts.tokenizer import clip_tokenizer
from dvdlib.scoring.questions import OUR_WORDING
from dvdlib.sharding import join_launch, run_sharded
from dvdlib.store import check_writable_dir, no_new_folders_on_error
from dvdlib.toyworld.prompt_set import run_prompts
from dvdlib.usage import PAPER_SEED_COUNT, ArgumentError


def generate_benchmark(model: str, out: str | Path, *, prompts: str | Path | None = None,
                       cases: str | Iterable[int] | None = None,
                       seeds: int | Sequence[int] = PAPER_SEED_COUNT, steps: int | None = None,
                       guidance: float | None = None, size: int | None = None,
                       batch_size: int = 1,
                       device: str | None = None, dtype: str = "float32",
                       record_attention: bool = False, progress: bool = True,
                       report: Callable[[str], None] | None = None) -> pd.DataFrame | None:
    """Make one image per prompt and seed into ``out`` (resumable); returns the manifest, or None
    in a process of ``accelerate launch`` other than the main one.

    ``model`` is anything :func:`~dvdlib.models.spec.parse_model` reads. ``prompts`` is a prompt
    file (default: the built-in set; for a toy model, the toy world's prompts), DominanceBench's
    or one with several targets per prompt (a real model only), ``cases`` the
    cases to make (text such as ``1-10,201``, or numbers; default: all), ``seeds`` a number of
    seeds or the seeds themselves. ``steps``, ``guidance`` and ``size`` (the side in pixels)
    default to the model's (:func:`~dvdlib.models.families.model_defaults`: the paper's protocol
    for its models, a named model's publisher's, else its family's; the model's own size where
    the family gives none). ``record_attention`` also records attention per image with the
    instruments of the model's family (:func:`~dvdlib.generation.protocol.attention_hook`);
    ``report`` takes notes on the prompt file. Bad arguments raise before any model loads and
    before ``out`` is made.
    """
    spec = parse_model(model)
    targets = bool(prompts) and is_target_file(prompts)
    tokenizer = _text_tokenizer(spec)
    if targets:
        if spec.is_toy:
            raise ArgumentError("prompts", f" {str(prompts)!r} names several targets per prompt "
                                           f"(a target1 column); the toy world draws one concept "
                                           f"on one object: give a real model")
        target_set = choose_targets(prompts, cases, report=report)
        if tokenizer is not None:
            target_token_positions(target_set, tokenizer)  # every target is read
        table, source = target_set.prompts, target_set.source
    else:
        table, source = run_prompts(prompts, OUR_WORDING.categories, cases, toy=spec.is_toy,
                                    report=report)
    # A model whose family cannot be read before loading cannot load either: loading says why.
    defaults = model_defaults(spec) if model_family(spec) is not None else PAPER
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance
    size = size if size is not None else defaults.resolution
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 8
                             or size % 8):
        raise ArgumentError("size", f" {size}: must be a positive multiple of 8")
    check_device(device)
    seeds = check_generation(table, seeds, steps=steps, batch_size=batch_size, guidance=guidance,
                             tokenizer=None if targets else tokenizer, source=source)
    out = check_writable_dir(out)
    launch = join_launch(device)  # None unless started by accelerate with several processes
    with no_new_folders_on_error(out):
        pipe = load_pipeline(model, device=launch.device if launch else device, dtype=dtype)
        if tokenizer is None:  # words are placed by the loaded pipeline's own tokenizers
            if targets:
                target_token_positions(target_set, instruments_for(pipe).tokenizer)
            else:
                check_text_keys(pipe, table, source)
        return run_sharded(launch, lambda shard: make_images(
            pipe, table, seeds, out, model=model, steps=steps, guidance=guidance, height=size,
            width=size, batch_size=batch_size, cross_attention_kwargs=None,
            hook=attention_hook() if record_attention else None, progress=progress, shard=shard))


def _text_tokenizer(spec: ModelSpec):
    """The tokenizer that places the prompt's words among the model's text keys, known without
    loading it: CLIP's BPE, with 77 positions for Stable Diffusion 1.x, 2.x, XL and 3 (whose T5
    block reads more, but a word must be in both) and 8 for the toy world. None for Flux, whose
    keys are T5's alone (CLIP gives it a pooled vector): its prompts are checked by the loaded
    pipeline's own tokenizer (:func:`~dvdlib.generation.protocol.check_text_keys`)."""
    if spec.is_toy:
        from dvdlib.toyworld.pipeline import TEXT_POSITIONS

        return clip_tokenizer(TEXT_POSITIONS)
    family = model_family(spec)
    return None if family is not None and family.name == "flux" else clip_tokenizer()
