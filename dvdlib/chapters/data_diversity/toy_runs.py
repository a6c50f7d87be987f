"""Chapter 2's causal test on the toy zoo, planned and run: every model draws the pair prompts and
the controls, and every image is judged and scored.

The zoo's models (:mod:`dvdlib.toyworld.zoo`) are one base model fine-tuned with one recipe that
differs only in K, the number of distinct pictures of the limited concept ("sunset") in the
training data: ``k1``, ``k1-i1``, ... (K = 1, one run per instance seed, each a different fixed
picture), ``k4``, ``k16`` and ``kinf`` (a new picture every time) with their runs of other
training seeds (``kinf-r1``, ...; :mod:`dvdlib.chapters.data_diversity.arms`), plus EMA snapshots
after fewer fine-tuning steps (``k1@500``). The failure the paper studies is built into the world
equally for every K: half of the pair pictures ("sunset coaster") are close-ups in which the print
fills the frame and the carrier is out of view. So every model shows some dominance by design;
the experiment asks whether K changes how much.

- :func:`study_prompts`: the pair prompt "sunset <object>" for every object (seen with the
  concept in training, or never), and as controls the concept alone and every object alone.
- :class:`Run`, :func:`condition_label`, :func:`plan_runs`: a model at one setting, and the
  chapter's plan of them.
- :func:`run_study`: every run draws the prompts through
  :func:`dvdlib.generation.protocol.generate`; :func:`judge_images` has the toy judge answer five
  questions on the concept and five on the object of every image, scores each pair image with the
  paper's formula, and reads with :func:`dvdlib.toyworld.world.pixel_rule`, without any trained
  judge, whether the picture is filled by the print. :class:`Study` holds the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.chapters.data_diversity import outcomes
from dvdlib.scoring.dvd import PRESENT_YES, dvd_image_score, load_image
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Judge
from dvdlib.scoring.questions import OUR_WORDING, Wording, questions_for
from dvdlib.toyworld.world import CATEGORY, CONCEPT_ALONE, OBJECT_ALONE, PAIR

# The toy judge reads only each question's subject and index, never its text; the questions are
# worded with this category of the wording (the toy world's plain-presence questions).
QUESTION_CATEGORY = CATEGORY
# Guidance scales compared besides the chapter's own: with the default 4, the scales at which
# the generated pair images are set against the training pictures (1, 2, 4, 7.5).
COMPARED_GUIDANCE = (1.0, 2.0, 7.5)


def study_prompts(world) -> pd.DataFrame:
    """Every distinct prompt the study draws, in the prompt-set table shape.

    From :func:`dvdlib.toyworld.world.prompt_table`: the pair "sunset coaster" for every object
    (``concept`` the concept, ``object`` the object), then the concept alone once and every
    object alone (a prompt that names one word holds it in both columns, so the table passes the
    prompt-set checks of :func:`dvdlib.generation.protocol.generate`). ``arrangement`` and
    ``paired_in_training`` as ``prompt_table`` gives them.
    """
    from dvdlib.toyworld.world import prompt_table

    table = prompt_table(world, controls=True)
    pairs = table[table["arrangement"] == PAIR]
    concept = table[table["arrangement"] == CONCEPT_ALONE].head(1).assign(
        object=world.limited, paired_in_training=False)
    objects = table[table["arrangement"] == OBJECT_ALONE].assign(concept=lambda t: t["object"])
    out = pd.concat([pairs, concept, objects], ignore_index=True)
    return out.assign(case_num=np.arange(1, len(out) + 1))


def judge_images(image_dir: str | Path, manifest: pd.DataFrame, prompts: pd.DataFrame,
                 judge: Judge, limited: str, wording: Wording = OUR_WORDING,
                 images_per_call: int = 256) -> pd.DataFrame:
    """Judge and score every image of a generation manifest of :func:`study_prompts`.

    Each image gets five questions on the concept and, unless it is the concept alone, five on
    its object (``wording``'s :data:`QUESTION_CATEGORY` questions); a pair image also five on
    every other object of the pair prompts, to tell a wrong carrier from the concept filling
    the frame (:mod:`dvdlib.chapters.data_diversity.outcomes`). Returns one row per image:
    the prompt row's ``case_num``, ``prompt``, ``arrangement``, ``object`` ("" for the concept
    alone, which names none), ``paired_in_training``,
    and ``seed``, ``file``, ``concept_yes`` and ``object_yes`` (0-5; NaN where not asked),
    ``dvd_score`` (pairs only: the paper's c(5-n)/25*100), ``concept_present`` and
    ``object_present`` (at least :data:`~dvdlib.scoring.dvd.PRESENT_YES` yes), ``concept_only``,
    the pixel rule's ``frame_filled`` and ``rule_object_present``, ``other_object`` (pairs: the
    other object found present with the most yes, "" for none), the pair image's ``outcome``
    (:data:`~dvdlib.chapters.data_diversity.outcomes.OUTCOMES`, "" for the controls) with one
    flag per absent outcome (``fills_frame``, ``wrong_carrier``, ``nothing_recognisable``), and
    ``dvd_no_wrong_carrier`` (the DvD score, NaN for a wrong carrier).
    """
    from dvdlib.toyworld.detector import images_to_tensor
    from dvdlib.toyworld.world import pixel_rule

    rows = manifest[["case_num", "seed", "file"]].merge(
        prompts[["case_num", "prompt", "arrangement", "object", "paired_in_training"]],
        on="case_num", how="left", validate="many_to_one").reset_index(drop=True)
    # The concept alone names no object; its prompt row repeats the concept.
    rows.loc[rows["arrangement"] == CONCEPT_ALONE, "object"] = ""
    concept_questions = questions_for(QUESTION_CATEGORY, limited, limited,
                                      wording)[:QUESTIONS_PER_SIDE]
    every = list(dict.fromkeys(prompts.loc[prompts["arrangement"] == PAIR, "object"]))
    counts, others, rule = [], [], []
    for start in range(0, len(rows), images_per_call):
        chunk = rows.iloc[start:start + images_per_call]
        images = [load_image(Path(image_dir) / file) for file in chunk["file"]]
        items = []
        asked = []  # per image: the objects asked about, its own first
        for image, obj, kind in zip(images, chunk["object"], chunk["arrangement"]):
            words = ([obj] if obj else []) + ([o for o in every if o != obj] if kind == PAIR
                                               else [])
            asked.append(words)
            object_questions = [q for word in words for q in questions_for(
                QUESTION_CATEGORY, word, word, wording)[QUESTIONS_PER_SIDE:]]
            items.append((image, concept_questions + object_questions))
        for answers, words in zip(judge.answer(items), asked):
            yes = [int(sum(answers[i:i + QUESTIONS_PER_SIDE]))
                   for i in range(0, len(answers), QUESTIONS_PER_SIDE)]  # concept, then words
            counts.append((yes[0], yes[1] if len(yes) > 1 else np.nan))
            found = [(n, w) for n, w in zip(yes[2:], words[1:]) if n >= PRESENT_YES]
            others.append(max(found)[1] if found else "")
        rule.append(pixel_rule(images_to_tensor(images)))
    rule = pd.concat(rule, ignore_index=True) if rule else pd.DataFrame(
        columns=["frame_filled", "rule_object_present"])
    table = rows.assign(concept_yes=[c for c, _ in counts], object_yes=[o for _, o in counts])
    pair = table["arrangement"] == PAIR
    table["dvd_score"] = [dvd_image_score(int(c), int(o)) if p else np.nan
                          for c, o, p in zip(table["concept_yes"], table["object_yes"], pair)]
    table["concept_present"] = table["concept_yes"] >= PRESENT_YES
    table["object_present"] = table["object_yes"] >= PRESENT_YES  # NaN compares False
    table["concept_only"] = table["concept_present"] & ~table["object_present"]
    table["frame_filled"] = rule["frame_filled"].to_numpy(dtype=bool)
    table["rule_object_present"] = rule["rule_object_present"].to_numpy(dtype=bool)
    table["other_object"] = others
    table["outcome"] = outcomes.outcomes(table).where(pair, "")
    table = table.join(outcomes.flags(table["outcome"]))
    table["dvd_no_wrong_carrier"] = outcomes.dvd_without_wrong_carriers(table["dvd_score"],
                                                                        table["outcome"])
    return table


@dataclass(frozen=True)
class Run:
    """One model of the zoo at one setting: what :func:`run_study` generates.

    ``model`` is a finished model (``k1``); ``snapshot`` a fine-tuning step of one of its shipped
    EMA snapshots (``k1@500``), or None for the finished model; ``pair_seeds`` draw the pair
    prompts and ``control_seeds`` the concept and every object alone (empty: no controls).
    """

    model: str
    guidance: float
    pair_seeds: tuple[int, ...]
    control_seeds: tuple[int, ...] = ()
    snapshot: int | None = None

    @property
    def weights(self) -> str:
        """The name of the weights in the zoo: ``k1`` or ``k1@500``."""
        return self.model if self.snapshot is None else f"{self.model}@{int(self.snapshot)}"

    @property
    def folder(self) -> str:
        return f"{self.weights}_guidance{self.guidance:g}"


def condition_label(guidance: float, snapshot: int | None) -> str:
    """"guidance 4, finished" or "guidance 4, 500 steps"."""
    length = "finished" if snapshot is None else f"{int(snapshot)} steps"
    return f"guidance {guidance:g}, {length}"


def plan_runs(names: Sequence[str], compared: Sequence[str], guidance: float,
              snapshots: Sequence[int], pair_seeds: Sequence[int], control_seeds: Sequence[int],
              condition_seeds: Sequence[int], condition_control_seeds: Sequence[int],
              compared_guidance: Sequence[float] = COMPARED_GUIDANCE) -> list[Run]:
    """The chapter's plan: every model in ``names`` at ``guidance`` (finished models), then the
    ``compared`` models (K = 1 and unlimited) changed one setting at a time: at each other
    guidance scale of ``compared_guidance`` (finished), and as the EMA snapshot of each step in
    ``snapshots`` (at ``guidance``), with ``condition_seeds`` (no such runs when it is empty) and
    ``condition_control_seeds`` for their controls (none when empty)."""
    runs = [Run(n, float(guidance), tuple(pair_seeds), tuple(control_seeds)) for n in names]
    if condition_seeds:
        settings = [(float(g), None) for g in compared_guidance if float(g) != float(guidance)]
        settings += [(float(guidance), int(step)) for step in snapshots]
        runs += [Run(n, g, tuple(condition_seeds), tuple(condition_control_seeds), step)
                 for g, step in settings for n in compared]
    return runs


@dataclass
class Study:
    """What :func:`run_study` made: the prompts, one row per judged image, where the images are."""

    prompts: pd.DataFrame
    # judge_images' rows with run, model, K, instance_seed, guidance, snapshot, condition
    images: pd.DataFrame
    image_dir: Path  # images of a run under image_dir / run.folder (the authors' layout)
    seconds: float = 0.0  # generation and judging

    def pictures(self, model: str, prompt: str, condition: str, seeds: Sequence[int] | None = None):
        """The PIL images one model made for one prompt in one condition, in seed order."""
        rows = self.images[(self.images["model"] == model) & (self.images["prompt"] == prompt)
                           & (self.images["condition"] == condition)].sort_values("seed")
        if seeds is not None:
            rows = rows.set_index("seed").loc[list(seeds)].reset_index()
        if rows.empty:
            raise ValueError(f"no images of model {model!r} for prompt {prompt!r} in {condition!r}")
        return [load_image(self.image_dir / run / file)
                for run, file in zip(rows["run"], rows["file"])]


def run_study(plan: Sequence[Run], load: Callable[[str], object], worlds: Mapping[str, object],
              judge: Judge, image_dir: str | Path, *, steps: int, batch_size: int = 64,
              wording: Wording = OUR_WORDING, progress: bool = False) -> Study:
    """Generate and judge every run of ``plan``.

    ``load(weights)`` returns the pipeline of a zoo weight name (``k1``, ``k1@500``); ``worlds``
    maps every finished model of the plan to its world (they must agree on the concept and the
    objects: the zoo's models differ only in K). Images go under ``image_dir / run.folder``.
    """
    import time

    from dvdlib.generation.protocol import generate

    if not plan:
        raise ValueError("the plan has no runs")
    missing = sorted({r.model for r in plan} - set(worlds))
    if missing:
        raise ValueError(f"no world for model(s) {', '.join(missing)}; worlds are given for "
                         f"{', '.join(worlds)}")
    first = worlds[plan[0].model]
    for run in plan:
        world = worlds[run.model]
        if (world.limited, world.objects, world.unpaired) != \
                (first.limited, first.objects, first.unpaired):
            raise ValueError(f"model {run.model!r} has concept {world.limited!r}, objects "
                             f"{world.objects} and unpaired {world.unpaired}; "
                             f"{plan[0].model!r} has "
                             f"{first.limited!r}, {first.objects} and {first.unpaired}: the zoo's "
                             "models must differ only in K")
    prompts = study_prompts(first)
    image_dir = Path(image_dir)
    started = time.perf_counter()
    tables, pipes = [], {}
    order = {weights: i for i, weights in enumerate(dict.fromkeys(r.weights for r in plan))}
    for run in sorted(plan, key=lambda r: order[r.weights]):  # each model's runs together
        pipe = pipes.get(run.weights) or load(run.weights)
        pipes = {run.weights: pipe}  # one model in memory at a time
        out = image_dir / run.folder
        settings = dict(model=f"toy:{run.weights}", steps=steps, guidance=run.guidance,
                        batch_size=batch_size, progress=progress)
        parts = [(prompts[prompts["arrangement"] == PAIR], run.pair_seeds),
                 (prompts[prompts["arrangement"] != PAIR], run.control_seeds)]
        manifest = pd.concat([generate(pipe, rows, list(seeds), out, **settings)
                              for rows, seeds in parts if seeds], ignore_index=True)
        world = worlds[run.model]
        tables.append(judge_images(out, manifest, prompts, judge, first.limited, wording).assign(
            run=run.folder, model=run.weights, base_model=run.model, K=world.instances,
            instance_seed=world.instance_seed, guidance=run.guidance, snapshot=run.snapshot,
            condition=condition_label(run.guidance, run.snapshot)))
    images = pd.concat(tables, ignore_index=True)
    return Study(prompts, images, image_dir, time.perf_counter() - started)
