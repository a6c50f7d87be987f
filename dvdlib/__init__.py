"""dvdlib: measure concept dominance (DvD) in text-to-image diffusion models.

Two packages, imports one way. ``dvdlib`` is the science, one module per concern, so a thing is
found by its file name; :mod:`dvdlib.book` holds the tools that build and run the book and the
``dvd`` command, and imports the science. No module here imports :mod:`dvdlib.book`
(``tests/test_import_graph.py`` checks it, and that the import graph has no circle).

The science, by concern:

- prompts and models: ``bench`` (prompt sets, the paper's seeds), ``tokenizer`` (CLIP BPE,
  offline), ``models`` (load a diffusers pipeline or a toy model), ``study`` (one call that loads
  the model a chapter studies, toy or real, and names it), ``toyworld`` (the embedded toy world:
  world, pipeline, training, zoo, detector and its judge), ``testing`` (random-weight models for
  tests).
- images and the DvD score: ``generate`` (the paper's protocol), ``questions``, ``judges`` (VLM,
  CLIP, ``load_judge``; the toy judge lives in ``toyworld``), ``score`` (the DvD formula, per
  image, prompt and category), ``stats`` (every bootstrap interval and rank correlation).
- attention: ``layers`` (where the cross-attention layers are), ``tokens`` (words to token
  positions), ``recorder`` (per-step attention record), ``ablation`` (head masks), ``focus`` (our
  saturation measures).
- the findings' experiments: ``diversity`` (our diversity measure and its embeddings),
  ``data_diversity`` (finding 1 on the toy zoo), ``diversity_proxy`` (finding 1's proxy on a real
  model), ``attention_saturation`` (finding 2), ``head_ablation`` (finding 3), ``probe`` (one
  prompt, judged and traced), each returning tables and figures; ``verdicts`` (a finding's stated test turned into supported,
  contradicted, inconclusive or not testable, with the sentence a chapter prints).
- results and runs: ``store`` (the only atomic writer: crash-safe logs, tables, JSON, torch
  checkpoints, folders), ``sharding`` (one command over the processes of ``accelerate launch``),
  ``paths`` (the project root and the build folder).
- what ``dvd generate``, ``dvd score`` and ``dvd probe`` do once their arguments are parsed:
  ``pipeline_cli`` and ``probe``; ``usage`` (:class:`~dvdlib.usage.UsageError`, the error for
  bad command-line input, and the seed options' values), which those two share with
  :mod:`dvdlib.book.commands`.
"""

__version__ = "0.1.0"
