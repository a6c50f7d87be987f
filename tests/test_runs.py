"""Runs and sweeps: parameters checked before anything runs, one folder per parameter set, finished
runs skipped on rerun, and a summary of parameters and headline numbers."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nbformat
import pytest
from papermill.cli import _resolve_type

from dvdlib.book import cli, parameters, runs

PARAMETERS = """\
x = 1  # the number to double
scale = 0.5  # a float
label = "plain"  # a string
flag = False  # a bool
anything = None  # no type
start = len("abc")  # an expression
"""

# Doubles x and saves it as a headline number; x == 3 fails, like a broken chapter.
BODY = """\
from dvdlib.book import headlines
if x == 3:
    raise ValueError("x may not be 3")
headlines.save("tiny", {"double": x * 2, "scaled": x * scale}, texts={"label": label})
print(x * 2)
"""


def make_project(root: Path, body: str = BODY, parameters: str = PARAMETERS) -> Path:
    """A checkout with one chapter, ``book/tiny.ipynb``; returns the notebook's path."""
    (root / "dvdlib").mkdir(parents=True)
    (root / "dvdlib" / "__init__.py").write_text("")
    (root / "book").mkdir()
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   "  - file: book/tiny\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Tiny"),
                nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "book" / "tiny.ipynb")
    return root / "book" / "tiny.ipynb"


@pytest.mark.parametrize("text", ["True", "False", "None", "12", "-3", "1.5", "1e3", "nan",
                                  "abc", "", "12abc", "1,2"])
def test_values_are_read_like_papermill(text):
    assert repr(parameters.parse_value(text)) == repr(_resolve_type(text))


def test_parameters_and_their_types_come_from_the_parameters_cell(tmp_path):
    declared = parameters.notebook_parameters(make_project(tmp_path))
    assert {name: p.type_name for name, p in declared.items()} == {
        "x": "int", "scale": "float", "label": "str", "flag": "bool", "anything": "any",
        "start": "any"}
    assert declared["x"].help == "the number to double"
    assert declared["label"].default == "plain"


def test_values_of_the_right_type_pass(tmp_path):
    notebook = make_project(tmp_path)
    checked = parameters.check_parameters(notebook, {"x": 5, "scale": 2, "label": "a/b",
                                                     "flag": True, "anything": [1], "start": "s"})
    assert checked == {"x": 5, "scale": 2.0, "label": "a/b", "flag": True, "anything": [1],
                       "start": "s"}
    assert isinstance(checked["scale"], float)  # an int given for a float becomes a float


@pytest.mark.parametrize("given, message", [
    ({"y": 1}, r"unknown parameter 'y' for .*tiny.ipynb; accepted: x \(int\), scale \(float\), "
               r"label \(str\), flag \(bool\), anything \(any\), start \(any\)"),
    ({"x": 1.5}, r"parameter 'x' of .* takes int \(its default is 1\), got float 1.5"),
    ({"x": True}, r"parameter 'x' of .* takes int .*got bool True"),
    ({"scale": "big"}, r"parameter 'scale' of .* takes int or float .*got str 'big'"),
    ({"label": 8}, r"parameter 'label' of .* takes str .*got int 8; give a string that looks like "
                   r"a number .* with -r"),
    ({"flag": 1}, r"parameter 'flag' of .* takes bool \(its default is False\), got int 1"),
])
def test_bad_parameters_are_named_with_what_is_accepted(tmp_path, given, message):
    with pytest.raises(parameters.ParameterError, match=message):
        parameters.check_parameters(make_project(tmp_path), given)


def test_a_notebook_without_parameters_cell_takes_none(tmp_path):
    notebook = make_project(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].metadata = {}
    nbformat.write(nb, notebook)
    with pytest.raises(parameters.ParameterError, match="has no cell tagged 'parameters'"):
        parameters.check_parameters(notebook, {"x": 1})


def test_run_names():
    assert runs.run_name({}) == "defaults"
    assert runs.run_name({"x": 2, "label": "a b/c,d=e", "flag": True, "scale": 0.5}) == \
        "x=2,label=a%20b%2Fc%2Cd%3De,flag=True,scale=0.5"
    long = runs.run_name({"label": "z" * 500})
    assert len(long) == 200 and long.startswith("label=zzz") and "~" in long
    assert long != runs.run_name({"label": "z" * 499})


def test_grids():
    grid = parameters.parse_grid(["x=1,2", "label=a,b", "x=3"])
    assert grid == {"x": [1, 2, 3], "label": ["a", "b"]}
    assert parameters.combinations({"x": [1, 2], "label": ["a", "b"]}) == [
        {"x": 1, "label": "a"}, {"x": 1, "label": "b"}, {"x": 2, "label": "a"},
        {"x": 2, "label": "b"}]
    for bad, message in [("x", "bad --grid 'x'"), ("x=", "bad --grid 'x='"),
                         ("=1,2", "bad --grid '=1,2'"), ("x=1,1", "lists the value 1 twice")]:
        with pytest.raises(parameters.ParameterError, match=message):
            parameters.parse_grid([bad])
    assert parameters.parse_grid(["x=1,1.0"]) == {"x": [1, 1.0]}  # an int and a float differ


def test_rerun_commands_give_back_the_same_values():
    command = runs.rerun_command("book/tiny.ipynb", {"x": 2, "label": "8", "name": "a b",
                                                     "empty": ""})
    assert command == (".venv/bin/dvd run book/tiny.ipynb -p x 2 -r label 8 -p name 'a b' "
                       "-p empty ''")
    papermill = runs.rerun_command("book/tiny.ipynb", {"x": 2}, program=".venv/bin/papermill",
                                   output="out.ipynb")
    assert papermill == ".venv/bin/papermill book/tiny.ipynb out.ipynb --cwd book -p x 2"


def test_bad_input_on_the_command_line_runs_nothing(tmp_path, monkeypatch, capsys):
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "tiny", "-p", "y", "1"]) == 2
    assert "unknown parameter 'y'" in capsys.readouterr().err
    assert cli.main(["sweep", "book/tiny.ipynb", "--grid", "x=1,oops"]) == 2
    assert "parameter 'x' of book/tiny.ipynb takes int" in capsys.readouterr().err
    assert cli.main(["run", "tiny", "-p", "x", "1", "-p", "x", "2"]) == 2
    assert "'x' given more than once" in capsys.readouterr().err
    assert cli.main(["sweep", "tiny", "--grid", "x=1,2", "-p", "x", "3"]) == 2
    assert "both with -p and --grid: x" in capsys.readouterr().err
    assert cli.main(["run", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "no notebook 'nosuch'" in err and "chapters: book/tiny.ipynb" in err
    assert not (tmp_path / "results").exists()


# A chapter that declares the shared names which replaced num_inference_steps, guidance_scale,
# guidance_scales and bootstrap_resamples.
SHARED_NAMES = """\
steps = 20
guidance = 4.0
guidance_sweep = "1,4"
n_resamples = 1000
"""


@pytest.mark.parametrize("argv, line", [
    (["run", "tiny", "-p", "bootstrap_resamples", "50"],
     "dvd run: error: -p bootstrap_resamples: renamed; use -p n_resamples"),
    (["run", "tiny", "-p", "steps", "5", "-p", "num_inference_steps", "5"],
     "dvd run: error: -p num_inference_steps: renamed; use -p steps"),
    (["run", "tiny", "-r", "guidance_scales", "1,2"],
     "dvd run: error: -p guidance_scales: renamed; use -p guidance_sweep"),
    (["sweep", "tiny", "--grid", "guidance_scale=1,4"],
     "dvd sweep: error: --grid guidance_scale: renamed; use --grid guidance"),
    (["sweep", "tiny", "--grid", "steps=5,10", "-p", "bootstrap_resamples", "50"],
     "dvd sweep: error: -p bootstrap_resamples: renamed; use -p n_resamples"),
])
def test_an_old_parameter_name_is_refused_with_its_new_one(tmp_path, monkeypatch, capsys, argv,
                                                           line):
    make_project(tmp_path, parameters=SHARED_NAMES)
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [line]
    assert not (tmp_path / "results").exists()  # refused before anything ran


def test_a_notebook_that_declares_an_old_name_itself_keeps_it(tmp_path):
    notebook = make_project(tmp_path, parameters="guidance_scale = 7.5\n")
    assert parameters.check_parameters(notebook, {"guidance_scale": 2}) == {"guidance_scale": 2.0}
    with pytest.raises(parameters.ParameterError, match="unknown parameter 'n_resamples'"):
        parameters.check_parameters(notebook, {"n_resamples": 2})
    # Neither name declared: the old one is unknown like any other.
    with pytest.raises(parameters.ParameterError, match="unknown parameter 'bootstrap_resamples'"):
        parameters.check_parameters(notebook, {"bootstrap_resamples": 2})


def test_the_project_kernel_is_this_environment():
    """Notebooks name the kernel python3; from this environment it must start this Python."""
    from jupyter_client import KernelManager

    assert KernelManager(kernel_name="python3").format_kernel_cmd()[0] == sys.executable


def read_summary(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_sweep_runs_every_combination_once_and_resumes(tmp_path):
    notebook = make_project(tmp_path)
    results = tmp_path / "results"
    logged = []

    first = runs.sweep(notebook, {"x": [1, 2]}, fixed={"label": "s"}, root=tmp_path,
                       log=logged.append)
    assert not first.failures and [r.reused for r in first.runs] == [False, False]
    folder = results / "tiny" / "x=1,label=s"
    assert (folder / "output.ipynb").is_file() and (folder / "done.json").is_file()
    assert json.loads((folder / "params.json").read_text()) == {
        "notebook": "book/tiny.ipynb", "parameters": {"x": 1, "label": "s"}}
    executed = nbformat.read(folder / "output.ipynb", as_version=4)
    assert executed.cells[-1].outputs[-1]["text"] == "2\n"
    # Each run wrote its headlines into its own folder (DVD_BUILD_DIR), none into the project.
    assert json.loads((folder / "headlines" / "tiny.json").read_text())["values"] == {
        "double": 2, "scaled": 0.5}
    assert not (tmp_path / "_build").exists()
    assert first.summary == results / "tiny" / "sweep_x.csv"
    rows = read_summary(first.summary)
    assert [(r["run"], r["status"], r["x"], r["label"], r["tiny:double"], r["tiny:scaled"])
            for r in rows] == [("x=1,label=s", "ran", "1", "s", "2", "0.5"),
                               ("x=2,label=s", "ran", "2", "s", "4", "1.0")]

    # Rerun with one more value, of which x=3 fails: only the new ones run, the failure is
    # recorded and the sweep goes on.
    mtime = (folder / "output.ipynb").stat().st_mtime_ns
    second = runs.sweep(notebook, {"x": [1, 2, 3]}, fixed={"label": "s"}, root=tmp_path,
                        log=logged.append)
    assert [r.reused for r in second.runs] == [True, True]
    assert (folder / "output.ipynb").stat().st_mtime_ns == mtime
    assert len(second.failures) == 1
    given, error = second.failures[0]
    assert given == {"x": 3, "label": "s"}
    assert "book/tiny.ipynb failed in cell 3 of 3 ('from dvdlib.book import headlines')" in error
    assert "ValueError: x may not be 3" in error and "\n" not in error
    assert any(": 1/" in line and "cells done" in line for line in logged)  # progress while running
    failed = results / "tiny" / "x=3,label=s"
    assert not (failed / "done.json").exists() and not (failed / "output.ipynb").exists()
    assert (failed / "failed.ipynb").is_file()
    assert [(r["status"], r["tiny:double"]) for r in read_summary(second.summary)] == [
        ("reused", "2"), ("reused", "4"), ("failed", "")]

    # A change in dvdlib keeps finished runs (a sweep resumes) but flags them.
    (tmp_path / "dvdlib" / "__init__.py").write_text("# a change in the library the chapter "
                                                     "imports\n")
    kept = runs.run_notebook(notebook, {"x": 1, "label": "s"}, root=tmp_path, log=logged.append)
    assert kept.reused and kept.earlier_library
    assert (folder / "output.ipynb").stat().st_mtime_ns == mtime
    third = runs.sweep(notebook, {"x": [1]}, fixed={"label": "s"}, root=tmp_path,
                       summary=tmp_path / "third.csv", log=logged.append)
    assert read_summary(third.summary)[0]["status"] == "reused, earlier dvdlib"

    # A run whose notebook changed is no longer finished.
    source = nbformat.read(notebook, as_version=4)
    source.cells[-1].source = BODY.replace("x * 2, ", "x * 20, ")
    nbformat.write(source, notebook)
    rerun = runs.run_notebook(notebook, {"x": 1, "label": "s"}, root=tmp_path, log=logged.append)
    assert not rerun.reused
    assert json.loads((folder / "headlines" / "tiny.json").read_text())["values"]["double"] == 20


def test_every_chapter_declares_ranges_that_its_defaults_meet():
    """The declarations in each chapter's metadata name real parameters and accept the defaults."""
    from dvdlib.book.chapters import chapter_notebooks

    root = Path(__file__).resolve().parents[1]
    declared_somewhere = 0
    for notebook in chapter_notebooks(root):
        declared = parameters.notebook_parameters(root / notebook)
        declared_somewhere += sum(bool(p.rule) for p in declared.values())
        defaults = {name: p.default for name, p in declared.items() if p.literal}
        assert parameters.check_parameters(notebook, defaults, declared) == defaults
    assert declared_somewhere >= 40


def test_a_declaration_with_an_unknown_key_is_refused(tmp_path):
    notebook = make_project(tmp_path)
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["dvdbook"] = {"parameters": {"x": {"minimum": 1}}}
    nbformat.write(nb, notebook)
    with pytest.raises(parameters.ParameterError,
                       match="dvdbook.parameters.x: unknown key.*minimum"):
        parameters.notebook_parameters(notebook)


@pytest.mark.slow
def test_run_works_from_any_folder_with_results_in_the_working_directory(tmp_path, monkeypatch,
                                                                           capsys):
    notebook = make_project(tmp_path / "checkout")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli.main(["run", str(notebook), "-p", "x", "2"]) == 0
    folder = elsewhere / "results" / "tiny" / "x=2"
    assert (folder / "done.json").is_file()
    assert json.loads((folder / "headlines" / "tiny.json").read_text())["values"]["double"] == 4
    assert not (tmp_path / "checkout" / "results").exists()


def test_kernel_sockets_live_in_the_temporary_folder_not_beside_the_notebook():
    import tempfile

    from dvdlib.book.execute import kernel_config

    first, second = kernel_config()["KernelManager"], kernel_config()["KernelManager"]
    assert first["transport"] == "ipc"
    assert Path(first["ip"]).parent == Path(tempfile.gettempdir())
    assert first["ip"] != second["ip"]  # two runs side by side never share sockets
