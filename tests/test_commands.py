"""The ``dvd`` commands: declared one module each, and fast to ask for help."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dvdlib.commands

HEAVY = ("torch", "diffusers", "transformers", "pandas", "numpy", "papermill", "matplotlib")
COMMANDS = Path(dvdlib.commands.__file__).parent

_HELP_IMPORTS = """
import json, sys
from dvdlib.cli import main
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
    own = {"dvdlib.commands.errors", "dvdlib.commands.options"}
    for path in COMMANDS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dvdlib.commands"):
                assert node.module in own, f"{path.name} imports {node.module}"


def test_probe_help_states_the_probe_default(capsys):
    from dvdlib import probe
    from dvdlib.cli import main

    try:
        main(["probe", "--help"])
    except SystemExit:
        pass
    assert f"(default: {probe.DEFAULT_THRESHOLD})" in " ".join(capsys.readouterr().out.split())


def test_toyworld_subcommands_are_declared_when_parsed():
    from dvdlib.cli import build_parser

    args = build_parser().parse_args(["toyworld", "zoo", "--out", "work"])
    assert args.toyworld_command == "zoo" and args.fixed_attributes == ["colour", "size", "position"]
