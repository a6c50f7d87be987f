"""Running the rescue study: the plain model and every intervention's curve, judged and timed.

:func:`check_inputs` checks what a run is asked before any model loads (every strength against
its range, a head ranking against the model's layout read from its configuration, the negative
prompt, the test's margin), and :func:`plan_arms` turns the test strengths into the arms: the
plain model, then each intervention at ``n_strengths`` strengths from its zero point (left out:
the plain images are every curve's zero point) up to its test strength.

:class:`RescueStudy` makes the same (prompt, seed) images under every arm
(:func:`dvdlib.interventions.sampling.sample`: the same starting noise, so changes are paired
image by image), has the judge answer its ten questions per image, and keeps one row per arm
and image (:data:`IMAGE_COLUMNS`): presence of each side (three or more yes of five), both
present, the DvD score, the concept's pair share of cross-attention (pooled over layers and
heads, mean over the steps, as chapter 4 reduces it), and the arm's seconds per image. Without
a ranking given, the head intervention ablates the heads chapter 4's functions rank first on
this run's plain images (:meth:`RescueStudy.rank_heads`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.attention.token_positions import token_groups
from dvdlib.chapters.head_ablation import conditions, summaries
from dvdlib.chapters.head_ablation.run import HEAD_COLUMNS, reduce_attention
from dvdlib.interventions import catalogue
from dvdlib.interventions.catalogue import Intervention, check_strength, curve_strengths
from dvdlib.interventions.heads import HeadRanking, load_ranking, model_layout
from dvdlib.interventions.sampling import Sampled, sample
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase
from dvdlib.scoring.dvd import PRESENT_YES, dvd_image_score
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE
from dvdlib.scoring.questions import OUR_WORDING, Wording, questions_for
from dvdlib.stats.verdicts import check_confidence

PLAIN = "plain"
IMAGE_COLUMNS = (
    "arm", "intervention", "strength", "is_test", "case_num", "prompt", "concept", "object",
    "objects", "seed", "concept_yes", "object_yes", "dvd_score", "concept_present",
    "object_present", "both_present", "concept_share", "seconds_per_image",
)


@dataclass(frozen=True)
class Arm:
    """One configuration the images are made under: an intervention at one strength."""

    intervention: str  # a catalogue name, or "plain"
    strength: float
    is_test: bool = False  # the intervention's test strength (its verdict is decided there)

    @property
    def name(self) -> str:
        return PLAIN if self.intervention == PLAIN else f"{self.intervention}_{self.strength:g}"

    def to_intervention(self) -> Intervention | None:
        return None if self.intervention == PLAIN else Intervention(self.intervention,
                                                                     self.strength)


@dataclass(frozen=True)
class RescueInputs:
    """What :func:`check_inputs` read: the test strengths, the ranking given (if any), the
    model's layout (None when its configuration is not on disk)."""

    strengths: dict[str, float]
    ranking: HeadRanking | None
    layout: tuple | None


def check_inputs(model: str, zoo_folder: str, strengths: Mapping[str, float], *,
                 guidance: float, n_strengths: int, head_ranking: str = "",
                 negative_template: str = catalogue.NEGATIVE_TEMPLATE, margin: float = 10.0,
                 confidence: float = 0.95) -> RescueInputs:
    """Everything a run is asked that can be refused before any model loads (one line each)."""
    for name in strengths:
        catalogue.check_name(name)
    if isinstance(n_strengths, bool) or not isinstance(n_strengths, (int, np.integer)) \
            or n_strengths < 1:
        raise ValueError(f"n_strengths {n_strengths!r}: accepted: a whole number >= 1")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) \
            or not math.isfinite(margin) or not 0 <= margin < 100:
        raise ValueError(f"concept_margin {margin!r}: accepted: a number of points in [0, 100)")
    check_confidence(confidence)
    catalogue.check_negative_template(negative_template)
    layout = model_layout(model, zoo_folder)
    total = None if layout is None else sum(heads for _, heads in layout)
    checked = {name: check_strength(name, value, guidance=guidance, total_heads=total)
               for name, value in strengths.items()}
    ranking = None
    if head_ranking:
        ranking = load_ranking(head_ranking)
        if layout is not None:
            ranking.check(layout, model)
    return RescueInputs(checked, ranking, layout)


def plan_arms(strengths: Mapping[str, float], n_strengths: int, guidance: float) -> list[Arm]:
    """The plain arm, then each intervention's curve up to its test strength (the last)."""
    arms = [Arm(PLAIN, float("nan"))]
    for name, strength in strengths.items():
        curve = curve_strengths(name, strength, n_strengths, guidance)
        arms += [Arm(name, value, is_test=value == curve[-1]) for value in curve]
    return arms


def arm_label(intervention: str, strength: float) -> str:
    """An arm as tables and figures name it: ``object boost (c = 8)``."""
    if intervention == PLAIN:
        return "plain model"
    if intervention in catalogue.TOGGLES:
        return catalogue.TITLES[intervention]
    return f"{catalogue.TITLES[intervention]} ({catalogue.KNOBS[intervention]} = {strength:g})"


def object_groups(prompts: pd.DataFrame) -> pd.Series:
    """Per prompt row, ``seen`` or ``unseen`` (its object was printed with the concept in
    training, or never: the toy world), else ``all``."""
    if "paired_in_training" not in prompts:
        return pd.Series("all", index=prompts.index)
    return prompts["paired_in_training"].map({True: "seen", False: "unseen"})


class RescueStudy:
    """Generate, judge and time the same images under every arm (see the module notes)."""

    def __init__(self, pipe, prompts: pd.DataFrame, seeds: Sequence[int], judge, *, model: str,
                 steps: int, guidance: float, height: int | None = None,
                 width: int | None = None, batch_size: int = 64,
                 wording: Wording = OUR_WORDING,
                 negative_template: str = catalogue.NEGATIVE_TEMPLATE,
                 cap_leak: bool = catalogue.CAP_LEAK, ranking: HeadRanking | None = None,
                 rank_by: str = "concept_mass", control_seed: int = 0, keep_all: bool = False):
        self.pipe, self.judge, self.model, self.wording = pipe, judge, model, wording
        self.prompts = prompts.reset_index(drop=True)
        self.seeds = [int(s) for s in seeds]
        self.options = dict(steps=steps, guidance=guidance, height=height, width=width,
                            batch_size=batch_size, negative_template=negative_template,
                            cap_leak=cap_leak, control_seed=control_seed)
        self.ranking, self.rank_by = ranking, rank_by
        self.examples: dict[str, list] = {}  # arm -> the first seed's image of every prompt
        self.keep_all = keep_all
        self.kept: dict[str, list] = {}  # with keep_all: arm -> every image, in job order

    def run(self, arms: Sequence[Arm]) -> pd.DataFrame:
        """One row per arm and image (:data:`IMAGE_COLUMNS`); the plain arm runs first, and
        ranks the heads when no ranking was given."""
        tables = []
        for arm in arms:
            made = sample(self.pipe, self.prompts, self.seeds, arm.to_intervention(),
                          ranking=self.ranking, **self.options)
            if arm.intervention == PLAIN and self.ranking is None:
                self.ranking = self.rank_heads(made)
            tables.append(self._rows(arm, made))
        return pd.concat(tables, ignore_index=True)

    def rank_heads(self, plain: Sampled) -> HeadRanking:
        """Chapter 4's ranking of every head by its attention to the concept, on the plain
        images (:func:`~dvdlib.chapters.head_ablation.summaries.head_attention`,
        :func:`~dvdlib.chapters.head_ablation.conditions.ranked_order`)."""
        rows = []
        for image, ((i, seed), tokens) in enumerate(zip(plain.jobs, plain.tokens)):
            concept, obj = self._groups(i, tokens)
            _, per_head = reduce_attention(plain.mass[image], concept, obj,
                                           list(tokens.word_positions))  # [layer, head, mass]
            rows += [(PLAIN, i, seed, layer.index, layer.label, head, *per_head[layer.index, head])
                     for layer in plain.layers for head in range(layer.heads)]
        heads = pd.DataFrame(rows, columns=list(HEAD_COLUMNS))
        order = conditions.ranked_order(summaries.head_attention(heads, PLAIN), by=self.rank_by)
        layout = tuple((layer.label, layer.heads) for layer in plain.layers)
        return HeadRanking(self.model, layout, tuple(order), self.rank_by)

    def _groups(self, i: int, tokens) -> tuple[list[int], list[int]]:
        row = self.prompts.iloc[i]
        groups = token_groups(self.pipe.tokenizer, tokens, {"concept": concept_phrase(row),
                                                            "object": object_phrase(row)})
        return groups["concept"], groups["object"]

    def _rows(self, arm: Arm, made: Sampled) -> pd.DataFrame:
        items = []
        for image, (i, _) in zip(made.images, made.jobs):
            row = self.prompts.iloc[i]
            items.append((image, questions_for(row.category, row.concept, row.object,
                                               self.wording)))
        answers = self.judge.answer(items)
        groups = object_groups(self.prompts)
        first = self.seeds[0]
        self.examples[arm.name] = [im for im, (_, s) in zip(made.images, made.jobs) if s == first]
        if self.keep_all:
            self.kept[arm.name] = list(made.images)
        rows = []
        for image, ((i, seed), tokens, said) in enumerate(zip(made.jobs, made.tokens, answers)):
            row = self.prompts.iloc[i]
            concept, obj = self._groups(i, tokens)
            share, _ = reduce_attention(made.mass[image], concept, obj, list(tokens.word_positions))
            c, o = int(sum(said[:QUESTIONS_PER_SIDE])), int(sum(said[QUESTIONS_PER_SIDE:]))
            rows.append((arm.name, arm.intervention, arm.strength, arm.is_test,
                         int(row.case_num), made.tokens[image].prompt, row.concept, row.object,
                         groups.iloc[i], seed, c, o, dvd_image_score(c, o), c >= PRESENT_YES,
                         o >= PRESENT_YES, c >= PRESENT_YES and o >= PRESENT_YES, share,
                         made.seconds_per_image))
        return pd.DataFrame(rows, columns=list(IMAGE_COLUMNS))
