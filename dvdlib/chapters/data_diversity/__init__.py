"""Chapter 2, data diversity (finding 1).

- ``measure``: our instance-diversity measure and the image embeddings it is taken in.
- ``toy_pictures``: the measure on the toy zoo: its training pictures, and what its models draw.
- ``arms``: the arms of the comparison, every training run the zoo has of each level K.
- ``toy_runs``: the causal test on the toy zoo, planned and run: prompts, runs, judged images.
- ``outcomes``: what a pair image without its object shows (the concept filling the frame, a
  wrong carrier, nothing recognisable), and the DvD with the wrong carriers left out.
- ``toy_summary``: every measure per run and arm with run-and-seed intervals, one group minus
  another, and the chapter's numbers.
- ``comparisons``: every arm against unlimited K with the room the score's ceiling leaves, the
  verdict in every condition (and again from the saved tables), the dose-response over K.
- ``amplification``: the close-up share counted in the training data against the generated
  share without the carrier, at every guidance scale.
- ``toy_results``: every table, verdict and number of the toy zoo from its judged images.
- ``real_study``: the diversity of what a real model draws against its DvD (a proxy).
- ``verdict``: the test of finding 1, stated first, and its verdict, for the toy zoo and for a
  real model.
- ``figures``: the chapter's figures.
- ``chapter``: ``open_study``, the one call that opens the chapter on a toy or a real model, and
  the steps the chapter calls the same way for both.
"""
