"""Chapter 4's saved results agree with themselves: the verdict follows from the saved tables,
and the counts the landing page quotes are the headline's.

``scripts/test`` runs the chapter with its smoke parameters (nbval) in the same test run, with
``DVD_BUILD_DIR`` pointing at the test build folder; these tests run after it (conftest orders
them last) and read the tables and the headline it wrote. Run alone, without them in the build
folder, they skip and say so.
"""

from __future__ import annotations

import math

import pytest

from dvdlib.chapters.head_ablation import verdict
from dvdlib.store import load_table

CHAPTER = "04_head_ablation"


def _saved(saved_chapter) -> tuple[dict, dict]:
    names = ("summary", "fresh_seeds_summary")
    document, folder = saved_chapter(CHAPTER, *(f"tables/{name}.csv" for name in names))
    return document, {name: load_table(folder / "tables" / f"{name}.csv") for name in names}


def _same(saved: dict, fresh: dict, key: str) -> bool:
    """Whether a headline value was saved as recomputed (both absent: NaN, left out)."""
    if key not in fresh:
        return key not in saved
    return key in saved and math.isclose(saved[key], fresh[key], rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.after_notebooks
def test_the_verdict_follows_from_the_saved_tables(saved_chapter):
    document, tables = _saved(saved_chapter)
    values, texts = document["values"], document["texts"]
    found = verdict.findings(
        tables["summary"], values["heads"], confirmation=tables["fresh_seeds_summary"],
        rescue_fraction=values["rescue_fraction"], concept_margin=values["concept_margin"],
        min_baseline_dvd=values["min_baseline_dvd"], confidence=values["verdict_confidence"])
    again, again_texts = verdict.headline(found)
    assert found.verdict.word == texts["verdict"]
    assert found.verdict.reason == texts["verdict_reason"]
    for key in ("verdict_bound", "verdict_low", "verdict_high", "heads_rescuing_object",
                "heads_raising_object", "sets_rescuing_object", "heads_lowering_dvd",
                "sets_lowering_dvd", "positive_control_rescues", "positive_control_concept_kept"):
        assert _same(values, again, key), f"{key}: saved {values.get(key)}, tables {again.get(key)}"
    assert texts["interval_unit"] == again_texts["interval_unit"] == "seed"
    assert texts["candidate_head"] == again_texts["candidate_head"]


@pytest.mark.after_notebooks
def test_the_landing_page_quotes_the_headline_counts(saved_chapter):
    document, _ = _saved(saved_chapter)
    values, summary = document["values"], document["texts"]["summary"]
    quoted = [f"Single heads that rescue it: {values['heads_rescuing_object']};",
              f"that bring it back short of a rescue: "
              f"{values['heads_raising_object'] - values['heads_rescuing_object']};",
              f"that lower DvD: {values['heads_lowering_dvd']};",
              f"sets of heads that lower DvD: {values['sets_lowering_dvd']} of"]
    missing = [text for text in quoted if text not in summary]
    assert not missing, f"the landing summary does not quote {missing}: {summary}"
    control = "rescued" if values["positive_control_rescues"] else "did not rescue"
    assert f") {control} the object" in summary
