"""The chapters stay thin: narrative, parameters and a few calls; the logic lives in dvdlib.

Read statically from ``book/*.ipynb`` (every chapter of ``_toc.yml``): no code cell branches on
the model's kind (a chapter opens its study with one call that knows toy from real), none is over
20 lines, and no code line is over 100 characters (the rendered book shows code without wrapping).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dvdlib.book.chapters import chapter_notebooks
from dvdlib.paths import project_root

ROOT = project_root(Path(__file__).parent)
CHAPTERS = chapter_notebooks(ROOT)
MAX_CELL_LINES = 20
MAX_LINE = 100
TOY_BRANCH = re.compile(r"\bif\s+(not\s+)?(toy|world)\b")


def code_cells(notebook: Path) -> list[tuple[int, list[str]]]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [(number, "".join(cell["source"]).splitlines())
            for number, cell in enumerate(cells) if cell["cell_type"] == "code"]


def shape_problems(notebook: Path) -> list[str]:
    problems = []
    for number, lines in code_cells(notebook):
        if len(lines) > MAX_CELL_LINES:
            problems.append(f"cell {number}: {len(lines)} lines (at most {MAX_CELL_LINES})")
        problems += [f"cell {number}: branches on the model's kind: {line.strip()!r}"
                     for line in lines if TOY_BRANCH.search(line)]
        problems += [f"cell {number}, line {i}: {len(line)} characters (at most {MAX_LINE})"
                     for i, line in enumerate(lines, 1) if len(line) > MAX_LINE]
    return problems


def test_the_book_has_chapters_to_check():
    assert len(CHAPTERS) >= 5


@pytest.mark.parametrize("notebook", CHAPTERS, ids=str)
def test_every_chapter_is_thin(notebook):
    assert shape_problems(ROOT / notebook) == []


def test_a_fat_or_branching_cell_is_found(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    cells = [{"cell_type": "code", "source": "\n".join(["x = 1"] * 21)},
             {"cell_type": "code", "source": "if toy:\n    y = 2\nz = '" + "a" * 100 + "'"}]
    notebook.write_text(json.dumps({"cells": cells}))
    assert shape_problems(notebook) == ["cell 0: 21 lines (at most 20)",
                     "cell 1: branches on the model's kind: 'if toy:'",
                     "cell 1, line 3: 106 characters (at most 100)"]
