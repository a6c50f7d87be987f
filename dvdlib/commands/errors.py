"""Transitional re-export (see :mod:`dvdlib.commands`): import :mod:`dvdlib.usage` instead."""

from dvdlib.usage import UsageError

__all__ = ["UsageError"]
