"""Sharded generation and scoring: shards merged equal one process, byte for byte."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dvdlib.prompts.prompt_sets import builtin_prompts
from dvdlib.generation.protocol import MANIFEST, MANIFEST_LOG, generate
from dvdlib.scoring.dvd import score_folder
from dvdlib.sharding import Shard, launched_processes, reading_main_log, shard_logs
from dvdlib.store import ResultLog, StoreError
from dvdlib.models.random_weights import CallCounter, dummy_sd_pipeline

SETTINGS = dict(model="dummy", steps=2, guidance=7.5, batch_size=2, progress=False)
SEEDS = [5, 6, 7]


@pytest.fixture(scope="module")
def pipe():
    return dummy_sd_pipeline("sd1")


@pytest.fixture(scope="module")
def prompts():
    return builtin_prompts().iloc[[0, 150]].reset_index(drop=True)  # cases 1 and 151


@pytest.fixture(scope="module")
def single(tmp_path_factory, pipe, prompts):
    """The reference: one process, no shards."""
    folder = tmp_path_factory.mktemp("single")
    generate(pipe, prompts, SEEDS, folder, **SETTINGS)
    return folder


class PixelJudge:
    """Answers known from the image: concept question i is "yes" iff red > 40 i, object: green."""

    name = "pixel"

    def __init__(self):
        self.images_seen = []

    def answer(self, items):
        out = []
        for image, questions in items:
            self.images_seen.append(image.size)
            red, green, _ = image.convert("RGB").getpixel((0, 0))
            level = {"concept": red, "object": green}
            out.append([level[q.side] > 40 * q.index for q in questions])
        return out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` by relative path (the run's whole output)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------
# Shards


def test_a_shard_takes_every_nth_item_and_the_shards_cover_the_list_once():
    items = list(range(7))
    taken = [Shard(i, 3).take(items) for i in range(3)]
    assert taken == [[0, 3, 6], [1, 4], [2, 5]]
    assert Shard(0, 3).is_main and not Shard(2, 3).is_main
    assert Shard(1, 2).log_path(Path("out/manifest.log")) == Path("out/manifest.shard2-of-2.log")
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match=f"shard index {index} with count {count}"):
            Shard(index, count)


def test_the_process_count_comes_from_the_launchers_variables():
    assert launched_processes({}) == 1
    assert launched_processes({"WORLD_SIZE": "2", "RANK": "1"}) == 2
    assert launched_processes({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    with pytest.raises(ValueError, match=r"WORLD_SIZE='two' is not a process count"):
        launched_processes({"WORLD_SIZE": "two"})


# --------------------------------------------------------------------------------------------
# Generation


def test_two_shards_and_the_merge_write_what_one_process_writes(tmp_path, pipe, prompts, single):
    counters = [CallCounter(), CallCounter()]
    for index, counter in enumerate(counters):
        rows = generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS, hook=counter, shard=Shard(index, 2))
        assert len(rows) == sum(map(len, counter.calls))
    # The batches are the single run's pairs, dealt out in turn: (1,5 1,6) (1,7 151,5) (151,6 151,7).
    assert counters[0].calls == [[(1, 5), (1, 6)], [(151, 6), (151, 7)]]
    assert counters[1].calls == [[(1, 7), (151, 5)]]
    assert not (tmp_path / MANIFEST).exists() and len(shard_logs(tmp_path / MANIFEST_LOG)) == 2

    merger = CallCounter()
    merged = generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS, hook=merger)
    assert merger.calls == [] and len(merged) == 6
    assert shard_logs(tmp_path / MANIFEST_LOG) == []
    assert _files(tmp_path) == _files(single)  # images, manifest.log, manifest.csv, settings


def test_a_dead_shards_rows_count_as_done_and_a_single_process_finishes_the_rest(tmp_path, pipe,
                                                                                  prompts, single):
    generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS, shard=Shard(1, 2))  # shard 0 never ran
    rest = CallCounter()
    generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS, hook=rest)
    assert rest.calls == [[(1, 5), (1, 6)], [(151, 6), (151, 7)]]
    assert (tmp_path / MANIFEST).read_bytes() == (single / MANIFEST).read_bytes()
    # The log holds the merged shard's rows first: the same rows, in another order.
    lines = (tmp_path / MANIFEST_LOG).read_bytes().splitlines()
    assert sorted(lines) == sorted((single / MANIFEST_LOG).read_bytes().splitlines())


def test_a_shard_and_a_single_process_run_cannot_share_a_folder(tmp_path, pipe, prompts):
    main_log = ResultLog(tmp_path / MANIFEST_LOG, ("case_num", "seed"))
    with main_log.open():  # a single-process run in progress
        with pytest.raises(StoreError, match=r"manifest.log is being written by a single-process run; "
                                             r"shard 2 of 2 cannot join it"):
            generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS, shard=Shard(1, 2))
    with reading_main_log(main_log, Shard(0, 2)):  # a shard at work
        with pytest.raises(StoreError, match="manifest.log is being written by another process"):
            generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS)
    shard_log = ResultLog(Shard(1, 2).log_path(main_log.path), main_log.key)
    with shard_log.open():  # a shard still writing: its rows cannot be merged yet
        with pytest.raises(StoreError, match=r"manifest.shard2-of-2.log is being written"):
            generate(pipe, prompts, SEEDS, tmp_path, **SETTINGS)


# --------------------------------------------------------------------------------------------
# Scoring


def test_two_scoring_shards_and_the_merge_write_what_one_process_writes(tmp_path, prompts, single):
    one, shards = PixelJudge(), [PixelJudge(), PixelJudge()]
    expected = score_folder(single, prompts, one, tmp_path / "one.csv", images_per_call=2, progress=False)
    for index, judge in enumerate(shards):
        score_folder(single, prompts, judge, tmp_path / "sharded.csv", images_per_call=2, progress=False,
                     shard=Shard(index, 2))
    assert [len(j.images_seen) for j in shards] == [4, 2]  # chunks of two images, dealt out in turn
    merger = PixelJudge()
    table = score_folder(single, prompts, merger, tmp_path / "sharded.csv", images_per_call=2,
                         progress=False)
    assert merger.images_seen == [] and list(table.seed) == [5, 6, 7, 5, 6, 7]
    assert table.equals(expected)
    assert (tmp_path / "sharded.answers.log").read_bytes() == (tmp_path / "one.answers.log").read_bytes()
    assert shard_logs(tmp_path / "sharded.answers.log") == []


# --------------------------------------------------------------------------------------------
# Under accelerate launch, two processes on the CPU


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_accelerate_launch_with_two_processes_equals_one_process(tmp_path, pipe):
    weights = tmp_path / "weights"
    pipe.save_pretrained(weights)
    judge = tmp_path / "judge"
    from dvdlib.scoring.judges.vlm import random_qwen2vl

    model, processor = random_qwen2vl("tiny")
    model.save_pretrained(judge)
    processor.save_pretrained(judge)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    launch = [str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "dvdlib.book.cli"]
    single = [sys.executable, "-m", "dvdlib.book.cli"]
    generate_args = ["generate", "--model", str(weights), "--cases", "1,151", "--seed-list", "5,6,7",
                     "--steps", "2", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    score_args = ["score", "--judge-model", str(judge), "--cases", "1,151", "--images-per-call", "2",
                  "--device", "cpu", "--no-progress"]
    outputs = {}
    for name, command in (("launched", launch), ("single", single)):
        images, table = tmp_path / name / "images", tmp_path / name / "dvd.csv"
        for args in (generate_args + ["--out", str(images)],
                     score_args + ["--images", str(images), "--out", str(table)]):
            done = subprocess.run(command + args, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
        outputs[name] = done.stdout.replace(str(tmp_path / name), "OUT")
        assert shard_logs(images / MANIFEST_LOG) == [] and shard_logs(table.with_suffix(".answers.log")) == []
    # The manifest (with every image's SHA-256), the images, and the table, byte for byte.
    assert _files(tmp_path / "launched") == _files(tmp_path / "single")
    assert outputs["launched"] == outputs["single"]  # the summary, printed once, by the main process
    assert outputs["single"].startswith("6 images judged by")
