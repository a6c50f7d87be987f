"""Prompt files with three targets through the commands: ``dvd generate`` on a random-weight
Stable Diffusion pipeline, ``dvd score --judge vlm`` with a random-weight Qwen2-VL judge (the
who-wins matrix and the pairwise DvD in the tables it writes), and ``dvd probe --targets``
reading each target's attention at its own tokens."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dvdlib.attention.record import AttentionRecord
from dvdlib.book.cli import main
from dvdlib.models.random_weights import dummy_sd_pipeline
from dvdlib.scoring.judges.vlm import random_qwen2vl

QUICK = ["--steps", "2", "--no-progress"]
FACTORIAL_HEADER = ("case_num,condition,condition_case_num,prompt,target1_type,target1,"
                    "target1_homogeneity,target2_type,target2,target2_homogeneity,target3_type,"
                    "target3,target3_homogeneity,template_id,source")
NOTEBOOKS = "a notebook cover design that includes a notebook, a coffee mug, and a spiral notebook"
# The quirks: one word three times (the carrier's, a target's, inside another target),
# a hyphenated name, a target glued to other text, a word written apart from the prompt's.
FACTORIAL_ROWS = [
    f'1,000,1,"{NOTEBOOKS}",object,notebook,0,object,coffee mug,0,object,spiral notebook,0,f2,t',
    '2,001,1,"a notebook cover design that includes a notebook, a coffee mug, and Spider-Man",'
    'object,notebook,0,object,coffee mug,0,character,spider-man,1,f2,t',
    '3,100,1,"a poster containing Van Gogh-style artwork, a mousepad, and a bag",'
    'artist,van gogh,1,object,mouse pad,0,object,bag,0,f1,t',
]
# The same prompts in the pilot layout, with a carrier (the mug of case 3 is carrier and target).
PILOT_HEADER = ("case_num,prompt,target1_type,target1,target2_type,target2,target3_type,target3,"
                "carrier,template_id,source")
PILOT_ROWS = [
    f'1,"{NOTEBOOKS}",object,notebook,object,coffee mug,object,spiral notebook,notebook,p,t',
    '2,"a notebook cover design that includes a notebook, a coffee mug, and Spider-Man",'
    'object,notebook,object,coffee mug,character,spider-man,notebook cover,p,t',
    '3,"a poster containing Van Gogh-style artwork, a mousepad, and a bag",'
    'artist,van gogh,object,mouse pad,object,bag,poster,p,t',
]
SEEDS = ["--seed-list", "1,2"]


def dvd_formula(concept_yes, object_yes):
    return concept_yes * (5 - object_yes) / 25 * 100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    weights, judge = folder / "sd", folder / "qwen2vl"
    dummy_sd_pipeline("sd1").save_pretrained(weights)
    model, processor = random_qwen2vl("tiny")
    model.save_pretrained(judge)
    processor.save_pretrained(judge)
    factorial, pilot = folder / "factorial.csv", folder / "pilot.csv"
    factorial.write_text("\n".join([FACTORIAL_HEADER, *FACTORIAL_ROWS]) + "\n", encoding="utf-8")
    pilot.write_text("\n".join([PILOT_HEADER, *PILOT_ROWS]) + "\n", encoding="utf-8")
    images = folder / "images"
    assert main(["generate", "--model", str(weights), "--out", str(images), "--prompts",
                 str(factorial), *SEEDS, "--batch-size", "2", *QUICK]) == 0
    return {"weights": weights, "judge": judge, "factorial": factorial, "pilot": pilot,
            "images": images}


def test_generate_makes_a_target_files_images(files, capsys):
    manifest = pd.read_csv(files["images"] / "manifest.csv")
    assert sorted(zip(manifest["case_num"], manifest["seed"])) == [
        (case, seed) for case in (1, 2, 3) for seed in (1, 2)]
    assert manifest["concept"].isna().all()  # a prompt of three targets has no one concept
    prompts = pd.read_csv(files["factorial"], dtype=str).set_index("case_num")["prompt"]
    assert all(prompts[str(c)] == p for c, p in zip(manifest["case_num"], manifest["prompt"]))


def test_score_writes_presence_the_who_wins_matrix_and_pairwise_dvd(files, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["score", "--images", str(files["images"]), "--prompts", str(files["factorial"]),
                 "--judge", "vlm", "--judge-model", str(files["judge"]), "--out", str(out),
                 "--questions-per-call", "15", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "P(row present and column absent), by slot" in printed.out
    assert "target2 'mouse pad' found across spacing as 'mousepad'" in printed.err
    table = pd.read_csv(out)
    assert len(table) == 3 * 2 * 3  # prompts x seeds x targets
    for column in ("presence", "wins_over_1", "wins_over_2", "wins_over_3", "dvd_over_1",
                   "dvd_over_2", "dvd_over_3"):
        assert column in table.columns
    assert table["presence"].between(0, 1).all()
    for slot in (1, 2, 3):
        own, others = table[table["slot"] == slot], [s for s in (1, 2, 3) if s != slot]
        assert own[f"wins_over_{slot}"].isna().all() and own[f"dvd_over_{slot}"].isna().all()
        assert own[[f"wins_over_{s}" for s in others]].isin([0, 1]).all().all()
        assert own[[f"dvd_over_{s}" for s in others]].stack().between(0, 100).all()
    assert (table["yes"] == [sum(json.loads(a)) for a in table["answers"]]).all()
    # the pairs, recomputed here from each image's yes counts
    wide = table.pivot(index=["case_num", "image_name"], columns="slot", values="yes")
    pairs = pd.read_csv(tmp_path / "scores.pairs.csv")
    assert set(pairs["axis"]) == {"slot", "type"}
    assert pairs["who_wins"].between(0, 1).all() and pairs["pairwise_dvd"].between(0, 100).all()
    by_slot = pairs[pairs["axis"] == "slot"].astype({"over": int, "under": int})
    assert len(by_slot) == 6 and (by_slot["n_images"] == 6).all()
    for pair in by_slot.itertuples():
        over, under = wide[pair.over], wide[pair.under]
        assert pair.who_wins == pytest.approx(((over >= 3) & (under < 3)).mean())
        assert pair.pairwise_dvd == pytest.approx(dvd_formula(over, under).mean())
    by_type = pairs[pairs["axis"] == "type"]
    assert {("artist", "object"), ("object", "character"), ("object", "object")} <= set(
        zip(by_type["over"], by_type["under"]))
    effects = pd.read_csv(tmp_path / "scores.effects.csv")  # the factorial layout's design
    assert set(effects["strong_slot"]) == {1, 3} and effects["n_seeds"].eq(2).all()
    assert effects["effect"].between(-1, 1).all()


def test_score_judges_the_carrier_as_a_fourth_target(files, tmp_path, capsys):
    out = tmp_path / "scores.parquet"
    assert main(["score", "--images", str(files["images"]), "--prompts", str(files["pilot"]),
                 "--with-carrier", "--judge", "vlm", "--judge-model", str(files["judge"]),
                 "--out", str(out), "--questions-per-call", "20", "--cases", "1,3",
                 "--no-progress"]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 2 * 2 * 4 and "wins_over_4" in table.columns
    carriers = table[table["role"] == "carrier"]
    assert set(carriers["slot"]) == {4} and set(carriers["word"]) == {"notebook", "poster"}
    pairs = pd.read_parquet(tmp_path / "scores.pairs.parquet")
    assert len(pairs[pairs["axis"] == "slot"]) == 4 * 3
    assert not (tmp_path / "scores.effects.parquet").exists()  # the pilot layout has no design


@pytest.mark.parametrize("args, message", [
    (["--judge", "toy"], "the toy world's detector knows only its own concepts"),
    (["--per-question", "q.csv"], "--per-question applies to prompt sets of one concept"),
    (["--cases", "9"], "--cases 9: none of these cases"),
])
def test_score_refuses_what_a_target_set_cannot_take(files, tmp_path, capsys, args, message):
    assert main(["score", "--images", str(files["images"]), "--prompts", str(files["factorial"]),
                 "--out", str(tmp_path / "t.csv"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_generate_refuses_a_target_file_for_the_toy_world(files, tmp_path, capsys):
    assert main(["generate", "--model", "toy", "--out", str(tmp_path / "out"), "--prompts",
                 str(files["factorial"]), *QUICK]) == 2
    assert "names several targets per prompt" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_probe_reads_each_targets_attention_at_its_own_tokens(files, tmp_path, capsys):
    out = tmp_path / "probe"
    prompt = "a mug design with a mug, Hokusai-style waves and Batman"
    assert main(["probe", prompt, "--targets", "hokusai", "object:mug", "batman", "--model",
                 str(files["weights"]), "--judge-model", str(files["judge"]), "--seeds", "2",
                 "--device", "cpu", "--out", str(out), "--json", *QUICK]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [t["type"] for t in summary["targets"]] == ["artist", "object", "character"]
    assert summary["n_images"] == 2 and 0 <= summary["all_present"] <= 1
    assert len(summary["who_wins"]) == len(summary["pairwise_dvd"]) == 6
    shares = pd.read_csv(out / "attention.csv")
    assert len(shares) == 2 * 2 * 3  # seeds x steps x targets
    totals = shares.groupby(["seed", "step"])["target_share"].sum()
    assert np.allclose(totals, 1)
    # the mug target is read at the second "mug" (the first is the carrier's), from the record
    manifest = pd.read_csv(out / "images" / "manifest.csv")
    row = manifest.iloc[0]
    record = AttentionRecord.load(out / "images" / row["record_dir"] / "attention.npz")
    tokens = [t.replace("</w>", "") for t in record.prompts[0].tokens]
    mugs = [i for i, token in enumerate(tokens) if token == "mug"]
    assert len(mugs) == 2
    mass = record.mass()[int(row["record_image"])].nanmean(dim=2).mean(dim=1)  # [step, token]
    own = shares[shares["seed"] == row["seed"]].set_index(["step", "word"])["mass"]
    assert own.loc[(0, "mug")] == pytest.approx(float(mass[0, mugs[1]]), rel=1e-3)
    assert own.loc[(0, "mug")] != pytest.approx(float(mass[0, mugs[0]]), rel=1e-3)
    assert own.loc[(1, "batman")] == pytest.approx(float(mass[1, tokens.index("batman")]),
                                                   rel=1e-3)


def test_probe_takes_a_case_of_a_target_file(files, tmp_path, capsys):
    assert main(["probe", "--prompts", str(files["pilot"]), "--case", "3", "--with-carrier",
                 "--model", str(files["weights"]), "--judge-model", str(files["judge"]),
                 "--seeds", "1", "--device", "cpu", *QUICK]) == 0
    report = capsys.readouterr().out
    assert "'a poster containing Van Gogh-style artwork, a mousepad, and a bag'" in report
    assert "4. 'poster' (object)" in report and "1 over 4" in report


@pytest.mark.parametrize("args, message", [
    (["a mug with Monet", "--targets", "monet"], "give at least two targets"),
    (["a mug with Monet", "--targets", "monet", "mug", "--concept", "monet"],
     "--concept applies to a probe of a concept and an object"),
    (["a mug with Monet", "--targets", "monet", "mug", "--judge", "toy"], "the toy judge knows"),
    (["--prompts", "{pilot}"], "say which prompt with --case N"),
    (["--prompts", "{pilot}", "--case", "9"], "--case 9: none of these cases"),
    (["a mug with Monet", "--concept", "monet"], "give --object"),
])
def test_probe_refuses_a_bad_request_of_several_targets(files, tmp_path, capsys, args, message):
    args = [a.format(pilot=files["pilot"]) for a in args]
    assert main(["probe", *args, "--model", "sd1.4", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not any(tmp_path.iterdir())
