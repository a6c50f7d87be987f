"""What an executed chapter depends on: the key under which the book and ``dvd run`` cache it.

A chapter's output can change with its notebook, its parameters, and the dvdlib code it runs, so
the key is

    sha256(notebook bytes, its parameters, the dvdlib sources the chapter can read)

where "can read" is every dvdlib module the notebook's code imports, every module those import in
turn (at the top or inside a function, or named as a string such as
``importlib.import_module("dvdlib.toyworld.zoo")``), the packages above them, and the data dvdlib
ships (``dvdlib/data/``). The tools that build the book (:mod:`dvdlib.book.build`,
:mod:`dvdlib.book.runs`, :mod:`dvdlib.book.parameters`, :mod:`dvdlib.book.cli`,
:mod:`dvdlib.book.commands`, this module) and the book's pages are not imported by a chapter, so
editing them re-executes nothing; editing a science module a chapter uses re-executes it. (A
chapter that saves headline numbers imports :mod:`dvdlib.book.headlines`, and so reads that
module and ``dvdlib/book/__init__.py``.)

A notebook whose code cannot be parsed keys on every file of dvdlib instead (never a stale copy).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

PACKAGE = "dvdlib"
DATA = "data"  # dvdlib/data/: shipped files (the toy zoo) that science code reads
_MODULE_NAME = re.compile(rf"{PACKAGE}(\.\w+)*")


def _module_file(package: Path, name: str) -> Path | None:
    """The file of module ``name`` (``dvdlib.a.b``) under ``package``, if it is one of dvdlib's."""
    parts = name.split(".")[1:]
    folder = package.joinpath(*parts)
    for path in (folder / "__init__.py", folder.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _module_name(package: Path, path: Path) -> str:
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _imported_names(tree: ast.AST, module: str | None, is_package: bool) -> set[str]:
    """Every dvdlib module name ``tree`` may import: ``import``/``from`` statements anywhere (relative
    ones resolved against ``module``), ``from X import y`` as both X and X.y, and string constants
    that spell a dvdlib module name (``importlib.import_module("dvdlib.x")``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and module:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and _MODULE_NAME.fullmatch(node.value):
            names.add(node.value)
    return {n for n in names if n == PACKAGE or n.startswith(PACKAGE + ".")}


def _notebook_code(notebook: Path) -> str:
    """The notebook's code cells as one Python text, IPython magics and shell lines left out."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    lines = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        lines += ["" if line.lstrip().startswith(("%", "!")) else line
                  for line in source.splitlines()]
    return "\n".join(lines)


def _all_files(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def chapter_sources(root: Path, notebook: Path) -> list[Path]:
    """The files of ``root/dvdlib`` that ``notebook`` can read (see the module's notes), sorted."""
    package = root / PACKAGE
    try:
        tree = ast.parse(_notebook_code(root / notebook))
    except SyntaxError:
        return _all_files(package)
    files: set[Path] = set()
    pending = list(_imported_names(tree, None, False))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        pending += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages above it
        path = _module_file(package, name)
        if path is None or path in files:
            continue
        files.add(path)
        module_tree = ast.parse(path.read_text(encoding="utf-8"))
        pending += _imported_names(module_tree, _module_name(package, path),
                                   path.name == "__init__.py")
    data = package / DATA
    files.update(_all_files(data) if data.is_dir() else [])
    return sorted(files)


def source_fingerprint(root: Path, files: list[Path]) -> str:
    """A hash of ``files`` (names relative to ``root/dvdlib``, and contents)."""
    package = root / PACKAGE
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def library_fingerprint(root: Path, notebook: Path) -> str:
    """A hash of the dvdlib sources ``notebook`` can read, so a change there re-executes it."""
    return source_fingerprint(root, chapter_sources(root, notebook))


def chapter_key(root: Path, notebook: Path, parameters: dict, library: str) -> str:
    digest = hashlib.sha256()
    digest.update((root / notebook).read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    digest.update(library.encode())
    return digest.hexdigest()
