"""Our saturation and concentration measures, on hand-made tables and on a real record."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib.attention.shares import concept_share, entropy_concentration, map_concentration, saturation_step, top_mass
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.record import AttentionRecord, MapRequest
from dvdlib.models.random_weights import dummy_sd_pipeline
from dvdlib.attention.token_positions import tokenize_prompt


def group_table(concept, obj, rest=0.1) -> pd.DataFrame:
    """A group table (as AttentionRecord.group_frame makes) for one image, from per-step masses."""
    rows = []
    for step, (c, o) in enumerate(zip(concept, obj)):
        words = c + o + rest
        rows += [dict(image=0, step=step, group="castle", mass=c, word_share=c / words),
                 dict(image=0, step=step, group="coaster", mass=o, word_share=o / words),
                 dict(image=0, step=step, group="ungrouped_words", mass=rest, word_share=rest / words),
                 dict(image=0, step=step, group="start", mass=1 - words, word_share=np.nan)]
    return pd.DataFrame(rows)


def test_concept_share_from_a_table():
    shares = concept_share(group_table([0.3, 0.6], [0.3, 0.2]), "castle", "coaster")
    assert list(shares.columns) == ["image", "step", "concept_mass", "object_mass", "pair_share", "word_share"]
    assert np.allclose(shares["pair_share"], [0.5, 0.75])
    assert np.allclose(shares["word_share"], [0.3 / 0.7, 0.6 / 0.9])
    with pytest.raises(KeyError, match="'mug'.*its groups"):
        concept_share(group_table([0.3], [0.3]), "mug", "coaster")


@pytest.mark.parametrize("series, expected", [
    ([0.2, 0.6, 0.4, 0.7, 0.8], 3),  # dips below at step 2, then stays above
    ([0.6, 0.7, 0.9], 0),  # saturated from the first step
    ([0.6, 0.7, 0.4], None),  # ends below: never saturated
    ([0.5, 0.5], 0),  # the threshold itself counts as reached
])
def test_saturation_step(series, expected):
    shares = pd.DataFrame({"image": 0, "step": range(len(series)), "pair_share": series})
    result = saturation_step(shares.sample(frac=1, random_state=0), threshold=0.5)  # order does not matter
    step = result.loc[0, "saturation_step"]
    assert (step is pd.NA) if expected is None else step == expected
    assert result.loc[0, "num_steps"] == len(series)
    if expected is not None:
        assert result.loc[0, "saturation_fraction"] == expected / len(series)


def test_saturation_step_per_image_and_errors():
    shares = pd.DataFrame({"image": [0, 0, 1, 1], "step": [0, 1, 0, 1], "word_share": [0.1, 0.9, 0.9, 0.9]})
    result = saturation_step(shares, threshold=0.8, column="word_share")
    assert list(result["saturation_step"]) == [1, 0]
    with pytest.raises(KeyError, match="'pair_share'"):
        saturation_step(shares, threshold=0.5)
    with pytest.raises(ValueError, match="threshold must be in"):
        saturation_step(shares, threshold=1.5, column="word_share")


def test_concentration_measures():
    uniform = torch.ones(2, 8, 8)
    one_hot = torch.zeros(8, 8)
    one_hot[3, 4] = 5.0
    assert torch.allclose(entropy_concentration(uniform), torch.zeros(2), atol=1e-6)
    assert torch.allclose(entropy_concentration(one_hot), torch.tensor(1.0))
    assert torch.allclose(top_mass(uniform, 0.1), torch.full((2,), math.ceil(6.4) / 64))
    assert torch.allclose(top_mass(one_hot, 0.1), torch.tensor(1.0))
    half = torch.zeros(4, 4)
    half[:2] = 1.0  # mass spread evenly over half the positions
    assert torch.allclose(entropy_concentration(half), torch.tensor(1 - math.log(8) / math.log(16)))
    assert torch.allclose(top_mass(half, 0.5), torch.tensor(1.0))
    with pytest.raises(ValueError, match="fraction"):
        top_mass(uniform, 0)


def test_measures_from_a_pipeline_record():
    pipe = dummy_sd_pipeline("sd1")
    prompt = "Neuschwanstein Castle Coaster"
    tokens = tokenize_prompt(pipe.tokenizer, prompt)
    with attention_instruments(pipe.unet) as layers:
        record = AttentionRecord(layers, num_steps=4, prompts=[tokens],
                                 maps=MapRequest(layers=["up.3.0.0"], tokens=[5, 6], steps=[0, 3]))
        pipe(prompt, num_inference_steps=4, guidance_scale=7.5, output_type="pt",
             generator=torch.Generator().manual_seed(0), cross_attention_kwargs={"attention_record": record})
    shares = concept_share(record, "neuschwanstein castle", "coaster", tokenizer=pipe.tokenizer)
    groups = record.group_frame(pipe.tokenizer, {"castle": "neuschwanstein castle", "coaster": "coaster"})
    assert np.allclose(shares["pair_share"], concept_share(groups, "castle", "coaster")["pair_share"])
    assert len(shares) == 4 and shares["pair_share"].between(0, 1).all()
    # The prompt has no other word, so the concept's share of word tokens is its share of the pair.
    assert np.allclose(shares["pair_share"], shares["word_share"])
    per_layer = concept_share(record, "neuschwanstein castle", "coaster", tokenizer=pipe.tokenizer,
                              by=("image", "step", "layer"))
    assert len(per_layer) == 4 * 16
    assert len(saturation_step(per_layer, threshold=0.5)) == 16

    table = map_concentration(record, fraction=0.25)
    assert set(table["layer_label"]) == {"up.3.0.0"} and set(table["layer"]) == {13} and len(table) == 2 * 2
    assert list(table["step"].unique()) == [0, 3] and list(table["token"].unique()) == [5, 6]
    assert table["entropy_concentration"].between(0, 1).all() and table["top_mass"].between(0.25, 1).all()
    with pytest.raises(ValueError, match="needs the pipeline's tokenizer"):
        concept_share(record, "castle", "coaster")
