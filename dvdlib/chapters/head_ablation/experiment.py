"""Head-ablation sweeps: DvD, presence and attention when cross-attention heads are removed.

The paper's third finding is that the DvD behaviour is spread over many heads: ablating single
heads does not remove it. A sweep tests this on any model. It generates the same (prompt, seed)
images under a list of :class:`Condition` s, one pipeline configuration each, judges them with
the DvD judge, records the cross-attention of every image, and returns tidy tables::

    sweep = HeadSweep(pipe, prompts, seeds, out_dir, judge, model="toy:k1", steps=20, guidance=4.0)
    base = sweep.run([baseline()])
    order = ranked_order(head_attention(base.heads), by="concept_mass")
    result = combine([base, sweep.run(single_heads(sweep.layers)),
                      sweep.run(cumulative(order, head_counts(sweep.total_heads, [0.25, 0.5])))])
    summary = summarise(result.images)

Condition families (:data:`FAMILIES`):

- ``baseline``: no ablation;
- ``single head``: one head ablated (:func:`single_heads`);
- ``ranked`` / ``random``: the first n heads of an order ablated together (:func:`cumulative`),
  the order ranked by the heads' attention to the dominant concept in the baseline
  (:func:`ranked_order`) or drawn at random (:func:`random_orders`);
- ``all heads``: every cross-attention head ablated, so the text reaches the UNet nowhere;
- ``concept tokens``: the dominant concept's token positions removed from every head of every
  layer (their value vectors zeroed; :class:`dvdlib.attention.ablation.TokenValueAblation`), everything else intact.

Heads are ablated with :class:`dvdlib.attention.ablation.HeadAblation` (operators zero, mean, scale; ours,
the paper publishes none). Every condition uses the same seeds, so a condition's effect is
measured image by image against the baseline (paired differences).

Tables (one row per ...):

- ``images``: condition and image: the judge's yes counts, the DvD score, whether the concept
  and the object are present (three or more of five answers "yes") and ``concept_share``, the
  dominant concept's pair share of cross-attention (pooled over layers and heads as in
  ``book/definitions_attention.md``, mean over the steps);
- ``heads``: condition, image, layer and head: the attention mass on the concept's tokens, on
  the object's and on all word tokens (means over the steps);
- :func:`summarise`: condition: means with a two-level bootstrap interval over prompts and seeds
  (:func:`nested_bootstrap_ci`) and paired changes against the baseline.

A finished condition's tables are kept in its folder (``images.csv``, ``heads.parquet``); a later
run with the same settings loads them instead of generating again (an unfinished condition is
redone from scratch).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from PIL import Image

from dvdlib.models import spec
from dvdlib.models.loading import load_model

from dvdlib.stats import verdicts
from dvdlib.attention.ablation import HeadAblation, TokenValueAblation
from dvdlib.prompts.prompt_sets import concept_phrase, object_phrase
from dvdlib.generation.protocol import PipelineCall, attention_hook, generate
from dvdlib.attention.layers import CrossAttentionLayer, cross_attention_layers
from dvdlib.scoring.questions import OUR_WORDING, Wording
from dvdlib.attention.recorder import ABLATION_KWARG
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.stats.bootstrap import nested_bootstrap_ci
from dvdlib.store import atomic_write_json, load_table, save_table
from dvdlib.attention.token_positions import token_groups, tokenize_prompt
from dvdlib.toyworld.evaluate import image_grid
from dvdlib.toyworld.world import World, prompt_table

FAMILIES = ("baseline", "single head", "ranked", "random", "all heads", "concept tokens")
BASELINE = "baseline"
RANK_COLUMNS = ("concept_mass", "pair_share", "word_share")
IMAGE_COLUMNS = (
    "condition", "family", "label", "n_heads", "draw", "case_num", "prompt", "concept", "object", "seed",
    "concept_yes", "object_yes", "dvd_score", "concept_present", "object_present", "concept_share",
    "file",
)
HEAD_COLUMNS = ("condition", "case_num", "seed", "layer", "layer_label", "head", "concept_mass",
                "object_mass", "word_mass")
_DONE = "condition.json"  # written last in a condition's folder: its tables are complete


# --------------------------------------------------------------------------------------------
# Conditions


@dataclass(frozen=True)
class Condition:
    """One configuration of the network: which heads are ablated (or the concept's tokens)."""

    name: str  # unique in a sweep; the condition's folder name
    family: str  # one of FAMILIES
    heads: tuple[tuple[str, int], ...] = ()  # (layer label, head index) pairs ablated together
    draw: int | None = None  # which random order (family "random")

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown condition family {self.family!r}; accepted: {', '.join(FAMILIES)}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"condition name {self.name!r} must be letters, digits, '_', '.', '-' "
                             "(it names a folder)")
        object.__setattr__(self, "heads", tuple((str(label), int(h)) for label, h in self.heads))
        if len(set(self.heads)) != len(self.heads):
            raise ValueError(f"condition {self.name!r} names a head twice: {self.heads}")
        if self.family in ("baseline", "concept tokens") and self.heads:
            raise ValueError(f"a {self.family!r} condition ablates no heads; got {self.heads}")
        if self.family in ("single head", "ranked", "random", "all heads") and not self.heads:
            raise ValueError(f"a {self.family!r} condition needs heads to ablate")

    @property
    def n_heads(self) -> int:
        return len(self.heads)

    def head_mask(self) -> dict[str, list[int]]:
        """The heads as :class:`HeadAblation` takes them: layer label -> head indices."""
        mask: dict[str, list[int]] = {}
        for label, head in self.heads:
            mask.setdefault(label, []).append(head)
        return mask

    def describe(self) -> str:
        if self.family in ("baseline", "concept tokens", "all heads"):
            return self.family
        if self.family == "single head":
            return f"head {self.heads[0][0]}:{self.heads[0][1]}"
        order = "random order " + str(self.draw) if self.family == "random" else "ranked order"
        return f"first {self.n_heads} heads, {order}"


def all_head_keys(layers: Sequence[CrossAttentionLayer]) -> list[tuple[str, int]]:
    """Every (layer label, head) of ``layers``, layer by layer."""
    return [(layer.label, head) for layer in layers for head in range(layer.heads)]


def baseline() -> Condition:
    return Condition(BASELINE, "baseline")


def single_heads(layers: Sequence[CrossAttentionLayer]) -> list[Condition]:
    """One condition per head of ``layers``."""
    return [Condition(f"head_{label}_{head}", "single head", ((label, head),))
            for label, head in all_head_keys(layers)]


def all_heads(layers: Sequence[CrossAttentionLayer]) -> Condition:
    return Condition("all_heads", "all heads", tuple(all_head_keys(layers)))


def concept_tokens() -> Condition:
    return Condition("concept_tokens", "concept tokens")


def spread_prompts(prompts: pd.DataFrame, n_prompts: int) -> pd.DataFrame:
    """``n_prompts`` rows taking the categories in turn (first rows of each), in table order.

    ``n_prompts`` 0 (or at least the table's length) keeps every row.
    """
    if not isinstance(n_prompts, (int, np.integer)) or n_prompts < 0:
        raise ValueError(f"n_prompts must be a non-negative integer (0: all), got {n_prompts!r}")
    if n_prompts == 0 or n_prompts >= len(prompts):
        return prompts.reset_index(drop=True)
    categories = list(dict.fromkeys(prompts["category"]))
    turn = prompts.groupby("category", sort=False).cumcount()  # rank within the category
    order = pd.DataFrame({"turn": turn, "category": prompts["category"].map(categories.index)})
    chosen = order.sort_values(["turn", "category"], kind="stable").index[:n_prompts]
    return prompts.loc[sorted(chosen)].reset_index(drop=True)


def parse_fractions(text: str) -> list[float]:
    """Comma-separated fractions ("0.1,0.25,0.5") as floats: a parameter that ``-p`` can set."""
    try:
        values = [float(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"expected comma-separated numbers such as '0.1,0.25,0.5', got {text!r}")
    return values


def head_counts(total: int, fractions: Sequence[float]) -> list[int]:
    """Head counts for a cumulative sweep: ``round(f * total)`` for each fraction, each in 1..total-1.

    All ``total`` heads is its own condition (:func:`all_heads`), so counts stop below it.
    """
    if not isinstance(total, (int, np.integer)) or total < 2:
        raise ValueError(f"total must be an integer >= 2 heads, got {total!r}")
    bad = [f for f in fractions if not 0 < float(f) < 1]
    if bad or not len(fractions):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1), got {list(fractions)}")
    return sorted({min(total - 1, max(1, int(round(float(f) * total)))) for f in fractions})


def cumulative(order: Sequence[tuple[str, int]], counts: Sequence[int], family: str = "ranked",
               draw: int | None = None) -> list[Condition]:
    """For each n in ``counts``, the first n heads of ``order`` ablated together."""
    if family not in ("ranked", "random"):
        raise ValueError(f"a cumulative family is 'ranked' or 'random', got {family!r}")
    if family == "random" and draw is None:
        raise ValueError("a random order needs its draw number")
    order = [(str(label), int(h)) for label, h in order]
    bad = [n for n in counts if not 1 <= int(n) <= len(order)]
    if bad:
        raise ValueError(f"head counts {bad} are outside 1..{len(order)} (the order's length)")
    prefix = "ranked" if family == "ranked" else f"random{draw}"
    return [Condition(f"{prefix}_{int(n):03d}", family, tuple(order[:int(n)]), draw) for n in counts]


def random_orders(layers: Sequence[CrossAttentionLayer], n_orders: int, seed: int = 0
                  ) -> list[list[tuple[str, int]]]:
    """``n_orders`` random permutations of every head of ``layers`` (seeded)."""
    if not isinstance(n_orders, (int, np.integer)) or n_orders < 0:
        raise ValueError(f"n_orders must be a non-negative integer, got {n_orders!r}")
    keys = all_head_keys(layers)
    rng = np.random.default_rng(seed)
    return [[keys[i] for i in rng.permutation(len(keys))] for _ in range(n_orders)]


def ranked_order(head_table: pd.DataFrame, by: str = "concept_mass") -> list[tuple[str, int]]:
    """Heads from the most to the least attention to the concept, by a column of :func:`head_attention`.

    Ties keep the layer order (stable sort), so the order is reproducible.
    """
    if by not in RANK_COLUMNS:
        raise ValueError(f"cannot rank heads by {by!r}; accepted: {', '.join(RANK_COLUMNS)}")
    ranked = head_table.sort_values(by, ascending=False, kind="stable")
    return [(str(label), int(head)) for label, head in zip(ranked["layer_label"], ranked["head"])]


    def describe(self) -> str:
        return f"zero values of {int((self.keep == 0).sum())} token position(s) in every head"


# --------------------------------------------------------------------------------------------
# Running a sweep


@dataclass
class SweepResult:
    """The tables of one or more conditions (see the module notes)."""

    images: pd.DataFrame
    heads: pd.DataFrame
    conditions: list[Condition] = field(default_factory=list)


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

    ``prompts`` is a prompt table (:mod:`dvdlib.prompts.prompt_sets` shape: ``concept`` the dominant concept,
    ``object`` the object); ``seeds`` are used for every prompt and condition. Images of a
    condition go to ``out_dir/<condition>/images/`` in the authors' layout. ``operator`` and ``factor``
    are :class:`HeadAblation`'s. ``judge`` is any :class:`dvdlib.scoring.judges.base.Judge`; it is given
    ``judge_batch`` images per call and asked the questions of ``wording``. ``model``, ``steps``, ``guidance``, ``height``, ``width``
    and ``batch_size`` go to :func:`dvdlib.generation.protocol.generate`.
    """

    def __init__(self, pipe, prompts: pd.DataFrame, seeds: Sequence[int], out_dir: str | Path, judge, *,
                 model: str, steps: int, guidance: float, height: int | None = None,
                 width: int | None = None, batch_size: int = 32, operator: str = "zero",
                 factor: float | None = None, judge_batch: int = 32, wording: Wording = OUR_WORDING,
                 progress: bool = False):
        self.pipe = pipe
        self.prompts = prompts.reset_index(drop=True)
        self.seeds = [int(s) for s in seeds]
        self.out_dir = Path(out_dir)
        self.judge = judge
        self.layers = cross_attention_layers(pipe.unet)
        HeadAblation(self.layers, {}, operator, factor)  # checks the operator and factor now
        self.operator, self.factor = operator, factor
        self.generation = dict(model=model, steps=steps, guidance=guidance, height=height, width=width,
                               batch_size=batch_size)
        self.judge_batch = judge_batch
        self.wording = wording
        self.progress = progress
        # The token positions of each prompt's concept, object and words, found once (and checked
        # before any image is made: a phrase missing from its prompt fails here).
        self._groups = {}
        for row in self.prompts.itertuples(index=False):
            tokens = tokenize_prompt(pipe.tokenizer, row.prompt)
            groups = token_groups(pipe.tokenizer, tokens, {"concept": concept_phrase(row),
                                                           "object": object_phrase(row)})
            self._groups[row.prompt] = (groups["concept"], groups["object"], list(tokens.word_positions),
                                        tokens)

    def with_seeds(self, seeds: Sequence[int], out_dir: str | Path) -> "HeadSweep":
        """The same sweep (model, prompts, judge, settings) on other seeds, into ``out_dir``.

        Used to re-measure a condition chosen from this sweep's results on images that played
        no part in choosing it.
        """
        return HeadSweep(self.pipe, self.prompts, seeds, out_dir, self.judge, **self.generation,
                         operator=self.operator, factor=self.factor, judge_batch=self.judge_batch,
                         wording=self.wording, progress=self.progress)

    @property
    def total_heads(self) -> int:
        return sum(layer.heads for layer in self.layers)

    def settings(self, condition: Condition) -> dict:
        """What a condition's images depend on; a kept result with other settings is redone."""
        return json.loads(json.dumps(dict(
            condition=asdict(condition), operator=self.operator, factor=self.factor,
            generation=self.generation, judge=getattr(self.judge, "name", type(self.judge).__name__),
            wording=self.wording.to_dict(),
            prompts=self.prompts[["case_num", "concept", "object", "prompt"]].values.tolist(),
            seeds=self.seeds, columns=IMAGE_COLUMNS)))  # a table kept under older names is redone

    def run(self, conditions: Sequence[Condition]) -> SweepResult:
        """Every condition's images, judged and recorded; kept results are loaded, not redone."""
        names = [c.name for c in conditions]
        if len(set(names)) != len(names):
            raise ValueError(f"condition names repeat: {sorted({n for n in names if names.count(n) > 1})}")
        images, heads = [], []
        for condition in conditions:
            condition_images, condition_heads = self._run_one(condition)
            images.append(condition_images)
            heads.append(condition_heads)
        return SweepResult(pd.concat(images, ignore_index=True), pd.concat(heads, ignore_index=True),
                           list(conditions))

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
            ablation = self._ablation(condition, layers, [self._groups[j.prompt] for j in call.jobs])
            return {} if ablation is None else {ABLATION_KWARG: ablation}

        def keep(call: PipelineCall, record) -> None:
            groups = [self._groups[job.prompt] for job in call.jobs]
            mass = record.mass()  # [image, step, layer, head, token]; NaN for padded heads
            for job, (concept, obj, words, _), image_mass in zip(call.jobs, groups, mass):
                attention[(job.case_num, job.seed)] = reduce_attention(image_mass, concept, obj, words)

        return attention_hook(extra_kwargs=ablate, keep=keep,
                              classifier_free_guidance=self.generation["guidance"] > 1)

    def _ablation(self, condition: Condition, layers, groups):
        if condition.family == "concept tokens":
            return TokenValueAblation([g[0] for g in groups], num_tokens=groups[0][3].length)
        if condition.heads:
            return HeadAblation(layers, condition.head_mask(), self.operator, self.factor)
        return None

    def _image_rows(self, condition: Condition, scored: pd.DataFrame, attention: dict) -> pd.DataFrame:
        table = scored.copy()
        table["seed"] = table["seed"].astype(int)
        table["concept_present"] = table["concept_yes"] >= PRESENT_YES
        table["object_present"] = table["object_yes"] >= PRESENT_YES
        table["concept_share"] = [attention[(c, s)][0] for c, s in zip(table["case_num"], table["seed"])]
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
                    concept, obj, words = per_head[layer.index, head]
                    rows.append((condition.name, case_num, seed, layer.index, layer.label, head,
                                 concept, obj, words))
        return pd.DataFrame(rows, columns=list(HEAD_COLUMNS))


def reduce_attention(mass: torch.Tensor, concept: Sequence[int], obj: Sequence[int],
                     words: Sequence[int]) -> tuple[float, np.ndarray]:
    """One image's record ``[step, layer, head, token]`` reduced to what the sweep keeps.

    Returns the concept's pair share pooled over heads (per layer), then layers, mean over the
    steps; and ``[layer, head, 3]``: the mass on the concept's, the object's and all word tokens,
    mean over the steps (NaN for padded heads).
    """
    sums = torch.stack([mass[..., list(concept)].sum(-1), mass[..., list(obj)].sum(-1),
                        mass[..., list(words)].sum(-1)], dim=-1)  # [step, layer, head, 3]
    pooled = sums.nanmean(dim=2).mean(dim=1)  # [step, 3]: mean over each layer's heads, then layers
    share = pooled[:, 0] / (pooled[:, 0] + pooled[:, 1])  # [step]
    return float(share.mean()), sums.mean(dim=0).numpy()


# --------------------------------------------------------------------------------------------
# Summaries


def head_attention(heads: pd.DataFrame, condition: str = BASELINE) -> pd.DataFrame:
    """Per head, its attention to the concept in ``condition`` (means over images and steps).

    Columns: ``layer``, ``layer_label``, ``head``, ``concept_mass``, ``object_mass`` and
    ``word_mass`` (shares of all 77 positions; the rest goes to the start, end and padding
    positions), ``pair_share`` = concept / (concept + object) and ``word_share`` = concept / all
    word tokens, both ratios of the means.
    """
    chosen = heads[heads["condition"] == condition]
    if chosen.empty:
        raise ValueError(f"no attention rows for condition {condition!r}; conditions: "
                         f"{', '.join(map(str, heads['condition'].unique())) or 'none'}")
    table = (chosen.groupby(["layer", "layer_label", "head"], sort=True)
             [["concept_mass", "object_mass", "word_mass"]].mean().reset_index())
    table["pair_share"] = table["concept_mass"] / (table["concept_mass"] + table["object_mass"])
    table["word_share"] = table["concept_mass"] / table["word_mass"]
    return table


SUMMARY_VALUES = ("dvd_score", "concept_present", "object_present", "concept_share")


def summarise(images: pd.DataFrame, baseline_name: str = BASELINE, *, n_resamples: int = 2000,
              confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per condition: means, bootstrap intervals, and paired changes against the baseline.

    For each of :data:`SUMMARY_VALUES`: the mean, ``<value>_low``/``_high`` (two-level bootstrap
    over prompts and seeds), ``<value>_change`` (condition minus baseline, image by image, then
    averaged) and its interval ``<value>_change_low``/``_high``. ``dvd_outside`` says whether the
    condition's DvD lies outside the baseline's interval; ``dvd_change_excludes_zero`` whether
    the paired interval of its change excludes 0.
    """
    if baseline_name not in set(images["condition"]):
        raise ValueError(f"no baseline condition {baseline_name!r} among "
                         f"{', '.join(map(str, images['condition'].unique()))}")
    key = ["case_num", "seed"]
    base = images[images["condition"] == baseline_name].set_index(key)
    options = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
    rows = []
    for name, group in images.groupby("condition", sort=False):
        row = {"condition": name, "family": group["family"].iloc[0], "label": group["label"].iloc[0],
               "n_heads": int(group["n_heads"].iloc[0]),
               "draw": int(group["draw"].iloc[0]), "n_images": len(group)}
        paired = group.set_index(key)
        missing = paired.index.difference(base.index)
        if len(missing):
            raise ValueError(f"condition {name!r} has images the baseline lacks: {list(missing)[:5]}")
        for value in SUMMARY_VALUES:
            numbers = group.assign(**{value: group[value].astype(float)})
            row[value] = numbers[value].mean()
            row[f"{value}_low"], row[f"{value}_high"] = nested_bootstrap_ci(numbers, value, **options)
            change = (paired[value].astype(float) - base.loc[paired.index, value].astype(float))
            change = change.rename("change").reset_index()
            row[f"{value}_change"] = change["change"].mean()
            row[f"{value}_change_low"], row[f"{value}_change_high"] = nested_bootstrap_ci(
                change, "change", **options)
        rows.append(row)
    table = pd.DataFrame(rows)
    base_row = table.set_index("condition").loc[baseline_name]
    table["dvd_outside"] = ((table["dvd_score"] < base_row["dvd_score_low"])
                            | (table["dvd_score"] > base_row["dvd_score_high"]))
    table["dvd_change_excludes_zero"] = ((table["dvd_score_change_low"] > 0)
                                         | (table["dvd_score_change_high"] < 0))
    return table


def head_grid(summary: pd.DataFrame, layers: Sequence[CrossAttentionLayer], value: str) -> pd.DataFrame:
    """A single-head column of :func:`summarise` (or of :func:`head_attention`) as layer x head."""
    if value not in summary.columns:
        raise KeyError(f"column {value!r} is not in the table; it has {', '.join(summary.columns)}")
    if "family" in summary.columns:
        rows = summary[summary["family"] == "single head"]
        keys = {c.name: c.heads[0] for c in single_heads(layers)}
        cells = [(keys[name][0], keys[name][1], v) for name, v in zip(rows["condition"], rows[value])]
    else:
        cells = list(zip(summary["layer_label"], summary["head"], summary[value]))
    grid = pd.DataFrame(cells, columns=["layer", "head", value]).pivot(index="layer", columns="head",
                                                                         values=value)
    return grid.reindex(index=[layer.label for layer in layers],
                        columns=range(max(layer.heads for layer in layers)))


def curve(summary: pd.DataFrame, baseline_name: str = BASELINE, all_heads_name: str = "all_heads"
          ) -> pd.DataFrame:
    """The cumulative conditions as curves from 0 heads (the baseline) to all heads.

    One row per order (``ranked``, ``random0``, ...) and head count; the baseline and the all-heads
    condition are shared by every order.
    """
    table = summary.set_index("condition")
    ends = [table.loc[[n]] for n in (baseline_name, all_heads_name) if n in table.index]
    rows = []
    cumulative_rows = summary[summary["family"].isin(["ranked", "random"])]
    for (family, draw), group in cumulative_rows.groupby(["family", "draw"], sort=True):
        order = "ranked" if family == "ranked" else f"random{draw}"
        part = pd.concat([*ends, group.set_index("condition")]).reset_index()
        part["order"] = order
        part["kind"] = family
        rows.append(part)
    if not rows:
        raise ValueError("the summary holds no cumulative ('ranked' or 'random') conditions")
    return pd.concat(rows, ignore_index=True).sort_values(["order", "n_heads"]).reset_index(drop=True)


def heads_to_halve(curve_table: pd.DataFrame, baseline_dvd: float, order: str) -> int | None:
    """The fewest heads of ``order`` whose DvD is at most half the baseline's; None if none is."""
    rows = curve_table[(curve_table["order"] == order) & (curve_table["dvd_score"] <= baseline_dvd / 2)]
    return None if rows.empty else int(rows["n_heads"].min())


# --------------------------------------------------------------------------------------------
# What the sweep says about the paper's finding

SET_FAMILIES = ("ranked", "random", "all heads", "concept tokens")


def direction(low: float, high: float) -> str:
    """``raises`` / ``lowers`` when a paired interval of a change lies above / below 0, else
    ``no clear change``."""
    if low > 0:
        return "raises"
    if high < 0:
        return "lowers"
    return "no clear change"


def effects(summary: pd.DataFrame, families: Sequence[str]) -> pd.DataFrame:
    """The rows of ``families`` in a :func:`summarise` table, with each DvD change's ``direction``
    and the presence of both sides next to it (so a drop that deletes the concept shows)."""
    rows = summary[summary["family"].isin(families)].copy()
    rows["direction"] = [direction(lo, hi) for lo, hi in
                         zip(rows["dvd_score_change_low"], rows["dvd_score_change_high"])]
    columns = ["condition", "family", "label", "n_heads", "draw", "n_images", "dvd_score", "dvd_score_low",
               "dvd_score_high", "dvd_score_change", "dvd_score_change_low", "dvd_score_change_high",
               "direction", "concept_present", "object_present", "concept_present_change",
               "object_present_change"]
    return rows[columns].reset_index(drop=True)


def describe_effect(row, concept_word: str = "concept", change: bool = True) -> str:
    """One condition's DvD with its interval, the change (signed, paired interval) and presence."""
    text = f"DvD {row['dvd_score']:.1f} [{row['dvd_score_low']:.1f}, {row['dvd_score_high']:.1f}]"
    if change:
        text += (f", change {row['dvd_score_change']:+.1f} [{row['dvd_score_change_low']:+.1f}, "
                 f"{row['dvd_score_change_high']:+.1f}]")
    return (text + f" ({concept_word} present in {row['concept_present']:.0%}, object in "
            f"{row['object_present']:.0%})")


def strongest_single_head(summary: pd.DataFrame) -> pd.Series:
    """The summary row of the single head whose ablation lowers DvD most. Ties (common with
    few images: DvD moves in steps) go to the head first in the summary, so every caller
    picks the same head."""
    singles = summary[summary["family"] == "single head"]
    if singles.empty:
        raise ValueError("the summary holds no single-head conditions")
    return singles.sort_values("dvd_score_change", kind="stable").iloc[0]


def largest_single_head(summary: pd.DataFrame) -> pd.Series:
    """The summary row of the single head whose ablation changes DvD most in absolute value, in
    either direction (ties go to the head first in the summary)."""
    singles = summary[summary["family"] == "single head"]
    if singles.empty:
        raise ValueError("the summary holds no single-head conditions")
    return singles.loc[singles["dvd_score_change"].abs().sort_values(ascending=False, kind="stable").index[0]]


def stated_test(removal_fraction: float = 0.5, min_baseline_dvd: float = 0.0, confidence: float = 0.95,
                *, check: bool = True) -> str:
    """The chapter's test of finding 3 in words, before any number (the criteria are checked)."""
    if check:
        check_criteria(removal_fraction, min_baseline_dvd, confidence)
    level = f"{confidence * 100:g} %"
    return (f"A head *removes the dominance* when ablating it lowers DvD by at least {removal_fraction:.0%} "
            f"of the baseline's. Finding 3 (no single head removes the dominance) is **supported** when "
            f"the {level} paired interval of the DvD change of the head that lowers DvD most, re-measured "
            f"on fresh seeds, lies above -{removal_fraction:g} x baseline DvD; **contradicted** when it lies "
            f"below; **inconclusive** when it contains that bound. It is **not testable** unless the "
            f"baseline's DvD interval lies above {min_baseline_dvd:g} (there is dominance to remove) and "
            f"ablating every head or removing the concept's tokens lowers DvD (paired interval below 0: "
            f"the test can see a removal). A head (or a set of heads) *changes* DvD when the paired "
            f"interval of its change excludes 0, in either direction; heads and sets that raise DvD are "
            f"reported next to those that lower it, but only the single-head test decides the verdict.")


def check_criteria(removal_fraction: float, min_baseline_dvd: float, confidence: float) -> None:
    """Raise a ValueError naming a verdict criterion outside its range."""
    verdicts.check_fraction("removal_fraction", removal_fraction, include_high=True)
    verdicts.check_bound(min_baseline_dvd, "min_baseline_dvd")
    if not 0 <= min_baseline_dvd < 100:
        raise ValueError(f"min_baseline_dvd must be in [0, 100), got {min_baseline_dvd!r}")
    verdicts.check_confidence(confidence)


@dataclass(frozen=True)
class Findings:
    """The numbers a head-ablation chapter reports, and the verdict on the paper's finding 3.

    The verdict is :func:`dvdlib.stats.verdicts.decide` on the test of :func:`stated_test`. The largest
    of many noisy drops overstates its head's effect (the winner's curse), so when a
    ``confirmation`` (the same head and the baseline re-measured on fresh seeds) is given, its
    paired interval decides; without one, the interval on the seeds that selected the head does.
    """

    baseline_dvd: float
    baseline_low: float
    baseline_high: float
    baseline_concept_present: float
    baseline_object_present: float
    total_heads: int
    single_heads: int
    outside_interval: int  # single heads whose DvD lies outside the baseline interval
    heads_raising: tuple[str, ...]  # single heads whose paired DvD change lies above 0
    heads_lowering: tuple[str, ...]  # ... below 0
    largest_label: str  # the single head whose DvD change is largest in absolute value
    largest_change: float  # signed
    largest_change_low: float
    largest_change_high: float
    largest_concept_present: float
    largest_object_present: float
    strongest: str  # the condition whose single head lowers DvD most
    strongest_label: str
    strongest_change: float
    strongest_change_low: float
    strongest_change_high: float
    sets: pd.DataFrame = field(repr=False, compare=False)  # effects() of the head sets and upper bounds
    heads_to_halve_ranked: int | None = None
    heads_to_halve_random: dict = field(default_factory=dict)
    all_heads_dvd: float = float("nan")
    concept_tokens_dvd: float = float("nan")
    verdict: verdicts.Verdict | None = None
    largest: str = ""  # the condition of the single head whose DvD change is largest
    # The strongest head and the baseline re-measured on fresh seeds (NaN without a confirmation).
    confirmed_baseline_dvd: float = float("nan")
    confirmed_dvd: float = float("nan")
    confirmed_change: float = float("nan")
    confirmed_change_low: float = float("nan")
    confirmed_change_high: float = float("nan")
    confirmed_concept_present: float = float("nan")
    confirmed_object_present: float = float("nan")
    confirmed_baseline_concept_present: float = float("nan")
    confirmed_baseline_object_present: float = float("nan")

    @property
    def sets_raising(self) -> int:
        return int((self.sets["direction"] == "raises").sum())

    @property
    def sets_lowering(self) -> int:
        return int((self.sets["direction"] == "lowers").sum())


def findings(summary: pd.DataFrame, total_heads: int, confirmation: pd.DataFrame | None = None,
             baseline_name: str = BASELINE, *, removal_fraction: float = 0.5, min_baseline_dvd: float = 0.0,
             confidence: float = 0.95) -> Findings:
    """The :class:`Findings` of a summary holding the baseline, single heads, the cumulative
    orders, ``all_heads`` and ``concept_tokens``; ``confirmation`` is the summary of the
    baseline and the strongest single head on fresh seeds (see :meth:`HeadSweep.with_seeds`).
    ``removal_fraction``, ``min_baseline_dvd`` and ``confidence`` are the test's criteria
    (:func:`stated_test`); ``confidence`` names the level the summaries' intervals were made at."""
    check_criteria(removal_fraction, min_baseline_dvd, confidence)
    table = summary.set_index("condition")
    needed = [baseline_name, "all_heads", "concept_tokens"]
    missing = [name for name in needed if name not in table.index]
    singles = summary[summary["family"] == "single head"]
    if missing or singles.empty:
        raise ValueError(f"findings need the conditions {', '.join(needed)} and single heads; missing: "
                         f"{', '.join(missing + ([] if len(singles) else ['single heads']))}")
    base = table.loc[baseline_name]
    strongest, largest = strongest_single_head(summary), largest_single_head(summary)
    label = lambda row: str(row["label"]).removeprefix("head ")  # noqa: E731
    curves = curve(summary, baseline_name) if summary["family"].isin(["ranked", "random"]).any() else None
    orders = [] if curves is None else sorted(curves["order"].unique())
    halve = {order: heads_to_halve(curves, base["dvd_score"], order) for order in orders}
    ranked = halve.pop("ranked", None)
    tested = strongest
    confirmed = {}
    if confirmation is not None:
        again = confirmation.set_index("condition")
        if strongest["condition"] not in again.index or baseline_name not in again.index:
            raise ValueError(f"the confirmation must hold {baseline_name!r} and the strongest head "
                             f"{strongest['condition']!r}; it holds {', '.join(again.index)}")
        tested, fresh_base = again.loc[strongest["condition"]], again.loc[baseline_name]
        confirmed = dict(confirmed_baseline_dvd=float(fresh_base["dvd_score"]),
                         confirmed_dvd=float(tested["dvd_score"]),
                         confirmed_change=float(tested["dvd_score_change"]),
                         confirmed_change_low=float(tested["dvd_score_change_low"]),
                         confirmed_change_high=float(tested["dvd_score_change_high"]),
                         confirmed_concept_present=float(tested["concept_present"]),
                         confirmed_object_present=float(tested["object_present"]),
                         confirmed_baseline_concept_present=float(fresh_base["concept_present"]),
                         confirmed_baseline_object_present=float(fresh_base["object_present"]))
    bounds = table.loc[["all_heads", "concept_tokens"]]
    best_bound = bounds["dvd_score_change_high"].min()
    requirements = [
        verdicts.Requirement(f"dominance to remove: the baseline's DvD interval above {min_baseline_dvd:g}",
                             base["dvd_score_low"] > min_baseline_dvd,
                             f"the baseline's DvD is {base['dvd_score']:.1f} [{base['dvd_score_low']:.1f}, "
                             f"{base['dvd_score_high']:.1f}]"),
        verdicts.Requirement("an upper bound that lowers DvD: every head ablated, or the concept's tokens "
                             "removed, with a paired interval of the change below 0",
                             best_bound < 0, f"the upper bounds' changes reach up to "
                             f"{best_bound:+.1f} at their interval's upper end"),
    ]
    test = verdicts.Test(
        finding="finding 3", claim="ablating any single head does not remove the dominance",
        measure=(f"the DvD change from ablating head {label(strongest)} (the largest drop)"
                 + (" on fresh seeds" if confirmation is not None else "")),
        side="above", bound=-removal_fraction * float(base["dvd_score"]), confidence=confidence)
    verdict = verdicts.decide(test, (tested["dvd_score_change"], tested["dvd_score_change_low"],
                                     tested["dvd_score_change_high"]), requirements)
    moved = singles.assign(direction=[direction(lo, hi) for lo, hi in
                                      zip(singles["dvd_score_change_low"], singles["dvd_score_change_high"])])
    return Findings(
        baseline_dvd=float(base["dvd_score"]), baseline_low=float(base["dvd_score_low"]),
        baseline_high=float(base["dvd_score_high"]),
        baseline_concept_present=float(base["concept_present"]),
        baseline_object_present=float(base["object_present"]), total_heads=int(total_heads),
        single_heads=len(singles), outside_interval=int(singles["dvd_outside"].sum()),
        heads_raising=tuple(label(r) for _, r in moved[moved["direction"] == "raises"].iterrows()),
        heads_lowering=tuple(label(r) for _, r in moved[moved["direction"] == "lowers"].iterrows()),
        largest_label=label(largest), largest_change=float(largest["dvd_score_change"]),
        largest_change_low=float(largest["dvd_score_change_low"]),
        largest_change_high=float(largest["dvd_score_change_high"]),
        largest_concept_present=float(largest["concept_present"]),
        largest_object_present=float(largest["object_present"]), largest=str(largest["condition"]),
        strongest=str(strongest["condition"]), strongest_label=label(strongest),
        strongest_change=float(strongest["dvd_score_change"]),
        strongest_change_low=float(strongest["dvd_score_change_low"]),
        strongest_change_high=float(strongest["dvd_score_change_high"]),
        sets=effects(summary, SET_FAMILIES), heads_to_halve_ranked=ranked, heads_to_halve_random=halve,
        all_heads_dvd=float(table.loc["all_heads", "dvd_score"]),
        concept_tokens_dvd=float(table.loc["concept_tokens", "dvd_score"]), verdict=verdict, **confirmed)


def _heads_text(labels: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(labels[:limit]) + (f" and {len(labels) - limit} more" if len(labels) > limit else "")
    return f" ({shown})" if labels else ""


def report(found: Findings, concept_word: str = "concept") -> list[str]:
    """The chapter's closing paragraphs (Markdown): the verdict first, then the effects in both
    directions, each DvD with its interval and the presence of both sides."""
    if found.verdict is None:
        raise ValueError("these findings carry no verdict")
    lines = [found.verdict.markdown()]
    baseline = (f"The baseline has DvD {found.baseline_dvd:.1f} [{found.baseline_low:.1f}, "
                f"{found.baseline_high:.1f}]; the {concept_word} is present in "
                f"{found.baseline_concept_present:.0%} of its images and the object in "
                f"{found.baseline_object_present:.0%}.")
    lines.append(
        f"{baseline} Of the {found.single_heads} single heads, **{len(found.heads_raising)} raise DvD**"
        f"{_heads_text(found.heads_raising)} and **{len(found.heads_lowering)} lower it**"
        f"{_heads_text(found.heads_lowering)} (paired interval of the change above or below 0); "
        f"{found.outside_interval} move it outside the baseline's interval. The largest change in "
        f"absolute value comes from head {found.largest_label}: **{found.largest_change:+.1f}** "
        f"[{found.largest_change_low:+.1f}, {found.largest_change_high:+.1f}], with the {concept_word} "
        f"present in {found.largest_concept_present:.0%} and the object in "
        f"{found.largest_object_present:.0%} of its images.")
    drop = (f"The largest drop comes from head {found.strongest_label}: {found.strongest_change:+.1f} "
            f"[{found.strongest_change_low:+.1f}, {found.strongest_change_high:+.1f}] on the seeds that "
            "selected it")
    if np.isfinite(found.confirmed_change):
        drop += (f", {found.confirmed_change:+.1f} [{found.confirmed_change_low:+.1f}, "
                 f"{found.confirmed_change_high:+.1f}] on fresh seeds (baseline there "
                 f"{found.confirmed_baseline_dvd:.1f}; {concept_word} present "
                 f"{found.confirmed_baseline_concept_present:.0%} -> {found.confirmed_concept_present:.0%}, "
                 f"object {found.confirmed_baseline_object_present:.0%} -> "
                 f"{found.confirmed_object_present:.0%})")
    lines.append(drop + ".")
    groups = found.sets[found.sets["family"].isin(["ranked", "random"])]
    if len(groups):
        lines.append(
            f"Sets of heads ablated together ({len(groups)}) that raise DvD: "
            f"{int((groups['direction'] == 'raises').sum())}; that lower it: "
            f"{int((groups['direction'] == 'lowers').sum())}. "
            + "; ".join(f"{row['label']}: {describe_effect(row, concept_word)}, {row['direction']}"
                        for _, row in groups.iterrows()) + ".")
    bounds = found.sets[found.sets["family"].isin(["all heads", "concept tokens"])]
    lines.append("Upper bounds: " + "; ".join(
        f"{row['label']}: {describe_effect(row, concept_word)}, {row['direction']}"
        for _, row in bounds.iterrows()) + ".")
    return lines


def summary_text(found: Findings, model: str, concept_word: str = "concept") -> str:
    """The landing page's sentence on finding 3: effects in both directions, then the verdict."""
    groups = found.sets[found.sets["family"].isin(["ranked", "random"])]
    bounds = found.sets.set_index("condition")
    return (
        f"On `{model}` ({found.total_heads} cross-attention heads), the baseline DvD is "
        f"{found.baseline_dvd:.1f} [{found.baseline_low:.1f}, {found.baseline_high:.1f}] ({concept_word} present "
        f"in {found.baseline_concept_present:.0%} of images, object in {found.baseline_object_present:.0%}). "
        f"Ablated one at a time, heads that raise DvD: {len(found.heads_raising)}; heads that lower "
        f"it: {len(found.heads_lowering)} (paired intervals excluding 0); the largest change is {found.largest_change:+.1f} "
        f"[{found.largest_change_low:+.1f}, {found.largest_change_high:+.1f}] (head {found.largest_label}; "
        f"object present in {found.largest_object_present:.0%}). Sets of heads ablated together "
        f"({len(groups)}) that raise DvD: {int((groups['direction'] == 'raises').sum())}; that lower "
        f"it: {int((groups['direction'] == 'lowers').sum())}. Every head ablated gives "
        f"{describe_effect(bounds.loc['all_heads'], concept_word, change=False)}, and the {concept_word}'s "
        f"tokens removed give {describe_effect(bounds.loc['concept_tokens'], concept_word, change=False)}. "
        + found.verdict.plain())


def headline(found: Findings) -> tuple[dict, dict]:
    """``(values, texts)`` for :func:`dvdlib.book.headlines.save` (NaN values are left out)."""
    values = {
        "baseline_dvd": found.baseline_dvd, "baseline_dvd_low": found.baseline_low,
        "baseline_dvd_high": found.baseline_high, "heads": found.total_heads,
        "heads_raising_dvd": len(found.heads_raising), "heads_lowering_dvd": len(found.heads_lowering),
        "single_heads_outside_interval": found.outside_interval,
        "largest_single_head_change": found.largest_change,
        "largest_single_head_change_low": found.largest_change_low,
        "largest_single_head_change_high": found.largest_change_high,
        "largest_drop": found.strongest_change, "largest_drop_fresh_seeds": found.confirmed_change,
        "sets_raising_dvd": found.sets_raising, "sets_lowering_dvd": found.sets_lowering,
        "all_heads_dvd": found.all_heads_dvd, "concept_tokens_removed_dvd": found.concept_tokens_dvd,
    }
    if found.heads_to_halve_ranked is not None:
        values["heads_to_halve_ranked"] = found.heads_to_halve_ranked
    values.update({f"heads_to_halve_{name}": n for name, n in found.heads_to_halve_random.items()
                   if n is not None})
    verdict_values, texts = found.verdict.headline("verdict")
    values = {k: v for k, v in {**values, **verdict_values}.items() if np.isfinite(v)}
    return values, {**texts, "largest_single_head": found.largest_label}


# --------------------------------------------------------------------------------------------
# The chapter: its prompts, the choice of its default model, figures and sentences

OBJECT_SETS = ("seen", "unseen", "all")
# The survey's seeds lie outside the paper's draw (randint(1, 10000)), so the images that choose
# the model are never the images whose baseline the chapter reports or re-measures.
SURVEY_SEED_START = 10_001
SURVEY_SEEDS = 4  # seeds per model and object: 6 models x 5 objects x 4 = 120 images


def survey_seeds(n: int) -> list[int]:
    """``n`` seeds for :func:`dominance_survey`, apart from every seed the sweep uses."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the survey needs a positive number of seeds, got {n!r}")
    return list(range(SURVEY_SEED_START, SURVEY_SEED_START + n))


def toy_prompts(world: World, objects: str = "seen") -> pd.DataFrame:
    """The limited concept's pair prompts on the objects of ``objects``: ``seen`` (printed on
    them in training), ``unseen`` (never) or ``all``."""
    if objects not in OBJECT_SETS:
        raise ValueError(f"objects must be one of {', '.join(OBJECT_SETS)}, got {objects!r}")
    chosen = {"seen": world.paired_objects, "unseen": world.unpaired, "all": world.objects}[objects]
    if not chosen:
        raise ValueError(f"the world has no {objects} objects for {world.limited!r}")
    return prompt_table(world, chosen, controls=False)


def dominance_survey(models: Sequence[str], judge, out_dir: str | Path, *, zoo_folder: str = "",
                     seeds: Sequence[int], steps: int, guidance: float,
                     wording: Wording = OUR_WORDING, device: str = "",
                     batch_size: int = 32) -> pd.DataFrame:
    """DvD and both sides' presence of every zoo model on every pair prompt, no head ablated.

    One row per model and object: ``paired_in_training``, ``images``, ``dvd_score``,
    ``concept_present`` and ``object_present`` (means over ``seeds``). It is the measurement
    behind the chapter's choice of model and prompts (:func:`model_to_ablate`), made before and
    apart from any ablation.
    """
    rows = []
    for name in models:
        world = spec.toy_world(f"toy:{name}", zoo_folder)
        prompts = prompt_table(world, controls=False)
        pipe = load_model(f"toy:{name}", zoo_folder, device)
        folder = Path(out_dir) / name
        generate(pipe, prompts, seeds, folder / "images", model=f"toy:{name}", steps=steps,
                 guidance=guidance, batch_size=batch_size, progress=False)
        scored = score_folder(folder / "images", prompts, judge, folder / "dvd.csv", wording=wording,
                              images_per_call=batch_size, progress=False).merge(prompts[["case_num", "paired_in_training"]],
                                                    on="case_num")
        scored = scored.assign(concept_present=scored["concept_yes"] >= PRESENT_YES,
                               object_present=scored["object_yes"] >= PRESENT_YES)
        table = scored.groupby(["object", "paired_in_training"], sort=False).agg(
            images=("dvd_score", "size"), dvd_score=("dvd_score", "mean"),
            concept_present=("concept_present", "mean"), object_present=("object_present", "mean"))
        rows.append(table.reset_index().assign(model=name, K=spec.k_text(world.instances)))
    columns = ["model", "K", "object", "paired_in_training", "images", "dvd_score",
               "concept_present", "object_present"]
    return pd.concat(rows, ignore_index=True)[columns]


ENOUGH_DOMINANCE = 40.0  # mean DvD a model needs on the survey for there to be dominance to ablate


def model_to_ablate(survey: pd.DataFrame, objects: str = "seen",
                    enough: float = ENOUGH_DOMINANCE) -> str:
    """The rule for the chapter's default: the least diverse model (listed first in the survey,
    as the zoo lists them) whose mean DvD over the pair prompts of ``objects`` (seen: the objects
    the concept was printed on in training) is at least ``enough``; the paper expects dominance
    to be strongest there. If no model has that much, the one with the highest mean DvD."""
    part = survey if objects == "all" else survey[survey["paired_in_training"] == (objects == "seen")]
    means = part.groupby("model", sort=False)["dvd_score"].mean()
    dominated = means[means >= enough]
    return str(dominated.index[0] if len(dominated) else means.idxmax())


def survey_text(survey: pd.DataFrame, chosen: str, model: str, objects: str) -> str:
    """The survey in words: each model's mean DvD and presence on seen and unseen objects, the
    rule's choice, and whether the chapter runs on it."""
    means = survey.groupby(["model", "paired_in_training"], sort=False)[
        ["dvd_score", "concept_present", "object_present"]].mean()
    parts = []
    for name in dict.fromkeys(survey["model"]):
        for seen, kind in ((True, "seen"), (False, "unseen")):
            if (name, seen) in means.index:
                row = means.loc[(name, seen)]
                parts.append(f"{name} on {kind} objects DvD {row['dvd_score']:.1f} (concept present "
                             f"{row['concept_present']:.0%}, object {row['object_present']:.0%})")
    runs = (f"this run studies it (`{model}`)" if model == f"toy:{chosen}" else
            f"this run studies `{model}` instead, as its parameters ask")
    return (f"{'; '.join(parts)}. The rule (the least diverse model with a mean DvD of at least "
            f"{ENOUGH_DOMINANCE:.0f} on the {objects} objects' pair prompts) picks **{chosen}**; "
            f"{runs}.")


def _heatmap(grid: pd.DataFrame, ax, annotate: bool, fmt: str, **style) -> None:
    sns.heatmap(grid, annot=annotate, fmt=fmt, ax=ax, cbar=not annotate, **style)
    ax.set_xlabel("head")


def figure_head_attention(attention: pd.DataFrame, layers: Sequence[CrossAttentionLayer],
                          concept: str):
    """Figure 4.1: each head's baseline attention mass on the concept and the concept's pair share."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(layers) + 1.6))
    annotate = max(layer.heads for layer in layers) <= 4  # numbers in the cells only where they fit
    for ax, column, title, fmt in ((axes[0], "concept_mass", f"attention mass on the {concept}", ".3f"),
                                   (axes[1], "pair_share", f"{concept}'s pair share", ".2f")):
        _heatmap(head_grid(attention, layers, column), ax, annotate, fmt, cmap="viridis")
        ax.set_title(title)
    axes[0].set_ylabel("layer")
    fig.tight_layout()
    return fig


SINGLE_PANELS = (("dvd_score_change", "DvD change (points)", "+.1f"),
                 ("concept_present_change", "{concept} present (change)", "+.0%"),
                 ("object_present_change", "object present (change)", "+.0%"),
                 ("concept_share_change", "{concept}'s attention share (change)", "+.1%"))


def figure_single_changes(summary: pd.DataFrame, layers: Sequence[CrossAttentionLayer],
                          concept: str):
    """Figure 4.2: per head ablated alone, the paired change of DvD, of both sides' presence and
    of the concept's attention share; framed cells: DvD change interval excludes 0."""
    annotate = max(layer.heads for layer in layers) <= 4
    marked = head_grid(summary, layers, "dvd_change_excludes_zero").fillna(False).astype(bool)
    fig, axes = plt.subplots(1, len(SINGLE_PANELS), figsize=(16, 0.45 * len(layers) + 1.8))
    for ax, (column, title, fmt) in zip(axes, SINGLE_PANELS):
        grid = head_grid(summary, layers, column)
        scale = max(np.nanmax(np.abs(grid.to_numpy())), 1e-9)
        _heatmap(grid, ax, annotate, fmt, cmap="vlag", center=0, vmin=-scale, vmax=scale)
        ax.set_title(title.format(concept=concept), fontsize=10)
    for (r, c), flag in np.ndenumerate(marked.to_numpy()):
        if flag:
            axes[0].add_patch(plt.Rectangle((c, r), 1, 1, fill=False, edgecolor="black", lw=2))
    axes[0].set_ylabel("layer")
    fig.tight_layout()
    return fig


def figure_single_dvd(summary: pd.DataFrame):
    """Figure 4.3: DvD with each head ablated alone, sorted, against the baseline's interval."""
    base = summary.set_index("condition").loc[BASELINE]
    singles = summary[summary["family"] == "single head"].sort_values("dvd_score").reset_index(drop=True)
    x = np.arange(len(singles))
    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.axhspan(base["dvd_score_low"], base["dvd_score_high"], color="C0", alpha=0.15,
               label="baseline 95 % interval")
    ax.axhline(base["dvd_score"], color="C0", lw=1)
    ax.axhline(base["dvd_score"] / 2, color="C3", lw=1, ls="--", label="half the baseline")
    ax.errorbar(x, singles["dvd_score"], yerr=[singles["dvd_score"] - singles["dvd_score_low"],
                                               singles["dvd_score_high"] - singles["dvd_score"]],
                fmt="none", ecolor="C7", elinewidth=1)
    ax.scatter(x, singles["dvd_score"], c=np.where(singles["dvd_outside"], "C3", "C7"), zorder=3)
    ax.set_xticks(x, singles["label"].str.removeprefix("head "), rotation=90, fontsize=8)
    ax.set_ylabel("DvD")
    ax.set_xlabel("ablated head (layer:head), sorted by DvD")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def figure_cumulative(curves: pd.DataFrame, baseline_dvd: float, rank_by: str):
    """Figure 4.4: DvD and object presence as more heads are ablated, ranked against random orders."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    ranked, random_curves = curves[curves["order"] == "ranked"], curves[curves["kind"] == "random"]
    for ax, column, label in ((axes[0], "dvd_score", "DvD"), (axes[1], "object_present", "object present")):
        ax.plot(ranked["n_heads"], ranked[column], "o-", color="C3", label=f"ranked by {rank_by}")
        ax.fill_between(ranked["n_heads"], ranked[f"{column}_low"], ranked[f"{column}_high"],
                        color="C3", alpha=0.15)
        if len(random_curves):
            band = random_curves.groupby("n_heads")[column].agg(["mean", "min", "max"])
            ax.plot(band.index, band["mean"], "s-", color="C0", label="random orders (mean)")
            ax.fill_between(band.index, band["min"], band["max"], color="C0", alpha=0.2,
                            label="random orders (range)")
        ax.set_xlabel("heads ablated")
        ax.set_ylabel(label)
    axes[0].axhline(baseline_dvd / 2, color="k", lw=1, ls="--", label="half the baseline")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_bounds(summary: pd.DataFrame, shown: dict[str, str], concept: str):
    """Figure 4.5: DvD and both sides' presence under the ``shown`` conditions (name -> label)."""
    bars = summary.set_index("condition").loc[list(shown)].reset_index()
    bars["label"] = list(shown.values())
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    for ax, column, title in ((axes[0], "dvd_score", "DvD"),
                              (axes[1], "concept_present", f"{concept} present"),
                              (axes[2], "object_present", "object present")):
        ax.barh(bars["label"], bars[column], color=[f"C{i}" for i in range(len(bars))])
        ax.errorbar(bars[column], np.arange(len(bars)), xerr=[bars[column] - bars[f"{column}_low"],
                    bars[f"{column}_high"] - bars[column]], fmt="none", ecolor="k", elinewidth=1)
        ax.set_title(title)
    axes[0].invert_yaxis()  # the baseline on top (the axes share y)
    fig.tight_layout()
    return fig


def figure_examples(images: pd.DataFrame, folder: str | Path, shown: dict[str, str], seed: int):
    """Figure 4.6: one image per prompt (columns) under each ``shown`` condition (rows)."""
    examples = images[images["seed"] == seed]
    prompts = examples.drop_duplicates("case_num").sort_values("case_num")["prompt"].tolist()
    pictures = []
    for condition in shown:
        files = examples[examples["condition"] == condition].sort_values("case_num")["file"]
        pictures += [Image.open(Path(folder) / f).convert("RGB") for f in files]
    thumb = min(96, pictures[0].width)  # Stable Diffusion's large images are shrunk for the figure
    grid = image_grid([p.resize((thumb, thumb), Image.LANCZOS) for p in pictures],
                      columns=len(prompts), scale=max(1, 96 // thumb))
    fig, ax = plt.subplots(figsize=(1.3 * len(prompts) + 2.5, 1.35 * len(shown) + 0.6))
    ax.imshow(grid)
    cell = grid.height / len(shown)
    ax.set_yticks([cell * (i + 0.5) for i in range(len(shown))], list(shown.values()), fontsize=8)
    ax.set_xticks([grid.width / len(prompts) * (i + 0.5) for i in range(len(prompts))], prompts,
                  rotation=30, ha="right", fontsize=7)
    ax.grid(False)
    fig.tight_layout()
    return fig


def shown_conditions(summary: pd.DataFrame, counts: Sequence[int], total_heads: int,
                     concept: str) -> dict[str, str]:
    """The conditions of Figures 4.5 and 4.6: baseline, the strongest single head, the ranked
    set nearest half the heads, every head, and the concept's tokens removed."""
    strongest = strongest_single_head(summary)
    half = min(counts, key=lambda n: abs(n - total_heads / 2))
    return {BASELINE: "baseline",
            strongest["condition"]: f"strongest single head ({strongest['label'].removeprefix('head ')})",
            f"ranked_{half:03d}": f"top {half} ranked heads", "all_heads": f"all {total_heads} heads",
            "concept_tokens": f"{concept} tokens removed"}


def chapter_texts(found: Findings, summary: pd.DataFrame, attention: pd.DataFrame,
                  curves: pd.DataFrame, fresh: pd.DataFrame, *, concept: str, rank_by: str,
                  total_heads: int) -> dict[str, str]:
    """The sentences the chapter places into its text with myst-nb ``glue``, each DvD with both
    sides' presence next to it."""
    table = summary.set_index("condition")
    base = table.loc[BASELINE]
    singles = summary[summary["family"] == "single head"]
    top = attention.sort_values(rank_by, ascending=False).iloc[0]
    again, fresh_base = fresh.set_index("condition").loc[found.strongest], fresh.set_index("condition").loc[BASELINE]
    halves = {order: heads_to_halve(curves, base["dvd_score"], order) for order in dict.fromkeys(curves["order"])}
    pooled = attention.groupby("layer")[["concept_mass", "word_mass"]].mean().mean()  # heads, then layers
    n_changed = int(singles["dvd_change_excludes_zero"].sum())
    return {
        "ch4_baseline": f"{describe_effect(base, concept, change=False)}, over {int(base['n_images'])} images; "
                        f"the {concept} draws {base['concept_share']:.0%} of the attention that goes to "
                        "the two words",
        "ch4_fig1": f"The ranked order starts with head {top['layer_label']}:{int(top['head'])} ({rank_by} "
                    f"{top[rank_by]:.3f}). Per-head pair shares range from {attention['pair_share'].min():.2f} "
                    f"to {attention['pair_share'].max():.2f}.",
        "ch4_fig2": f"{n_changed} of {len(singles)} heads have a paired interval that excludes 0: "
                    f"{len(found.heads_raising)} raise DvD, {len(found.heads_lowering)} lower it. The largest "
                    f"change in absolute value comes from head {found.largest_label}: "
                    f"{describe_effect(table.loc[found.largest], concept)}; the largest drop from head "
                    f"{found.strongest_label}: {describe_effect(table.loc[found.strongest], concept)}.",
        "ch4_fig3": f"**{found.outside_interval} of {len(singles)} heads** move the DvD outside the "
                    f"baseline interval (red); single-head DvD ranges from {singles['dvd_score'].min():.1f} "
                    f"to {singles['dvd_score'].max():.1f}. At a 95 % level about {0.05 * len(singles):.1f} "
                    f"of {len(singles)} heads would be flagged by chance alone in the paired test.",
        "ch4_fresh": f"On {int(again['n_images'])} images of fresh seeds per condition, ablating head "
                     f"{found.strongest_label} gives {describe_effect(again, concept)}; the baseline there "
                     f"has {describe_effect(fresh_base, concept, change=False)}",
        "ch4_fig4": "Heads needed to bring DvD to half the baseline: " + "; ".join(
            f"{order}: {'none of the counts tested' if n is None else n}" for order, n in halves.items())
            + f". With every head ablated: {describe_effect(table.loc['all_heads'], concept)}.",
        "ch4_fig5": f"Removing the {concept}'s tokens from every head gives "
                    f"{describe_effect(table.loc['concept_tokens'], concept)}. In the baseline the "
                    f"{concept}'s tokens receive {pooled['concept_mass']:.1%} of all cross-attention "
                    f"(pooled over layers and heads), the prompt's words {pooled['word_mass']:.0%}, and the "
                    f"start, end and padding positions the remaining {1 - pooled['word_mass']:.0%}.",
        "ch4_report": "\n\n".join(report(found, concept)),
        "ch4_verdict": f"**{found.verdict.word}**",
        "ch4_raising": str(len(found.heads_raising)), "ch4_lowering": str(len(found.heads_lowering)),
        "ch4_largest": f"{found.largest_change:+.1f}",
    }


def save_tables(folder: str | Path, **tables: pd.DataFrame) -> None:
    """Each table as ``<name>.csv`` (``heads`` as parquet) in ``folder``, made if missing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        save_table(table, folder / (f"{name}.parquet" if name == "heads" else f"{name}.csv"))
