"""The toy judge: the DvD questions answered by the toy detector instead of a VLM.

The paper's judge answers five yes/no questions per side and scores DvD = c x (5 - n) / 25 x 100.
The toy judge does not read question text. It reads ``Question.subject`` (a concept or object word) and
``Question.index`` (0-4), and answers yes when the detector's presence probability for that word
exceeds the index's threshold among five increasing thresholds (:data:`THRESHOLDS`). The number
of yes answers on a side is therefore a graded presence (0 = surely absent, 5 = surely present),
and the paper's formula applies unchanged. This mapping is our own; the paper has no toy judge.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Question
from dvdlib.toyworld.detector import PresenceDetector, images_to_tensor

# Question i is answered yes when P(subject present) > THRESHOLDS[i].
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


class ToyJudge:
    """A :class:`dvdlib.scoring.judges.base.Judge` backed by the toy world's detector."""

    name = "toy-detector"

    def __init__(self, detector: PresenceDetector, thresholds: Sequence[float] = THRESHOLDS):
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != QUESTIONS_PER_SIDE or list(thresholds) != sorted(set(thresholds)) \
                or not all(0 < t < 1 for t in thresholds):
            raise ValueError(f"thresholds must be {QUESTIONS_PER_SIDE} strictly increasing values "
                             f"in (0, 1), got {thresholds}")
        self.detector = detector
        self.thresholds = thresholds

    def presence(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Presence probability of every concept and object, ``[image, name]`` (one forward)."""
        return self.detector.probabilities(_as_32(images))

    def check_questions(self, questions: Sequence[Question]) -> None:
        """Raise ValueError naming every subject the detector does not know (before any image is
        judged)."""
        names = self.detector.names
        strangers = sorted({q.subject for q in questions if q.subject not in names})
        if strangers:
            raise ValueError(f"the toy judge knows the words {', '.join(names)}; "
                             f"{', '.join(map(repr, strangers))} "
                             f"{'is' if len(strangers) == 1 else 'are'} none of them")
        for q in questions:
            if not 0 <= q.index < len(self.thresholds):
                raise ValueError(f"question index must be 0..{len(self.thresholds) - 1}, "
                                 f"got {q.index!r} (subject {q.subject!r})")

    def answer(self, items: Sequence[tuple[Image.Image, Sequence[Question]]]) -> list[list[bool]]:
        """For each (image, questions) pair, one bool per question, in order."""
        if not items:
            return []
        names = self.detector.names
        self.check_questions([q for _, questions in items for q in questions])
        probabilities = self.presence([image for image, _ in items])  # [image, name]
        return [[bool(probabilities[i, names.index(q.subject)] > self.thresholds[q.index])
                 for q in questions] for i, (_, questions) in enumerate(items)]


def _as_32(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images of any size as ``[image, 3, 32, 32]`` (the detector resizes other sizes)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image.size, []).append(i)
    if len(groups) == 1:
        return images_to_tensor(list(images))
    out = torch.zeros(len(images), 3, 32, 32)  # [image, 3, 32, 32]
    for indices in groups.values():
        batch = images_to_tensor([images[i] for i in indices])
        out[indices] = torch.nn.functional.interpolate(batch, size=(32, 32), mode="bilinear",
                                                       align_corners=False, antialias=True)
    return out
