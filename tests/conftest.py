"""Shared test set-up: one torch thread (faster for our small models on 2 cores) and paths."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
AUTHORS_CSV = REPO_ROOT.parent / "shared" / "data" / "dominancebench" / "dominancebench_300.csv"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``after_notebooks`` run last, after the smoke chapters nbval executes in the
    same session, so they read what those chapters saved (``scripts/test`` without arguments runs
    them in a session of their own after the chapters)."""
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)


def _test_run_started() -> float:
    """When this test run began: ``DVD_TEST_STARTED`` (seconds since the epoch), which
    ``scripts/test`` sets once for the sessions it runs, else now."""
    given = os.environ.get("DVD_TEST_STARTED")
    if given is None:
        return time.time()
    try:
        started = float(given)
    except ValueError:
        started = math.nan
    if not math.isfinite(started):
        raise pytest.UsageError(f"DVD_TEST_STARTED={given!r}: accepted: seconds since the epoch")
    return started


SESSION_STARTED = _test_run_started()


@pytest.fixture(scope="session")
def session_started() -> float:
    """When this test run began (files written since then were written by it)."""
    return SESSION_STARTED


@pytest.fixture(scope="session")
def authors_csv() -> Path:
    """The authors' DominanceBench file, read from beside the checkout (never copied into it)."""
    if not AUTHORS_CSV.is_file():
        pytest.skip(f"the authors' DominanceBench CSV is not at {AUTHORS_CSV} (see the README)")
    return AUTHORS_CSV


@pytest.fixture(scope="session")
def tokenizer():
    from dvdlib.prompts.tokenizer import clip_tokenizer

    return clip_tokenizer()


@pytest.fixture
def saved_chapter():
    """``load(chapter, *files)``: a chapter's saved headlines and its output folder, as the chapters
    the test run executed first left them (``scripts/test`` runs them with their smoke
    parameters); the test is skipped when the headlines or one of ``files`` (paths in the folder)
    is missing."""
    from dvdlib.book import headlines
    from dvdlib.paths import build_dir

    def load(chapter: str, *files: str) -> tuple[dict, Path]:
        document = headlines.load(chapter, build_dir())
        folder = build_dir() / "chapters" / chapter
        if document is None or not all((folder / name).is_file() for name in files):
            pytest.skip(f"no saved run of {chapter} in {build_dir()}: run the chapters first "
                        "(scripts/test runs them with their smoke parameters before this test)")
        return document, folder

    return load

