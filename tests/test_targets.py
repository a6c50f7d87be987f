"""Prompt sets with three targets in one prompt: both layouts read, every target aligned to its
own occurrence, bad files refused naming the value, judging with a fake judge, and the scores
on tables computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dvdlib.prompts.describe import describe_target_set
from dvdlib.prompts.prompt_sets import PromptSetError, case_folder
from dvdlib.prompts.targets import (TARGET_COLUMNS, align_targets, is_target_file, load_targets,
                                    one_prompt_targets, select_target_cases,
                                    target_token_positions)
from dvdlib.scoring.dvd import dvd_image_score
from dvdlib.scoring.questions import OUR_WORDING
from dvdlib.scoring.target_scores import (all_present_rate, image_outcomes, image_pair_columns,
                                          omission_rates, pair_table, pairwise_dvd,
                                          seed_cluster_difference, strong_slot_effects,
                                          target_presence, who_wins)
from dvdlib.scoring.targets import JUDGED_COLUMNS, judge_targets, target_questions
from dvdlib.stats.bootstrap import bootstrap_ci

PILOT_HEADER = ("case_num,prompt,target1_type,target1,target2_type,target2,target3_type,target3,"
                "carrier,template_id,source")
PILOT_ROWS = [
    '1,"a poster combining Amedeo Modigliani painting style, Colosseum, and Cinderella",'
    'artist,amedeo modigliani,landmark,colosseum,character,cinderella,poster,t1,ours',
    # a target glued to other text, a hyphenated name
    '2,"a sticker sheet mixing Van Gogh-inspired artwork, Big Ben, and Spider-Man",'
    'artist,van gogh,landmark,big ben,character,spider-man,sticker sheet,t5,ours',
    # a carrier that is itself an object, and the same word as a target
    '3,"a mug design with a mug, Hokusai-style waves and Batman",'
    'artist,hokusai,object,mug,character,batman,mug,t7,ours',
]
FACTORIAL_HEADER = ("case_num,condition,condition_case_num,prompt,target1_type,target1,"
                    "target1_homogeneity,target2_type,target2,target2_homogeneity,target3_type,"
                    "target3,target3_homogeneity,template_id,source")
NOTEBOOKS = "a notebook cover design that includes a notebook, a coffee mug, and a spiral notebook"
FACTORIAL_ROWS = [
    f'1,000,1,"{NOTEBOOKS}",object,notebook,0,object,coffee mug,0,object,spiral notebook,0,f2,ours',
    '2,001,1,"a notebook cover design that includes a notebook, a coffee mug, and Spider-Man",'
    'object,notebook,0,object,coffee mug,0,character,spider-man,1,f2,ours',
    '3,100,2,"a poster containing Van Gogh-style artwork, a mousepad, and a bag",'
    'artist,van gogh,1,object,mouse pad,0,object,bag,0,f1,ours',
    '4,111,3,"a mural where Pikachu visits Eiffel Tower, painted like Pierre-Auguste Renoir",'
    'artist,pierre-auguste renoir,1,landmark,eiffel tower,1,character,pikachu,1,f4,ours',
]


def write(folder, header: str, rows: list[str], name: str = "targets.csv"):
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def target(table: pd.DataFrame, case: int, slot: int):
    return table[(table["case_num"] == case) & (table["slot"] == slot)].iloc[0]


# ----------------------------------------------------------------------------- reading

def test_the_pilot_layout_reads_into_prompts_and_aligned_targets(tmp_path):
    notes = []
    loaded = load_targets(write(tmp_path, PILOT_HEADER, PILOT_ROWS), report=notes.append)
    assert (loaded.layout, loaded.n_targets) == ("pilot", 3)
    assert list(loaded.prompts.columns) == ["case_num", "prompt", "carrier", "template_id",
                                            "source"]
    assert list(loaded.targets.columns) == list(TARGET_COLUMNS)
    assert len(loaded.targets) == 9 and set(loaded.targets["role"]) == {"target"}
    prompts = dict(zip(loaded.prompts["case_num"], loaded.prompts["prompt"]))
    for row in loaded.targets.itertuples():
        assert prompts[row.case_num][row.start:row.end] == row.phrase
    assert target(loaded.targets, 2, 1)["phrase"] == "Van Gogh"  # glued: "Van Gogh-inspired"
    assert target(loaded.targets, 2, 3)["phrase"] == "Spider-Man"
    assert target(loaded.targets, 1, 1)["strong"] and not target(loaded.targets, 3, 2)["strong"]
    mug = target(loaded.targets, 3, 2)  # the carrier's "mug" comes first, the target's second
    assert (mug["start"], mug["occurrence"], mug["occurrences"]) == (
        prompts[3].index("a mug,") + 2, 2, 2)
    assert "case 3: target2 'mug' occurs 2 times; aligned to occurrence 2" in notes[0]


def test_the_carrier_can_be_a_fourth_target(tmp_path):
    loaded = load_targets(write(tmp_path, PILOT_HEADER, PILOT_ROWS), with_carrier=True,
                          report=lambda note: None)
    carriers = loaded.targets[loaded.targets["role"] == "carrier"]
    assert list(carriers["slot"]) == [4, 4, 4] and set(carriers["type"]) == {"object"}
    mug_carrier = carriers[carriers["case_num"] == 3].iloc[0]
    assert (mug_carrier["start"], mug_carrier["occurrence"]) == (2, 1)
    assert target(loaded.targets, 3, 2)["start"] > mug_carrier["end"]


def test_the_factorial_layout_keeps_conditions_as_text(tmp_path):
    notes = []
    loaded = load_targets(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS), report=notes.append)
    assert loaded.layout == "factorial"
    assert list(loaded.prompts["condition"]) == ["000", "001", "100", "111"]
    assert list(loaded.prompts["condition_case_num"]) == [1, 1, 2, 3]
    strong = loaded.targets.pivot(index="case_num", columns="slot", values="strong")
    assert ["".join(str(int(flag)) for flag in row) for row in strong.to_numpy()] == \
        list(loaded.prompts["condition"])
    assert target(loaded.targets, 3, 2)["phrase"] == "mousepad"
    assert "target2 'mouse pad' found across spacing as 'mousepad'" in notes[0]
    assert target(loaded.targets, 4, 1)["phrase"] == "Pierre-Auguste Renoir"


def test_each_notebook_aligns_to_its_own_occurrence():
    carrier_at = NOTEBOOKS.index("notebook")
    own_at = NOTEBOOKS.index("a notebook,") + 2
    spiral_at = NOTEBOOKS.index("spiral notebook")
    spans, _ = align_targets(NOTEBOOKS, ["notebook", "coffee mug", "spiral notebook"])
    notebook, _, spiral = spans
    assert (notebook.start, notebook.end) == (own_at, own_at + len("notebook"))
    assert notebook.start != carrier_at and not spiral.start <= notebook.start < spiral.end
    assert (notebook.occurrence, notebook.occurrences) == (2, 3)
    assert (spiral.start, spiral.end) == (spiral_at, len(NOTEBOOKS))
    spans, carrier = align_targets(NOTEBOOKS, ["notebook", "spiral notebook"],
                                   carrier="notebook cover design")
    assert (carrier.start, spans[0].start) == (carrier_at, own_at)


def test_token_positions_are_each_targets_own(tmp_path, tokenizer):
    loaded = load_targets(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS),
                          report=lambda note: None)
    positioned = target_token_positions(loaded, tokenizer)
    prompts = dict(zip(loaded.prompts["case_num"], loaded.prompts["prompt"]))

    def tokens(case: int, slot: int) -> list[str]:
        ids = tokenizer(prompts[case])["input_ids"]
        positions = target(positioned, case, slot)["token_positions"]
        return [tokenizer.convert_ids_to_tokens(ids[p]).replace("</w>", "") for p in positions]

    assert target(positioned, 1, 1)["token_positions"] == (8,)  # not 2, the carrier's notebook
    assert tokens(1, 3) == ["spiral", "notebook"]
    assert tokens(2, 3) == ["spider", "-", "man"]
    assert tokens(3, 1) == ["van", "gogh"] and "".join(tokens(3, 2)) == "mousepad"


def test_a_target_cut_by_truncation_is_refused(tmp_path, tokenizer):
    long = "a poster " + "very " * 80 + "showing Colosseum, Monet and Hulk"
    path = write(tmp_path, PILOT_HEADER,
                 [f'1,"{long}",artist,monet,landmark,colosseum,character,hulk,poster,t,ours'])
    with pytest.raises(PromptSetError, match="3 target.*past the 77-token limit"):
        target_token_positions(load_targets(path), tokenizer)


def test_a_target_file_is_told_by_its_header(tmp_path):
    assert is_target_file(write(tmp_path, PILOT_HEADER, PILOT_ROWS, "pilot.csv"))
    assert is_target_file(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS, "factorial.csv"))
    assert not is_target_file(write(tmp_path, "case_num,content_type,content,nm_word,prompt",
                                    ["1,artist,monet,mug,Monet Mug"], "bench.csv"))
    assert not is_target_file(tmp_path / "missing.csv")
    (tmp_path / "latin1.csv").write_bytes(b"target1,\xff\n")
    assert not is_target_file(tmp_path / "latin1.csv")  # load_targets names what is wrong


def test_some_cases_of_a_set_are_kept_with_their_targets(tmp_path):
    loaded = load_targets(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS),
                          report=lambda note: None)
    kept = select_target_cases(loaded, {2, 4})
    assert list(kept.prompts["case_num"]) == [2, 4] and set(kept.targets["case_num"]) == {2, 4}
    assert len(kept.targets) == 6 and kept.layout == "factorial"
    notes = []  # read with cases: the same set, and notes on those cases only
    read = load_targets(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS), cases=[2, 4],
                        report=notes.append)
    assert read.prompts.equals(kept.prompts) and read.targets.equals(kept.targets)
    assert "1 note(s)" in notes[0] and "case 2: target1 'notebook' occurs 2 times" in notes[0]
    bad = _replace(FACTORIAL_ROWS, 0, "notebook,0,", "notebook,2,")  # case 1, not kept: refused
    with pytest.raises(PromptSetError, match="'2' is neither 0 nor 1"):
        load_targets(write(tmp_path, FACTORIAL_HEADER, bad), cases=[2])


def test_a_prompt_typed_with_its_targets_aligns_as_a_file_row():
    notes = []
    typed = one_prompt_targets("a mug design with a mug, Hokusai-style waves and Batman",
                               ["hokusai", "object:mug", "Batman"], report=notes.append)
    assert list(typed.targets["type"]) == ["artist", "object", "character"]  # from the vocabulary
    assert list(typed.targets["phrase"]) == ["Hokusai", "mug", "Batman"]
    mug = typed.targets.iloc[1]
    assert (mug["start"], mug["occurrence"], mug["occurrences"]) == (20, 2, 2)
    assert "target2 'mug' occurs 2 times; aligned to occurrence 2" in notes[0]
    assert one_prompt_targets("a cup and a lamp", ["cup", "lamp"]).targets["type"].tolist() == \
        ["object", "object"]


@pytest.mark.parametrize("prompt, targets, message", [
    ("a mug with Monet", ["monet"], "give at least two targets"),
    ("a mug with Monet", ["painter:monet", "mug"], "unknown value 'painter'"),
    ("a mug with Monet", ["monet", "Monet"], "target1 and target2 are both"),
    ("a mug with Monet", ["monet", "cup"], "target2 'cup' is not in the prompt"),
    ("   ", ["monet", "mug"], "is empty"),
])
def test_a_bad_typed_target_is_named(prompt, targets, message):
    with pytest.raises(PromptSetError, match=message):
        one_prompt_targets(prompt, targets)


def test_chapter_one_describes_a_target_set(tmp_path, tokenizer):
    factorial = write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS, "factorial.csv")
    described = describe_target_set(factorial, tokenizer)
    assert (described.layout, described.n_prompts, described.n_targets) == ("factorial", 4, 12)
    counts = described.counts
    assert list(counts.index) == ["000", "001", "100", "111"]  # conditions as text
    assert list(counts.columns) == ["prompts", "artist", "landmark", "character", "object"]
    assert counts.loc["001"].tolist() == [1, 0, 0, 1, 2] and counts.loc["111", "object"] == 0
    assert described.tokens.loc["object", "targets"] == 7
    assert described.tokens.loc["character", "max"] == 3  # spider - man
    prompts = load_targets(factorial, report=lambda note: None).prompts["prompt"]
    assert list(described.prompt_tokens) == [
        len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    aligned = described.alignment.set_index(["case_num", "slot"])
    assert set(aligned.index) == {(1, 1), (2, 1), (3, 2)}  # notebook twice, mouse pad apart
    assert aligned.loc[(1, 1), "token_positions"] == (8,)
    assert aligned.loc[(1, 1), "occurrence"] == 2 and aligned.loc[(3, 2), "phrase"] == "mousepad"
    assert "4 prompts in the factorial layout, 12 targets" in described.sentence()
    pilot = describe_target_set(write(tmp_path, PILOT_HEADER, PILOT_ROWS), tokenizer)
    assert list(pilot.counts.index) == ["all"] and pilot.counts.loc["all", "prompts"] == 3
    nothing = describe_target_set(None, tokenizer)
    assert nothing.counts.empty and "none was given" in nothing.sentence()


# ----------------------------------------------------------------------------- bad files

def _replace(rows: list[str], index: int, old: str, new: str) -> list[str]:
    changed = list(rows)
    changed[index] = changed[index].replace(old, new, 1)
    return changed


FACTORIAL_MISTAKES = {
    "condition lost its zeros": (_replace(FACTORIAL_ROWS, 1, ",001,", ",1,"),
                                 "column condition: '1' is not 3 characters 0 or 1"),
    "condition off the slots": (_replace(FACTORIAL_ROWS, 1, ",001,", ",011,"),
                                "'011' does not match the slots' homogeneity '001'"),
    "homogeneity 2": (_replace(FACTORIAL_ROWS, 0, "notebook,0,", "notebook,2,"),
                      "row 2, column target1_homogeneity: '2' is neither 0 nor 1"),
    "homogeneity nan": (_replace(FACTORIAL_ROWS, 0, "notebook,0,", "notebook,nan,"),
                        "target1_homogeneity: 'nan' is not a finite number"),
    "homogeneity inf": (_replace(FACTORIAL_ROWS, 0, "notebook,0,", "notebook,inf,"),
                        "target1_homogeneity: 'inf' is not a finite number"),
    "homogeneity off the type": (_replace(_replace(FACTORIAL_ROWS, 3, "eiffel tower,1",
                                                   "eiffel tower,0"), 3, ",111,", ",101,"),
                                 "target2 'eiffel tower' has type landmark but homogeneity 0"),
    "unknown type": (_replace(FACTORIAL_ROWS, 3, "landmark", "building"),
                     "row 5, column target2_type: unknown value 'building'; accepted: artist, "
                     "landmark, character, object"),
    "duplicate case": (_replace(FACTORIAL_ROWS, 2, "3,100,", "1,100,"),
                       "row 4, column case_num: duplicate case_num 1 (first at row 2)"),
    "case number inf": (_replace(FACTORIAL_ROWS, 2, "3,100,", "inf,100,"),
                        "row 4, column case_num: 'inf' is not a whole number"),
    "condition case number nan": (_replace(FACTORIAL_ROWS, 2, ",100,2,", ",100,nan,"),
                                  "column condition_case_num: 'nan' is not a whole number"),
    "duplicate condition case": ([*FACTORIAL_ROWS,
                                  FACTORIAL_ROWS[0].replace("1,000,", "5,000,", 1)],
                                 "row 6, column condition_case_num: duplicate condition_case_num 1 "
                                 "within condition 000 (first at row 2)"),
    "empty word": (_replace(FACTORIAL_ROWS, 2, ",bag,", ",,"), "row 4, column target3: empty"),
}


@pytest.mark.parametrize("rows, message", FACTORIAL_MISTAKES.values(), ids=FACTORIAL_MISTAKES)
def test_a_bad_factorial_row_is_named(tmp_path, rows, message):
    with pytest.raises(PromptSetError, match="1 problem") as caught:
        load_targets(write(tmp_path, FACTORIAL_HEADER, rows))
    assert message in str(caught.value)


def test_a_missing_column_is_named(tmp_path):
    header = FACTORIAL_HEADER.replace("target2_homogeneity,", "")
    rows = [row.replace("coffee mug,0,", "coffee mug,") for row in FACTORIAL_ROWS[:1]]
    with pytest.raises(PromptSetError, match="missing column.s. target2_homogeneity of the "
                                             "factorial layout"):
        load_targets(write(tmp_path, header, rows))
    with pytest.raises(PromptSetError, match="missing column.s. carrier of the pilot"):
        load_targets(write(tmp_path, PILOT_HEADER.replace(",carrier", ""), []))


def test_every_bad_row_is_named_in_one_error(tmp_path):
    rows = _replace(PILOT_ROWS, 0, "landmark,colosseum", "landmark,big ben")
    rows = _replace(rows, 1, "character,spider-man", "character,batman")
    with pytest.raises(PromptSetError, match="2 do not") as caught:
        load_targets(write(tmp_path, PILOT_HEADER, rows))
    assert "case 1: target2 'big ben' is not in the prompt" in str(caught.value)
    assert "case 2: target3 'batman' is not in the prompt" in str(caught.value)
    rows = _replace(PILOT_ROWS, 2, "character,batman", "character,hokusai")
    rows = _replace(rows, 0, "landmark,colosseum", "building,colosseum")
    with pytest.raises(PromptSetError, match="2 problem") as caught:
        load_targets(write(tmp_path, PILOT_HEADER, rows))
    assert "unknown value 'building'" in str(caught.value)
    assert "target1 and target3 are both 'hokusai'" in str(caught.value)


def test_a_word_only_inside_another_target_is_not_aligned(tmp_path):
    inside = ('1,"a poster with a spiral notebook and Monet",artist,monet,object,notebook,'
              'object,spiral notebook,poster,t,ours')
    with pytest.raises(PromptSetError, match="target2 'notebook' occurs only inside the text "
                                             "of another target or the carrier"):
        load_targets(write(tmp_path, PILOT_HEADER, [inside]))


def test_the_carrier_needs_a_carrier_column(tmp_path):
    with pytest.raises(PromptSetError, match="with_carrier needs a carrier column, which the "
                                             "factorial layout does not have"):
        load_targets(write(tmp_path, FACTORIAL_HEADER, FACTORIAL_ROWS), with_carrier=True)


# ----------------------------------------------------------------------------- judging

# The fake judge's yes count per subject, for an image of level 0 and of level 1.
YES = {"amedeo modigliani": (5, 4), "colosseum": (0, 3), "cinderella": (3, 2),
       "van gogh": (5, 5), "big ben": (1, 0), "spider-man": (4, 2),
       "hokusai": (2, 5), "mug": (3, 0), "batman": (5, 1),
       "poster": (0, 0), "sticker sheet": (5, 3)}
SEED_LEVELS = {1825: 0, 410: 1}


class SubjectJudge:
    """Answers from the question's subject alone: yes to the first ``YES[subject][level]``
    questions, where an image's level is its red value divided by 100."""

    name = "subject"

    def __init__(self):
        self.asked = []

    def answer(self, items):
        self.asked += [question for _, questions in items for question in questions]
        return [[q.index < YES[q.subject][image.getpixel((0, 0))[0] // 100] for q in questions]
                for image, questions in items]


@pytest.fixture
def pilot_images(tmp_path):
    loaded = load_targets(write(tmp_path, PILOT_HEADER, PILOT_ROWS), with_carrier=True,
                          report=lambda note: None)
    for row in loaded.prompts.itertuples():
        folder = tmp_path / "images" / case_folder(row.case_num, row.prompt)
        folder.mkdir(parents=True)
        for seed, level in SEED_LEVELS.items():
            Image.new("RGB", (8, 8), (100 * level + 10, 0, 0)).save(folder / f"seed{seed}.png")
    return loaded, tmp_path / "images"


def test_judging_gives_each_targets_yes_count(pilot_images, tmp_path):
    loaded, images = pilot_images
    judge = SubjectJudge()
    judged = judge_targets(images, loaded, judge, tmp_path / "judged.csv", progress=False)
    assert list(judged.columns) == list(JUDGED_COLUMNS)
    assert len(judged) == 3 * 2 * 4  # prompts x seeds x (three targets and the carrier)
    for row in judged.itertuples():
        expected = YES[row.word][SEED_LEVELS[row.seed]]
        assert (row.yes, row.present) == (expected, expected >= 3)
        assert row.answers == str([int(i < expected) for i in range(5)])
    texts = {q.subject: q.text for q in judge.asked if q.index == 0}
    assert texts["van gogh"] == target_questions("artist", "van gogh")[0].text
    assert texts["van gogh"].endswith(OUR_WORDING.lenient)
    assert texts["mug"] == "Is there a mug in this picture?" + OUR_WORDING.strict
    assert {q.side for q in judge.asked if q.subject in ("mug", "poster")} == {"object"}
    again = SubjectJudge()  # a rerun judges nothing again and gives the same table
    assert judge_targets(images, loaded, again, tmp_path / "judged.csv",
                         progress=False).equals(judged)
    assert again.asked == []


# ----------------------------------------------------------------------------- scores

def judged_by_hand(rows) -> pd.DataFrame:
    """A judged table from (case, seed, slot, type, yes) rows; strong unless of type object."""
    table = pd.DataFrame(rows, columns=["case_num", "seed", "slot", "type", "yes"])
    return table.assign(image_name=[f"seed{s}.png" for s in table["seed"]], role="target",
                        word=table["type"] + table["slot"].astype(str),
                        strong=table["type"] != "object", present=table["yes"] >= 3)


HAND = judged_by_hand([
    (1, 1, 1, "artist", 5), (1, 1, 2, "landmark", 0), (1, 1, 3, "character", 3),
    (1, 2, 1, "artist", 2), (1, 2, 2, "landmark", 4), (1, 2, 3, "character", 4),
    (2, 1, 1, "artist", 3), (2, 1, 2, "object", 3), (2, 1, 3, "character", 5),
])


def test_presence_all_present_and_omission_by_hand():
    presence = target_presence(HAND).set_index(["case_num", "slot"])["presence"]
    assert presence.to_dict() == {(1, 1): 0.5, (1, 2): 0.5, (1, 3): 1.0,
                                  (2, 1): 1.0, (2, 2): 1.0, (2, 3): 1.0}
    assert list(image_outcomes(HAND)["n_present"]) == [2, 2, 3]
    assert all_present_rate(HAND) == pytest.approx(1 / 3)
    omission = omission_rates(HAND)
    assert list(omission["type"]) == ["artist", "landmark", "character", "object"]
    assert list(omission["omission_rate"]) == pytest.approx([1 / 3, 1 / 2, 0, 0])


def test_who_wins_and_pairwise_dvd_by_hand():
    wins = who_wins(HAND)
    # slot 1 over slot 2: present/absent in image (1, 1) only; slot 3 over 1: image (1, 2)
    assert wins.loc[1, 2] == pytest.approx(1 / 3) and wins.loc[2, 1] == pytest.approx(1 / 3)
    assert wins.loc[3, 1] == pytest.approx(1 / 3) and wins.loc[1, 3] == 0
    assert wins.loc[3, 2] == pytest.approx(1 / 3) and np.isnan(wins.loc[1, 1])
    dvd = pairwise_dvd(HAND)
    assert dvd.loc[1, 2] == pytest.approx(np.mean([dvd_image_score(5, 0), dvd_image_score(2, 4),
                                                   dvd_image_score(3, 3)]))
    assert dvd.loc[1, 2] == pytest.approx((100 + 8 + 24) / 3)
    assert dvd.loc[3, 1] == pytest.approx(np.mean([dvd_image_score(3, 5), dvd_image_score(4, 2),
                                                   dvd_image_score(5, 3)]))
    by_type = who_wins(HAND, by="type")
    assert by_type.loc["artist", "landmark"] == pytest.approx(1 / 2)
    assert by_type.loc["object", "artist"] == 0


def test_the_table_dvd_score_writes_holds_each_pair_per_image():
    table = image_pair_columns(HAND)
    assert len(table) == len(HAND)
    row = table[(table["case_num"] == 1) & (table["seed"] == 1) & (table["slot"] == 1)].iloc[0]
    assert row["presence"] == 0.5 and np.isnan(row["wins_over_1"]) and np.isnan(row["dvd_over_1"])
    assert (row["wins_over_2"], row["wins_over_3"]) == (1, 0)  # 5 yes over 0, over 3
    assert (row["dvd_over_2"], row["dvd_over_3"]) == (100, 40)  # 5 x 5 / 25 x 100, 5 x 2 / 25
    wins = who_wins(HAND)
    for over in (1, 2, 3):  # the mean over images of a column is the matrix's entry
        own = table[table["slot"] == over]
        for under in {1, 2, 3} - {over}:
            assert own[f"wins_over_{under}"].mean() == pytest.approx(wins.loc[over, under])
            assert own[f"dvd_over_{under}"].mean() == pytest.approx(
                pairwise_dvd(HAND).loc[over, under])
    pairs = pair_table(HAND).set_index(["axis", "over", "under"])
    assert pairs.loc[("slot", "1", "2"), "who_wins"] == pytest.approx(1 / 3)
    assert pairs.loc[("slot", "1", "2"), "pairwise_dvd"] == pytest.approx((100 + 8 + 24) / 3)
    assert pairs.loc[("slot", "1", "2"), "n_images"] == 3
    assert pairs.loc[("type", "artist", "landmark"), "who_wins"] == pytest.approx(1 / 2)
    assert pairs.loc[("type", "artist", "landmark"), "n_images"] == 2
    assert len(pairs.loc["slot"]) == 6


def factorial_by_hand(n_seeds: int = 5) -> pd.DataFrame:
    """Every condition of the 2x2x2 design as one prompt, over ``n_seeds`` seeds, with
    presence drawn at random (fixed)."""
    rng = np.random.default_rng(3)
    rows = []
    for case, condition in enumerate(f"{i:03b}" for i in range(8)):
        for seed in range(1, n_seeds + 1):
            for slot, flag in enumerate(condition, 1):
                kind = "character" if flag == "1" else "object"
                rows.append((case + 1, seed, slot, kind, int(rng.integers(0, 6))))
    return judged_by_hand(rows)


def test_the_factorial_effect_is_computed_over_seeds():
    judged = factorial_by_hand()
    effects = strong_slot_effects(judged, n_resamples=2000, seed=0)
    assert len(effects) == 3 * 2 * 2  # slot made strong x other slot x the other's own kind
    row = effects[(effects["strong_slot"] == 1) & (effects["other_slot"] == 2)
                  & ~effects["other_strong"]].iloc[0]
    wide = judged.pivot(index=["case_num", "seed"], columns="slot", values=["strong", "present"])
    generic_2 = wide[~wide["strong", 2]]
    if_strong = generic_2[generic_2["strong", 1]]["present", 2]
    if_generic = generic_2[~generic_2["strong", 1]]["present", 2]
    assert row["effect"] == pytest.approx(if_strong.mean() - if_generic.mean())
    assert (row["n_images_strong"], row["n_images_generic"], row["n_seeds"]) == (10, 10, 5)
    # Balanced: each seed holds two images per group, so resampling seeds is resampling the
    # seeds' own differences, which bootstrap_ci does with the same draws.
    per_seed = (if_strong.groupby(level="seed").mean() - if_generic.groupby(level="seed").mean())
    low, high = bootstrap_ci(per_seed.to_numpy(), n_resamples=2000, seed=0)
    assert (row["low"], row["high"]) == (pytest.approx(low), pytest.approx(high))


def test_images_that_share_a_seed_are_one_cluster():
    # Within each seed the images differ, but every seed's counts are the same: an interval over
    # images would have width, one over seeds has none.
    per_seed = np.tile([2, 4, 1, 4], (6, 1))
    assert seed_cluster_difference(per_seed, n_resamples=500) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="have no seed"):
        strong_slot_effects(factorial_by_hand().assign(seed=pd.NA))
    with pytest.raises(ValueError, match="need the factorial set"):
        strong_slot_effects(HAND[HAND["case_num"] == 1])
