"""The one papermill executor: run a notebook with parameters into an output notebook.

Both the book (:mod:`dvdlib.book.build`, a chapter into ``_build/executed/``) and ``dvd run`` /
``dvd sweep`` (:mod:`dvdlib.book.runs`, a chapter into its results folder) execute notebooks
with :func:`execute_notebook`, so both do it alike:

- papermill runs in a child process of this Python, with the notebook's own folder as the
  working directory and the kernel's sockets under the temporary folder (:func:`kernel_config`);
  ``build_dir`` becomes the kernel's ``$DVD_BUILD_DIR``, so the headline numbers and images a
  chapter saves land in the caller's folder; ``progress(done, total)`` hears of every finished cell;
- a failing cell raises :class:`NotebookFailed`, naming the notebook, the cell (numbered as in
  the source notebook) and the error; the partly executed notebook is kept at ``failed`` for its
  full traceback, and an earlier output is left as it was;
- a finished run is marked one way: the output notebook is moved into place (atomically) with
  its record in its metadata, ``metadata.dvdbook``: the caller's fields (cache keys) plus the
  parameters, seconds, finishing time and the machine (:func:`platform_info`). An output with a
  record is a finished run; :func:`finished_record` reads it back.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Callable

from dvdlib.paths import BUILD_DIR_ENV

RECORD = "dvdbook"  # the output notebook's metadata field holding its finished-run record
INJECTED = "injected-parameters"  # papermill's tag on the cell it adds
ERROR_BANNER = "papermill-error-cell-tag"  # papermill's tag on the banners it adds to a failed run
_PROGRESS = "[dvd-progress] "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the message names the notebook, the cell and the error."""


@dataclass(frozen=True)
class Executed:
    output: Path  # the executed notebook, now in place
    seconds: float
    record: dict  # what was written into its metadata.dvdbook


# ----------------------------------------------------------------------------- reading outputs

def read_notebook(path: Path) -> dict:
    """A notebook's JSON, or ``{}`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def finished_record(output: Path) -> dict:
    """The finished-run record of an executed notebook, or ``{}`` if it is not a finished run."""
    record = read_notebook(output).get("metadata", {}).get(RECORD, {})
    return record if isinstance(record, dict) else {}


def _source_text(cell: dict) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def failed_cell(nb: dict) -> str | None:
    """Where and why a papermill-executed notebook failed, numbering cells as the source notebook
    does (papermill's injected parameters cell is not counted), or None if no cell failed."""
    cells = [c for c in nb.get("cells", [])  # without papermill's red error banners
             if ERROR_BANNER not in c.get("metadata", {}).get("tags", [])]
    injected = [INJECTED in c.get("metadata", {}).get("tags", []) for c in cells]
    total = injected.count(False)
    number = 0
    for cell, is_injected in zip(cells, injected):
        number += not is_injected
        if not cell.get("metadata", {}).get("papermill", {}).get("exception"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        what = f"{errors[0]['ename']}: {errors[0]['evalue']}" if errors else "an error"
        traceback = errors[0].get("traceback", []) if errors else []
        frames = [_ANSI.sub("", line) for line in traceback]
        lines = [line.strip() for frame in frames for line in frame.splitlines()]
        located = [line for line in lines if line.startswith(("File ", "Cell In["))]
        where = f"; raised at {located[-1]}" if located else ""
        if is_injected:
            return f"failed in the injected parameters cell: {what}"
        first = next((line.strip() for line in _source_text(cell).splitlines() if line.strip()), "")
        return f"failed in cell {number} of {total} ({first[:60]!r}): {what}{where}"
    return None


# ----------------------------------------------------------------------------- the machine

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _gpus() -> str:
    """NVIDIA GPUs as nvidia-smi names them, or "none found" (torch is not imported for this)."""
    if shutil.which("nvidia-smi") is None:
        return "none found"
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "none found"
    names = [n.strip() for n in names if n.strip()]
    return ", ".join(f"{names.count(n)} x {n}" for n in dict.fromkeys(names)) or "none found"


def platform_info() -> dict:
    """The machine and software a notebook ran on, recorded in the executed notebook."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = None
    try:
        torch_version = package_metadata.version("torch")
    except package_metadata.PackageNotFoundError:
        torch_version = "not installed"
    return {
        "cpu": _cpu_model(), "cores": os.cpu_count(),
        "memory_gib": round(memory, 1) if memory else None,
        "gpu": _gpus(), "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "torch": torch_version,
    }


# ----------------------------------------------------------------------------- running

def kernel_config():
    """The traitlets config papermill passes to its kernel manager: IPC sockets (no "running over
    TCP" warning) named under the temporary folder, not in the notebook's folder, where the
    book's build would find them and an interrupted run would leave them."""
    import tempfile
    import uuid

    from traitlets.config import Config

    sockets = Path(tempfile.gettempdir()) / f"dvd-kernel-{uuid.uuid4().hex[:12]}"
    return Config({"KernelManager": {"transport": "ipc", "ip": str(sockets)}})


class _ProgressLines(io.TextIOBase):
    """A file for papermill's progress bar that writes one ``[dvd-progress] done total`` line
    per finished cell to ``stream``."""

    def __init__(self, stream):
        super().__init__()
        self.stream, self.last = stream, None

    def write(self, text: str) -> int:
        for done, total in re.findall(r"(\d+)/(\d+)", text):
            if (done, total) != self.last:
                self.last = (done, total)
                self.stream.write(f"{_PROGRESS}{done} {total}\n")
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _child(argv: list[str]) -> int:
    """The child process of :func:`execute_notebook`: papermill with progress lines on stdout."""
    import papermill

    notebook, output, cwd, parameters = argv
    progress = {"file": _ProgressLines(sys.stdout), "mininterval": 0, "bar_format": "{n}/{total}"}
    try:
        papermill.execute_notebook(notebook, output, parameters=json.loads(parameters), cwd=cwd,
                                   progress_bar=progress, config=kernel_config())
    except papermill.PapermillExecutionError:
        return 1  # the partly executed notebook says where and why
    return 0


def _run_child(command: list[str], environment: dict, progress) -> tuple[int, str]:
    """Run the papermill child; report its progress lines; return its exit code and output."""
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
    reader.start()
    lines = []
    try:
        for line in process.stdout:
            if line.startswith(_PROGRESS):
                done, total = (int(n) for n in line[len(_PROGRESS):].split())
                if progress is not None:
                    progress(done, total)
            else:
                lines.append(line)
    finally:
        process.wait()  # on Ctrl-C the child got the signal too; wait for it to clean up
        reader.join()
    return process.returncode, "".join(lines) + "".join(errors)


def _failure(name: str, partial: Path, output: str) -> str:
    """The failing cell and error, read from papermill's partly executed notebook."""
    failure = failed_cell(read_notebook(partial))
    if failure is not None:
        return f"{name} {failure}"
    tail = " | ".join(line.strip() for line in output.strip().splitlines()[-6:])
    return f"{name} failed before any cell ran: {tail or 'no output'}"


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict | None = None, *,
                     record: dict | None = None, build_dir: str | Path | None = None,
                     failed: str | Path | None = None, name: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Executed:
    """Execute ``notebook`` with ``parameters`` into ``output`` (see the module's notes).

    ``record``: fields to store in the output's finished-run record (cache keys, say) beside the
    ones every run gets: ``parameters``, ``seconds``, ``finished`` (UTC), ``platform``.
    ``build_dir``: the kernel's ``$DVD_BUILD_DIR`` (default: inherited). ``failed``: where the
    partly executed notebook of a failed run is kept (default: ``<output stem>.failed.ipynb``).
    ``name``: how messages name the notebook (default: its path). ``progress(done, total)``:
    called after each finished cell. Raises :class:`NotebookFailed` when a cell fails.
    """
    notebook, output = Path(notebook).resolve(), Path(output)
    parameters = dict(parameters or {})
    failed = Path(failed) if failed is not None else output.with_name(output.stem + ".failed.ipynb")
    name = name or str(notebook)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.stem + ".partial.ipynb")
    command = [sys.executable, "-c", "import sys; from dvdlib.book.execute import _child; "
               "sys.exit(_child(sys.argv[1:]))", str(notebook), str(partial),
               str(notebook.parent), json.dumps(parameters)]
    environment = dict(os.environ)
    if build_dir is not None:
        environment[BUILD_DIR_ENV] = str(Path(build_dir).resolve())
    start = time.perf_counter()
    returncode, text = _run_child(command, environment, progress)
    seconds = time.perf_counter() - start
    if returncode != 0:
        message = _failure(name, partial, text)
        if partial.is_file():
            os.replace(partial, failed)
            message += f" (full traceback in the partly executed notebook {failed})"
        raise NotebookFailed(message)

    nb = read_notebook(partial)
    done = {**(record or {}), "parameters": parameters, "seconds": round(seconds, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "platform": platform_info()}
    nb.setdefault("metadata", {})[RECORD] = done
    partial.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, output)  # atomic: the output and its record arrive together
    failed.unlink(missing_ok=True)
    return Executed(output, seconds, done)
