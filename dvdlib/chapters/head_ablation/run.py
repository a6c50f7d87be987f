"""Running a head-ablation sweep: generate, judge and record the same images under each condition.

A sweep generates the same (prompt, seed) images under a list of
:class:`~dvdlib.chapters.head_ablation.conditions.Condition` s, one pipeline configuration each,
judges them with the DvD judge, records the cross-attention of every image, and returns tidy
tables (:class:`SweepResult`)::

    sweep = HeadSweep(pipe, prompts, seeds, out_dir, judge, model="toy:k1", steps=20, guidance=4.0)
    base = sweep.run([baseline()])
    result = combine([base, sweep.run(single_heads(sweep.layers))])

Every condition uses the same seeds, so a condition's effect is measured image by image against
the baseline (paired differences). Tables (one row per ...):

- ``images``: condition and image: the judge's yes counts, the DvD score, whether the concept
  and the object are present (three or more of five answers "yes") and ``concept_share``, the
  dominant concept's pair share of cross-attention (pooled over layers and heads as in
  ``book/definitions_attention.md``, mean over the steps; :func:`reduce_attention`);
- ``heads``: condition, image, layer and head: the attention mass on the concept's tokens, on
  the object's, on all word tokens, on the end token and on the padding (means over the steps;
  the start token takes the rest).

The cache: a finished condition's tables are kept in its folder (``images.csv``,
``heads.parquet``, and ``condition.json`` last, with the settings they were made with); a later
run with the same settings loads them instead of generating again (an unfinished condition, or
one made with other settings, is redone from scratch). :meth:`HeadSweep.with_seeds` re-measures
conditions on other seeds (:func:`confirmation_seeds`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from dvdlib.attention.instruments import instruments_for
from dvdlib.chapters.head_ablation.conditions import Condition
from dvdlib.chapters.head_ablation.summaries import MASS_COLUMNS
from dvdlib.generation.protocol import PipelineCall, attention_hook, generate
from dvdlib.models.families import latent_size
from dvdlib.prompts.prompt_sets import PAPER_SEEDS, concept_phrase, object_phrase
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.store import atomic_write_json, load_table, save_table

IMAGE_COLUMNS = (
    "condition", "family", "label", "n_heads", "draw", "case_num", "prompt", "concept", "object",
    "seed", "concept_yes", "object_yes", "dvd_score", "concept_present", "object_present",
    "concept_share", "file",
)
HEAD_COLUMNS = ("condition", "case_num", "seed", "layer", "layer_label", "head", *MASS_COLUMNS)
_DONE = "condition.json"  # written last in a condition's folder: its tables are complete


@dataclass
class SweepResult:
    """The tables of one or more conditions (see the module notes)."""

    images: pd.DataFrame
    heads: pd.DataFrame
    conditions: list[Condition] = field(default_factory=list)

    def condition(self, name: str) -> Condition:
        """The condition called ``name``."""
        for condition in self.conditions:
            if condition.name == name:
                return condition
        raise KeyError(f"no condition {name!r} in this result; it holds "
                       f"{', '.join(c.name for c in self.conditions) or 'none'}")


def combine(results: Sequence[SweepResult]) -> SweepResult:
    """One result holding the conditions of several (their names must not repeat)."""
    conditions = [c for r in results for c in r.conditions]
    names = [c.name for c in conditions]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"conditions repeat across the results: {repeated}")
    return SweepResult(pd.concat([r.images for r in results], ignore_index=True),
                       pd.concat([r.heads for r in results], ignore_index=True), conditions)


class HeadSweep:
    """Generate, judge and record the same images under many ablation conditions.

    ``prompts`` is a prompt table (:mod:`dvdlib.prompts.prompt_sets` shape: ``concept`` the
    dominant concept, ``object`` the object); ``seeds`` are used for every prompt and condition.
    Images of a condition go to ``out_dir/<condition>/images/`` in the authors' layout.
    ``operator`` and ``factor`` are :class:`HeadAblation`'s. ``judge`` is any
    :class:`dvdlib.scoring.judges.base.Judge`; it is given ``judge_batch`` images per call and
    asked the questions of ``wording``. ``model``, ``steps``, ``guidance``, ``height``, ``width``
    and ``batch_size`` go to :func:`dvdlib.generation.protocol.generate`.
    """

    def __init__(self, pipe, prompts: pd.DataFrame, seeds: Sequence[int], out_dir: str | Path,
                 judge, *, model: str, steps: int, guidance: float, height: int | None = None,
                 width: int | None = None, batch_size: int = 32, operator: str = "zero",
                 factor: float | None = None, judge_batch: int = 32, wording: Wording = OUR_WORDING,
                 progress: bool = False):
        self.pipe = pipe
        self.prompts = prompts.reset_index(drop=True)
        self.seeds = [int(s) for s in seeds]
        self.out_dir = Path(out_dir)
        self.judge = judge
        self.instruments = instruments_for(pipe)  # the family's: a ValueError where none exist
        self.sample_size = latent_size(pipe, height, width)
        self.layers = self.instruments.layers(self.sample_size)
        self.instruments.head_ablation(self.layers, {}, operator, factor)  # checks them now
        self.operator, self.factor = operator, factor
        self.generation = dict(model=model, steps=steps, guidance=guidance, height=height,
                               width=width, batch_size=batch_size)
        self.judge_batch = judge_batch
        self.wording = wording
        self.progress = progress
        # The token positions of each prompt's concept, object and words, found once (and checked
        # before any image is made: a phrase missing from its prompt fails here).
        self._groups = {}
        for row in self.prompts.itertuples(index=False):
            tokens = self.instruments.prompt_tokens(row.prompt)  # in every tokenization
            groups = self.instruments.token_groups(tokens, {"concept": concept_phrase(row),
                                                            "object": object_phrase(row)})
            self._groups[row.prompt] = (groups["concept"], groups["object"],
                                        list(tokens.word_positions), tokens)

    def with_seeds(self, seeds: Sequence[int], out_dir: str | Path) -> "HeadSweep":
        """The same sweep (model, prompts, judge, settings) on other seeds, into ``out_dir``.

        Used to re-measure a condition chosen from this sweep's results on images that played
        no part in choosing it.
        """
        return HeadSweep(self.pipe, self.prompts, seeds, out_dir, self.judge, **self.generation,
                         operator=self.operator, factor=self.factor, judge_batch=self.judge_batch,
                         wording=self.wording, progress=self.progress)

    @property
    def layout(self) -> str:
        """The model's located layers and heads in one line, with its family."""
        return self.instruments.describe(self.sample_size)

    @property
    def total_heads(self) -> int:
        return sum(layer.heads for layer in self.layers)

    def settings(self, condition: Condition) -> dict:
        """What a condition's images depend on; a kept result with other settings is redone."""
        return json.loads(json.dumps(dict(
            condition=asdict(condition), operator=self.operator, factor=self.factor,
            generation=self.generation,
            judge=getattr(self.judge, "name", type(self.judge).__name__),
            wording=self.wording.to_dict(),
            prompts=self.prompts[["case_num", "concept", "object", "prompt"]].values.tolist(),
            seeds=self.seeds, columns=[IMAGE_COLUMNS, HEAD_COLUMNS])))  # older tables: redone

    def run(self, conditions: Sequence[Condition]) -> SweepResult:
        """Every condition's images, judged and recorded; kept results are loaded, not redone."""
        names = [c.name for c in conditions]
        if len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"condition names repeat: {repeated}")
        images, heads = [], []
        for condition in conditions:
            condition_images, condition_heads = self._run_one(condition)
            images.append(condition_images)
            heads.append(condition_heads)
        return SweepResult(pd.concat(images, ignore_index=True),
                           pd.concat(heads, ignore_index=True), list(conditions))

    def _run_one(self, condition: Condition) -> tuple[pd.DataFrame, pd.DataFrame]:
        folder = self.out_dir / condition.name
        settings = self.settings(condition)
        done = folder / _DONE
        if done.is_file() and json.loads(done.read_text(encoding="utf-8")) == settings:
            return load_table(folder / "images.csv"), load_table(folder / "heads.parquet")
        if folder.exists():
            shutil.rmtree(folder)  # unfinished, or made with other settings: start clean
        attention: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
        generate(self.pipe, self.prompts, self.seeds, folder / "images", progress=self.progress,
                 hook=self._hook(condition, attention), **self.generation)
        scored = score_folder(folder / "images", self.prompts, self.judge, folder / "answers.csv",
                              wording=self.wording, images_per_call=self.judge_batch,
                              progress=self.progress)
        images = self._image_rows(condition, scored, attention)
        heads = self._head_rows(condition, attention)
        save_table(images, folder / "images.csv")
        save_table(heads, folder / "heads.parquet")  # one row per image and head: large for SD
        atomic_write_json(done, settings)
        return load_table(folder / "images.csv"), load_table(folder / "heads.parquet")

    def _hook(self, condition: Condition, attention: dict):
        """The generate() hook: installs the instruments, ablates, records, keeps the reductions."""

        def ablate(call: PipelineCall, layers) -> dict:
            ablation = self._ablation(condition, layers, self._call_groups(call))
            return self.instruments.call_kwargs(ablation=ablation)

        def keep(call: PipelineCall, record) -> None:
            mass = record.mass()  # [image, step, layer, head, token]; NaN for padded heads
            groups = self._call_groups(call)
            for job, (concept, obj, words, tokens), image_mass in zip(call.jobs, groups, mass):
                attention[(job.case_num, job.seed)] = reduce_attention(
                    image_mass, concept, obj, words, tokens.end_positions,
                    tokens.padding_positions)

        return attention_hook(sample_size=self.sample_size, extra_kwargs=ablate, keep=keep)

    def _call_groups(self, call: PipelineCall) -> list[tuple]:
        """The token groups of each image of a pipeline call, in batch order."""
        return [self._groups[job.prompt] for job in call.jobs]

    def _ablation(self, condition: Condition, layers, groups):
        if condition.family == "concept tokens":
            return self.instruments.token_ablation(layers, [g[0] for g in groups],
                                                   groups[0][3].length)
        if condition.family == "concept route":
            return self.instruments.token_ablation(
                layers, [route_positions(g[0], g[3]) for g in groups], groups[0][3].length,
                condition.scale)
        if condition.heads:
            return self.instruments.head_ablation(layers, condition.head_mask(), self.operator,
                                                  self.factor)
        return None

    def _image_rows(self, condition: Condition, scored: pd.DataFrame, attention: dict
                    ) -> pd.DataFrame:
        table = scored.copy()
        table["seed"] = table["seed"].astype(int)
        table["concept_present"] = table["concept_yes"] >= PRESENT_YES
        table["object_present"] = table["object_yes"] >= PRESENT_YES
        table["concept_share"] = [attention[(case, seed)][0]
                                  for case, seed in zip(table["case_num"], table["seed"])]
        table["file"] = [f"{condition.name}/images/{path}" for path in table["image_path"]]
        table["condition"] = condition.name
        table["family"] = condition.family
        table["label"] = condition.describe()
        table["n_heads"] = condition.n_heads
        table["draw"] = condition.draw if condition.draw is not None else -1
        return table[list(IMAGE_COLUMNS)].sort_values(["case_num", "seed"]).reset_index(drop=True)

    def _head_rows(self, condition: Condition, attention: dict) -> pd.DataFrame:
        rows = []
        for (case_num, seed), (_, per_head) in sorted(attention.items()):
            for layer in self.layers:
                for head in range(layer.heads):
                    rows.append((condition.name, case_num, seed, layer.index, layer.label, head,
                                 *per_head[layer.index, head]))
        return pd.DataFrame(rows, columns=list(HEAD_COLUMNS))


def route_positions(concept: Sequence[int], tokens) -> list[int]:
    """The positions a ``concept route`` condition scales: the concept's own tokens, the end
    token(s) and the padding (``tokens``: the prompt's text keys, one end token per tokenization),
    the positions a causal text encoder writes the concept into without being the object."""
    return sorted({*concept, *tokens.end_positions, *tokens.padding_positions})


def reduce_attention(mass: torch.Tensor, concept: Sequence[int], obj: Sequence[int],
                     words: Sequence[int], end: Sequence[int] = (), padding: Sequence[int] = ()
                     ) -> tuple[float, np.ndarray]:
    """One image's record ``[step, layer, head, token]`` reduced to what the sweep keeps.

    Returns the concept's pair share pooled over heads (per layer), then layers, mean over the
    steps; and ``[layer, head, 5]``: the mass on the concept's, the object's, all word tokens,
    the end token and the padding (the order of :data:`MASS_COLUMNS`), mean over the steps (NaN
    for padded heads).
    """
    sums = torch.stack([mass[..., list(group)].sum(-1)
                        for group in (concept, obj, words, end, padding)],
                       dim=-1)  # [step, layer, head, 5]
    pooled = sums.nanmean(dim=2).mean(dim=1)  # [step, 5]: mean over each layer's heads, then layers
    share = pooled[:, 0] / (pooled[:, 0] + pooled[:, 1])  # [step]
    return float(share.mean()), sums.mean(dim=0).numpy()



def confirmation_seeds(n: int) -> list[int]:
    """``n`` fresh seeds for re-measuring a chosen condition: 1, 2, 3, ... skipping the paper's,
    so that none of them took part in the choice."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"confirm_seeds must be a positive integer, got {n!r}")
    return [s for s in range(1, 10_000) if s not in PAPER_SEEDS][:n]
