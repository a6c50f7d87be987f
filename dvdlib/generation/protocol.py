"""Generating the benchmark's images: every (prompt, seed) pair, resumable, in the authors' layout.

:func:`generate` takes a pipeline of any family of :mod:`dvdlib.models.families`, all of which
share Stable Diffusion's call convention (``pipe(prompt=[...], num_inference_steps,
guidance_scale, height, width, generator=[...], output_type="pil")`` returning ``.images``, with
per-call attention options in the argument the family names: ``cross_attention_kwargs`` or
``joint_attention_kwargs``): a diffusers pipeline (see :mod:`dvdlib.models.loading`) or the toy
world's. It writes ::

    out_dir/
      case001_notebook_windmill_rembrandt/seed01825.png   the folders the authors' scorer reads
      manifest.log                                        one committed row per image (dvdlib.store)
      manifest.csv                                        the same rows as a table, sorted
      generation.json                                     the settings every image was made with,
                                                          the model's family and its defaults,
                                                          and how the run differs from the
                                                          paper's protocol
      records/                                            what a hook recorded, one folder per call

Each image gets its own ``torch.Generator`` seeded with its seed, on the CPU: diffusers draws the
starting noise on the generator's device and moves it, so a seed gives the same start on any
device, whatever else shares the batch. Batches are cut from the full list of (prompt, seed) pairs
in order, so a rerun forms the same batches: a run killed at any point and run again ends with a
manifest identical to an uninterrupted run's (on a deterministic device such as the CPU).

Checks: :func:`generate` checks its arguments (:func:`check_generation`) before it writes
anything, then makes the images with :func:`make_images`, which a caller that checked them once
already, before loading its model (:mod:`dvdlib.generation.benchmark`), calls directly.

Sharding: with ``shard`` (a :class:`dvdlib.sharding.Shard`), a process makes only every n-th batch
of the run and logs its rows apart; the run's main process then calls :func:`generate` without a
shard, which merges the shards' rows into the manifest (see :mod:`dvdlib.sharding`). ``dvd
generate`` does this by itself under ``accelerate launch``.

Hooks, the seam for instruments such as the attention recorder: ``hook(call)`` gets a
:class:`PipelineCall` and returns a context manager that ``generate`` holds open around that one
pipeline call. Inside it the hook may add per-call options to ``call.cross_attention_kwargs``, and
write files into ``call.record_dir`` (a fresh folder). When the call has returned and the context
has closed, a non-empty ``record_dir`` is moved into place as ``records/<first image>/`` and every
image of the call names it in the manifest (``record_dir``, with its position ``record_image``).
:func:`attention_hook` is the one hook for the attention instruments of every family: chapters add
spatial maps, a head ablation or their own reduction of the record through its arguments, never a
hook of their own.
"""

from __future__ import annotations

import hashlib
import math
import io
import os
import shutil
import tempfile
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from dvdlib.models.families import (family_of, latent_size, native_resolution,
                                    pipeline_defaults, protocol_differences)
from dvdlib.prompts.prompt_sets import case_folder, concept_phrase, object_phrase, validate_prompts
from dvdlib.prompts.selection import choose_seeds
from dvdlib.prompts.targets import TargetSet, target_token_positions
from dvdlib.scoring.questions import check_prompt_words
from dvdlib.sharding import Shard, done_keys, key_order, merge_shard_logs, reading_main_log
from dvdlib.store import (ResultLog, StoreError, atomic_write_bytes, check_run_settings,
                          ensure_writable_dir, remove_temporaries, save_table)
from dvdlib.attention.token_positions import PhraseNotFoundError, check_alignment
from dvdlib.usage import ArgumentError

MANIFEST_LOG = "manifest.log"
MANIFEST = "manifest.csv"
SETTINGS = "generation.json"
RECORDS = "records"
KEY = ("case_num", "seed")
MANIFEST_COLUMNS = (
    "case_num", "category", "concept", "object", "prompt", "seed", "model", "steps",
    "guidance", "height", "width", "scheduler", "batch_size", "file", "sha256", "nsfw_flagged",
    "record_dir", "record_image", "torch_threads",
)


@dataclass(frozen=True)
class GenerationJob:
    """One image to make: a prompt row and a seed, and where the image goes."""

    case_num: int
    category: str
    concept: str
    object: str
    prompt: str
    seed: int
    concept_phrase: str = ""  # the concept as the prompt writes it (empty: ``concept``)
    object_phrase: str = ""  # the object as the prompt writes it (empty: ``object``)

    @property
    def concept_words(self) -> str:
        """The concept's words in the prompt, which its attention is read from."""
        return self.concept_phrase or self.concept

    @property
    def object_words(self) -> str:
        """The object's words in the prompt, which its attention is read from."""
        return self.object_phrase or self.object

    @property
    def file(self) -> str:
        """The image's path relative to the output folder, e.g. ``case001_.../seed01825.png``."""
        return f"{case_folder(self.case_num, self.prompt)}/seed{self.seed:05d}.png"


@dataclass
class PipelineCall:
    """One pipeline call, as a hook sees it."""

    pipe: Any
    jobs: list[GenerationJob]  # one per image of the call, in batch order
    num_inference_steps: int
    guidance: float  # the call's guidance scale
    cross_attention_kwargs: dict  # per-call attention options (the family's argument); hooks add theirs
    record_dir: Path  # a fresh folder for the hook's files about this call
    height: int | None = None  # the call's image size (None: the pipeline's own)
    width: int | None = None


BatchHook = Callable[[PipelineCall], ContextManager[Any]]


def generation_jobs(prompts: pd.DataFrame, seeds: Sequence[int]) -> list[GenerationJob]:
    """Every (prompt, seed) pair, prompt by prompt in table order, seeds in the order given.

    A table of prompts with several targets (:mod:`dvdlib.prompts.targets`) has no category,
    concept and object: its jobs, and their manifest rows, leave them empty."""
    pair = all(c in prompts.columns for c in ("category", "concept", "object"))
    return [
        GenerationJob(int(row.case_num), row.category, row.concept, row.object, row.prompt, seed,
                      concept_phrase(row), object_phrase(row)) if pair
        else GenerationJob(int(row.case_num), "", "", "", row.prompt, seed)
        for row in prompts.itertuples(index=False) for seed in seeds
    ]


def _png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _place_records(record_dir: Path, out_dir: Path, first: GenerationJob) -> str:
    """Move a hook's folder into ``records/``; returns its relative path ("" if the hook wrote nothing)."""
    if not any(record_dir.iterdir()):
        return ""
    relative = f"{RECORDS}/{Path(first.file).parent.name}_seed{first.seed:05d}"
    target = out_dir / relative
    target.parent.mkdir(exist_ok=True)
    if not target.exists():  # else a killed run saved this call's record: keep it, rows point at it
        os.replace(record_dir, target)  # atomic: the folder appears complete or not at all
    return relative


def generate(pipe, prompts: pd.DataFrame | TargetSet, seeds: Sequence[int],
             out_dir: str | Path, *, model: str, steps: int = 50, guidance: float = 7.5,
             height: int | None = None, width: int | None = None, batch_size: int = 1,
             cross_attention_kwargs: dict | None = None, hook: BatchHook | None = None,
             progress: bool = True, shard: Shard | None = None) -> pd.DataFrame:
    """Make one image per (prompt row, seed) into ``out_dir``; skips images already made.

    ``model`` names the pipeline in the manifest. ``height``/``width`` None leave the pipeline's
    default size (the manifest records the size made). ``cross_attention_kwargs`` go to every
    call; ``hook`` wraps every call (see the module notes). Returns the manifest rows of this
    run's (prompt, seed) pairs, made now or before. With ``shard``, makes only that shard's
    batches, writes no manifest table and returns the rows its shard log holds (see the module
    notes). Every argument is checked before anything is written (:func:`check_generation`).
    ``prompts`` may be a :class:`~dvdlib.prompts.targets.TargetSet` (several targets per prompt):
    then every target must lie among the tokens the pipeline's text encoder reads.
    """
    tokenizer = getattr(pipe, "tokenizer", None)
    if isinstance(prompts, TargetSet):
        if tokenizer is not None:
            target_token_positions(prompts, tokenizer)
        prompts, tokenizer = prompts.prompts, None
    else:
        categories = prompts["category"].unique() if isinstance(prompts, pd.DataFrame) \
            and "category" in prompts else ()
        prompts = validate_prompts(prompts, categories=categories, source="prompts")
        check_prompt_words(prompts)
    seeds = check_generation(prompts, seeds, steps=steps, batch_size=batch_size, guidance=guidance,
                             tokenizer=tokenizer, source=f"prompts for {model}")
    return make_images(pipe, prompts, seeds, ensure_writable_dir(out_dir), model=model,
                       steps=steps, guidance=guidance, height=height, width=width,
                       batch_size=batch_size, cross_attention_kwargs=cross_attention_kwargs,
                       hook=hook, progress=progress, shard=shard)


def check_generation(prompts: pd.DataFrame, seeds: Sequence[int], *, steps: int, batch_size: int,
                     guidance: float = 7.5, tokenizer=None, source: str = "prompts") -> list[int]:
    """The checks of a generation run that need no folder and no model; returns the seeds.

    ``prompts`` is a validated prompt table with rows; ``steps`` and ``batch_size`` are whole
    numbers of at least 1 and ``guidance`` a finite number of at least 0 (NaN and infinity would
    make no guidance or black images; an :class:`~dvdlib.usage.ArgumentError` naming the argument); with
    ``tokenizer``, every concept and object lies among the tokens its text encoder reads (a word
    cut off by the limit can never be drawn).
    """
    if prompts.empty:
        raise ValueError("the prompt table has no rows: there is nothing to generate")
    for name, value in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(name, f" must be at least 1, got {value!r}")
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
            or not math.isfinite(guidance) or guidance < 0:
        raise ArgumentError("guidance", f" {guidance!r}: accepted: a finite number of at least 0 "
                                        f"(1 or less: no classifier-free guidance)")
    if tokenizer is not None:
        check_alignment(tokenizer, prompts, source)
    return choose_seeds(seeds)


def check_text_keys(pipe, prompts: pd.DataFrame, source: str = "prompts") -> None:
    """Every row's concept and object among ``pipe``'s text keys, placed as its attention
    instruments place them: :func:`check_generation`'s tokenizer check for a family whose keys
    are known only once the pipeline is loaded (Flux reads T5's keys alone; its CLIP encoder's
    77-token limit bounds only a pooled vector). Raises :class:`PhraseNotFoundError` listing
    every bad row."""
    from dvdlib.attention.instruments import instruments_for

    instruments = instruments_for(pipe)
    problems = []
    for row in prompts.itertuples(index=False):
        keys = instruments.prompt_tokens(row.prompt)
        for side, phrase in (("concept", concept_phrase(row)), ("object", object_phrase(row))):
            try:
                instruments.token_groups(keys, {side: phrase})
            except PhraseNotFoundError as err:
                problems.append(f"case {row.case_num}: {side} {err}")
    if problems:
        raise PhraseNotFoundError(f"{source}: {len(problems)} concept(s) or object(s) are not "
                                  f"among the text keys the model reads: " + "; ".join(problems))


def make_images(pipe, prompts: pd.DataFrame, seeds: list[int], out_dir: Path, *, model: str,
                steps: int, guidance: float, height: int | None, width: int | None,
                batch_size: int, cross_attention_kwargs: dict | None, hook: BatchHook | None,
                progress: bool, shard: Shard | None) -> pd.DataFrame:
    """:func:`generate` once its arguments are checked (:func:`check_generation`, and ``out_dir``
    writable: it is made if missing), for a caller that checked them before loading the model."""
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"model": model, "steps": steps, "guidance": float(guidance), "height": height,
                "width": width, "scheduler": type(getattr(pipe, "scheduler", None)).__name__,
                **protocol_record(pipe, steps, guidance, height, width)}
    main_log = ResultLog(out_dir / MANIFEST_LOG, KEY)
    fresh = shard is None and not (out_dir / SETTINGS).exists() and not main_log.path.exists()
    try:
        check_run_settings(out_dir / SETTINGS, settings, f"the images in {out_dir}")
        check_manifest_log(main_log)
        return _generate_jobs(pipe, prompts, seeds, out_dir, settings, main_log, batch_size,
                              cross_attention_kwargs, hook, progress, shard)
    except BaseException:
        written = {p.name for p in out_dir.iterdir()} - {SETTINGS, MANIFEST_LOG}
        if fresh and not written and not main_log.rows():  # nothing was made: leave no file behind
            main_log.path.unlink(missing_ok=True)
            (out_dir / SETTINGS).unlink(missing_ok=True)
        raise


def protocol_record(pipe, steps: int, guidance: float, height: int | None,
                    width: int | None) -> dict:
    """What ``generation.json`` says about the protocol: the pipeline's family, the family's
    defaults (steps, guidance, kind of guidance, and the resolution: the model's own where the
    family leaves it to the model) and how this run's settings differ
    from the paper's protocol (:func:`~dvdlib.models.families.protocol_differences`)."""
    family = family_of(pipe)
    defaults = pipeline_defaults(pipe)
    native = native_resolution(pipe)
    size = f"{height or native}x{width or native}"
    return {"family": family.name,
            "family_defaults": {**{key: value for key, value in defaults.to_dict().items()
                                   if key != "source"},
                                "resolution": defaults.resolution or native},
            "differs_from_paper": protocol_differences(family, steps=steps, guidance=guidance,
                                                       size=size,
                                                       guidance_kind=defaults.guidance_kind)}


def check_manifest_log(log: ResultLog) -> None:
    """Refuse a manifest log whose rows lack columns of :data:`MANIFEST_COLUMNS`, written by an
    older dvdlib (one that named the prompt columns after the authors' CSV, say), rather than
    mix its rows with new ones."""
    for row in log.rows():
        missing = [c for c in MANIFEST_COLUMNS if c not in row]
        if missing:
            extra = sorted(set(row) - set(MANIFEST_COLUMNS))
            raise StoreError(
                f"{log.path} was written by another version of dvdlib: its rows lack "
                f"{', '.join(missing)}" + (f" and have {', '.join(extra)}" if extra else "")
                + "; write the images to another folder")


def _generate_jobs(pipe, prompts: pd.DataFrame, seeds: list[int], out_dir: Path, settings: dict,
                   main_log: ResultLog, batch_size: int, cross_attention_kwargs: dict | None,
                   hook: BatchHook | None, progress: bool, shard: Shard | None) -> pd.DataFrame:
    jobs = generation_jobs(prompts, seeds)
    batches = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    log = main_log if shard is None else ResultLog(shard.log_path(main_log.path), KEY)
    with log.open(), nullcontext() if shard is None else reading_main_log(main_log, shard):
        if shard is None:
            merge_shard_logs(log, key_order([(job.case_num, job.seed) for job in jobs]))
            remove_temporaries(out_dir, *{out_dir / Path(job.file).parent for job in jobs})
            done = log.done_keys()
        else:  # other shards may be writing: their temporaries stay, the main run removes them
            batches = shard.take(batches)
            done = done_keys(main_log)
        todo = [job for batch in batches for job in batch if (job.case_num, job.seed) not in done]
        bar = tqdm(total=len(todo), desc="images" if shard is None else f"images ({shard})",
                   unit="img", disable=not progress)
        for batch in batches:
            if all((job.case_num, job.seed) in done for job in batch):
                continue  # whole batches only, so a rerun forms the batches the first run did
            rows = _generate_batch(pipe, batch, out_dir, settings, batch_size, cross_attention_kwargs,
                                   hook, done)
            log.append(rows)
            bar.update(len(rows))
        bar.close()
        table = log.table(MANIFEST_COLUMNS).astype({"nsfw_flagged": "boolean", "record_image": "Int64",
                                                    "torch_threads": "Int64"})
    if shard is not None:
        return table
    save_table(table, out_dir / MANIFEST)
    wanted = pd.DataFrame([(j.case_num, j.seed) for j in jobs], columns=list(KEY))
    return table.merge(wanted, on=list(KEY)).reset_index(drop=True)


def _generate_batch(pipe, batch: list[GenerationJob], out_dir: Path, settings: dict, batch_size: int,
                    cross_attention_kwargs: dict | None, hook: BatchHook | None, done: set) -> list[dict]:
    call = PipelineCall(pipe, list(batch), settings["steps"], settings["guidance"],
                        dict(cross_attention_kwargs or {}),
                        record_dir=Path(tempfile.mkdtemp(prefix=".record.", suffix=".tmp", dir=out_dir)),
                        height=settings["height"], width=settings["width"])
    options = family_of(pipe).attention_kwargs  # cross_attention_kwargs or joint_attention_kwargs
    try:
        with hook(call) if hook is not None else nullcontext():
            output = pipe(
                prompt=[job.prompt for job in batch],
                num_inference_steps=settings["steps"],
                guidance_scale=settings["guidance"],
                height=settings["height"],
                width=settings["width"],
                generator=[torch.Generator("cpu").manual_seed(job.seed) for job in batch],
                output_type="pil",
                **({options: call.cross_attention_kwargs} if call.cross_attention_kwargs else {}),
            )
        record = _place_records(call.record_dir, out_dir, batch[0])
    finally:
        shutil.rmtree(call.record_dir, ignore_errors=True)
    flagged = getattr(output, "nsfw_content_detected", None) or [None] * len(batch)
    rows = []
    for position, (job, image, nsfw) in enumerate(zip(batch, output.images, flagged)):
        if (job.case_num, job.seed) in done:
            continue  # made by an earlier run: keep its file, which its row describes
        data = _png_bytes(image)
        target = out_dir / job.file
        target.parent.mkdir(exist_ok=True)
        atomic_write_bytes(target, data)
        rows.append({
            "case_num": job.case_num, "category": job.category, "concept": job.concept,
            "object": job.object, "prompt": job.prompt, "seed": job.seed,
            "model": settings["model"], "steps": settings["steps"], "guidance": settings["guidance"],
            "height": image.height, "width": image.width, "scheduler": settings["scheduler"],
            "batch_size": batch_size, "file": job.file, "sha256": hashlib.sha256(data).hexdigest(),
            "nsfw_flagged": None if nsfw is None else bool(nsfw),
            "record_dir": record, "record_image": position if record else None,
            # CPU results can differ with the number of threads (e.g. one pixel level), so say it.
            "torch_threads": torch.get_num_threads(),
        })
    return rows


RECORD_FILE = "attention.npz"  # a call's attention record, in its record folder


def attention_hook(*, sample_size: tuple[int, int] | None = None,
                   maps: Callable[[PipelineCall, list, list], Any] | None = None,
                   extra_kwargs: Callable[[PipelineCall, list], dict] | None = None,
                   keep: Callable[[PipelineCall, Any], None] | None = None,
                   **record_options) -> BatchHook:
    """The one hook that records attention during a call, on the instruments of the pipeline's
    family (:func:`dvdlib.attention.instruments.instruments_for`): the cross-attention of a UNet
    (:mod:`dvdlib.attention.recorder`) or the joint attention of an MMDiT
    (:mod:`dvdlib.attention.joint`).

    The instruments make the call's record (``new_record``: the family's record class, told from
    the call's guidance scale which rows of the denoiser's batch are the prompt's) and its per-call
    options (``call_kwargs``); ``record_options`` go to the record class. The three callables let
    an experiment add to it without a hook of its own: ``maps(call, layers, prompts)`` returns the
    call's ``MapRequest`` (spatial maps) or None; ``extra_kwargs(call, layers)`` returns more
    per-call options (e.g. a head ablation, through the instruments' ``call_kwargs``); ``keep(call,
    record)`` takes the finished record, which by default is saved as ``attention.npz`` in the
    call's record folder (the manifest's ``record_image`` says which image is which).
    ``sample_size`` is the latent size (default: the call's, from its image size).
    """
    from dvdlib.attention.instruments import instruments_for

    @contextmanager
    def hook(call: PipelineCall) -> Iterator[None]:
        instruments = instruments_for(call.pipe)  # the family's: a ValueError where none exist
        prompts = [instruments.prompt_tokens(job.prompt) for job in call.jobs]
        size = sample_size or latent_size(call.pipe, call.height, call.width)  # of this call
        with instruments.install(size) as layers:
            request = maps(call, layers, prompts) if maps else None
            record = instruments.new_record(layers, call.num_inference_steps, prompts, call.guidance,
                                            maps=request, **record_options)
            call.cross_attention_kwargs.update(instruments.call_kwargs(record=record))
            call.cross_attention_kwargs.update(extra_kwargs(call, layers) if extra_kwargs else {})
            yield
        if keep is None:
            record.save(call.record_dir / RECORD_FILE)
        else:
            keep(call, record)

    return hook
