"""Two packages, imports one way: the import graph of dvdlib has no circle, and no module outside
``dvdlib/book/`` imports ``dvdlib.book`` (the book's tools). Read statically from the source, so
every import counts: at the top or inside a function, absolute or relative, or a module named as
a string (``importlib.import_module("dvdlib.book.runs")``)."""

from __future__ import annotations

import ast
from pathlib import Path

import dvdlib

PACKAGE = Path(dvdlib.__file__).parent
BOOK = "dvdlib.book"


def module_files(package: Path) -> dict[str, Path]:
    """Every module of the package under ``package`` (a folder named like the package) by name."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def import_graph(package: Path) -> dict[str, set[str]]:
    """For each module, the package's modules it imports (an imported function counts as its
    module; a name of no module, as the nearest package above it)."""
    files = module_files(package)
    root = package.name

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                names.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.startswith(root + ".") and resolve(node.value) == node.value:
                names.add(node.value)
        targets = {resolve(n) for n in names if n == root or n.startswith(root + ".")}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (each holds a circle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def imports_of_the_book(graph: dict[str, set[str]], book: str = BOOK) -> dict[str, set[str]]:
    """Modules outside ``book`` that import it, with what they import."""
    found = {}
    for module, targets in graph.items():
        if module == book or module.startswith(book + "."):
            continue
        wrong = {t for t in targets if t == book or t.startswith(book + ".")}
        if wrong:
            found[module] = wrong
    return found


# ----------------------------------------------------------------------------- the real tree

def test_dvdlib_has_no_import_circle():
    assert circles(import_graph(PACKAGE)) == []


def test_no_module_outside_the_book_package_imports_it():
    graph = import_graph(PACKAGE)
    assert BOOK in graph and "dvdlib.book.cli" in graph  # the book's tools are where we look
    assert imports_of_the_book(graph) == {}


# ----------------------------------------------------------------------------- the checks fail

def fake_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "dvdlib"
    for name, text in {"__init__.py": "", "book/__init__.py": "", "book/runs.py": "X = 1\n",
                       "science.py": "import json\n", **files}.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_an_import_of_the_book_from_science_is_found_in_every_spelling(tmp_path):
    spellings = [
        "from dvdlib.book import runs\n",
        "import dvdlib.book.runs\n",
        "def f():\n    from dvdlib.book.runs import X\n    return X\n",
        "from .book import runs\n",
        "import importlib\nrunner = importlib.import_module('dvdlib.book.runs')\n",
    ]
    for number, text in enumerate(spellings):
        package = fake_package(tmp_path / str(number), {"science.py": text})
        found = imports_of_the_book(import_graph(package))
        assert found == {"dvdlib.science": {"dvdlib.book.runs"}}, text
    # The book importing the science is the allowed direction.
    package = fake_package(tmp_path / "ok", {"book/runs.py": "from dvdlib import science\n"})
    assert imports_of_the_book(import_graph(package)) == {}


def test_a_circle_is_found_even_through_an_import_inside_a_function(tmp_path):
    package = fake_package(tmp_path, {
        "a.py": "from dvdlib import b\n",
        "b.py": "def later():\n    from dvdlib.c import thing\n    return thing\n",
        "c.py": "import dvdlib.a\nthing = 1\n",
    })
    assert circles(import_graph(package)) == [["dvdlib.a", "dvdlib.b", "dvdlib.c"]]


# ----------------------------------------------------------------------------- imports run down

# The folders of dvdlib from the bottom up. A module imports only from its own unit or a unit
# below it, so a reader can take the tree in this order and never meet a name from further up.
LAYERS = (
    ("dvdlib.paths", "dvdlib.store", "dvdlib.sharding"),  # the build folder, atomic files, shards
    ("dvdlib.prompts", "dvdlib.stats", "dvdlib.usage"),  # prompt sets, seeds, tokenizer; intervals,
    # verdicts; the command-line error and seed options
    ("dvdlib.toyworld",),  # the embedded world and its models (no judge, no scores)
    ("dvdlib.models",),  # what a model argument names, loading, random-weight models
    ("dvdlib.attention",),  # locating layers, token positions, recording, ablation, shares
    ("dvdlib.interventions",),  # attention edits, head rankings, guided updates, sampling with them
    ("dvdlib.scoring",),  # questions, judges, the DvD score
    ("dvdlib.generation",),  # the paper's generation protocol
    ("dvdlib.chapters", "dvdlib.probe"),  # the experiments
    ("dvdlib.book",),  # the book's tools and the dvd command
)


def unit_of(module: str, layers=LAYERS) -> tuple[int, str] | None:
    for level, units in enumerate(layers):
        for unit in units:
            if module == unit or module.startswith(unit + "."):
                return level, unit
    return None


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> dict[str, set[str]]:
    """Modules that import from a unit above their own, with what they import."""
    found = {}
    for module, targets in graph.items():
        here = unit_of(module, layers)
        if here is None:
            continue
        up = {t for t in targets if (there := unit_of(t, layers)) and there[0] > here[0]}
        if up:
            found[module] = up
    return found


def test_every_module_of_dvdlib_sits_in_one_layer():
    graph = import_graph(PACKAGE)
    loose = [m for m in graph if m != "dvdlib" and unit_of(m) is None]
    assert loose == []


def test_imports_only_run_down_the_layers():
    assert upward_imports(import_graph(PACKAGE)) == {}


def test_an_import_running_up_is_found(tmp_path):
    package = fake_package(tmp_path, {"low/__init__.py": "", "low/a.py": "from dvdlib.high import b\n",
                                      "high/__init__.py": "", "high/b.py": "X = 1\n"})
    layers = (("dvdlib.low",), ("dvdlib.high",))
    assert upward_imports(import_graph(package), layers) == {"dvdlib.low.a": {"dvdlib.high.b"}}


def test_no_project_module_is_imported_through_importlib():
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
                users.append(str(path.relative_to(PACKAGE)))
    assert users == []


def test_at_most_six_modules_sit_directly_in_dvdlib_and_none_is_over_500_lines():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}
