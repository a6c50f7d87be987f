"""The chapter cache key covers the dvdlib code a chapter can read, and nothing of the book's tools."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from dvdlib.book import chapter_cache
from dvdlib.book.chapters import chapter_notebooks
from dvdlib.paths import project_root

# What no chapter reads: the book's tools (all of dvdlib/book/ but the headlines a chapter saves),
# the commands' bodies among them (dvdlib/book/commands/).
CHAPTER_READABLE_BOOK_TOOLS = {"book/__init__.py", "book/headlines.py"}


def make_project(root: Path) -> Path:
    """A checkout whose chapter imports ``dvdlib.science``, which reaches ``helper`` inside a
    function and ``lazy`` by name; ``dvdlib/book/build.py`` stands for the book's tools."""
    package = root / "dvdlib"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text('"""dvdlib"""\n')
    (package / "science.py").write_text(
        "import importlib\n\n\ndef f():\n    from . import helper\n"
        "    return importlib.import_module('dvdlib.lazy')\n")
    (package / "helper.py").write_text("X = 1\n")
    (package / "lazy.py").write_text("Y = 1\n")
    (package / "book").mkdir()
    (package / "book" / "build.py").write_text("CSS = 'body {}'\n")
    (package / "data" / "weights.bin").write_bytes(b"\0\1")
    (root / "book").mkdir()
    (root / "book" / "notes.md").write_text("# Notes\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%matplotlib inline\nfrom dvdlib import science\n"
                                          "!echo shell\nprint(science.f())")]
    nbformat.write(nb, root / "book" / "ch.ipynb")
    return Path("book/ch.ipynb")


def test_sources_are_what_the_chapter_imports_and_the_shipped_data(tmp_path):
    notebook = make_project(tmp_path)
    sources = {str(p.relative_to(tmp_path / "dvdlib")) for p in
               chapter_cache.chapter_sources(tmp_path, notebook)}
    assert sources == {"__init__.py", "science.py", "helper.py", "lazy.py", "data/weights.bin"}


def test_editing_the_book_tools_or_a_page_keeps_the_key_and_editing_science_changes_it(tmp_path):
    notebook = make_project(tmp_path)
    before = chapter_cache.library_fingerprint(tmp_path, notebook)
    (tmp_path / "dvdlib" / "book" / "build.py").write_text("CSS = 'body { color: red }'\n")
    (tmp_path / "book" / "notes.md").write_text("# Notes, edited\n")
    (tmp_path / "dvdlib" / "__pycache__").mkdir()
    (tmp_path / "dvdlib" / "__pycache__" / "science.cpython-311.pyc").write_bytes(b"\0")
    assert chapter_cache.library_fingerprint(tmp_path, notebook) == before
    for changed in ("helper.py", "lazy.py", "data/weights.bin"):
        path = tmp_path / "dvdlib" / changed
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        assert chapter_cache.library_fingerprint(tmp_path, notebook) != before, changed
        path.write_bytes(original)


def test_a_notebook_that_does_not_parse_keys_on_all_of_dvdlib(tmp_path):
    notebook = make_project(tmp_path)
    nb = nbformat.read(tmp_path / notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("def broken(:"))
    nbformat.write(nb, tmp_path / notebook)
    sources = chapter_cache.chapter_sources(tmp_path, notebook)
    assert tmp_path / "dvdlib" / "book" / "build.py" in sources


def test_no_chapter_of_the_book_reads_the_book_tools():
    root = project_root(Path(__file__).parent)
    for notebook in chapter_notebooks(root):
        names = {str(p.relative_to(root / "dvdlib")) for p in
                 chapter_cache.chapter_sources(root, notebook)}
        assert "prompts/prompt_sets.py" in names or "toyworld/zoo.py" in names, notebook  # it does read science
        tools = {n for n in names if n.startswith("book/")} - CHAPTER_READABLE_BOOK_TOOLS
        assert not tools, (notebook, tools)


def test_the_run_commands_do_not_import_the_book_builder():
    root = project_root(Path(__file__).parent)
    for module in ("runs.py", "parameters.py", "chapters.py", "chapter_cache.py", "execute.py"):
        tree = ast.parse((root / "dvdlib" / "book" / module).read_text(encoding="utf-8"))
        assert "dvdlib.book.build" not in chapter_cache._imported_names(tree, None, False), module
