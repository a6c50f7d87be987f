"""The DvD score: the paper's formula, its aggregates, and judging an image folder (resumable)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib.prompts.prompt_sets import builtin_prompts, case_folder
from dvdlib.scoring.dvd import (IMAGE_COLUMNS, ImageFolderError, category_scores, dvd_image_score,
                          find_images, prompt_scores, question_table, score_folder)
from dvdlib.stats.bootstrap import bootstrap_ci
from dvdlib.store import StoreError

# The authors' scorer's columns, in their order, under our names (theirs: content_type, content,
# nm_word, content_answers, nm_answers, content_score, nm_score).
AUTHORS_SCORER_COLUMNS = ["case_num", "category", "concept", "object", "prompt", "image_path", "image_name",
                          "concept_answers", "object_answers", "concept_yes", "object_yes", "dvd_score",
                          "dvd_mean_case"]


class ColourJudge:
    """A judge whose answers are known in advance: question i of the concept side is "yes" iff
    the image's red level exceeds 50 * (i + 1); of the object side, the green level."""

    name = "colour"

    def __init__(self):
        self.images_seen = 0

    def answer(self, items):
        self.images_seen += len(items)
        out = []
        for image, questions in items:
            red, green, _ = image.getpixel((0, 0))
            level = {"concept": red, "object": green}
            out.append([level[q.side] > 50 * (q.index + 1) for q in questions])
        return out


def _image(concept_yes: int, object_yes: int) -> Image.Image:
    """An image ColourJudge answers with ``concept_yes`` and ``object_yes`` yeses."""
    return Image.new("RGB", (16, 16), (50 * concept_yes + 10, 50 * object_yes + 10, 0))


@pytest.fixture
def prompts():
    return builtin_prompts().iloc[[0, 1, 100]].reset_index(drop=True)  # cases 1, 2 (artist), 101 (landmark)


# yes counts (concept, object) per case and seed
COUNTS = {1: {1825: (5, 0), 410: (3, 1)}, 2: {1825: (0, 5)}, 101: {1825: (5, 5), 410: (2, 3), 7: (4, 2)}}


@pytest.fixture
def image_dir(tmp_path, prompts):
    folder = tmp_path / "images"
    for row in prompts.itertuples():
        case = folder / case_folder(row.case_num, row.prompt)
        case.mkdir(parents=True)
        for seed, (c, n) in COUNTS[row.case_num].items():
            _image(c, n).save(case / f"seed{seed:05d}.png")
    return folder


def test_the_formula_is_c_times_5_minus_n_over_25_times_100():
    values = {(c, n): dvd_image_score(c, n) for c in range(6) for n in range(6)}
    assert values[5, 0] == 100 and values[0, 0] == 0 and values[5, 5] == 0 and values[3, 1] == 48
    assert all(v == 4 * c * (5 - n) for (c, n), v in values.items())
    assert len(set(values.values())) == 15  # the paper's "only 15 distinct values"
    for bad in ((6, 0), (-1, 0), (2.5, 1), (0, 7)):
        with pytest.raises(ValueError, match="0..5"):
            dvd_image_score(*bad)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).normal(50, 10, size=200)
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(200), rel=0.15)
    wide = bootstrap_ci(values[:20], seed=3)
    assert wide[1] - wide[0] > high - low
    assert bootstrap_ci([7.0, 7.0, 7.0]) == (7.0, 7.0)
    assert bootstrap_ci(values, np.median, seed=3)[0] < np.median(values)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])


def test_scoring_a_folder_gives_the_authors_columns_and_the_formula(tmp_path, prompts, image_dir):
    judge = ColourJudge()
    table = score_folder(image_dir, prompts, judge, tmp_path / "scores.csv", progress=False)
    assert list(table.columns) == list(IMAGE_COLUMNS)
    assert list(table.columns[:13]) == AUTHORS_SCORER_COLUMNS
    assert len(table) == 6 and judge.images_seen == 6
    row = table[(table.case_num == 1) & (table.seed == 410)].iloc[0]
    assert row.concept_answers == "[1, 1, 1, 0, 0]" and row.object_answers == "[1, 0, 0, 0, 0]"
    assert (row.concept_yes, row.object_yes, row.dvd_score) == (3, 1, 48.0)
    assert row.image_path == f"{case_folder(1, row.prompt)}/seed00410.png"
    expected = {case: np.mean([4 * c * (5 - n) for c, n in seeds.values()]) for case, seeds in COUNTS.items()}
    for case, mean in expected.items():
        assert (table[table.case_num == case].dvd_mean_case == round(mean, 4)).all()


def test_a_rerun_judges_nothing_again_and_gives_the_same_table(tmp_path, prompts, image_dir):
    first = score_folder(image_dir, prompts, ColourJudge(), tmp_path / "scores.csv", progress=False)
    again = ColourJudge()
    second = score_folder(image_dir, prompts, again, tmp_path / "scores.csv", progress=False)
    assert again.images_seen == 0
    pd.testing.assert_frame_equal(first, second)


def test_another_judge_may_not_add_to_the_same_results(tmp_path, prompts, image_dir):
    score_folder(image_dir, prompts, ColourJudge(), tmp_path / "scores.csv", progress=False)
    other = ColourJudge()
    other.name = "another"
    with pytest.raises(StoreError, match="judge: earlier 'colour', now 'another'"):
        score_folder(image_dir, prompts, other, tmp_path / "scores.csv", progress=False)


def test_a_corrupt_image_is_named_and_the_images_before_it_stay_judged(tmp_path, prompts, image_dir):
    broken = next((image_dir / case_folder(101, prompts.prompt[2])).glob("seed00410.png"))
    good = broken.read_bytes()
    broken.write_bytes(good[:40])
    with pytest.raises(ImageFolderError, match=f"cannot read image .*{broken.name}"):
        score_folder(image_dir, prompts, ColourJudge(), tmp_path / "scores.csv", images_per_call=1,
                     progress=False)
    broken.write_bytes(good)
    resumed = ColourJudge()
    table = score_folder(image_dir, prompts, resumed, tmp_path / "scores.csv", images_per_call=1,
                         progress=False)
    assert resumed.images_seen == 2 and len(table) == 6  # case 101 sorts last: 4 were judged before


def test_an_image_folder_matching_no_prompt_names_both_sides(tmp_path, prompts):
    (tmp_path / "case050_something").mkdir()
    (tmp_path / "case051_else").mkdir()
    with pytest.raises(ImageFolderError, match=r"no case folder matches the prompt set \(cases 1-2, 101\); "
                                               r"its case folders are numbered 50-51"):
        find_images(tmp_path, prompts)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageFolderError, match="holds no caseNNN_<slug> folders"):
        find_images(empty, prompts)


def test_images_are_found_in_case_folders_named_by_number_or_by_their_prompt(tmp_path, prompts):
    # case 1 is "Notebook Windmill Rembrandt" style text: a cut-off slug in other letter case fits
    slug = "_".join(prompts.loc[0, "prompt"].split()[:2]).upper()
    (tmp_path / f"case001_{slug}").mkdir()
    (tmp_path / f"case001_{slug}" / "0003.jpg").write_bytes(b"")
    (tmp_path / "case101").mkdir()
    (tmp_path / "case101" / "seed00410.png").write_bytes(b"")
    (tmp_path / "case101" / "notes.txt").write_text("not an image")
    found = find_images(tmp_path, prompts)
    assert found.image_path.tolist() == [f"case001_{slug}/0003.jpg", "case101/seed00410.png"]
    assert found.seed.tolist()[1] == 410 and pd.isna(found.seed.tolist()[0])


def test_a_case_folder_named_after_another_prompt_is_refused(tmp_path, prompts):
    (tmp_path / "case001_a_circle_and_a_square").mkdir()
    (tmp_path / "case002_a_slug_of_their_own").mkdir()
    with pytest.raises(ImageFolderError, match=r"2 case folder\(s\) are named after another prompt.*"
                                               r"case001_a_circle_and_a_square is case 1, whose prompt is"):
        find_images(tmp_path, prompts)


def test_category_figures_are_means_over_prompts_not_images(tmp_path, prompts, image_dir):
    table = score_folder(image_dir, prompts, ColourJudge(), tmp_path / "scores.csv", progress=False)
    per_prompt = prompt_scores(table)
    assert per_prompt.set_index("case_num").dvd.to_dict() == pytest.approx(
        {1: (100 + 48) / 2, 2: 0.0, 101: (0 + 16 + 48) / 3})
    summary = category_scores(table, n_resamples=2000).set_index("category")
    assert summary.loc["artist", "dvd"] == pytest.approx(37.0)  # (74 + 0) / 2, not (100 + 48 + 0) / 3
    assert summary.loc["artist", "n_prompts"] == 2 and summary.loc["artist", "n_images"] == 3
    assert summary.loc["artist", "ci_low"] == 0.0 and summary.loc["artist", "ci_high"] == 74.0
    table["model"] = "m"
    assert category_scores(table, by=("model", "category")).model.tolist() == ["m", "m"]


def test_question_table_has_one_row_per_image_and_question(tmp_path, prompts, image_dir):
    table = score_folder(image_dir, prompts, ColourJudge(), tmp_path / "scores.csv", progress=False)
    questions = question_table(table)
    assert len(questions) == 10 * len(table)
    one = questions[(questions.case_num == 1) & (questions.image_name == "seed00410.png")]
    assert one.answer.tolist() == [True, True, True, False, False, True, False, False, False, False]
    assert one.side.tolist() == ["concept"] * 5 + ["object"] * 5


def test_transparent_images_are_read_on_white_as_the_authors_loader_does(tmp_path):
    from dvdlib.scoring.dvd import load_image

    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(tmp_path / "red.png")
    assert load_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_image(tmp_path / "red.png").getpixel((0, 0)) == (255, 0, 0)
