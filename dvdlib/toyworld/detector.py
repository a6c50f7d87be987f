"""The toy world's detector: which concepts and objects does an image show?

A small multi-label CNN gives one presence probability per concept and object of the world. It is
trained on rendered scenes (empty, a concept, an object, or any concept printed on any object,
all at full diversity) with
augmentation (brightness and contrast jitter, blur, pixel noise) so it also reads the softer,
noisier images a diffusion model makes. Its accuracy is measured on held-out renders (a seed
stream training never uses) and saved beside its weights. Training is seeded, checkpointed and
resumable like :mod:`dvdlib.toyworld.train`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from dvdlib.store import (atomic_write, atomic_write_json, folder_lock, load_checkpoint, load_json,
                          save_torch, to_cpu)
from dvdlib.toyworld.train import StepLog, step_seed
from dvdlib.toyworld.world import CONCEPTS, OBJECTS, RESOLUTION, World, check_name

WEIGHTS = "detector.safetensors"
RECORD = "detector.json"
CHECKPOINT = "checkpoint.pt"
HELDOUT_STREAM = 1_000_003  # seed-stream id of the held-out renders; training uses step numbers


class PresenceDetector(nn.Module):
    """Three conv stages (32 -> 16 -> 8 -> 4 pixels) and a two-layer head: one logit per concept or object."""

    def __init__(self, names: Sequence[str] = (*CONCEPTS, *OBJECTS), channels: Sequence[int] = (16, 32, 64)):
        super().__init__()
        self.names = tuple(check_name(n, (*CONCEPTS, *OBJECTS), "label") for n in names)
        self.channels = tuple(channels)
        layers, width = [], 3
        for out in self.channels:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.Conv2d(out, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        side = RESOLUTION // 2 ** len(self.channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * side * side, 128), nn.ReLU(),
                                  nn.Linear(128, len(self.names)))
        self.metrics: dict = {}  # held-out accuracy, filled by training or loading

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` ``[batch, 3, 32, 32]`` in [0, 1] -> logits ``[batch, name]``."""
        return self.head(self.features(images * 2 - 1))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor | Sequence[Image.Image]) -> torch.Tensor:
        """Presence probability of every concept and object, ``[image, name]``, in one forward pass.

        PIL images of another size are resized to 32x32 (bilinear) first.
        """
        if not isinstance(images, torch.Tensor):
            images = images_to_tensor(images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [batch, 3, h, w], got {tuple(images.shape)}")
        if images.shape[-2:] != (RESOLUTION, RESOLUTION):
            images = F.interpolate(images, size=(RESOLUTION, RESOLUTION), mode="bilinear",
                                   align_corners=False, antialias=True)
        was_training = self.training
        self.eval()
        try:
            return torch.sigmoid(self(images.to(self.device, torch.float32))).cpu()
        finally:
            self.train(was_training)


def images_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """PIL images (all one size) -> ``[image, 3, h, w]`` float in [0, 1]."""
    if not images:
        raise ValueError("no images given")
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255 for im in images]
    sizes = {a.shape for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"images must all have one size, got {sorted(sizes)}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # [image, 3, h, w]


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random brightness/contrast, blur (half the images) and pixel noise; ``[batch, 3, h, w]``."""
    n = len(images)
    contrast = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=generator)
    brightness = 0.1 * torch.rand(n, 1, 1, 1, generator=generator) - 0.05
    out = (images - 0.5) * contrast + 0.5 + brightness
    blurred = torch.rand(n, generator=generator) < 0.5
    sigmas = torch.where(blurred, 0.3 + 0.7 * torch.rand(n, generator=generator),
                         torch.full((n,), 1e-3))  # [batch]; a tiny sigma leaves the image as is
    offsets = torch.arange(5, dtype=torch.float32) - 2  # [5]
    kernel_1d = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigmas.view(-1, 1) ** 2))  # [batch, 5]
    kernel_1d = kernel_1d / kernel_1d.sum(dim=1, keepdim=True)
    kernels = kernel_1d.view(n, 1, 5, 1) * kernel_1d.view(n, 1, 1, 5)  # [batch, 1, 5, 5]
    kernels = kernels.repeat_interleave(3, dim=0)  # [batch * 3, 1, 5, 5]: one per channel
    padded = F.pad(out.reshape(1, n * 3, *out.shape[-2:]), (2, 2, 2, 2), mode="replicate")
    out = F.conv2d(padded, kernels, groups=n * 3).reshape(out.shape)  # [batch, 3, h, w]
    noise_level = 0.08 * torch.rand(n, 1, 1, 1, generator=generator)
    out = out + noise_level * torch.randn(out.shape, generator=generator)
    return out.clamp(0, 1)


@dataclass(frozen=True)
class DetectorConfig:
    """Everything that decides the trained detector."""

    world: dict = field(default_factory=lambda: World().to_dict())
    channels: tuple[int, ...] = (16, 32, 64)
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    heldout: int = 2000
    checkpoint_every: int = 250

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("steps", "batch_size", "heldout", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        World.from_dict(self.world)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out


def heldout_accuracy(detector: PresenceDetector, world: World, n: int, seed: int,
                     batch_size: int = 500) -> dict:
    """Accuracy on ``n`` fresh renders (threshold 0.5): exact set and per label."""
    correct_sets, correct_labels = 0, torch.zeros(len(detector.names))
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        scenes = world.sample_detector_scenes(count, (seed, HELDOUT_STREAM, start))
        predicted = detector.probabilities(scenes.images) > 0.5  # [scene, name]
        truth = scenes.labels
        correct_sets += int((predicted == truth).all(dim=1).sum())
        correct_labels += (predicted == truth).float().sum(dim=0)
    return dict(
        heldout_scenes=n,
        exact_set_accuracy=correct_sets / n,
        per_label_accuracy={s: float(c) / n for s, c in zip(detector.names, correct_labels)},
    )


def is_finished(out_dir: str | Path) -> bool:
    out_dir = Path(out_dir)
    return (out_dir / WEIGHTS).is_file() and (out_dir / RECORD).is_file() and bool(
        load_json(out_dir / RECORD).get("finished"))


def train_detector(config: DetectorConfig, out_dir: str | Path, progress: bool = True,
                   progress_position: int = 0, stop_after: int | None = None,
                   device: str | torch.device = "cpu") -> Path:
    """Train (or resume) the detector into ``out_dir`` on ``device``; returns the folder.

    ``stop_after`` ends the run after that many total steps without finishing it. Scenes and
    augmentation are drawn on the CPU, so every device sees the same batches.
    """
    out_dir = Path(out_dir)
    with folder_lock(out_dir):
        if is_finished(out_dir):
            if load_json(out_dir / RECORD)["config"] != config.to_dict():
                raise ValueError(f"{out_dir} holds a finished detector with a different "
                                 "configuration; use another folder or delete it")
            return out_dir
        world = World.from_dict(config.world)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(config.seed)
        try:
            detector = PresenceDetector(world.names, config.channels).to(device)
        finally:
            torch.random.set_rng_state(generator_state)
        optimizer = torch.optim.AdamW(detector.parameters(), lr=config.learning_rate)
        history: list[float] = []
        start_step, seconds = 0, 0.0
        checkpoint_path = out_dir / CHECKPOINT
        state = load_checkpoint(checkpoint_path, config.to_dict())
        if state is not None:
            detector.load_state_dict(state["detector"])
            optimizer.load_state_dict(state["optimizer"])
            history, start_step, seconds = state["history"], state["step"], state["seconds"]

        last = config.steps if stop_after is None else min(config.steps, stop_after)
        log = StepLog(history, seconds, start_step, config.steps, last, config.checkpoint_every,
                      disable=not progress, desc=out_dir.name, position=progress_position)
        detector.train()
        for step in range(start_step, last):
            generator = torch.Generator().manual_seed(step_seed(config.seed, step, stream=1))
            scenes = world.sample_detector_scenes(config.batch_size, (config.seed, step))
            # Cosine decay: a small network settles better with a falling rate.
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * 0.5 * (1 + np.cos(np.pi * step / config.steps))
            logits = detector(augment(scenes.images, generator).to(device))
            loss = F.binary_cross_entropy_with_logits(logits, scenes.labels.float().to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if log.record(step, loss.item()):
                save_torch(dict(config=config.to_dict(), step=step + 1, history=history,
                                seconds=log.seconds, detector=detector.state_dict(),
                                optimizer=optimizer.state_dict()), checkpoint_path)
        log.close()
        if last < config.steps:
            return out_dir

        detector.eval()
        metrics = heldout_accuracy(detector, world, config.heldout, config.seed)
        atomic_write(out_dir / WEIGHTS, lambda p: save_file(to_cpu(detector.state_dict()), str(p)))
        atomic_write_json(out_dir / RECORD, dict(
            config=config.to_dict(), names=list(detector.names), channels=list(detector.channels),
            metrics=metrics, loss=history, seconds=log.seconds, finished=True))
        return out_dir


def load_trained_detector(out_dir: str | Path) -> PresenceDetector:
    """The finished detector of a training folder, in eval mode, with its held-out metrics."""
    out_dir = Path(out_dir)
    if not is_finished(out_dir):
        raise FileNotFoundError(f"no finished detector in {out_dir} (missing {WEIGHTS} or {RECORD})")
    record = load_json(out_dir / RECORD)
    detector = PresenceDetector(record["names"], record["channels"])
    detector.load_state_dict(load_file(str(out_dir / WEIGHTS)))
    detector.metrics = record["metrics"]
    return detector.eval()
