"""``dvd probe``: why did my object vanish? One prompt over many seeds, judged and traced.

A practitioner's question about one prompt ("Neuschwanstein Castle Coaster" gives castles and no
coaster) answered with the project's own steps, in order:

1. :func:`dvdlib.generation.protocol.generate` makes one image per seed, with :func:`~dvdlib.generation.protocol.
   attention_hook` recording the cross-attention of every step (:mod:`dvdlib.attention.recorder`);
2. :func:`dvdlib.scoring.dvd.score_folder` has a judge answer the five concept and five object questions
   per image, giving the paper's DvD per image;
3. :func:`dvdlib.attention.shares.concept_share` and :func:`~dvdlib.attention.shares.saturation_step` read the records.

What it reports (the definitions beyond the paper's DvD are ours):

- **presence** of each side: an image shows the concept (the object) when the judge says yes to
  at least :data:`~dvdlib.scoring.dvd.PRESENT_YES` of its five questions (a majority); the rate is over
  the seeds;
- **dominance** = concept presence rate - object presence rate (the mean over images of
  present(concept) - present(object), in [-1, 1]), with a bootstrap interval over images. The
  verdict is ``concept`` when the interval lies above 0, ``object`` when below, else
  ``balanced``;
- **DvD**: the mean of the paper's per-image score c x (5 - n) / 25 x 100, with its interval;
- **attention**: per step, the concept's and the object's share of the word tokens' attention
  and the concept's pair share c / (c + o), each with an interval over images; the saturation
  step is the first step from which the mean pair share stays at or above ``threshold`` until
  the last step (``dvdlib.attention.shares.saturation_step``), and how many images saturate on their own.
  A word's attention sums over its tokens, so the report also gives the pair share that even
  attention per token would give (``even_pair_share``: 5/6 for a five-token concept against a
  one-token object), the mark against which a share means dominance.

Intervals are percentile bootstraps over images (:func:`dvdlib.stats.bootstrap.bootstrap_ci`, seeded).

Files (``--out DIR``; a rerun with the same settings resumes, other settings are refused):
``images/`` (the images, manifest and attention records), ``judged.csv`` (one row per image,
the scorer's columns), ``attention.csv`` (one row per image and step), ``probe.png`` (the image
grid and the per-step shares) and ``probe.json`` (the summary printed by ``--json``).
"""

from __future__ import annotations

import inspect
import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure  # no pyplot: no global figure state
from matplotlib.ticker import MaxNLocator
from PIL import Image

from dvdlib.prompts.prompt_sets import VOCABULARY
from dvdlib.prompts.prompt_sets import seeds as bench_seeds
from dvdlib.attention.shares import concept_share, saturation_step
from dvdlib.generation.protocol import RECORD_FILE, attention_hook, generate
from dvdlib.scoring.judges import load_judge
from dvdlib.models.loading import PAPER_GUIDANCE, PAPER_STEPS, load_pipeline
from dvdlib.models.spec import parse_model
from dvdlib.attention.record import AttentionRecord
from dvdlib.scoring.dvd import PRESENT_YES, score_folder
from dvdlib.stats.bootstrap import bootstrap_ci
from dvdlib.store import (StoreError, atomic_write_bytes, atomic_write_json, check_run_settings,
                          check_writable_dir, ensure_writable_dir, no_new_folders_on_error,
                          save_table)
from dvdlib.prompts.tokenizer import clip_tokenizer
from dvdlib.attention.token_positions import PhraseNotFoundError, token_groups
from dvdlib.toyworld.world import CATEGORY, CONCEPTS, OBJECTS, unknown_words
from dvdlib.usage import UsageError, seed_count, seed_list

MAX_SEED_COUNT = 10_000  # distinct values of the paper's seed draw, randint(1, 10000)
DEFAULT_THRESHOLD = 0.6
CONFIDENCE = 0.95
N_RESAMPLES = 10_000
GRID_LIMIT = 24  # images shown in the figure's grid
VERDICTS = ("concept", "object", "balanced")
TOY_CATEGORY = CATEGORY  # the question category of the toy world's prompts
IMAGES, JUDGED, ATTENTION, FIGURE, SUMMARY, SETTINGS = (
    "images", "judged.csv", "attention.csv", "probe.png", "probe.json", "probe-settings.json")
SHARE_QUANTITIES = ("concept_word_share", "object_word_share", "pair_share")


class ProbeInputError(ValueError):
    """A prompt, word or seed list that cannot be probed; the message names it."""


# --------------------------------------------------------------------------------------------
# Checking the input (before any model loads)


def probe_seeds(count: int) -> list[int]:
    """``count`` seeds as every chapter takes them (:func:`dvdlib.prompts.prompt_sets.seeds`)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEED_COUNT:
        raise ProbeInputError(f"the number of seeds must be a whole number in 1..{MAX_SEED_COUNT}, "
                              f"got {count!r}")
    return bench_seeds(count)


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words as written, without the punctuation around them."""
    words = [word.strip(".,;:!?\"'()[]{}") for word in prompt.split()]
    return [word for word in words if word]


def check_prompt(prompt: str, tokenizer) -> int:
    """The prompt's token count (start and end tokens included) if the text encoder reads it whole."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ProbeInputError(f"the prompt {prompt!r} is empty; give the prompt to probe, e.g. "
                              f"\"Neuschwanstein Castle Coaster\"")
    limit = tokenizer.model_max_length
    ids = tokenizer(prompt, truncation=False, verbose=False).input_ids  # [start, words..., end]
    if len(ids) > limit:
        # CLIP marks a word's last token with </w>: the cut tokens read back as words.
        cut = "".join(tokenizer.convert_ids_to_tokens(ids[limit - 1:-1])).replace("</w>", " ").strip()
        raise ProbeInputError(
            f"the prompt is {len(ids)} tokens long, start and end tokens included; the text "
            f"encoder reads at most {limit}, so it would never see {cut!r}. Shorten the "
            f"prompt by {len(ids) - limit} token(s)"
        )
    return len(ids)


def check_words(prompt: str, concept: str, object_word: str, tokenizer) -> dict[str, list[int]]:
    """The token positions of the concept and the object in the prompt (both whole words of it)."""
    for option, word in (("--concept", concept), ("--object", object_word)):
        if not isinstance(word, str) or not word.strip():
            raise ProbeInputError(f"{option} is empty; give a word of the prompt, one of: "
                                  f"{', '.join(prompt_words(prompt))}")
    for option, word in (("--concept", concept), ("--object", object_word)):
        try:
            token_groups(tokenizer, prompt, {"word": word})
        except PhraseNotFoundError:
            raise ProbeInputError(
                f"{option} {word!r} is not in the prompt {prompt!r}; the prompt's words are: "
                f"{', '.join(prompt_words(prompt))} (a word matches whole words, case aside: "
                f"'mug' does not match 'mugs')"
            ) from None
    try:
        return token_groups(tokenizer, prompt, {"concept": concept, "object": object_word})
    except ValueError:
        raise ProbeInputError(f"--concept {concept!r} and --object {object_word!r} share words of the "
                              f"prompt; give two different parts of {prompt!r}") from None


def infer_category(concept: str, judge: str, toy_concepts: Sequence[str] = CONCEPTS) -> str:
    """The question set for ``concept``: its DominanceBench category, or ``print`` (a toy-world
    concept, or any concept the toy judge reads)."""
    name = " ".join(concept.split()).casefold()
    for category, concepts in VOCABULARY.items():
        if name in concepts:
            return category
    if name in toy_concepts or judge == "toy":
        return TOY_CATEGORY
    raise ProbeInputError(
        f"cannot tell which questions fit the concept {concept!r}: it is none of the benchmark's "
        f"artists, landmarks or characters nor a toy-world concept ({', '.join(toy_concepts)}); "
        f"pass --category (accepted: artist, landmark, character, {TOY_CATEGORY})"
    )


def check_toy_words(concept: str, object_word: str) -> None:
    """Refuse a concept or object the toy judge does not know, naming what it knows."""
    strangers = unknown_words(concept, object_word)
    if strangers:
        raise ProbeInputError(
            f"the toy judge sees only the concepts {', '.join(CONCEPTS)} and the objects "
            f"{', '.join(OBJECTS)}; {' and '.join(strangers)} "
            f"{'is' if len(strangers) == 1 else 'are'} not among them: probe the toy world's own "
            f"words (e.g. 'sunset coaster'), or choose --judge clip or vlm")


# --------------------------------------------------------------------------------------------
# The probe


@dataclass
class ProbeResult:
    """The summary and the tables behind it."""

    summary: dict  # what --json prints
    images: pd.DataFrame  # one row per image: seed, file, yes counts, DvD, presence
    shares: pd.DataFrame  # one row per image and step: masses and shares
    steps: pd.DataFrame  # one row per step and quantity: mean and interval over images
    image_dir: Path


def probe(pipe, judge, prompt: str, concept: str, object_word: str, seeds: Sequence[int],
          out_dir: str | Path, *, model: str, category: str, steps: int, guidance: float,
          size: int | None = None, batch_size: int = 1, threshold: float = DEFAULT_THRESHOLD,
          confidence: float = CONFIDENCE, progress: bool = False) -> ProbeResult:
    """Generate ``prompt`` over ``seeds`` with ``pipe``, judge, read the attention; see the notes.

    ``out_dir`` receives ``images/``, ``judged.csv`` and ``attention.csv``; a rerun there with the
    same prompt, words and settings reuses what was made.
    """

    if not 0 < threshold < 1:
        raise ProbeInputError(f"threshold must be between 0 and 1, got {threshold!r}")
    check_prompt(prompt, pipe.tokenizer)
    positions = check_words(prompt, concept, object_word, pipe.tokenizer)
    out_dir = ensure_writable_dir(out_dir)
    check_run_settings(out_dir / SETTINGS, {"prompt": prompt, "concept": concept,
                                            "object": object_word, "category": category},
                       f"the probe results in {out_dir}")
    prompts = pd.DataFrame([(1, category, concept, object_word, prompt)],
                           columns=["case_num", "category", "concept", "object", "prompt"])
    image_dir = out_dir / IMAGES
    manifest = generate(pipe, prompts, seeds, image_dir, model=model, steps=steps, guidance=guidance,
                        height=size, width=size, batch_size=batch_size,
                        hook=attention_hook(classifier_free_guidance=guidance > 1), progress=progress)
    judged = score_folder(image_dir, prompts, judge, out_dir / JUDGED, progress=progress)
    judged = judged[judged["seed"].isin(list(seeds))]  # the folder may hold other runs' seeds
    save_table(judged, out_dir / JUDGED)
    images = image_rows(manifest, judged, seeds)
    shares = record_shares(images, image_dir, pipe.tokenizer, concept, object_word)
    save_table(shares, out_dir / ATTENTION)
    step_table = step_intervals(shares, confidence)
    summary = summarise(images, shares, step_table, threshold=threshold, confidence=confidence)
    # A word's attention is the sum over its tokens: a five-token concept against a one-token
    # object holds 5/6 of the pair when attention is spread evenly. The report shows this mark.
    tokens = {side: len(positions[side]) for side in ("concept", "object")}
    summary["attention"]["tokens"] = tokens
    summary["attention"]["even_pair_share"] = tokens["concept"] / (tokens["concept"] + tokens["object"])
    summary = {"prompt": prompt, "concept": concept, "object": object_word, "category": category,
               "model": model, "judge": judge.name, "steps": steps, "guidance": float(guidance),
               "seeds": [int(s) for s in seeds], **summary}
    return ProbeResult(summary, images, shares, step_table, image_dir)


def image_rows(manifest: pd.DataFrame, judged: pd.DataFrame, seeds: Sequence[int]) -> pd.DataFrame:
    """One row per image, in the order of ``seeds``: the manifest's file and record, the judge's counts."""
    counts = judged[["seed", "concept_yes", "object_yes", "dvd_score"]].astype({"seed": int})
    table = pd.DataFrame({"seed": [int(s) for s in seeds]})
    table = table.merge(manifest[["seed", "file", "record_dir", "record_image"]].astype({"seed": int}),
                        on="seed", how="left", validate="one_to_one")
    table = table.merge(counts, on="seed", how="left", validate="one_to_one")
    if table["dvd_score"].isna().any():
        missing = table.loc[table["dvd_score"].isna(), "file"].tolist()
        raise RuntimeError(f"the judge left images without answers: {missing[:3]}")
    table = table.rename(columns={"dvd_score": "dvd"})
    table["concept_present"] = table["concept_yes"] >= PRESENT_YES
    table["object_present"] = table["object_yes"] >= PRESENT_YES
    table.insert(0, "image", range(len(table)))
    return table


def record_shares(images: pd.DataFrame, image_dir: Path, tokenizer, concept: str,
                  object_word: str) -> pd.DataFrame:
    """Per image and step: the two words' attention mass, their word shares and the pair share."""

    tables = []
    for record_dir, rows in images.groupby("record_dir", sort=True):
        if not record_dir:
            raise RuntimeError(f"images {rows['file'].tolist()[:3]} have no attention record")
        record = AttentionRecord.load(image_dir / record_dir / RECORD_FILE)
        groups = record.group_frame(tokenizer, {"concept": concept, "object": object_word})
        shares = concept_share(groups, "concept", "object")  # [image, step] rows
        words = groups[groups["group"] == "object"][["image", "step", "word_share"]]
        shares = shares.merge(words.rename(columns={"word_share": "object_word_share"}),
                              on=["image", "step"], validate="one_to_one")
        # The record numbers the images of its pipeline call; the table numbers the probe's images.
        ours = rows.astype({"record_image": int}).set_index("record_image")[["image", "seed"]]
        shares = ours.join(shares.rename(columns={"image": "record_image"}).set_index("record_image"),
                           how="inner").reset_index(drop=True)
        tables.append(shares)
    table = pd.concat(tables, ignore_index=True)
    table = table.rename(columns={"word_share": "concept_word_share"})
    columns = ["image", "seed", "step", "concept_mass", "object_mass", "pair_share",
               "concept_word_share", "object_word_share"]
    return table[columns].sort_values(["image", "step"]).reset_index(drop=True)


def step_intervals(shares: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per step and quantity (:data:`SHARE_QUANTITIES`): mean over images and its interval."""

    rows = []
    for step, group in shares.groupby("step", sort=True):
        for quantity in SHARE_QUANTITIES:
            values = group[quantity].dropna().to_numpy()
            low, high = bootstrap_ci(values, n_resamples=N_RESAMPLES, confidence=confidence)
            rows.append({"step": int(step), "quantity": quantity, "mean": float(values.mean()),
                         "ci_low": low, "ci_high": high, "n_images": len(values)})
    return pd.DataFrame(rows)


def _estimate(values, confidence: float) -> dict:

    low, high = bootstrap_ci(values, n_resamples=N_RESAMPLES, confidence=confidence)
    return {"mean": float(sum(values) / len(values)), "ci_low": low, "ci_high": high}


def verdict(dominance: dict) -> str:
    """``concept`` when the dominance interval lies above 0, ``object`` below, else ``balanced``."""
    if dominance["ci_low"] > 0:
        return "concept"
    if dominance["ci_high"] < 0:
        return "object"
    return "balanced"


def summarise(images: pd.DataFrame, shares: pd.DataFrame, steps: pd.DataFrame, *,
              threshold: float = DEFAULT_THRESHOLD, confidence: float = CONFIDENCE) -> dict:
    """The probe's numbers (the module notes define them), JSON-ready."""

    concept = images["concept_present"].astype(float).to_numpy()
    obj = images["object_present"].astype(float).to_numpy()
    dominance = _estimate(concept - obj, confidence)
    pair = steps[steps["quantity"] == "pair_share"].sort_values("step")
    mean_curve = pd.DataFrame({"image": 0, "step": pair["step"], "pair_share": pair["mean"]})
    pooled = saturation_step(mean_curve, threshold).iloc[0]
    per_image = saturation_step(shares[["image", "step", "pair_share"]], threshold)
    saturated = per_image["saturation_step"].dropna()

    def at(row) -> dict:
        return {"mean": float(row["mean"]), "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"])}

    return {
        "n_images": len(images),
        "dominates": verdict(dominance),
        "dominance": dominance,
        "dvd": _estimate(images["dvd"].to_numpy(dtype=float), confidence),
        "concept_presence": {"count": int(concept.sum()), **_estimate(concept, confidence)},
        "object_presence": {"count": int(obj.sum()), **_estimate(obj, confidence)},
        "concept_yes_mean": float(images["concept_yes"].mean()),
        "object_yes_mean": float(images["object_yes"].mean()),
        "present_yes": PRESENT_YES,
        "confidence": confidence,
        "attention": {
            "threshold": threshold,
            "num_steps": int(pooled["num_steps"]),
            "saturation_step": None if pd.isna(pooled["saturation_step"]) else int(pooled["saturation_step"]),
            "images_saturated": int(len(saturated)),
            "median_image_saturation_step": float(saturated.median()) if len(saturated) else None,
            "first_step_pair_share": at(pair.iloc[0]),
            "last_step_pair_share": at(pair.iloc[-1]),
        },
        "images": [{"seed": int(r.seed), "file": f"{IMAGES}/{r.file}", "concept_yes": int(r.concept_yes),
                    "object_yes": int(r.object_yes), "dvd": float(r.dvd)}
                   for r in images.itertuples(index=False)],
    }


# --------------------------------------------------------------------------------------------
# The figure


def probe_figure(result: ProbeResult):
    """The image grid (seed, yes counts) beside the per-step shares with their intervals."""

    summary, steps = result.summary, result.steps
    shown = result.images.head(GRID_LIMIT)
    columns = min(5, len(shown))
    grid_rows = -(-len(shown) // columns)
    figure = Figure(figsize=(4 + 1.6 * columns, max(4.2, 1.7 * grid_rows + 0.8)), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1.6 * columns, 4.4])
    axes = left.subplots(grid_rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown.itertuples(index=False)):
        with Image.open(result.image_dir / row.file) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title(f"seed {row.seed}\nc={row.concept_yes} n={row.object_yes}", fontsize=8)
    more = f" (first {len(shown)} of {len(result.images)})" if len(result.images) > len(shown) else ""
    left.suptitle(f"{summary['prompt']!r}{more}\nc, n: yes answers of 5 on concept, object", fontsize=9)

    share_ax, pair_ax = right.subplots(2, 1, sharex=True)
    labels = {"concept_word_share": f"concept ({summary['concept']})",
              "object_word_share": f"object ({summary['object']})"}
    colours = dict(zip(labels.values(), sns.color_palette(n_colors=len(labels))))
    words = steps[steps["quantity"].isin(list(labels))].assign(word=lambda t: t["quantity"].map(labels))
    sns.lineplot(data=words, x="step", y="mean", hue="word", palette=colours, ax=share_ax,
                 marker="o", markersize=3)
    for word, part in words.groupby("word"):
        share_ax.fill_between(part["step"], part["ci_low"], part["ci_high"], alpha=0.25,
                              color=colours[word], linewidth=0)
    share_ax.set_ylabel("share of word-token\nattention")
    share_ax.legend(fontsize=8, title=None)
    pair = steps[steps["quantity"] == "pair_share"]
    sns.lineplot(data=pair, x="step", y="mean", ax=pair_ax, color="black", marker="o", markersize=3)
    pair_ax.fill_between(pair["step"], pair["ci_low"], pair["ci_high"], alpha=0.2, color="black",
                         linewidth=0)
    attention = summary["attention"]
    pair_ax.axhline(attention["threshold"], color="grey", linestyle="--", linewidth=1,
                    label=f"saturation threshold {attention['threshold']:.2f}")
    if "even_pair_share" in attention:
        pair_ax.axhline(attention["even_pair_share"], color="grey", linestyle=":", linewidth=1,
                        label="even attention per token")
    if attention["saturation_step"] is not None:
        pair_ax.axvline(attention["saturation_step"], color="tab:red", linewidth=1,
                        label=f"saturated from step {attention['saturation_step']}")
    pair_ax.legend(fontsize=7)
    pair_ax.set_ylabel("concept / (concept + object)")
    pair_ax.set_xlabel("denoising step (0 = noisiest)")
    pair_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.suptitle(f"dominates: {summary['dominates']}; mean and {summary['confidence']:.0%} "
                   f"interval over {summary['n_images']} images", fontsize=9)
    return figure


def save_figure(figure, path: Path) -> Path:

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())


# --------------------------------------------------------------------------------------------
# The command


def _check_numbers(args) -> None:
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ProbeInputError(f"{option} must be at least 1, got {value}")
    if args.size is not None and (args.size < 8 or args.size % 8):
        raise ProbeInputError(f"--size {args.size}: must be a positive multiple of 8")
    if not 0 < args.threshold < 1:
        raise ProbeInputError(f"--threshold {args.threshold}: must be between 0 and 1")


def _call_default(pipe, name: str, fallback):
    """The default of one of the pipeline's call arguments (its own steps and guidance)."""

    parameter = inspect.signature(type(pipe).__call__).parameters.get(name)
    default = None if parameter is None else parameter.default
    return default if isinstance(default, (int, float)) and not isinstance(default, bool) else fallback


def run_command(args) -> int:
    """``dvd probe`` once its arguments are parsed (:mod:`dvdlib.book.commands.probe`)."""
    if args.threshold is None:
        args.threshold = DEFAULT_THRESHOLD

    # Everything the command line alone can tell is checked before a model loads, with the CLIP
    # tokenizer that SD 1.x, SD 2.x and the toy world share; the model's own checks it again.
    tokenizer = clip_tokenizer()
    check_prompt(args.prompt, tokenizer)
    check_words(args.prompt, args.concept, args.object_word, tokenizer)
    seeds = seed_list(args.seed_list) if args.seed_list is not None else probe_seeds(seed_count(args.seeds))
    _check_numbers(args)
    # Judges and question templates take the words in lower case, as the prompt sets write them.
    concept, object_word = (" ".join(w.split()).casefold() for w in (args.concept, args.object_word))


    try:
        is_toy = parse_model(args.model).is_toy
    except ValueError as err:
        raise UsageError(f"--model: {err}") from None
    judge_kind = args.judge or ("toy" if is_toy else "vlm")
    if judge_kind == "toy":
        check_toy_words(concept, object_word)
    category = args.category or infer_category(concept, judge_kind)
    out = check_writable_dir(args.out) if args.out else None  # before any model loads
    work = out or Path(tempfile.mkdtemp(prefix="dvd-probe-"))
    try:
        with no_new_folders_on_error(work):
            result = _probe_into(args, work, out, judge_kind, concept, object_word, seeds, category)
    except StoreError as err:
        raise UsageError(str(err)) from None
    finally:
        if out is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result.summary, indent=1, ensure_ascii=False))
    else:
        print(report(result.summary))
    return 0


def _probe_into(args, work: Path, out: Path | None, judge_kind: str, concept: str, object_word: str,
                seeds: list[int], category: str) -> ProbeResult:
    """Load the judge and the model, probe into ``work``, save the figure and summary in ``out``."""

    judge = load_judge(judge_kind, args.judge_model, args.device, None)  # weights often missing: first
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    steps = args.steps or _call_default(pipe, "num_inference_steps", PAPER_STEPS)
    guidance = args.guidance if args.guidance is not None else _call_default(
        pipe, "guidance_scale", PAPER_GUIDANCE)
    result = probe(pipe, judge, args.prompt, concept, object_word, seeds, work,
                   model=args.model, category=category, steps=steps, guidance=guidance,
                   size=args.size, batch_size=args.batch_size, threshold=args.threshold,
                   progress=not args.no_progress)
    files = None
    if out is not None:
        save_figure(probe_figure(result), out / FIGURE)
        files = {name: str(out / name) for name in (IMAGES, JUDGED, ATTENTION, FIGURE, SUMMARY)}
    result.summary["files"] = files
    if out is not None:
        atomic_write_json(out / SUMMARY, result.summary)
    return result


def _interval(estimate: dict, digits: int = 2, scale: float = 1.0) -> str:
    return (f"{estimate['mean'] * scale:.{digits}f} ({estimate['ci_low'] * scale:.{digits}f} to "
            f"{estimate['ci_high'] * scale:.{digits}f})")


def report(summary: dict) -> str:
    """The summary as the lines ``dvd probe`` prints."""
    n = summary["n_images"]
    attention = summary["attention"]
    side = {"concept": f"the concept, {summary['concept']!r}", "object": f"the object, {summary['object']!r}",
            "balanced": "neither: balanced (the dominance interval includes 0)"}[summary["dominates"]]
    if attention["saturation_step"] is None:
        saturation = (f"never: the mean share ends below {attention['threshold']:.2f} "
                      f"({attention['last_step_pair_share']['mean']:.2f} at the last step)")
    else:
        saturation = (f"step {attention['saturation_step']} of {attention['num_steps']} (mean share "
                      f">= {attention['threshold']:.2f} from there on; step 0 is the noisiest)")
    confidence = f"{summary['confidence']:.0%}"
    lines = [
        f"{summary['prompt']!r}: {n} image(s) from {summary['model']}, judged by {summary['judge']}",
        f"  dominates         {side}",
        f"  DvD               {_interval(summary['dvd'], 1)}   (0-100; {confidence} interval)",
        f"  concept present   {summary['concept_presence']['count']}/{n} images, rate "
        f"{_interval(summary['concept_presence'])}",
        f"  object present    {summary['object_presence']['count']}/{n} images, rate "
        f"{_interval(summary['object_presence'])}",
        f"  dominance         {_interval(summary['dominance'])}   (concept rate - object rate)",
        f"  attention         concept / (concept + object): {_interval(attention['first_step_pair_share'])} "
        f"at step 0, {_interval(attention['last_step_pair_share'])} at the last",
        f"                    (even attention per token would give {attention['even_pair_share']:.2f}: "
        f"{attention['tokens']['concept']} concept token(s), {attention['tokens']['object']} object token(s))",
        f"  saturation        {saturation}; {attention['images_saturated']}/{n} images saturate "
        f"on their own",
    ]
    if n < 5:
        lines.append(f"  note              {n} seed(s) give rough intervals; 10 or more are better")
    if summary.get("files"):
        lines.append(f"  files             {summary['files'][FIGURE]} (figure), {summary['files'][SUMMARY]}")
    return "\n".join(lines)
