"""Prompt sets: the authors' CSV loader, validation errors, the built-in set, folder names."""

from __future__ import annotations

import pytest

from dvdlib import bench
from dvdlib.bench import PromptSetError

HEADER = "case_num,content_type,content,nm_word,prompt\n"


def write(tmp_path, text, name="bench.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_authors_file_loads_with_its_quirks(authors_csv):
    table = bench.load_prompts(authors_csv)
    assert len(table) == 300
    assert table["content_type"].value_counts().to_dict() == {
        "artist": 100, "landmark": 100, "character": 100}
    assert table["case_num"].tolist() == list(range(1, 301))
    row = table.set_index("case_num")
    # Doubled quotes inside a quoted field are one quote each.
    assert row.loc[19, "prompt"] == '"Armored Wallet: Monet\'s ""Lady with Parasol"""'
    # UTF-8 text and a quoted comma survive.
    assert row.loc[87, "prompt"] == "雪中虎図, 北斎 Tiger in the Snow, Hokusai T-Shirt"
    assert row.loc[3, "prompt"] == "Claude Monet, Lily Pond at Giverny Coaster"
    assert table["content"].nunique() == 64 and table["nm_word"].nunique() == 34
    assert len(bench.duplicate_prompts(table)) > 0


def test_quoting_and_unicode_round_trip(tmp_path):
    path = write(tmp_path, HEADER + '1,artist,monet,mug,"Mug, ""Water Lilies"" by Monet — café"\n')
    assert bench.load_prompts(path).loc[0, "prompt"] == 'Mug, "Water Lilies" by Monet — café'


def test_missing_column_is_named(tmp_path):
    path = write(tmp_path, "case_num,content_type,content,prompt\n1,artist,monet,Monet Mug\n")
    with pytest.raises(PromptSetError, match="missing column.*nm_word"):
        bench.load_prompts(path)


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
        bench.load_prompts(write(tmp_path, HEADER + row + "\n"))


def test_duplicate_case_number_names_both_rows(tmp_path):
    path = write(tmp_path, HEADER + "7,artist,monet,mug,Monet Mug\n7,artist,monet,cup,Monet Cup\n")
    with pytest.raises(PromptSetError, match=r"row 3, column case_num: duplicate case number 7 "
                                             r"\(first at row 2\)"):
        bench.load_prompts(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        bench.load_prompts(tmp_path / "nope.csv")


def test_builtin_set_has_the_benchmark_shape():
    table = bench.builtin_prompts()
    assert list(table.columns) == list(bench.COLUMNS)
    assert table["content_type"].value_counts().to_dict() == {c: 100 for c in bench.CATEGORIES}
    assert table["case_num"].is_unique
    assert bench.duplicate_prompts(table).empty
    for category in bench.CATEGORIES:
        assert set(table.loc[table.content_type == category, "content"]) == set(
            bench.VOCABULARY[category])
    # Every prompt names its concept and its object.
    for row in table.itertuples():
        assert row.content.lower() in row.prompt.lower()
        assert row.nm_word.lower() in row.prompt.lower()


def test_case_folder_names():
    assert bench.case_folder(1, "Notebook Windmill Rembrandt") == "case001_notebook_windmill_rembrandt"
    assert bench.case_folder(87, "雪中虎図, 北斎 Tiger") == "case087_雪中虎図_北斎_tiger"
    assert bench.parse_case_folder("case087_anything") == 87
    assert bench.parse_case_folder("notes") is None
    assert len(bench.PAPER_SEEDS) == 10


def test_paper_seeds_are_the_documented_draws():
    import random

    rng = random.Random(42)
    assert tuple(rng.randint(1, 10000) for _ in range(10)) == bench.PAPER_SEEDS


def test_token_lengths_count_bpe_pieces(tokenizer):
    table = bench.validate_prompts(
        bench.builtin_prompts().head(1).assign(prompt="Neuschwanstein Castle Coaster"))
    # "neuschwanstein" is several BPE tokens; start and end tokens are not counted.
    assert bench.token_lengths(table, tokenizer).iloc[0] == len(
        tokenizer.tokenize("Neuschwanstein Castle Coaster"))
    assert bench.token_lengths(table, tokenizer).iloc[0] > 3


def test_seeds_start_with_the_papers_and_never_repeat():
    assert bench.seeds(3) == list(bench.PAPER_SEEDS[:3])
    many = bench.seeds(13)
    assert many[:10] == list(bench.PAPER_SEEDS) and many[10:] == [10001, 10002, 10003]
    assert len(set(bench.seeds(500))) == 500
    with pytest.raises(ValueError, match="positive integer, got 0"):
        bench.seeds(0)
