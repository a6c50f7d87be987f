"""The toy world: rendering, the diversity knob, the pipeline's contract, training, detector, judge."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.scoring.judges.base import Judge, Question
from dvdlib.toyworld import zoo as zoo_module
from dvdlib.toyworld.detector import DetectorConfig, PresenceDetector, train_detector
from dvdlib.toyworld.evaluate import rule_agreement
from dvdlib.scoring.judges.toy import THRESHOLDS, ToyJudge
from dvdlib.toyworld.pipeline import (TEXT_POSITIONS, ToyDiffusionPipeline,
                                      cross_attention_layout, new_pipeline, parameter_counts)
from dvdlib.toyworld.train import TrainConfig, load_trained, scene_batches, train
from dvdlib.toyworld.world import (CONCEPTS, OBJECTS, ConceptInstance, ObjectInstance, Scene,
                                   World, caption, draw_concept, render)


# --- the world ----------------------------------------------------------------------------------
def _concept(name, seed=0):
    return ConceptInstance(name, draw_concept(name, np.random.default_rng(seed)))


def test_pixel_rule_agreement_counts_both_kinds_of_disagreement():
    rule = pd.DataFrame(dict(rule_object_present=[True, True, False, False]))
    assert rule_agreement([True, False, True, False], rule) == dict(
        images=4, agreement=0.5, detector_only=1, rule_only=1)
    with pytest.raises(ValueError, match="3 detector readings for 4"):
        rule_agreement([True, False, True], rule)


@pytest.mark.parametrize("make, message", [
    (lambda: zoo_module.parse_level("0"), "diversity level '0'"),
    (lambda: zoo_module.ZooConfig(snapshot_steps=(300,)), "snapshot step 300"),
    (lambda: zoo_module.ZooConfig(instance_seeds=(1, 1)), "instance_seeds must be distinct"),
    (lambda: zoo_module.ZooConfig(runs=0), "runs 0 must be an integer >= 1"),
    (lambda: zoo_module.ZooConfig(runs=2.0), "runs 2.0 must be an integer >= 1"),
    (lambda: TrainConfig(steps=0), "steps must be"),
])
def test_bad_zoo_and_training_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()


# --- the pipeline -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    return new_pipeline(World().words, seed=0)


def _images(pipe, prompts, seeds, **kwargs):
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    return pipe(prompts, num_inference_steps=2, generator=generators, output_type="np",
                **kwargs).images


def test_layout_like_stable_diffusion(pipe):
    layout = cross_attention_layout(pipe)
    assert len(layout) == 7 and all(heads == 4 for _, heads in layout)
    counts = parameter_counts(pipe)
    assert 1.1e6 < counts["unet"] < 1.3e6 and counts["text_encoder_used"] < 1e5
    assert pipe.device.type == "cpu"
    assert pipe("sunset", num_inference_steps=1).images[0].size == (32, 32)


def test_text_encoder_reads_short_prompts_whole(pipe, tmp_path):
    # The longest caption, with start and end-of-text, fits the toy's few positions, and the
    # position count survives saving (it travels in the tokenizer's and the encoder's configs).
    longest = max((caption(c, o) for c in CONCEPTS for o in OBJECTS), key=len)
    ids = pipe.tokenizer(longest).input_ids
    assert len(ids) < pipe.tokenizer.model_max_length == TEXT_POSITIONS
    assert pipe.encode_prompt([longest]).shape == (1, TEXT_POSITIONS, 64)
    pipe.save_pretrained(tmp_path / "toy")
    loaded = ToyDiffusionPipeline.from_pretrained(tmp_path / "toy")
    assert loaded.tokenizer.model_max_length == TEXT_POSITIONS
    assert loaded.text_encoder.config.max_position_embeddings == TEXT_POSITIONS


def test_generator_list_equals_one_by_one(pipe):
    prompts, seeds = ["sunset coaster", "kite", "ocean shirt"], [5, 6, 7]
    batch = _images(pipe, prompts, seeds)
    for i in range(3):
        alone = _images(pipe, [prompts[i]], [seeds[i]])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)


def test_save_load_round_trip_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "toy")
    loaded = ToyDiffusionPipeline.from_pretrained(tmp_path / "toy")
    assert loaded.config.latent_shift == pipe.config.latent_shift
    np.testing.assert_array_equal(_images(pipe, ["sunset"], [1]), _images(loaded, ["sunset"], [1]))


class _Probe:
    """A cross-attention processor that records the text batch and a per-call option."""

    def __init__(self, log):
        self.log = log

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 probe=None, **kwargs):
        self.log.append((encoder_hidden_states.detach().clone(), probe))
        from diffusers.models.attention_processor import AttnProcessor

        return AttnProcessor()(attn, hidden_states, encoder_hidden_states, attention_mask)


def test_cfg_batch_is_unconditional_then_conditional(pipe):
    log = []
    original = pipe.unet.attn_processors
    probes = {name: (_Probe(log) if "attn2" in name else proc) for name, proc in original.items()}
    pipe.unet.set_attn_processor(probes)
    try:
        option = {"tag": object()}
        _images(pipe, ["sunset", "kite"], [1, 2], cross_attention_kwargs={"probe": option},
                negative_prompt="coaster")
    finally:
        pipe.unet.set_attn_processor(original)
    expected = pipe.encode_prompt(["coaster", "coaster", "sunset", "kite"])
    assert len(log) == 7 * 2  # 7 cross-attention layers x 2 steps
    for text, probe in log:
        assert probe is option  # passed to every call unchanged
        torch.testing.assert_close(text, expected)


def test_pipeline_rejects_bad_calls(pipe):
    with pytest.raises(ValueError, match="output_type 'png'"):
        pipe("sunset", output_type="png")
    with pytest.raises(ValueError, match="2 generators for 1 prompts"):
        pipe("sunset", generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe("sunset", height=30)


# --- training -----------------------------------------------------------------------------------
def _weights(pipe):
    return torch.cat([p.detach().flatten() for p in [*pipe.unet.parameters(),
                                                      *pipe.text_encoder.parameters()]])


def test_resume_equals_uninterrupted_and_seed_fixes_the_model(tmp_path):
    config = TrainConfig(steps=4, batch_size=3, warmup_steps=1, checkpoint_every=2, seed=7)
    train(config, tmp_path / "whole", progress=False)
    whole = load_trained(tmp_path / "whole")
    assert train(config, tmp_path / "cut", progress=False, stop_after=2).name == "checkpoint.pt"
    assert not (tmp_path / "cut" / "pipeline").exists()
    train(config, tmp_path / "cut", progress=False)  # resumes at step 2
    assert torch.equal(_weights(whole), _weights(load_trained(tmp_path / "cut")))
    # A different configuration cannot silently continue someone else's run.
    with pytest.raises(ValueError, match="different configuration"):
        train(TrainConfig(steps=5, batch_size=3, seed=7), tmp_path / "cut", progress=False)
    # Out-of-world token rows stay exactly zero through training.
    embedding = whole.text_encoder.get_input_embeddings().weight
    assert int((embedding.abs().sum(dim=1) > 0).sum()) == len(
        set(whole.tokenizer(" ".join(World().words)).input_ids))


def test_scenes_drawn_ahead_are_the_scenes_drawn_in_turn():
    # On a GPU the next batch is drawn in a second thread; it must be the same batch.
    config = TrainConfig(steps=5, batch_size=3, seed=2)
    world = World(instances=1)
    in_turn = list(scene_batches(world, config, 1, 5, ahead=False))
    ahead = list(scene_batches(world, config, 1, 5, ahead=True))
    assert [s.captions for s in ahead] == [s.captions for s in in_turn] and len(ahead) == 4
    assert all(torch.equal(a.images, b.images) for a, b in zip(ahead, in_turn))
    assert list(scene_batches(world, config, 5, 5, ahead=True)) == []


def test_training_keeps_ema_snapshots(tmp_path):
    config = TrainConfig(steps=4, batch_size=2, warmup_steps=1, checkpoint_every=2, seed=3)
    train(config, tmp_path / "run", progress=False)
    final, early = load_trained(tmp_path / "run"), load_trained(tmp_path / "run", step=2)
    # The last snapshot is the final EMA, kept in fp16.
    torch.testing.assert_close(_weights(load_trained(tmp_path / "run", step=4)), _weights(final),
                               atol=2e-3, rtol=2e-3)
    assert not torch.allclose(_weights(early), _weights(final))
    with pytest.raises(FileNotFoundError, match="no snapshot after 3 steps.*step-000002"):
        load_trained(tmp_path / "run", step=3)


def test_zoo_trains_exports_and_loads(tmp_path):
    config = zoo_module.ZooConfig(levels=(1, None), instance_seeds=(0, 1), runs=2, base_steps=2,
                                  finetune_steps=2, snapshot_steps=(1,), detector_steps=2,
                                  detector_heldout=20, batch_size=2, checkpoint_every=1)
    folders = zoo_module.train_zoo(config, tmp_path / "work", progress=False, log=lambda _: None)
    ship = zoo_module.export_zoo(tmp_path / "work", tmp_path / "ship", config, {"command": "test"})
    # Later training runs are listed only when asked for: the default listing is one per level.
    assert zoo_module.model_names(ship) == ["k1", "k1-i1", "kinf"]
    assert zoo_module.model_names(ship, snapshots=True) == ["k1@1", "k1-i1@1", "kinf@1"]
    assert zoo_module.model_names(ship, runs=True) == ["k1", "k1-i1", "kinf", "kinf-r1"]
    assert zoo_module.model_names(ship, snapshots=True, runs=True)[-2:] == ["kinf@1", "kinf-r1@1"]
    assert list(zoo_module.load_zoo(ship)) == ["k1", "k1-i1", "kinf"]
    assert zoo_module.runs_of("kinf", ship) == zoo_module.runs_of("kinf-r1", ship) == [
        "kinf", "kinf-r1"]
    assert zoo_module.runs_of("kinf@1", ship) == ["kinf@1", "kinf-r1@1"]
    assert zoo_module.runs_of("k1-i1", ship) == ["k1-i1"]
    with pytest.raises(ValueError, match="unknown toy model 'kinf-r2'"):
        zoo_module.runs_of("kinf-r2", ship)
    runs = [zoo_module.load_model(n, ship) for n in ("kinf", "kinf-r1")]
    assert not torch.equal(_weights(runs[0]), _weights(runs[1]))  # another training seed
    torch.testing.assert_close(_weights(runs[1]), _weights(load_trained(folders["kinf-r1"])),
                               atol=2e-3, rtol=2e-3)
    models = zoo_module.zoo_manifest(ship)["models"]
    assert [models[n]["run"] for n in ("kinf", "kinf-r1", "kinf-r1@1", "k1-i1")] == [0, 1, 1, 0]
    assert models["kinf-r1"]["config"]["seed"] == models["kinf"]["config"]["seed"] + 1
    trained = load_trained(folders["k1"])
    shipped = zoo_module.load_model("k1", tmp_path / "ship")
    torch.testing.assert_close(_weights(shipped), _weights(trained), atol=2e-3, rtol=2e-3)  # fp16
    early = zoo_module.load_model("k1@1", tmp_path / "ship")
    torch.testing.assert_close(_weights(early), _weights(load_trained(folders["k1"], step=1)),
                               atol=2e-3, rtol=2e-3)
    assert zoo_module.world_of("k1", tmp_path / "ship").instances == 1
    assert zoo_module.world_of("k1-i1", tmp_path / "ship").instance_seed == 1
    assert zoo_module.level_of("k1-i1@1") == 1 and zoo_module.level_of("kinf@1") is None
    manifest = zoo_module.zoo_manifest(tmp_path / "ship")
    assert len(manifest["models"]["k1"]["loss"]) == 2
    assert manifest["models"]["k1"]["config"]["init_from"] == "base"
    assert manifest["models"]["k1@1"]["steps"] == 1
    assert str(tmp_path) not in json.dumps(manifest)  # no machine paths in shipped files
    detector = zoo_module.load_detector(tmp_path / "ship")
    assert detector.metrics["heldout_scenes"] == 20
    with pytest.raises(ValueError, match="unknown toy model 'k2'"):
        zoo_module.load_model("k2", tmp_path / "ship")


def test_zoo_models_differ_only_in_the_limited_concepts_pictures_and_their_run():
    config = zoo_module.ZooConfig()
    runs = [f"{level}{run}" for level in ("k4", "k16", "kinf") for run in ("", "-r1", "-r2")]
    assert [model.name for model in config.models()] == [
        "k1", *(f"k1-i{seed}" for seed in range(1, 9)), *runs]
    tunes = {name: config.finetune_config(k, "base", seed, run).to_dict()
             for name, k, seed, run in config.models()}
    for name, tune in tunes.items():
        world = dict(tune.pop("world"))
        assert world.pop("instances") == zoo_module.level_of(name)
        world.pop("instance_seed")
        assert world == {k: v for k, v in config.world(None).to_dict().items()
                         if k not in ("instances", "instance_seed")}
        # Apart from K and the pictures, only a later run's training seed differs.
        assert tune.pop("seed") == config.seed + 1 + zoo_module.run_of(name)
        assert tune == {k: v for k, v in tunes["kinf"].items() if k not in ("world", "seed")}
    # Run 0 of every level is configured as before runs existed: the shipped models stay valid.
    shipped = zoo_module.zoo_manifest()["models"]
    assert set(zoo_module.model_names(runs=True)) <= set(tunes)
    for name, k, seed, run in config.models():
        if name in shipped:
            assert config.finetune_config(k, "base", seed, run).to_dict() == \
                shipped[name]["config"]
    seeds = {m.name: m.instance_seed for m in config.models()}
    assert [seeds[n] for n in ("k4", "k4-r1", "k4-r2", "k16-r2", "kinf-r1", "kinf-r2")] == [
        0, 1, 2, 2, 0, 0]  # unlimited K draws every picture anew: no instance seed to vary
    pictures = {name: config.world(k, seed).instance_list
                for name, k, seed, _ in config.models() if k is not None}
    assert len({id(p) for p in pictures.values()}) == 15
    assert render([Scene(pictures["k1"][0])]).sum() != render([Scene(pictures["k1-i1"][0])]).sum()
    assert render([Scene(pictures["k4"][0])]).sum() != render([Scene(pictures["k4-r1"][0])]).sum()


@pytest.mark.parametrize("name, parsed", [
    ("k1", (1, 0, 0, None)), ("k1-i3", (1, 3, 0, None)), ("kinf-r2", (None, 0, 2, None)),
    ("k4-r1@500", (4, 0, 1, 500)), ("k16@250", (16, 0, 0, 250)), ("k1-i2-r1", (1, 2, 1, None)),
])
def test_a_model_name_reads_back_as_written(name, parsed):
    from dvdlib.toyworld.names import level_name, parse_name, snapshot_name

    assert tuple(parse_name(name)) == parsed
    k, seed, run, step = parsed
    assert (level_name(k, seed, run) if step is None
            else snapshot_name(level_name(k, seed, run), step)) == name
    assert zoo_module.level_of(name) == k and zoo_module.run_of(name) == run


@pytest.mark.parametrize("bad", ["k0", "k04", "k4-r0", "k1-i0", "k4@0", "kinf-r", "kinf-r1-i1",
                                 "k4_r1", "K4", "k4-r1@", "sd1.4", ""])
def test_a_bad_model_name_is_refused_in_one_line(bad):
    with pytest.raises(ValueError, match=f"not a zoo model name: {bad!r}") as err:
        zoo_module.level_of(bad)
    assert "\n" not in str(err.value)


def test_cli_zoo_records_its_recipe(tmp_path):
    from dvdlib.book.cli import main

    assert main(["toyworld", "zoo", "--out", str(tmp_path / "work"), "--levels", "1",
                 "--instance-seeds", "3", "--base-steps", "1", "--finetune-steps", "2",
                 "--snapshot-steps", "1", "--checkpoint-every", "1", "--detector-steps", "1",
                 "--export", str(tmp_path / "ship"), "--no-progress"]) == 0
    manifest = zoo_module.zoo_manifest(tmp_path / "ship")
    assert "--instance-seeds 3 " in manifest["provenance"]["command"]
    assert "--snapshot-steps 1 " in manifest["provenance"]["command"]
    assert "--runs 3 " in manifest["provenance"]["command"]  # the default, recorded
    assert manifest["provenance"]["cpu_capability"]  # weights depend on the CPU's kernels
    assert zoo_module.model_names(tmp_path / "ship") == ["k1-i3"]
    assert zoo_module.world_of("k1-i3", tmp_path / "ship").instance_seed == 3


def test_detector_resume_equals_uninterrupted(tmp_path):
    config = DetectorConfig(steps=4, batch_size=8, heldout=10, checkpoint_every=2)
    train_detector(config, tmp_path / "whole", progress=False)
    train_detector(config, tmp_path / "cut", progress=False, stop_after=2)
    train_detector(config, tmp_path / "cut", progress=False)
    from dvdlib.toyworld.detector import load_trained_detector

    a, b = load_trained_detector(tmp_path / "whole"), load_trained_detector(tmp_path / "cut")
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


# --- detector and judge (the shipped detector) ---------------------------------------------------
@pytest.fixture(scope="module")
def shipped_detector():
    try:
        return zoo_module.load_detector()
    except FileNotFoundError as err:
        pytest.skip(str(err))


def test_shipped_detector_finds_rendered_concepts_and_objects(shipped_detector):
    scenes = World().sample_detector_scenes(200, seed=(123, 4))
    predicted = shipped_detector.probabilities(scenes.images) > 0.5
    assert (predicted == scenes.labels).all(dim=1).float().mean() > 0.95
    assert shipped_detector.metrics["exact_set_accuracy"] > 0.95


def test_toy_judge_answers_by_thresholds(shipped_detector):
    from dvdlib.toyworld.evaluate import tensor_to_pil

    judge = ToyJudge(shipped_detector)
    assert isinstance(judge, Judge)
    scenes = World().scenes([Scene(_concept("sunset", 3)),
                             Scene(object=ObjectInstance("kite", (0.3, 0.5, 1.0), 24, 16, 16))])
    images = tensor_to_pil(scenes.images)
    questions = [Question(side, subject, i, f"is there a {subject}?")
                 for side, subject in (("concept", "sunset"), ("object", "kite")) for i in range(5)]
    answers = judge.answer([(images[0], questions), (images[1], questions)])
    assert answers[0] == [True] * 5 + [False] * 5  # a sunset for sure, no kite
    assert answers[1] == [False] * 5 + [True] * 5
    # The yes count on a side is the number of thresholds the probability exceeds.
    p = judge.presence(images)[:, shipped_detector.names.index("sunset")]
    assert [sum(answers[i][:5]) for i in range(2)] == [
        sum(float(p[i]) > t for t in THRESHOLDS) for i in range(2)]
    with pytest.raises(ValueError, match="'mug' is none of them"):
        judge.answer([(images[0], [Question("object", "mug", 0, "a mug?")])])
    with pytest.raises(ValueError, match="strictly increasing"):
        ToyJudge(shipped_detector, thresholds=(0.5, 0.4, 0.6, 0.7, 0.8))


def test_untrained_detector_shape_and_bad_images():
    detector = PresenceDetector()
    assert detector.probabilities(torch.rand(2, 3, 32, 32)).shape == (
        2, len(CONCEPTS) + len(OBJECTS))
    with pytest.raises(ValueError, match="must be \\[batch, 3, h, w\\]"):
        detector.probabilities(torch.rand(2, 32, 32))
    with pytest.raises(ValueError, match="unknown label 'circle'"):
        PresenceDetector(["sunset", "circle"])


def test_cli_trains_and_rejects_bad_levels(tmp_path, capsys):
    from dvdlib.book.cli import main

    assert main(["toyworld", "train", "--out", str(tmp_path / "m"), "--steps", "1",
                 "--batch-size", "2", "--instances", "1", "--no-progress"]) == 0
    assert isinstance(load_trained(tmp_path / "m"), ToyDiffusionPipeline)
    with pytest.raises(SystemExit) as exit_info:
        main(["toyworld", "train", "--out", str(tmp_path / "x"), "--instances", "0"])
    assert exit_info.value.code == 2
    assert "diversity level '0'" in capsys.readouterr().err
