"""Sanity check of the shipped zoo: does the low-diversity concept make its carrier vanish?

For every model of the zoo, generates the toy world's prompt table ("sunset coaster", ... and the
one-word controls "sunset", "coaster") with ``--seeds`` seeds per prompt, reads the images with the
shipped detector (and the pixel rule) and prints our outcome shares per model, for all objects
and split into objects the sunset was printed on in training and objects it never met. The
measures are ours (see ``dvdlib.toyworld.evaluate``); the paper publishes none.

Run: ``python benchmarks/toyworld_dominance.py [--seeds 64] [--out benchmarks/out] [--zoo DIR]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from dvdlib.toyworld import zoo
from dvdlib.toyworld.evaluate import dominance_summary, image_grid, presence_table, sample_images
from dvdlib.toyworld.world import prompt_table

COLUMNS = ["concept_only", "object_only", "both", "neither", "frame_filled", "concept_alone",
           "object_alone", "images"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64, help="images per prompt")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=4.0, help="guidance scale (default 4)")
    parser.add_argument("--models", nargs="+", default=None, help="zoo model names (default all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for the presence table (CSV) and sample grids (PNG)")
    parser.add_argument("--zoo", type=Path, default=None,
                        help="a folder written by `dvd toyworld zoo --export` (default: the shipped zoo)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = zoo.load_detector(args.zoo)
    names = args.models or zoo.model_names(args.zoo)
    seeds = list(range(args.seeds))
    rows, tables = [], []
    start = time.perf_counter()
    for name in names:
        pipe = zoo.load_model(name, folder=args.zoo)
        world = zoo.world_of(name, folder=args.zoo)
        table = prompt_table(world)
        presence = presence_table(pipe, detector, table, seeds, guidance_scale=args.guidance)
        presence.insert(0, "model", name)
        tables.append(presence)
        seen = presence["paired_in_training"]
        for objects, subset in (("all", presence), ("seen", presence[seen]),
                                ("unseen", presence[~seen])):
            filled = subset.loc[subset["arrangement"] == "pair", "frame_filled"].mean()
            rows.append(dict(model=name, K=world.instances or "unlimited", objects=objects,
                             frame_filled=filled, **dominance_summary(subset)))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            prompts = list(dict.fromkeys(table["prompt"]))
            shown = min(8, args.seeds)
            images = sample_images(pipe, [p for p in prompts for _ in range(shown)],
                              [s for _ in prompts for s in range(shown)],
                              guidance_scale=args.guidance)
            image_grid(images, columns=shown).save(args.out / f"toyworld_samples_{name}.png")
        print(f"[{name}] done ({time.perf_counter() - start:.0f} s so far)", flush=True)

    summary = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    for objects in ("all", "seen", "unseen"):
        part = summary[summary["objects"] == objects].set_index(["model", "K"])[COLUMNS]
        print(f"\n== objects: {objects} ({args.seeds} seeds per prompt, guidance {args.guidance}; "
              "present = detector "
              "probability > 0.5; frame_filled by the pixel rule) ==")
        print(part.round(3).to_string())
    if args.out:
        pd.concat(tables).to_csv(args.out / "toyworld_presence.csv", index=False)
        summary.to_csv(args.out / "toyworld_dominance.csv", index=False)
        print(f"\nwrote {args.out}/toyworld_presence.csv, toyworld_dominance.csv and sample grids")


if __name__ == "__main__":
    main()
