"""Transitional re-export (see :mod:`dvdlib.commands`): import :mod:`dvdlib.usage` instead."""

from dvdlib.usage import seed_count, seed_list

__all__ = ["seed_count", "seed_list"]
