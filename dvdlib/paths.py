"""Where the project keeps its build outputs and caches.

Nothing here is global state: every function reads the environment when called, so a caller
(or a test) can point ``DVD_BUILD_DIR`` elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

BUILD_DIR_ENV = "DVD_BUILD_DIR"


def project_root(start: Path | None = None) -> Path:
    """The repository root: the nearest folder above ``start`` holding ``_toc.yml``.

    Notebooks run with their own folder as working directory (papermill, nbval, JupyterLab),
    so they find the project by walking up rather than trusting the working directory.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file() and (folder / "dvdlib").is_dir():
            return folder
    raise FileNotFoundError(
        f"no dvd-book checkout (a folder with _toc.yml and dvdlib/) at or above {here}"
    )


def build_dir(start: Path | None = None) -> Path:
    """The build folder: ``$DVD_BUILD_DIR`` if set, else ``<project root>/_build``."""
    override = os.environ.get(BUILD_DIR_ENV)
    if override:
        return Path(override).resolve()
    return project_root(start) / "_build"
