"""A catalogue of bad inputs, as a new user brings them: each gets one line naming the bad value,
exit code 2 from the command line (or the library's exception type), and leaves no file behind.

The numbered items of issue 14 are marked ``#N`` in the case ids.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from dvdlib.prompts import prompt_sets
from dvdlib.book import cli
from dvdlib.prompts.prompt_sets import AUTHORS_COLUMNS, COLUMNS, PromptSetError, builtin_prompts, case_folder
from dvdlib.toyworld.zoo import DETECTOR_FILE, MANIFEST, ZooError, shipped_folder

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
HEADER = ",".join(AUTHORS_COLUMNS) + "\n"  # a prompt file's header is the authors'
LONG = " ".join(["very"] * 80)


def _truncated_zoo(folder: Path, damaged: str) -> Path:
    """A copy of the shipped zoo (links to its files) with ``damaged`` cut to a quarter."""
    folder.mkdir()
    for source in shipped_folder().iterdir():
        if source.name == damaged:
            data = source.read_bytes()
            (folder / source.name).write_bytes(data[:len(data) // 4])
        else:
            (folder / source.name).symlink_to(source)
    return folder


def _csv(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Every bad (and a few good) input file the catalogue hands to the commands."""
    folder = tmp_path_factory.mktemp("inputs")
    good = builtin_prompts().iloc[[0, 1, 100]]
    prompt_sets.save_prompts(good, folder / "good.csv")
    p = {"good": folder / "good.csv", "dir": folder}
    p["nonutf8"] = _csv(folder, "nonutf8.csv", HEADER.encode() + b"1,artist,monet,mug,Monet Mug \xff\n")
    p["header_only"] = _csv(folder, "header_only.csv", HEADER)
    p["short_row"] = _csv(folder, "short_row.csv", HEADER + "1,artist,rembrandt\n")
    p["long_row"] = _csv(folder, "long_row.csv", HEADER + "1,artist,monet,mug,Monet Mug,extra\n")
    p["painter"] = _csv(folder, "painter.csv", HEADER + "1,painter,monet,mug,Monet Mug\n")
    p["same_word"] = _csv(folder, "same_word.csv", HEADER + "1,artist,monet,monet,Monet\n")
    p["huge_case"] = _csv(folder, "huge_case.csv",
                          HEADER + "99999999999999999999,artist,monet,mug,Monet Mug\n")
    p["no_nm_word"] = _csv(folder, "no_nm_word.csv", "case_num,content_type,content,prompt\n"
                                                     "1,artist,monet,Monet Mug\n")
    p["duplicate"] = _csv(folder, "duplicate.csv", HEADER + "7,artist,monet,mug,Monet Mug\n"
                                                            "7,artist,monet,cup,Monet Cup\n")
    p["missing_word"] = _csv(folder, "missing_word.csv", HEADER + "1,artist,rembrandt,mug,Monet Mug\n")
    p["past_limit"] = _csv(folder, "past_limit.csv", HEADER + f"1,artist,monet,mug,Monet {LONG} Mug\n")
    p["bad_case"] = _csv(folder, "bad_case.csv", HEADER + "x1,artist,monet,mug,Monet Mug\n")
    p["empty_prompt"] = _csv(folder, "empty_prompt.csv", HEADER + "1,artist,monet,mug,   \n")
    p["sunset_notebook"] = _csv(folder, "sunset_notebook.csv", HEADER + "1,print,sunset,notebook,sunset notebook\n")
    p["bad_json"] = _csv(folder, "questions.json", "{\"format\": ")
    p["file"] = _csv(folder, "afile", "a file, not a folder")
    # A saved pipeline of a kind dvdlib has no family for (only its index: refused before loading).
    (folder / "kandinsky").mkdir()
    _csv(folder / "kandinsky", "model_index.json", '{"_class_name": "KandinskyV22Pipeline"}')
    p["kandinsky"] = folder / "kandinsky"
    # Toy images as `dvd generate --model toy` lays them out (one tiny picture each).
    toy_images = folder / "toy_images"
    for case, prompt in ((1, "sunset coaster"), (2, "sunset shirt")):
        (toy_images / case_folder(case, prompt)).mkdir(parents=True)
        Image.new("RGB", (32, 32), "white").save(toy_images / case_folder(case, prompt) / "seed00001.png")
    p["toy_images"] = toy_images
    # One toy picture that cannot be judged: a PNG whose header claims 30000 x 30000 pixels, a
    # 32-bit greyscale one (no white level); and a folder named like a table.
    for name, write in (("bomb_images", _bomb_png), ("grey32_images", _grey32_png)):
        (folder / name / case_folder(1, "sunset coaster")).mkdir(parents=True)
        write(folder / name / case_folder(1, "sunset coaster") / "seed00001.png")
        p[name] = folder / name
    (folder / "folder.csv").mkdir()
    p["folder_csv"] = folder / "folder.csv"
    p["targets"] = _csv(folder, "targets.csv", "case_num,prompt,target1_type,target1,target2_type,"
                        "target2,target3_type,target3,carrier,template_id,source\n"
                        '1,"a poster combining Monet, Big Ben, and Batman",artist,monet,landmark,'
                        "big ben,character,batman,poster,t1,ours\n")
    # Images in folders named after the built-in prompts (any picture: the judge must refuse first).
    sd_images = folder / "sd_images"
    for row in good.itertuples():
        (sd_images / case_folder(row.case_num, row.prompt)).mkdir(parents=True)
        Image.new("RGB", (32, 32), "white").save(sd_images / case_folder(row.case_num, row.prompt) / "a.png")
    p["sd_images"] = sd_images
    p["zoo_detector"] = _truncated_zoo(folder / "zoo_detector", DETECTOR_FILE)
    p["zoo_k1"] = _truncated_zoo(folder / "zoo_k1", "k1.safetensors")
    p["zoo_json"] = _truncated_zoo(folder / "zoo_json", MANIFEST)
    p["sd_ranking"] = _sd_ranking(folder / "sd_ranking.json")  # issue 24
    return p


def _bomb_png(path: Path) -> None:
    """A valid PNG whose header claims 30000 x 30000 RGB pixels (Pillow's bomb limit: 179M)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def _grey32_png(path: Path) -> None:
    """32-bit greyscale under a .png name (PNG holds at most 16 bits: TIFF inside; Pillow reads
    a file by its content)."""
    Image.new("I", (32, 32), 70000).save(path, format="TIFF")
def _sd_ranking(path: Path) -> Path:
    """A head ranking made on a (random-weight) SD 1.x UNet: it fits no toy model."""
    from dvdlib.attention.layers import cross_attention_layers
    from dvdlib.interventions.heads import HeadRanking, layout_of, random_order
    from dvdlib.models.random_weights import random_unet

    layout = layout_of(cross_attention_layers(random_unet("sd1", 32)))
    return HeadRanking("sd1.4", layout, tuple(random_order(layout))).save(path)


def _files(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


# --------------------------------------------------------------------------------------------
# The command line: (case id, arguments with {placeholders}, fragments of the one error line)

CLI = [
    # dvd generate: prompt files
    ("generate-non-utf8-#4", "generate --model toy --out {out} --prompts {nonutf8}",
     ["nonutf8.csv, line 2", "byte 0xff", "UTF-8"]),
    ("generate-header-only-#5", "generate --model toy --out {out} --prompts {header_only}",
     ["header_only.csv", "no prompt rows"]),
    ("generate-three-fields-#6", "generate --model toy --out {out} --prompts {short_row}",
     ["short_row.csv, row 2", "3 fields, the header has 5"]),
    ("generate-six-fields-#7", "generate --model toy --out {out} --prompts {long_row}",
     ["long_row.csv, row 2", "6 fields, the header has 5"]),
    ("generate-unknown-category", "generate --model sd1.4 --out {out} --prompts {painter}",
     ["unknown value 'painter'", "accepted: artist, landmark, character"]),
    ("generate-missing-column", "generate --model sd1.4 --out {out} --prompts {no_nm_word}",
     ["missing column(s) nm_word"]),
    ("generate-duplicate-case", "generate --model sd1.4 --out {out} --prompts {duplicate}",
     ["duplicate case number 7"]),
    ("generate-word-not-in-prompt", "generate --model sd1.4 --out {out} --prompts {missing_word}",
     ["content 'rembrandt' is not in the prompt 'Monet Mug'", "its tokens: Monet · Mug"]),
    ("generate-object-past-77-tokens-#8", "generate --model sd1.4 --out {out} --prompts {past_limit}",
     ["case 1: object", "'Mug'", "past the 77-token limit"]),
    ("generate-object-past-77-tokens-recorded-#8",
     "generate --model sd1.4 --out {out} --prompts {past_limit} --record-attention",
     ["'Mug'", "past the 77-token limit"]),
    ("generate-bad-case-number", "generate --model sd1.4 --out {out} --prompts {bad_case}",
     ["'x1' is not a positive integer"]),
    ("generate-empty-prompt", "generate --model sd1.4 --out {out} --prompts {empty_prompt}",
     ["column prompt: empty value"]),
    ("generate-missing-prompt-file", "generate --model toy --out {out} --prompts {dir}/nope.csv",
     ["prompt file not found", "nope.csv"]),
    ("generate-toy-model-sd-prompts-#17", "generate --model toy --out {out} --prompts {good}",
     ["draws only the concepts sunset, ocean, forest printed on the objects coaster", "concept 'Amedeo Modigliani'"]),
    # dvd generate: options
    ("generate-relative-missing-folder-#11", "generate --model ./models/sd14 --out {out} --cases 1",
     ["model folder './models/sd14' does not exist"]),
    ("generate-uncached-hub-id", "generate --model no-such-org/no-such-model --out {out} --cases 1",
     ["'no-such-org/no-such-model'", "never downloads", "huggingface-cli download"]),
    ("generate-unknown-toy-model", "generate --model toy:k99 --out {out}", ["unknown toy model 'k99'"]),
    ("generate-seed-not-integer", "generate --model toy --out {out} --seed-list 1,x",
     ["--seed-list '1,x': seed 'x' is not a non-negative integer"]),
    ("generate-seeds-repeat", "generate --model toy --out {out} --seed-list 3,3", ["seeds repeat: [3, 3]"]),
    ("generate-seeds-as-a-list", "generate --model toy --out {out} --seeds 3,4",
     ["--seeds is a number of seeds in every command", "give the seeds themselves as --seed-list 3,4"]),
    ("generate-seeds-and-a-list", "generate --model toy --out {out} --seeds 3 --seed-list 3,4",
     ["argument --seed-list: not allowed with argument --seeds"]),
    ("generate-zero-steps", "generate --model toy --out {out} --steps 0", ["--steps must be at least 1, got 0"]),
    ("generate-zero-batch", "generate --model toy --out {out} --batch-size 0",
     ["--batch-size must be at least 1, got 0"]),
    ("generate-size-not-multiple-of-8", "generate --model toy --out {out} --size 12",
     ["--size 12: must be a positive multiple of 8"]),
    ("generate-reversed-case-range", "generate --model toy --out {out} --cases 5-2",
     ["'5-2' is not a case number or a range"]),
    ("generate-case-not-in-set", "generate --model toy --out {out} --cases 999",
     ["--cases 999: none of these cases"]),
    ("generate-out-under-a-file", "generate --model toy --out {file}/out",
     ["afile/out' cannot be used", "afile' is a file, not a folder"]),
    ("generate-unknown-dtype", "generate --model toy --out {out} --dtype float64",
     ["invalid choice: 'float64'", "float32"]),
    ("generate-steps-not-a-number", "generate --model toy --out {out} --steps many",
     ["invalid int value: 'many'"]),
    # dvd score
    ("score-truncated-detector-#1", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--judge-model {zoo_detector}", ["zoo_detector/detector.safetensors", "damaged or truncated"]),
    ("score-truncated-zoo-manifest-#3", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--judge-model {zoo_json}", ["zoo_json/toyworld.json is not valid JSON", "damaged or truncated"]),
    ("score-no-zoo-folder", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--judge-model {dir}/nozoo", ["no toy-world zoo at", "nozoo"]),
    ("score-folders-of-other-prompts-#10", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--prompts {sunset_notebook}", ["case001_sunset_coaster is case 1, whose prompt is 'sunset notebook'"]),
    ("score-toy-judge-sd-prompts-#14", "score --images {sd_images} --out {out}/t.csv --judge toy "
     "--prompts {good}", ["draws only the concepts", "'Amedeo Modigliani'"]),
    ("score-out-under-a-file-#13", "score --images {toy_images} --out {file}/score.csv --judge toy",
     ["table '", "afile/score.csv' cannot be written", "it is a file, not a folder"]),
    ("score-table-suffix", "score --images {toy_images} --out {out}/t.xlsx --judge toy",
     ["'.xlsx'", "accepted: .csv, .parquet"]),
    ("score-missing-image-folder", "score --images {dir}/noimages --out {out}/t.csv --judge toy",
     ["image folder not found", "noimages"]),
    ("score-images-match-no-case", "score --images {toy_images} --out {out}/t.csv --judge toy --cases 4",
     ["no case folder matches the prompt set (cases 4)", "numbered 1-2"]),
    ("score-zero-images-per-call", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--images-per-call 0", ["--images-per-call must be at least 1, got 0"]),
    ("score-missing-question-file", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--questions {dir}/nope.json", ["question file not found", "nope.json"]),
    ("score-broken-question-file", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--questions {bad_json}", ["questions.json: not valid JSON"]),
    ("score-questions-per-call-not-vlm", "score --images {sd_images} --out {out}/t.csv --judge clip "
     "--questions-per-call 1", ["--questions-per-call applies to the vlm judge only, not clip"]),
    ("score-unknown-judge", "score --images {toy_images} --out {out}/t.csv --judge gpt",
     ["invalid choice: 'gpt'", "vlm"]),
    ("score-non-utf8-prompts-#4", "score --images {toy_images} --out {out}/t.csv --prompts {nonutf8}",
     ["nonutf8.csv, line 2", "byte 0xff"]),
    ("score-header-only-#5", "score --images {toy_images} --out {out}/t.csv --prompts {header_only}",
     ["no prompt rows"]),
    # dvd probe
    ("probe-out-under-a-file-#18", "probe 'sunset coaster' --concept sunset --object coaster "
     "--seeds 1 --out {file}/probe", ["afile/probe", "afile' is a file, not a folder"]),
    ("probe-zero-seeds", "probe 'sunset coaster' --concept sunset --object coaster --seeds 0",
     ["--seeds 0: zero seeds"]),
    ("probe-seeds-as-a-list", "probe 'sunset coaster' --concept sunset --object coaster "
     "--seeds 1825,410", ["--seeds is a number of seeds", "--seed-list 1825,410"]),
    ("probe-empty-prompt", "probe '' --concept sunset --object coaster", ["the prompt '' is empty"]),
    ("probe-word-not-in-prompt", "probe 'sunset coaster' --concept sunset --object shirt",
     ["--object 'shirt' is not in the prompt"]),
    ("probe-threshold-out-of-range", "probe 'sunset coaster' --concept sunset --object coaster "
     "--threshold 1.5", ["--threshold 1.5: must be between 0 and 1"]),
    ("probe-zero-steps", "probe 'sunset coaster' --concept sunset --object coaster --steps 0",
     ["--steps must be at least 1, got 0"]),
    ("probe-size-not-multiple-of-8", "probe 'sunset coaster' --concept sunset --object coaster "
     "--size 7", ["--size 7: must be a positive multiple of 8"]),
    ("probe-toy-judge-other-words", "probe 'Monet Mug' --concept monet --object mug --judge toy",
     ["the toy judge sees only the concepts sunset", "concept 'monet' and object 'mug' are not among them"]),
    ("probe-prompt-past-limit", f"probe 'sunset {LONG} coaster' --concept sunset --object coaster",
     ["the text encoder reads at most 77"]),
    ("probe-same-words", "probe 'sunset coaster' --concept sunset --object sunset",
     ["share words of the prompt"]),
    # dvd run / dvd sweep: parameters checked before anything runs
    ("book-no-jobs", "book --jobs 0", ["argument --jobs", "'0' is not a whole number >= 1"]),
    ("book-nan-jobs", "book --jobs nan", ["argument --jobs", "'nan' is not a whole number >= 1"]),
    ("run-negative-top-n-#9", "run {book}/01_dominancebench.ipynb -p top_n -5 --results {out}",
     ["'top_n'", "-5 is out of range", "accepted: >= 1"]),
    ("run-unknown-operator-#12", "run {book}/04_head_ablation.ipynb -p operator foo --results {out}",
     ["'operator'", "'foo' is not an operator of model 'toy:k1'", "accepted: zero, mean, scale"]),
    ("run-mask-operator-on-a-unet-23.11", "run {book}/04_head_ablation.ipynb -p operator mask "
     "--results {out}", ["'operator'", "'mask' is not an operator of model 'toy:k1'",
                         "accepted: zero, mean, scale"]),
    ("run-truncated-model-in-zoo-#2", "run {book}/03_attention_saturation.ipynb -p zoo_folder {zoo_k1} "
     "--results {out}", ["'zoo_folder'", "zoo_k1/k1.safetensors", "damaged or truncated"]),
    ("run-bench-csv-with-toy-model-#16", "run {book}/03_attention_saturation.ipynb -p bench_csv {good} "
     "--results {out}", ["'bench_csv'", "does not apply", "'toy:k1' (a toy model)",
                         "the toy world's own prompts"]),
    ("run-header-only-bench-csv", "run {book}/01_dominancebench.ipynb -p bench_csv {header_only} "
     "--results {out}", ["'bench_csv'", "no prompt rows"]),
    ("run-non-utf8-bench-csv", "run {book}/01_dominancebench.ipynb -p bench_csv {nonutf8} "
     "--results {out}", ["'bench_csv'", "byte 0xff"]),
    ("run-unknown-parameter", "run {book}/01_dominancebench.ipynb -p top 5 --results {out}",
     ["unknown parameter 'top'", "top_n (int)"]),
    ("run-wrong-type", "run {book}/01_dominancebench.ipynb -p top_n many --results {out}",
     ["'top_n'", "takes int", "'many'"]),
    ("run-too-many-seeds", "run {book}/04_head_ablation.ipynb -p n_seeds 11 --results {out}",
     ["'n_seeds'", "11 is out of range", "<= 10"]),
    ("run-fraction-above-one", "run {book}/04_head_ablation.ipynb -p head_fractions 0.1,1.5 "
     "--results {out}", ["'head_fractions'", "'1.5' is not a fraction in (0, 1)"]),
    ("run-unknown-ranking", "run {book}/04_head_ablation.ipynb -p rank_by heat --results {out}",
     ["'rank_by'", "'heat' is not one of the choices"]),
    ("run-scale-factor-without-scale", "run {book}/04_head_ablation.ipynb -p scale_factor 2.0 "
     "--results {out}", ["'scale_factor'", "does not apply", "operator is 'zero'"]),
    ("run-unknown-toy-model", "run {book}/03_attention_saturation.ipynb -p model toy:k99 --results {out}",
     ["'model'", "no model 'k99'", "kinf"]),
    ("run-relative-missing-model-folder-#11", "run {book}/03_attention_saturation.ipynb -p model "
     "./models/sd14 --results {out}", ["'model'", "model folder './models/sd14' does not exist"]),
    ("run-threshold-above-one", "run {book}/03_attention_saturation.ipynb -p saturation_threshold "
     "1.5 --results {out}", ["'saturation_threshold'", "1.5 is out of range", "<= 1"]),
    ("run-judge-with-toy-zoo", "run {book}/02_data_diversity.ipynb -p judge clip --results {out}",
     ["'judge'", "does not apply", "judged by its detector"]),
    ("run-unknown-dtype", "run {book}/03_attention_saturation.ipynb -p dtype float64 --results {out}",
     ["'dtype'", "'float64' is not one of the choices"]),
    ("run-missing-zoo-folder", "run {book}/toy_world.ipynb -p zoo_folder {dir}/nozoo --results {out}",
     ["'zoo_folder'", "nozoo' does not exist"]),
    ("run-zero-seeds-per-prompt", "run {book}/toy_world.ipynb -p n_seeds 0 --results {out}",
     ["'n_seeds'", "0 is out of range"]),
    ("run-no-such-chapter", "run nochapter --results {out}", ["no notebook 'nochapter'"]),
    ("run-parameter-twice", "run {book}/01_dominancebench.ipynb -p top_n 1 -p top_n 2 --results {out}",
     ["'top_n' given more than once"]),
    ("sweep-negative-value", "sweep {book}/01_dominancebench.ipynb --grid top_n=4,-1 --results {out}",
     ["'top_n'", "-1 is out of range"]),
    ("sweep-bad-grid", "sweep {book}/01_dominancebench.ipynb --grid top_n --results {out}",
     ["bad --grid 'top_n'"]),
    ("sweep-value-twice", "sweep {book}/01_dominancebench.ipynb --grid top_n=4,4 --results {out}",
     ["lists the value 4 twice"]),
    ("sweep-grid-and-fixed", "sweep {book}/01_dominancebench.ipynb --grid top_n=4 -p top_n 5 "
     "--results {out}", ["both with -p and --grid: top_n"]),
    # issue 25: values that passed silently
    ("generate-guidance-nan-25.1", "generate --model toy --out {out} --guidance nan --seeds 1",
     ["--guidance nan", "a finite number of at least 0"]),
    ("generate-guidance-inf-25.2", "generate --model toy --out {out} --guidance inf --seeds 1",
     ["--guidance inf", "a finite number"]),
    ("probe-guidance-nan-25.1", "probe 'sunset coaster' --concept sunset --object coaster "
     "--guidance nan", ["--guidance nan", "a finite number"]),
    ("generate-empty-out-25.5", "generate --model toy --out '' --seeds 1",
     ["output folder '' is empty"]),
    ("generate-empty-cases-25.6", "generate --model toy --out {out} --cases '' --seeds 1",
     ["--cases ''"]),
    ("generate-huge-case-range-25.6", "generate --model toy --out {out} --cases 1-3000000000",
     ["--cases '1-3000000000'", "999,999,999"]),
    ("generate-huge-seed-count-25.6", "generate --model toy --out {out} --seeds 3000000000",
     ["--seeds 3000000000", "at most 100,000"]),
    ("generate-huge-case-number-25.7", "generate --model sd1.4 --out {out} --prompts {huge_case}",
     ["99999999999999999999", "999,999,999"]),
    ("generate-concept-is-object-25.8", "generate --model sd1.4 --out {out} --prompts {same_word}",
     ["both 'monet'", "two different things"]),
    ("probe-model-unknown-25.15", "probe 'castle mug' --concept castle --object mug --model sd9",
     ["model 'sd9'"]),
    ("sweep-summary-not-csv-25.10", "sweep {book}/01_dominancebench.ipynb --grid top_n=3 "
     "--summary {out}/s.parquet", ["'", "s.parquet'", "ending in .csv"]),
    ("run-guidance-inf-25.2", "run {book}/03_attention_saturation.ipynb -p guidance inf "
     "--results {out}", ["'guidance'", "inf is not a finite number"]),
    ("run-threshold-nan-25.14", "run {book}/03_attention_saturation.ipynb -p saturation_threshold "
     "nan --results {out}", ["'saturation_threshold'", "nan is not a finite number"]),
    ("run-guidance-sweep-inf-25.2", "run {book}/toy_world.ipynb -p guidance_sweep 1,inf "
     "--results {out}", ["'guidance_sweep'", "'inf' of '1,inf' is not a finite guidance scale"]),
    ("score-32-bit-grey-image-25.3", "score --images {grey32_images} --out {out}/t.csv --judge toy "
     "--no-progress", ["grey32_images/case001_sunset_coaster/seed00001.png", "mode 'I'",
                       "no white level"]),
    ("score-decompression-bomb-25.4", "score --images {bomb_images} --out {out}/t.csv --judge toy "
     "--no-progress", ["bomb_images/case001_sunset_coaster/seed00001.png", "900000000 pixels",
                       "decompression bomb"]),
    ("probe-empty-out-25.5", "probe 'sunset coaster' --concept sunset --object coaster --out ''",
     ["argument --out: '' is empty", "name a folder"]),
    ("run-empty-results-25.5", "run {book}/01_dominancebench.ipynb --results ''",
     ["argument --results: '' is empty"]),
    ("sweep-empty-results-25.5", "sweep {book}/01_dominancebench.ipynb --grid top_n=3 --results ''",
     ["argument --results: '' is empty"]),
    ("score-empty-out-25.5", "score --images {toy_images} --out '' --judge toy",
     ["table file '.' is a folder"]),
    ("generate-huge-seed-25.6", "generate --model toy --out {out} --seed-list 1,99999999999999999999",
     ["--seed-list", "99999999999999999999", "up to 4,294,967,295"]),
    ("score-empty-cases-25.6", "score --images {toy_images} --out {out}/t.csv --judge toy --cases ''",
     ["--cases ''"]),
    ("score-huge-case-number-25.7", "score --images {sd_images} --out {out}/t.parquet --judge clip "
     "--prompts {huge_case}", ["99999999999999999999", "999,999,999"]),
    ("score-concept-is-object-25.8", "score --images {sd_images} --out {out}/t.csv --judge clip "
     "--prompts {same_word}", ["both 'monet'", "two different things"]),
    ("run-concept-is-object-25.8", "run {book}/01_dominancebench.ipynb -p bench_csv {same_word} "
     "--results {out}", ["'bench_csv'", "both 'monet'"]),
    ("generate-device-missing-25.9", "generate --model toy --out {out} --seeds 1 --device cuda:64",
     ["--device 'cuda:64'"]),
    ("probe-device-missing-25.9", "probe 'sunset coaster' --concept sunset --object coaster "
     "--device cuda:64", ["--device 'cuda:64'"]),
    ("score-device-missing-25.9", "score --images {toy_images} --out {out}/t.csv --judge toy "
     "--device cuda:64", ["--device 'cuda:64'"]),
    ("run-device-missing-25.9", "run {book}/03_attention_saturation.ipynb -p device cuda:64 "
     "--results {out}", ["'device'", "'cuda:64'"]),
    ("sweep-summary-xlsx-25.10", "sweep {book}/01_dominancebench.ipynb --grid top_n=3 "
     "--summary {out}/s.xlsx", ["s.xlsx'", "ending in .csv"]),
    ("run-model-empty-25.14", "run {book}/03_attention_saturation.ipynb -p model '' --results {out}",
     ["'model'", "'' is empty", "accepted: a toy model"]),
    ("run-questions-file-missing-25.14", "run {book}/04_head_ablation.ipynb -p questions_file "
     "{dir}/nope.json --results {out}", ["'questions_file'", "question file not found",
                                        "nope.json"]),
    ("run-questions-file-broken-25.14", "run {book}/03_attention_saturation.ipynb -p questions_file "
     "{bad_json} --results {out}", ["'questions_file'", "questions.json: not valid JSON"]),
    ("run-batch-size-not-dividing-25.14", "run {book}/03_attention_saturation.ipynb -p batch_size 3 "
     "--results {out}", ["'batch_size'", "3 does not divide n_seeds = 16", "1, 2, 4, 8, 16"]),
    ("run-batch-size-not-dividing-given-seeds-25.14", "run {book}/03_attention_saturation.ipynb "
     "-p n_seeds 6 -p batch_size 4 --results {out}", ["'batch_size'", "4 does not divide n_seeds = 6"]),
    ("run-head-fraction-one-25.14", "run {book}/04_head_ablation.ipynb -r head_fractions 1 "
     "--results {out}", ["'head_fractions'", "'1' is not a fraction in (0, 1)"]),
    ("score-out-is-a-folder-25.15", "score --images {toy_images} --out {folder_csv} --judge toy",
     ["folder.csv' is a folder", "name a file ending in .csv"]),
    ("generate-model-unknown-25.15", "generate --model sd9 --out {out}", ["model 'sd9'"]),
    # issue 25: the three-target sets
    ("run-targets-csv-not-a-target-file", "run {book}/01_dominancebench.ipynb -p targets_csv {good} "
     "--results {out}", ["'targets_csv'", "good.csv: missing column(s) carrier, target1_type",
                         "a two-target DominanceBench file"]),
    ("run-targets-csv-missing", "run {book}/01_dominancebench.ipynb -p targets_csv {dir}/nope.csv "
     "--results {out}", ["'targets_csv'", "prompt file not found", "nope.csv"]),
    ("run-bench-csv-a-target-file", "run {book}/01_dominancebench.ipynb -p bench_csv {targets} "
     "--results {out}", ["'bench_csv'", "it names targets (target1, ...)"]),
    ("generate-targets-toy-model", "generate --model toy --out {out} --prompts {targets}",
     ["--prompts", "names several targets per prompt", "give a real model"]),
    ("score-targets-toy-judge", "score --images {sd_images} --out {out}/t.csv --judge toy "
     "--prompts {targets}", ["--judge toy", "judge a target set with vlm or clip"]),
    ("score-with-carrier-no-targets", "score --images {sd_images} --out {out}/t.csv --judge clip "
     "--with-carrier", ["--with-carrier applies to a prompt file with several targets"]),
    ("probe-one-target", "probe 'a mug with Monet' --targets monet --model sd1.4",
     ["give at least two targets"]),
    ("probe-targets-and-concept", "probe 'a mug with Monet' --targets monet mug --concept monet "
     "--model sd1.4", ["--concept applies to a probe of a concept and an object"]),
    # issue 24: the rescue's interventions, strengths and head rankings
    ("probe-rescue-unknown-intervention-24.1",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--interventions boost,magic",
     ["unknown intervention 'magic'", "accepted: boost, cap, heads"]),
    ("probe-rescue-boost-below-one-24.2",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--strength boost=0.5",
     ["object boost c 0.5", "accepted: a number >= 1"]),
    ("probe-rescue-tau-zero-24.3",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--strength cap=0",
     ["concept cap tau 0", "accepted: a number in (0, 1]"]),
    ("probe-rescue-tau-above-one-24.4",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--strength cap=1.5",
     ["concept cap tau 1.5", "(0, 1]"]),
    ("probe-rescue-more-heads-than-the-model-24.5",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--strength heads=29",
     ["top-k heads ablated k 29", "a whole number from 0 to 28"]),
    ("probe-rescue-ranking-of-another-model-24.6",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--head-ranking {sd_ranking}",
     ["head ranking made on sd1.4 (16 layers, 128 heads)",
      "does not fit toy:k1 (7 layers, 28 heads)"]),
    ("probe-rescue-strength-without-value-24.7",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--strength boost",
     ["--strength 'boost'", "NAME=NUMBER"]),
    ("probe-rescue-margin-nan-24.8",
     "probe 'sunset coaster' --concept sunset --object coaster --rescue "
     "--margin nan", ["--margin nan", "[0, 100)"]),
    ("run-rescue-boost-below-one-24.9", "run {book}/05_rescue.ipynb -p boost 0.5 "
     "--results {out}",
     ["'boost'", "0.5 is out of range", "accepted: >= 1"]),
    ("run-rescue-tau-zero-24.10", "run {book}/05_rescue.ipynb -p cap_tau 0 --results {out}",
     ["'cap_tau'", "out of range", "> 0 and <= 1"]),
    ("run-rescue-more-heads-than-the-model-24.11", "run {book}/05_rescue.ipynb -p heads_k 29 "
     "--results {out}", ["'heads_k'", "heads k 29", "from 0 to 28"]),
    ("run-rescue-ranking-of-another-model-24.12", "run {book}/05_rescue.ipynb -p head_ranking "
     "{sd_ranking} --results {out}", ["'head_ranking'", "does not fit toy:k1 (7 layers"]),
    # issue 23: the models people use now (SDXL, SD3/SD3.5, Flux) and the kinds dvdlib refuses
    ("probe-unsupported-family-folder-23.1", "probe 'sunset coaster' --concept sunset --object coaster "
     "--model {kandinsky}", ["--model: the pipeline in", "is a KandinskyV22Pipeline, which dvdlib does "
                                                        "not support", "sd3 (StableDiffusion3Pipeline); flux"]),
    ("generate-unsupported-family-folder-23.2", "generate --model {kandinsky} --out {out} --cases 1",
     ["is a KandinskyV22Pipeline, which dvdlib does not support", "accepted families: toy"]),
    ("run-unsupported-family-folder-23.3", "run {book}/04_head_ablation.ipynb -p model {kandinsky} "
     "--results {out}", ["parameter 'model'", "is a KandinskyV22Pipeline"]),
]


def _refusal(argv: str, fragments, capsys, **places) -> str:
    """Run ``dvd argv`` (placeholders filled from ``places``); assert exit code 2 and one error
    line holding every fragment; return that line."""
    import shlex

    words = [word.format(**places) for word in shlex.split(argv)]
    try:
        code = cli.main(words)
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    assert code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"dvd {words[0]}") and ": error: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("argv, fragments", [case[1:] for case in CLI], ids=[case[0] for case in CLI])
def test_the_command_line_refuses_with_one_line(argv, fragments, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths (./models/sd14) are read from here
    before = _files(inputs["dir"])
    line = _refusal(argv, fragments, capsys, out=tmp_path / "out", book=BOOK, **inputs)
    assert line.startswith(f"dvd {argv.split()[0]}: error: "), line
    assert not any(tmp_path.iterdir()), sorted(_files(tmp_path))  # nothing made where we ran
    assert _files(inputs["dir"]) == before  # and nothing beside the inputs


# --------------------------------------------------------------------------------------------
# dvd toyworld (issue 11): names the world lacks, K <= 0, shares outside [0, 1], an output folder
# that cannot be one, a damaged checkpoint. Argparse names the subcommand in its prefix.

TOYWORLD_CLI = [
    ("toyworld-unknown-concept", "toyworld train --out {out} --limited moon",
     ["--limited", "'moon'", "'sunset', 'ocean', 'forest'"]),
    ("toyworld-unknown-object", "toyworld zoo --out {out} --unpaired boat",
     ["--unpaired", "'boat'", "'coaster', 'shirt', 'notebook', 'hat', 'kite'"]),
    ("toyworld-zero-instances", "toyworld train --out {out} --instances 0",
     ["--instances", "'0'", "integer >= 1 or 'unlimited'"]),
    ("toyworld-negative-level", "toyworld zoo --out {out} --levels 1 -3",
     ["--levels", "'-3'", "integer >= 1 or 'unlimited'"]),
    ("toyworld-pair-rate-above-one", "toyworld zoo --out {out} --pair-rate 1.5",
     ["--pair-rate", "'1.5' is not a share in [0, 1]"]),
    ("toyworld-negative-closeup", "toyworld train --out {out} --closeup -0.1",
     ["--closeup", "'-0.1' is not a share in [0, 1]"]),
    ("toyworld-out-is-a-file", "toyworld train --out {good} --steps 2",
     ["good.csv is a file", "accepted: a folder"]),
    ("toyworld-export-is-a-file", "toyworld zoo --out {out} --export {good}",
     ["good.csv is a file", "accepted: a folder"]),
    ("toyworld-damaged-checkpoint", "toyworld train --out {damaged_run} --steps 2",
     ["damaged_run/checkpoint.pt is damaged", "delete it"]),
    ("toyworld-unknown-device", "toyworld train --out {out} --device tpu9",
     ["--device 'tpu9' is not a device", "accepted: cpu, cuda, cuda:N, mps"]),
    ("toyworld-missing-cuda-index", "toyworld zoo --out {out} --device cuda:64",
     ["--device 'cuda:64'"]),
    ("toyworld-negative-seed-25.12", "toyworld train --out {out} --seed -1",
     ["--seed -1", "0..4,294,967,295"]),
    ("toyworld-huge-seed-25.12", "toyworld train --out {out} --seed 99999999999999999999",
     ["--seed 99999999999999999999", "0..4,294,967,295"]),
    ("toyworld-huge-instance-seed-25.12", "toyworld zoo --out {out} --instance-seeds 1 4294967296",
     ["--instance-seeds 4294967296"]),
    ("toyworld-empty-out-25.5", "toyworld train --out '' --steps 2",
     ["argument --out: '' is empty"]),
    ("toyworld-zero-runs", "toyworld zoo --out {out} --runs 0",
     ["--runs", "'0' is not a whole number >= 1"]),
]


@pytest.mark.parametrize("argv, fragments", [case[1:] for case in TOYWORLD_CLI],
                         ids=[case[0] for case in TOYWORLD_CLI])
def test_dvd_toyworld_refuses_with_one_line(argv, fragments, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an output folder '' would be the working folder
    damaged = inputs["dir"] / "damaged_run"
    damaged.mkdir(exist_ok=True)
    (damaged / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = _files(inputs["dir"])
    _refusal(argv, fragments, capsys, out=tmp_path / "out", damaged_run=damaged, **inputs)
    assert not (tmp_path / "out").exists()
    assert _files(inputs["dir"]) == before  # the damaged checkpoint is left as it was


# --------------------------------------------------------------------------------------------
# The library: (case id, call, exception type, fragments of its one-line message)


def _layers():
    from dvdlib.attention.layers import cross_attention_layers
    from dvdlib.models.random_weights import random_unet

    return cross_attention_layers(random_unet("toy", 32))


def _ablation(heads, operator="zero", factor=None):
    from dvdlib.attention.ablation import HeadAblation

    return lambda p: HeadAblation(_layers(), heads, operator, factor)


def _load(name):
    return lambda p: prompt_sets.load_prompts(p[name])


def _score_sd_images_with_the_toy_judge(p, tmp_path):
    from dvdlib.scoring.dvd import score_folder
    from dvdlib.scoring.judges.toy import ToyJudge
    from dvdlib.toyworld import load_detector

    score_folder(p["sd_images"], prompt_sets.load_prompts(p["good"]), ToyJudge(load_detector()),
                 tmp_path / "t.csv", progress=False)


def _generate_with_toy(prompts, seeds=(1,)):
    def call(p, tmp_path):
        from dvdlib.generation.protocol import generate
        from dvdlib.toyworld import load_model

        generate(load_model(), prompts, seeds, tmp_path / "images", model="toy", steps=1,
                 progress=False)
    return call


TOY_PAIR = pd.DataFrame([(1, "print", "sunset", "coaster", "sunset coaster")], columns=list(COLUMNS))


def _build_only(names):
    def call(p, tmp_path):
        from dvdlib.book.build import build_book

        build_book(REPO, only=names, out=tmp_path / "build", log=lambda line: None)
    return call


def _parameters(chapter, **given):
    def call(p):
        from dvdlib.book.parameters import check_parameters

        check_parameters(BOOK / chapter, {k: str(p[v[1:]]) if isinstance(v, str) and v.startswith("@")
                                          else v for k, v in given.items()})
    return call


@functools.lru_cache(maxsize=None)
def _tiny_instruments(family: str):
    """The instruments of a tiny random ``family`` pipeline (one per family for the catalogue)."""
    from dvdlib.attention.instruments import instruments_for
    from dvdlib.models.random_mmdit import tiny_mmdit_pipeline

    return instruments_for(tiny_mmdit_pipeline(family))


def _sd3_keys(prompt: str, t5_length: int):
    from dvdlib.attention.joint_tokens import pipeline_text_keys
    from dvdlib.models.random_mmdit import tiny_mmdit_pipeline

    return pipeline_text_keys(tiny_mmdit_pipeline("sd3"), prompt, max_sequence_length=t5_length)


def _full_maps(layout: str, text_keys: int):
    """A record asking for maps of every layer, step and text key of a real layout at 1024 px."""
    from dvdlib.attention.joint_layers import joint_attention_layers
    from dvdlib.attention.joint_record import JointAttentionRecord
    from dvdlib.attention.record import MapRequest
    from dvdlib.models.random_mmdit import layout_transformer

    layers = joint_attention_layers(layout_transformer(layout, head_dim=8), sample_size=128)
    return JointAttentionRecord(layers, 28, num_images=1,
                                maps=MapRequest("all", tokens=range(text_keys)))


LIBRARY = [
    ("ablation-head-not-a-number-#15", _ablation({0: ["x"]}), ValueError,
     ["head 'x' of layer", "accepted: whole numbers 0..3"]),
    ("ablation-head-a-fraction", _ablation({0: [1.5]}), ValueError, ["head 1.5 of layer"]),
    ("ablation-heads-a-string", _ablation({0: "01"}), ValueError, ["must be a list of head indices", "'01'"]),
    ("ablation-head-out-of-range", _ablation({0: [4]}), ValueError, ["has heads 0..3; got [4]"]),
    ("ablation-unknown-operator", _ablation({0: [0]}, "drop"), ValueError, ["unknown operator 'drop'"]),
    ("ablation-factor-without-scale", _ablation({0: [0]}, "zero", 2.0), ValueError, ["factor=2.0"]),
    ("load-non-utf8-#4", _load("nonutf8"), PromptSetError, ["line 2", "0xff"]),
    ("load-header-only-#5", _load("header_only"), PromptSetError, ["no prompt rows"]),
    ("load-three-fields-#6", _load("short_row"), PromptSetError, ["3 fields"]),
    ("load-six-fields-#7", _load("long_row"), PromptSetError, ["6 fields"]),
    ("load-missing-word", _load("missing_word"), PromptSetError, ["'rembrandt' is not in the prompt"]),
    ("load-unknown-expectation", lambda p: prompt_sets.load_prompts(p["good"], expect="dominance"), ValueError,
     ["expect='dominance'", "accepted: dominancebench"]),
    ("load-not-the-benchmark", lambda p: prompt_sets.load_prompts(p["good"], expect="dominancebench"),
     PromptSetError, ["not the dominancebench file: it has 3 rows"]),
    ("validate-missing-field-#6", lambda p: prompt_sets.validate_prompts(pd.DataFrame(
        [(1, "artist", "rembrandt", None, None)], columns=list(COLUMNS))), PromptSetError,
     ["column object: empty value"]),
    ("seeds-zero", lambda p: prompt_sets.seeds(0), ValueError, ["got 0"]),
    ("detector-truncated-#1", lambda p: __import__("dvdlib.toyworld.zoo", fromlist=["_"]).load_detector(
        p["zoo_detector"]), ZooError, ["detector.safetensors", "damaged or truncated"]),
    ("model-truncated-#2", lambda p: __import__("dvdlib.toyworld.zoo", fromlist=["_"]).load_model(
        "k1", p["zoo_k1"]), ZooError, ["k1.safetensors"]),
    ("zoo-check-truncated-#2", lambda p: __import__("dvdlib.toyworld.zoo", fromlist=["_"]).check_zoo(
        p["zoo_k1"]), ZooError, ["k1.safetensors", "damaged or truncated"]),
    ("manifest-truncated-#3", lambda p: __import__("dvdlib.toyworld.zoo", fromlist=["_"]).zoo_manifest(
        p["zoo_json"]), ZooError, ["toyworld.json is not valid JSON"]),
    ("images-of-other-prompts-#10", lambda p: __import__("dvdlib.scoring.dvd", fromlist=["_"]).find_images(
        p["toy_images"], prompt_sets.load_prompts(p["sunset_notebook"], categories=["print"])),
     ValueError, ["case001_sunset_coaster is case 1"]),
    ("toy-judge-sd-questions-#14", _score_sd_images_with_the_toy_judge, ValueError,
     ["the toy judge knows the words", "'amedeo modigliani'"]),
    ("generate-past-the-toy-limit-#8", _generate_with_toy(pd.DataFrame(
        [(1, "print", "sunset", "coaster", "sunset and ocean and forest printed on a coaster")],
        columns=list(COLUMNS))), ValueError, ["'coaster'", "past the 8-token limit"]),
    ("generate-no-rows-#5", _generate_with_toy(pd.DataFrame(columns=list(COLUMNS))), ValueError,
     ["no rows"]),
    ("parameters-negative-top-n-#9", _parameters("01_dominancebench.ipynb", top_n=-5),
     ValueError, ["-5 is out of range"]),
    ("parameters-operator-#12", _parameters("04_head_ablation.ipynb", operator="foo"), ValueError,
     ["'foo' is not an operator of model 'toy:k1'"]),
    ("parameters-bench-csv-with-toy-#16", _parameters("03_attention_saturation.ipynb", bench_csv="@good"),
     ValueError, ["does not apply"]),
    ("parameters-truncated-zoo-#2", _parameters("03_attention_saturation.ipynb", zoo_folder="@zoo_k1"),
     ValueError, ["k1.safetensors"]),
    ("model-relative-missing-folder-#11", lambda p: __import__("dvdlib.models.loading", fromlist=["_"]).load_pipeline(
        "./models/sd14"), FileNotFoundError, ["model folder './models/sd14' does not exist"]),
    ("table-suffix", lambda p: __import__("dvdlib.store", fromlist=["_"]).check_table_path("t.txt"), ValueError,
     ["'t.txt'", ".csv, .parquet"]),
    ("folder-under-a-file-#13", lambda p: __import__("dvdlib.store", fromlist=["_"]).check_writable_dir(
        p["file"] / "x"), ValueError, ["afile' is a file, not a folder"]),
    ("phrase-not-in-prompt", lambda p: __import__("dvdlib.attention.token_positions", fromlist=["_"]).find_phrase(
        __import__("dvdlib.prompts.tokenizer", fromlist=["_"]).clip_tokenizer(), "Monet Mug", "cup"), ValueError,
     ["phrase 'cup'", "Monet Mug"]),
    ("judge-thresholds", lambda p: __import__("dvdlib.scoring.judges.toy", fromlist=["_"]).ToyJudge(
        None, (0.5, 0.1, 0.2, 0.3, 0.4)), ValueError, ["strictly increasing", "(0.5, 0.1"]),
    ("score-of-six-yes", lambda p: __import__("dvdlib.scoring.dvd", fromlist=["_"]).dvd_image_score(6, 0), ValueError,
     ["concept_yes", "got 6"]),
    ("bootstrap-nothing", lambda p: __import__("dvdlib.stats.bootstrap", fromlist=["_"]).bootstrap_ci([]), ValueError,
     ["non-empty"]),
    ("probe-seed-count", lambda p: __import__("dvdlib.probe.inputs", fromlist=["_"]).probe_seeds(0), ValueError,
     ["got 0"]),
    ("prompts-categories-string-25.13", lambda p: __import__(
        "dvdlib.prompts.prompt_sets", fromlist=["_"]).load_prompts(p["good"], categories="print"),
     ValueError, ["categories='print' is one string"]),
    ("ablation-factor-nan-25.13", lambda p: __import__(
        "dvdlib.attention.ablation", fromlist=["_"]).HeadAblation([], {}, "scale", float("nan")),
     ValueError, ["factor", "finite"]),
    ("token-position-not-whole-25.13", lambda p: __import__(
        "dvdlib.attention.ablation", fromlist=["_"]).TokenValueAblation([[1.7]], 8), ValueError,
     ["[1.7]", "not whole numbers"]),
    ("generate-file-name-for-table-25.13", _generate_with_toy("file.csv"), ValueError,
     ["expected a prompt table", "got str 'file.csv'", "load_prompts(path)"]),
    ("generate-seeds-one-string-25.13", _generate_with_toy(TOY_PAIR, seeds="1825"), ValueError,
     ["seeds: '1825' is one string, not a list of seeds"]),
    ("generate-billions-of-seeds-25.6", _generate_with_toy(TOY_PAIR, seeds=3_000_000_000),
     ValueError, ["3000000000 seeds: at most 100,000"]),
    ("seeds-one-string-25.13", lambda p: prompt_sets.check_seeds("1825"), ValueError,
     ["'1825' is one string"]),
    ("condition-head-not-whole-25.13", lambda p: __import__(
        "dvdlib.chapters.head_ablation.conditions", fromlist=["_"]).Condition(
        "h", "single head", (("down.0", 1.9),)), ValueError, ["head index 1.9 is not a whole number"]),
    ("load-concept-is-object-25.8", _load("same_word"), PromptSetError, ["both 'monet'"]),
    ("book-only-matches-nothing-25.11", _build_only(["zzz"]), ValueError,
     ["--only 'zzz' matches no chapter", "01_dominancebench"]),
    ("book-only-empty-25.11", _build_only([""]), ValueError, ["--only '' matches no chapter"]),
    ("parameters-model-empty-25.14", _parameters("02_data_diversity.ipynb", model=""), ValueError,
     ["'model'", "'' is empty"]),
    ("parameters-fraction-one-25.14", _parameters("04_head_ablation.ipynb", head_fractions="1"),
     ValueError, ["'1' is not a fraction in (0, 1)"]),
    ("parameters-guidance-nan-25.2", _parameters("04_head_ablation.ipynb", guidance=float("nan")),
     ValueError, ["'guidance'", "nan is not a finite number"]),
    ("wording-a-folder-25.14", lambda p: __import__("dvdlib.scoring.questions", fromlist=["_"])
     .load_wording(p["dir"]), ValueError, ["cannot read question file", "Is a directory"]),
    # issue 24: the rescue's interventions, strengths and head rankings
    ("rescue-boost-below-one-24.13", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).check_strength("boost", 0.9),
     ValueError, ["object boost c 0.9", "accepted: a number >= 1"]),
    ("rescue-tau-above-one-24.14", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).check_strength("cap", 1.2),
     ValueError, ["concept cap tau 1.2", "(0, 1]"]),
    ("rescue-more-heads-than-the-model-24.15", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).check_strength(
        "random_heads", 40, total_heads=28), ValueError, ["k 40", "from 0 to 28"]),
    ("rescue-unknown-intervention-24.16", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).Intervention("magic", 1), ValueError,
     ["unknown intervention 'magic'", "accepted: boost"]),
    ("rescue-ranking-of-another-model-24.17", lambda p: __import__(
        "dvdlib.chapters.rescue.run", fromlist=["_"]).check_inputs(
        "toy:k1", "", {"heads": 7}, guidance=4.0, n_strengths=2,
        head_ranking=str(p["sd_ranking"])), ValueError, ["does not fit toy:k1 (7 layers"]),
    ("rescue-boost-nan-24.18", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).check_strength("boost", float("nan")),
     ValueError, ["nan", "a finite number"]),
    ("rescue-margin-24.19", lambda p: __import__(
        "dvdlib.chapters.rescue.run", fromlist=["_"]).check_inputs(
        "toy:k1", "", {"boost": 2.0}, guidance=4.0, n_strengths=2, margin=100),
     ValueError, ["concept_margin 100", "[0, 100)"]),
    ("rescue-negative-template-24.20", lambda p: __import__(
        "dvdlib.interventions.catalogue", fromlist=["_"]).check_negative_template("{object} scene"),
     ValueError, ["negative prompt '{object} scene'", "{concept}"]),
    # issue 23: SD3's two tokenizations, heads and layers outside an MMDiT, maps too large to keep
    ("sd3-word-cut-from-clip-23.4", lambda p: _tiny_instruments("sd3").token_groups(
        _tiny_instruments("sd3").prompt_tokens(f"sunset {LONG} coaster"), {"object": "coaster"}),
     ValueError, ["phrase 'coaster' is not among the clip tokens", "accepted: words among clip:"]),
    ("sd3-word-cut-from-t5-23.5", lambda p: __import__("dvdlib.attention.joint_tokens", fromlist=["_"])
     .word_groups(_sd3_keys("a castle painted on a big blue coaster", 4), {"object": "coaster"}),
     ValueError, ["phrase 'coaster' is not among the t5 tokens", "accepted: words among t5:"]),
    ("joint-head-outside-the-layer-23.6", lambda p: _tiny_instruments("sd3").head_ablation(
        _tiny_instruments("sd3").layers(), {"joint.1": [4]}), ValueError,
     ["head 4 is not in layer joint.1", "accepted: whole numbers 0..3"]),
    ("joint-layer-outside-the-model-23.7", lambda p: _tiny_instruments("flux").head_ablation(
        _tiny_instruments("flux").layers(), {"single.5": [0]}), ValueError,
     ["no layer 'single.5'", "accepted: an index 0..3, a label (double.0 ... single.1)"]),
    ("joint-operator-of-the-unet-23.8", lambda p: _tiny_instruments("flux").head_ablation(
        _tiny_instruments("flux").layers(), "all", "mean"), ValueError,
     ["unknown operator 'mean'", "accepted: zero, mask"]),
    ("sd3-full-maps-at-1024px-23.9", lambda p: _full_maps("sd3-medium", 333), ValueError,
     ["maps of 24 layers x 28 steps x 4096 image tokens x 333 text tokens", "3.67 GB",
      "over the limit of 2.15 GB"]),
    ("flux-full-maps-at-1024px-23.10", lambda p: _full_maps("flux-dev", 512), ValueError,
     ["maps of 57 layers x 28 steps x 4096 image tokens x 512 text tokens", "13.39 GB",
      "over the limit of 2.15 GB"]),
]


@pytest.mark.parametrize("call, error, fragments", [case[1:] for case in LIBRARY],
                         ids=[case[0] for case in LIBRARY])
def test_the_library_refuses_with_one_line(call, error, fragments, inputs, tmp_path, monkeypatch):
    import inspect

    monkeypatch.chdir(tmp_path)
    before = _files(inputs["dir"])
    with pytest.raises(error) as caught:
        call(inputs, tmp_path) if len(inspect.signature(call).parameters) == 2 else call(inputs)
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    for fragment in fragments:
        assert fragment in message, message
    assert not any(tmp_path.iterdir()), sorted(_files(tmp_path))
    assert _files(inputs["dir"]) == before


def test_the_catalogue_holds_every_numbered_item_and_seventy_cases():
    ids = [case[0] for case in CLI + LIBRARY]
    assert len(ids) == len(set(ids)) and len(ids) >= 70
    assert not [n for n in range(1, 19) if not any(i.endswith(f"-#{n}") for i in ids)]


def test_the_catalogue_holds_the_fifteen_groups_of_issue_25():
    ids = [case[0] for case in CLI + TOYWORLD_CLI + LIBRARY] + ["dvd-book-only-25.11",
                                                                 "sixteen-bit-scaled-25.3"]
    assert not [n for n in range(1, 16) if not any(i.endswith(f"-25.{n}") for i in ids)]


def test_dvd_book_only_a_name_of_no_chapter_builds_nothing_25_11(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # dvd book builds the checkout it runs in
    _refusal("book --only zzz --out {out}", ["--only 'zzz' matches no chapter",
                                             "01_dominancebench, toy_world"], capsys,
             out=tmp_path / "build")
    assert not any(tmp_path.iterdir())


def test_a_16_bit_grey_image_is_scaled_not_clipped_25_3(tmp_path):
    import numpy as np

    from dvdlib.scoring.dvd import load_image

    levels = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)  # [row, column]
    Image.fromarray(levels).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I;16")
    loaded = np.asarray(load_image(tmp_path / "grey16.png"))  # [row, column, channel]
    assert loaded.shape == (32, 32, 3) and (loaded == loaded[..., :1]).all()
    assert np.abs(loaded[..., 0].astype(float) - levels / 257).max() <= 0.5
    assert 0.45 < (loaded[..., 0] > 127).mean() < 0.55  # half bright, not 99.9 % white


# --------------------------------------------------------------------------------------------
# #18: Ctrl-C and SIGTERM stop a probe with one line and leave no temporary folder


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_a_probe_stopped_by_a_signal_says_so_in_one_line_and_leaves_nothing(tmp_path, signum, code, word):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temporary), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dvdlib.book.cli", "probe", "sunset coaster", "--concept", "sunset",
         "--object", "coaster", "--seeds", "400", "--no-progress"],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A test run may have left SIGINT ignored (inherited); a user's shell never does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if any(temporary.glob("dvd-probe-*/images/manifest.log")):  # images are being made
            break
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()  # no-op once it has exited
    assert process.returncode == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"dvd probe: {word}"], err
    assert not any(temporary.iterdir())
