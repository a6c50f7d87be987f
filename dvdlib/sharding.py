"""Splitting ``dvd generate`` and ``dvd score`` over the processes of one ``accelerate launch``.

Launched with several processes (``accelerate launch --multi_gpu --num_processes N -m dvdlib.book.cli
generate ...``, or ``torchrun``), each process learns its rank and the number of processes from
``accelerate.PartialState`` (:func:`join_launch`) and works on its :class:`Shard`: every N-th
batch of images to make, or chunk of images to judge, counted over the whole run in its fixed
order. The batches are the ones a single process forms, so every image comes out of the same
pipeline call, with the same bytes, whatever the number of processes.

Each process commits its rows to a log of its own beside the run's log (``manifest.log`` ->
``manifest.shard2-of-2.log`` for the second of two), since a :class:`~dvdlib.store.ResultLog`
has one writer at a time.
When all have finished, the main process runs the work once more without a shard: that run
merges the shard logs into the main log (:func:`merge_shard_logs`, rows in the run's order, then
the shard logs are deleted), finds nothing left to do, and writes the one table. The merged log
and table are those a single process writes. A process that died leaves its shard log behind:
any later run, with any number of processes, counts its rows as done and merges them.

While a shard works it holds a shared lock on the main log (:func:`reading_main_log`): a
single-process run (which locks the main log exclusively and deletes stray temporary files)
cannot start in the same folder meanwhile, and a sharded run cannot join a single-process run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

from dvdlib.store import ResultLog, lock_or_refuse

try:  # POSIX; elsewhere there is no shared lock (the caller's promise, as in dvdlib.store)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

# Where launchers put the number of processes: torchrun / accelerate's multi-process launchers,
# then the MPI flavours accelerate reads for multi-CPU runs.
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
# How long a process waits at the end for the others: the shards' sizes differ by at most one
# batch on a fresh run, but a resumed run can leave one process much more to do than another.
BARRIER_TIMEOUT = timedelta(hours=24)

Result = TypeVar("Result")


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count``: it takes items ``index``, ``index + count``, ... of a list."""

    index: int
    count: int

    def __post_init__(self):
        for name, value in (("index", self.index), ("count", self.count)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"shard {name} must be an int, got {value!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} with count {self.count}: the count must be "
                             f"at least 1 and the index in 0..count-1")

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def take(self, items: Sequence) -> list:
        """This shard's items: round robin over ``items`` in their order."""
        return list(items[self.index::self.count])

    def log_path(self, main_log: str | Path) -> Path:
        """This shard's log beside the run's: ``manifest.log`` -> ``manifest.shard1-of-2.log``
        for the first of two (numbered from 1, as :meth:`__str__` names it)."""
        main_log = Path(main_log)
        return main_log.with_name(f"{main_log.stem}.shard{self.index + 1}-of-{self.count}{main_log.suffix}")

    def __str__(self) -> str:
        return f"shard {self.index + 1} of {self.count}"


def shard_logs(main_log: str | Path) -> list[Path]:
    """The shard logs beside ``main_log`` left by sharded runs of any size, finished or not."""
    main_log = Path(main_log)
    return sorted(main_log.parent.glob(f"{main_log.stem}.shard*-of-*{main_log.suffix}"))


def done_keys(main_log: ResultLog) -> set[tuple]:
    """Keys committed to ``main_log`` or to any of its shard logs (read without locks)."""
    keys = main_log.done_keys()
    for path in shard_logs(main_log.path):
        keys |= ResultLog(path, main_log.key).done_keys()
    return keys


def merge_shard_logs(main_log: ResultLog, order: Callable[[tuple], Any]) -> int:
    """Move the rows of the shard logs into ``main_log`` (open for writing); returns how many.

    Rows whose key ``main_log`` already holds are dropped; the others are appended in one
    commit, sorted by ``order(key)``, and only then are the shard logs deleted: a run killed in
    between leaves rows in both places, and the next merge drops the repeats. Every shard log
    is locked while it is read, so a shard still writing is an error naming its log.
    """
    paths = shard_logs(main_log.path)
    if not paths:
        return 0
    shards = [ResultLog(path, main_log.key) for path in paths]
    opened = []
    try:
        for shard in shards:
            shard.open()
            opened.append(shard)
        have = main_log.done_keys()
        new: dict[tuple, dict] = {}
        for shard in shards:
            for row in shard.rows():
                key = shard.key_of(row)
                if key not in have:
                    new.setdefault(key, row)
        main_log.append(new[key] for key in sorted(new, key=order))
        for shard in shards:
            shard.path.unlink()  # under its lock: no writer can have appended since it was read
    finally:
        for shard in opened:
            shard.close()
    return len(new)


@contextmanager
def reading_main_log(main_log: ResultLog, shard: Shard) -> Iterator[None]:
    """Hold a shared lock on ``main_log`` while ``shard`` works (see the module notes)."""
    if fcntl is None:
        yield
        return
    main_log.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(main_log.path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        lock_or_refuse(fd, exclusive=False, refusal=(
            f"{main_log.path} is being written by a single-process run; {shard} cannot join it. "
            f"Wait for it to finish or write to another folder"))
        yield
    finally:
        os.close(fd)  # closing releases the lock


def key_order(keys: Sequence[tuple]) -> Callable[[tuple], tuple]:
    """A sort key putting ``keys`` in their given order, any other key after them, by value."""
    position = {key: i for i, key in enumerate(keys)}
    return lambda key: (position.get(key, len(position)), key)


# --------------------------------------------------------------------------------------------
# The processes of one launch


def launched_processes(environ: dict | None = None) -> int:
    """How many processes the launcher started (1 when the command was run directly)."""
    environ = os.environ if environ is None else environ
    counts = []
    for name in WORLD_SIZE_VARIABLES:
        text = environ.get(name, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise ValueError(f"environment variable {name}={text!r} is not a process count "
                                 f"(a positive integer)")
            counts.append(int(text))
    return max(counts, default=1)


@dataclass(frozen=True)
class Launch:
    """This process's place in a multi-process launch: its shard, its device, and a barrier."""

    shard: Shard
    device: str
    wait_for_everyone: Callable[[], None]


def join_launch(device: str | None = None) -> Launch | None:
    """Join the launch's process group when started with several processes, else None.

    ``device`` as the user gave it: None or ``cuda`` become this process's own accelerator
    (``cuda:<local rank>``, as accelerate assigns it) or the CPU where there is none; any other
    value is kept (``cpu``, or ``cuda:1`` to put every process on one card).
    """
    if launched_processes() < 2:
        return None
    import torch
    from accelerate import PartialState

    on_cpu = (device or "").startswith("cpu") or (device in (None, "cuda") and not torch.cuda.is_available())
    state = PartialState(cpu=on_cpu, timeout=BARRIER_TIMEOUT)
    if state.num_processes < 2:
        raise RuntimeError(f"the launcher started {launched_processes()} processes but accelerate "
                           f"joined {state.num_processes}; launch with `accelerate launch "
                           f"--multi_gpu --num_processes N` (or torchrun)")
    own_device = "cpu" if on_cpu else str(state.device)
    return Launch(Shard(state.process_index, state.num_processes),
                  own_device if device in (None, "cuda") else device, state.wait_for_everyone)


def run_sharded(launch: Launch | None, work: Callable[[Shard | None], Result]) -> Result | None:
    """``work(None)`` in a single process; in a launch, ``work(shard)`` on every process, then,
    once all are done, ``work(None)`` on the main one (it merges the shards and finishes).

    Returns the main process's result, and None on the others.
    """
    if launch is None:
        return work(None)
    work(launch.shard)
    launch.wait_for_everyone()
    return work(None) if launch.shard.is_main else None
