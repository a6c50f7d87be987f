"""What the toy world costs on this machine: training steps, sampling, file sizes.

Prints measured figures side by side with the times the shipped zoo recorded when it was made.
Run: ``python benchmarks/toyworld_costs.py [--threads 1] [--steps 5]``. Measures on the CPU unless
``--device`` names another device.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from dvdlib.toyworld import zoo
from dvdlib.toyworld.detector import DetectorConfig, train_detector
from dvdlib.toyworld.evaluate import sample_images
from dvdlib.toyworld.train import TrainConfig, train


def seconds_per_step(run, steps: int) -> float:
    """Time ``steps`` steps after one warm-up step (which pays for model building and imports)."""
    with tempfile.TemporaryDirectory() as folder:
        run(Path(folder), 1)
        start = time.perf_counter()
        run(Path(folder), 1 + steps)
        return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per model")
    parser.add_argument("--images", type=int, default=16, help="images timed for sampling")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = zoo.zoo_manifest()
    print(f"torch threads: {args.threads}; device: {args.device}")

    model_config = TrainConfig(steps=10_000, checkpoint_every=10_000)
    model_step = seconds_per_step(
        lambda folder, n: train(model_config, folder, progress=False, stop_after=n), args.steps)
    detector_config = DetectorConfig(steps=10_000, checkpoint_every=10_000)
    detector_step = seconds_per_step(
        lambda folder, n: train_detector(detector_config, folder, progress=False, stop_after=n),
        args.steps)

    pipe = zoo.load_model().to(args.device)
    prompts = ["sunset coaster"] * args.images
    sample_images(pipe, prompts[:2], list(range(2)))  # warm-up
    start = time.perf_counter()
    sample_images(pipe, prompts, list(range(args.images)), batch_size=args.images)
    per_image = (time.perf_counter() - start) / args.images

    print("\n== training (measured now vs. recorded when the shipped zoo was made) ==")
    base = manifest["base"]
    print(f"{'run':<10}{'steps':>7}{'batch':>7}{'s/step now':>12}{'recorded s':>12}"
          f"{'recorded s/step':>17}")
    print(f"{'base':<10}{len(base['loss']):>7}{base['config']['batch_size']:>7}"
          f"{model_step:>12.3f}{base['seconds']:>12.0f}{base['seconds'] / len(base['loss']):>17.3f}")
    for name in zoo.model_names():
        record = manifest["models"][name]
        steps = len(record["loss"])
        print(f"{name:<10}{steps:>7}{record['config']['batch_size']:>7}{model_step:>12.3f}"
              f"{record['seconds']:>12.0f}{record['seconds'] / steps:>17.3f}")
    detector = manifest["detector"]
    steps = len(detector["loss"])
    print(f"{'detector':<10}{steps:>7}{detector['config']['batch_size']:>7}{detector_step:>12.3f}"
          f"{detector['seconds']:>12.0f}{detector['seconds'] / steps:>17.3f}")

    print("\n== sampling ==")
    print(f"{per_image * 1000:.0f} ms per 32x32 image (DDIM 20 steps, guidance 4, batch "
          f"{args.images}, classifier-free guidance doubles the UNet batch)")

    print("\n== shipped files ==")
    folder = zoo.shipped_folder()
    total = 0
    for path in sorted(folder.glob("*")):
        size = path.stat().st_size
        total += size
        print(f"{path.name:<28}{size / 1e6:>8.2f} MB")
    print(f"{'total':<28}{total / 1e6:>8.2f} MB")


if __name__ == "__main__":
    main()
