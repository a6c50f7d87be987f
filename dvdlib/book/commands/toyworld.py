"""``dvd toyworld``: train the toy world's models and detector (see :mod:`dvdlib.toyworld.cli`).

Its subcommands' options name the world's attributes, and the world's module imports torch, so
they are declared only when ``dvd toyworld`` itself is parsed (:meth:`dvdlib.book.cli.Parser.defer`),
never for ``dvd --help``.
"""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "toyworld",
        help="train the toy world's diffusion models and detector",
        description="The toy world: a small text-to-image diffusion model trained on concepts "
        "(full-frame pictures) printed on objects (carriers), with one concept's instance "
        "diversity as a knob. Runs resume from their last checkpoint when rerun with the same "
        "arguments.",
    )
    parser.defer(_declare)


def _declare(parser) -> None:
    from dvdlib.toyworld.cli import add_commands

    add_commands(parser)
