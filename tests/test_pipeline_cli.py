"""``dvd generate`` and ``dvd score``: bad input fails early and clearly; kill -9 loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dvdlib.prompts.prompt_sets import AUTHORS_COLUMNS, builtin_prompts, save_prompts
from dvdlib.book.cli import main
from dvdlib.scoring.judges.vlm import random_qwen2vl
from dvdlib.models.random_weights import dummy_sd_pipeline

QUICK = ["--steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dummy_sd")
    dummy_sd_pipeline("sd1").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def judge_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_qwen2vl")
    model, processor = random_qwen2vl("tiny")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory, weights):
    folder = tmp_path_factory.mktemp("images")
    assert main(["generate", "--model", str(weights), "--out", str(folder), "--cases", "1-2,101",
                 "--seed-list", "1,2", "--batch-size", "2", *QUICK]) == 0
    return folder


def _fails(capsys, args, *fragments) -> str:
    """Run ``dvd ARGS``; assert it fails with every fragment in its one-line error."""
    assert main(args) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after any loading progress bars
    assert error.startswith(f"dvd {args[0]}: error: "), error
    for fragment in fragments:
        assert fragment in error, error
    return error


# --------------------------------------------------------------------------------------------
# Bad input: a clear error naming the value, exit code 2, nothing half-written


def test_unknown_model_id_offline(tmp_path, capsys):
    out = tmp_path / "out"
    _fails(capsys, ["generate", "--model", "no-such-org/no-such-model", "--out", str(out), "--cases", "1", *QUICK],
           "'no-such-org/no-such-model'", "Hugging Face cache", "huggingface-cli download no-such-org/no-such-model")
    assert not out.exists()


def test_weights_folder_without_a_unet(tmp_path, capsys, weights):
    import shutil

    broken = tmp_path / "weights"
    shutil.copytree(weights, broken, ignore=shutil.ignore_patterns("unet"))
    out = tmp_path / "out"
    _fails(capsys, ["generate", "--model", str(broken), "--out", str(out), "--cases", "1", *QUICK],
           str(broken), "unet/")
    assert not out.exists()


def test_prompt_set_with_a_missing_column(tmp_path, capsys, weights):
    csv = tmp_path / "prompts.csv"
    save_prompts(builtin_prompts().head(3), csv)
    pd.read_csv(csv).drop(columns="nm_word").to_csv(csv, index=False)
    out = tmp_path / "out"
    _fails(capsys, ["generate", "--model", str(weights), "--out", str(out), "--prompts", str(csv), *QUICK],
           "missing column(s) nm_word", "expected " + ", ".join(AUTHORS_COLUMNS))
    assert not out.exists()


def test_concept_word_absent_from_the_prompt(tmp_path, capsys, weights):
    csv = tmp_path / "prompts.csv"
    table = builtin_prompts().head(3)
    table.loc[1, "concept"] = "rembrandt"
    save_prompts(table, csv)
    _fails(capsys, ["generate", "--model", str(weights), "--out", str(tmp_path / "out"), "--prompts", str(csv),
                    *QUICK], "case 2: content 'rembrandt' is not in the prompt 'Curtain with Art by Andy Warhol'")
    _fails(capsys, ["score", "--images", str(tmp_path), "--out", str(tmp_path / "t.csv"), "--prompts", str(csv)],
           "case 2: content 'rembrandt'")
    assert not (tmp_path / "out").exists() and not (tmp_path / "t.csv").exists()


def test_seeds_that_are_not_integers(tmp_path, capsys, weights):
    _fails(capsys, ["generate", "--model", str(weights), "--out", str(tmp_path / "out"), "--seed-list", "1825,4.5",
                    *QUICK], "seed '4.5' is not a non-negative integer")
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(tmp_path, capsys, weights):
    (tmp_path / "file").write_text("a file, not a folder")
    _fails(capsys, ["generate", "--model", str(weights), "--out", str(tmp_path / "file" / "out"), "--cases", "1",
                    *QUICK], f"output folder '{tmp_path / 'file' / 'out'}' cannot be used: "
                             f"'{tmp_path / 'file'}' is a file, not a folder")


def test_image_folder_whose_cases_match_no_prompt(tmp_path, capsys, images):
    out = tmp_path / "scores.csv"
    _fails(capsys, ["score", "--images", str(images), "--out", str(out), "--cases", "200-210"],
           "no case folder matches the prompt set (cases 200-210)", "numbered 1-2, 101")
    assert not out.exists()


def test_corrupt_image_file(tmp_path, capsys, images, judge_folder):
    import shutil

    copy = tmp_path / "images"
    shutil.copytree(images, copy)
    broken = sorted(copy.glob("case002_*/seed00001.png"))[0]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "scores.csv"
    _fails(capsys, ["score", "--images", str(copy), "--out", str(out), "--judge-model", str(judge_folder),
                    "--images-per-call", "1", "--no-progress"], "cannot read image", str(broken))
    assert not out.exists()  # the table is written only when every image is judged
    assert len((tmp_path / "scores.answers.log").read_text().splitlines()) == 2  # case 1's images, kept


def test_score_writes_the_tables_and_prints_the_categories(tmp_path, capsys, images, judge_folder):
    out, questions = tmp_path / "scores.parquet", tmp_path / "questions.csv"
    assert main(["score", "--images", str(images), "--out", str(out), "--judge-model", str(judge_folder),
                 "--per-question", str(questions), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "6 images judged by qwen2-vl:" in printed and "artist" in printed and "landmark" in printed
    table = pd.read_parquet(out)
    assert len(table) == 6 and len(pd.read_csv(questions)) == 60
    assert set(table.dvd_score) <= {4.0 * c * (5 - n) for c in range(6) for n in range(6)}


def test_score_help_states_the_authors_loop_as_the_default(capsys):
    from dvdlib.scoring.judges.vlm import QwenVLJudge
    from dvdlib.scoring.judges import DEFAULT_QUESTIONS_PER_CALL

    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert DEFAULT_QUESTIONS_PER_CALL == 1
    assert "(default: 1, the authors' one-question-per-call loop)" in text
    assert "one question per generate call, as the authors' scorer does" in text
    judge = QwenVLJudge(*random_qwen2vl("tiny"))
    assert judge.questions_per_call == 1


def test_questions_per_call_belongs_to_the_vlm_judge(tmp_path, capsys, images):
    _fails(capsys, ["score", "--images", str(images), "--out", str(tmp_path / "t.csv"), "--judge", "clip",
                    "--questions-per-call", "1"], "--questions-per-call applies to the vlm judge only")


# --------------------------------------------------------------------------------------------
# kill -9 mid-run, rerun: the final table equals an uninterrupted run's


def _start(args, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}  # the tests' one torch thread
    return subprocess.Popen([sys.executable, "-m", "dvdlib.book.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def _kill_after_rows(args, log: Path, rows: int, total: int) -> None:
    process = _start(args)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if log.is_file() and log.read_bytes().count(b"\n") >= rows:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    else:
        process.kill()  # no row in time: stop it, the assertions below report what happened
    output = process.communicate()[0]
    assert process.returncode == -signal.SIGKILL, output
    committed = log.read_bytes().count(b"\n")
    assert rows <= committed < total, f"killed after {committed} of {total} rows"


def _finish(args) -> None:
    process = _start(args)
    output = process.communicate()[0]
    assert process.returncode == 0, output


@pytest.mark.slow
def test_generation_killed_mid_run_resumes_to_the_uninterrupted_manifest(tmp_path, weights):
    args = ["generate", "--model", str(weights), "--cases", "1-4", "--seed-list", "1,2,3,4", "--batch-size", "2",
            *QUICK]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    killed = tmp_path / "killed"
    _kill_after_rows([*args, "--out", str(killed)], killed / "manifest.log", rows=2, total=16)
    _finish([*args, "--out", str(killed)])
    whole = (tmp_path / "whole" / "manifest.csv").read_bytes()
    assert (killed / "manifest.csv").read_bytes() == whole
    table = pd.read_csv(killed / "manifest.csv")
    assert len(table) == 16 and not table.duplicated(["case_num", "seed"]).any()
    files = sorted(str(p.relative_to(killed)) for p in killed.rglob("*") if p.is_file())
    assert files == sorted(["generation.json", "manifest.csv", "manifest.log", *table.file])  # no leftovers


@pytest.mark.slow
def test_scoring_killed_mid_run_resumes_to_the_uninterrupted_table(tmp_path, images, judge_folder):
    args = ["score", "--images", str(images), "--judge-model", str(judge_folder), "--images-per-call", "1",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "whole.csv")]) == 0
    _kill_after_rows([*args, "--out", str(tmp_path / "killed.csv")], tmp_path / "killed.answers.log",
                     rows=1, total=6)
    _finish([*args, "--out", str(tmp_path / "killed.csv")])
    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "killed.csv")) == 6


def test_toy_prompts_are_the_print_worlds_pairs_in_one_word_order():
    from dvdlib.toyworld.prompt_set import check_toy_words, toy_prompts

    prompts = toy_prompts()
    assert prompts["prompt"].tolist() == ["sunset coaster", "sunset shirt", "sunset notebook", "sunset hat",
                                          "sunset kite"]
    assert set(prompts["category"]) == {"print"}
    check_toy_words(prompts, "the toy world's prompts")  # its own words pass


def test_toy_words_refuse_every_row_that_names_something_else():
    from dvdlib.prompts.prompt_sets import PromptSetError
    from dvdlib.toyworld.prompt_set import check_toy_words

    rows = pd.DataFrame([(1, "print", "sunset", "coaster", "sunset coaster"),
                         (2, "print", "coaster", "sunset", "coaster sunset"),
                         (3, "artist", "monet", "mug", "Monet Mug")],
                        columns=["case_num", "category", "concept", "object", "prompt"])
    with pytest.raises(PromptSetError) as err:
        check_toy_words(rows, "prompts.csv")
    message = str(err.value)
    assert "case 1" not in message  # a concept printed on an object is the toy world's own
    assert "case 2: concept 'coaster' and object 'sunset'" in message and "case 3: concept 'monet'" in message
    assert "concepts sunset, ocean, forest printed on the objects coaster, shirt, notebook, hat, kite" in message
