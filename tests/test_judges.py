"""The judges: the paper's VLM protocol (batched = one question per call) and our CLIP judge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dvdlib.scoring.judges.base import Judge, Question
from dvdlib.scoring.judges.clip import (ClipJudge, JudgeNotFoundError as ClipNotFound, calibrate_thresholds,
                                check_thresholds)
from dvdlib.scoring.judges.vlm import (JudgeNotFoundError, QwenVLJudge, fetch_resize, is_yes,
                               random_qwen2vl)
from dvdlib.scoring.questions import questions_for


def _noise(seed: int, height: int, width: int | None = None) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width or height, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def tiny_vlm():
    return random_qwen2vl("tiny", seed=0)


@pytest.fixture(scope="module")
def items():
    # Three images of different sizes (so different numbers of image tokens) and categories.
    return [
        (_noise(1, 64), questions_for("artist", "van gogh", "coffee mug")),
        (_noise(2, 120, 90), questions_for("landmark", "big ben", "t-shirt")),
        (_noise(3, 80), questions_for("character", "pikachu", "tote bag")[:7]),
        # Questions that share words after the image, the same question twice, a lone question.
        (_noise(4, 64), [Question("object", "mug", i, f"Is there a mug {'here' if i else 'there'}?")
                         for i in range(2)] + questions_for("print", "sunset", "mug")[:1] * 2),
        (_noise(5, 64), questions_for("print", "sunset", "mug")[5:6]),
    ]


@pytest.mark.parametrize("text, yes", [
    ("Yes", True), (" yes.", True), ("YES, it is", True), ("yess", True),
    ("No", False), ("", False), ("I think yes", False), ("y", False),
])
def test_yes_means_the_answer_starts_with_yes(text, yes):
    assert is_yes(text) is yes


@pytest.mark.parametrize("size, expected", [((512, 512), (504, 504)), ((768, 768), (756, 756)),
                                            ((504, 504), (504, 504)), ((300, 200), (308, 196))])
def test_images_are_resized_to_multiples_of_28_as_qwen_vl_utils_does(size, expected):
    assert fetch_resize(Image.new("RGB", size)).size == expected


def test_batched_answers_equal_the_one_question_per_call_loop(tiny_vlm, items):
    model, processor = tiny_vlm
    loop = QwenVLJudge(model, processor, questions_per_call=1).answer_texts(items)
    assert [len(a) for a in loop] == [10, 10, 7, 4, 1]
    assert len({text for answers in loop for text in answers}) > 10  # answers depend on the input
    for per_call in (7, 40):
        assert QwenVLJudge(model, processor, questions_per_call=per_call).answer_texts(items) == loop


def test_answer_applies_the_yes_rule_to_the_decoded_text(tiny_vlm, items):
    judge = QwenVLJudge(*tiny_vlm)
    assert isinstance(judge, Judge)
    texts = judge.answer_texts(items)
    assert judge.answer(items) == [[is_yes(t) for t in answers] for answers in texts]


def test_the_judge_loads_from_a_folder_and_answers_the_same(tmp_path, tiny_vlm, items):
    model, processor = tiny_vlm
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = QwenVLJudge.from_pretrained(str(tmp_path), device="cpu")
    assert loaded.name == f"qwen2-vl:{tmp_path}"
    assert loaded.model.dtype == torch.float32  # float32 on the CPU, as the authors' scorer
    assert loaded.answer_texts(items[:1]) == QwenVLJudge(model, processor).answer_texts(items[:1])


def test_missing_judge_weights_name_the_source_and_the_download_command(tmp_path):
    with pytest.raises(JudgeNotFoundError, match=r"'no-such-org/judge' cannot be loaded .*huggingface-cli download no-such-org/judge"):
        QwenVLJudge.from_pretrained("no-such-org/judge", device="cpu")
    with pytest.raises(JudgeNotFoundError, match="from the folder"):
        QwenVLJudge.from_pretrained(str(tmp_path), device="cpu")


# --------------------------------------------------------------------------------------------
# CLIP


_CLIP_CONFIG = dict(embed_dim=16, vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16, patch_size=8),
                    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=1))


@pytest.fixture(scope="module")
def tiny_clip():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**_CLIP_CONFIG)
    return model, open_clip.image_transform(32, is_train=False), open_clip.get_tokenizer("ViT-B-32")


def test_clip_answers_count_the_thresholds_the_presence_score_exceeds(tiny_clip):
    judge = ClipJudge(*tiny_clip, thresholds={"concept": (0.1, 0.3, 0.5, 0.7, 0.9),
                                             "object": (0.2, 0.4, 0.5, 0.6, 0.8)})
    assert isinstance(judge, Judge)
    images = [_noise(seed, 48) for seed in range(6)]
    items = [(image, questions_for("artist", "van gogh", "mug")) for image in images]
    concept = judge.presence(images, ["van gogh"] * 6, "concept")
    objects = judge.presence(images, ["mug"] * 6, "object")
    assert ((0 < concept) & (concept < 1)).all() and len(set(np.round(concept, 6))) == 6
    for answers, p_concept, p_object in zip(judge.answer(items), concept, objects):
        assert answers[:5] == [p_concept > t for t in judge.thresholds["concept"]]
        assert answers[5:] == [p_object > t for t in judge.thresholds["object"]]


def test_clip_reads_subject_and_index_not_the_text(tiny_clip):
    judge = ClipJudge(*tiny_clip)
    image = _noise(0, 48)
    asked = [Question("concept", "van gogh", 4, "anything"), Question("concept", "van gogh", 0, "at all")]
    p = judge.presence([image], ["van gogh"], "concept")[0]
    assert judge.answer([(image, asked)]) == [[p > 0.9, p > 0.5]]


def test_calibrated_thresholds_give_the_asked_false_yes_rates():
    absent = np.random.default_rng(0).uniform(size=10_000)
    thresholds = calibrate_thresholds(absent)
    rates = [(absent > t).mean() for t in thresholds]
    np.testing.assert_allclose(rates, [0.5, 0.25, 0.1, 0.05, 0.01], atol=1e-3)
    with pytest.raises(ValueError, match="non-increasing"):
        calibrate_thresholds(absent, (0.1, 0.2, 0.3, 0.4, 0.5))
    with pytest.raises(ValueError, match="5 non-decreasing"):
        check_thresholds((0.9, 0.5, 0.6, 0.7, 0.8))


def test_clip_loads_from_an_open_clip_folder_and_refuses_one_without_weights(tmp_path, tiny_clip):
    from safetensors.torch import save_file

    model = tiny_clip[0]
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": _CLIP_CONFIG}))
    with pytest.raises(ClipNotFound, match="needs open_clip_config.json and a weights file"):
        ClipJudge.from_pretrained(str(tmp_path), device="cpu")
    save_file(model.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    loaded = ClipJudge.from_pretrained(str(tmp_path), device="cpu")
    images = [_noise(seed, 48) for seed in range(3)]
    np.testing.assert_allclose(loaded.presence(images, ["a", "b", "c"]),
                               ClipJudge(*tiny_clip).presence(images, ["a", "b", "c"]), rtol=1e-5)


def test_clip_weights_not_in_the_cache_are_named():
    with pytest.raises(ClipNotFound, match="'no-such-org/clip' is neither a local folder nor in the Hugging Face cache"):
        ClipJudge.from_pretrained("no-such-org/clip", device="cpu")


def test_load_judge_names_a_bad_kind_or_option_and_loads_the_toy_detector():
    from dvdlib.scoring.judges import load_judge
    from dvdlib.scoring.judges.toy import ToyJudge

    with pytest.raises(ValueError, match="unknown judge 'gpt'; accepted: vlm, clip, toy"):
        load_judge("gpt")
    with pytest.raises(ValueError, match="questions_per_call applies to the vlm judge only, not clip"):
        load_judge("clip", questions_per_call=10)
    assert isinstance(load_judge("toy"), ToyJudge)  # the shipped detector, by default
