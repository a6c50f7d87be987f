"""What "object absent" means in a pair image: the four outcomes of chapter 2's pair prompts.

The paper's DvD is high when the judge finds the concept and not the object. In the toy world an
absent object can mean three different things, and only one of them is the concept taking over:

- **the concept fills the frame**: the pixel rule finds no plain background at the border and the
  judge finds the concept (the print fills the picture, no carrier in view: dominance);
- **a wrong carrier**: some carrier stands on the background (the pixel rule) or the judge finds
  another object, but not the prompted one (the model drew a shirt for "sunset kite");
- **nothing recognisable**: neither.

:func:`outcome` names the outcome of one image, :func:`outcomes` of every row of a judged table
(:func:`dvdlib.chapters.data_diversity.toy_runs.judge_images`), :func:`flags` one column per
absent outcome, and
:func:`dvd_without_wrong_carriers` the DvD score with the wrong carriers left out, the measure
whose difference chapter 2's verdict reads: a wrongly drawn object does not count as dominance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PRESENT = "object present"
FILLS = "concept fills the frame"
WRONG = "wrong carrier"
NOTHING = "nothing recognisable"
OUTCOMES = (PRESENT, FILLS, WRONG, NOTHING)
# The column of a judged table that flags each outcome of an absent object.
FLAGS = {FILLS: "fills_frame", WRONG: "wrong_carrier", NOTHING: "nothing_recognisable"}
# The columns of a judged table that decide the outcome.
COLUMNS = ("object_present", "concept_present", "frame_filled", "rule_object_present",
           "other_object")


def outcome(object_present: bool, concept_present: bool, frame_filled: bool,
            rule_object_present: bool, other_object: str) -> str:
    """One pair image's outcome (:data:`OUTCOMES`), in this order: the object found; else the
    frame filled with the concept found; else a carrier on the background or another object
    found (``other_object`` is its name, "" for none); else nothing recognisable."""
    if object_present:
        return PRESENT
    if frame_filled and concept_present:
        return FILLS
    if rule_object_present or other_object:
        return WRONG
    return NOTHING


def outcomes(table: pd.DataFrame) -> pd.Series:
    """:func:`outcome` of every row of ``table`` (which needs the :data:`COLUMNS`)."""
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise KeyError(f"the table lacks {', '.join(missing)}; columns: {', '.join(table.columns)}")
    other = table["other_object"].fillna("").astype(str)
    values = [outcome(bool(p), bool(c), bool(f), bool(r), o) for p, c, f, r, o in zip(
        table["object_present"], table["concept_present"], table["frame_filled"],
        table["rule_object_present"], other)]
    return pd.Series(values, index=table.index, name="outcome", dtype=object)


def flags(kinds: pd.Series) -> pd.DataFrame:
    """One bool column per absent outcome (:data:`FLAGS`) of each image's ``kinds``."""
    return pd.DataFrame({column: kinds == kind for kind, column in FLAGS.items()},
                        index=kinds.index)


def dvd_without_wrong_carriers(dvd: pd.Series, kinds: pd.Series) -> pd.Series:
    """The DvD score of every image, NaN where the image shows a wrong carrier (left out of any
    mean: the model drew some other object, which says nothing about the concept taking over)."""
    return dvd.where(kinds != WRONG, np.nan).astype(float)
