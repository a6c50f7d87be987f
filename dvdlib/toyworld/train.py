"""Train a toy model on the toy world: seeded, checkpointed, resumable.

One training run writes into its own folder:

- ``checkpoint.pt``: weights, their exponential moving average (EMA), optimiser state, step and
  loss history, rewritten atomically every ``checkpoint_every`` steps;
- ``pipeline/``: the finished model (EMA weights) as ``ToyDiffusionPipeline.save_pretrained``;
- ``training.json``: the configuration, the loss of every step and the time taken;
- ``snapshots/step-NNNNNN.pt``: the EMA weights (fp16) at every checkpoint, kept, so a model
  can be read at any training length (:func:`load_trained` with ``step``).

Rerunning the same command continues from the last checkpoint. Every step draws its scenes,
noise, timesteps and caption dropout from generators seeded by ``(seed, step)``, so a resumed run
repeats exactly what the uninterrupted one would have done (bit for bit with the same number of
torch threads on the same machine).

The loss is the v-prediction MSE under the DDPM forward process of the pipeline's cosine
schedule. Fine-tuning (``init_from``) starts weights and EMA from a finished pipeline.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dvdlib.toyworld.pipeline import (ToyDiffusionPipeline, new_pipeline,
                                      training_noise_scheduler)
from dvdlib.store import (atomic_folder, atomic_write_json, folder_lock, load_checkpoint, load_json,
                          save_torch)
from dvdlib.toyworld.world import Scenes, World

CHECKPOINT = "checkpoint.pt"
PIPELINE = "pipeline"
RECORD = "training.json"
SNAPSHOTS = "snapshots"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained model (the output folder does not)."""

    world: dict = field(default_factory=lambda: World().to_dict())  # World.to_dict()
    steps: int = 5000
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    final_lr_fraction: float = 0.1  # cosine decay from learning_rate to this fraction of it
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    caption_dropout: float = 0.1  # share of captions replaced by "" (for classifier-free guidance)
    seed: int = 0
    checkpoint_every: int = 250
    init_from: str | None = None  # a finished pipeline folder to fine-tune

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        World.from_dict(self.world)  # validates the world description

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``final_lr_fraction`` of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.final_lr_fraction
    return config.learning_rate * (low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress)))


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """A 63-bit seed for one step's torch generator, derived from ``(seed, step, stream)``."""
    return int(np.random.SeedSequence([seed, step, stream]).generate_state(2, np.uint64)[0] >> 1)


def _trainable(pipe: ToyDiffusionPipeline) -> dict[str, torch.nn.Module]:
    return {"unet": pipe.unet, "text_encoder": pipe.text_encoder}


def diffusion_loss(pipe: ToyDiffusionPipeline, noise_scheduler, images: torch.Tensor,
                   captions: list[str], generator: torch.Generator) -> torch.Tensor:
    """The v-prediction MSE of one batch; ``images`` ``[batch, 3, 32, 32]`` in [0, 1]."""
    latents = pipe.images_to_latents(images.to(pipe.device))  # [batch, 12, 16, 16]
    noise = torch.randn(latents.shape, generator=generator).to(latents.device)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(images),),
                              generator=generator).to(latents.device)  # [batch]
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    target = noise_scheduler.get_velocity(latents, noise, timesteps)
    text = pipe.encode_prompt(captions)  # [batch, positions, 64]
    prediction = pipe.unet(noisy, timesteps, encoder_hidden_states=text).sample
    return F.mse_loss(prediction, target)


def _initial_pipeline(config: TrainConfig, world: World) -> ToyDiffusionPipeline:
    if config.init_from is None:
        return new_pipeline(world.words, seed=config.seed)
    source = Path(config.init_from)
    if not (source / "model_index.json").is_file():
        raise FileNotFoundError(f"init_from {source} is not a saved ToyDiffusionPipeline folder "
                                "(no model_index.json)")
    pipe = ToyDiffusionPipeline.from_pretrained(source)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def is_finished(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds a finished run (its pipeline and record)."""
    out_dir = Path(out_dir)
    if not (out_dir / RECORD).is_file() or not (out_dir / PIPELINE / "model_index.json").is_file():
        return False
    return bool(load_json(out_dir / RECORD).get("finished"))


class StepLog:
    """The loss history, progress bar and training time of a resumable run, step by step.

    ``record`` returns True after a step that ends a checkpoint interval or the run (``last``),
    with ``seconds`` brought up to date for the checkpoint written then.
    """

    def __init__(self, history: list[float], seconds: float, start_step: int, total: int,
                 last: int, checkpoint_every: int, **bar_options):
        self.history, self.seconds, self.last = history, seconds, last
        self.checkpoint_every = checkpoint_every
        self.bar = tqdm(total=total, initial=start_step, dynamic_ncols=True, **bar_options)
        self._clock = time.perf_counter()

    def record(self, step: int, loss: float) -> bool:
        self.history.append(loss)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{np.mean(self.history[-50:]):.4f}")
        done = step + 1
        if done % self.checkpoint_every and done != self.last:
            return False
        now = time.perf_counter()
        self.seconds += now - self._clock
        self._clock = now
        return True

    def close(self) -> None:
        self.bar.close()


def train(config: TrainConfig, out_dir: str | Path, progress: bool = True,
          progress_position: int = 0, stop_after: int | None = None,
          device: str | torch.device = "cpu") -> Path:
    """Train (or resume, or fine-tune) into ``out_dir`` on ``device``; returns the finished
    pipeline folder.

    ``stop_after`` ends the run after that many total steps without finishing it (as if it had
    been killed right after that step's checkpoint); tests use it to check resuming. Scenes are
    drawn and noise is sampled on the CPU from the same seeds on every device, so only the
    arithmetic differs between devices; checkpoints and snapshots are kept on the CPU and resume
    on any device.
    """
    out_dir = Path(out_dir)
    with folder_lock(out_dir):
        return _train(config, out_dir, progress, progress_position, stop_after,
                      torch.device(device))


def _train(config: TrainConfig, out_dir: Path, progress: bool, progress_position: int,
           stop_after: int | None, device: torch.device) -> Path:
    if is_finished(out_dir):
        record = load_json(out_dir / RECORD)
        if record["config"] != config.to_dict():
            raise ValueError(f"{out_dir} holds a finished run with a different configuration; "
                             "use another folder or delete it")
        return out_dir / PIPELINE
    world = World.from_dict(config.world)
    pipe = _initial_pipeline(config, world).to(device)
    modules = _trainable(pipe)
    for module in modules.values():
        module.train()
    parameters = [p for m in modules.values() for p in m.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    ema = [p.detach().clone() for p in parameters]
    history: list[float] = []
    start_step, seconds = 0, 0.0

    checkpoint_path = out_dir / CHECKPOINT
    state = load_checkpoint(checkpoint_path, config.to_dict())
    if state is not None:
        for name, module in modules.items():
            module.load_state_dict(state[name])
        optimizer.load_state_dict(state["optimizer"])
        for target, saved in zip(ema, state["ema"]):
            target.copy_(saved)
        history, start_step, seconds = state["history"], state["step"], state["seconds"]

    noise_scheduler = training_noise_scheduler(pipe)
    last = config.steps if stop_after is None else min(config.steps, stop_after)
    log = StepLog(history, seconds, start_step, config.steps, last, config.checkpoint_every,
                  disable=not progress, desc=out_dir.name, position=progress_position, leave=True)
    batches = scene_batches(world, config, start_step, last, ahead=device.type != "cpu")
    for step, scenes in zip(range(start_step, last), batches):
        generator = torch.Generator().manual_seed(step_seed(config.seed, step))
        dropped = torch.rand(config.batch_size, generator=generator) < config.caption_dropout
        captions = ["" if d else c for c, d in zip(scenes.captions, dropped.tolist())]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(config, step)
        loss = diffusion_loss(pipe, noise_scheduler, scenes.images, captions, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        with torch.no_grad():  # one fused call, not one per tensor: launches count on a GPU
            torch._foreach_lerp_(ema, [p.detach() for p in parameters], 1 - config.ema_decay)
        if log.record(step, loss.item()):
            done = step + 1
            save_torch(dict(config=config.to_dict(), step=done, history=history,
                            seconds=log.seconds, optimizer=optimizer.state_dict(), ema=ema,
                            **{name: m.state_dict() for name, m in modules.items()}),
                       checkpoint_path)
            if done % config.checkpoint_every == 0:
                save_torch(dict(step=done, ema=[e.half() for e in ema]),
                           snapshot_path(out_dir, done))
    log.close()
    if last < config.steps:
        return checkpoint_path

    with torch.no_grad():
        for p, average in zip(parameters, ema):
            p.copy_(average)
    for module in modules.values():
        module.eval()
    atomic_folder(out_dir / PIPELINE, lambda folder: pipe.save_pretrained(folder))
    atomic_write_json(out_dir / RECORD, dict(config=config.to_dict(), loss=history,
                                             seconds=log.seconds,
                                             finished=True, torch_threads=torch.get_num_threads(),
                                             device=device.type))
    return out_dir / PIPELINE


def scene_batches(world: World, config: TrainConfig, start: int, stop: int, ahead: bool):
    """The training scenes of steps ``start`` to ``stop - 1``, each drawn from ``(seed, step)``.

    With ``ahead``, the next batch is drawn in a second thread while the current step computes:
    on a GPU, drawing on the CPU would otherwise leave the device idle for half of each step. On
    a CPU the two would only compete for the same cores.
    """
    def draw(step: int) -> Scenes:
        return world.sample(config.batch_size, (config.seed, step))

    if not ahead:
        yield from (draw(step) for step in range(start, stop))
        return
    with ThreadPoolExecutor(max_workers=1) as drawer:
        pending = drawer.submit(draw, start) if start < stop else None
        for step in range(start, stop):
            scenes = pending.result()
            pending = drawer.submit(draw, step + 1) if step + 1 < stop else None
            yield scenes


def snapshot_path(out_dir: str | Path, step: int) -> Path:
    """Where a run keeps its EMA weights after ``step`` steps."""
    return Path(out_dir) / SNAPSHOTS / f"step-{int(step):06d}.pt"


def load_trained(out_dir: str | Path, step: int | None = None) -> ToyDiffusionPipeline:
    """The finished pipeline of a training folder; with ``step``, its EMA weights after that
    many steps instead of the final ones."""
    folder = Path(out_dir) / PIPELINE
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no finished model in {out_dir} (missing {PIPELINE}/model_index.json)")
    pipe = ToyDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    if step is not None:
        path = snapshot_path(out_dir, step)
        if not path.is_file():
            kept = sorted(q.stem for q in (Path(out_dir) / SNAPSHOTS).glob("step-*.pt"))
            raise FileNotFoundError(f"no snapshot after {step} steps in {out_dir}; kept: "
                                    f"{', '.join(kept) or 'none'}")
        saved = torch.load(path, weights_only=True)["ema"]
        with torch.no_grad():
            for p, average in zip([p for m in _trainable(pipe).values() for p in m.parameters()],
                                  saved):
                p.copy_(average.float())
    return pipe
