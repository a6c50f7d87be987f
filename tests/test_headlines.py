"""Headline numbers: saved atomically by chapters, substituted into the staged pages by the builder,
and shown as "(not computed in this build)" when missing."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from dvdlib.book import build as book, headlines

INTRO = """# Intro

Finding one: {{ headline:02_data_diversity:summary }}
At K=1 the score is {{ headline:02_data_diversity:dvd_k1 }} \
({{headline:02_data_diversity:dvd_k1:.3f}}).
Steps: {{ headline:02_data_diversity:steps }}.
Missing key: {{ headline:02_data_diversity:no_such_key }}.
Missing chapter: {{ headline:03_attention:summary }}.
"""


def test_save_and_load_round_trip(tmp_path):
    path = headlines.save("02_data_diversity", {"dvd_k1": np.float32(63.25), "steps": np.int64(50)},
                          texts={"summary": "Rigid priors dominate."}, folder=tmp_path)
    assert path == tmp_path / "headlines" / "02_data_diversity.json"
    assert headlines.load("02_data_diversity", tmp_path) == {
        "values": {"dvd_k1": 63.25, "steps": 50}, "texts": {"summary": "Rigid priors dominate."}}
    assert isinstance(headlines.load("02_data_diversity", tmp_path)["values"]["steps"], int)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert headlines.load("03_attention", tmp_path) is None
    assert headlines.flat_values(tmp_path) == {"02_data_diversity:dvd_k1": 63.25,
                                               "02_data_diversity:steps": 50}


def test_save_goes_to_the_build_folder_named_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DVD_BUILD_DIR", str(tmp_path / "run"))
    path = headlines.save("ch", {"x": 1})
    assert path == (tmp_path / "run" / "headlines" / "ch.json").resolve()
    assert headlines.load_all() == {"ch": {"values": {"x": 1}, "texts": {}}}


@pytest.mark.parametrize("chapter, values, texts, message", [
    ("../escape", {"x": 1}, None, "bad chapter name '../escape'"),
    ("ch", {"bad key": 1}, None, "bad headline name 'bad key'"),
    ("ch", {"flag": True}, None, "ch:flag must be a number .* got bool True"),
    ("ch", {"x": "63"}, None, "ch:x must be a number .* got str '63'; put sentences in texts="),
    ("ch", {"x": float("nan")}, None, "ch:x must be finite, got nan"),
    ("ch", {}, {"summary": 3}, "text ch:summary must be a str, got int 3"),
    ("ch", {"x": 1}, {"x": "one"}, "both a number and a text in ch: x"),
])
def test_bad_headlines_are_refused_and_nothing_is_written(tmp_path, chapter, values, texts,
                                                          message):
    with pytest.raises(ValueError, match=message):
        headlines.save(chapter, values, texts=texts, folder=tmp_path)
    assert not (tmp_path / "headlines").exists() or not any((tmp_path / "headlines").iterdir())


def test_substitute_fills_values_and_marks_what_is_missing(tmp_path):
    headlines.save("02_data_diversity", {"dvd_k1": 63.2468, "steps": 50},
                   texts={"summary": "Concepts seen once dominate."}, folder=tmp_path)
    text, found = headlines.substitute(INTRO, tmp_path)
    assert "Finding one: Concepts seen once dominate." in text
    assert "At K=1 the score is 63.2 (63.247)." in text
    assert "Steps: 50." in text
    assert f"Missing key: {headlines.NOT_COMPUTED}." in text
    assert f"Missing chapter: {headlines.NOT_COMPUTED}." in text
    assert "{{" not in text
    missing = [(p.chapter, p.key) for p in found if p.value is None]
    assert missing == [("02_data_diversity", "no_such_key"), ("03_attention", "summary")]


def test_bad_format_spec_names_the_placeholder(tmp_path):
    headlines.save("ch", {"x": 1.5}, folder=tmp_path)
    with pytest.raises(ValueError, match=r"bad format spec 'q' in placeholder .*headline:ch:x:q"):
        headlines.substitute("{{ headline:ch:x:q }}", tmp_path)


@pytest.mark.parametrize("value, shown", [(63, "63"), (100.0, "100"), (63.2468, "63.2"),
                                          (0.01234, "0.0123"), (12345.6, "12,346")])
def test_default_number_format(value, shown):
    assert headlines.format_value(value) == shown


def make_book(root: Path) -> None:
    """A small book: intro with placeholders, a reproduction page with markers, one chapter."""
    (root / "dvdlib").mkdir(parents=True)
    (root / "dvdlib" / "__init__.py").write_text("")
    (root / "book").mkdir()
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/02_data_diversity\n"
        "  - file: book/reproduction\n")
    (root / "book" / "intro.md").write_text(INTRO)
    (root / "book" / "reproduction.md").write_text(
        f"# Reproduction\n\n{book.PARAMETERS_MARKER}\n\n{book.RUNS_MARKER}\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 2. Data diversity\n\nWhy diversity matters."),
        nbformat.v4.new_code_cell("k = 4  # distinct training instances\nname = 'circle'",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(k)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "book" / "02_data_diversity.ipynb")


def test_staged_pages_get_numbers_tables_and_rerun_box(tmp_path):
    root = tmp_path / "project"
    make_book(root)
    out = root / "_build"
    # An executed copy as the builder leaves it: the notebook plus its run metadata.
    executed = nbformat.read(root / "book" / "02_data_diversity.ipynb", as_version=4)
    executed.metadata["dvdbook"] = {
        "key": "k", "seconds": 12.4, "parameters": {"k": 1},
        "finished": "2026-01-02T03:04:05+00:00",
        "platform": {"cpu": "Test CPU", "cores": 2, "memory_gib": 8.0, "gpu": "none found",
                     "os": "Linux", "python": "3.11.7", "torch": "2.14.1"}}
    (out / "executed" / "book").mkdir(parents=True)
    nbformat.write(executed, out / "executed" / "book" / "02_data_diversity.ipynb")
    headlines.save("02_data_diversity", {"dvd_k1": 70.0}, texts={"summary": "It dominates."},
                   folder=out)

    logged = []
    stage = book.stage_book(root, out / "executed", out / "stage", log=logged.append)

    intro = (stage / "book" / "intro.md").read_text()
    assert "Finding one: It dominates." in intro and "At K=1 the score is 70 (70.000)" in intro
    assert intro.count(headlines.NOT_COMPUTED) == 3
    assert any("not computed in this build" in line and "03_attention:summary" in line
               for line in logged)
    assert "{{ headline" in (root / "book" / "intro.md").read_text()  # the source is untouched

    reproduction = (stage / "book" / "reproduction.md").read_text()
    assert "dvdbook:" not in reproduction
    assert "| {doc}`/book/02_data_diversity` | `k=1` | 12 s | 2026-01-02 03:04:05 | M1 |" \
        in reproduction
    assert "| M1 | Test CPU | 2 | 8 GiB | none found | Linux | 3.11.7 | 2.14.1 |" in reproduction
    assert "| {doc}`/book/02_data_diversity` | `k` | `4` | distinct training instances |" \
        in reproduction

    staged = json.loads((stage / "book" / "02_data_diversity.ipynb").read_text())
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
               for c in staged["cells"]]
    assert sources[0] == "# 2. Data diversity"  # the box comes right after the title
    box = sources[1]
    assert box.startswith(":::{admonition} Rerun this chapter")
    assert ".venv/bin/dvd run book/02_data_diversity.ipynb \\\n    -p k 1 \\\n    -p name circle" \
        in box
    assert "| `k` | `1` | distinct training instances |" in box
    assert sources[2] == "Why diversity matters."
    assert nbformat.validate(nbformat.reads(json.dumps(staged), as_version=4)) is None


# ----------------------------------------------------------------------------- stored numbers

def test_value_differences_names_every_changed_missing_or_new_number(tmp_path):
    reference = tmp_path / "reference"
    headlines.save("ch", {"a": 1.0, "c": 3, "run_seconds": 7.0}, texts={"t": "old words"},
                   folder=reference)
    (reference / "headlines" / "ch.json").rename(reference / "ch.json")
    headlines.save("ch", {"a": 1.0, "c": 3, "run_seconds": 9.5}, texts={"t": "new words"},
                   folder=tmp_path / "same")
    assert headlines.value_differences(reference, tmp_path / "same") == []  # texts, run times
    headlines.save("ch", {"a": 1.5, "d": 4}, folder=tmp_path / "moved")
    assert headlines.value_differences(reference, tmp_path / "moved") == [
        "ch:a: 1.0 -> 1.5", "ch:c: missing (was 3)", "ch:d: new (4)",
        "ch:run_seconds: missing (was 7.0)"]
    assert headlines.value_differences(reference, tmp_path / "empty") == ["ch: not built"]
    with pytest.raises(ValueError, match="no headline files"):
        headlines.value_differences(tmp_path / "empty", tmp_path / "same")


@pytest.mark.after_notebooks
def test_the_smoke_chapters_of_this_run_give_the_stored_numbers(session_started):
    """The chapters nbval ran in this test run (``scripts/test``: smoke parameters) saved the numbers
    stored in ``tests/reference_headlines/smoke``. A change meant to move them stores the new ones
    (``bash scripts/compare_headlines smoke _build/test`` lists what moved)."""
    from dvdlib.paths import build_dir

    folder = headlines.headlines_dir(build_dir())
    fresh = sorted(p.stem for p in folder.glob("*.json") if p.stat().st_mtime >= session_started)
    if not fresh:
        pytest.skip("no chapter ran in this test run (scripts/test runs them before this test)")
    reference = Path(__file__).parent / "reference_headlines" / "smoke"
    differences = headlines.value_differences(reference, build_dir())
    assert [line for line in differences if line.split(":")[0] in fresh] == []


def test_landing_page_table_lists_each_saved_verdict_and_code_renders_collapsed(tmp_path):
    from dvdlib.stats import verdicts

    root = tmp_path / "project"
    make_book(root)
    (root / "book" / "intro.md").write_text(f"# Intro\n\n{book.FINDINGS_MARKER}\n")
    out = root / "_build"
    executed = nbformat.read(root / "book" / "02_data_diversity.ipynb", as_version=4)
    executed.cells.insert(2, nbformat.v4.new_code_cell(
        "k = 1", metadata={"tags": ["injected-parameters"]}))
    (out / "executed" / "book").mkdir(parents=True)
    nbformat.write(executed, out / "executed" / "book" / "02_data_diversity.ipynb")
    test = verdicts.Test(finding="finding 1", claim="low diversity dominates more",
                         measure="DvD(K=1) - DvD(unlimited)", side="above")
    ceiling = verdicts.room_requirement(100.0, 100.0, "above", names=("K = 1", "unlimited"))
    at_7_5 = verdicts.decide(test, (0.0, 0.0, 0.0), [ceiling])
    default = verdicts.decide(test, (4.0, -2.6, 13.9))
    values, texts = default.headline("verdict")
    more_values, more_texts = at_7_5.headline("verdict_g7.5")
    headlines.save("02_data_diversity", {**values, **more_values}, texts={**texts, **more_texts},
                   folder=out)

    stage = book.stage_book(root, out / "executed", out / "stage", log=lambda _line: None)

    intro = (stage / "book" / "intro.md").read_text()
    rows = [line for line in intro.splitlines() if line.startswith("| Finding 1")]
    assert rows == [
        "| Finding 1 | {doc}`/book/02_data_diversity` | DvD(K=1) - DvD(unlimited) "
        "| +4.0 [-2.6, +13.9] | **inconclusive** | the interval contains the bound |",
        "| Finding 1 | {doc}`/book/02_data_diversity` | DvD(K=1) - DvD(unlimited) "
        "| +0.0 [+0.0, +0.0] | **not testable** | unlimited is at the ceiling (100.0, ceiling 100.0) |"]
    staged = json.loads((stage / "book" / "02_data_diversity.ipynb").read_text())
    code = [c for c in staged["cells"] if c["cell_type"] == "code"]
    assert [c["metadata"]["tags"] for c in code] == [
        ["parameters", "hide-input"], ["injected-parameters", "remove-cell"], ["hide-input"]]


def test_a_build_without_verdicts_says_so_in_the_findings_table(tmp_path):
    assert headlines.findings_table(tmp_path) == \
        f"No chapter saved a verdict {headlines.NOT_COMPUTED}."
