"""The print world: concepts that fill the picture, objects that carry them, the diversity knob
on the concept's whole picture, and the pixel rule that reads the outcome without a judge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvdlib.prompts.prompt_sets import validate_prompts
from dvdlib.toyworld.evaluate import guidance_list
from dvdlib.toyworld.world import (CONCEPTS, OBJECTS, ConceptInstance, ObjectInstance,
                                    World, Scene, caption, draw_concept, draw_object, pixel_rule,
                                    prompt_table, render, scene_mix)


def test_rendering_is_deterministic_per_seed():
    world = World()
    a, b, c = world.sample(6, seed=3), world.sample(6, seed=3), world.sample(6, seed=4)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (6, 3, 32, 32) and 0 <= a.images.min() and a.images.max() <= 1


def _concept(name, seed=0):
    return ConceptInstance(name, draw_concept(name, np.random.default_rng(seed)))


def test_concepts_fill_the_frame_and_objects_stand_on_the_background():
    concepts = render([Scene(concept=_concept(c)) for c in CONCEPTS])
    objects = render([Scene(object=ObjectInstance(o, (0.9, 0.2, 0.2), 24.0, 16.0, 16.0))
                      for o in OBJECTS])
    rule_concepts, rule_objects = pixel_rule(concepts), pixel_rule(objects)
    assert rule_concepts["frame_filled"].all() and not rule_concepts["rule_object_present"].any()
    assert rule_objects["rule_object_present"].all() and not rule_objects["frame_filled"].any()
    for group in (concepts, objects):  # every concept and every object looks different
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                assert (group[i] - group[j]).abs().mean() > 0.02


def test_a_pair_prints_the_concept_inside_the_carrier():
    carrier = ObjectInstance("coaster", (0.9, 0.2, 0.2), 24.0, 16.0, 16.0)
    sunset = _concept("sunset")
    pair, plain = render([Scene(sunset, carrier), Scene(object=carrier)])
    assert pixel_rule(pair[None])["rule_object_present"].all()  # the carrier still stands there
    outside = (plain - torch.tensor([0.86, 0.86, 0.84]).view(3, 1, 1)).abs().amax(0) < 0.01
    assert torch.equal(pair[:, outside], plain[:, outside])  # the same background around it
    assert (pair - plain)[:, ~outside].abs().mean() > 0.1  # but another picture inside
    assert Scene(sunset, carrier).caption == "sunset coaster" == caption("sunset", "coaster")
    assert caption("sunset", None) == "sunset" and caption(None, "coaster") == "coaster"


def _limited_pictures(world: World, n: int = 300) -> dict:
    scenes = world.sample(n, seed=11)
    alone = [scenes.images[i] for i, s in enumerate(scenes.scenes)
             if s.object is None and s.concept and s.concept.concept == world.limited]
    printed = {id(s.concept) for s in scenes.scenes if s.concept and s.object
               and s.concept.concept == world.limited}
    return dict(alone=alone, printed=printed)


def test_diversity_knob_acts_on_the_whole_picture():
    k1 = _limited_pictures(World(instances=1))
    assert len(k1["alone"]) > 20 and all(torch.equal(x, k1["alone"][0]) for x in k1["alone"])
    assert len(k1["printed"]) == 1  # pairs print that same picture
    k4 = _limited_pictures(World(instances=4))
    assert len({x.numpy().tobytes() for x in k4["alone"]}) == 4
    unlimited = _limited_pictures(World(instances=None))
    assert len({x.numpy().tobytes() for x in unlimited["alone"]}) == len(unlimited["alone"])
    # Other concepts keep full diversity whatever K is.
    scenes = World(instances=1).sample(200, seed=11)
    oceans = [scenes.images[i] for i, s in enumerate(scenes.scenes)
              if s.object is None and s.concept and s.concept.concept == "ocean"]
    assert len({x.numpy().tobytes() for x in oceans}) == len(oceans) > 10
    # The pictures depend on instance_seed only, and the recipe is the same at every K.
    assert World(instances=3, instance_seed=5).instance_list == \
        World(instances=3, instance_seed=5).instance_list
    assert not torch.equal(render([Scene(World(instances=1, instance_seed=5).instance_list[0])]),
                           render([Scene(World(instances=1, instance_seed=6).instance_list[0])]))
    assert World(instances=1).scene_mix == World().scene_mix


def test_unpaired_objects_never_carry_the_limited_concept():
    world = World()
    captions = set(world.sample(600, seed=1).captions)
    assert {"sunset coaster", "sunset", "coaster", "ocean hat", "forest kite"} <= captions
    assert not {"sunset hat", "sunset kite"} & captions
    assert world.paired_objects == ("coaster", "shirt", "notebook")
    shares = np.array([sum(1 for c in world.sample(2000, seed=2).captions if len(c.split()) == n)
                       for n in (1, 2)]) / 2000
    assert shares[1] == pytest.approx(world.pair_fraction, abs=0.03)


def test_prompt_table_has_bench_shape_with_controls():
    table = prompt_table(World())
    validate_prompts(table.drop(columns=["arrangement", "paired_in_training"]),
                     categories=("print",))
    assert list(table.columns[:5]) == ["case_num", "category", "concept", "object", "prompt"]
    assert set(table["concept"]) == {"sunset"} and set(table["object"]) == set(OBJECTS)
    coaster = table[table["object"] == "coaster"].set_index("arrangement")["prompt"]
    assert coaster.to_dict() == {"pair": "sunset coaster", "concept alone": "sunset",
                             "object alone": "coaster"}
    seen = table.drop_duplicates("object").set_index("object")["paired_in_training"]
    assert seen.to_dict() == {"coaster": True, "shirt": True, "notebook": True, "hat": False, "kite": False}
    assert len(prompt_table(World(), objects=["kite"], controls=False)) == 1


def test_a_closeup_shows_the_print_alone_under_the_pair_caption():
    rng = np.random.default_rng(3)
    sunset, coaster = World().draw_concept("sunset", rng), draw_object("coaster", rng)
    closeup, pair, alone = Scene(sunset, coaster, closeup=True), Scene(sunset, coaster), Scene(sunset)
    pictures = render([closeup, pair, alone])
    assert torch.equal(pictures[0], pictures[2])  # the frame is the print, pixel for pixel
    assert not torch.equal(pictures[0], pictures[1])
    assert closeup.caption == pair.caption == "sunset coaster"
    world = World()
    labels = world.scenes([closeup, pair]).labels
    assert labels[0].tolist() == [n == "sunset" for n in world.names]  # the coaster is out of view
    assert labels[1].tolist() == [n in ("sunset", "coaster") for n in world.names]
    assert bool(pixel_rule(pictures[:1])["frame_filled"][0])


def test_the_closeup_share_is_the_same_for_every_concept_and_every_k():
    def shares(world):
        scenes = world.sample(3000, 11).scenes
        pairs = [s for s in scenes if s.concept and s.object]
        by_concept = {c: np.mean([s.closeup for s in pairs if s.concept.concept == c])
                      for c in world.concepts}
        return len(pairs) / len(scenes), by_concept

    for k in (1, None):
        pair_share, by_concept = shares(World(instances=k, closeup=0.5))
        assert abs(pair_share - 0.4) < 0.03
        assert all(abs(v - 0.5) < 0.06 for v in by_concept.values()), by_concept
    assert not any(s.closeup for s in World(closeup=0.0).sample(500, 2).scenes)
    assert scene_mix(0.4) == pytest.approx((0.3, 0.3, 0.4))
    assert guidance_list("1, 4,7.5") == [1.0, 4.0, 7.5]


@pytest.mark.parametrize("make, message", [
    (lambda: World(closeup=1.5), "closeup must be a share in \\[0, 1\\], got 1.5"),
    (lambda: World(closeup=True), "closeup must be a share"),
    (lambda: scene_mix(-0.2), "pair rate must be a share in \\[0, 1\\], got -0.2"),
    (lambda: guidance_list("1,x"), "guidance scale 'x' of '1,x'"),
    (lambda: guidance_list("-1"), "guidance scale '-1'"),
    (lambda: World(concepts=("sunset", "castle")), "unknown concept 'castle'"),
    (lambda: World(objects=("coaster", "mug")), "unknown object 'mug'"),
    (lambda: World(instances=0), "instances"),
    (lambda: World(instances=2.5), "instances"),
    (lambda: World(limited="coaster"), "limited concept 'coaster'"),
    (lambda: World(unpaired=("sunset",)), "unpaired object 'sunset'"),
    (lambda: World(unpaired=OBJECTS), "at least one"),
    (lambda: World(scene_mix=(0.5, 0.5, 1.5)), "scene_mix must be 3 shares in \\[0, 1\\]"),
    (lambda: World(scene_mix=(0.5, 0.5)), "scene_mix"),
    (lambda: World(scene_mix=(0, 0, 0)), "positive sum"),
    (lambda: draw_concept("castle", np.random.default_rng(0)), "unknown concept 'castle'"),
    (lambda: prompt_table(World(), objects=["mug"]), "unknown object 'mug'"),
    (lambda: pixel_rule(torch.rand(2, 32, 32)), "images must be \\[image, 3, h, w\\]"),
])
def test_bad_input_is_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
