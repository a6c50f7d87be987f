"""The DvD score: from a judge's yes/no answers to per-image, per-prompt and per-category figures.

The paper's formula, exactly: with ``c`` the number of "yes" among the five concept questions and
``n`` among the five object questions of one image,

    DvD(image) = c * (5 - n) / 25 * 100          (in [0, 100]; 4 * c * (5 - n), 15 distinct values)

A prompt's score is the mean over its images (its seeds); a category's (per model) the mean over
its prompts. Confidence intervals are ours (the paper states none): a percentile bootstrap over
prompts, seeded (:func:`dvdlib.stats.bootstrap.bootstrap_ci`).

:func:`score_folder` judges a folder of images in the authors' layout (``caseNNN_<slug>/`` with
image files inside, theirs or ours) and returns the per-image table: the authors' scorer's
columns under our names (``concept_answers``, ``object_answers`` as ``"[1, 0, 1, 1, 0]"``,
``concept_yes``, ``object_yes``, ``dvd_score``, ``dvd_mean_case``; theirs are ``content_answers``,
``nm_answers``, ``content_score``, ``nm_score``) plus ours (``seed`` from the file name where it
has one, ``judge``). ``image_path`` is relative to the image folder (theirs is the path as
given), so tables made on different machines compare equal. Answers are committed per image to a :class:`~dvdlib.store.ResultLog`, so a killed
run resumes where it stopped and ends with the table an uninterrupted run gives. With ``shard``
(a :class:`dvdlib.sharding.Shard`) a process judges every n-th chunk of images and logs apart;
the main process's call without a shard merges the shards (see :mod:`dvdlib.sharding`).
:func:`score_folder` checks its arguments (:func:`check_scoring`) and judges with
:func:`judge_folder`, which a caller that checked them once already, before loading its judge
(:mod:`dvdlib.scoring.benchmark`), calls directly.
"""

from __future__ import annotations

import json
import re
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from dvdlib.prompts.prompt_sets import COLUMNS, parse_case_folder
from dvdlib.scoring.judges import DEFAULT_IMAGES_PER_CALL
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Judge
from dvdlib.scoring.questions import OUR_WORDING, Wording, check_prompt_words, questions_for
from dvdlib.sharding import Shard, done_keys, key_order, merge_shard_logs, reading_main_log
from dvdlib.stats.bootstrap import bootstrap_ci
from dvdlib.store import ResultLog, check_run_settings
from dvdlib.usage import ArgumentError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
KEY = ("case_num", "image_name")
PROMPT_COLUMNS = COLUMNS
IMAGE_COLUMNS = (
    *PROMPT_COLUMNS, "image_path", "image_name", "concept_answers", "object_answers",
    "concept_yes", "object_yes", "dvd_score", "dvd_mean_case", "seed", "judge",
)


# Ours, beyond the paper's DvD: a side (concept or object) is present in an image when the judge
# says yes to at least this many of its five questions, a majority. With the toy judge this is
# exactly "detector probability > 0.5" (its third threshold).
PRESENT_YES = 3


class ImageFolderError(ValueError):
    """An image folder that cannot be scored; the message names the folder or file."""


# --------------------------------------------------------------------------------------------
# The formula and its aggregates


def dvd_image_score(concept_yes: int, object_yes: int) -> float:
    """DvD of one image from its yes counts: ``c * (5 - n) / 25 * 100``."""
    for name, value in (("concept_yes", concept_yes), ("object_yes", object_yes)):
        if not float(value).is_integer() or not 0 <= value <= QUESTIONS_PER_SIDE:
            raise ValueError(f"{name} must be a whole number in 0..{QUESTIONS_PER_SIDE}, got {value!r}")
    n = QUESTIONS_PER_SIDE
    return concept_yes * (n - object_yes) / (n * n) * 100





def answers_text(answers: Sequence[bool]) -> str:
    return str([int(a) for a in answers])  # the authors' form: "[1, 0, 1, 1, 0]"


def image_table(rows: Sequence[dict], prompts: pd.DataFrame) -> pd.DataFrame:
    """Per-image table (authors' columns plus ours) from logged answer rows and the prompt set."""
    columns = list(IMAGE_COLUMNS)
    if not rows:
        return pd.DataFrame(columns=columns)
    answers = pd.DataFrame(rows)
    table = answers.merge(prompts[list(PROMPT_COLUMNS)], on="case_num", how="left")
    n = QUESTIONS_PER_SIDE
    concept = table["answers"].map(lambda a: a[:n])
    objects = table["answers"].map(lambda a: a[n:])
    table["concept_answers"] = concept.map(answers_text)
    table["object_answers"] = objects.map(answers_text)
    table["concept_yes"] = concept.map(sum).astype(int)
    table["object_yes"] = objects.map(sum).astype(int)
    table["dvd_score"] = [dvd_image_score(c, o) for c, o in zip(table["concept_yes"], table["object_yes"])]
    table["dvd_mean_case"] = table.groupby("case_num")["dvd_score"].transform("mean").round(4)
    table["seed"] = table["seed"].astype("Int64")
    return table.sort_values(list(KEY), kind="stable").reset_index(drop=True)[columns]


def prompt_scores(images: pd.DataFrame, by: Sequence[str] = ()) -> pd.DataFrame:
    """One row per prompt (and ``by`` columns, e.g. ``model``): mean DvD over its images."""
    keys = [*by, *PROMPT_COLUMNS]
    grouped = images.groupby(keys, sort=True, observed=True)
    return grouped.agg(
        n_images=("dvd_score", "size"),
        dvd=("dvd_score", "mean"),
        concept_yes=("concept_yes", "mean"),
        object_yes=("object_yes", "mean"),
    ).reset_index()


def category_scores(images: pd.DataFrame, by: Sequence[str] = ("category",), *,
                    n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Mean of the prompt scores per ``by`` group, with a bootstrap interval over prompts.

    ``by`` holds ``category`` and any other grouping columns of ``images`` (``model``, say);
    the groups' prompt means are the paper's category figures. ``ci_low``/``ci_high`` are ours.
    """
    by = list(by)
    missing = [c for c in by if c not in images.columns]
    if missing:
        raise ValueError(f"cannot group by {missing}: the table has {', '.join(images.columns)}")
    prompts = prompt_scores(images, by=[c for c in by if c not in PROMPT_COLUMNS])
    rows = []
    for key, group in prompts.groupby(by, sort=True, observed=True):
        low, high = bootstrap_ci(group["dvd"].to_numpy(), n_resamples=n_resamples,
                                 confidence=confidence, seed=seed)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "n_prompts": len(group), "n_images": int(group["n_images"].sum()),
                     "dvd": group["dvd"].mean(), "ci_low": low, "ci_high": high,
                     "confidence": confidence})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Judging a folder


def find_images(image_dir: str | Path, prompts: pd.DataFrame) -> pd.DataFrame:
    """The images of ``image_dir`` (``caseNNN_<slug>/<file>``) whose case is in ``prompts``.

    One row per image: ``case_num``, ``image_name``, ``image_path`` (relative to ``image_dir``),
    ``seed`` (the number in a ``seedNNNNN`` file name, else missing). Case folders of cases the
    prompt set lacks are ignored; if no folder matches any prompt, that is an error.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ImageFolderError(f"image folder not found: {image_dir}")
    wanted = set(int(c) for c in prompts["case_num"])
    folders: dict[int, Path] = {}
    seen_cases = []
    for entry in sorted(image_dir.iterdir()):
        case = parse_case_folder(entry.name) if entry.is_dir() else None
        if case is None:
            continue
        seen_cases.append(case)
        if case not in wanted:
            continue
        if case in folders:
            raise ImageFolderError(
                f"{image_dir}: two folders for case {case}: {folders[case].name} and {entry.name}"
            )
        folders[case] = entry
    if not folders:
        found = (f"its case folders are numbered {_ranges(seen_cases)}" if seen_cases
                 else "it holds no caseNNN_<slug> folders")
        raise ImageFolderError(
            f"{image_dir}: no case folder matches the prompt set (cases {_ranges(wanted)}); {found}"
        )
    prompt_of = {int(c): str(p) for c, p in zip(prompts["case_num"], prompts["prompt"])}
    strangers = [f"{folder.name} is case {case}, whose prompt is {prompt_of[case]!r}"
                 for case, folder in sorted(folders.items())
                 if not slug_matches(folder.name, prompt_of[case])]
    if strangers:
        raise ImageFolderError(
            f"{image_dir}: {len(strangers)} case folder(s) are named after another prompt than "
            f"their case's in the prompt set (images made from another prompt file?): "
            + "; ".join(strangers) + ". A case folder is caseNNN or caseNNN_<the words of its "
            "prompt>, as `dvd generate` writes it; give the prompt file the images were made from"
        )
    rows = []
    for case, folder in sorted(folders.items()):
        for file in sorted(folder.iterdir()):
            if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("."):
                match = re.search(r"seed(\d+)", file.stem)
                rows.append({"case_num": case, "image_name": file.name,
                             "image_path": f"{folder.name}/{file.name}",
                             "seed": int(match.group(1)) if match else None})
    return pd.DataFrame(rows, columns=["case_num", "image_name", "image_path", "seed"])


def slug_matches(folder_name: str, prompt: str) -> bool:
    """Whether a ``caseNNN_<slug>`` folder name fits ``prompt``: no slug, or a slug that spells
    the start of the prompt's words (case, punctuation and a cut-off end aside)."""
    slug = re.sub(r"^case\d+_?", "", folder_name)

    def letters(text: str) -> str:
        return re.sub(r"[\W_]+", "", text.casefold())

    return not letters(slug) or letters(prompt).startswith(letters(slug))


def _ranges(numbers) -> str:
    """``1-3, 7`` for {1, 2, 3, 7}."""
    spans: list[list[int]] = []
    for number in sorted(set(numbers)):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # greyscale, white at 65535
UNSCALED_MODES = ("I", "F")  # 32-bit integer or float greyscale: no white level to scale by


def load_image(path: Path) -> Image.Image:
    """The image at ``path`` as RGB, an :class:`ImageFolderError` naming it if it cannot be read.

    Transparent images (RGBA, LA, PA) are laid on white, as the authors' scorer's image loader
    (``qwen_vl_utils``) does. 16-bit greyscale is scaled to 8 bits (65535 is white; Pillow's own
    conversion clips, turning almost every pixel white). 32-bit integer and float greyscale have
    no white level and are refused, naming the mode. A header that claims more pixels than
    Pillow's decompression-bomb limit is refused naming the file.
    """
    try:
        with Image.open(path) as image:
            if image.mode in UNSCALED_MODES:
                raise ImageFolderError(
                    f"cannot read image {path}: mode {image.mode!r} (32-bit greyscale) has no white "
                    f"level; save it as 8-bit or 16-bit (modes accepted: RGB, RGBA, L, LA, P, "
                    f"I;16 and the other modes Pillow converts to RGB)")
            if image.mode in SIXTEEN_BIT_MODES:
                grey = (np.asarray(image, dtype=np.float64) / 257.0).round().astype(np.uint8)
                return Image.fromarray(grey, mode="L").convert("RGB")
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            return image.convert("RGB")
    except ImageFolderError:
        raise
    except (Image.DecompressionBombError, UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageFolderError(f"cannot read image {path}: {err}") from None


def answers_log(results: str | Path) -> ResultLog:
    """The answer log kept beside a results table (``results.csv`` -> ``results.answers.log``)."""
    results = Path(results)
    return ResultLog(results.with_name(results.stem + ".answers.log"), KEY)


def score_folder(image_dir: str | Path, prompts: pd.DataFrame, judge: Judge, results: str | Path, *,
                 wording: Wording = OUR_WORDING, images_per_call: int = DEFAULT_IMAGES_PER_CALL,
                 progress: bool = True, shard: Shard | None = None) -> pd.DataFrame:
    """Judge every image of ``image_dir`` whose case is in ``prompts``; the per-image table.

    ``images_per_call`` images (ten questions each) go to the judge together, and their answers
    are committed together to the log beside ``results`` (see :func:`answers_log`), so a rerun
    skips the images already judged. Writing the table to ``results`` is the caller's step
    (``dvdlib.store.save_table``). With ``shard``, judges that shard's chunks of the image list
    and returns the rows of its own log (see the module notes). The arguments are checked
    (:func:`check_scoring`) before anything is written.
    """
    check_prompt_words(prompts)
    images = check_scoring(image_dir, prompts, images_per_call)
    return judge_folder(image_dir, images, prompts, judge, results, wording=wording,
                        images_per_call=images_per_call, progress=progress, shard=shard)


def check_scoring(image_dir: str | Path, prompts: pd.DataFrame,
                  images_per_call: int) -> pd.DataFrame:
    """The checks of a scoring run that need no judge; returns the images to judge
    (:func:`find_images`). ``images_per_call`` must be a whole number of at least 1 (an
    :class:`~dvdlib.usage.ArgumentError` naming it)."""
    per_call = images_per_call
    if isinstance(per_call, bool) or not isinstance(per_call, int) or per_call < 1:
        raise ArgumentError("images_per_call", f" must be at least 1, got {images_per_call!r}")
    return find_images(image_dir, prompts)


def judge_folder(image_dir: str | Path, images: pd.DataFrame, prompts: pd.DataFrame, judge: Judge,
                 results: str | Path, *, wording: Wording, images_per_call: int, progress: bool,
                 shard: Shard | None) -> pd.DataFrame:
    """:func:`score_folder` once its arguments are checked (``images`` from :func:`check_scoring`),
    for a caller that checked them before loading its judge. A judge that cannot answer some
    question refuses here, before any file is written."""
    image_dir = Path(image_dir)
    rows_by_case = {int(r.case_num): r for r in prompts.itertuples(index=False)}
    check = getattr(judge, "check_questions", None)
    if check is not None:
        check([q for case in sorted(set(images["case_num"])) for q in questions_for(
            rows_by_case[case].category, rows_by_case[case].concept, rows_by_case[case].object,
            wording)])
    results = Path(results)
    settings = results.with_name(results.stem + ".answers.json")
    main_log = answers_log(results)
    fresh = shard is None and not settings.exists() and not main_log.path.exists()
    try:
        check_run_settings(settings, {"judge": judge.name, "wording": wording.to_dict()},
                           f"the answers for {results}")
        return _judge_images(image_dir, images, prompts, rows_by_case, judge, wording, main_log,
                             images_per_call, progress, shard)
    except BaseException:
        if fresh and not main_log.rows():  # nothing was judged: leave no file behind
            main_log.path.unlink(missing_ok=True)
            settings.unlink(missing_ok=True)
        raise


def _judge_images(image_dir: Path, images: pd.DataFrame, prompts: pd.DataFrame, rows_by_case: dict,
                  judge: Judge, wording: Wording, main_log: ResultLog, images_per_call: int,
                  progress: bool, shard: Shard | None) -> pd.DataFrame:
    log = main_log if shard is None else ResultLog(shard.log_path(main_log.path), KEY)
    with log.open(), nullcontext() if shard is None else reading_main_log(main_log, shard):
        if shard is None:
            merge_shard_logs(log, key_order([(int(c), name) for c, name in
                                             zip(images["case_num"], images["image_name"])]))
            done = log.done_keys()
            todo = [r for r in images.itertuples(index=False) if (r.case_num, r.image_name) not in done]
            chunks = [todo[i:i + images_per_call] for i in range(0, len(todo), images_per_call)]
        else:  # chunks of the whole list, so that every shard cuts the same ones
            done = done_keys(main_log)
            listed = list(images.itertuples(index=False))
            chunks = [[r for r in chunk if (r.case_num, r.image_name) not in done] for chunk in
                      shard.take([listed[i:i + images_per_call] for i in range(0, len(listed), images_per_call)])]
            chunks = [chunk for chunk in chunks if chunk]
        bar = tqdm(total=sum(map(len, chunks)), unit="img", disable=not progress,
                   desc="images judged" if shard is None else f"images judged ({shard})")
        for chunk in chunks:
            items = []
            for image in chunk:
                row = rows_by_case[image.case_num]
                questions = questions_for(row.category, row.concept, row.object, wording)
                items.append((load_image(image_dir / image.image_path), questions))
            answers = judge.answer(items)
            if len(answers) != len(items) or any(len(a) != len(q) for a, (_, q) in zip(answers, items)):
                raise RuntimeError(f"judge {judge.name} returned answers that do not match the questions")
            log.append({
                "case_num": image.case_num, "image_name": image.image_name,
                "image_path": image.image_path,
                "seed": None if pd.isna(image.seed) else int(image.seed),
                "answers": [bool(a) for a in answer], "judge": judge.name,
            } for image, answer in zip(chunk, answers))
            bar.update(len(chunk))
        bar.close()
        wanted = set(zip(images["case_num"], images["image_name"]))
        rows = [row for row in log.rows() if (row["case_num"], row["image_name"]) in wanted]
    return image_table(rows, prompts)


def question_table(images: pd.DataFrame, wording: Wording = OUR_WORDING) -> pd.DataFrame:
    """One row per image and question (side, index, text, answer), from the per-image table."""
    rows = []
    for image in images.itertuples(index=False):
        questions = questions_for(image.category, image.concept, image.object, wording)
        answers = json.loads(image.concept_answers) + json.loads(image.object_answers)
        for question, answer in zip(questions, answers):
            rows.append({"case_num": image.case_num, "image_name": image.image_name,
                         "side": question.side, "subject": question.subject,
                         "index": question.index, "question": question.text,
                         "answer": bool(answer)})
    return pd.DataFrame(rows)
