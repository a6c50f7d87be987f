"""``dvd toyworld``: train toy models, the detector and the whole zoo from the command line.

The ``toyworld`` command itself is declared in :mod:`dvdlib.commands.toyworld`, which calls
:func:`add_commands` only when ``dvd toyworld`` is parsed (the world's module imports torch).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from dvdlib.toyworld.world import ATTRIBUTES


def _level(text: str):
    from dvdlib.toyworld.zoo import parse_level

    try:
        return parse_level(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Declare ``train``, ``detector`` and ``zoo`` under ``dvd toyworld`` (:mod:`dvdlib.commands.toyworld`)."""
    commands = parser.add_subparsers(dest="toyworld_command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    common.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default 1: fastest on a shared CPU)")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")

    train = commands.add_parser(
        "train", parents=[common], help="train or fine-tune one model",
        description="Train one toy model into OUT (checkpoint.pt, pipeline/, training.json).")
    train.add_argument("--out", required=True, type=Path, help="output folder")
    train.add_argument("--steps", type=int, default=5000,
                       help="training steps (default 5000, as for the zoo's base)")
    train.add_argument("--instances", type=_level, default=None, metavar="K",
                       help="distinct instances of the limited concept (default unlimited)")
    train.add_argument("--limited", default="circle", help="the low-diversity concept")
    train.add_argument("--init-from", type=Path, default=None, metavar="PIPELINE",
                       help="fine-tune this saved pipeline folder instead of starting fresh")
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--warmup-steps", type=int, default=200)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--checkpoint-every", type=int, default=250)
    train.set_defaults(func=_train)

    detector = commands.add_parser(
        "detector", parents=[common], help="train the shape detector",
        description="Train the multi-label shape detector into OUT and measure its held-out "
        "accuracy.")
    detector.add_argument("--out", required=True, type=Path, help="output folder")
    detector.add_argument("--steps", type=int, default=1000)
    detector.add_argument("--checkpoint-every", type=int, default=250)
    detector.set_defaults(func=_detector)

    zoo = commands.add_parser(
        "zoo", parents=[common], help="train the whole zoo (base, every K, detector)",
        description="Train a diverse base model, fine-tune it once per diversity level K of the "
        "limited concept, train the detector, and optionally export the small fp16 files that "
        "the package ships.")
    zoo.add_argument("--out", required=True, type=Path, help="working folder (checkpoints)")
    zoo.add_argument("--levels", nargs="+", type=_level, default=None, metavar="K",
                     help="diversity levels (default: 1 4 16 64 unlimited)")
    zoo.add_argument("--fixed-attributes", nargs="+", default=list(ATTRIBUTES),
                     choices=ATTRIBUTES, metavar="ATTRIBUTE",
                     help="what stays fixed in each of the K instances of the limited concept "
                     f"(default: {' '.join(ATTRIBUTES)}; accepted: {', '.join(ATTRIBUTES)})")
    zoo.add_argument("--instance-seed", type=int, default=None,
                     help="seed of the K fixed instances (default: --seed)")
    zoo.add_argument("--base-steps", type=int, default=5000)
    zoo.add_argument("--base-continue-steps", type=int, default=0,
                     help="a second run of the base at the fine-tuning rate (default 0: none)")
    zoo.add_argument("--finetune-steps", type=int, default=1500)
    zoo.add_argument("--detector-steps", type=int, default=1000)
    zoo.add_argument("--checkpoint-every", type=int, default=250)
    zoo.add_argument("--jobs", type=int, default=1,
                     help="runs side by side, each in its own process (default 1)")
    zoo.add_argument("--export", type=Path, default=None, metavar="DEST",
                     help="write the finished zoo's shipped files here")
    zoo.set_defaults(func=_zoo)


def _setup(args) -> None:
    import torch  # here, not at the top: `dvd --help` should not wait for torch

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)


def _train(args) -> int:
    from dvdlib.toyworld.train import TrainConfig, train
    from dvdlib.toyworld.world import World

    _setup(args)
    world = World(limited=args.limited, instances=args.instances, instance_seed=args.seed)
    config = TrainConfig(world=world.to_dict(), steps=args.steps, seed=args.seed,
                         learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
                         batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                         init_from=str(args.init_from) if args.init_from else None)
    folder = train(config, args.out, progress=not args.no_progress)
    print(f"dvd toyworld train: model in {folder}")
    return 0


def _detector(args) -> int:
    from dvdlib.toyworld.detector import DetectorConfig, load_trained_detector, train_detector

    _setup(args)
    config = DetectorConfig(steps=args.steps, seed=args.seed,
                            checkpoint_every=args.checkpoint_every)
    folder = train_detector(config, args.out, progress=not args.no_progress)
    metrics = load_trained_detector(folder).metrics
    print(f"dvd toyworld detector: {folder}; held-out exact-set accuracy "
          f"{metrics['exact_set_accuracy']:.4f} on {metrics['heldout_scenes']} renders")
    return 0


def _zoo(args) -> int:
    from dvdlib.toyworld.zoo import LEVELS, ZooConfig, export_zoo, train_zoo

    _setup(args)
    config = ZooConfig(seed=args.seed, levels=tuple(args.levels) if args.levels else LEVELS,
                       fixed_attributes=tuple(args.fixed_attributes),
                       instance_seed=args.instance_seed,
                       base_steps=args.base_steps, base_continue_steps=args.base_continue_steps,
                       finetune_steps=args.finetune_steps,
                       detector_steps=args.detector_steps, checkpoint_every=args.checkpoint_every)
    start = time.perf_counter()
    train_zoo(config, args.out, jobs=args.jobs, threads=args.threads,
              progress=not args.no_progress)
    if args.export:
        import diffusers
        import torch
        import transformers

        levels = " ".join("unlimited" if k is None else str(k) for k in config.levels)
        # The working folder is the user's own scratch space: recorded as WORK, not as a path.
        variant = f"--fixed-attributes {' '.join(config.fixed_attributes)} "
        if args.instance_seed is not None:
            variant += f"--instance-seed {args.instance_seed} "
        command = (f"dvd toyworld zoo --out WORK --seed {args.seed} --levels {levels} {variant}"
                   f"--base-steps {args.base_steps} --base-continue-steps "
                   f"{args.base_continue_steps} --finetune-steps {args.finetune_steps} "
                   f"--detector-steps {args.detector_steps} --checkpoint-every "
                   f"{args.checkpoint_every} --jobs {args.jobs} --threads {args.threads} "
                   f"--export {args.export.as_posix()}")
        provenance = dict(
            command=command, seed=args.seed, jobs=args.jobs, threads=args.threads,
            python=platform.python_version(), torch=torch.__version__,
            diffusers=diffusers.__version__, transformers=transformers.__version__,
            machine=platform.machine(),
        )
        export_zoo(args.out, args.export, config, provenance)
        print(f"dvd toyworld zoo: exported to {args.export} "
              f"({time.perf_counter() - start:.0f} s in this invocation)")
    return 0
