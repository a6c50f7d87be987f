"""The one interface every judge implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

from PIL import Image

Side = Literal["concept", "object"]
QUESTIONS_PER_SIDE = 5


@dataclass(frozen=True)
class Question:
    """One yes/no question about one image.

    ``text`` is what a vision-language judge reads. ``side``, ``subject`` and ``index`` let a judge
    that does not read text (the toy world's detector) answer the same question.
    """

    side: Side  # "concept" (the dominant candidate) or "object" (the one that may vanish)
    subject: str  # the concept or object word, e.g. "van gogh", "coaster", "sunset"
    index: int  # 0 .. QUESTIONS_PER_SIDE - 1 within its side
    text: str


@runtime_checkable
class Judge(Protocol):
    """Answers yes/no questions; batching across images and questions is the judge's business."""

    name: str

    def answer(
        self, items: Sequence[tuple[Image.Image, Sequence[Question]]]
    ) -> list[list[bool]]:
        """For each (image, questions) pair, one bool per question, in order."""
        ...
