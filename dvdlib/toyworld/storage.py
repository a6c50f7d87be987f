"""Writing results safely: atomic files and folders, so an interrupted run never leaves half a file.

Every write goes to a temporary name beside the target and is moved into place with
``os.replace``; a reader sees the old file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch

from dvdlib.store import atomic_write


def save_torch(obj, path: str | Path) -> Path:
    return atomic_write(path, lambda p: torch.save(obj, p))


def load_checkpoint(path: str | Path, config: dict) -> dict | None:
    """The training state saved at ``path``, or None if there is none yet.

    A checkpoint written with another configuration is refused rather than silently continued
    with the wrong recipe.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=False)
    except Exception as err:  # a truncated or foreign file: pickle, zip and torch errors vary
        raise ValueError(f"checkpoint {path} is damaged or not a checkpoint ({type(err).__name__}); "
                         f"delete it to start that run over") from None
    if not isinstance(state, dict) or "config" not in state:
        raise ValueError(f"checkpoint {path} is not a toy-world training checkpoint; "
                         f"delete it to start that run over")
    if state["config"] != config:
        raise ValueError(f"{path} was written with a different configuration; "
                         "use another folder or delete it")
    return state


def save_json(data, path: str | Path) -> Path:
    text = json.dumps(data, indent=1, sort_keys=True)
    return atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))


def load_json(path: str | Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def atomic_folder(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary folder)`` then swap the folder in for ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent))
    os.chmod(temporary, 0o755)
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


@contextlib.contextmanager
def folder_lock(folder: str | Path):
    """Hold ``folder/.lock`` while a run writes into ``folder``: a second run into the same
    folder stops with an error instead of interleaving checkpoints. A lock left by a process
    that no longer exists is taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    for _ in range(2):
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                owner = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and _alive(owner):
                raise RuntimeError(f"{folder} is in use by process {owner} (lock file {lock})")
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(handle, "w") as f:
            f.write(str(os.getpid()))
        break
    else:
        raise RuntimeError(f"could not take the lock {lock}")
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
