"""Chapter 3, attention saturation (finding 2): does the dominant concept take over
cross-attention in the first denoising steps, and does that predict the image's DvD?

- ``run``: the conditions compared, and running them: generate, record cross-attention, judge,
  read the records back; one row per image (``image_rows``, which ``dvd probe`` uses too).
- ``summary``: the tables per image, step, resolution level, layer, prompt and condition, and the
  rank correlations of early share and DvD.
- ``figures``: the chapter's figures, drawn from those tables.
- ``verdict``: the two stated tests of finding 2 and their verdicts, and the chapter's headline.
- ``quotes``: the numbers the chapter's Markdown quotes, one glue key each.
"""
