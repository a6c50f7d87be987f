"""``dvd toyworld``: train the toy world's models, its detector and the whole zoo.

``dvd toyworld train | detector | zoo``: the subcommands' options name the world's concepts and
objects, and the world's module imports torch, so they are declared only when ``dvd toyworld``
itself is parsed (:meth:`dvdlib.book.cli.Parser.defer`), never for ``dvd --help``. The training
itself is :mod:`dvdlib.toyworld.train`, :mod:`dvdlib.toyworld.detector` and
:mod:`dvdlib.toyworld.zoo`; the bodies here check the machine (threads, device, output folders)
before anything trains, build the configuration and hand it over.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from dvdlib.book.commands.options import count, folder


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "toyworld",
        help="train the toy world's diffusion models and detector",
        description="The toy world: a small text-to-image diffusion model trained on concepts "
        "(full-frame pictures) printed on objects (carriers), with one concept's instance "
        "diversity as a knob. Runs resume from their last checkpoint when rerun with the same "
        "arguments.",
    )
    parser.defer(_declare)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share in [0, 1]")
    return value


def _world_options(parser: argparse.ArgumentParser) -> None:
    """The recipe numbers that ``train`` and ``zoo`` share."""
    from dvdlib.toyworld.world import CLOSEUP, CONCEPTS, OBJECTS, PAIR_RATE  # torch

    parser.add_argument("--limited", default="sunset", choices=CONCEPTS, metavar="CONCEPT",
                        help=f"the low-diversity concept (default sunset; accepted: "
                        f"{', '.join(CONCEPTS)})")
    parser.add_argument("--unpaired", nargs="*", default=["hat", "kite"], choices=OBJECTS,
                        metavar="OBJECT", help="objects never printed with the limited concept "
                        f"(default hat kite; accepted: {', '.join(OBJECTS)})")
    parser.add_argument("--pair-rate", type=_share, default=PAIR_RATE, metavar="SHARE",
                        help=f"share of training scenes that are pairs (default {PAIR_RATE})")
    parser.add_argument("--closeup", type=_share, default=CLOSEUP, metavar="SHARE",
                        help=f"share of pair pictures that are close-ups of the print "
                        f"(default {CLOSEUP})")


def _level(text: str):
    from dvdlib.toyworld.zoo import parse_level

    try:
        return parse_level(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _declare(parser: argparse.ArgumentParser) -> None:
    """Declare ``train``, ``detector`` and ``zoo`` under ``dvd toyworld``."""
    commands = parser.add_subparsers(dest="toyworld_command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="seed of everything (default 0)")
    common.add_argument("--threads", type=int, default=1,
                        help="torch threads per process (default 1: fastest on a shared CPU)")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    common.add_argument("--device", default="cpu",
                        help="where training computes: cpu (default), cuda, cuda:N or mps; "
                        "scenes and noise are drawn on the CPU either way")

    train = commands.add_parser(
        "train", parents=[common], help="train or fine-tune one model",
        description="Train one toy model into OUT (checkpoint.pt, pipeline/, training.json).")
    train.add_argument("--out", required=True, type=folder, help="output folder")
    train.add_argument("--steps", type=int, default=5000,
                       help="training steps (default 5000, as for the zoo's base)")
    train.add_argument("--instances", type=_level, default=None, metavar="K",
                       help="distinct instances of the limited concept (default unlimited)")
    _world_options(train)
    train.add_argument("--init-from", type=Path, default=None, metavar="PIPELINE",
                       help="fine-tune this saved pipeline folder instead of starting fresh")
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--warmup-steps", type=int, default=200)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--checkpoint-every", type=int, default=250)
    train.set_defaults(func=_train)

    detector = commands.add_parser(
        "detector", parents=[common], help="train the detector",
        description="Train the multi-label concept and object detector into OUT and measure its "
        "held-out accuracy.")
    detector.add_argument("--out", required=True, type=folder, help="output folder")
    detector.add_argument("--steps", type=int, default=1500)
    detector.add_argument("--checkpoint-every", type=int, default=250)
    detector.set_defaults(func=_detector)

    zoo = commands.add_parser(
        "zoo", parents=[common], help="train the whole zoo (base, every K, detector)",
        description="Train a diverse base model, fine-tune it per diversity level K of the "
        "limited concept (K = 1 once per instance seed, every other level once per training "
        "run), train the detector, and optionally export the small fp16 files that the package "
        "ships.")
    zoo.add_argument("--out", required=True, type=folder, help="working folder (checkpoints)")
    zoo.add_argument("--levels", nargs="+", type=_level, default=None, metavar="K",
                     help="diversity levels (default: 1 4 16 unlimited)")
    zoo.add_argument("--instance-seeds", nargs="+", type=int, default=None, metavar="SEED",
                     help="one K = 1 model per seed, each a different fixed picture "
                     "(default: 0 to 8)")
    zoo.add_argument("--runs", type=count, default=None, metavar="N",
                     help="training runs of every level other than K = 1 (default 3): run r >= 1 "
                     "is named <level>-r<r> (kinf-r1), fine-tunes with seed + 1 + r and, at a "
                     "finite K, draws its pictures from instance seed + r")
    _world_options(zoo)
    zoo.add_argument("--base-steps", type=int, default=5000)
    zoo.add_argument("--finetune-steps", type=int, default=1000)
    zoo.add_argument("--snapshot-steps", nargs="*", type=int, default=None, metavar="STEP",
                     help="fine-tuning steps whose EMA snapshots are exported too (default 500)")
    zoo.add_argument("--detector-steps", type=int, default=1500)
    zoo.add_argument("--checkpoint-every", type=int, default=250)
    zoo.add_argument("--jobs", type=int, default=1,
                     help="runs side by side, each in its own process (default 1)")
    zoo.add_argument("--export", type=folder, default=None, metavar="DEST",
                     help="write the finished zoo's shipped files here")
    zoo.set_defaults(func=_zoo)


def _check_out(path: Path) -> None:
    """Refuse an output folder that cannot be one before anything is trained."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} is a file; accepted: a folder (made if missing)")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path}: {existing} is not writable; accepted: a folder you can "
                         f"write in")


def _setup(args) -> None:
    import torch  # here, not at the top: `dvd --help` should not wait for torch

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    from dvdlib.models.loading import check_device
    from dvdlib.prompts.prompt_sets import MAX_SEED
    from dvdlib.usage import ArgumentError

    # numpy and torch would refuse these only once training starts
    instance_seeds = getattr(args, "instance_seeds", None) or ()
    for seed, option in [(args.seed, "--seed"), *((s, "--instance-seeds") for s in instance_seeds)]:
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"{option} {seed}: accepted: a whole number in 0..{MAX_SEED:,}")
    try:
        check_device(args.device)
    except ArgumentError as err:
        raise ValueError(err.naming("--device")) from None
    _check_out(args.out)
    if getattr(args, "export", None) is not None:
        _check_out(args.export)
    torch.set_num_threads(args.threads)


def _train(args) -> int:
    from dvdlib.toyworld.train import TrainConfig, train
    from dvdlib.toyworld.world import World, scene_mix

    _setup(args)
    world = World(limited=args.limited, unpaired=tuple(args.unpaired), instances=args.instances,
                  instance_seed=args.seed, scene_mix=scene_mix(args.pair_rate),
                  closeup=args.closeup)
    config = TrainConfig(world=world.to_dict(), steps=args.steps, seed=args.seed,
                         learning_rate=args.learning_rate, warmup_steps=args.warmup_steps,
                         batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                         init_from=str(args.init_from) if args.init_from else None)
    folder = train(config, args.out, progress=not args.no_progress, device=args.device)
    print(f"dvd toyworld train: model in {folder}")
    return 0


def _detector(args) -> int:
    from dvdlib.toyworld.detector import DetectorConfig, load_trained_detector, train_detector

    _setup(args)
    config = DetectorConfig(steps=args.steps, seed=args.seed,
                            checkpoint_every=args.checkpoint_every)
    folder = train_detector(config, args.out, progress=not args.no_progress, device=args.device)
    metrics = load_trained_detector(folder).metrics
    print(f"dvd toyworld detector: {folder}; held-out exact-set accuracy "
          f"{metrics['exact_set_accuracy']:.4f} on {metrics['heldout_scenes']} renders")
    return 0


def _zoo(args) -> int:
    from dvdlib.toyworld.zoo import (INSTANCE_SEEDS, LEVELS, RUNS, SNAPSHOT_STEPS, ZooConfig,
                                     export_zoo, train_zoo)

    _setup(args)
    config = ZooConfig(seed=args.seed, levels=tuple(args.levels) if args.levels else LEVELS,
                       limited=args.limited, unpaired=tuple(args.unpaired),
                       pair_rate=args.pair_rate, closeup=args.closeup,
                       instance_seeds=tuple(args.instance_seeds or INSTANCE_SEEDS),
                       runs=RUNS if args.runs is None else args.runs,
                       base_steps=args.base_steps, finetune_steps=args.finetune_steps,
                       snapshot_steps=tuple(SNAPSHOT_STEPS if args.snapshot_steps is None
                                            else args.snapshot_steps),
                       detector_steps=args.detector_steps, checkpoint_every=args.checkpoint_every)
    start = time.perf_counter()
    train_zoo(config, args.out, jobs=args.jobs, threads=args.threads,
              progress=not args.no_progress, device=args.device)
    if args.export:
        import diffusers
        import torch
        import transformers

        def words(values):
            return " ".join("unlimited" if v is None else str(v) for v in values)

        # Working and export folders are the user's own places: recorded as WORK and DEST.
        command = (f"dvd toyworld zoo --out WORK --seed {args.seed} --levels "
                   f"{words(config.levels)} --instance-seeds {words(config.instance_seeds)} "
                   f"--runs {config.runs} "
                   f"--limited {config.limited} --unpaired {' '.join(config.unpaired)} "
                   f"--pair-rate {config.pair_rate} --closeup {config.closeup} "
                   f"--base-steps {config.base_steps} --finetune-steps {config.finetune_steps} "
                   f"--snapshot-steps {words(config.snapshot_steps)} "
                   f"--detector-steps {config.detector_steps} --checkpoint-every "
                   f"{config.checkpoint_every} --jobs {args.jobs} --threads {args.threads} "
                   f"--device {args.device} --export DEST")
        provenance = dict(
            command=command, seed=args.seed, jobs=args.jobs, threads=args.threads,
            device=args.device, device_name=(torch.cuda.get_device_name(args.device)
                                             if args.device.startswith("cuda") else None),
            python=platform.python_version(), torch=torch.__version__,
            diffusers=diffusers.__version__, transformers=transformers.__version__,
            machine=platform.machine(), cpu_capability=torch.backends.cpu.get_cpu_capability(),
        )
        export_zoo(args.out, args.export, config, provenance)
        print(f"dvd toyworld zoo: exported to {args.export} "
              f"({time.perf_counter() - start:.0f} s in this invocation)")
    return 0
