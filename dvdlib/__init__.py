"""dvdlib: measure concept dominance (DvD) in text-to-image diffusion models.

One module per concern; find a thing by its file name:

- prompts and models: ``bench`` (prompt sets, the paper's seeds), ``tokenizer`` (CLIP BPE, offline),
  ``models`` (load a diffusers pipeline or a toy model), ``toyworld`` (the embedded toy world).
- images and the DvD score: ``generate`` (the paper's protocol), ``questions``, ``judges`` (VLM,
  CLIP; the toy judge lives in ``toyworld``), ``score`` (the DvD formula, bootstrap intervals),
  ``store`` (crash-safe results).
- attention: ``layers`` (where the cross-attention layers are), ``tokens`` (words to token
  positions), ``recorder`` (per-step attention record), ``ablation`` (head masks), ``focus`` (our
  saturation measures).
- conclusions: ``verdicts`` (a finding's stated test turned into supported, contradicted,
  inconclusive or not testable, with the sentence a chapter prints).
- the book and the tool: ``book`` (build), ``runs`` (run/sweep chapters), ``chapters`` (the
  table of chapters, from ``_toc.yml``), ``chapter_cache`` (what an executed chapter depends on),
  ``headlines``, ``paths``, ``testing`` (random-weight models for tests).
- the ``dvd`` command: ``cli`` (the entry point, where every command is registered),
  ``commands`` (one module per command: its arguments, and a run function that imports the work
  only when the command runs), ``pipeline_cli`` (what ``dvd generate`` and ``dvd score`` do),
  ``probe`` (``dvd probe``).
"""

__version__ = "0.1.0"
