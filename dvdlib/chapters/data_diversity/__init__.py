"""Chapter 2, data diversity (finding 1).

- ``measure``: our instance-diversity measure and the image embeddings it is taken in.
- ``toy_pictures``: the measure on the toy zoo: its training pictures, and what its models draw.
- ``toy_runs``: the causal test on the toy zoo, planned and run: prompts, runs, judged images.
- ``toy_summary``: the causal test's measures with two-level intervals, K = 1 - unlimited, and
  the chapter's numbers.
- ``real_study``: the diversity of what a real model draws against its DvD (a proxy).
- ``verdict``: the test of finding 1, stated first, and its verdict, for the toy zoo and for a
  real model.
- ``figures``: the chapter's figures.
- ``chapter``: ``open_study``, the one call that opens the chapter on a toy or a real model, and
  the steps the chapter calls the same way for both.
"""
