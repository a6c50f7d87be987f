"""The book builder: chapters are re-executed exactly when their notebook, parameters or the dvdlib
code they import change, and a failing chapter names the notebook and the cell. The chapters'
code cells stay thin: no branch on the model's kind, no cell over 20 lines."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from dvdlib.book import build as book, chapters
from dvdlib.book.execute import NotebookFailed


def make_project(root: Path, body: str = "import dvdlib\nprint(x * 2)") -> Path:
    (root / "dvdlib").mkdir(parents=True)
    (root / "dvdlib" / "__init__.py").write_text("VERSION = 1\n")
    (root / "book").mkdir()
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: c\n    chapters:\n"
        "      - file: book/ch\n      - file: book/notes\n"
    )
    (root / "book" / "intro.md").write_text("# Intro\n")
    (root / "book" / "notes.md").write_text("# Notes\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]})
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "book" / "ch.ipynb")
    return Path("book/ch.ipynb")


def test_toc_order_and_notebooks(tmp_path):
    make_project(tmp_path)
    assert chapters.toc_files(tmp_path) == ["book/intro", "book/ch", "book/notes"]
    assert chapters.chapter_notebooks(tmp_path) == [Path("book/ch.ipynb")]


@pytest.mark.slow
def test_cache_reuses_until_notebook_parameters_or_library_change(tmp_path):
    nb = make_project(tmp_path)
    out = tmp_path / "_build" / "executed"
    first = book.execute_chapter(tmp_path, nb, out)
    assert not first.reused and first.executed.is_file()
    executed = nbformat.read(first.executed, as_version=4)
    assert executed.cells[-1].outputs[0]["text"] == "2\n"

    assert book.execute_chapter(tmp_path, nb, out).reused  # nothing changed

    assert not book.execute_chapter(tmp_path, nb, out, parameters={"x": 5}).reused
    rerun = nbformat.read(out / nb, as_version=4)
    assert rerun.cells[-1].outputs[0]["text"] == "10\n"
    assert book.execute_chapter(tmp_path, nb, out, parameters={"x": 5}).reused

    # The book's tools and pages are not read by the chapter; dvdlib's package is.
    (tmp_path / "dvdlib" / "book").mkdir()
    (tmp_path / "dvdlib" / "book" / "build.py").write_text("# the book's tools\n")
    (tmp_path / "book" / "notes.md").write_text("# Notes, edited\n")
    assert book.execute_chapter(tmp_path, nb, out, parameters={"x": 5}).reused
    (tmp_path / "dvdlib" / "__init__.py").write_text("VERSION = 2  # a change in the library\n")
    assert not book.execute_chapter(tmp_path, nb, out, parameters={"x": 5}).reused

    source = nbformat.read(tmp_path / nb, as_version=4)
    source.cells[-1].source = "print(x * 3)"
    nbformat.write(source, tmp_path / nb)
    assert not book.execute_chapter(tmp_path, nb, out, parameters={"x": 5}).reused
    assert nbformat.read(out / nb, as_version=4).cells[-1].outputs[0]["text"] == "15\n"


@pytest.mark.slow
def test_failing_chapter_names_notebook_and_cell_and_keeps_old_copy(tmp_path):
    nb = make_project(tmp_path)
    out = tmp_path / "_build" / "executed"
    book.execute_chapter(tmp_path, nb, out)
    good = (out / nb).read_bytes()
    source = nbformat.read(tmp_path / nb, as_version=4)
    source.cells[-1].source = "raise ValueError('broken chapter')"
    nbformat.write(source, tmp_path / nb)
    with pytest.raises(NotebookFailed, match=r"book/ch.ipynb failed in cell \d+ .*ValueError: "
                                             r"broken chapter"):
        book.execute_chapter(tmp_path, nb, out)
    assert (out / nb).read_bytes() == good  # the last good copy is never half-overwritten


def test_smoke_copies_inject_the_notebooks_own_smoke_parameters(tmp_path):
    nb_path = make_project(tmp_path)
    nb = nbformat.read(tmp_path / nb_path, as_version=4)
    nb.metadata["dvdbook"] = {"smoke": {"x": 7}}
    nbformat.write(nb, tmp_path / nb_path)
    assert book.smoke_parameters(tmp_path, nb_path) == {"x": 7}
    (copy,) = book.write_smoke_notebooks(tmp_path, tmp_path / "_build" / "smoke")
    cells = nbformat.read(copy, as_version=4).cells
    injected = [c for c in cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "x = 7" in injected[0].source
    # The source notebook is untouched.
    assert not any("injected-parameters" in c.metadata.get("tags", [])
                   for c in nbformat.read(tmp_path / nb_path, as_version=4).cells)


def test_smoke_copies_must_stay_inside_the_project(tmp_path):
    make_project(tmp_path / "project")
    with pytest.raises(ValueError, match="inside the project"):
        book.write_smoke_notebooks(tmp_path / "project", tmp_path / "elsewhere")


def test_bad_smoke_metadata_is_named(tmp_path):
    nb_path = make_project(tmp_path)
    nb = nbformat.read(tmp_path / nb_path, as_version=4)
    nb.metadata["dvdbook"] = {"smoke": ["x", 7]}
    nbformat.write(nb, tmp_path / nb_path)
    with pytest.raises(ValueError, match="dvdbook.smoke must be a mapping"):
        book.smoke_parameters(tmp_path, nb_path)
