"""The chapters stay thin: narrative, parameters and a few calls; the logic lives in dvdlib.

Read statically from ``book/*.ipynb`` (every chapter of ``_toc.yml``): no code cell branches on
the model's kind (a chapter opens its study with one call that knows toy from real), none is over
20 lines, and no code line is over 100 characters (the rendered book shows code without wrapping).
The parameters cell is the chapter's interface, one declaration and its comment per line, so its
length is the number of parameters and is not counted; every parameter its metadata declares a
rule or a smoke value for must be one of those lines.
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


def code_cells(notebook: Path) -> list[tuple[int, list[str], bool]]:
    """(cell number, lines, whether it is the parameters cell) of every code cell."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [(number, "".join(cell["source"]).splitlines(),
             "parameters" in cell.get("metadata", {}).get("tags", []))
            for number, cell in enumerate(cells) if cell["cell_type"] == "code"]


def shape_problems(notebook: Path) -> list[str]:
    problems = []
    for number, lines, is_parameters in code_cells(notebook):
        if len(lines) > MAX_CELL_LINES and not is_parameters:
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


@pytest.mark.parametrize("notebook", CHAPTERS, ids=str)
def test_every_declared_parameter_is_in_the_parameters_cell(notebook):
    document = json.loads((ROOT / notebook).read_text(encoding="utf-8"))
    declared = document["metadata"].get("dvdbook", {})
    lines = [lines for _, lines, is_parameters in code_cells(ROOT / notebook) if is_parameters]
    names = {line.split("=")[0].strip() for line in (lines[0] if lines else []) if "=" in line}
    assert set(declared.get("parameters", {})) <= names
    assert set(declared.get("smoke", {})) <= names


def test_a_fat_or_branching_cell_is_found(tmp_path):
    notebook = tmp_path / "nb.ipynb"
    cells = [{"cell_type": "code", "source": "\n".join(["x = 1"] * 21)},
             {"cell_type": "code", "source": "\n".join(["x = 1"] * 21),
              "metadata": {"tags": ["parameters"]}},
             {"cell_type": "code", "source": "if toy:\n    y = 2\nz = '" + "a" * 100 + "'"}]
    notebook.write_text(json.dumps({"cells": cells}))
    assert shape_problems(notebook) == ["cell 0: 21 lines (at most 20)",
                     "cell 2: branches on the model's kind: 'if toy:'",
                     "cell 2, line 3: 106 characters (at most 100)"]
