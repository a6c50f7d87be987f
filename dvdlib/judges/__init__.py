"""Judges answer yes/no questions about images; the DvD score is computed from their answers.

Every judge (the paper's VLM, a CLIP judge, the toy world's detector) implements
:class:`dvdlib.judges.base.Judge`, so the DvD formula never changes with the judge.
"""

from dvdlib.judges.base import Judge, Question

__all__ = ["Judge", "Question"]
