"""What each finding chapter saved claims no more than its verdict.

``scripts/test`` runs every chapter with its smoke parameters (nbval) in the same test run, with
``DVD_BUILD_DIR`` pointing at the test build folder; these tests run after them (conftest orders
them last) and read the headline JSON each chapter wrote. Run alone, without the chapters'
headlines in the build folder, they skip and say so.
"""

from __future__ import annotations

import pytest

from dvdlib.stats import verdicts
from dvdlib.book import headlines
from dvdlib.paths import build_dir

# chapter -> the verdict keys its headline must hold
CHAPTERS = {
    "02_data_diversity": ("verdict", "verdict_g7.5"),
    "03_attention_saturation": ("early_bias_verdict", "saturation_verdict", "decided_early_verdict"),
    "04_head_ablation": ("verdict",),
    "05_rescue": tuple(f"verdict_{name}" for name in ("boost", "cap", "heads", "random_heads",
                                                       "excite", "guidance", "object_first",
                                                       "negative")),
}
HEAD_ABLATION_KEYS = ("heads_raising_dvd", "heads_lowering_dvd", "largest_single_head_change")
# chapter -> the headline numbers the analysis must report (seeds and runs as the unit, room below
# the ceiling, amplification by guidance, timing of the outcome, rescue rather than deletion)
REQUIRED_VALUES = {
    "02_data_diversity": ("unlimited_runs", "ceiling_margin", "amplification_g1",
                          "amplification_g4", "amplification_g7.5", "amplification_g1_low",
                          "amplification_g7.5_high"),
    "03_attention_saturation": ("decided_step",),
    "04_head_ablation": ("heads_rescuing_object", "positive_control_concept_kept"),
    "05_rescue": ("both_present_baseline",),
}


def _saved(chapter: str) -> dict:
    document = headlines.load(chapter, build_dir())
    if document is None:
        pytest.skip(f"no headlines of {chapter} in {build_dir()}: run the chapters first (scripts/test "
                    "runs them with their smoke parameters before this test)")
    return document


@pytest.mark.after_notebooks
@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_the_summary_claims_no_more_than_the_verdict(chapter):
    document = _saved(chapter)
    texts = document["texts"]
    for key in CHAPTERS[chapter]:
        assert texts.get(key) in verdicts.VERDICTS, f"{chapter}: {key} is {texts.get(key)!r}"
    assert verdicts.check_headline(document) == []


@pytest.mark.after_notebooks
def test_head_ablation_reports_both_directions():
    document = _saved("04_head_ablation")
    values = document["values"]
    missing = [key for key in HEAD_ABLATION_KEYS if key not in values]
    assert not missing, f"04_head_ablation lacks {missing}"
    # The signed largest change is the largest in absolute value: no reported interval end of it
    # points the other way from its sign.
    change = values["largest_single_head_change"]
    assert values["largest_single_head_change_low"] <= change <= values["largest_single_head_change_high"]
    if values.get("baseline_dvd_low", 0) <= 0:  # no dominance at baseline: nothing to remove
        assert document["texts"]["verdict"] == "not testable"


@pytest.mark.after_notebooks
@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_each_chapter_names_its_resampled_unit_and_reports_what_the_analysis_needs(chapter):
    document = _saved(chapter)
    assert document["texts"].get("interval_unit") in ("seed", "run and seed"), \
        f"{chapter}: interval_unit is {document['texts'].get('interval_unit')!r}"
    saved = {**document["values"], **document["texts"]}
    missing = [key for key in REQUIRED_VALUES[chapter] if key not in saved]
    assert not missing, f"{chapter} lacks {missing}"


@pytest.mark.after_notebooks
def test_guidance_7_5_sits_at_the_ceiling_and_is_not_testable():
    texts = _saved("02_data_diversity")["texts"]
    assert texts["verdict_g7.5"] == "not testable"
    assert "ceiling" in texts["verdict_g7.5_reason"]
