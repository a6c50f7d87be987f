"""Chapter 2's causal test summarised: every measure per model and group with two-level intervals,
the difference K = 1 - unlimited, and the chapter's numbers.

- :data:`PAIR_MEASURES`, :data:`ALONE_MEASURES`, :data:`MEASURES`: what is measured of the pair
  images and of the controls.
- :func:`measure_cube`: one condition's ``[model, object, seed]`` values of a measure.
- :func:`summarise`: DvD, concept and object presence, what an absent object shows, "frame
  filled" and the found-alone rates per condition, group of runs (one run, or an arm's runs
  pooled) and set of objects; :func:`differences`: one group minus another. Intervals from
  :func:`dvdlib.stats.bootstrap.two_level_interval` (models within a group, then seeds, one seed
  draw shared by every model because the same seeds made every model's images; the objects are
  the world's whole set and stay fixed).
- :func:`chapter_numbers`: the headline numbers of the default condition and the intervals the
  chapter's text quotes, each written by :meth:`dvdlib.stats.verdicts.Interval.text`;
  :func:`condition_table`: the difference in every other condition; :func:`dvd_by_design`: one
  run's DvD over other objects and seeds.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dvdlib.stats.bootstrap import fixed_models_interval, two_level_interval
from dvdlib.stats.verdicts import Interval
from dvdlib.toyworld.world import CONCEPT_ALONE, OBJECT_ALONE, PAIR

# Measures of the pair images (column of the image table, what it is).
PAIR_MEASURES = {
    "dvd": ("dvd_score", "DvD of the concept over the object (paper's formula)"),
    "dvd_no_wrong_carrier": ("dvd_no_wrong_carrier", "DvD, images with a wrong carrier left out"),
    "concept_present": ("concept_present", "P(concept present | pair prompt)"),
    "object_present": ("object_present", "P(object present | pair prompt)"),
    "concept_only": ("concept_only", "P(concept present, object absent | pair prompt)"),
    "fills_frame": ("fills_frame", "P(object absent, the concept fills the frame | pair prompt)"),
    "wrong_carrier": ("wrong_carrier", "P(object absent, a wrong carrier drawn | pair prompt)"),
    "nothing_recognisable": ("nothing_recognisable",
                             "P(object absent, nothing recognisable | pair prompt)"),
    "frame_filled": ("frame_filled", "P(print fills the frame | pair prompt), pixel rule"),
}
# Found-alone rates of the controls (arrangement, column, what it is).
ALONE_MEASURES = {
    "concept_alone": (CONCEPT_ALONE, "concept_present", "P(concept present | concept alone)"),
    "object_alone": (OBJECT_ALONE, "object_present", "P(object present | object alone)"),
}
MEASURES = {**{k: v[1] for k, v in PAIR_MEASURES.items()},
            **{k: v[2] for k, v in ALONE_MEASURES.items()}}


def measure_cube(images: pd.DataFrame, measure: str, models: Sequence[str],
                 objects: Sequence[str]) -> np.ndarray:
    """``[model, object, seed]`` values of ``measure`` (:data:`MEASURES`) for one condition's
    images; ``models`` are base model names. The concept-alone rate has one "object" (all
    ``objects`` share it)."""
    if measure in PAIR_MEASURES:
        column, arrangement = PAIR_MEASURES[measure][0], PAIR
    elif measure in ALONE_MEASURES:
        arrangement, column, _ = ALONE_MEASURES[measure]
    else:
        raise ValueError(f"unknown measure {measure!r}; accepted: {', '.join(MEASURES)}")
    rows = images[images["arrangement"] == arrangement]
    rows = rows.assign(value=rows[column].astype(float))
    wanted = [""] if arrangement == CONCEPT_ALONE else list(objects)
    seeds = sorted(set(rows["seed"]))
    if rows.empty:  # e.g. no controls in this condition: every value is missing
        return np.full((len(models), len(wanted), 1), np.nan)
    grid = rows.pivot_table(index=["base_model", "object"], columns="seed", values="value",
                            aggfunc="mean")
    grid = grid.reindex(index=pd.MultiIndex.from_product([list(models), wanted]), columns=seeds)
    return grid.to_numpy(dtype=float).reshape(len(models), len(wanted), len(seeds))


def _select(cube: np.ndarray, measure: str, objects: Sequence[str],
            every: Sequence[str]) -> np.ndarray:
    """The objects' slice of a cube over ``every`` object (the concept-alone cube has one)."""
    if measure in ALONE_MEASURES and ALONE_MEASURES[measure][0] == CONCEPT_ALONE:
        return cube
    return cube[:, [list(every).index(o) for o in objects]]


def summarise(images: pd.DataFrame, groups: Mapping[str, Sequence[str]],
              object_sets: Mapping[str, Sequence[str]], *,
              measures: Sequence[str] = tuple(MEASURES),
              n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Every measure per condition, group of models and set of objects, with intervals.

    ``groups`` maps a label to base model names (one run, or every run of an arm pooled);
    ``object_sets`` a label to objects ("all objects", "seen in training", "never seen"). One row
    per (condition, group, objects, measure): ``estimate``, ``ci_low``, ``ci_high`` from
    :func:`two_level_interval`, ``n_models`` and ``n_images`` behind it. Groups with no images in
    a condition are left out.
    """
    every = list(dict.fromkeys(o for objects in object_sets.values() for o in objects))
    rows = []
    for condition, part in images.groupby("condition", sort=False):
        models = list(dict.fromkeys(part["base_model"]))
        k_of = part.groupby("base_model", sort=False)["K"].first()
        for measure in measures:
            cube = measure_cube(part, measure, models, every)
            if not np.isfinite(cube).any():
                continue  # not measured in this condition (no controls drawn)
            for label, members in groups.items():
                if not set(members) <= set(models):
                    continue
                picked = cube[[models.index(m) for m in members]]
                for objects_label, objects in object_sets.items():
                    values = _select(picked, measure, objects, every)
                    estimate, low, high = two_level_interval(
                        values, range(len(members)), n_resamples=n_resamples,
                        confidence=confidence, seed=seed)
                    rows.append({"condition": condition, "guidance": part["guidance"].iloc[0],
                                 "snapshot": part["snapshot"].iloc[0], "group": label,
                                 "K": k_of[members[0]], "objects": objects_label,
                                 "measure": measure, "estimate": estimate, "ci_low": low,
                                 "ci_high": high, "n_models": len(members),
                                 "n_images": int(np.isfinite(values).sum())})
    return pd.DataFrame(rows)


def differences(images: pd.DataFrame, first: Sequence[str], second: Sequence[str],
                object_sets: Mapping[str, Sequence[str]], *,
                measures: Sequence[str] = tuple(MEASURES),
                n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The group ``first`` (e.g. the K = 1 instance seeds) minus the group ``second`` (unlimited),
    per condition, set of objects and measure, with :func:`two_level_interval`'s interval.

    One row per (condition, objects, measure) where both groups have images: ``estimate``,
    ``ci_low``, ``ci_high``, ``width``, and ``width_seeds_only``: the width when the models are
    held fixed and only the seeds are resampled (how much of the width the models' level adds).
    """
    every = list(dict.fromkeys(o for objects in object_sets.values() for o in objects))
    models = [*first, *second]
    rows = []
    for condition, part in images.groupby("condition", sort=False):
        if not set(models) <= set(part["base_model"]):
            continue
        for measure in measures:
            cube = measure_cube(part, measure, models, every)
            if not np.isfinite(cube).any():
                continue  # not measured in this condition (no controls drawn)
            for objects_label, objects in object_sets.items():
                values = _select(cube, measure, objects, every)
                settings = dict(n_resamples=n_resamples, confidence=confidence, seed=seed)
                groups = range(len(first)), range(len(first), len(models))
                estimate, low, high = two_level_interval(values, *groups, **settings)
                _, fixed_low, fixed_high = fixed_models_interval(values, *groups, **settings)
                rows.append({"condition": condition, "guidance": part["guidance"].iloc[0],
                             "snapshot": part["snapshot"].iloc[0], "objects": objects_label,
                             "measure": measure, "estimate": estimate, "ci_low": low,
                             "ci_high": high, "width": high - low,
                             "width_seeds_only": fixed_high - fixed_low})
    return pd.DataFrame(rows)


def chapter_numbers(summary: pd.DataFrame, diffs: pd.DataFrame, condition: str, first: str,
                    second: str, models: Sequence[str]) -> tuple[dict, dict]:
    """``(values, quoted)`` of the default ``condition``: the headline numbers, and what the
    chapter's text quotes besides (each interval as :meth:`Interval.text` writes it, shares in
    percent; the ranges over models and the interval widths as numbers).

    ``first`` and ``second`` are the compared arms (K = 1, unlimited) and ``diffs`` their
    comparisons (:func:`dvdlib.chapters.data_diversity.comparisons.compare_arms`, rows of
    ``first`` only, with the room columns); ``models`` every single run's group label, for the
    positive control and the found-alone ranges. A difference in another condition that has no
    room is left out of the values (it is no measured effect), and quoted as not testable.
    """
    at = summary[summary["condition"] == condition].set_index(["group", "objects", "measure"])
    gap = diffs.set_index(["condition", "objects", "measure"])
    values, quoted = {}, {}
    for key, group in (("k1", first), ("unlimited", second)):
        for measure in ("dvd", "dvd_no_wrong_carrier"):
            dvd = _interval(at.loc[(group, "all objects", measure)])
            name = "dvd" if measure == "dvd" else measure
            values.update({f"{name}_{key}": dvd.estimate, f"{name}_{key}_low": dvd.low,
                           f"{name}_{key}_high": dvd.high})
            quoted[f"ch2_{name}_{key}"] = dvd.text()
        for measure in ("concept_present", "object_present", "frame_filled", "fills_frame",
                        "wrong_carrier", "nothing_recognisable", "concept_alone", "object_alone"):
            share = _interval(at.loc[(group, "all objects", measure)])
            values[f"{measure}_{key}"] = share.estimate
            quoted[f"ch2_{measure}_{key}"] = _percent(share)
        for objects in ("seen in training", "never seen"):
            for measure in ("dvd", "fills_frame", "wrong_carrier"):
                if (group, objects, measure) in at.index:
                    share = _interval(at.loc[(group, objects, measure)])
                    quoted[f"ch2_{measure}_{key}_{objects.split()[0]}"] = (
                        share.text() if measure == "dvd" else _percent(share))
    for measure, name in (("dvd", "dvd_difference"),
                          ("dvd_no_wrong_carrier", "dvd_no_wrong_carrier_difference")):
        difference = gap.loc[(condition, "all objects", measure)]
        values.update({name: difference["estimate"], f"{name}_low": difference["ci_low"],
                       f"{name}_high": difference["ci_high"], f"{name}_width": difference["width"],
                       f"{name}_width_seeds_only": difference["width_seeds_only"]})
        quoted[f"ch2_{name.replace('dvd_', '')}"] = reading(difference)
        for objects in ("seen in training", "never seen"):
            if (condition, objects, measure) in gap.index:
                row = gap.loc[(condition, objects, measure)]
                end = objects.split()[0]
                values.update({f"{name}_{end}": row["estimate"], f"{name}_{end}_low": row["ci_low"],
                               f"{name}_{end}_high": row["ci_high"]})
                quoted[f"ch2_{name.replace('dvd_', '')}_{end}"] = reading(row)
    difference = gap.loc[(condition, "all objects", "dvd")]
    quoted.update(ch2_width=float(difference["width"]),
                  ch2_width_seeds_only=float(difference["width_seeds_only"]))
    for measure in ("fills_frame", "object_present"):
        quoted[f"ch2_difference_{measure}"] = reading(
            gap.loc[(condition, "all objects", measure)], 0, 100, " %")
    for row in _other_conditions(diffs, condition).itertuples():
        key = f"g{row.guidance:g}" + ("" if pd.isna(row.snapshot) else f"_at{int(row.snapshot)}")
        quoted[f"ch2_difference_{key}"] = reading(row._asdict())
        if row.room_met:
            values.update({f"dvd_difference_{key}": row.estimate,
                           f"dvd_difference_{key}_low": row.ci_low,
                           f"dvd_difference_{key}_high": row.ci_high})
    singles = at.reset_index()
    singles = singles[singles["group"].isin(models) & (singles["objects"] == "all objects")]
    for measure in ("concept_alone", "object_alone"):  # per model; objects: mean over the five
        found = singles.loc[singles["measure"] == measure, "estimate"]
        values[f"{measure}_min"] = found.min()
        quoted.update({f"ch2_{measure}_min": float(found.min()),
                       f"ch2_{measure}_max": float(found.max())})
    dvd = singles[singles["measure"] == "dvd"]
    values["dvd_model_min"], values["dvd_model_max"] = dvd["estimate"].min(), dvd["estimate"].max()
    quoted.update(ch2_dvd_model_min=float(values["dvd_model_min"]),
                  ch2_dvd_model_max=float(values["dvd_model_max"]))
    return values, quoted


def condition_table(summary: pd.DataFrame, diffs: pd.DataFrame, condition: str, first: str,
                    second: str, verdict_words: Mapping[str, str] | None = None) -> pd.DataFrame:
    """DvD(``first``) - DvD(``second``) in every condition other than ``condition`` ("not
    testable (ceiling ...)" where the comparison has no room), with the object's presence in
    each arm's pair images and, given ``verdict_words`` (condition -> word), the verdict there:
    one row per condition (empty when only the default condition was run)."""
    present = summary[(summary["objects"] == "all objects")
                      & (summary["measure"] == "object_present")].set_index(["condition", "group"])
    columns = ["condition", "DvD difference", "without wrong carriers", f"object present, {first}",
               f"object present, {second}"] + (["verdict"] if verdict_words is not None else [])
    gap = diffs.set_index(["condition", "objects", "measure"])
    rows = []
    for row in _other_conditions(diffs, condition).itertuples():
        verdict_measure = gap.loc[(row.condition, "all objects", "dvd_no_wrong_carrier")]
        rows.append({"condition": row.condition, "DvD difference": reading(row._asdict()),
                     "without wrong carriers": reading(verdict_measure),
                     f"object present, {first}": present.loc[(row.condition, first), "estimate"],
                     f"object present, {second}": present.loc[(row.condition, second),
                                                              "estimate"]})
        if verdict_words is not None:
            rows[-1]["verdict"] = verdict_words.get(row.condition, "")
    return pd.DataFrame(rows, columns=columns)


def dvd_by_design(images: pd.DataFrame, run: str, condition: str,
                  designs: Mapping[str, tuple[Sequence[str], int | None]], *,
                  n_resamples: int = 2000, confidence: float = 0.95) -> pd.DataFrame:
    """One run's DvD averaged over other objects and seeds: ``designs`` maps a label to
    ``(objects, n_first_seeds)`` (None: every seed; a negative number: the last seeds), one row
    each with the DvD and its interval over seeds, ``n_objects`` and ``n_seeds``. How far a
    single model's DvD moves with the prompts and seeds it is averaged over."""
    rows = []
    for label, (objects, n_first) in designs.items():
        seeds = sorted(set(images.loc[images["condition"] == condition, "seed"]))
        picked = seeds if n_first is None else (seeds[:n_first] if n_first >= 0
                                                else seeds[n_first:])
        part = images[(images["condition"] == condition) & images["seed"].isin(picked)]
        cube = measure_cube(part, "dvd", [run], list(objects))
        estimate, low, high = two_level_interval(cube, [0], n_resamples=n_resamples,
                                                 confidence=confidence)
        rows.append({"design": label, "objects": len(objects), "seeds": len(picked),
                     "DvD": Interval(estimate, low, high).text(), "width": high - low})
    return pd.DataFrame(rows)


def _other_conditions(diffs: pd.DataFrame, condition: str) -> pd.DataFrame:
    """The DvD differences over every object in the conditions other than ``condition``."""
    return diffs[(diffs["objects"] == "all objects") & (diffs["measure"] == "dvd")
                 & (diffs["condition"] != condition)]


def reading(row, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    """A comparison row (with the room columns of
    :func:`dvdlib.chapters.data_diversity.comparisons.compare_arms`) as the chapter writes it:
    its signed interval, or "not testable: ..." naming the bound when it has no room."""
    if not row["room_met"]:
        return f"not testable: {row['room_found']}"
    return Interval(row["estimate"], row["ci_low"], row["ci_high"]).text(digits, True, scale, unit)


def _interval(row) -> Interval:
    """A summary or difference row's ``estimate``, ``ci_low`` and ``ci_high``."""
    return Interval(row["estimate"], row["ci_low"], row["ci_high"])


def _percent(share: Interval, signed: bool = False) -> str:
    """A share's interval in percent: "22 % [7 %, 40 %]"."""
    return share.text(0, signed, scale=100, unit=" %")
