"""Results that survive interruption: an append-only log of rows, and atomic files.

A long run (generating 3,000 images, judging them with 30,000 questions) writes one row per
finished unit of work to a :class:`ResultLog`: a text file with one line per row,

    <crc32 of the JSON, 8 hex digits> <TAB> <the row as JSON> <newline>

Why a log and not one small file per row: a row is committed by a single ``write`` of one line
to a file opened for appending, so there is one file per run instead of thousands, and a reader
gets the whole table with one read. What can go wrong is covered by three rules:

- A process killed (``kill -9``) or a machine losing power in the middle of a write leaves at most
  one torn line at the end. Its checksum fails (or its newline is missing), so it is not a row:
  reading skips it and the next writer cuts it off before appending.
- A row is written only after the work it records is on disk (an image is saved atomically before
  its row), so a row never points at a missing or half-written file. Work done but not yet logged
  when a run dies is simply done again.
- Rows are keyed (for example by ``case_num, seed``); reading keeps the first row of each key, so
  even a repeated row cannot appear twice in the table.

One process writes a log at a time: :meth:`ResultLog.open` takes an exclusive lock on the file and
says so clearly when another process holds it.

Final tables (CSV, parquet, JSON) are written whole, to a temporary file beside the target and
moved over it with ``os.replace``: a reader sees the old file or the new one, never half of one.
This module is dvdlib's only atomic writer: torch checkpoints (:func:`save_torch`), JSON
(:func:`atomic_write_json`), whole folders (:func:`atomic_folder`) and a training run's folder
lock (:func:`folder_lock`) live here too, and every file it makes is readable by all (0644).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import pandas as pd

try:  # POSIX; elsewhere the log is unlocked (one writer is then the caller's promise)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class StoreError(RuntimeError):
    """A results file that cannot be used as asked; the message names the file."""


# --------------------------------------------------------------------------------------------
# Atomic files


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary path)`` beside ``path``, then move the result onto ``path`` with
    ``os.replace``: a reader sees the old file or the new one, never a mixture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp makes owner-only files; results are for everyone
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda temporary: temporary.write_bytes(data))


def remove_temporaries(*folders: Path) -> None:
    """Delete the temporary files a killed writer left in ``folders`` (``.NAME.*.tmp``).

    Call it only while holding the lock of the log these folders belong to.
    """
    for folder in folders:
        if Path(folder).is_dir():
            for leftover in Path(folder).glob(".*.tmp"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_bytes(path, text.encode("utf-8"))


def load_json(path: str | Path) -> Any:
    """The JSON document at ``path`` (as :func:`atomic_write_json` wrote it)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (a checkpoint, training state), every tensor
    moved to the CPU first, so a run trained on any device resumes on any other."""
    import torch  # only where checkpoints are written: the rest of store needs no torch

    return atomic_write(path, lambda temporary: torch.save(to_cpu(obj), temporary))


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside it (dicts, lists, tuples) moved to the CPU."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value


def load_checkpoint(path: str | Path, config: dict) -> dict | None:
    """The training state :func:`save_torch` saved at ``path``, or None if there is none yet.

    A checkpoint written with another configuration (its ``"config"`` entry) is refused rather
    than silently continued with the wrong recipe.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
    except Exception as err:  # a truncated or foreign file: pickle, zip and torch errors vary
        raise ValueError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}); "
                         f"delete it to start that run over") from None
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"checkpoint {path} is not a training checkpoint; delete it to start "
                         f"that run over")
    if state["config"] != config:
        raise ValueError(f"{path} was written with a different configuration; use another folder "
                         f"or delete it")
    return state


def atomic_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary folder)`` beside ``path``, then swap the folder in for ``path``: a
    reader finds the old folder or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(temporary, 0o755)  # mkdtemp makes owner-only folders; results are for everyone
    try:
        write(temporary)
        old = path.with_name(path.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if path.exists():
            os.replace(path, old)
        os.replace(temporary, path)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return path


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder/.lock`` while a run writes into ``folder``: a second run into the same
    folder stops with an error instead of interleaving checkpoints. A lock left by a process
    that no longer exists is taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner):
                raise StoreError(f"{folder} is in use by process {owner} (lock file {lock})")
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(handle, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise StoreError(f"could not take the lock {lock}")
    try:
        yield folder
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_run_settings(path: str | Path, settings: dict, what: str) -> None:
    """Record ``settings`` at ``path`` on a first run; on a rerun refuse different ones.

    ``what`` names the results in the message (e.g. "the images in out/"), so results made with
    other settings are never mixed with these.
    """
    path = Path(path)
    settings = json.loads(json.dumps(settings))  # as they will read back (tuples become lists)
    if not path.is_file():
        atomic_write_json(path, settings)
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    differ = [k for k in settings if stored.get(k) != settings[k]]
    if differ:
        listed = "; ".join(f"{k}: earlier {stored.get(k)!r}, now {settings[k]!r}" for k in differ)
        raise StoreError(f"{what} were made with other settings ({listed}); write to another place")


TABLE_SUFFIXES = (".csv", ".parquet")


def check_table_path(path: str | Path) -> Path:
    """``path`` if it names a table format we write (by suffix) and is not a folder, else a
    ValueError (made before any work, so a run never judges everything and then fails to write)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"table file {str(path)!r} is a folder; name a file ending in "
                         f"{', '.join(TABLE_SUFFIXES)}")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(
            f"table file {str(path)!r} has suffix {path.suffix or '(none)'!r}; "
            f"accepted: {', '.join(TABLE_SUFFIXES)}"
        )
    return path


def save_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write ``table`` as CSV or parquet (chosen by the suffix), atomically."""
    path = check_table_path(path)
    buffer = io.BytesIO()
    if path.suffix.lower() == ".csv":
        table.to_csv(buffer, index=False, encoding="utf-8")
    else:
        table.to_parquet(buffer, index=False)
    return atomic_write_bytes(path, buffer.getvalue())


def load_table(path: str | Path) -> pd.DataFrame:
    path = check_table_path(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Check, creating nothing, that ``path`` is a folder or could be made as one.

    Raises ``ValueError`` naming the folder and the reason: an empty name (``Path('')`` would be
    the working directory), a file where a folder must be, or a folder without write permission.
    For checks made before slow work (loading a model).
    """
    if not str(path).strip():
        raise ValueError(f"{what} {str(path)!r} is empty; name a folder (e.g. results/)")
    path = Path(path)
    for folder in (path, *path.parents):
        if not folder.exists():
            continue
        if not folder.is_dir():
            where = "it" if folder == path else repr(str(folder))
            raise ValueError(f"{what} {str(path)!r} cannot be used: {where} is a file, not a "
                             f"folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {str(path)!r} is not writable: no permission to write in "
                             f"{str(folder)!r}")
        break
    return path


@contextmanager
def no_new_folders_on_error(folder: str | Path) -> Iterator[Path]:
    """Remove the folders made for ``folder`` (it and its missing parents) if the body fails
    while they are still empty: a command that fails before its work starts leaves nothing."""
    folder = Path(folder)
    missing = [f for f in (folder, *folder.parents) if not f.exists()]  # deepest first
    try:
        yield folder
    except BaseException:
        for made in missing:
            try:
                made.rmdir()  # only an empty folder goes
            except OSError:
                break
        raise


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if needed and prove it is writable, before any work.

    Raises ``ValueError`` naming the folder and the reason, so a long run never fails at its end.
    """
    path = check_writable_dir(path, what)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} is not writable: {err.strerror or err}") from None
    return path


# --------------------------------------------------------------------------------------------
# The log


def _encode(row: dict) -> bytes:
    payload = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    data = payload.encode("utf-8")
    return b"%08x\t%s\n" % (zlib.crc32(data), data)


def _decode(line: bytes) -> dict | None:
    """The row of one complete line, or None when its checksum or JSON is broken."""
    checksum, tab, data = line.partition(b"\t")
    if not tab or len(checksum) != 8:
        return None
    try:
        if int(checksum, 16) != zlib.crc32(data):
            return None
        row = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return row if isinstance(row, dict) else None


def lock_or_refuse(fd: int, exclusive: bool, refusal: str) -> None:
    """Lock the open file ``fd`` (exclusive or shared) without waiting; a StoreError saying
    ``refusal`` when another process holds a conflicting lock. No-op where there is no flock."""
    if fcntl is None:
        return
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StoreError(refusal) from None


class ResultLog:
    """An append-only, checksummed log of rows keyed by ``key`` columns (see the module notes).

    Reading needs no lock::

        log = ResultLog(folder / "answers.log", key=("case_num", "image"))
        done = log.done_keys()

    Writing happens inside ``with log.open():`` (exclusive lock, torn tail cut off).
    """

    def __init__(self, path: str | Path, key: Sequence[str]):
        self.path = Path(path)
        self.key = tuple(key)
        if not self.key:
            raise ValueError("a ResultLog needs at least one key column")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"ResultLog({str(self.path)!r}, key={self.key})"

    # -- reading -------------------------------------------------------------------------------

    def _read(self) -> tuple[list[dict], int]:
        """Rows of the complete, valid lines (first of each key) and the number of lines skipped."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        lines = data.split(b"\n")
        lines.pop()  # the text after the last newline: empty, or a torn line (never a row)
        rows, seen, skipped = [], set(), 0
        for line in lines:
            row = _decode(line)
            if row is None or any(k not in row for k in self.key):
                skipped += 1
                continue
            key = self.key_of(row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
        if data and not data.endswith(b"\n"):
            skipped += 1
        return rows, skipped

    def rows(self) -> list[dict]:
        """Every committed row, once per key, in the order written."""
        return self._read()[0]

    def skipped_lines(self) -> int:
        """Lines that are not rows (torn or damaged): 1 after a killed write, normally 0."""
        return self._read()[1]

    def key_of(self, row: dict) -> tuple:
        return tuple(row[k] for k in self.key)

    def done_keys(self) -> set[tuple]:
        return {self.key_of(row) for row in self.rows()}

    def table(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows as a table sorted by the key (so the order never depends on the run's history)."""
        rows = self.rows()
        table = pd.DataFrame(rows, columns=list(columns) if columns else None)
        if rows:
            table = table.sort_values(list(self.key), kind="stable").reset_index(drop=True)
        return table

    # -- writing -------------------------------------------------------------------------------

    def open(self) -> "ResultLog":
        """Open for appending: lock the file, cut off a torn last line. Use as a context manager."""
        if self._fd is not None:
            raise StoreError(f"{self.path} is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            lock_or_refuse(fd, exclusive=True, refusal=(
                f"{self.path} is being written by another process; wait for it to finish or "
                f"write to another folder"))
            self._cut_torn_tail(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _cut_torn_tail(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size == 0:
            return
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        os.ftruncate(fd, data.rfind(b"\n") + 1)  # the torn line was never committed

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def __enter__(self) -> "ResultLog":
        return self if self._fd is not None else self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def append(self, rows: Iterable[dict]) -> None:
        """Commit ``rows``: one ``write`` of their lines, then ``fsync``."""
        if self._fd is None:
            raise StoreError(f"{self.path} is not open for writing: use `with log.open():`")
        data = b""
        for row in rows:
            missing = [k for k in self.key if k not in row]
            if missing:
                raise ValueError(f"row for {self.path.name} lacks key column(s) {', '.join(missing)}")
            data += _encode(row)
        if not data:
            return
        while data:  # one write in practice; a short write leaves a torn line, never a wrong row
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)
