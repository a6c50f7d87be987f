"""The ``dvd`` commands: declared one module each, and fast to ask for help."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dvdlib.book.commands

HEAVY = ("torch", "diffusers", "transformers", "pandas", "numpy", "papermill", "matplotlib")
COMMANDS = Path(dvdlib.book.commands.__file__).parent

_HELP_IMPORTS = """
import json, sys
from dvdlib.book.cli import main
for argv in ([], ["book"], ["run"], ["sweep"], ["generate"], ["score"], ["probe"]):
    try:
        main([*argv, "--help"])
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_help_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-c", _HELP_IMPORTS % (HEAVY,)], capture_output=True,
                          text=True, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_no_command_imports_another():
    own = {"dvdlib.book.commands.options"}
    for path in COMMANDS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dvdlib.book.commands"):
                assert node.module in own, f"{path.name} imports {node.module}"


def test_probe_help_states_the_probe_default(capsys):
    from dvdlib.probe import inputs
    from dvdlib.book.cli import main

    try:
        main(["probe", "--help"])
    except SystemExit:
        pass
    assert f"(default: {inputs.DEFAULT_THRESHOLD})" in " ".join(capsys.readouterr().out.split())


def test_toyworld_subcommands_are_declared_when_parsed():
    from dvdlib.book.cli import build_parser

    args = build_parser().parse_args(["toyworld", "zoo", "--out", "work"])
    assert args.toyworld_command == "zoo" and args.closeup == 0.5 and args.unpaired == ["hat", "kite"]


def test_seeds_is_a_count_in_every_command_and_seed_list_gives_the_seeds():
    import pytest

    from dvdlib.prompts.prompt_sets import PAPER_SEEDS, seeds
    from dvdlib.book.cli import build_parser
    from dvdlib.usage import UsageError, seed_count, seed_list

    parser = build_parser()
    for argv in (["generate", "--model", "toy", "--out", "o"], ["probe", "p", "--concept", "a",
                                                               "--object", "b"]):
        assert seeds(seed_count(parser.parse_args(argv).seeds)) == list(PAPER_SEEDS)
        args = parser.parse_args([*argv, "--seeds", "12"])
        assert seed_count(args.seeds) == 12 and args.seed_list is None
        assert seed_list(parser.parse_args([*argv, "--seed-list", "0,1,5"]).seed_list) == [0, 1, 5]
    with pytest.raises(UsageError, match="give the seeds themselves as --seed-list 1825,410"):
        seed_count("1825,410")


def test_a_refused_argument_is_named_by_the_option_it_came_from():
    import pytest

    from dvdlib.book.commands.options import refusals
    from dvdlib.usage import ArgumentError, UsageError

    refused = ArgumentError("batch_size", " must be at least 1, got 0")
    assert isinstance(refused, ValueError)
    assert str(refused) == "batch_size must be at least 1, got 0"
    with pytest.raises(UsageError, match="^--batch-size must be at least 1, got 0$"):
        with refusals():
            raise refused
