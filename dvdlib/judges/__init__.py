"""Judges answer yes/no questions about images; the DvD score is computed from their answers.

Every judge (the paper's VLM, a CLIP judge, the toy world's detector) implements
:class:`dvdlib.judges.base.Judge`, so the DvD formula never changes with the judge.
"""

from dvdlib.judges.base import Judge, Question

JUDGES = ("vlm", "clip", "toy")  # the kinds of judge a command can load
# The authors' scorer asks one question per generate call. Batching an image's questions in one
# call is faster and gave identical answers on a random-weight tiny Qwen2-VL in float32 on the CPU;
# until the same is shown for the real architecture in bfloat16 on a GPU, the loop is the default.
DEFAULT_QUESTIONS_PER_CALL = 1

__all__ = ["DEFAULT_QUESTIONS_PER_CALL", "JUDGES", "Judge", "Question"]
