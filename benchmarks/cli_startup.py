"""How long the ``dvd`` command takes to answer ``--help``, against a Python that does nothing.

Each repetition starts ``python -c pass``, ``dvd --help``, ``dvd run --help`` and ``dvd generate
--help`` once, as subprocesses, in an order that rotates from one repetition to the next (so slow
phases of a shared machine hit all cases alike). It prints each case's median wall time, its ratio
to ``python -c pass``, and the largest resident memory any of its runs reached (``ru_maxrss`` of
the child, from ``os.wait4``). The goal: every ``dvd`` case under 0.5 s on two CPU cores (the exit
status is 1 when a median is over ``--limit``), which holds only while the commands import torch,
diffusers, transformers and pandas when they run, not when they are declared (see
:mod:`dvdlib.book.commands`).

    python benchmarks/cli_startup.py [--reps N] [--dvd PATH] [--limit SECONDS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _dvd_command(given: str | None) -> list[str]:
    """The ``dvd`` entry point beside this Python (the venv's), else ``python -m dvdlib.book.cli``."""
    if given:
        return [given]
    found = shutil.which("dvd", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "dvdlib.book.cli"]


def _run_once(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident memory (KiB on Linux) of one run of ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {errors.strip()}")
    return seconds, usage.ru_maxrss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="runs of each case (default: 7)")
    parser.add_argument("--dvd", metavar="PATH", help="the dvd program (default: the one beside "
                        "this Python, else python -m dvdlib.book.cli)")
    parser.add_argument("--limit", type=float, default=0.5, metavar="SECONDS",
                        help="the longest median a dvd case may take (default: 0.5)")
    args = parser.parse_args(argv)
    dvd = _dvd_command(args.dvd)
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "dvd --help": [*dvd, "--help"],
        "dvd run --help": [*dvd, "run", "--help"],
        "dvd generate --help": [*dvd, "generate", "--help"],
    }
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    memory: dict[str, int] = dict.fromkeys(names, 0)
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            seconds, peak = _run_once(cases[name])
            times[name].append(seconds)
            memory[name] = max(memory[name], peak)
    base = statistics.median(times["python -c pass"])
    print(f"{args.reps} runs each, median wall time; {os.cpu_count()} CPUs; dvd = {' '.join(dvd)}")
    print(f"{'case':<20} {'median s':>9} {'min s':>7} {'x python':>9} {'peak MiB':>9}")
    slow = []
    for name in names:
        median = statistics.median(times[name])
        print(f"{name:<20} {median:>9.3f} {min(times[name]):>7.3f} {median / base:>9.1f} "
              f"{memory[name] / 1024:>9.1f}")
        if name.startswith("dvd") and median > args.limit:
            slow.append(name)
    if slow:
        print(f"over the limit of {args.limit} s: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
