"""Model families: told from a pipeline, a folder or a name before anything loads; their defaults
are diffusers' own; every family has attention instruments, and an unsupported kind of pipeline
(or a family without instruments) is refused with one line."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from diffusers import (FluxPipeline, StableDiffusion3Pipeline, StableDiffusionPipeline,
                       StableDiffusionXLPipeline)

from dvdlib.attention.instruments import INSTRUMENTS, check_instruments, instruments_for
from dvdlib.book.cli import main
from dvdlib.models import families, spec
from dvdlib.models.families import (FAMILIES, PAPER, UnsupportedFamilyError, family_of,
                                    folder_family, model_defaults, model_family,
                                    protocol_differences)
from dvdlib.models.loading import ModelNotFoundError, load_pipeline
from dvdlib.models.random_weights import dummy_sd_pipeline
from dvdlib.toyworld.pipeline import ToyDiffusionPipeline


def pipeline_folder(path, class_name: str, **components):
    """A folder with a ``model_index.json`` naming ``class_name`` (and nothing else unless given)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model_index.json").write_text(json.dumps({"_class_name": class_name, **components}))
    return path


def call_default(pipeline_class, name: str):
    return inspect.signature(pipeline_class.__call__).parameters[name].default


# --------------------------------------------------------------------------------------------
# Which family


def test_a_family_is_told_from_the_pipelines_class_or_the_class_it_derives_from():
    pipe = dummy_sd_pipeline("sd1")
    assert family_of(pipe).name == "sd"

    class Community(StableDiffusionPipeline):  # a community pipeline built on Stable Diffusion
        pass

    assert family_of(Community(**pipe.components, requires_safety_checker=False)).name == "sd"
    with pytest.raises(UnsupportedFamilyError, match="the pipeline is a dict, which dvdlib does not "
                                                     "support; accepted families: toy"):
        family_of({})


@pytest.mark.parametrize("class_name, family", [
    ("StableDiffusionPipeline", "sd"), ("StableDiffusionXLPipeline", "sdxl"),
    ("StableDiffusion3Pipeline", "sd3"), ("FluxPipeline", "flux"),
    ("ToyDiffusionPipeline", "toy")])
def test_a_folders_family_is_read_from_its_model_index(tmp_path, class_name, family):
    folder = pipeline_folder(tmp_path / "weights", class_name)
    assert folder_family(folder).name == family == model_family(str(folder)).name


@pytest.mark.parametrize("class_name", ["KandinskyV22Pipeline", "PixArtAlphaPipeline"])
def test_an_unsupported_pipeline_folder_stops_with_one_line_naming_its_class(tmp_path, capsys,
                                                                             class_name):
    folder = pipeline_folder(tmp_path / "weights", class_name, unet=["diffusers", "Missing"])
    message = (f"the pipeline in {folder} is a {class_name}, which dvdlib does not support; "
               f"accepted families: toy (ToyDiffusionPipeline); sd (StableDiffusionPipeline); "
               f"sdxl (StableDiffusionXLPipeline); sd3 (StableDiffusion3Pipeline); flux "
               f"(FluxPipeline)")
    with pytest.raises(UnsupportedFamilyError) as refused:
        load_pipeline(str(folder), device="cpu")  # refused before the missing unet/ is noticed
    assert str(refused.value) == message
    out = tmp_path / "out"
    assert main(["generate", "--model", str(folder), "--out", str(out), "--cases", "1"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [f"dvd generate: error: {message}"] and not out.exists()
    assert main(["probe", "a sunset coaster", "--concept", "sunset", "--object", "coaster",
                 "--model", str(folder), "--judge", "vlm"]) == 2
    assert capsys.readouterr().err.strip() == f"dvd probe: error: --model: {message}"


def test_a_folder_without_model_index_is_left_to_loading_to_name(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    assert model_family(str(folder)) is None
    with pytest.raises(ModelNotFoundError, match="model_index.json is missing"):
        load_pipeline(str(folder), device="cpu")


# --------------------------------------------------------------------------------------------
# Named models


@pytest.mark.parametrize("name, repo_id, family", [
    ("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl"),
    ("sd3", "stabilityai/stable-diffusion-3-medium-diffusers", "sd3"),
    ("sd3.5-medium", "stabilityai/stable-diffusion-3.5-medium", "sd3"),
    ("sd3.5-large", "stabilityai/stable-diffusion-3.5-large", "sd3"),
    ("flux-dev", "black-forest-labs/FLUX.1-dev", "flux"),
    ("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux")])
def test_named_models_map_to_their_hub_ids_and_family(name, repo_id, family):
    for text in (name, repo_id):
        parsed = spec.parse_model(text)
        assert parsed.kind == "named" and parsed.repo_ids == (repo_id,) and not parsed.is_toy
        assert parsed.known.resolution == 1024 and model_family(text).name == family


def test_a_named_model_missing_from_the_cache_fails_offline_with_one_line():
    if families._cached_index(spec.parse_model("sdxl").repo_ids) is not None:
        pytest.skip("SDXL is in this machine's Hugging Face cache")
    with pytest.raises(ModelNotFoundError) as missing:
        load_pipeline("sdxl", device="cpu")
    message = str(missing.value)
    assert "\n" not in message
    assert message.startswith("model 'sdxl': stabilityai/stable-diffusion-xl-base-1.0 is not in the "
                              "Hugging Face cache")
    assert "huggingface-cli download stabilityai/stable-diffusion-xl-base-1.0" in message


# --------------------------------------------------------------------------------------------
# Defaults and the paper's protocol


@pytest.mark.parametrize("family, pipeline_class", [
    ("toy", ToyDiffusionPipeline), ("sd", StableDiffusionPipeline),
    ("sdxl", StableDiffusionXLPipeline), ("sd3", StableDiffusion3Pipeline), ("flux", FluxPipeline)])
def test_each_familys_defaults_are_its_pipelines_own(family, pipeline_class):
    defaults = FAMILIES[family].defaults
    assert defaults.steps == call_default(pipeline_class, "num_inference_steps")
    assert defaults.guidance == call_default(pipeline_class, "guidance_scale")


def test_defaults_by_model_name_folder_and_publisher(tmp_path):
    assert (model_defaults("sd1.4").steps, model_defaults("sd1.4").guidance,
            model_defaults("sd1.4").resolution) == (50, 7.5, 512)
    assert model_defaults("sd2.1").resolution == 768
    assert (model_defaults("sdxl").steps, model_defaults("sdxl").guidance,
            model_defaults("sdxl").resolution) == (50, 5.0, 1024)
    assert (model_defaults("sd3.5-large").steps, model_defaults("sd3.5-large").guidance) == (28, 3.5)
    assert (model_defaults("sd3.5-medium").steps, model_defaults("sd3.5-medium").guidance) == (40, 4.5)
    dev, schnell = model_defaults("flux-dev"), model_defaults("flux-schnell")
    assert (dev.steps, dev.guidance, dev.guidance_kind) == (28, 3.5, "embedded")
    assert (schnell.steps, schnell.guidance, schnell.guidance_kind) == (4, 0.0, "none")
    assert (model_defaults("toy:k1").steps, model_defaults("toy:k1").guidance) == (20, 4.0)
    # A Flux folder is dev-like unless its transformer has no guidance input (schnell's kind).
    folder = pipeline_folder(tmp_path / "flux", "FluxPipeline")
    (folder / "transformer").mkdir()
    (folder / "transformer" / "config.json").write_text(json.dumps({"guidance_embeds": True}))
    assert model_defaults(str(folder)) == FAMILIES["flux"].defaults
    (folder / "transformer" / "config.json").write_text(json.dumps({"guidance_embeds": False}))
    assert model_defaults(str(folder)).guidance_kind == "none"
    sdxl_folder = pipeline_folder(tmp_path / "sdxl", "StableDiffusionXLPipeline")
    assert model_defaults(str(sdxl_folder)).resolution is None  # the model's own size


def test_how_a_run_differs_from_the_papers_protocol():
    sd, sdxl, flux = FAMILIES["sd"], FAMILIES["sdxl"], FAMILIES["flux"]
    assert protocol_differences(sd, steps=50, guidance=7.5, size="512x512",
                                guidance_kind="classifier-free") == []
    assert protocol_differences(sd, steps=20, guidance=1.0, size="768x768",
                                guidance_kind="classifier-free") == [
        "20 steps (paper: 50)", "no classifier-free guidance (paper: 7.5)"]
    assert protocol_differences(sdxl, steps=50, guidance=5.0, size="1024x1024",
                                guidance_kind="classifier-free") == [
        "model family sdxl: Stable Diffusion XL (paper: Stable Diffusion 1.4 and 2.1)",
        "guidance 5 (paper: 7.5)",
        "image size 1024x1024 (paper: 512 px on SD 1.4, 768 px on SD 2.1)"]
    flux_run = protocol_differences(flux, steps=28, guidance=3.5, size="1024x1024",
                                    guidance_kind="embedded")
    assert "sampler: the model's own (flow-matching Euler) (paper: DDIM)" in flux_run
    assert ("guidance 3.5 is an input of a guidance-distilled model, one pass per step (paper: "
            "classifier-free guidance 7.5)") in flux_run
    assert PAPER.steps == 50 and PAPER.guidance == 7.5


def test_guidance_batches_unconditional_rows_except_in_flux():
    pipe = dummy_sd_pipeline("sd1")
    assert families.guidance_batch(pipe, 7.5) and not families.guidance_batch(pipe, 1.0)
    assert {name for name, family in FAMILIES.items() if not family.batched_guidance} == {"flux"}


def test_only_unet_families_sample_with_ddim():
    assert {name for name, family in FAMILIES.items() if family.ddim} == {"toy", "sd", "sdxl"}
    assert {name: family.attention_kwargs for name, family in FAMILIES.items()} == {
        "toy": "cross_attention_kwargs", "sd": "cross_attention_kwargs",
        "sdxl": "cross_attention_kwargs", "sd3": "joint_attention_kwargs",
        "flux": "joint_attention_kwargs"}
    for family, pipeline_class in (("sd3", StableDiffusion3Pipeline), ("flux", FluxPipeline)):
        assert FAMILIES[family].attention_kwargs in inspect.signature(pipeline_class.__call__).parameters


# --------------------------------------------------------------------------------------------
# Which families have instruments


def test_every_family_has_instruments_and_one_without_would_be_refused_before_loading(
        tmp_path, capsys, monkeypatch):
    assert set(INSTRUMENTS) == set(FAMILIES) and all(INSTRUMENTS.values())
    flux_folder = pipeline_folder(tmp_path / "f", "FluxPipeline")
    sdxl_folder = pipeline_folder(tmp_path / "x", "StableDiffusionXLPipeline")
    for model in ("sd3", "sd3.5-large", "flux-dev", str(flux_folder), "sdxl", "sd1.4", "toy:k1",
                  str(sdxl_folder)):
        check_instruments(model)  # no error
    # The refusal stays for a family that would have none: before anything loads, one line.
    monkeypatch.setitem(INSTRUMENTS, "flux", None)
    with pytest.raises(ValueError, match="attention instruments for it are not yet supported"):
        check_instruments(str(flux_folder))
    assert main(["probe", "a sunset coaster", "--concept", "sunset", "--object", "coaster",
                 "--model", "flux-dev", "--judge", "vlm"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == ("dvd probe: error: --model: model 'flux-dev' is of the flux family (Flux.1): "
                     "attention instruments for it are not yet supported; families with "
                     "instruments: toy, sd, sdxl, sd3")
    assert instruments_for(dummy_sd_pipeline("sd1")).family.name == "sd"


def test_chapters_three_and_four_take_sd3_and_flux_by_name():
    from dvdlib.chapters.attention_saturation.run import chapter_conditions
    from dvdlib.chapters.head_ablation.prompts import chapter_prompts

    conditions = chapter_conditions("sdxl", reference_model="sd3.5-medium", judge="vlm",
                                    prompts_per_category=1)
    assert [c.model for c in conditions] == ["sdxl", "sd3.5-medium"] and len(conditions[0].prompts) == 3
    assert len(chapter_prompts(spec.parse_model("flux-schnell"), n_prompts=2)) == 2


def test_help_texts_list_every_familys_defaults():
    assert families.defaults_text("steps") == ("toy 20, sd 50, sdxl 50, sd3 28, flux 28, "
                                               "sd3.5-medium 40, sd3.5-large 28, flux-schnell 4")
    assert families.defaults_text("resolution").startswith("sd1.4 512, sd2.1 768, sdxl 1024")


@pytest.mark.parametrize("chapter", ["03_attention_saturation.ipynb", "04_head_ablation.ipynb"])
def test_chapters_three_and_four_take_every_family_and_refuse_an_unsupported_folder(tmp_path,
                                                                                  chapter):
    from dvdlib.book.parameters import check_parameters

    book = Path(__file__).resolve().parents[1] / "book"
    for model in ("sdxl", "sd3.5-medium", "flux-dev", str(pipeline_folder(tmp_path / "sd3",
                                                                          "StableDiffusion3Pipeline"))):
        assert check_parameters(book / chapter, {"model": model, "judge": "vlm"})["model"] == model
    folder = pipeline_folder(tmp_path / "kandinsky", "KandinskyV22Pipeline")
    with pytest.raises(ValueError, match="is a KandinskyV22Pipeline, which dvdlib does not support"):
        check_parameters(book / chapter, {"model": str(folder), "judge": "vlm"})

