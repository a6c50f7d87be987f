"""The one papermill executor: the book and ``dvd run`` execute notebooks with it, and a finished
run is marked one way, by the record inside the output notebook."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest

from dvdlib.book import build, execute, runs

BOOK_TOOLS = Path(execute.__file__).parent
EVERY_RUN = {"parameters", "seconds", "finished", "platform"}  # fields every record has


def write_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def make_project(root: Path) -> Path:
    (root / "dvdlib").mkdir(parents=True)
    (root / "dvdlib" / "__init__.py").write_text("")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/ch\n")
    write_notebook(root / "book" / "ch.ipynb", "print(x * 2)")
    return Path("book/ch.ipynb")


def test_only_the_executor_calls_papermill_to_execute():
    callers = set()
    for path in BOOK_TOOLS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr == "execute_notebook" \
                    and isinstance(node.value, ast.Name) and node.value.id == "papermill":
                callers.add(path.name)
            if isinstance(node, ast.ImportFrom) and node.module == "papermill" \
                    and any(alias.name == "execute_notebook" for alias in node.names):
                callers.add(path.name)
    assert callers == {"execute.py"}
    for user in (build, runs):
        assert user.execute_notebook is execute.execute_notebook


@pytest.mark.slow
def test_a_finished_run_carries_its_record_and_a_failed_one_leaves_the_output_alone(tmp_path):
    notebook = write_notebook(tmp_path / "nb" / "double.ipynb",
                              "import os\nprint(x * 2, os.environ['DVD_BUILD_DIR'])")
    output = tmp_path / "out" / "double.ipynb"
    seen = []
    run = execute.execute_notebook(notebook, output, {"x": 4}, record={"key": "abc"},
                                   build_dir=tmp_path / "build", progress=lambda *p: seen.append(p))
    assert run.output == output and not output.with_name("double.partial.ipynb").exists()
    cells = nbformat.read(output, as_version=4).cells
    assert cells[-1].outputs[0]["text"] == f"8 {(tmp_path / 'build').resolve()}\n"
    record = execute.finished_record(output)
    assert record == run.record and record["key"] == "abc" and record["parameters"] == {"x": 4}
    assert EVERY_RUN <= set(record) and seen and seen[-1][0] == seen[-1][1]

    good = output.read_bytes()
    write_notebook(notebook, "raise ValueError('broken')")
    with pytest.raises(execute.NotebookFailed,
                       match=r"double\.ipynb failed in cell 2 of 2 .*ValueError: broken"):
        execute.execute_notebook(notebook, output, {"x": 4}, name="double.ipynb")
    assert output.read_bytes() == good  # the last finished output is never half-overwritten
    failed = output.with_name("double.failed.ipynb")
    assert failed.is_file() and execute.finished_record(failed) == {}


def test_an_output_without_a_record_is_not_a_finished_run(tmp_path):
    plain = write_notebook(tmp_path / "plain.ipynb", "print(1)")
    assert execute.finished_record(plain) == {}
    assert execute.finished_record(tmp_path / "missing.ipynb") == {}


@pytest.mark.slow
def test_the_book_and_dvd_run_mark_a_finished_chapter_the_same_way(tmp_path):
    notebook = make_project(tmp_path)
    chapter = build.execute_chapter(tmp_path, notebook, tmp_path / "_build" / "executed")
    run = runs.run_notebook(tmp_path / notebook, {"x": 3}, root=tmp_path, log=lambda line: None)
    in_book = execute.finished_record(chapter.executed)
    in_run = execute.finished_record(run.folder / runs.OUTPUT)
    assert EVERY_RUN | {"key"} <= set(in_book)
    assert EVERY_RUN | {"key", "source_key"} <= set(in_run)
    assert in_run["parameters"] == {"x": 3} and in_book["parameters"] == {}
    # done.json repeats the run's record; it is not a second way of marking it.
    assert json.loads((run.folder / runs.DONE).read_text()) == json.loads(json.dumps(in_run))
    # Each is reused from its own record, and only from it.
    assert build.execute_chapter(tmp_path, notebook, tmp_path / "_build" / "executed").reused
    (run.folder / runs.DONE).unlink()
    assert runs.run_notebook(tmp_path / notebook, {"x": 3}, root=tmp_path).reused


@pytest.mark.slow
def test_chapters_run_side_by_side_and_a_failure_lets_the_running_ones_finish(tmp_path):
    (tmp_path / "dvdlib").mkdir()
    (tmp_path / "dvdlib" / "__init__.py").write_text("")
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    # Each chapter writes when it starts; then, if it has a partner, waits (up to a minute) for the
    # partner to have started too, which only two chapters at once allow; then it may fail, waits
    # a little, and writes when it ends.
    body = ("import pathlib, time\nstamps = pathlib.Path({stamps!r})\n"
            "(stamps / '{name}.start').write_text(str(time.time()))\n"
            "limit = time.time() + 60\n"
            "while {partner!r} and not (stamps / '{partner}.start').exists()"
            " and time.time() < limit:\n"
            "    time.sleep(0.05)\n"
            "{fail}time.sleep({pause})\n"
            "(stamps / '{name}.end').write_text(str(time.time()))")

    def chapter(name: str, partner: str = "", fail: str = "", pause: float = 0.5) -> None:
        write_notebook(tmp_path / "book" / f"{name}.ipynb",
                       body.format(stamps=str(stamps), name=name, partner=partner, fail=fail,
                                   pause=pause))

    chapter("a", partner="b")
    chapter("b", partner="a")
    chapter("c")
    notebooks = [Path("book") / f"{name}.ipynb" for name in "abc"]
    out = tmp_path / "_build"

    def seen(suffix: str) -> dict[str, float]:
        return {p.stem: float(p.read_text()) for p in stamps.glob(f"*.{suffix}")}

    ran = build.execute_chapters(tmp_path, notebooks, out, jobs=2, log=lambda line: None)
    assert [r.notebook for r in ran] == notebooks and not any(r.reused for r in ran)
    start, end = seen("start"), seen("end")
    assert start["b"] < end["a"] and start["a"] < end["b"]  # a and b overlapped
    assert start["c"] >= min(end["a"], end["b"])  # c waited for a free job

    # b fails as soon as a runs beside it, and a then runs on for long enough that b's failure is
    # seen first: c, not yet started, never starts; a finishes and is kept.
    for path in stamps.iterdir():
        path.unlink()
    chapter("a", partner="b", pause=20)
    chapter("b", partner="a", fail="raise ValueError('b broke')\n")
    with pytest.raises(execute.NotebookFailed, match="b broke"):
        build.execute_chapters(tmp_path, notebooks, out, jobs=2, force=True, log=lambda line: None)
    assert set(seen("start")) == {"a", "b"} and set(seen("end")) == {"a"}
    assert execute.finished_record(out / build.EXECUTED / "book" / "a.ipynb")
    with pytest.raises(ValueError, match="jobs 0: accepted: a whole number"):
        build.execute_chapters(tmp_path, notebooks, out, jobs=0)
