"""A folder of images judged and scored, as ``dvd score`` does it.

:func:`score_benchmark` is the one call: it reads the question wording, chooses the prompt set
the images were made from (a file, the built-in set, or the toy world's pairs for the toy
judge), checks every argument once, before the judge loads, then loads the judge, judges with
:func:`~dvdlib.scoring.dvd.judge_folder` and writes the tables. Started by ``accelerate launch``
with several processes, each process judges its share and the main process merges the shares
into the one table (:mod:`dvdlib.sharding`).

A prompt file with several targets per prompt (a ``target1`` column, :mod:`dvdlib.prompts.targets`)
is judged by :func:`score_targets` instead: five questions per target
(:func:`~dvdlib.scoring.targets.judge_targets`), and the scores of
:mod:`dvdlib.scoring.target_scores` written beside the table (:data:`TARGET_TABLES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from dataclasses import dataclass

from dvdlib.models.loading import check_device
from dvdlib.prompts.selection import choose_targets
from dvdlib.scoring.dvd import check_scoring, judge_folder, question_table
from dvdlib.scoring.judges import DEFAULT_IMAGES_PER_CALL, load_judge
from dvdlib.scoring.questions import OUR_WORDING, load_wording
from dvdlib.scoring.target_scores import image_pair_columns, pair_table, strong_slot_effects
from dvdlib.scoring.targets import judge_targets
from dvdlib.sharding import join_launch, launched_processes, run_sharded
from dvdlib.usage import ArgumentError
from dvdlib.store import check_table_path, check_writable_dir, no_new_folders_on_error, save_table
from dvdlib.toyworld.prompt_set import run_prompts


def score_benchmark(images: str | Path, out: str | Path, *, prompts: str | Path | None = None,
                    cases: str | Iterable[int] | None = None, judge: str = "vlm",
                    judge_model: str | None = None, questions: str | Path | None = None,
                    images_per_call: int = DEFAULT_IMAGES_PER_CALL,
                    questions_per_call: int | None = None, per_question: str | Path | None = None,
                    device: str | None = None, progress: bool = True,
                    report: Callable[[str], None] | None = None) -> pd.DataFrame | None:
    """Judge the images of ``images`` and write the per-image table to ``out`` (resumable);
    returns the table, or None in a process of ``accelerate launch`` other than the main one.

    ``prompts`` is the prompt file the images were made from (default: the built-in set; for
    the toy judge, the toy world's prompts), ``cases`` the cases to judge (default: all).
    ``judge`` is a kind of :func:`~dvdlib.scoring.judges.load_judge` with its weights
    ``judge_model``; ``questions`` a question wording file (default: ours). ``per_question``
    also writes one row per image and question. ``report`` takes notes on the prompt file.
    Bad arguments raise before the judge loads and before any file is written.
    """
    wording = load_wording(questions) if questions else OUR_WORDING
    table, _ = run_prompts(prompts, wording.categories, cases, toy=judge == "toy", report=report)
    out = _writable_table(out)
    per_question = _writable_table(per_question) if per_question is not None else None
    found = check_scoring(images, table, images_per_call)
    check_device(device)  # every judge, also one that would ignore it (the toy detector)
    launch = join_launch(device)  # None unless started by accelerate with several processes
    # load_judge checks its own arguments (questions_per_call) before it loads anything.
    judged_by = load_judge(judge, judge_model, launch.device if launch else device,
                           questions_per_call)
    with no_new_folders_on_error(out.parent):
        scores = run_sharded(launch, lambda shard: judge_folder(
            images, found, table, judged_by, out, wording=wording,
            images_per_call=images_per_call, progress=progress, shard=shard))
        if scores is None:  # another process than the main one: the main one writes the table
            return None
        save_table(scores, out)
        if per_question is not None:
            save_table(question_table(scores, wording), per_question)
    return scores


TARGET_TABLES = {"pairs": "the who-wins matrix and pairwise DvD (target_scores.pair_table)",
                 "effects": "the factorial set's strong-slot effects, with seeds"}


@dataclass
class TargetScores:
    """What :func:`score_targets` wrote: the judged table and the tables beside it."""

    judged: pd.DataFrame  # one row per image and target, with presence and pair columns
    pairs: pd.DataFrame  # one row per axis and ordered pair (pair_table)
    effects: pd.DataFrame | None  # the factorial set only (strong_slot_effects)
    files: dict[str, Path]  # "table", "pairs" (and "effects") -> the file written


def target_table_paths(out: Path) -> dict[str, Path]:
    """The tables written beside ``out`` for a target set: ``t.csv`` -> ``t.pairs.csv``, ..."""
    return {name: out.with_name(f"{out.stem}.{name}{out.suffix}") for name in TARGET_TABLES}


def score_targets(images: str | Path, out: str | Path, prompts: str | Path, *,
                  cases: str | Iterable[int] | None = None, judge: str = "vlm",
                  judge_model: str | None = None, questions: str | Path | None = None,
                  images_per_call: int = DEFAULT_IMAGES_PER_CALL,
                  questions_per_call: int | None = None, with_carrier: bool = False,
                  device: str | None = None, progress: bool = True,
                  report: Callable[[str], None] | None = None) -> TargetScores:
    """Judge the images of a prompt file with several targets per prompt; write the judged table
    (:func:`~dvdlib.scoring.target_scores.image_pair_columns`) to ``out`` and beside it the pair
    table and, for the factorial layout, the strong-slot effects (:func:`target_table_paths`).

    ``with_carrier`` also judges each prompt's carrier (the pilot layout's ``carrier`` column) as
    one more target. The other arguments are :func:`score_benchmark`'s. Bad arguments raise
    before the judge loads and before any file is written. One process only.
    """
    wording = load_wording(questions) if questions else OUR_WORDING
    if judge == "toy":
        raise ArgumentError("judge", " toy: the toy world's detector knows only its own concepts "
                                     "and objects; judge a target set with vlm or clip")
    if launched_processes() > 1:
        raise ValueError("a target set is judged in one process; run dvd score without "
                         "accelerate launch")
    target_set = choose_targets(prompts, cases, with_carrier=with_carrier, report=report)
    out = _writable_table(out)
    files = {"table": out, **target_table_paths(out)}
    for path in files.values():
        _writable_table(path)
    check_scoring(images, target_set.prompts, images_per_call)
    check_device(device)
    judged_by = load_judge(judge, judge_model, device, questions_per_call)
    with no_new_folders_on_error(out.parent):
        judged = judge_targets(images, target_set, judged_by, out, wording=wording,
                               images_per_call=images_per_call, progress=progress)
    effects = None
    if target_set.layout == "factorial":
        if judged["seed"].isna().any():
            if report is not None:
                report("the strong-slot effects resample seeds, and some image names hold none "
                       "(seedNNNNN): no effects table")
        else:
            try:
                effects = strong_slot_effects(judged)
            except ValueError as err:  # no slot varies among the cases judged
                if report is not None:
                    report(f"no strong-slot effects: {err}")
    scores = TargetScores(image_pair_columns(judged), pair_table(judged), effects, files)
    save_table(scores.judged, files["table"])
    save_table(scores.pairs, files["pairs"])
    if effects is not None:
        save_table(effects, files["effects"])
    else:
        del files["effects"]
    return scores


def _writable_table(path: str | Path) -> Path:
    """``path`` if it names a table we write (by suffix) in a folder that is or can be made."""
    path = check_table_path(path)
    try:
        check_writable_dir(path.parent, "its folder")
    except ValueError as err:
        raise ValueError(f"table {str(path)!r} cannot be written: {err}") from None
    return path
