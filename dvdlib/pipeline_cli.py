"""The ``dvd generate`` and ``dvd score`` commands: images for a prompt set, and their DvD table.

Both check every input before the slow part starts (prompt file, concept words, seeds, output
folder, model weights), and both resume: rerunning a killed command continues where it stopped.
The work itself is :func:`dvdlib.generation.protocol.generate` and :func:`dvdlib.scoring.dvd.score_folder`.
Started by ``accelerate launch`` with several processes, each process does its share and the
main process merges the shares into the one manifest or table (:mod:`dvdlib.sharding`).
"""

from __future__ import annotations

import re
import sys

import pandas as pd

from dvdlib.prompts.prompt_sets import (builtin_prompts, concept_phrase, load_prompts, object_phrase,
                          validate_prompts)
from dvdlib.prompts.prompt_sets import seeds as bench_seeds
from dvdlib.generation.protocol import attention_hook, generate
from dvdlib.scoring.judges import load_judge
from dvdlib.models.loading import load_pipeline
from dvdlib.models.spec import parse_model
from dvdlib.scoring.questions import OUR_WORDING, check_prompt_words, load_wording
from dvdlib.scoring.dvd import category_scores, find_images, question_table, score_folder
from dvdlib.sharding import join_launch, run_sharded
from dvdlib.store import (StoreError, check_table_path, check_writable_dir, no_new_folders_on_error,
                          save_table)
from dvdlib.prompts.tokenizer import clip_tokenizer
from dvdlib.attention.token_positions import check_alignment
from dvdlib.toyworld.world import CONCEPTS, OBJECTS, World, prompt_table, unknown_words
from dvdlib.usage import UsageError, seed_count, seed_list


def parse_cases(text: str) -> set[int]:
    """``1-10,15`` -> {1, ..., 10, 15}; a ValueError naming the bad part."""
    cases: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
            raise ValueError(f"--cases: {part.strip()!r} is not a case number or a range such as 1-10")
        first = int(match.group(1))
        cases.update(range(first, int(match.group(2) or first) + 1))
    return cases


def _note(command: str):
    """A reporter printing one ``dvd COMMAND: note: ...`` line on stderr."""
    return lambda text: print(f"dvd {command}: note: {text}", file=sys.stderr)


def toy_prompts(categories=OUR_WORDING.categories) -> pd.DataFrame:
    """The toy world's pair prompts ("sunset coaster", ...): the default for toy models."""
    return validate_prompts(prompt_table(World(), controls=False), categories, TOY_PROMPTS)


TOY_PROMPTS = "the toy world's prompts"


def check_toy_words(prompts: pd.DataFrame, source: str) -> None:
    """Refuse rows whose concept is not a concept of the toy world or whose object is not one of
    its objects, listing them all."""
    bad = []
    for row in prompts.itertuples(index=False):
        strangers = unknown_words(concept_phrase(row), object_phrase(row))
        if strangers:
            bad.append(f"case {row.case_num}: {' and '.join(strangers)}")
    if bad:
        raise UsageError(
            f"{source}: the toy world draws only the concepts {', '.join(CONCEPTS)} printed on the "
            f"objects {', '.join(OBJECTS)}; {len(bad)} row(s) name other things: {'; '.join(bad)}. "
            f"Leave out --prompts for the toy world's own prompts, or give a prompt file of its "
            f"concepts and objects"
        )


def _prompt_set(path: str | None, categories, cases: str | None, command: str,
                default: pd.DataFrame | None = None) -> pd.DataFrame:
    if path:
        prompts, source = load_prompts(path, categories, report=_note(command)), path
    elif default is not None:
        prompts, source = default, TOY_PROMPTS
    else:
        prompts, source = builtin_prompts(), "built-in prompts"
    if cases:
        wanted = parse_cases(cases)
        prompts = prompts[prompts["case_num"].isin(wanted)].reset_index(drop=True)
        if prompts.empty:
            raise ValueError(f"--cases {cases}: none of these cases is in {source}")
    check_prompt_words(prompts, source)
    return validate_prompts(prompts, categories, source)


# --------------------------------------------------------------------------------------------
# dvd generate


def run_generate(args) -> int:
    """``dvd generate`` once its arguments are parsed (:mod:`dvdlib.book.commands.generate`)."""

    seeds = seed_list(args.seed_list) if args.seed_list is not None else bench_seeds(seed_count(args.seeds))
    try:
        model = parse_model(args.model)
    except ValueError as err:
        raise UsageError(f"--model: {err}") from None
    toy = model.is_toy
    prompts = _prompt_set(args.prompts, OUR_WORDING.categories, args.cases, "generate",
                          default=toy_prompts() if toy else None)
    if toy and args.prompts:
        check_toy_words(prompts, args.prompts)
    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    size = args.size if args.size is not None else (model.paper.resolution if model.paper else None)
    if size is not None and (size < 8 or size % 8):
        raise UsageError(f"--size {size}: must be a positive multiple of 8")
    if not toy:  # SD 1.x and 2.x read 77 CLIP tokens; the loaded model's tokenizer checks again
        check_alignment(clip_tokenizer(), prompts, args.prompts or "built-in prompts")
    out = check_writable_dir(args.out)
    launch = join_launch(args.device)  # None unless started by accelerate with several processes
    with no_new_folders_on_error(out):
        pipe = load_pipeline(args.model, device=launch.device if launch else args.device,
                             dtype=args.dtype)
        try:
            manifest = run_sharded(launch, lambda shard: generate(
                pipe, prompts, seeds, out, model=args.model, steps=args.steps,
                guidance=args.guidance, height=size, width=size, batch_size=args.batch_size,
                hook=attention_hook() if args.record_attention else None,
                progress=not args.no_progress, shard=shard,
            ))
        except StoreError as err:
            raise UsageError(str(err)) from None
    if manifest is not None:  # the main process (or the only one)
        print(f"{len(manifest)} images in {out} (manifest: {out / 'manifest.csv'})")
    return 0


# --------------------------------------------------------------------------------------------
# dvd score


def run_score(args) -> int:
    """``dvd score`` once its arguments are parsed (:mod:`dvdlib.book.commands.score`)."""

    wording = load_wording(args.questions) if args.questions else OUR_WORDING
    toy = args.judge == "toy"
    prompts = _prompt_set(args.prompts, wording.categories, args.cases, "score",
                          default=toy_prompts(wording.categories) if toy else None)
    if toy:
        check_toy_words(prompts, args.prompts or TOY_PROMPTS)
    out = check_table_path(args.out)
    per_question = check_table_path(args.per_question) if args.per_question else None
    if args.images_per_call < 1:
        raise UsageError(f"--images-per-call must be at least 1, got {args.images_per_call}")
    find_images(args.images, prompts)  # a folder that matches no prompt fails before the judge loads
    for path in (out, per_question):
        if path is not None:
            try:
                check_writable_dir(path.parent, "its folder")
            except ValueError as err:
                raise UsageError(f"table {str(path)!r} cannot be written: {err}") from None
    if args.questions_per_call is not None and args.judge != "vlm":
        raise UsageError(f"--questions-per-call applies to the vlm judge only, not {args.judge}")
    launch = join_launch(args.device)  # None unless started by accelerate with several processes
    judge = load_judge(args.judge, args.judge_model, launch.device if launch else args.device,
                       args.questions_per_call)
    with no_new_folders_on_error(out.parent):
        try:
            table = run_sharded(launch, lambda shard: score_folder(
                args.images, prompts, judge, out, wording=wording,
                images_per_call=args.images_per_call, progress=not args.no_progress, shard=shard))
        except StoreError as err:
            raise UsageError(str(err)) from None
        if table is None:  # another process than the main one: the main one writes the table
            return 0
        save_table(table, out)
        if per_question is not None:
            save_table(question_table(table, wording), per_question)
    summary = category_scores(table)
    print(f"{len(table)} images judged by {judge.name}; table: {out}")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
