"""Question wording: our five plus five per category, the instructions, and the user's JSON file."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from dvdlib.prompts.prompt_sets import PromptSetError, builtin_prompts
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE
from dvdlib.scoring.questions import (OUR_WORDING, WordingError, chapter_wording, check_prompt_words,
                              load_wording, questions_for)


@pytest.mark.parametrize("category, concept, obj", [
    ("artist", "van gogh", "coffee mug"), ("landmark", "big ben", "t-shirt"),
    ("character", "pikachu", "tote bag"), ("print", "sunset", "mug"),
])
def test_ten_questions_five_per_side_each_naming_its_subject(category, concept, obj):
    questions = questions_for(category, concept, obj)
    assert [(q.side, q.index) for q in questions] == (
        [("concept", i) for i in range(QUESTIONS_PER_SIDE)] + [("object", i) for i in range(QUESTIONS_PER_SIDE)])
    for q in questions:
        subject = concept if q.side == "concept" else obj
        assert q.subject == subject and subject in q.text
    assert len({q.text for q in questions}) == 2 * QUESTIONS_PER_SIDE


def test_only_artist_concept_questions_are_lenient():
    strict, lenient = OUR_WORDING.strict, OUR_WORDING.lenient
    for category in ("artist", "landmark", "character", "print"):
        for q in questions_for(category, "concept word", "mug"):
            expected = lenient if (category, q.side) == ("artist", "concept") else strict
            assert q.text.endswith(expected), (category, q.side, q.text)
    assert "yes or no" in strict.lower() and lenient != strict


def test_object_questions_are_shared_by_the_three_categories():
    def object_texts(category):
        return [q.text for q in questions_for(category, "x", "mug") if q.side == "object"]

    assert object_texts("artist") == object_texts("landmark") == object_texts("character")


def test_a_wording_file_round_trips_and_accepts_the_authors_placeholder(tmp_path):
    data = OUR_WORDING.to_dict()
    data["concept"]["landmark"] = [f"Q{i}: is the {{content}} there?" for i in range(5)]
    path = tmp_path / "wording.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    wording = load_wording(path)
    texts = [q.text for q in questions_for("landmark", "eiffel tower", "mug", wording)]
    assert texts[0] == "Q0: is the eiffel tower there?" + data["instructions"]["strict"]
    assert texts[5:] == [q.text for q in questions_for("landmark", "eiffel tower", "mug")][5:]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["concept"].update(artist=d["concept"]["artist"][:4]), r"concept\.artist: 4 questions"),
    (lambda d: d["object"].update(default=["Is {thing} here?"] * 5), r"placeholder \{thing\}"),
    (lambda d: d.update(format="v0"), "format is 'v0'"),
    (lambda d: d.update(lenient=["sculptor"]), "lenient names 'sculptor'"),
    (lambda d: d["instructions"].pop("strict"), "instructions must be"),
])
def test_a_bad_wording_file_names_the_bad_entry(tmp_path, edit, message):
    data = OUR_WORDING.to_dict()
    edit(data)
    path = tmp_path / "wording.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(WordingError, match=message):
        load_wording(path)


def test_a_category_without_questions_is_named():
    data = OUR_WORDING.to_dict()
    del data["concept"]["print"]
    from dvdlib.scoring.questions import wording_from_dict

    with pytest.raises(WordingError, match="no concept questions for category 'print'"):
        questions_for("print", "sunset", "mug", wording_from_dict(data))


def test_a_chapter_question_file_must_cover_the_prompt_sets_categories(tmp_path):
    assert chapter_wording("", ["artist", "print"]) is OUR_WORDING
    data = OUR_WORDING.to_dict()
    del data["concept"]["print"]
    data["object"] = {"artist": data["object"]["default"]}  # no default: other objects are missing
    path = tmp_path / "authors.json"
    path.write_text(json.dumps(data))
    assert chapter_wording(str(path), ["artist"]).source == str(path)
    with pytest.raises(WordingError, match=r"lacks concept questions for category 'print'; object questions "
                                           r"for category 'print'; object questions for category 'landmark'"):
        chapter_wording(str(path), ["print", "artist", "landmark"])
    with pytest.raises(FileNotFoundError, match="question file not found"):
        chapter_wording(str(tmp_path / "none.json"), ["artist"])


def test_prompt_words_are_matched_ignoring_case_and_spaces():
    check_prompt_words(builtin_prompts())
    table = pd.DataFrame([{"case_num": 7, "category": "artist", "concept": "van gogh",
                           "object": "notebook", "prompt": "Van  Gogh's Starry Night Notebook"}])
    check_prompt_words(table)


def test_every_prompt_missing_its_words_is_listed():
    table = builtin_prompts().head(3).copy()
    table.loc[0, "concept"] = "rembrandt"
    table.loc[2, "object"] = "umbrella"
    with pytest.raises(PromptSetError) as caught:
        check_prompt_words(table, "my.csv")
    message = str(caught.value)
    assert message.startswith("my.csv")
    assert "case 1: concept 'rembrandt'" in message and "case 3: object 'umbrella'" in message
    assert "case 2" not in message
