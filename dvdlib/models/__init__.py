"""Models: what a ``model`` argument names, loading it, and random-weight models for tests.

- ``spec``: :func:`~dvdlib.models.spec.parse_model`, the one place that tells a toy zoo model from
  one of the paper's models, a named model (``sdxl``, ``flux-dev``, ...), a pipeline folder or a
  Hugging Face id; a toy model's world and label.
- ``families``: which kind of pipeline a model is (toy, sd, sdxl, sd3, flux), its sampler and
  generation defaults, and how a run differs from the paper's protocol.
- ``loading``: :func:`~dvdlib.models.loading.load_pipeline` (any of them, DDIM, no download) and
  :func:`~dvdlib.models.loading.load_model` (the chapters' call, with an exported zoo folder).
- ``random_weights``: tiny Stable-Diffusion-shaped pipelines (SD 1.x/2.x and SDXL) with random
  weights, built in code.
"""
