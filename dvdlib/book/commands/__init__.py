"""The ``dvd`` commands, one module each, registered in :mod:`dvdlib.book.cli`.

Each module declares its command's arguments in ``register(subparsers)`` and runs it in
``run(args)``: a thin body that translates the arguments and calls the library, which checks
them once. Its imports of the work happen only in ``run``, so ``dvd --help`` and ``dvd COMMAND
--help`` load no torch, diffusers, transformers or pandas.

- ``book``: build the book (:mod:`dvdlib.book.build`).
- ``run``, ``sweep``: run a chapter with parameters, or over a grid (:mod:`dvdlib.book.runs`,
  with the parameters checked by :mod:`dvdlib.book.parameters`).
- ``toyworld``: train the toy world's models, detector and zoo (:mod:`dvdlib.toyworld.train`,
  :mod:`dvdlib.toyworld.detector`, :mod:`dvdlib.toyworld.zoo`).
- ``generate``, ``score``: images for a prompt set and their DvD table
  (:mod:`dvdlib.generation.benchmark`, :mod:`dvdlib.scoring.benchmark`).
- ``probe``: one prompt over many seeds, judged and traced (:mod:`dvdlib.probe`).
- ``options``: what several commands share: argument declarations and help text, the library's
  refusals as one-line errors naming the option, notes on stderr. The error every command
  raises for bad input, :class:`~dvdlib.usage.UsageError`, the error the library raises for one
  bad argument, :class:`~dvdlib.usage.ArgumentError`, and the seed options' parsers live in
  :mod:`dvdlib.usage`, since the science package raises and uses them too.
"""
