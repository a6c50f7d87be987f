"""The zoo: toy models that differ only in the diversity of one concept, and its shipped copy.

``train_zoo`` trains one diverse base model, then fine-tunes it per diversity level K of the
world's limited concept (same steps and data recipe; only K changes; K = 1 once per instance
seed, each a different fixed picture; every other level ``runs`` times, each run with its own
training seed and, at a finite K, its own pictures), and trains the detector. ``export_zoo``
writes the finished models, and their EMA snapshots after fewer fine-tuning steps (``k1@500``),
as small fp16 files; ``load_zoo``, ``load_model`` and ``load_detector`` read the copy shipped
inside the package (or any exported folder), so the book runs without training anything. Model
names (``k1-i3``, ``kinf-r2``, ``k4@500``) are :mod:`dvdlib.toyworld.names`.

Shipped file format (ours): ``toyworld.json`` holds the component configs, each model's world,
training configuration and loss history, and the detector's metrics; ``<name>.safetensors`` holds
one model's UNet and text-encoder weights in fp16. The text encoder's token-embedding table
(49,408 rows) is stored as the rows of the world's tokens only: every other row is zero in the
trained model (see :mod:`dvdlib.toyworld.pipeline`), so nothing is lost.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel

from dvdlib.toyworld import detector as detector_module
from dvdlib.toyworld import train as train_module
from dvdlib.toyworld.pipeline import ToyDiffusionPipeline
from dvdlib.store import atomic_write, atomic_write_json, load_json
from dvdlib.toyworld.world import CLOSEUP, PAIR_RATE, World, scene_mix
# level_of, parse_level and run_of too: the zoo's callers read names through this module.
from dvdlib.toyworld.names import (level_name, level_of, parse_level, parse_name, run_of,
                                   snapshot_name)
from dvdlib.prompts.tokenizer import clip_tokenizer

LEVELS: tuple[int | None, ...] = (1, 4, 16, None)  # K; None is unlimited diversity
# Instance seeds of the K = 1 models: each a different fixed picture, the replication unit of
# chapter 2 (with three, the spread between pictures alone made its interval 28 points wide).
# Other levels use the first.
INSTANCE_SEEDS: tuple[int, ...] = tuple(range(9))
# Training runs of every level other than K = 1 (kinf, kinf-r1, kinf-r2): run r trains with the
# seed + 1 + r and, at a finite K, draws its pictures from the instance seed + r, so the runs
# differ as replicates should; run 0 is the zoo's model of that level.
RUNS = 3
# Fine-tuning steps whose EMA snapshots are shipped beside the finished models (training length).
SNAPSHOT_STEPS: tuple[int, ...] = (500,)
DEFAULT_MODEL = "k1"  # the least diverse model: where dominance should be strongest
MANIFEST = "toyworld.json"
DETECTOR_FILE = "detector.safetensors"
BASE, DETECTOR = "base", "detector"
_TOKEN_ROWS = "text_encoder.token_rows"
_TOKEN_VALUES = "text_encoder.token_values"


class ZooModel(NamedTuple):
    """One fine-tuned model of a zoo's recipe."""

    name: str
    instances: int | None  # K; None is unlimited
    instance_seed: int  # the offset of its world's instance seed from the zoo's seed
    run: int  # its training run: fine-tuned with the zoo's seed + 1 + run


@dataclass(frozen=True)
class ZooConfig:
    """The recipe of a zoo; every model and the detector derive their configuration from it."""

    seed: int = 0
    levels: tuple[int | None, ...] = LEVELS
    limited: str = "sunset"
    unpaired: tuple[str, ...] = ("hat", "kite")
    pair_rate: float = PAIR_RATE
    closeup: float = CLOSEUP
    instance_seeds: tuple[int, ...] = INSTANCE_SEEDS
    runs: int = RUNS
    base_steps: int = 5000
    finetune_steps: int = 1000
    finetune_learning_rate: float = 1e-3
    finetune_warmup_steps: int = 50
    snapshot_steps: tuple[int, ...] = SNAPSHOT_STEPS
    detector_steps: int = 1500
    detector_heldout: int = 2000
    batch_size: int = 32
    checkpoint_every: int = 250

    def __post_init__(self):
        for name in ("levels", "unpaired", "instance_seeds", "snapshot_steps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.levels:
            raise ValueError("a zoo needs at least one diversity level")
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1:
            raise ValueError(f"runs {self.runs!r} must be an integer >= 1 (training runs of each "
                             f"level other than K = 1)")
        if not self.instance_seeds or len(set(self.instance_seeds)) != len(self.instance_seeds):
            raise ValueError(f"instance_seeds must be distinct and at least one, got "
                             f"{list(self.instance_seeds)}")
        names = [model.name for model in self.models()]
        if len(set(names)) != len(names):
            raise ValueError(f"diversity levels repeat: {names}")
        for step in self.snapshot_steps:
            if step % self.checkpoint_every or not 0 < step < self.finetune_steps:
                raise ValueError(f"snapshot step {step!r} must be a multiple of checkpoint_every "
                                 f"({self.checkpoint_every}) below finetune_steps "
                                 f"({self.finetune_steps})")
        for model in self.models():
            self.world(model.instances, model.instance_seed)  # validates

    def models(self) -> list[ZooModel]:
        """Every fine-tuned model: K = 1 once per instance seed, every other level ``runs`` times
        (run r at a finite K with the instance seed + r: other pictures)."""
        out = []
        for k in self.levels:
            if k == 1:
                out += [ZooModel(level_name(k, s), k, s, 0) for s in self.instance_seeds]
                continue
            first = self.instance_seeds[0]
            out += [ZooModel(level_name(k, first, run), k, first + (0 if k is None else run),
                             run)
                    for run in range(self.runs)]
        return out

    def world(self, instances: int | None, instance_seed: int = 0) -> World:
        return World(limited=self.limited, unpaired=self.unpaired,
                     scene_mix=scene_mix(self.pair_rate), closeup=self.closeup,
                     instances=instances, instance_seed=self.seed + instance_seed)

    def base_config(self) -> train_module.TrainConfig:
        return train_module.TrainConfig(
            world=self.world(None).to_dict(), steps=self.base_steps, seed=self.seed,
            batch_size=self.batch_size, checkpoint_every=self.checkpoint_every)

    def finetune_config(self, instances: int | None, base_pipeline: str | Path,
                        instance_seed: int = 0, run: int = 0) -> train_module.TrainConfig:
        return train_module.TrainConfig(
            world=self.world(instances, instance_seed).to_dict(), steps=self.finetune_steps,
            learning_rate=self.finetune_learning_rate, warmup_steps=self.finetune_warmup_steps,
            seed=self.seed + 1 + run, batch_size=self.batch_size,
            checkpoint_every=self.checkpoint_every, init_from=str(base_pipeline))

    def detector_config(self) -> detector_module.DetectorConfig:
        return detector_module.DetectorConfig(
            world=self.world(None).to_dict(), steps=self.detector_steps, seed=self.seed,
            heldout=self.detector_heldout, checkpoint_every=self.checkpoint_every)

    def to_dict(self) -> dict:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# --- training ----------------------------------------------------------------------------------
def _run_stage(kind: str, config, folder: str, threads: int, progress: bool, position: int,
               device: str) -> str:
    """One training job (runs in a worker process when jobs > 1)."""
    torch.set_num_threads(threads)
    if kind == DETECTOR:
        return str(detector_module.train_detector(config, folder, progress, position,
                                                  device=device))
    return str(train_module.train(config, folder, progress, position, device=device))


class _Runner:
    """Runs training jobs in this process (jobs == 1) or in a pool of worker processes."""

    def __init__(self, jobs: int, threads: int, progress: bool, device: str):
        self.jobs, self.threads, self.progress, self.device = jobs, threads, progress, device
        self.pool = None
        if jobs > 1:  # a fresh interpreter per worker ("spawn"): no inherited threads
            self.pool = ProcessPoolExecutor(max_workers=jobs,
                                            mp_context=multiprocessing.get_context("spawn"))
        self.submitted = 0

    def submit(self, kind: str, config, folder: Path) -> Future:
        position = self.submitted % self.jobs
        self.submitted += 1
        if self.pool is None:
            future = Future()
            future.set_result(_run_stage(kind, config, str(folder), self.threads, self.progress, 0,
                                         self.device))
            return future
        return self.pool.submit(_run_stage, kind, config, str(folder), self.threads,
                                self.progress, position, self.device)

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def train_zoo(config: ZooConfig, out_dir: str | Path, jobs: int = 1, threads: int = 1,
              progress: bool = True, log=print, device: str = "cpu") -> dict[str, Path]:
    """Train (or resume) the base, every diversity level and the detector under ``out_dir``.

    Finished parts are skipped, interrupted ones resume. With ``jobs`` > 1, independent runs go
    side by side in worker processes, each with ``threads`` torch threads: the detector runs
    next to the base (and its continuation), then the fine-tunes share the workers. Returns the
    folder of every part by name. ``device`` is where every run computes (scenes and noise are
    drawn on the CPU either way).
    """
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs!r}, threads={threads!r}")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    folders = {BASE: out_dir / BASE, DETECTOR: out_dir / DETECTOR}
    runner = _Runner(jobs, threads, progress, str(device))
    try:
        log(f"[zoo] base model and detector -> {out_dir}")
        detector_done = runner.submit(DETECTOR, config.detector_config(), folders[DETECTOR])
        runner.submit("model", config.base_config(), folders[BASE]).result()
        base_pipeline = folders[BASE] / train_module.PIPELINE
        models = config.models()
        log(f"[zoo] fine-tuning {len(models)} models: {', '.join(m.name for m in models)}")
        tunes = []
        for name, k, instance_seed, run in models:
            folders[name] = out_dir / name
            tunes.append(runner.submit("model", config.finetune_config(k, base_pipeline,
                                                                        instance_seed, run),
                                       folders[name]))
        # Let every run finish before reporting a failure, so one bad part costs no other.
        errors = [f.exception() for f in [detector_done, *tunes]]
        errors = [e for e in errors if e is not None]
        if errors:
            raise errors[0]
    finally:
        runner.close()
    log(f"[zoo] done in {time.perf_counter() - start:.0f} s (this invocation)")
    return folders


# --- the shipped format --------------------------------------------------------------------------
def shipped_folder() -> Path:
    """The zoo shipped inside the package (``dvdlib/data/toyworld``)."""
    return Path(str(resources.files("dvdlib"))) / "data" / "toyworld"


def _embedding_key(text_encoder: CLIPTextModel) -> str:
    """The state-dict name of the token-embedding table (it differs across transformers versions)."""
    table = text_encoder.get_input_embeddings().weight
    return next(name for name, p in text_encoder.named_parameters() if p is table)


def _compact_state(pipe: ToyDiffusionPipeline) -> dict[str, torch.Tensor]:
    state = {f"unet.{k}": v.half() for k, v in pipe.unet.state_dict().items()}
    embedding_key = _embedding_key(pipe.text_encoder)
    for key, value in pipe.text_encoder.state_dict().items():
        if key == embedding_key:
            rows = torch.nonzero(value.abs().sum(dim=1)).flatten()  # [used tokens]
            state[_TOKEN_ROWS] = rows
            state[_TOKEN_VALUES] = value[rows].half()  # [used tokens, hidden]
        elif key.endswith("position_ids"):
            continue  # a constant buffer, rebuilt from the config
        else:
            state[f"text_encoder.{key}"] = value.half()
    return {k: v.contiguous() for k, v in state.items()}


def export_zoo(out_dir: str | Path, dest: str | Path, config: ZooConfig,
               provenance: dict | None = None) -> Path:
    """Write the finished zoo of ``out_dir`` (fine-tuned models, their EMA snapshots at
    ``config.snapshot_steps``, and the detector) to ``dest``."""
    out_dir, dest = Path(out_dir), Path(dest)
    manifest = dict(format="dvdlib-toyworld-zoo-2", zoo=config.to_dict(),
                    provenance=provenance or {}, models={})
    base_record = load_json(out_dir / BASE / train_module.RECORD)
    manifest["base"] = dict(loss=_rounded(base_record["loss"]), seconds=base_record["seconds"],
                            config=base_record["config"])
    first = None
    for name, k, _, run in config.models():
        record = load_json(out_dir / name / train_module.RECORD)
        config_record = dict(record["config"], init_from=BASE)  # a name, not a machine path
        entry = dict(instances=k, world=record["config"]["world"], config=config_record,
                     steps=config.finetune_steps, snapshot_of=None, run=run)
        for step in (*config.snapshot_steps, None):
            pipe = train_module.load_trained(out_dir / name, step)
            first = first or pipe
            shipped = name if step is None else snapshot_name(name, step)
            atomic_write(dest / f"{shipped}.safetensors",
                         lambda p, pipe=pipe: save_file(_compact_state(pipe), str(p)))
            if step is None:
                manifest["models"][name] = dict(entry, loss=_rounded(record["loss"]),
                                                seconds=record["seconds"])
            else:
                manifest["models"][shipped] = dict(entry, steps=step, snapshot_of=name)
    manifest["base"]["config"]["init_from"] = None
    manifest["components"] = dict(
        unet=dict(first.unet.config),
        text_encoder=first.text_encoder.config.to_dict(),
        scheduler=dict(first.scheduler.config),
        pipeline=dict(latent_shift=first.config.latent_shift,
                      latent_scale=first.config.latent_scale),
    )
    detector = detector_module.load_trained_detector(out_dir / DETECTOR)
    detector_record = load_json(out_dir / DETECTOR / detector_module.RECORD)
    atomic_write(dest / DETECTOR_FILE, lambda p: save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in detector.state_dict().items()},
        str(p)))
    manifest["detector"] = dict(names=detector_record["names"],
                                channels=detector_record["channels"],
                                metrics=detector_record["metrics"],
                                config=detector_record["config"],
                                loss=_rounded(detector_record["loss"]),
                                seconds=detector_record["seconds"])
    atomic_write_json(dest / MANIFEST, _plain(manifest))
    return dest


def _rounded(losses: list[float]) -> list[float]:
    """Loss histories to 4 significant digits: plenty for a curve, a third of the file size."""
    return [float(f"{x:.4g}") for x in losses]


def _plain(value):
    """JSON-ready copy: tuples as lists, diffusers' frozen dicts as dicts, private keys dropped."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ZooError(ValueError):
    """A zoo folder whose files cannot be read; the message names the file and what is wrong."""


_REMEDY = "export the zoo again (`dvd toyworld zoo --export DIR`) or copy the folder anew"


def zoo_manifest(folder: str | Path | None = None) -> dict:
    """The manifest (configs, loss histories, detector metrics) of a shipped or exported zoo."""
    folder = Path(folder) if folder is not None else shipped_folder()
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no toy-world zoo at {folder} (missing {MANIFEST}); make one with "
                                "`dvd toyworld zoo --export`")
    try:
        manifest = load_json(path)
    except UnicodeDecodeError as err:
        raise ZooError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}): the file is "
                       f"damaged; {_REMEDY}") from None
    except ValueError as err:
        raise ZooError(f"{path} is not valid JSON ({err}): the file is damaged or truncated; "
                       f"{_REMEDY}") from None
    missing = [key for key in ("models", "components", "detector")
               if not isinstance(manifest, dict) or not isinstance(manifest.get(key), dict)]
    if missing:
        raise ZooError(f"{path} is not a toy-zoo manifest: it lacks {', '.join(missing)}; {_REMEDY}")
    return manifest


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of one of the zoo's weight files; a :class:`ZooError` naming a bad file."""
    if not path.is_file():
        raise ZooError(f"{path} is missing from the zoo folder {path.parent}; {_REMEDY}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        reason = " ".join(str(err).split())
        raise ZooError(f"cannot read {path} ({reason}): the file is damaged or truncated; "
                       f"{_REMEDY}") from None


def check_zoo(folder: str | Path) -> list[str]:
    """Check a zoo folder without loading a model: its manifest, and every weight file's header
    (which a truncated file fails). Returns the model names; raises :class:`ZooError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ZooError(f"zoo folder {str(folder)!r} does not exist or is not a folder; give a "
                       f"folder written by `dvd toyworld zoo --export DIR`")
    manifest = zoo_manifest(folder)
    for name in [*manifest["models"], None]:
        path = folder / (DETECTOR_FILE if name is None else f"{name}.safetensors")
        if not path.is_file():
            raise ZooError(f"{path} is missing from the zoo folder {folder}; {_REMEDY}")
        try:
            with safe_open(str(path), "pt"):
                pass
        except (SafetensorError, OSError) as err:
            reason = " ".join(str(err).split())
            raise ZooError(f"cannot read {path} ({reason}): the file is damaged or truncated; "
                           f"{_REMEDY}") from None
    return model_names(folder)


def model_names(folder: str | Path | None = None, snapshots: bool = False,
                runs: bool = False) -> list[str]:
    """Names of the zoo's finished models, from least to most diverse (unlimited last), then by
    training run and instance seed; with ``snapshots``, their shipped EMA snapshots (``k1@500``)
    instead. Only each level's first training run (``kinf``) unless ``runs``: then its later
    runs too (``kinf``, ``kinf-r1``, ``kinf-r2``; :func:`runs_of` groups them)."""
    models = zoo_manifest(folder)["models"]
    wanted = [n for n in models if (models[n].get("snapshot_of") is not None) == snapshots
              and (runs or not models[n].get("run", 0))]
    return sorted(wanted, key=lambda n: (models[n]["instances"] is None,
                                         models[n]["instances"] or 0, models[n]["steps"],
                                         models[n].get("run", 0),
                                         models[n]["world"]["instance_seed"]))


def runs_of(name: str, folder: str | Path | None = None) -> list[str]:
    """Every training run of the level of the zoo's model ``name``, the first run first:
    ``runs_of("kinf")`` is ``["kinf", "kinf-r1", "kinf-r2"]`` (so is ``runs_of("kinf-r2")``),
    ``runs_of("k4@500")`` is ``["k4@500", "k4-r1@500", ...]``; a model trained once
    (``k1-i3``) is its only run."""
    wanted = parse_name(name)._replace(run=0)
    found = [n for n in model_names(folder, snapshots=wanted.step is not None, runs=True)
             if parse_name(n)._replace(run=0) == wanted]
    if name not in found:
        raise ValueError(f"unknown toy model {name!r}; accepted: "
                         f"{', '.join(model_names(folder, runs=True))}")
    return found


def load_model(name: str = DEFAULT_MODEL, folder: str | Path | None = None,
               device: str | torch.device = "cpu") -> ToyDiffusionPipeline:
    """One model of the zoo (``k1``, ``k4``, ... ``kinf``) as a float32 pipeline."""
    folder = Path(folder) if folder is not None else shipped_folder()
    manifest = zoo_manifest(folder)
    if name not in manifest["models"]:
        raise ValueError(f"unknown toy model {name!r}; accepted: {', '.join(manifest['models'])}")
    components = manifest["components"]
    state = _weights(folder / f"{name}.safetensors")
    unet = UNet2DConditionModel.from_config(components["unet"])
    unet.load_state_dict({k[len("unet."):]: v.float() for k, v in state.items()
                          if k.startswith("unet.")})
    text_encoder = CLIPTextModel(CLIPTextConfig(**components["text_encoder"]))
    text_state = {k[len("text_encoder."):]: v.float() for k, v in state.items()
                  if k.startswith("text_encoder.") and k not in (_TOKEN_ROWS, _TOKEN_VALUES)}
    embedding = torch.zeros_like(text_encoder.get_input_embeddings().weight)  # [vocab, hidden]
    embedding[state[_TOKEN_ROWS]] = state[_TOKEN_VALUES].float()
    text_state[_embedding_key(text_encoder)] = embedding
    missing, unexpected = text_encoder.load_state_dict(text_state, strict=False)
    if unexpected or [k for k in missing if not k.endswith("position_ids")]:
        raise ValueError(f"{name}.safetensors does not match its text-encoder config: "
                         f"missing {missing}, unexpected {unexpected}")
    pipe = ToyDiffusionPipeline(unet=unet.eval(), text_encoder=text_encoder.eval(),
                                tokenizer=clip_tokenizer(text_encoder.config.max_position_embeddings),
                                scheduler=DDIMScheduler.from_config(components["scheduler"]),
                                **components["pipeline"])
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def load_zoo(folder: str | Path | None = None, device: str | torch.device = "cpu",
             runs: bool = False) -> dict[str, ToyDiffusionPipeline]:
    """Every finished model of the zoo, by name, from least to most diverse (with ``runs``, every
    training run of each level too: :func:`model_names`)."""
    return {name: load_model(name, folder, device) for name in model_names(folder, runs=runs)}


def load_detector(folder: str | Path | None = None) -> detector_module.PresenceDetector:
    """The zoo's detector (float32, eval mode) with its held-out ``metrics``."""
    folder = Path(folder) if folder is not None else shipped_folder()
    record = zoo_manifest(folder)["detector"]
    detector = detector_module.PresenceDetector(record["names"], record["channels"])
    state = _weights(folder / DETECTOR_FILE)
    detector.load_state_dict({k: v.float() if v.is_floating_point() else v
                              for k, v in state.items()})
    detector.metrics = record["metrics"]
    return detector.eval()


def world_of(name: str, folder: str | Path | None = None) -> World:
    """The world a zoo model was fine-tuned on (its limited concept's K instances included)."""
    models = zoo_manifest(folder)["models"]
    if name not in models:
        raise ValueError(f"unknown toy model {name!r}; accepted: {', '.join(models)}")
    return World.from_dict(models[name]["world"])


def sequence_of_levels(values: Sequence[str]) -> tuple[int | None, ...]:
    return tuple(parse_level(v) for v in values)
