"""The probe itself: one prompt over many seeds, generated, judged and traced.

:func:`probe` takes a checked :class:`~dvdlib.probe.inputs.ProbeRequest` and a loaded pipeline
and judge, and runs the project's own steps in order:

1. :func:`dvdlib.generation.protocol.generate` makes one image per seed, with
   :func:`~dvdlib.generation.protocol.attention_hook` recording the attention of every step on
   the instruments of the pipeline's family (:mod:`dvdlib.attention.instruments`: a UNet's
   cross-attention, an MMDiT's joint attention);
2. :func:`dvdlib.scoring.dvd.score_folder` has a judge answer the five concept and five object
   questions per image, giving the paper's DvD per image; the images' table is chapter 3's
   (:func:`dvdlib.chapters.attention_saturation.run.image_rows`);
3. :func:`dvdlib.attention.image_shares.record_shares` reads the records back, and
   :func:`dvdlib.stats.bootstrap.step_intervals` gives each share's mean per step with an
   interval over seeds (one image per seed, as in chapter 3 the seed is the unit);
4. :func:`dvdlib.probe.summary.summarise` condenses it.

Files in the output folder: ``images/`` (the images, manifest and attention records),
``judged.csv`` (one row per image, the scorer's columns) and ``attention.csv`` (one row per
image and step); a rerun there with the same prompt, words and settings reuses what was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dvdlib.attention.image_shares import record_shares
from dvdlib.attention.instruments import instruments_for
from dvdlib.chapters.attention_saturation.run import image_rows
from dvdlib.generation.protocol import RECORD_FILE, attention_hook, generate
from dvdlib.probe.inputs import ProbeRequest
from dvdlib.probe.summary import CONFIDENCE, N_RESAMPLES, summarise
from dvdlib.scoring.dvd import score_folder
from dvdlib.stats.bootstrap import step_intervals
from dvdlib.store import check_run_settings, ensure_writable_dir, save_table

IMAGES, JUDGED, ATTENTION, SETTINGS = "images", "judged.csv", "attention.csv", "probe-settings.json"
SHARE_QUANTITIES = ("concept_word_share", "object_word_share", "pair_share")
SHARE_COLUMNS = ["image", "seed", "step", "concept_mass", "object_mass", *SHARE_QUANTITIES]


@dataclass
class ProbeResult:
    """The summary and the tables behind it."""

    summary: dict  # what --json prints
    images: pd.DataFrame  # one row per image: seed, file, yes counts, DvD, presence
    shares: pd.DataFrame  # one row per image and step: masses and shares
    steps: pd.DataFrame  # one row per step and quantity: mean and interval over images
    image_dir: Path


def probe(pipe, judge, request: ProbeRequest, out_dir: str | Path, *, model: str, steps: int,
          guidance: float, size: int | None = None, batch_size: int = 1,
          confidence: float = CONFIDENCE, progress: bool = False) -> ProbeResult:
    """Generate the request's prompt over its seeds with ``pipe``, judge, read the attention.

    ``out_dir`` receives ``images/``, ``judged.csv`` and ``attention.csv`` (see the module notes).
    """
    out_dir = ensure_writable_dir(out_dir)
    instruments = instruments_for(pipe)  # a family without instruments is refused here
    # Each word's text keys (in every tokenization the keys hold: SD3's CLIP and T5), found
    # before anything is made: a word missing from one of them stops here.
    positions = instruments.token_groups(instruments.prompt_tokens(request.prompt),
                                         {"concept": request.concept, "object": request.object})
    check_run_settings(out_dir / SETTINGS, {"prompt": request.prompt, "concept": request.concept,
                                            "object": request.object, "category": request.category},
                       f"the probe results in {out_dir}")
    prompts = pd.DataFrame([(1, request.category, request.concept, request.object, request.prompt)],
                           columns=["case_num", "category", "concept", "object", "prompt"])
    seeds = list(request.seeds)
    image_dir = out_dir / IMAGES
    hook = attention_hook()  # the record's guidance rows are told from the call's guidance
    manifest = generate(pipe, prompts, seeds, image_dir, model=model, steps=steps,
                        guidance=guidance, height=size, width=size, batch_size=batch_size,
                        hook=hook, progress=progress)
    judged = score_folder(image_dir, prompts, judge, out_dir / JUDGED, progress=progress)
    judged = judged[judged["seed"].isin(seeds)]  # the folder may hold other runs' seeds
    save_table(judged, out_dir / JUDGED)
    images = probe_images(manifest, judged, prompts, seeds)
    shares = record_shares(images, image_dir, RECORD_FILE, instruments.tokenizer,
                           ["image", "seed"]).shares
    shares = shares.rename(columns={"word_share": "concept_word_share"})[SHARE_COLUMNS]
    shares = shares.sort_values(["image", "step"]).reset_index(drop=True)
    save_table(shares, out_dir / ATTENTION)
    step_table = share_intervals(shares, confidence)
    summary = summarise(images, shares, step_table, threshold=request.threshold,
                        confidence=confidence, image_folder=IMAGES)
    # A word's attention is the sum over its tokens: a five-token concept against a one-token
    # object holds 5/6 of the pair when attention is spread evenly. The report shows this mark.
    tokens = {side: len(positions[side]) for side in ("concept", "object")}
    summary["attention"]["tokens"] = tokens
    summary["attention"]["even_pair_share"] = tokens["concept"] / sum(tokens.values())
    summary = {"prompt": request.prompt, "concept": request.concept, "object": request.object,
               "category": request.category, "model": model, "judge": judge.name, "steps": steps,
               "guidance": float(guidance), "seeds": seeds, **summary}
    return ProbeResult(summary, images, shares, step_table, image_dir)


def probe_images(manifest: pd.DataFrame, judged: pd.DataFrame, prompts: pd.DataFrame,
                 seeds: list[int]) -> pd.DataFrame:
    """One row per image of ``seeds``, in their order, numbered from 0 (``image``)."""
    manifest = manifest[manifest["seed"].astype(int).isin(seeds)]
    images = image_rows(manifest, judged, prompts)
    images = images.set_index("seed").loc[seeds].reset_index()
    images.insert(0, "image", range(len(images)))
    return images


def share_intervals(shares: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Per step and quantity (:data:`SHARE_QUANTITIES`): the mean over images and its interval
    (:func:`dvdlib.stats.bootstrap.step_intervals`: whole seeds resampled, one image each)."""
    tables = [step_intervals(shares, quantity, unit="seed", n_resamples=N_RESAMPLES,
                             confidence=confidence).assign(quantity=quantity)
              for quantity in SHARE_QUANTITIES]
    table = pd.concat(tables, ignore_index=True).sort_values("step", kind="stable")
    columns = ["step", "quantity", "mean", "ci_low", "ci_high", "n_images"]
    return table[columns].reset_index(drop=True)
