"""Scoring: the questions a judge is asked, the judges, and the DvD score.

- ``questions``: the five yes/no questions per side and category, ours or the authors' wording.
- ``judges``: the paper's VLM, our CLIP judge and the toy world's detector judge, behind one
  ``Judge`` protocol; :func:`~dvdlib.scoring.judges.load_judge` loads any of them.
- ``dvd``: judging a folder of images and the DvD formula per image, prompt and category.
- ``targets``: judging every target of a multi-target prompt with its category's questions;
  ``target_scores``: presence, all-present, omission, who wins and pairwise DvD, and the
  factorial design's effect of a strong slot with an interval over seeds.
- ``benchmark``: :func:`~dvdlib.scoring.benchmark.score_benchmark`, ``dvd score``'s work: a judge
  by kind, a chosen prompt set and a folder of images, every argument checked once before the
  judge loads, sharded under ``accelerate launch``.
"""
