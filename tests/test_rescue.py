"""Chapter 5 (rescue): the arms, the rescue test decided from a table of images (and again from
the chapter's saved table), and ``dvd probe --rescue`` on the toy zoo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dvdlib.book.cli import main
from dvdlib.chapters.rescue import run, summary, verdict
from dvdlib.store import load_table, save_table

SEEDS = list(range(1, 9))
OBJECTS = ("coaster", "hat")


def _images(arms: dict[str, tuple[float, float]], seed: int = 0) -> pd.DataFrame:
    """A table of images: per arm, (share of images with both sides, share with the concept);
    the rest of the concept's images show it alone, the others only the object. Every seed has
    one image per object."""
    rng = np.random.default_rng(seed)
    rows = []
    for arm, (both, concept) in arms.items():
        name = arm.rpartition("_")[0] or arm
        cells = [(o, s) for o in OBJECTS for s in SEEDS]
        n = len(cells)
        kinds = (["both"] * round(both * n) + ["concept"] * round((concept - both) * n))
        kinds += ["object"] * (n - len(kinds))
        kinds = list(rng.permutation(kinds))
        for (obj, s), kind in zip(cells, kinds):
            c, o = kind in ("both", "concept"), kind in ("both", "object")
            rows.append({"arm": arm, "intervention": name, "strength": 2.0, "is_test": True,
                         "case_num": OBJECTS.index(obj) + 1, "prompt": f"sunset {obj}",
                         "concept": "sunset", "object": obj,
                         "objects": "seen" if obj == "coaster" else "unseen", "seed": s,
                         "concept_yes": 5 * c, "object_yes": 5 * o, "dvd_score": 100.0 * c * (1 - o),
                         "concept_present": c, "object_present": o, "both_present": c and o,
                         "concept_share": 0.5, "seconds_per_image": 0.1})
    table = pd.DataFrame(rows)
    plain = table["arm"] == run.PLAIN
    table.loc[plain, ["intervention", "is_test"]] = [run.PLAIN, False]
    table.loc[plain, "strength"] = np.nan
    return table


def test_the_arms_run_from_each_zero_point_to_the_test_strength():
    arms = run.plan_arms({"boost": 8.0, "cap": 0.75, "heads": 7, "guidance": 1.5,
                          "object_first": 1}, 2, guidance=4.0)
    by = {}
    for arm in arms[1:]:
        by.setdefault(arm.intervention, []).append((arm.strength, arm.is_test))
    assert arms[0].name == run.PLAIN and arms[0].intervention == run.PLAIN
    assert [s for s, _ in by["boost"]] == pytest.approx([8 ** 0.5, 8.0])
    assert [s for s, _ in by["cap"]] == [0.875, 0.75]
    assert [s for s, _ in by["heads"]] == [4.0, 7.0]
    assert [s for s, _ in by["guidance"]] == [2.75, 1.5]
    assert by["object_first"] == [(1.0, True)]
    assert all([t for _, t in curve] == [False] * (len(curve) - 1) + [True] for curve in by.values())


def test_the_rescue_test_reads_both_conditions():
    images = _images({run.PLAIN: (0.125, 1.0), "boost_2": (0.75, 1.0), "cap_2": (0.5, 0.5),
                      "heads_2": (0.125, 1.0)})
    found = verdict.findings(images, margin=10.0, n_resamples=500)
    assert found["boost"].word == "supported"  # object back, concept kept
    assert found["cap"].word == "contradicted"  # object back, concept lost: no rescue
    assert found["heads"].word == "inconclusive"  # nothing moved: the interval is [0, 0]
    assert found["boost"].interval.estimate == pytest.approx(10.0)  # min(+62.5, 0 + 10)
    assert found["cap"].interval.estimate == pytest.approx(-40.0)  # min(+37.5, -50 + 10)
    table = summary.summarise(images, n_resamples=200)
    rows = table[table["objects"] == "all"].set_index("arm")
    assert rows.loc["boost_2", "both_present_change"] == pytest.approx(0.625)
    assert {"seen", "unseen", "all"} == set(table["objects"])
    low, high = rows.loc["boost_2", ["both_present_change_low", "both_present_change_high"]]
    assert 0 < low < 0.625 < high <= 1


def test_no_room_at_the_ceiling_is_not_testable():
    images = _images({run.PLAIN: (1.0, 1.0), "boost_2": (1.0, 1.0)})
    found = verdict.findings(images, margin=10.0, n_resamples=200)
    assert found["boost"].word == "not testable"
    assert "no room" in found["boost"].reason


def test_a_saved_table_decides_again_to_the_same_words(tmp_path):
    images = _images({run.PLAIN: (0.25, 1.0), "boost_2": (0.6, 0.9), "excite_2": (0.3, 0.7)})
    path = save_table(images, tmp_path / "images.csv")
    assert verdict.redecide(load_table(path), 10.0, n_resamples=300) == verdict.redecide(
        images, 10.0, n_resamples=300)


def test_the_headline_holds_every_number_the_issue_names():
    images = _images({run.PLAIN: (0.125, 1.0), "boost_2": (0.75, 1.0), "cap_2": (0.5, 0.5)})
    found = verdict.findings(images, 10.0, n_resamples=200)
    values, texts = verdict.headline(found, summary.summarise(images, n_resamples=200),
                                     margin=10.0, n_resamples=200)
    assert values["both_present_baseline"] == pytest.approx(12.5)
    assert values["both_present_boost"] == pytest.approx(75.0)
    assert values["concept_present_cap"] == pytest.approx(50.0)
    assert texts["verdict_boost"] == "supported" and texts["verdict_cap"] == "contradicted"
    assert texts["interval_unit"] == "seed" and values["rescues"] == 1


# --------------------------------------------------------------------------------------------
# The chapter's own run (scripts/test runs it with its smoke parameters first)


def _chapter(saved_chapter) -> tuple[dict, pd.DataFrame]:
    document, folder = saved_chapter("05_rescue", "tables/images.csv")
    return document, load_table(folder / "tables" / "images.csv")


@pytest.mark.after_notebooks
def test_the_chapters_verdicts_follow_from_its_saved_table(saved_chapter):
    document, images = _chapter(saved_chapter)
    values, texts = document["values"], document["texts"]
    again = verdict.redecide(images, values["concept_margin"],
                             n_resamples=int(values["n_resamples"]))
    saved = {key[len("verdict_"):]: word for key, word in texts.items()
             if key.startswith("verdict_") and f"{key}_sentence" in texts}
    assert again == saved and len(saved) == 8


@pytest.mark.after_notebooks
def test_the_counts_quoted_agree_with_the_verdicts(saved_chapter):
    document, _ = _chapter(saved_chapter)
    values, texts = document["values"], document["texts"]
    words = [word for key, word in texts.items()
             if key.startswith("verdict_") and f"{key}_sentence" in texts]
    assert values["rescues"] == words.count("supported")
    assert f"at their test strengths: {values['rescues']} of {len(words)}" in texts["summary"]
    assert texts["interval_unit"] == "seed"
    for key in ("both_present_baseline", "both_present_boost", "concept_present_boost"):
        assert key in values


# --------------------------------------------------------------------------------------------
# dvd probe --rescue


def test_dvd_probe_rescue_prints_its_table_and_keeps_a_contact_sheet(tmp_path, capsys):
    code = main(["probe", "sunset coaster", "--concept", "sunset", "--object", "coaster",
                 "--rescue", "--seeds", "2", "--steps", "2", "--no-progress",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    printed = capsys.readouterr().out
    for fragment in ("plain model", "object boost (c = 8)", "concept cap (tau = 0.75)",
                     "top-k heads ablated (k = 7)", "attend-and-excite update", "lower guidance",
                     "object first", "negative prompt", "verdict", "rescue margin",
                     "concept presence falls by less than 10 points"):
        assert fragment in printed, fragment
    assert ("brings the object back with the concept kept:" in printed
            or "no intervention tried brings the object back" in printed)
    table = load_table(tmp_path / "out" / "rescue.csv")
    assert len(table) == 9 and table["arm"].iloc[0] == "plain model"
    assert (tmp_path / "out" / "rescue.png").stat().st_size > 1000
