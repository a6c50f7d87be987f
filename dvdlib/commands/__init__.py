"""Transitional: the old home of the ``dvd`` commands, now in :mod:`dvdlib.book.commands`.

Only :mod:`dvdlib.pipeline_cli` and :mod:`dvdlib.probe` still import ``dvdlib.commands.errors`` and
``dvdlib.commands.options`` (for :class:`~dvdlib.usage.UsageError`, ``seed_count`` and
``seed_list``); both modules are being rewritten. Once they import :mod:`dvdlib.usage`, delete this
folder. It re-exports from :mod:`dvdlib.usage` only, never from :mod:`dvdlib.book`.
"""
