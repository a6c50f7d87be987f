"""What every chapter does before its first model loads, in one call.

:func:`open_chapter` gives a chapter its output folder (made afresh: a rerun never reads an earlier
run's images), its seeds (the paper's first), the device and the model it studies, parsed once;
:meth:`ChapterSetup.judge` loads the chapter's judge the same way in every chapter. A toy model is
small, and one torch thread runs it fastest on a shared CPU, so a toy chapter sets that too.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from dvdlib.models.spec import ModelSpec, parse_model
from dvdlib.paths import build_dir
from dvdlib.prompts.prompt_sets import seeds as paper_seeds


def fresh_folder(path: str | Path) -> Path:
    """``path`` emptied and made anew."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass(frozen=True)
class ChapterSetup:
    """A chapter's output folder, seeds, device and model, as :func:`open_chapter` made them."""

    key: str  # the chapter's file stem, e.g. "03_attention_saturation"
    out: Path  # <build folder>/chapters/<key>, fresh
    seeds: list[int]
    device: str  # as given; "" lets each loader choose (cpu for toy models, else a GPU if any)
    model: ModelSpec | None
    zoo_folder: str  # "" : the zoo shipped with dvdlib

    @property
    def is_toy(self) -> bool:
        return self.model is None or self.model.is_toy

    def judge(self, kind: str, judge_model: str = ""):
        """The chapter's judge: ``toy`` reads the detector of ``zoo_folder``; ``vlm`` and
        ``clip`` their weights from ``judge_model`` (empty: the judge's default)."""
        from dvdlib.scoring.judges import load_judge

        weights = judge_model or (self.zoo_folder if kind == "toy" else "")
        return load_judge(kind, weights or None, self.device or None, None)


def open_chapter(key: str, *, n_seeds: int, model: str = "", zoo_folder: str = "",
                 device: str = "") -> ChapterSetup:
    """Set up chapter ``key``: its model parsed (a ValueError naming a bad one before anything is
    written), ``n_seeds`` seeds, and a fresh output folder."""
    spec = parse_model(model) if model else None
    seeds = paper_seeds(n_seeds)
    if spec is None or spec.is_toy:
        import torch

        torch.set_num_threads(1)
    out = fresh_folder(build_dir() / "chapters" / key)
    return ChapterSetup(key, out, seeds, device, spec, zoo_folder)
