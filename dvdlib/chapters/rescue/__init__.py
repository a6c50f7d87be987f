"""Chapter 5, rescue: can the dominated object be brought back, with the concept kept?

- ``run``: what a run is asked, checked before any model loads; the arms (the plain model and
  each intervention's curve of strengths); the study that makes, judges and times the same
  images under every arm, and ranks the heads with chapter 4's functions.
- ``summary``: per arm and object group, presence, both present, DvD and attention with
  seed-cluster intervals, changes against the plain model, cost per image; the curves.
- ``verdict``: the rescue test, decided per intervention by the one verdict function; the
  headline values.
- ``quotes``: the numbers the chapter's Markdown quotes, one glue key each, and its summary.
- ``figures``: Figure 5.1 (object against concept presence), the contact sheet, the table.
"""
