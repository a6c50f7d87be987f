"""Prompt sets: the authors' CSV loader and writer, validation errors, the built-in set, folder
names, and that only this boundary knows the authors' column names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import dvdlib

from dvdlib.prompts import describe, prompt_sets
from dvdlib.prompts.prompt_sets import PromptSetError

HEADER = "case_num,content_type,content,nm_word,prompt\n"


def write(tmp_path, text, name="prompt_sets.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_authors_file_loads_with_its_quirks(authors_csv):
    table = prompt_sets.load_prompts(authors_csv, expect="dominancebench")
    assert len(table) == 300
    assert table["category"].value_counts().to_dict() == {
        "artist": 100, "landmark": 100, "character": 100}
    assert table["case_num"].tolist() == list(range(1, 301))
    row = table.set_index("case_num")
    # Doubled quotes inside a quoted field are one quote each.
    assert row.loc[19, "prompt"] == '"Armored Wallet: Monet\'s ""Lady with Parasol"""'
    # UTF-8 text and a quoted comma survive.
    assert row.loc[87, "prompt"] == "雪中虎図, 北斎 Tiger in the Snow, Hokusai T-Shirt"
    assert row.loc[3, "prompt"] == "Claude Monet, Lily Pond at Giverny Coaster"
    assert table["concept"].nunique() == 64 and table["object"].nunique() == 34
    assert len(describe.duplicate_prompts(table)) > 0


def test_quoting_and_unicode_round_trip(tmp_path):
    path = write(tmp_path, HEADER + '1,artist,monet,mug,"Mug, ""Water Lilies"" by Monet — café"\n')
    assert prompt_sets.load_prompts(path).loc[0, "prompt"] == 'Mug, "Water Lilies" by Monet — café'


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "case_num,content_type,content,prompt\n1,artist,monet,Monet Mug\n")
    with pytest.raises(PromptSetError, match="missing column.*nm_word"):
        prompt_sets.load_prompts(path)


@pytest.mark.parametrize(
    "row, message",
    [
        ("1,painter,monet,mug,Monet Mug", r"row 2, column content_type: unknown value 'painter'"),
        ("1,artist,monet,mug,   ", r"row 2, column prompt: empty value"),
        ("x1,artist,monet,mug,Monet Mug", r"row 2, column case_num: 'x1' is not a positive integer"),
        ("1,artist,,mug,Monet Mug", r"row 2, column content: empty value"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, message):
    with pytest.raises(PromptSetError, match=message):
        prompt_sets.load_prompts(write(tmp_path, HEADER + row + "\n"))


def test_duplicate_case_number_names_both_rows(tmp_path):
    path = write(tmp_path, HEADER + "7,artist,monet,mug,Monet Mug\n7,artist,monet,cup,Monet Cup\n")
    with pytest.raises(PromptSetError, match=r"row 3, column case_num: duplicate case number 7 "
                                             r"\(first at row 2\)"):
        prompt_sets.load_prompts(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        prompt_sets.load_prompts(tmp_path / "nope.csv")


def test_builtin_set_has_the_benchmark_shape():
    table = prompt_sets.builtin_prompts()
    assert list(table.columns) == [*prompt_sets.COLUMNS, "concept_phrase", "object_phrase"]
    assert table["category"].value_counts().to_dict() == {c: 100 for c in prompt_sets.CATEGORIES}
    assert table["case_num"].is_unique
    assert describe.duplicate_prompts(table).empty
    for category in prompt_sets.CATEGORIES:
        assert set(table.loc[table.category == category, "concept"]) == set(
            prompt_sets.VOCABULARY[category])
    # Every prompt names its concept and its object.
    for row in table.itertuples():
        assert row.concept.lower() in row.prompt.lower()
        assert row.object.lower() in row.prompt.lower()


def test_case_folder_names():
    assert prompt_sets.case_folder(1, "Notebook Windmill Rembrandt") == "case001_notebook_windmill_rembrandt"
    assert prompt_sets.case_folder(87, "雪中虎図, 北斎 Tiger") == "case087_雪中虎図_北斎_tiger"
    assert prompt_sets.parse_case_folder("case087_anything") == 87
    assert prompt_sets.parse_case_folder("notes") is None
    assert len(prompt_sets.PAPER_SEEDS) == 10


def test_paper_seeds_are_the_documented_draws():
    import random

    rng = random.Random(42)
    assert tuple(rng.randint(1, 10000) for _ in range(10)) == prompt_sets.PAPER_SEEDS


def test_token_lengths_count_bpe_pieces(tokenizer):
    table = prompt_sets.validate_prompts(
        prompt_sets.builtin_prompts().head(1).assign(prompt="Neuschwanstein Castle Coaster"))
    # "neuschwanstein" is several BPE tokens; start and end tokens are not counted.
    assert describe.token_lengths(table, tokenizer).iloc[0] == len(
        tokenizer.tokenize("Neuschwanstein Castle Coaster"))
    assert describe.token_lengths(table, tokenizer).iloc[0] > 3


def test_seeds_start_with_the_papers_and_never_repeat():
    assert prompt_sets.seeds(3) == list(prompt_sets.PAPER_SEEDS[:3])
    many = prompt_sets.seeds(13)
    assert many[:10] == list(prompt_sets.PAPER_SEEDS) and many[10:] == [10001, 10002, 10003]
    assert len(set(prompt_sets.seeds(500))) == 500
    with pytest.raises(ValueError, match="positive integer, got 0"):
        prompt_sets.seeds(0)


# The authors' other prompt files: extra columns, and an object written otherwise in the prompt.
EXTRA = (
    "case_num,content_type,content,nm_word,object_prompt_phrase,prompt,template_id,source\n"
    "1,artist,andy warhol,mousepad,mouse pad,a mouse pad with colors reminiscent of Andy Warhol,t3,sys\n"
    "2,artist,amedeo modigliani,halloween,Halloween decoration,"
    "a studio product photo of a Halloween decoration covered in Amedeo Modigliani-inspired artwork,t2,sys\n"
    "3,artist,claude monet,magnets,decorative magnets,"
    "a studio product photo of decorative magnets covered in Claude Monet-inspired artwork,t2,sys\n"
    "4,artist,rembrandt,t-shirt,,a close-up of a t shirt printed in the style of Rembrandt,t4,sys\n"
    "5,landmark,eiffel tower,mug,mug,  an Eiffel  Tower mug ,t1,sys\n"
)


def test_extra_column_files_keep_their_columns_and_give_the_phrases(tmp_path, tokenizer):
    notes = []
    table = prompt_sets.load_prompts(write(tmp_path, EXTRA), report=notes.append)
    assert list(table.columns) == [*prompt_sets.COLUMNS, "object_prompt_phrase", "template_id", "source",
                                   "concept_phrase", "object_phrase"]
    assert table["template_id"].tolist() == ["t3", "t2", "t2", "t4", "t1"]
    assert table["object_phrase"].tolist() == ["mouse pad", "Halloween decoration", "decorative magnets",
                                               "t shirt", "mug"]
    assert table["concept_phrase"].tolist() == ["Andy Warhol", "Amedeo Modigliani", "Claude Monet",
                                                "Rembrandt", "Eiffel  Tower"]
    assert table["object"].tolist() == ["mousepad", "halloween", "magnets", "t-shirt", "mug"]
    assert table.loc[4, "prompt"] == "an Eiffel  Tower mug"  # stripped, inner spaces kept
    # Row 4 has no phrase: "t-shirt" is matched across the hyphen, and that is reported.
    assert len(notes) == 1 and "case 4: nm_word 't-shirt' as 't shirt'" in notes[0]
    # Every phrase lies among the tokens the text encoder reads.
    from dvdlib.attention.token_positions import check_alignment, find_phrase

    check_alignment(tokenizer, table)
    positions = find_phrase(tokenizer, table.loc[1, "prompt"], table.loc[1, "object_phrase"])
    assert len(positions) == 2  # halloween, decoration
    # The judge's questions still name the object's word, not its phrase.
    from dvdlib.scoring.questions import questions_for

    questions = questions_for("artist", "andy warhol", table.loc[0, "object"])
    assert questions[5].subject == "mousepad"


def test_words_found_only_across_spacing_are_reported_without_a_phrase_column(tmp_path):
    path = write(tmp_path, HEADER + "1,artist,monet,mousepad,Monet Mouse Pad\n"
                                    "2,artist,monet,t-shirt,Monet T Shirt\n")
    with pytest.warns(prompt_sets.PhraseMatchWarning, match="mousepad' as 'Mouse Pad'.*t-shirt' as 'T Shirt'"):
        table = prompt_sets.load_prompts(path)
    assert table["object_phrase"].tolist() == ["Mouse Pad", "T Shirt"]


def test_every_row_whose_words_are_missing_is_listed_at_once_with_the_prompts_tokens(tmp_path):
    path = write(tmp_path, HEADER + "1,artist,monet,mug,Monet Cup\n2,artist,degas,mug,Monet Mug\n"
                                    "3,artist,monet,mug,Monet Mugs\n")
    with pytest.raises(PromptSetError) as caught:
        prompt_sets.load_prompts(path)
    message = str(caught.value)
    assert "3 do not" in message and "\n" not in message
    assert "case 1: nm_word 'mug' is not in the prompt 'Monet Cup' (its tokens: Monet · Cup)" in message
    assert "case 2: content 'degas'" in message and "case 3: nm_word 'mug'" in message


def test_expecting_dominancebench_checks_its_shape(tmp_path):
    path = write(tmp_path, HEADER + "1,artist,monet,mug,Monet Mug\n")
    with pytest.raises(PromptSetError, match=r"not the dominancebench file: it has 1 rows \(1 artist, "
                                             r"0 landmark, 0 character\); dominancebench has 300 rows"):
        prompt_sets.load_prompts(path, expect="dominancebench")
    with pytest.raises(ValueError, match="expect='dominance' is not a known prompt file; accepted: "
                                         "dominancebench"):
        prompt_sets.load_prompts(path, expect="dominance")


# --- the boundary: the authors' names in their files, ours everywhere else ----------------------


def test_the_authors_file_is_read_into_category_concept_and_object(tmp_path):
    table = prompt_sets.load_prompts(write(tmp_path, HEADER + "1,artist,monet,mug,Monet Mug\n"))
    assert list(table.columns[:5]) == ["case_num", "category", "concept", "object", "prompt"]
    assert table.loc[0, ["category", "concept", "object"]].tolist() == ["artist", "monet", "mug"]
    assert not set(prompt_sets.AUTHORS_COLUMNS) - set(prompt_sets.COLUMNS) & set(table.columns)


def test_a_saved_prompt_file_has_the_authors_header_and_reads_back(tmp_path):
    table = prompt_sets.builtin_prompts().iloc[[0, 150, 299]].assign(template_id=["a", "b", "c"])
    path = prompt_sets.save_prompts(table, tmp_path / "prompts.csv")
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join([*prompt_sets.AUTHORS_COLUMNS, "template_id"])
    back = prompt_sets.load_prompts(path)
    pd.testing.assert_frame_equal(back, table.reset_index(drop=True)[back.columns.tolist()])


def test_each_side_of_the_boundary_refuses_the_other_sides_names(tmp_path):
    ours = prompt_sets.builtin_prompts().head(2)
    path = tmp_path / "ours.csv"
    ours[list(prompt_sets.COLUMNS)].to_csv(path, index=False)
    with pytest.raises(PromptSetError, match=r"missing column\(s\) content_type, content, nm_word.*"
                                             r"dvdlib's names for content_type, content, nm_word.*"
                                             r"save_prompts"):
        prompt_sets.load_prompts(path)
    theirs = ours[list(prompt_sets.COLUMNS)].rename(columns=prompt_sets.TO_AUTHORS)
    with pytest.raises(PromptSetError, match=r"missing column\(s\) category, concept, object.*"
                                             r"the authors' CSV names.*load_prompts"):
        prompt_sets.validate_prompts(theirs)


def test_no_module_but_the_boundary_names_the_authors_columns():
    """``nm_word`` and ``content_type`` are the authors' CSV names: only :mod:`dvdlib.prompts.prompt_sets`, which
    reads and writes their files, says them; the rest of dvdlib and the chapters' code say object
    and category."""
    package = Path(dvdlib.__file__).parent
    boundary = {package / "prompts" / "prompt_sets.py", package / "prompts" / "targets.py"}
    pattern = re.compile(r"\b(nm_word|content_type)\b")
    found = [f"{path.relative_to(package.parent)}:{number}" for path in sorted(package.rglob("*.py"))
             if path not in boundary
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    book = package.parent / "book"
    for notebook in sorted(book.glob("*.ipynb")) if book.is_dir() else []:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        found += [f"{notebook.name}, cell {i}" for i, cell in enumerate(cells)
                  if cell["cell_type"] == "code" and pattern.search("".join(cell["source"]))]
    assert found == []
