"""The ``dvd generate`` and ``dvd score`` commands: images for a prompt set, and their DvD table.

Both check every input before the slow part starts (prompt file, concept words, seeds, output
folder, model weights), and both resume: rerunning a killed command continues where it stopped.
The work itself is :func:`dvdlib.generate.generate` and :func:`dvdlib.score.score_folder`.
Started by ``accelerate launch`` with several processes, each process does its share and the
main process merges the shares into the one manifest or table (:mod:`dvdlib.sharding`).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from dvdlib.bench import (PAPER_SEEDS, builtin_prompts, concept_phrase, load_prompts, object_phrase,
                          validate_prompts)
from dvdlib.cli import UsageError
from dvdlib.questions import OUR_WORDING, check_prompt_words, load_wording
from dvdlib.store import (StoreError, check_table_path, check_writable_dir, no_new_folders_on_error,
                          save_table)

JUDGES = ("vlm", "clip", "toy")
DEFAULT_IMAGES_PER_CALL = 4
# The authors' scorer asks one question per generate call. Batching an image's questions in one
# call is faster and gave identical answers on a random-weight tiny Qwen2-VL in float32 on the CPU;
# until the same is shown for the real architecture in bfloat16 on a GPU, the loop is the default.
DEFAULT_QUESTIONS_PER_CALL = 1


_SCALE_OUT = (
    "Scale out: `accelerate launch --multi_gpu --num_processes N -m dvdlib.cli` followed by the "
    "same arguments runs N processes (one per GPU; on a machine without GPUs, N on the CPU), "
    "each on every N-th batch, and leaves the manifest or table one process would write."
)


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


def parse_seeds(text: str) -> list[int]:
    from dvdlib.generate import check_seeds

    return check_seeds([part for part in text.split(",") if part.strip()] or [text])


def _note(command: str):
    """A reporter printing one ``dvd COMMAND: note: ...`` line on stderr."""
    return lambda text: print(f"dvd {command}: note: {text}", file=sys.stderr)


def toy_prompts(categories=OUR_WORDING.categories) -> pd.DataFrame:
    """The toy world's pair prompts ("a circle and a square", ...): the default for toy models."""
    from dvdlib.toyworld.world import World, prompt_table

    return validate_prompts(prompt_table(World(), controls=False), categories, TOY_PROMPTS)


TOY_PROMPTS = "the toy world's prompts"


def check_toy_words(prompts: pd.DataFrame, source: str) -> None:
    """Refuse rows whose concept or object is not a shape the toy world draws, listing them all."""
    from dvdlib.toyworld.world import SHAPES

    bad = []
    for row in prompts.itertuples(index=False):
        strangers = [f"{side} {word!r}" for side, word in
                     (("content", concept_phrase(row)), ("nm_word", object_phrase(row)))
                     if word.casefold() not in SHAPES]
        if strangers:
            bad.append(f"case {row.case_num}: {' and '.join(strangers)}")
    if bad:
        raise UsageError(
            f"{source}: the toy world draws only the shapes {', '.join(SHAPES)}; {len(bad)} "
            f"row(s) name other things: {'; '.join(bad)}. Leave out --prompts for the toy "
            f"world's own prompts, or give a prompt file of shapes"
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


def add_parser(subparsers) -> None:
    _add_generate(subparsers)
    _add_score(subparsers)


# --------------------------------------------------------------------------------------------
# dvd generate


def _add_generate(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate the benchmark's images with a text-to-image model (resumable)",
        description="Generate one image per prompt and seed into OUT, in the folders the DvD "
        "scorer reads (caseNNN_<slug>/seedNNNNN.png), with a manifest (manifest.csv: prompt, "
        "seed, model, settings, file, SHA-256). The defaults are the paper's protocol: DDIM, 50 "
        "steps, guidance 7.5, the paper's ten seeds, 512 px for SD 1.4 and 768 px for SD 2.1. "
        "Rerunning the same command skips the images already made, so a killed run continues "
        "where it stopped; a folder refuses images made with other settings.",
        epilog="MODEL is sd1.4 or sd2.1 (the paper's models), a Hugging Face id such as "
        "CompVis/stable-diffusion-v1-4 (read from the local Hugging Face cache, never downloaded: "
        "fetch it first with `huggingface-cli download ID`), a folder holding a saved diffusers "
        "pipeline (model_index.json, unet/, ...), or toy, toy:NAME or a toy zoo name such as k1 "
        "(which draw the toy world's shapes: their default prompts are the toy world's pair "
        "prompts). " + _SCALE_OUT,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="the text-to-image model (see below)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the output folder")
    parser.add_argument("--prompts", metavar="CSV",
                        help="a prompt set in the authors' CSV format, extra columns allowed "
                        "(default: our built-in set; for a toy model, the toy world's prompts)")
    parser.add_argument("--cases", metavar="LIST",
                        help="only these case numbers, e.g. 1-10,201 (default: all)")
    parser.add_argument("--seeds", metavar="LIST",
                        help="comma-separated integer seeds (default: the paper's ten)")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default: 50)")
    parser.add_argument("--guidance", type=float, default=7.5,
                        help="classifier-free guidance scale (default: 7.5)")
    parser.add_argument("--size", type=int, metavar="PIXELS",
                        help="image height and width (default: 512 for SD 1.4, 768 for SD 2.1, "
                        "else the model's own)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per pipeline call, each with its own seeded generator "
                        "(default: 1)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu; "
                        "under accelerate launch, each process's own GPU)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="weights' precision (default: float32, diffusers' default)")
    parser.add_argument("--record-attention", action="store_true",
                        help="also record cross-attention per image, step, layer, head and token "
                        "(records/<call>/attention.npz; see dvdlib.recorder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_generate)


def _run_generate(args) -> int:
    from dvdlib.generate import attention_hook, generate
    from dvdlib.models import load_pipeline, paper_model, toy_model_name
    from dvdlib.sharding import join_launch, run_sharded
    from dvdlib.tokenizer import clip_tokenizer
    from dvdlib.tokens import check_alignment

    seeds = parse_seeds(args.seeds) if args.seeds is not None else list(PAPER_SEEDS)
    toy = toy_model_name(args.model) is not None
    prompts = _prompt_set(args.prompts, OUR_WORDING.categories, args.cases, "generate",
                          default=toy_prompts() if toy else None)
    if toy and args.prompts:
        check_toy_words(prompts, args.prompts)
    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    paper = paper_model(args.model)
    size = args.size if args.size is not None else (paper.resolution if paper else None)
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


def _add_score(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="judge a folder of images and compute the DvD score (resumable)",
        description="Ask a judge five yes/no questions about the concept and five about the "
        "object of every image in IMAGES (caseNNN_<slug>/ folders, as `dvd generate` or the "
        "authors' generation lay them out), and write one row per image with the DvD score "
        "c*(5-n)/25*100 and the per-prompt mean, in the authors' scorer columns plus ours. "
        "Answers are kept in OUT's stem + .answers.log as they come, so a killed run continues "
        "where it stopped. Prints the mean DvD per category with 95% bootstrap intervals. By "
        "default the vlm judge asks one question per generate call, as the authors' scorer does "
        "(--questions-per-call batches them).",
        epilog="Judges: vlm is the paper's (Qwen2-VL-2B-Instruct, greedy, 5 new tokens); clip is "
        "ours (open_clip zero-shot presence, see dvdlib.judges.clip); toy is the toy world's shape "
        "detector. Weights are read from a local folder or the Hugging Face cache, never "
        "downloaded. " + _SCALE_OUT,
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="the image folder")
    parser.add_argument("--out", required=True, metavar="TABLE",
                        help="the per-image table to write (.csv or .parquet)")
    parser.add_argument("--prompts", metavar="CSV",
                        help="the prompt set the images were made from (default: our built-in set; "
                        "with --judge toy, the toy world's prompts)")
    parser.add_argument("--cases", metavar="LIST", help="only these case numbers, e.g. 1-100")
    parser.add_argument("--judge", choices=JUDGES, default="vlm", help="the judge (default: vlm)")
    parser.add_argument("--judge-model", metavar="PATH_OR_ID",
                        help="the judge's weights: a folder or a Hugging Face id in the local cache "
                        "(default: Qwen/Qwen2-VL-2B-Instruct for vlm, the CLIP ViT-L/14 of "
                        "dvdlib.judges.clip for clip, the shipped detector for toy)")
    parser.add_argument("--questions", metavar="JSON",
                        help="the question wording (format: see dvdlib.questions; default: ours)")
    parser.add_argument("--images-per-call", type=int, default=DEFAULT_IMAGES_PER_CALL, metavar="N",
                        help=f"images judged together (default: {DEFAULT_IMAGES_PER_CALL})")
    parser.add_argument("--questions-per-call", type=int, metavar="N",
                        help=f"vlm only: questions per generate call (default: "
                        f"{DEFAULT_QUESTIONS_PER_CALL}, the authors' one-question-per-call loop); "
                        "larger values, e.g. 10, answer an image's questions in one batched call: "
                        "faster, and equal to the loop on a random-weight model in float32, but not "
                        "yet checked on the real judge in bfloat16 on a GPU")
    parser.add_argument("--per-question", metavar="TABLE",
                        help="also write one row per image and question (.csv or .parquet)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu; "
                        "under accelerate launch, each process's own GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_score)


def load_judge(kind: str, source: str | None, device: str | None, questions_per_call: int | None):
    """A judge by kind (``vlm``, ``clip``, ``toy``), weights from ``source`` or the default."""
    if questions_per_call is not None and kind != "vlm":
        raise UsageError(f"--questions-per-call applies to the vlm judge only, not {kind}")
    if kind == "vlm":
        from dvdlib.judges.vlm import PAPER_JUDGE, QwenVLJudge

        return QwenVLJudge.from_pretrained(source or PAPER_JUDGE, device=device,
                                           questions_per_call=questions_per_call or DEFAULT_QUESTIONS_PER_CALL)
    if kind == "clip":
        from dvdlib.judges.clip import DEFAULT_CLIP, ClipJudge

        return ClipJudge.from_pretrained(source or DEFAULT_CLIP, device=device)
    if kind == "toy":
        from dvdlib.toyworld.judge import ToyJudge
        from dvdlib.toyworld.zoo import load_detector

        return ToyJudge(load_detector(source))
    raise UsageError(f"unknown judge {kind!r}; accepted: {', '.join(JUDGES)}")


def _run_score(args) -> int:
    from dvdlib.score import category_scores, find_images, question_table, score_folder
    from dvdlib.sharding import join_launch, run_sharded

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
