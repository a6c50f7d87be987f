"""Scores of prompts that name several targets, from the per-image, per-target table of
:func:`dvdlib.scoring.targets.judge_targets` (the book's definitions page defines each one).

- :func:`target_presence`: per target (case and slot), the share of its images in which it is
  present (the judge says yes to at least three of its five questions).
- :func:`image_outcomes`, :func:`all_present_rate`: per image, how many targets are present;
  the share of images in which every target is.
- :func:`omission_rates`: per category (target type), the share of its targets' images in which
  it is absent.
- :func:`who_wins`: for each ordered pair (i, j), P(i present and j absent) over images.
- :func:`pairwise_dvd`: for each ordered pair, the paper's formula with i as the concept and j as
  the object, ``c_i * (5 - n_j) / 25 * 100``, averaged over images.
- :func:`strong_slot_effects`: in the 2x2x2 factorial set, how making one slot strong changes the
  presence of each other slot, with a cluster-bootstrap interval over seeds.
- :func:`image_pair_columns`, :func:`pair_table`: what ``dvd score`` writes for a target set:
  the judged table with each target's presence and, per image, its pairs against every other
  target (whose means over images are the two matrices), and the matrices as one long table.

Every score counts every row of the table it is given: a carrier judged as a target counts as
one; pass ``judged[judged["role"] == "target"]`` to leave it out.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from dvdlib.prompts.targets import TARGET_TYPES
from dvdlib.scoring.dvd import dvd_image_score
from dvdlib.stats.bootstrap import bootstrap_ci

IMAGE_KEY = ["case_num", "image_name"]
PAIR_AXES = ("slot", "type")


def _check_table(judged: pd.DataFrame, needs: tuple[str, ...]) -> None:
    missing = [c for c in needs if c not in judged.columns]
    if missing:
        raise ValueError(f"the judged table lacks column(s) {', '.join(missing)}; it has "
                         f"{', '.join(map(str, judged.columns))} (see judge_targets)")
    if judged.empty:
        raise ValueError("the judged table is empty: no image was judged")


def target_presence(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per target (case, slot): ``n_images``, ``mean_yes`` and ``presence``, the share
    of its images in which it is present."""
    _check_table(judged, ("case_num", "slot", "role", "type", "word", "strong", "yes", "present"))
    grouped = judged.groupby(["case_num", "slot", "role", "type", "word", "strong"], sort=True)
    return grouped.agg(n_images=("present", "size"), mean_yes=("yes", "mean"),
                       presence=("present", "mean")).reset_index()


def image_outcomes(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per image: ``seed``, ``n_targets``, ``n_present`` and ``all_present``."""
    _check_table(judged, (*IMAGE_KEY, "seed", "present"))
    outcomes = judged.groupby(IMAGE_KEY, sort=True).agg(
        seed=("seed", "first"), n_targets=("present", "size"), n_present=("present", "sum"))
    outcomes["all_present"] = outcomes["n_present"] == outcomes["n_targets"]
    return outcomes.reset_index()


def all_present_rate(judged: pd.DataFrame) -> float:
    """The share of images in which every target of the table is present."""
    return float(image_outcomes(judged)["all_present"].mean())


def omission_rates(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per category (target type): ``n`` (target-images), ``omitted`` (those in which the
    target is absent) and ``omission_rate``."""
    _check_table(judged, ("type", "present"))
    absent = ~judged["present"].astype(bool)
    rates = absent.groupby(judged["type"]).agg(n="size", omitted="sum").reset_index()
    rates["omitted"] = rates["omitted"].astype(int)
    rates["omission_rate"] = rates["omitted"] / rates["n"]
    order = {kind: i for i, kind in enumerate(TARGET_TYPES)}
    return rates.sort_values("type", key=lambda s: s.map(order)).reset_index(drop=True)


def ordered_pairs(judged: pd.DataFrame, by: str = "slot") -> pd.DataFrame:
    """Every ordered pair of different targets of one image: ``<by>_over``, ``<by>_under`` and
    each side's ``present_*`` and ``yes_*`` (``by`` is ``slot`` or ``type``)."""
    if by not in PAIR_AXES:
        raise ValueError(f"by={by!r} is not a pair axis; accepted: {', '.join(PAIR_AXES)}")
    _check_table(judged, (*IMAGE_KEY, "slot", by, "present", "yes"))
    sides = judged[list(dict.fromkeys([*IMAGE_KEY, "slot", by, "present", "yes"]))]
    pairs = sides.merge(sides, on=IMAGE_KEY, suffixes=("_over", "_under"))
    return pairs[pairs["slot_over"] != pairs["slot_under"]].reset_index(drop=True)


def _pair_matrix(judged: pd.DataFrame, by: str, value: Callable[[pd.DataFrame], pd.Series]
                 ) -> pd.DataFrame:
    """The mean of ``value(pairs)`` per ordered pair: rows ``<by>_over``, columns ``<by>_under``."""
    pairs = ordered_pairs(judged, by)
    pairs = pairs.assign(value=value(pairs).astype(float))
    return pairs.pivot_table(index=f"{by}_over", columns=f"{by}_under", values="value",
                             aggfunc="mean")


def who_wins(judged: pd.DataFrame, by: str = "slot") -> pd.DataFrame:
    """P(i present and j absent): row i (``<by>_over``), column j (``<by>_under``), over the
    images holding both. With ``by="slot"`` the diagonal is empty."""
    return _pair_matrix(judged, by, lambda pairs: pairs["present_over"].astype(bool)
                        & ~pairs["present_under"].astype(bool))


def pairwise_dvd(judged: pd.DataFrame, by: str = "slot") -> pd.DataFrame:
    """DvD of i over j: the paper's per-image formula with i's yes count as the concept's and j's
    as the object's, :func:`~dvdlib.scoring.dvd.dvd_image_score`, averaged over images; rows i
    (``<by>_over``), columns j (``<by>_under``)."""
    return _pair_matrix(judged, by, lambda pairs: pd.Series(
        [dvd_image_score(c, n) for c, n in zip(pairs["yes_over"], pairs["yes_under"])],
        index=pairs.index))


def _pair_values(judged: pd.DataFrame, by: str) -> pd.DataFrame:
    """:func:`ordered_pairs` with each pair's ``wins`` (i present, j absent) and ``dvd`` (i over
    j, the paper's per-image formula)."""
    pairs = ordered_pairs(judged, by)
    wins = pairs["present_over"].astype(bool) & ~pairs["present_under"].astype(bool)
    dvd = [dvd_image_score(c, n) for c, n in zip(pairs["yes_over"], pairs["yes_under"])]
    return pairs.assign(wins=wins.astype(int), dvd=np.asarray(dvd, dtype=float))


def image_pair_columns(judged: pd.DataFrame) -> pd.DataFrame:
    """The judged table (one row per image and target) with ``presence``, the target's presence
    over its prompt's images, and for every slot t: ``wins_over_<t>`` (this target present and
    target t absent in the image: 1 or 0) and ``dvd_over_<t>`` (the paper's formula with this
    target as the concept and t as the object), missing where t is the row's own slot or not in
    the image. Their means over a prompt's (or all) images are :func:`who_wins` and
    :func:`pairwise_dvd`."""
    presence = target_presence(judged)[["case_num", "slot", "presence"]]
    table = judged.merge(presence, on=["case_num", "slot"], how="left", validate="many_to_one")
    pairs = _pair_values(judged, "slot")
    for name, column in (("wins", "wins_over"), ("dvd", "dvd_over")):
        wide = pairs.pivot_table(index=[*IMAGE_KEY, "slot_over"], columns="slot_under",
                                 values=name, aggfunc="first")
        wide.columns = [f"{column}_{int(slot)}" for slot in wide.columns]
        wide = wide.reset_index().rename(columns={"slot_over": "slot"})
        table = table.merge(wide, on=[*IMAGE_KEY, "slot"], how="left", validate="one_to_one")
    return table


def pair_table(judged: pd.DataFrame) -> pd.DataFrame:
    """The who-wins matrix and the pairwise DvD as one long table: one row per ``axis`` (``slot``:
    the prompts' positions; ``type``: the targets' categories), ordered pair ``over`` / ``under``,
    with ``who_wins`` (P(over present and under absent)), ``pairwise_dvd`` (mean DvD of over as
    the concept and under as the object) and ``n_images`` (images holding both)."""
    tables = []
    for by in PAIR_AXES:
        pairs = _pair_values(judged, by)
        grouped = pairs.groupby([f"{by}_over", f"{by}_under"], sort=True)
        table = grouped.agg(who_wins=("wins", "mean"), pairwise_dvd=("dvd", "mean"),
                            n_images=("wins", "size")).reset_index()
        table.columns = ["over", "under", "who_wins", "pairwise_dvd", "n_images"]
        tables.append(table.astype({"over": str, "under": str}).assign(axis=by))
    table = pd.concat(tables, ignore_index=True)
    return table[["axis", "over", "under", "who_wins", "pairwise_dvd", "n_images"]]


# --------------------------------------------------------------------------------------------
# The factorial design


def seed_cluster_difference(per_seed: np.ndarray, *, n_resamples: int = 10_000,
                            confidence: float = 0.95, seed: int = 0
                            ) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of a difference of two rates, ``a / n_a - b / n_b``, from the
    counts of each seed, ``per_seed[seed] = (a, n_a, b, n_b)``.

    Images made with the same seed start from the same noise, so they are not independent: the
    bootstrap resamples seeds with replacement (a cluster bootstrap) and sums the drawn seeds'
    counts; the interval is the percentile interval of :func:`~dvdlib.stats.bootstrap.bootstrap_ci`.
    """
    per_seed = np.asarray(per_seed, dtype=float)  # [seed, 4]
    if per_seed.ndim != 2 or per_seed.shape[1] != 4 or len(per_seed) == 0:
        raise ValueError(f"per_seed must be [seed, (a, n_a, b, n_b)], got shape {per_seed.shape}")
    n_seeds = len(per_seed)

    def difference(totals: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return totals[..., 0] / totals[..., 1] - totals[..., 2] / totals[..., 3]

    def resampled(drawn: np.ndarray, axis: int) -> np.ndarray:
        # drawn: [resample, seed], the indices of the seeds drawn; bootstrap_ci draws them
        drawn = drawn.astype(int)
        offsets = n_seeds * np.arange(len(drawn))[:, None]
        weights = np.bincount((drawn + offsets).ravel(), minlength=drawn.size).reshape(drawn.shape)
        return difference(weights @ per_seed)  # [resample]

    low, high = bootstrap_ci(np.arange(n_seeds, dtype=float), resampled,
                             n_resamples=n_resamples, confidence=confidence, seed=seed)
    return float(difference(per_seed.sum(axis=0))), low, high


def strong_slot_effects(judged: pd.DataFrame, *, n_resamples: int = 10_000,
                        confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The factorial design's effects: how making slot s strong changes slot t's presence.

    One row per slot made strong (``strong_slot``), other slot (``other_slot``) and that slot's
    own kind (``other_strong``): ``presence_if_strong`` and ``presence_if_generic`` (the share
    of images in which slot t is present, over the prompts where slot s is strong / generic, the
    third slot pooled over its two levels), ``effect`` (their difference) and its interval
    ``low``/``high`` from a cluster bootstrap over seeds (:func:`seed_cluster_difference`:
    images that share a seed are not independent). Needs the images' seeds and a table in which
    each slot is strong in some prompts and generic in others. Carrier rows are left out.
    """
    _check_table(judged, (*IMAGE_KEY, "seed", "slot", "role", "strong", "present"))
    targets = judged[judged["role"] == "target"]
    if targets["seed"].isna().any():
        unseeded = targets.loc[targets["seed"].isna(), IMAGE_KEY].drop_duplicates()
        raise ValueError(f"the interval resamples seeds, but {len(unseeded)} image(s) have no seed "
                         f"(file names without seedNNN), e.g. case {unseeded.iloc[0, 0]} "
                         f"{unseeded.iloc[0, 1]!r}")
    wide = targets.pivot(index=[*IMAGE_KEY, "seed"], columns="slot", values=["strong", "present"])
    seeds = wide.index.get_level_values("seed").to_numpy()
    rows = []
    for strong_slot in wide["strong"].columns:
        made_strong = wide["strong", strong_slot].astype(bool).to_numpy()
        for other_slot in wide["strong"].columns.drop(strong_slot):
            for other_strong in (False, True):
                keep = wide["strong", other_slot].astype(bool).to_numpy() == other_strong
                if made_strong[keep].all() or not made_strong[keep].any():
                    continue  # slot s is not varied here: no contrast to take
                counts = pd.DataFrame({
                    "seed": seeds[keep], "strong": made_strong[keep],
                    "present": wide["present", other_slot].astype(bool).to_numpy()[keep]})
                per_seed = counts.groupby(["seed", "strong"])["present"].agg(["sum", "size"]) \
                    .unstack("strong", fill_value=0)
                ordered = per_seed[[("sum", True), ("size", True), ("sum", False),
                                    ("size", False)]].to_numpy()
                effect, low, high = seed_cluster_difference(
                    ordered, n_resamples=n_resamples, confidence=confidence, seed=seed)
                totals = ordered.sum(axis=0)
                rows.append({"strong_slot": strong_slot, "other_slot": other_slot,
                             "other_strong": other_strong,
                             "presence_if_strong": totals[0] / totals[1],
                             "presence_if_generic": totals[2] / totals[3], "effect": effect,
                             "low": low, "high": high, "n_images_strong": int(totals[1]),
                             "n_images_generic": int(totals[3]), "n_seeds": len(ordered),
                             "confidence": confidence})
    if not rows:
        raise ValueError("no slot is strong in some prompts and generic in others: the effects "
                         "need the factorial set (condition 000 to 111)")
    return pd.DataFrame(rows)
