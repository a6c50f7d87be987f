"""dvdlib: measure concept dominance (DvD) in text-to-image diffusion models.

Folders by concern, from the bottom up; a module imports only from its own folder or one listed
before it (``tests/test_import_graph.py`` checks it from the source, with no circle):

- ``paths``, ``store``, ``sharding``: the project root and build folder; the only atomic writer
  (crash-safe logs, tables, JSON, checkpoints, folders); one command over the processes of
  ``accelerate launch``.
- ``prompts/``: prompt sets, phrases, seeds, the CLIP tokenizer. ``stats/``: every bootstrap
  interval and the verdicts. ``usage``: bad input: :class:`~dvdlib.usage.ArgumentError` (one
  argument of a library call refused), :class:`~dvdlib.usage.UsageError` (bad command-line
  input), and the seed options.
- ``toyworld/``: the embedded toy world (world, pipeline, training, zoo, detector).
- ``models/``: what a ``model`` argument names (parsed once), loading, random-weight test models.
- ``attention/``: locating cross-attention, token positions, the recorder and its record, head
  and token ablation, attention shares.
- ``scoring/``: questions, judges (the toy judge among them), the DvD score.
- ``generation/``: the paper's generation protocol.
- ``chapters/`` (one package per chapter of the book) and ``probe/`` (``dvd probe``).
- ``book/``: the tools that build and run the book, and the ``dvd`` command (``book/commands/``,
  one file per command). Nothing outside it imports it.
"""

__version__ = "0.1.0"
