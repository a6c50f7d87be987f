"""Chapter 3, attention saturation (finding 2).

- ``experiment``: the conditions, the run, the summaries, figures and verdicts.
"""
