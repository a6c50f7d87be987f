"""Chapter 4, head ablation (finding 3).

- ``experiment``: the conditions, the runner, the summaries, the survey, figures and verdict.
"""
