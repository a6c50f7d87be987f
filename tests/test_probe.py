"""``dvd probe``: bad input fails before any model loads; the summary is computed from the run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dvdlib.prompts.prompt_sets import PAPER_SEEDS
from dvdlib.book.cli import main
from dvdlib.usage import seed_count, seed_list
from dvdlib.probe.figure import FIGURE
from dvdlib.probe.inputs import ProbeInputError, infer_category, probe_request, probe_seeds
from dvdlib.probe.run import ATTENTION, JUDGED, probe
from dvdlib.probe.summary import SUMMARY, verdict
from dvdlib.models.random_weights import dummy_sd_pipeline

# A model that cannot load: an input error must come first, or the message is about the model.
NO_MODEL = ["--model", "no-such-org/no-such-model", "--judge", "vlm"]
PROMPT = "Neuschwanstein Castle Coaster"


def _fails(capsys, args, *fragments) -> str:
    """Run ``dvd probe ARGS``; assert it fails with exit code 2 and every fragment in its error."""
    assert main(["probe", *args]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("dvd probe: error: "), error
    for fragment in fragments:
        assert fragment in error, error
    assert "no-such-model" not in error, error  # nothing was loaded
    return error


# --------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("option", ["--concept", "--object"])
def test_a_word_missing_from_the_prompt_is_named_with_the_prompts_words(tmp_path, capsys, option):
    words = {"--concept": "castle", "--object": "coaster", option: "mug"}
    _fails(capsys, [PROMPT, "--concept", words["--concept"], "--object", words["--object"], *NO_MODEL,
                    "--out", str(tmp_path / "out")],
           f"{option} 'mug' is not in the prompt 'Neuschwanstein Castle Coaster'",
           "the prompt's words are: Neuschwanstein, Castle, Coaster")
    assert not (tmp_path / "out").exists()


def test_a_word_must_match_whole_words(capsys):
    _fails(capsys, ["Van Gogh Mugs", "--concept", "van gogh", "--object", "mug", *NO_MODEL],
           "--object 'mug' is not in the prompt 'Van Gogh Mugs'", "Van, Gogh, Mugs")


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_prompt(capsys, prompt):
    _fails(capsys, [prompt, "--concept", "castle", "--object", "coaster", *NO_MODEL],
           f"the prompt {prompt!r} is empty")


def test_a_prompt_past_the_text_encoders_limit_names_its_token_count(capsys):
    prompt = "castle coaster " + " ".join(["blue"] * 75)  # 77 words: 79 tokens with start and end
    _fails(capsys, [prompt, "--concept", "castle", "--object", "coaster", *NO_MODEL],
           "the prompt is 79 tokens long, start and end tokens included",
           "reads at most 77", "'blue blue'", "by 2 token(s)")


@pytest.mark.parametrize("seeds, message", [
    (["--seeds", "0"], "--seeds 0: zero seeds make no images"),
    (["--seeds", "ten"], "--seeds 'ten': give a number of seeds"),
    (["--seeds", "5,6"], "give the seeds themselves as --seed-list 5,6"),
    (["--seed-list", ","], "--seed-list ',' lists zero seeds"),
    (["--seed-list", "5,5"], "seeds repeat: [5, 5]"),
])
def test_zero_or_bad_seeds(capsys, seeds, message):
    _fails(capsys, [PROMPT, "--concept", "castle", "--object", "coaster", *seeds, *NO_MODEL],
           message)


def test_the_same_words_for_concept_and_object(capsys):
    _fails(capsys, [PROMPT, "--concept", "castle", "--object", "castle coaster", *NO_MODEL],
           "--concept 'castle' and --object 'castle coaster' share words of the prompt")


def test_the_toy_judge_knows_only_the_toy_worlds_words(capsys):
    _fails(capsys, [PROMPT, "--concept", "castle", "--object", "coaster", "--model",
                    "no-such-org/no-such-model", "--judge", "toy"],
           "the toy judge sees only the concepts sunset, ocean, forest and the objects coaster",
           "concept 'castle' is not among them")
    _fails(capsys, ["sunset mug", "--concept", "sunset", "--object", "mug", "--model",
                    "no-such-org/no-such-model", "--judge", "toy"], "object 'mug' is not among them")


def test_a_toy_concept_takes_the_print_questions():
    assert infer_category("sunset", "clip") == "print"
    assert infer_category("van gogh", "toy") == "artist"


def test_a_concept_outside_the_benchmark_needs_a_category(capsys):
    _fails(capsys, ["Grandma's Teapot Coaster", "--concept", "teapot", "--object", "coaster", *NO_MODEL],
           "cannot tell which questions fit the concept 'teapot'", "pass --category")


# --------------------------------------------------------------------------------------------
# Seeds


def test_a_seed_count_takes_the_papers_seeds_then_continues_their_draw():
    assert probe_seeds(10) == list(PAPER_SEEDS)
    assert probe_seeds(12)[:10] == list(PAPER_SEEDS) and probe_seeds(12)[10:] == [10001, 10002]
    assert len(set(probe_seeds(500))) == 500
    assert seed_count("3") == 3 and probe_seeds(seed_count("3")) == [1825, 410, 4507]
    assert seed_list("7, 3") == [7, 3] and seed_list("1825") == [1825]
    with pytest.raises(ProbeInputError, match="whole number in 1..10000"):
        probe_seeds(10_001)


# --------------------------------------------------------------------------------------------
# The numbers


class ScriptedJudge:
    """A judge with set answers: the yes counts (concept, object) of each image, in the order the
    scorer shows the images (by file name, i.e. by seed)."""

    name = "scripted"

    def __init__(self, counts):
        self.counts = list(counts)

    def answer(self, items):
        out = []
        for _, questions in items:
            concept, obj = self.counts.pop(0)
            yes = {"concept": concept, "object": obj}
            out.append([q.index < yes[q.side] for q in questions])
        return out


def test_the_summary_is_computed_from_the_judges_answers_and_the_records(tmp_path):
    pipe = dummy_sd_pipeline("sd1")
    counts = [(5, 0), (4, 1), (5, 2), (3, 0)]  # seeds 5, 6, 7, 8: the concept in all, the object in none
    request = probe_request(PROMPT, "Neuschwanstein Castle", "coaster", [8, 5, 7, 6], judge="scripted",
                            tokenizer=pipe.tokenizer)
    assert (request.concept, request.category, request.threshold) == ("neuschwanstein castle", "landmark", 0.6)
    result = probe(pipe, ScriptedJudge(counts), request, tmp_path, model="dummy", steps=3, guidance=7.5)
    summary = result.summary
    assert list(result.images.seed) == [8, 5, 7, 6]  # the order given
    assert [image["dvd"] for image in summary["images"]] == [60.0, 100.0, 60.0, 64.0]  # 4 c (5 - n)
    assert summary["dvd"]["mean"] == pytest.approx(71.0)
    assert summary["dvd"]["ci_low"] < 71.0 < summary["dvd"]["ci_high"]
    assert summary["concept_presence"]["count"] == 4 and summary["object_presence"]["count"] == 0
    assert summary["dominance"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0}
    assert summary["dominates"] == "concept"
    # Attention: three steps per image, pair share = concept / (concept + object) of the record.
    shares = result.shares
    assert len(shares) == 12 and set(shares.step) == {0, 1, 2}
    np.testing.assert_allclose(shares.pair_share, shares.concept_mass / (shares.concept_mass + shares.object_mass))
    first = shares[shares.step == 0].pair_share.mean()
    assert summary["attention"]["first_step_pair_share"]["mean"] == pytest.approx(first)
    # Saturation: the first step from which the mean pair share stays >= 0.6 (the default).
    curve = shares.groupby("step").pair_share.mean()
    above = [all(curve.loc[later] >= 0.6 for later in curve.index if later >= step) for step in curve.index]
    assert summary["attention"]["saturation_step"] == (above.index(True) if any(above) else None)
    on_their_own = shares.groupby("image").pair_share.apply(lambda v: v.iloc[-1] >= 0.6).sum()
    assert summary["attention"]["images_saturated"] == on_their_own
    # "neuschwanstein castle" is five tokens against one: their summed attention outweighs it.
    assert summary["attention"]["saturation_step"] == 0 and curve.min() > 0.6
    assert summary["attention"]["tokens"] == {"concept": 5, "object": 1}
    assert summary["attention"]["even_pair_share"] == pytest.approx(5 / 6)


def test_the_verdict_follows_the_dominance_interval():
    assert verdict({"mean": -0.6, "ci_low": -0.9, "ci_high": -0.2}) == "object"
    assert verdict({"mean": 0.3, "ci_low": -0.1, "ci_high": 0.6}) == "balanced"
    assert verdict({"mean": 0.3, "ci_low": 0.1, "ci_high": 0.6}) == "concept"


# --------------------------------------------------------------------------------------------
# End to end: the command on a random-weight SD pipeline and a random-weight Qwen2-VL judge


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from dvdlib.scoring.judges.vlm import random_qwen2vl

    weights = tmp_path_factory.mktemp("dummy_sd")
    dummy_sd_pipeline("sd1").save_pretrained(weights)
    judge = tmp_path_factory.mktemp("tiny_qwen2vl")
    model, processor = random_qwen2vl("tiny")
    model.save_pretrained(judge)
    processor.save_pretrained(judge)
    return weights, judge


def test_the_command_prints_the_summary_as_json_and_keeps_its_tables_and_figure(tmp_path, capsys, models):
    weights, judge = models
    out = tmp_path / "probe"
    args = ["probe", PROMPT, "--concept", "Neuschwanstein Castle", "--object", "coaster", "--model", str(weights),
            "--judge-model", str(judge), "--seeds", "3", "--steps", "2", "--device", "cpu", "--out", str(out),
            "--json", "--no-progress"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((out / SUMMARY).read_text())
    assert (summary["concept"], summary["category"], summary["judge"]) == (
        "neuschwanstein castle", "landmark", f"qwen2-vl:{judge}")
    assert summary["seeds"] == [1825, 410, 4507] and summary["n_images"] == 3 and summary["steps"] == 2
    judged = pd.read_csv(out / JUDGED).set_index("seed").loc[summary["seeds"]]
    assert summary["dvd"]["mean"] == pytest.approx(judged.dvd_score.mean())
    assert summary["concept_presence"]["count"] == int((judged.concept_yes >= 3).sum())
    assert summary["object_presence"]["count"] == int((judged.object_yes >= 3).sum())
    assert [image["dvd"] for image in summary["images"]] == judged.dvd_score.tolist()
    assert summary["dominates"] in ("concept", "object", "balanced")
    attention = pd.read_csv(out / ATTENTION)
    assert len(attention) == 3 * 2 and attention.pair_share.between(0, 1).all()
    assert summary["attention"]["last_step_pair_share"]["mean"] == pytest.approx(
        attention[attention.step == 1].pair_share.mean())
    assert summary["attention"]["num_steps"] == 2
    assert (out / FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["files"][FIGURE] == str(out / FIGURE)

    # Another prompt into the same folder would mix two probes: refused, naming what differs.
    other = [a if a != PROMPT else "Neuschwanstein Castle Coaster Set" for a in args]
    assert main(other) == 2
    assert "were made with other settings (prompt: earlier" in capsys.readouterr().err
