"""The model a chapter studies: one loading call and one name for toy and real models."""

from __future__ import annotations

import pytest

from dvdlib import study
from dvdlib.toyworld import zoo


def test_toy_names_resolve_and_real_models_are_not_toy():
    assert study.toy_name("toy") == zoo.DEFAULT_MODEL
    assert study.toy_name("toy:kinf") == "kinf"
    assert study.toy_name("sd1.4") is None and study.toy_world("sd1.4") is None
    assert study.model_label("sd1.4") == "sd1.4"
    assert study.k_text(None) == "unlimited" and study.k_text(4) == "4"


def test_a_toy_model_is_named_with_its_k_and_loaded_from_the_zoo():
    names = zoo.model_names()
    assert study.model_label("toy:kinf") == "kinf (K=unlimited)" and study.model_label("toy:k1") == "k1 (K=1)"
    assert study.toy_world("toy:k1").instances == 1
    pipe = study.load_model(f"toy:{names[0]}")
    assert pipe.device.type == "cpu" and pipe.unet.dtype.is_floating_point
    with pytest.raises(ValueError, match="unknown toy model 'k99'"):
        study.load_model("toy:k99")
