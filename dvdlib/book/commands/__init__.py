"""The ``dvd`` commands, one module each, registered in :mod:`dvdlib.book.cli`.

Each module declares its command's arguments in ``register(subparsers)`` and runs it in
``run(args)``, which imports the implementation only then: ``dvd --help`` and ``dvd COMMAND
--help`` load no torch, diffusers, transformers or pandas.

- ``book``: build the book (:mod:`dvdlib.book.build`).
- ``run``, ``sweep``: run a chapter with parameters, or over a grid (:mod:`dvdlib.book.runs`).
- ``toyworld``: train the toy world (:mod:`dvdlib.toyworld.cli`).
- ``generate``, ``score``: images for a prompt set and their DvD table (:mod:`dvdlib.pipeline_cli`).
- ``probe``: one prompt over many seeds, judged and traced (:mod:`dvdlib.probe.experiment`).
- ``options``: argument declarations and help text that several commands share. The error every
  command raises for bad input, :class:`~dvdlib.usage.UsageError`, and the seed options' parsers
  live in :mod:`dvdlib.usage`, since the implementations in the science package raise and use
  them too.
"""
