"""The toy world: rendering, the diversity knob, the pipeline's contract, training, detector, judge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dvdlib.bench import validate_prompts
from dvdlib.judges.base import Judge, Question
from dvdlib.toyworld import zoo as zoo_module
from dvdlib.toyworld.detector import DetectorConfig, ShapeDetector, train_detector
from dvdlib.toyworld.judge import THRESHOLDS, ToyJudge
from dvdlib.toyworld.pipeline import (TEXT_POSITIONS, ToyDiffusionPipeline,
                                      cross_attention_layout, new_pipeline, parameter_counts)
from dvdlib.toyworld.train import TrainConfig, load_trained, train
from dvdlib.toyworld.world import (SHAPES, ShapeInstance, World, caption, coverage, prompt_table,
                                   render)


# --- the world ----------------------------------------------------------------------------------
def test_rendering_is_deterministic_per_seed():
    world = World()
    a, b, c = world.sample(6, seed=3), world.sample(6, seed=3), world.sample(6, seed=4)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (6, 3, 32, 32) and 0 <= a.images.min() and a.images.max() <= 1


def test_shapes_cover_their_geometric_area_and_differ():
    objects = [ShapeInstance(s, (1.0, 1.0, 1.0), 16.0, 16.0, 16.0) for s in SHAPES]
    area = coverage(objects).sum(dim=(1, 2))  # pixels
    assert area[0] == pytest.approx(math.pi * (8 * 0.9) ** 2, rel=0.02)  # the disc
    assert area[1] == pytest.approx((16 * 0.78) ** 2, rel=0.02)  # the square
    images = render([[o] for o in objects])
    for i in range(len(SHAPES)):
        for j in range(i + 1, len(SHAPES)):
            assert (images[i] - images[j]).abs().sum() > 5, (SHAPES[i], SHAPES[j])


def _limited_looks(world: World, n: int = 200) -> set:
    scenes = world.sample(n, seed=11)
    return {(o.colour, o.size, o.x, o.y) for objs in scenes.objects for o in objs
            if o.shape == world.limited}


def test_diversity_knob():
    assert len(_limited_looks(World(instances=1))) == 1
    looks = _limited_looks(World(instances=4))
    assert len(looks) == 4 and len({(c, s) for c, s, _, _ in looks}) == 4  # distinct instances
    assert len(World(instances=4).instance_list) == 4
    unlimited = _limited_looks(World(instances=None))
    assert len(unlimited) > 30  # a fresh look every time
    # Other shapes keep full diversity whatever K is.
    scenes = World(instances=1).sample(200, seed=11)
    squares = {(o.colour, o.x) for objs in scenes.objects for o in objs if o.shape == "square"}
    assert len(squares) > 20
    # A fixed look at varying places: colour and size fixed, position free.
    moving = _limited_looks(World(instances=1, fixed_attributes=("colour", "size")))
    assert len({(c, s) for c, s, _, _ in moving}) == 1 and len(moving) > 20
    # The instances depend on instance_seed only.
    assert World(instances=3, instance_seed=5).instance_list == \
        World(instances=3, instance_seed=5).instance_list
    assert World(instances=3, instance_seed=5).instance_list != \
        World(instances=3, instance_seed=6).instance_list


def test_design_two_pairs_and_captions():
    world = World()
    assert ("circle", "square") in world.pairs and ("circle", "triangle") in world.pairs
    assert not any({"circle", p} == set(pair) for p in ("cross", "star") for pair in world.pairs)
    captions = set(world.sample(400, seed=1).captions)
    assert {"a circle and a square", "a square and a circle", "a circle"} <= captions
    assert "a circle and a cross" not in captions and "a cross and a circle" not in captions
    assert caption(["circle", "star"]) == "a circle and a star"
    scenes = world.sample(50, seed=2)
    for objs in scenes.objects:  # two shapes in a scene never touch
        if len(objs) == 2:
            a, b = objs
            assert math.hypot(a.x - b.x, a.y - b.y) >= (a.size + b.size) / 2


def test_a_partner_always_fits_beside_a_large_central_instance():
    world = World(instances=1)
    big = ShapeInstance("circle", (1.0, 1.0, 1.0), 15.0, 16.0, 16.0)
    partner = ShapeInstance("square", (1.0, 0.0, 0.0), 15.0, 16.0, 16.0)
    rng = np.random.default_rng(0)
    places = set()
    for _ in range(20):
        fixed, moved = world._fit_beside(big, partner, rng)
        assert fixed == big and moved.size == 9.0 and math.hypot(
            moved.x - 16, moved.y - 16) >= (15 + 9) / 2 + 1
        places.add((moved.x, moved.y))
    assert len(places) > 5  # a random place among those that fit, not always the same corner


def test_prompt_table_has_bench_shape_with_controls():
    table = prompt_table(World())
    validate_prompts(table, categories=("shape",))
    assert list(table.columns[:5]) == ["case_num", "content_type", "content", "nm_word", "prompt"]
    assert set(table["content"]) == {"circle"} and set(table["nm_word"]) == set(SHAPES[1:])
    square = table[table["nm_word"] == "square"].set_index("arrangement")["prompt"]
    assert square.to_dict() == {"content first": "a circle and a square",
                                "nm_word first": "a square and a circle",
                                "content alone": "a circle", "nm_word alone": "a square"}
    assert len(prompt_table(World(), partners=["cross"], controls=False)) == 2


@pytest.mark.parametrize("make, message", [
    (lambda: World(shapes=("circle", "hexagon")), "unknown shape 'hexagon'"),
    (lambda: World(instances=0), "instances"),
    (lambda: World(instances=2.5), "instances"),
    (lambda: World(limited="ring"), "limited concept 'ring'"),
    (lambda: World(unpaired=("circle",)), "unpaired partner 'circle'"),
    (lambda: World(unpaired=("square", "triangle", "cross", "star")), "at least one"),
    (lambda: World(fixed_attributes=("shade",)), "unknown instance attribute 'shade'"),
    (lambda: caption(["circle", "blob"]), "unknown shape 'blob'"),
    (lambda: prompt_table(World(), partners=["circle"]), "partner 'circle'"),
    (lambda: zoo_module.parse_level("0"), "diversity level '0'"),
    (lambda: TrainConfig(steps=0), "steps must be"),
])
def test_bad_input_is_named(make, message):
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
    assert pipe("a circle", num_inference_steps=1).images[0].size == (32, 32)


def test_text_encoder_reads_short_prompts_whole(pipe, tmp_path):
    # The longest caption, with start and end-of-text, fits the toy's few positions, and the
    # position count survives saving (it travels in the tokenizer's and the encoder's configs).
    longest = max((caption([a, b]) for a in SHAPES for b in SHAPES if a != b), key=len)
    ids = pipe.tokenizer(longest).input_ids
    assert len(ids) < pipe.tokenizer.model_max_length == TEXT_POSITIONS
    assert pipe.encode_prompt([longest]).shape == (1, TEXT_POSITIONS, 64)
    pipe.save_pretrained(tmp_path / "toy")
    loaded = ToyDiffusionPipeline.from_pretrained(tmp_path / "toy")
    assert loaded.tokenizer.model_max_length == TEXT_POSITIONS
    assert loaded.text_encoder.config.max_position_embeddings == TEXT_POSITIONS


def test_generator_list_equals_one_by_one(pipe):
    prompts, seeds = ["a circle and a square", "a star", "a square and a circle"], [5, 6, 7]
    batch = _images(pipe, prompts, seeds)
    for i in range(3):
        alone = _images(pipe, [prompts[i]], [seeds[i]])
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)


def test_save_load_round_trip_gives_identical_images(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "toy")
    loaded = ToyDiffusionPipeline.from_pretrained(tmp_path / "toy")
    assert loaded.config.latent_shift == pipe.config.latent_shift
    np.testing.assert_array_equal(_images(pipe, ["a circle"], [1]), _images(loaded, ["a circle"], [1]))


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
        _images(pipe, ["a circle", "a star"], [1, 2], cross_attention_kwargs={"probe": option},
                negative_prompt="a square")
    finally:
        pipe.unet.set_attn_processor(original)
    expected = pipe.encode_prompt(["a square", "a square", "a circle", "a star"])
    assert len(log) == 7 * 2  # 7 cross-attention layers x 2 steps
    for text, probe in log:
        assert probe is option  # passed to every call unchanged
        torch.testing.assert_close(text, expected)


def test_pipeline_rejects_bad_calls(pipe):
    with pytest.raises(ValueError, match="output_type 'png'"):
        pipe("a circle", output_type="png")
    with pytest.raises(ValueError, match="2 generators for 1 prompts"):
        pipe("a circle", generator=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="multiples of 8"):
        pipe("a circle", height=30)


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
    config = zoo_module.ZooConfig(levels=(1, None), base_steps=2, base_continue_steps=1,
                                  finetune_steps=2, detector_steps=2, detector_heldout=20,
                                  batch_size=2, checkpoint_every=1)
    folders = zoo_module.train_zoo(config, tmp_path / "work", progress=False, log=lambda _: None)
    zoo_module.export_zoo(tmp_path / "work", tmp_path / "ship", config, {"command": "test"})
    assert zoo_module.model_names(tmp_path / "ship") == ["k1", "kinf"]
    trained = load_trained(folders["k1"])
    shipped = zoo_module.load_model("k1", tmp_path / "ship")
    torch.testing.assert_close(_weights(shipped), _weights(trained), atol=2e-3, rtol=2e-3)  # fp16
    assert zoo_module.world_of("k1", tmp_path / "ship").instances == 1
    manifest = zoo_module.zoo_manifest(tmp_path / "ship")
    assert len(manifest["models"]["k1"]["loss"]) == 2 and manifest["models"]["k1"]["config"][
        "init_from"] == "base-continued"
    assert len(manifest["base"]["continued"]["loss"]) == 1
    assert str(tmp_path) not in json.dumps(manifest)  # no machine paths in shipped files
    detector = zoo_module.load_detector(tmp_path / "ship")
    assert detector.metrics["heldout_scenes"] == 20
    with pytest.raises(ValueError, match="unknown toy model 'k2'"):
        zoo_module.load_model("k2", tmp_path / "ship")


def test_zoo_variants_change_only_the_limited_concepts_fixed_instances():
    main = zoo_module.ZooConfig()
    free_place = zoo_module.ZooConfig(fixed_attributes=("colour", "size"))
    other_look = zoo_module.ZooConfig(instance_seed=3)
    # Variants share the base and the unlimited model, so they can reuse a finished base.
    for variant in (free_place, other_look):
        assert variant.base_config() == main.base_config()
        assert variant.finetune_config(None, "base") == main.finetune_config(None, "base")
    assert free_place.world(1).fixed_attributes == ("colour", "size")
    assert free_place.world(1).instance_list == main.world(1).instance_list
    assert other_look.world(1).instance_list != main.world(1).instance_list
    scenes = free_place.world(1).sample(64, 0)
    places = {(o.x, o.y) for scene in scenes.objects for o in scene if o.shape == "circle"}
    looks = {(o.colour, o.size) for scene in scenes.objects for o in scene if o.shape == "circle"}
    assert len(places) > 1 and len(looks) == 1
    with pytest.raises(ValueError, match="unknown instance attribute 'shade'"):
        zoo_module.ZooConfig(fixed_attributes=("shade",))


def test_cli_zoo_records_its_variant(tmp_path):
    from dvdlib.cli import main

    assert main(["toyworld", "zoo", "--out", str(tmp_path / "work"), "--levels", "1",
                 "--fixed-attributes", "colour", "size", "--instance-seed", "3",
                 "--base-steps", "1", "--finetune-steps", "1", "--detector-steps", "1",
                 "--export", str(tmp_path / "ship"), "--no-progress"]) == 0
    manifest = zoo_module.zoo_manifest(tmp_path / "ship")
    assert "--fixed-attributes colour size --instance-seed 3 " in manifest["provenance"]["command"]
    world = zoo_module.world_of("k1", tmp_path / "ship")
    assert world.fixed_attributes == ("colour", "size") and world.instance_seed == 3


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


def test_shipped_detector_finds_rendered_shapes(shipped_detector):
    scenes = World().sample_detector_scenes(200, seed=(123, 4))
    predicted = shipped_detector.probabilities(scenes.images) > 0.5
    assert (predicted == scenes.labels).all(dim=1).float().mean() > 0.95
    assert shipped_detector.metrics["exact_set_accuracy"] > 0.95


def test_toy_judge_answers_by_thresholds(shipped_detector):
    from dvdlib.toyworld.evaluate import tensor_to_pil

    judge = ToyJudge(shipped_detector)
    assert isinstance(judge, Judge)
    scenes = World().scenes([[ShapeInstance("circle", (1.0, 0.3, 0.3), 14, 9, 9),
                              ShapeInstance("square", (0.3, 1.0, 0.3), 14, 23, 23)],
                             [ShapeInstance("star", (0.3, 0.5, 1.0), 15, 16, 16)]])
    images = tensor_to_pil(scenes.images)
    questions = [Question(side, subject, i, f"is there a {subject}?")
                 for side, subject in (("concept", "circle"), ("object", "star")) for i in range(5)]
    answers = judge.answer([(images[0], questions), (images[1], questions)])
    assert answers[0] == [True] * 5 + [False] * 5  # circle sure, no star
    assert answers[1] == [False] * 5 + [True] * 5
    # The yes count on a side is the number of thresholds the probability exceeds.
    p = judge.presence(images)[:, shipped_detector.shapes.index("circle")]
    assert [sum(answers[i][:5]) for i in range(2)] == [
        sum(float(p[i]) > t for t in THRESHOLDS) for i in range(2)]
    with pytest.raises(ValueError, match="'coaster' is none of them"):
        judge.answer([(images[0], [Question("object", "coaster", 0, "a coaster?")])])
    with pytest.raises(ValueError, match="strictly increasing"):
        ToyJudge(shipped_detector, thresholds=(0.5, 0.4, 0.6, 0.7, 0.8))


def test_untrained_detector_shape_and_bad_images():
    detector = ShapeDetector()
    assert detector.probabilities(torch.rand(2, 3, 32, 32)).shape == (2, len(SHAPES))
    with pytest.raises(ValueError, match="must be \\[batch, 3, h, w\\]"):
        detector.probabilities(torch.rand(2, 32, 32))


def test_cli_trains_and_rejects_bad_levels(tmp_path, capsys):
    from dvdlib.cli import main

    assert main(["toyworld", "train", "--out", str(tmp_path / "m"), "--steps", "1",
                 "--batch-size", "2", "--instances", "1", "--no-progress"]) == 0
    assert isinstance(load_trained(tmp_path / "m"), ToyDiffusionPipeline)
    with pytest.raises(SystemExit) as exit_info:
        main(["toyworld", "train", "--out", str(tmp_path / "x"), "--instances", "0"])
    assert exit_info.value.code == 2
    assert "diversity level '0'" in capsys.readouterr().err
