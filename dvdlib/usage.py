"""Bad input: the error a library call raises for one bad argument, the error every ``dvd``
command raises, and the values of the seed options that several commands read.

- :class:`ArgumentError`: a library call refused one of its arguments; its message opens with the
  argument's name, so that a command can put in its place the option the user typed.
- :class:`UsageError`: bad input from the command line, printed as one line with exit code 2.
- :func:`seed_count`, :func:`seed_list`: the values of ``--seeds`` and ``--seed-list``.

It sits at the bottom of the science package, not in :mod:`dvdlib.book.commands`, because the
library raises :class:`ArgumentError` and parses the seed options' values, and no module of
``dvdlib`` imports :mod:`dvdlib.book`; the commands turn both errors into their one-line refusal.
"""

from __future__ import annotations


class ArgumentError(ValueError):
    """A library call refused one of its arguments.

    The message is the argument's name as the call spells it followed by ``rest``, e.g.
    ``ArgumentError("batch_size", " must be at least 1, got 0")``; :meth:`naming` puts another
    name in its place, such as the option a command reads it from (``--batch-size``).
    """

    def __init__(self, argument: str, rest: str):
        super().__init__(argument + rest)
        self.argument = argument
        self.rest = rest

    def naming(self, option: str) -> str:
        """The message with ``option`` in place of the argument's name."""
        return option + self.rest


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


PAPER_SEED_COUNT = 10  # the paper draws ten seeds per prompt
MAX_SEED_COUNT = 100_000  # per prompt: more is a typing slip, not a study (each seed is an image)


def seed_count(text: str) -> int:
    """The value of ``--seeds``: a whole number of at least 1. A list, the meaning ``--seeds``
    had in ``dvd generate``, is refused with the option that takes one now."""
    text = str(text).strip()
    if "," in text:
        raise UsageError(f"--seeds {text!r}: --seeds is a number of seeds in every command (e.g. "
                         f"--seeds 10, the paper's ten); give the seeds themselves as --seed-list "
                         f"{text}")
    if not text.isdigit():
        raise UsageError(f"--seeds {text!r}: give a number of seeds (e.g. 10), or the seeds "
                         f"themselves as --seed-list 1825,410")
    if int(text) == 0:
        raise UsageError("--seeds 0: zero seeds make no images; give a number of seeds of at "
                         "least 1")
    if int(text) > MAX_SEED_COUNT:
        raise UsageError(f"--seeds {text}: at most {MAX_SEED_COUNT:,} seeds per prompt")
    return int(text)


def seed_list(text: str) -> list[int]:
    """The value of ``--seed-list``: comma-separated non-negative integers, none repeated."""
    from dvdlib.prompts.prompt_sets import check_seeds  # pandas: only when a command runs

    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    if not parts:
        raise UsageError(f"--seed-list {text!r} lists zero seeds; give at least one, e.g. 1825")
    try:
        return check_seeds(parts)
    except ValueError as err:
        raise UsageError(f"--seed-list {text!r}: {err}") from None
