"""Scoring: the questions a judge is asked, the judges, and the DvD score.

- ``questions``: the five yes/no questions per side and category, ours or the authors' wording.
- ``judges``: the paper's VLM, our CLIP judge and the toy world's detector judge, behind one
  ``Judge`` protocol; :func:`~dvdlib.scoring.judges.load_judge` loads any of them.
- ``dvd``: judging a folder of images and the DvD formula per image, prompt and category.
"""
