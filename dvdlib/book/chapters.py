"""The book's table of chapters: the files ``_toc.yml`` names and which of them are notebooks.

Both the book builder (:mod:`dvdlib.book.build`) and the run commands (:mod:`dvdlib.book.runs`)
read it, so it lives apart from both and neither imports the other for it.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def toc_files(root: Path) -> list[str]:
    """Every file named in ``_toc.yml`` (root first), without suffix, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapter_notebooks(root: Path) -> list[Path]:
    """The notebooks of the book, relative to ``root``, in reading order."""
    return [Path(f + ".ipynb") for f in toc_files(root) if (root / (f + ".ipynb")).is_file()]
