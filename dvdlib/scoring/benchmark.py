"""A folder of images judged and scored, as ``dvd score`` does it.

:func:`score_benchmark` is the one call: it reads the question wording, chooses the prompt set
the images were made from (a file, the built-in set, or the toy world's pairs for the toy
judge), checks every argument once, before the judge loads, then loads the judge, judges with
:func:`~dvdlib.scoring.dvd.judge_folder` and writes the tables. Started by ``accelerate launch``
with several processes, each process judges its share and the main process merges the shares
into the one table (:mod:`dvdlib.sharding`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from dvdlib.models.loading import check_device
from dvdlib.scoring.dvd import check_scoring, judge_folder, question_table
from dvdlib.scoring.judges import DEFAULT_IMAGES_PER_CALL, load_judge
from dvdlib.scoring.questions import OUR_WORDING, load_wording
from dvdlib.sharding import join_launch, run_sharded
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


def _writable_table(path: str | Path) -> Path:
    """``path`` if it names a table we write (by suffix) in a folder that is or can be made."""
    path = check_table_path(path)
    try:
        check_writable_dir(path.parent, "its folder")
    except ValueError as err:
        raise ValueError(f"table {str(path)!r} cannot be written: {err}") from None
    return path
