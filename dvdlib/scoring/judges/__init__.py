"""Judges answer yes/no questions about images; the DvD score is computed from their answers.

Every judge (the paper's VLM, a CLIP judge, the toy world's detector) implements
:class:`dvdlib.scoring.judges.base.Judge`, so the DvD formula never changes with the judge.

- ``base``: the ``Judge`` protocol and ``Question``; ``vlm``: the paper's Qwen2-VL judge;
  ``clip``: our CLIP zero-shot judge; the toy judge is :mod:`dvdlib.scoring.judges.toy`.
- :func:`load_judge`: any of them by kind, with its default weights (what ``dvd score``,
  ``dvd probe`` and the chapters call).
"""

from dvdlib.scoring.judges.base import Judge, Question
from dvdlib.usage import ArgumentError

JUDGES = ("vlm", "clip", "toy")  # the kinds of judge a command can load
# The authors' scorer asks one question per generate call. Batching an image's questions in one
# call is faster and gave identical answers on a random-weight tiny Qwen2-VL in float32 on the CPU;
# until the same is shown for the real architecture in bfloat16 on a GPU, the loop is the default.
DEFAULT_QUESTIONS_PER_CALL = 1
DEFAULT_IMAGES_PER_CALL = 4  # images whose questions go to a judge together

__all__ = ["DEFAULT_IMAGES_PER_CALL", "DEFAULT_QUESTIONS_PER_CALL", "JUDGES", "Judge", "Question", "load_judge"]


def load_judge(kind: str, source: str | None = None, device: str | None = None,
               questions_per_call: int | None = None) -> Judge:
    """A judge by kind (``vlm``, ``clip``, ``toy``), weights from ``source`` or the judge's default
    (read from a folder or the local Hugging Face cache, never downloaded).

    ``questions_per_call`` applies to the vlm judge only. A ValueError names a bad kind or option
    (an :class:`~dvdlib.usage.ArgumentError` for ``questions_per_call``).
    """
    if kind not in JUDGES:
        raise ValueError(f"unknown judge {kind!r}; accepted: {', '.join(JUDGES)}")
    if questions_per_call is not None and kind != "vlm":
        raise ArgumentError("questions_per_call", f" applies to the vlm judge only, not {kind}")
    if kind == "vlm":  # each judge's libraries (torch, transformers, open_clip) load only here
        from dvdlib.scoring.judges.vlm import PAPER_JUDGE, QwenVLJudge

        return QwenVLJudge.from_pretrained(source or PAPER_JUDGE, device=device,
                                           questions_per_call=questions_per_call or DEFAULT_QUESTIONS_PER_CALL)
    if kind == "clip":
        from dvdlib.scoring.judges.clip import DEFAULT_CLIP, ClipJudge

        return ClipJudge.from_pretrained(source or DEFAULT_CLIP, device=device)
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld.zoo import load_detector

    return ToyJudge(load_detector(source))
