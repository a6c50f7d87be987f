"""A CLIP judge: zero-shot presence of the concept and the object, from image-text similarity.

This judge is ours (the paper uses only the VLM). It answers the same ten questions through the
:class:`~dvdlib.scoring.judges.base.Judge` interface, so the DvD formula and tables stay unchanged, but it
reads each question's *side*, *subject* and *index*, not its text:

1. Presence score of a subject in an image: CLIP's two-way zero-shot probability that the image
   matches the subject's prompt rather than a neutral one,

       p = softmax(logit_scale * [cos(image, subject text), cos(image, neutral text)])[0]

   where the subject text embedding is the mean of :data:`TEMPLATES` for the side (prompt
   ensembling, as in CLIP's zero-shot recipe) and the neutral text is :data:`NEUTRAL`.
2. Question ``i`` (0..4) of a side is answered "yes" iff ``p > thresholds[side][i]``. The five
   thresholds increase, so the yes count of a side (``c`` or ``n`` of the formula) is the number of
   thresholds ``p`` exceeds: five questions from lenient to strict, like the VLM's set.

Thresholds. :data:`DEFAULT_THRESHOLDS` (0.5, 0.6, 0.7, 0.8, 0.9 on both sides) are round numbers,
not calibrated: 0.5 means "CLIP prefers the subject's text to the neutral one". To calibrate, use
:func:`calibrate_thresholds`: score images that certainly do not show the subject (for a concept,
images made from prompts of other concepts; for an object, images of other objects) with
:meth:`ClipJudge.presence`, and set the thresholds where 50 %, 25 %, 10 %, 5 % and 1 % of those
images would still get a "yes". Question ``i`` then has a known false-yes rate, as a strict human
question would.

Weights are read from a local folder in open_clip's layout (``open_clip_config.json`` and a
weights file) or from the Hugging Face cache (an open_clip repository id), never downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Question

DEFAULT_CLIP = "timm/vit_large_patch14_clip_224.openai"  # CLIP ViT-L/14 (SD 1.x's text encoder family)
TEMPLATES = {
    "concept": ("a picture of {subject}", "art by {subject}", "{subject}"),
    "object": ("a photo of a {subject}", "a picture of a {subject}", "a {subject}"),
}
NEUTRAL = "a picture"
DEFAULT_THRESHOLDS = {side: (0.5, 0.6, 0.7, 0.8, 0.9) for side in TEMPLATES}
DEFAULT_FALSE_YES_RATES = (0.5, 0.25, 0.1, 0.05, 0.01)


def check_thresholds(thresholds: Sequence[float], what: str = "thresholds") -> tuple[float, ...]:
    values = tuple(float(t) for t in thresholds)
    if len(values) != QUESTIONS_PER_SIDE or any(b < a for a, b in zip(values, values[1:])):
        raise ValueError(f"{what} must be {QUESTIONS_PER_SIDE} non-decreasing numbers, got {values}")
    return values


def calibrate_thresholds(absent_scores: Sequence[float],
                         false_yes_rates: Sequence[float] = DEFAULT_FALSE_YES_RATES) -> tuple[float, ...]:
    """Thresholds at which each question says "yes" to the given share of subject-absent images.

    ``absent_scores`` are presence scores (:meth:`ClipJudge.presence`) of images known not to
    show the subject; ``false_yes_rates`` decrease (lenient question first).
    """
    scores = np.asarray(absent_scores, dtype=float)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError("calibrate_thresholds needs a non-empty 1-D sequence of scores")
    rates = tuple(float(r) for r in false_yes_rates)
    if len(rates) != QUESTIONS_PER_SIDE or any(not 0 < r < 1 for r in rates) or any(
            b > a for a, b in zip(rates, rates[1:])):
        raise ValueError(f"false_yes_rates must be {QUESTIONS_PER_SIDE} non-increasing numbers in (0, 1), "
                         f"got {rates}")
    return check_thresholds(np.quantile(scores, [1 - r for r in rates]))


class JudgeNotFoundError(FileNotFoundError):
    """CLIP weights that are neither a local open_clip folder nor in the Hugging Face cache."""


class ClipJudge:
    """Answers the ten questions from CLIP presence scores (see the module notes)."""

    def __init__(self, model, preprocess, tokenizer, name: str = "clip",
                 thresholds: Mapping[str, Sequence[float]] = DEFAULT_THRESHOLDS, batch_size: int = 32):
        missing = [side for side in TEMPLATES if side not in thresholds]
        if missing:
            raise ValueError(f"thresholds lack side(s) {missing}; give one tuple per side {tuple(TEMPLATES)}")
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.name = name
        self.thresholds = {side: check_thresholds(thresholds[side], f"thresholds[{side!r}]")
                           for side in TEMPLATES}
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, source: str = DEFAULT_CLIP, device: str | None = None,
                        thresholds: Mapping[str, Sequence[float]] = DEFAULT_THRESHOLDS) -> "ClipJudge":
        """Load open_clip weights from a local folder or the Hugging Face cache (no download)."""
        import open_clip

        folder = Path(source)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(source, local_files_only=True))
            except Exception as err:  # a bad id or an uncached one: both mean "not here"
                raise JudgeNotFoundError(
                    f"CLIP judge {source!r} is neither a local folder nor in the Hugging Face cache "
                    f"({type(err).__name__}). On a machine with network run `huggingface-cli download "
                    f"{source if source.count('/') == 1 else DEFAULT_CLIP}` and copy the cache here, "
                    f"or pass a folder holding open_clip_config.json and the weights"
                ) from None
        weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pth")]
        if not (folder / "open_clip_config.json").is_file() or not weights:
            raise JudgeNotFoundError(
                f"{folder} is not an open_clip model folder: it needs open_clip_config.json and a "
                f"weights file (.safetensors, .bin or .pth)"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}", device=device)
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        return cls(model, preprocess, tokenizer, name=f"clip:{source}", thresholds=thresholds)

    @torch.inference_mode()
    def _text_embedding(self, texts: Sequence[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        features = self.model.encode_text(self.tokenizer(list(texts)).to(device)).float()
        return torch.nn.functional.normalize(features, dim=-1)

    @torch.inference_mode()
    def _image_embedding(self, images: Sequence[Image.Image]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack([self.preprocess(im) for im in images[start:start + self.batch_size]])
            chunks.append(self.model.encode_image(pixels.to(device)).float())
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)  # [image, dim]

    def _subject_embedding(self, side: str, subjects: Sequence[str]) -> torch.Tensor:
        templates = TEMPLATES[side]
        texts = [t.format(subject=s) for s in subjects for t in templates]
        embedded = self._text_embedding(texts).view(len(subjects), len(templates), -1).mean(1)
        return torch.nn.functional.normalize(embedded, dim=-1)  # [subject, dim]

    @torch.inference_mode()
    def presence(self, images: Sequence[Image.Image], subjects: Sequence[str],
                 side: str = "concept") -> np.ndarray:
        """Presence score in [0, 1] of ``subjects[i]`` in ``images[i]`` (``side`` picks the templates)."""
        if side not in TEMPLATES:
            raise ValueError(f"unknown side {side!r}; accepted: {', '.join(TEMPLATES)}")
        if len(images) != len(subjects):
            raise ValueError(f"{len(images)} images but {len(subjects)} subjects")
        image = self._image_embedding(images)
        subject = self._subject_embedding(side, subjects)
        neutral = self._text_embedding([NEUTRAL])[0]
        scale = self.model.logit_scale.exp().float()
        logits = torch.stack([(image * subject).sum(-1), image @ neutral], dim=-1) * scale
        return logits.softmax(-1)[:, 0].cpu().numpy()

    def answer(self, items: Sequence[tuple[Image.Image, Sequence[Question]]]) -> list[list[bool]]:
        images = [image for image, _ in items]
        scores = {}  # (item, side) -> presence score
        for side in TEMPLATES:
            subjects = []
            for _, questions in items:
                named = {q.subject for q in questions if q.side == side}
                if len(named) > 1:
                    raise ValueError(f"the {side} questions of one image name several subjects {sorted(named)}; "
                                     f"the CLIP judge scores one subject per side")
                subjects.append(named.pop() if named else None)
            asked = [i for i, s in enumerate(subjects) if s is not None]
            if asked:
                found = self.presence([images[i] for i in asked], [subjects[i] for i in asked], side)
                scores.update({(i, side): float(p) for i, p in zip(asked, found)})
        answers = []
        for i, (_, questions) in enumerate(items):
            answers.append([scores[i, q.side] > self.thresholds[q.side][q.index] for q in questions])
        return answers
