"""Judging prompts that name several targets: five questions per target, a yes count per image.

- :func:`target_questions`: the five questions on one target, in its category's wording (ours or
  a loaded :class:`~dvdlib.scoring.questions.Wording`); a generic slot (type ``object``) and the
  carrier take the object wording, a strong one its category's concept wording (the artist's
  lenient instruction included).
- :func:`judge_targets`: every image of a folder in the scorer's layout (``caseNNN_<slug>/``,
  images named with their seed, read by :func:`dvdlib.scoring.dvd.find_images`) judged with any
  :class:`~dvdlib.scoring.judges.base.Judge`; returns the per-image, per-target table
  (:data:`JUDGED_COLUMNS`). As in :func:`dvdlib.scoring.dvd.score_folder`, answers are committed
  per image to the log beside ``results``, so a killed run resumes where it stopped; writing the
  table to ``results`` is the caller's step (:func:`dvdlib.store.save_table`).
- :func:`judged_table`: that table from the logged answers.

The scores computed from the table are in :mod:`dvdlib.scoring.target_scores`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm.auto import tqdm

from dvdlib.prompts.targets import GENERIC_TYPE, TargetSet
from dvdlib.scoring.dvd import PRESENT_YES, answers_text, answers_log, find_images, load_image
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Judge, Question
from dvdlib.scoring.questions import OUR_WORDING, SUBJECT_FIELDS, Wording
from dvdlib.store import check_run_settings

JUDGED_COLUMNS = ("case_num", "image_name", "image_path", "seed", "slot", "role", "type", "word",
                  "strong", "answers", "yes", "present", "judge")


def target_questions(target_type: str, word: str, wording: Wording = OUR_WORDING
                     ) -> list[Question]:
    """The five questions on one target: side ``object`` for a generic target (type
    ``object``), else side ``concept`` in the wording of its type (artist, landmark, character)."""
    side = "object" if target_type == GENERIC_TYPE else "concept"
    instruction = wording.instruction(side, target_type)
    fields = dict.fromkeys(SUBJECT_FIELDS, word)
    return [Question(side=side, subject=word, index=index,
                     text=template.format_map(fields) + instruction)
            for index, template in enumerate(wording.templates(side, target_type))]


def questions_by_case(targets: pd.DataFrame, wording: Wording = OUR_WORDING
                      ) -> dict[int, list[Question]]:
    """Each case's questions, five per target in slot order (what a judge is asked per image)."""
    asked: dict[int, list[Question]] = {}
    for target in targets.sort_values(["case_num", "slot"]).itertuples(index=False):
        asked.setdefault(int(target.case_num), []).extend(
            target_questions(target.type, target.word, wording))
    return asked


def judged_table(rows: Sequence[dict], targets: pd.DataFrame) -> pd.DataFrame:
    """The per-image, per-target table from logged answer rows (one per image: ``case_num``,
    ``image_name``, ``image_path``, ``seed``, ``answers`` five per target in slot order,
    ``judge``): ``yes`` counts a target's yes answers, ``present`` is ``yes >= 3``."""
    slots = {case: list(group.itertuples(index=False))
             for case, group in targets.sort_values(["case_num", "slot"]).groupby("case_num")}
    records = []
    for row in rows:
        for k, target in enumerate(slots[row["case_num"]]):
            answers = row["answers"][k * QUESTIONS_PER_SIDE:(k + 1) * QUESTIONS_PER_SIDE]
            records.append({
                **{key: row[key] for key in ("case_num", "image_name", "image_path", "seed")},
                "slot": target.slot, "role": target.role, "type": target.type,
                "word": target.word, "strong": bool(target.strong),
                "answers": answers_text(answers), "yes": int(sum(answers)),
                "present": int(sum(answers)) >= PRESENT_YES, "judge": row["judge"]})
    table = pd.DataFrame(records, columns=list(JUDGED_COLUMNS))
    table["seed"] = table["seed"].astype("Int64")
    table = table.sort_values(["case_num", "image_name", "slot"], kind="stable")
    return table.reset_index(drop=True)


def judge_targets(image_dir: str | Path, target_set: TargetSet, judge: Judge,
                  results: str | Path, *, wording: Wording = OUR_WORDING,
                  images_per_call: int = 4, progress: bool = True) -> pd.DataFrame:
    """Judge every image of ``image_dir`` whose case is in ``target_set``; the per-image,
    per-target table (see the module notes).

    ``images_per_call`` images (five questions per target each) go to the judge together and
    their answers are committed together to the log beside ``results``; a rerun skips the images
    already judged, and refuses a log made with another judge, wording or target set (the
    carrier taken as a target or not).
    """
    if isinstance(images_per_call, bool) or not isinstance(images_per_call, int) \
            or images_per_call < 1:
        raise ValueError(f"images_per_call must be a positive integer, got {images_per_call!r}")
    image_dir, results = Path(image_dir), Path(results)
    images = find_images(image_dir, target_set.prompts)
    asked = questions_by_case(target_set.targets, wording)
    check = getattr(judge, "check_questions", None)
    if check is not None:  # a judge that cannot answer a question refuses before any file is made
        check([q for case in sorted(set(images["case_num"])) for q in asked[int(case)]])
    settings = {"judge": judge.name, "wording": wording.to_dict(),
                "targets": [[int(t.case_num), int(t.slot), t.type, t.word]
                            for t in target_set.targets.itertuples(index=False)]}
    check_run_settings(results.with_name(results.stem + ".answers.json"), settings,
                       f"the answers for {results}")
    log = answers_log(results)
    with log.open():
        done = log.done_keys()
        todo = [image for image in images.itertuples(index=False)
                if (image.case_num, image.image_name) not in done]
        bar = tqdm(total=len(todo), unit="img", disable=not progress, desc="images judged")
        for first in range(0, len(todo), images_per_call):
            batch = todo[first:first + images_per_call]
            items = [(load_image(image_dir / image.image_path), asked[int(image.case_num)])
                     for image in batch]
            answers = judge.answer(items)
            if [len(a) for a in answers] != [len(questions) for _, questions in items]:
                raise RuntimeError(f"judge {judge.name} returned answers that do not match the "
                                   f"questions")
            log.append({"case_num": int(image.case_num), "image_name": image.image_name,
                        "image_path": image.image_path, "judge": judge.name,
                        "seed": None if pd.isna(image.seed) else int(image.seed),
                        "answers": [bool(a) for a in answer]}
                       for image, answer in zip(batch, answers))
            bar.update(len(batch))
        bar.close()
    wanted = set(zip(images["case_num"], images["image_name"]))
    rows = [row for row in log.rows() if (row["case_num"], row["image_name"]) in wanted]
    return judged_table(rows, target_set.targets)
