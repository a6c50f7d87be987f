"""Generation: the authors' layout, one seeded generator per image, resuming, hooks, model loading."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import DDIMScheduler, PNDMScheduler
from PIL import Image

from dvdlib.prompts.prompt_sets import builtin_prompts
from dvdlib.generation.protocol import MANIFEST, MANIFEST_COLUMNS, MANIFEST_LOG, generate
from dvdlib.prompts.prompt_sets import check_seeds
from dvdlib.models.loading import ModelNotFoundError, load_pipeline, with_ddim
from dvdlib.store import StoreError, load_table
from dvdlib.models.random_weights import CallCounter, dummy_sd_pipeline

SETTINGS = dict(model="dummy", steps=2, guidance=7.5, progress=False)


@pytest.fixture(scope="module")
def pipe():
    return dummy_sd_pipeline("sd1")


@pytest.fixture(scope="module")
def prompts():
    return builtin_prompts().iloc[[0, 150]].reset_index(drop=True)  # cases 1 (artist), 151 (landmark)


def test_images_land_in_case_folders_named_by_seed_with_their_hashes(tmp_path, pipe, prompts):
    table = generate(pipe, prompts, [1825, 410], tmp_path, batch_size=2, **SETTINGS)
    assert list(table.columns) == list(MANIFEST_COLUMNS)
    assert table.file.tolist() == [
        "case001_amedeo_modigliani_painting_apron/seed00410.png",
        "case001_amedeo_modigliani_painting_apron/seed01825.png",
        "case151_vintage_kremlin_travel_poster_clock/seed00410.png",
        "case151_vintage_kremlin_travel_poster_clock/seed01825.png",
    ]
    for row in table.itertuples():
        data = (tmp_path / row.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert Image.open(tmp_path / row.file).size == (row.width, row.height) == (64, 64)
    assert set(table.scheduler) == {"DDIMScheduler"} and set(table.steps) == {2}
    # CPU images can differ by a level between thread counts: the manifest says how many ran.
    assert set(table.torch_threads) == {torch.get_num_threads()}
    written = load_table(tmp_path / MANIFEST)
    columns = ["case_num", "seed", "prompt", "file", "sha256", "height", "guidance"]
    pd.testing.assert_frame_equal(written[columns], table[columns])
    assert table.nsfw_flagged.isna().all() and written.nsfw_flagged.isna().all()  # no safety checker
    assert json.loads((tmp_path / "generation.json").read_text())["steps"] == 2


def test_each_image_depends_on_its_own_seed_not_on_its_batch(tmp_path, pipe, prompts):
    batched = generate(pipe, prompts, [1, 2], tmp_path / "batched", batch_size=3, **SETTINGS)
    alone = generate(pipe, prompts, [1, 2], tmp_path / "alone", batch_size=1, **SETTINGS)

    def pixels(folder, file):
        return np.asarray(Image.open(folder / file), dtype=int)

    for file in batched.file:
        assert np.abs(pixels(tmp_path / "batched", file) - pixels(tmp_path / "alone", file)).max() <= 1
    seed1, seed2 = batched.file[0], batched.file[1]
    assert np.abs(pixels(tmp_path / "alone", seed1) - pixels(tmp_path / "alone", seed2)).max() > 50
    assert len(set(alone.sha256)) == 4


def test_a_rerun_makes_only_what_is_missing(tmp_path, pipe, prompts):
    first = generate(pipe, prompts, [1, 2], tmp_path, batch_size=2, **SETTINGS)
    hook = CallCounter()
    again = generate(pipe, prompts, [1, 2], tmp_path, batch_size=2, hook=hook, **SETTINGS)
    assert hook.calls == []
    pd.testing.assert_frame_equal(first, again)
    more = generate(pipe, prompts, [1, 2, 3], tmp_path, batch_size=2, hook=hook, **SETTINGS)
    made = {key for call in hook.calls for key in call}
    assert {(1, 3), (151, 3)} <= made and len(more) == 6
    assert more[more.seed < 3].sha256.tolist() == first.sha256.tolist()  # earlier images untouched


def test_a_batch_cut_short_is_made_again_whole_and_completes_the_manifest(tmp_path, pipe, prompts):
    complete = generate(pipe, prompts, [1, 2], tmp_path / "complete", batch_size=2, **SETTINGS)
    folder = tmp_path / "cut"
    generate(pipe, prompts, [1, 2], folder, batch_size=2, **SETTINGS)
    log = folder / MANIFEST_LOG
    log.write_bytes(log.read_bytes().split(b"\n", 1)[0] + b"\n")  # only the first image committed
    hook = CallCounter()
    resumed = generate(pipe, prompts, [1, 2], folder, batch_size=2, hook=hook, **SETTINGS)
    assert hook.calls == [[(1, 1), (1, 2)], [(151, 1), (151, 2)]]  # the same batches as the first run
    pd.testing.assert_frame_equal(resumed, complete)


def test_a_folder_refuses_images_made_with_other_settings(tmp_path, pipe, prompts):
    generate(pipe, prompts.head(1), [1], tmp_path, **SETTINGS)
    with pytest.raises(StoreError, match="steps: earlier 2, now 3"):
        generate(pipe, prompts.head(1), [1], tmp_path, **{**SETTINGS, "steps": 3})


def test_a_manifest_log_of_other_columns_is_refused_before_any_image_is_made(tmp_path, pipe, prompts):
    from dvdlib.store import ResultLog

    generate(pipe, prompts.head(1), [1], tmp_path, **SETTINGS)
    log = ResultLog(tmp_path / MANIFEST_LOG, ("case_num", "seed"))
    old = [{("content" if k == "concept" else k): v for k, v in row.items()} for row in log.rows()]
    (tmp_path / MANIFEST_LOG).unlink()
    with log.open():
        log.append(old)  # a row as a version with other column names wrote it
    hook = CallCounter()
    with pytest.raises(StoreError, match="another version of dvdlib: its rows lack concept and have "
                                         "content; write the images to another folder"):
        generate(pipe, prompts.head(1), [1, 2], tmp_path, hook=hook, **SETTINGS)
    assert hook.calls == []


def test_a_hook_adds_call_options_and_its_records_are_placed_beside_the_images(tmp_path, pipe, prompts):
    record_module = pytest.importorskip("dvdlib.attention.record")
    from dvdlib.generation.protocol import attention_hook

    table = generate(pipe, prompts, [5, 6, 7], tmp_path, batch_size=2, hook=attention_hook(), **SETTINGS)
    assert table.record_dir.tolist()[:3] == ["records/case001_amedeo_modigliani_painting_apron_seed00005"] * 2 + [
        "records/case001_amedeo_modigliani_painting_apron_seed00007"]
    assert table.record_image.tolist() == [0, 1, 0, 1, 0, 1]
    record = record_module.AttentionRecord.load(tmp_path / table.record_dir[2] / "attention.npz")
    assert record.num_images == 2 and record.steps_recorded == 2  # (1, 7) and (151, 5) shared a call
    assert [p.prompt for p in record.prompts] == [prompts.prompt[0], prompts.prompt[1]]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no scratch folder left


def test_a_hook_that_records_nothing_leaves_no_record(tmp_path, pipe, prompts):
    table = generate(pipe, prompts.head(1), [1], tmp_path, hook=CallCounter(), **SETTINGS)
    assert table.record_dir.tolist() == [""] and pd.isna(table.record_image[0])
    assert not (tmp_path / "records").exists()


@pytest.mark.parametrize("seeds, message", [
    (["12", "x"], "seed 'x' is not a non-negative integer"),
    ([1.5], "seed 1.5 is not"), ([-3], "seed -3 is not"), ([1, 1], "seeds repeat"), ([], "no seeds"),
])
def test_bad_seeds_are_named(seeds, message):
    with pytest.raises(ValueError, match=message):
        check_seeds(seeds)


def test_ddim_replaces_the_scheduler_and_keeps_its_noise_schedule():
    pipe = dummy_sd_pipeline("sd2")
    pipe.scheduler = PNDMScheduler.from_config(pipe.scheduler.config)
    with_ddim(pipe)
    assert isinstance(pipe.scheduler, DDIMScheduler)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert pipe.scheduler.config.beta_schedule == "scaled_linear"


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("dummy_sd")
    pipe.save_pretrained(folder)
    return folder


def test_a_saved_pipeline_folder_loads_and_makes_the_same_images(tmp_path, pipe, prompts, saved_pipeline):
    loaded = load_pipeline(str(saved_pipeline), device="cpu")
    assert isinstance(loaded.scheduler, DDIMScheduler)
    ours = generate(pipe, prompts.head(1), [9], tmp_path / "a", **SETTINGS)
    theirs = generate(loaded, prompts.head(1), [9], tmp_path / "b", **SETTINGS)
    assert ours.sha256.tolist() == theirs.sha256.tolist()


def test_a_folder_without_its_unet_is_named(tmp_path, saved_pipeline):
    import shutil

    shutil.copytree(saved_pipeline, tmp_path / "weights")
    shutil.rmtree(tmp_path / "weights" / "unet")
    with pytest.raises(ModelNotFoundError, match=r"lacks component folder\(s\) unet/ \(UNet2DConditionModel\)"):
        load_pipeline(str(tmp_path / "weights"), device="cpu")
    (tmp_path / "weights" / "model_index.json").unlink()
    with pytest.raises(ModelNotFoundError, match="model_index.json is missing"):
        load_pipeline(str(tmp_path / "weights"), device="cpu")


def test_an_unknown_model_id_names_the_cache_and_the_download_command():
    with pytest.raises(ModelNotFoundError, match=r"'no-such-org/no-such-model'.*not in the Hugging Face cache"
                                                 r".*huggingface-cli download no-such-org/no-such-model"):
        load_pipeline("no-such-org/no-such-model", device="cpu")
    with pytest.raises(ModelNotFoundError, match="not a Hugging Face id"):
        load_pipeline("not an id", device="cpu")


def test_the_toy_world_plugs_in_generation_recording_and_judging(tmp_path):
    toy_pipeline = pytest.importorskip("dvdlib.toyworld.pipeline")
    toy_judge = pytest.importorskip("dvdlib.scoring.judges.toy")
    from dvdlib.generation.protocol import attention_hook
    from dvdlib.scoring.dvd import score_folder
    from dvdlib.toyworld.detector import PresenceDetector

    pipe = toy_pipeline.new_pipeline(["sunset", "ocean", "coaster", "hat"], seed=0)  # untrained
    prints = pd.DataFrame([(1, "print", "sunset", "coaster", "sunset coaster"),
                           (2, "print", "ocean", "hat", "ocean hat")],
                          columns=["case_num", "category", "concept", "object", "prompt"])
    made = generate(pipe, prints, [1, 2], tmp_path / "images", batch_size=2, hook=attention_hook(),
                    **{**SETTINGS, "model": "toy"})
    assert made.file.tolist()[0] == "case001_sunset_coaster/seed00001.png"
    assert set(made.width) == {32} and made.record_dir.str.startswith("records/").all()
    judge = toy_judge.ToyJudge(PresenceDetector().eval())  # untrained: the plumbing is tested
    scores = score_folder(tmp_path / "images", prints, judge, tmp_path / "scores.csv", progress=False)
    assert len(scores) == 4 and set(scores.judge) == {"toy-detector"}
    assert set(scores.dvd_score) <= {4.0 * c * (5 - n) for c in range(6) for n in range(6)}


def test_generate_benchmark_checks_each_argument_once_before_the_model_loads(tmp_path,
                                                                            monkeypatch):
    """The prompt file is read and its words checked once, the seeds and the token limit once,
    all before the model loads (``dvd generate``'s path through the library)."""
    from dvdlib.generation import benchmark, protocol
    from dvdlib.prompts import prompt_sets, selection
    from dvdlib.toyworld.prompt_set import toy_prompts

    calls = []

    def count(module, name):
        original = getattr(module, name)

        def counted(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    for module, name in ((selection, "load_prompts"), (prompt_sets, "phrase_problems"),
                         (selection, "check_seeds"), (protocol, "check_alignment"),
                         (benchmark, "load_pipeline")):
        count(module, name)
    prompt_file = tmp_path / "toy.csv"
    prompt_sets.save_prompts(toy_prompts().head(2), prompt_file)
    manifest = benchmark.generate_benchmark("toy", tmp_path / "images", prompts=prompt_file,
                                            cases="2", seeds=[3], steps=1, progress=False)
    assert manifest["prompt"].tolist() == ["sunset shirt"]
    assert sorted(calls) == ["check_alignment", "check_seeds", "load_pipeline", "load_prompts",
                             "phrase_problems"]
    assert calls[-1] == "load_pipeline"


def test_generate_benchmark_refuses_before_the_model_loads_and_leaves_no_folder(tmp_path,
                                                                                monkeypatch):
    from dvdlib.generation import benchmark
    from dvdlib.usage import ArgumentError

    monkeypatch.setattr(benchmark, "load_pipeline", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / "a" / "images"
    for bad, message in (({"size": 12}, "size 12: must be a positive multiple of 8"),
                         ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
                         ({"cases": "7"}, "cases 7: none of these cases is in the toy world's"),
                         ({"seeds": [1, 1]}, "seeds: seeds repeat: [1, 1]")):
        with pytest.raises(ArgumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
            benchmark.generate_benchmark("toy", out, progress=False, **bad)
    assert not (tmp_path / "a").exists()
