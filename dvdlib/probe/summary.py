"""What a probe found, as numbers (``--json``) and as the lines ``dvd probe`` prints.

The definitions beyond the paper's DvD are ours:

- **presence** of each side: an image shows the concept (the object) when the judge says yes to
  at least :data:`~dvdlib.scoring.dvd.PRESENT_YES` of its five questions (a majority); the rate
  is over the seeds;
- **dominance** = concept presence rate - object presence rate (the mean over images of
  present(concept) - present(object), in [-1, 1]), with a bootstrap interval over images;
  :func:`verdict` is ``concept`` when the interval lies above 0, ``object`` when below, else
  ``balanced``;
- **DvD**: the mean of the paper's per-image score c x (5 - n) / 25 x 100, with its interval;
- **attention**: per step, the concept's and the object's share of the word tokens' attention
  and the concept's pair share c / (c + o), each with an interval over images; the saturation
  step is the first step from which the mean pair share stays at or above the threshold until
  the last step (:func:`dvdlib.attention.shares.saturation_step`), and how many images saturate
  on their own. A word's attention sums over its tokens, so the probe also gives the pair share
  that even attention per token would give (``even_pair_share``: 5/6 for a five-token concept
  against a one-token object), the mark against which a share means dominance.

Intervals are percentile bootstraps over images (:mod:`dvdlib.stats.bootstrap`, seeded), and
each image is one seed, so they resample seeds, the unit chapter 3 resamples too; they are
written by :meth:`dvdlib.stats.verdicts.Interval.text`.

- :func:`summarise`: the numbers, JSON-ready; :func:`report`: the printed lines;
  :func:`estimate`, :func:`interval_text`: one mean with its interval, and as it is printed.
"""

from __future__ import annotations

import pandas as pd

from dvdlib.attention.shares import saturation_step
from dvdlib.probe.figure import FIGURE
from dvdlib.scoring.dvd import PRESENT_YES
from dvdlib.stats.bootstrap import mean_interval
from dvdlib.stats.verdicts import Interval

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
SUMMARY = "probe.json"  # the summary's file in the output folder


def estimate(values, confidence: float) -> dict:
    """The mean of ``values`` with its percentile bootstrap interval over them (seeded)."""
    mean, low, high = mean_interval(values, N_RESAMPLES, confidence=confidence)
    return {"mean": mean, "ci_low": low, "ci_high": high}


def verdict(dominance: dict) -> str:
    """``concept`` when the dominance interval lies above 0, ``object`` below, else ``balanced``."""
    if dominance["ci_low"] > 0:
        return "concept"
    if dominance["ci_high"] < 0:
        return "object"
    return "balanced"


def summarise(images: pd.DataFrame, shares: pd.DataFrame, steps: pd.DataFrame, *, threshold: float,
              image_folder: str, confidence: float = CONFIDENCE) -> dict:
    """The probe's numbers (the module notes define them), JSON-ready; each image's file is
    named inside the output folder, under ``image_folder``."""
    concept = images["concept_present"].astype(float).to_numpy()
    obj = images["object_present"].astype(float).to_numpy()
    dominance = estimate(concept - obj, confidence)
    pair = steps[steps["quantity"] == "pair_share"].sort_values("step")
    mean_curve = pd.DataFrame({"image": 0, "step": pair["step"], "pair_share": pair["mean"]})
    pooled = saturation_step(mean_curve, threshold).iloc[0]
    per_image = saturation_step(shares[["image", "step", "pair_share"]], threshold)
    saturated = per_image["saturation_step"].dropna()

    def at(row) -> dict:
        return {"mean": float(row["mean"]), "ci_low": float(row["ci_low"]),
                "ci_high": float(row["ci_high"])}

    return {
        "n_images": len(images),
        "dominates": verdict(dominance),
        "dominance": dominance,
        "dvd": estimate(images["dvd_score"].to_numpy(dtype=float), confidence),
        "concept_presence": {"count": int(concept.sum()), **estimate(concept, confidence)},
        "object_presence": {"count": int(obj.sum()), **estimate(obj, confidence)},
        "concept_yes_mean": float(images["concept_yes"].mean()),
        "object_yes_mean": float(images["object_yes"].mean()),
        "present_yes": PRESENT_YES,
        "confidence": confidence,
        "attention": {
            "threshold": threshold,
            "num_steps": int(pooled["num_steps"]),
            "saturation_step": None if pd.isna(pooled["saturation_step"])
            else int(pooled["saturation_step"]),
            "images_saturated": int(len(saturated)),
            "median_image_saturation_step": float(saturated.median()) if len(saturated) else None,
            "first_step_pair_share": at(pair.iloc[0]),
            "last_step_pair_share": at(pair.iloc[-1]),
        },
        "images": [{"seed": int(r.seed), "file": f"{image_folder}/{r.file}",
                    "concept_yes": int(r.concept_yes), "object_yes": int(r.object_yes),
                    "dvd": float(r.dvd_score)} for r in images.itertuples(index=False)],
    }


def interval_text(value: dict, digits: int = 2) -> str:
    """An :func:`estimate` as the report writes it."""
    return Interval(value["mean"], value["ci_low"], value["ci_high"]).text(digits)


def report(summary: dict) -> str:
    """The summary as the lines ``dvd probe`` prints."""
    n = summary["n_images"]
    attention = summary["attention"]
    side = {"concept": f"the concept, {summary['concept']!r}",
            "object": f"the object, {summary['object']!r}",
            "balanced": "neither: balanced (the dominance interval includes 0)"}[summary["dominates"]]
    if attention["saturation_step"] is None:
        saturation = (f"never: the mean share ends below {attention['threshold']:.2f} "
                      f"({attention['last_step_pair_share']['mean']:.2f} at the last step)")
    else:
        saturation = (f"step {attention['saturation_step']} of {attention['num_steps']} (mean share "
                      f">= {attention['threshold']:.2f} from there on; step 0 is the noisiest)")
    confidence = f"{summary['confidence']:.0%}"
    tokens = attention["tokens"]
    lines = [
        f"{summary['prompt']!r}: {n} image(s) from {summary['model']}, judged by {summary['judge']}",
        f"  dominates         {side}",
        f"  DvD               {interval_text(summary['dvd'], 1)}   (0-100; {confidence} interval)",
        f"  concept present   {summary['concept_presence']['count']}/{n} images, rate "
        f"{interval_text(summary['concept_presence'])}",
        f"  object present    {summary['object_presence']['count']}/{n} images, rate "
        f"{interval_text(summary['object_presence'])}",
        f"  dominance         {interval_text(summary['dominance'])}   (concept rate - object rate)",
        f"  attention         concept / (concept + object): "
        f"{interval_text(attention['first_step_pair_share'])} at step 0, "
        f"{interval_text(attention['last_step_pair_share'])} at the last",
        f"                    (even attention per token would give "
        f"{attention['even_pair_share']:.2f}: {tokens['concept']} concept token(s), "
        f"{tokens['object']} object token(s))",
        f"  saturation        {saturation}; {attention['images_saturated']}/{n} images saturate "
        f"on their own",
    ]
    if n < 5:
        lines.append(f"  note              {n} seed(s) give rough intervals; 10 or more are better")
    if summary.get("files"):
        lines.append(f"  files             {summary['files'][FIGURE]} (figure), "
                     f"{summary['files'][SUMMARY]}")
    return "\n".join(lines)
