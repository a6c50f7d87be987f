"""Prototype of a toy world whose structure mirrors DominanceBench: can the object vanish?

The first toy world drew small shapes side by side; its dominant concept almost never removed
its object (DvD 5-10). This prototype trains small designs of the world of
:mod:`dvdlib.toyworld.world`, built like the benchmark: **concepts** are full-frame pictures (a
sunset, an ocean, a forest: the painting or postcard analogue), **objects** are carriers (coaster, shirt, notebook, hat, kite: filled silhouettes on
a plain light background), and a **pair** is the carrier with the concept printed inside it,
captioned in product-title form ("sunset coaster"). The limited concept (sunset) is never printed on
the hat or the kite in training.

Designs differ only in the scene mix and the share of close-ups (every other number is equal):

- ``d1`` "duplicated full-frame template": scenes are 35 % objects, 55 % concepts alone, 10 %
  pairs, so 15 % of the concept's pictures are pairs;
- ``d2`` "carrier and print": 30 % objects, 30 % concepts alone, 40 % pairs (57 %);
- ``d3`` "close-ups": d2 with half of the pair pictures shown as close-ups (the print fills the
  frame, captioned "sunset coaster"), the design the zoo ships.

Stages (each resumes from its output folder): a base model (unlimited diversity, design
``--base-design``), then per design a K = 1 and an unlimited fine-tune of it, then an evaluation of
every fine-tune at several guidance scales with a pixel rule that needs no trained judge: a
carrier stands on the plain background, so the border of its picture is background; a concept
alone fills the frame. Printed per model and guidance:

- ``concept_alone``: "sunset" comes out filling the frame; ``object_alone``: "coaster" etc. come out
  as a carrier on the background (both: the found-alone rates);
- ``pair_object``: the carrier is there for "sunset <object>" (seen and unseen objects apart);
  ``pair_filled``: the picture filled the frame instead, the object gone (the failure DvD counts);
- ``binding``: mean per-seed pixel distance between "sunset <object>" and "<object>" images (does
  the concept word change the pair picture at all?), next to ``object_scale``, the same distance
  between two different objects.

Run: ``python benchmarks/toyworld_prototype.py --out benchmarks/out/prototype`` (about 45 minutes on
2 idle cores with the defaults; ``--base-steps 300 --finetune-steps 100 --seeds 4`` for a smoke run).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dvdlib.toyworld.pipeline import ToyDiffusionPipeline, toy_components, training_noise_scheduler
from dvdlib.toyworld.world import CONCEPTS, OBJECTS, World, caption, pixel_rule
from dvdlib.toyworld.train import TrainConfig, diffusion_loss, learning_rate_at, step_seed

LIMITED = "sunset"
# object, concept, pair shares of the scene mix, and the share of pairs shown as close-ups
DESIGNS = {"d1": ((0.35, 0.55, 0.10), 0.0), "d2": ((0.30, 0.30, 0.40), 0.0),
           "d3": ((0.30, 0.30, 0.40), 0.5)}
GUIDANCE = (1.0, 2.0, 4.0, 7.5)


def train(out: Path, design, steps, instances=None, init=None, lr=2e-3, log=print):
    """Train (base) or fine-tune (``init``) into ``out``; skipped when ``out`` is finished."""
    if (out / "model_index.json").is_file():
        return out
    mix, closeup = design
    world = World(instances=instances, scene_mix=mix, closeup=closeup)
    stream = 1 if init else 0
    if init:
        pipe = ToyDiffusionPipeline.from_pretrained(init)
    else:
        px = world.sample(1000, 12345).images * 2 - 1  # standardise the "latent" on this world
        pipe = ToyDiffusionPipeline(**toy_components(world.words, seed=0),
                                    latent_shift=float(px.mean()), latent_scale=float(px.std()))
    pipe.set_progress_bar_config(disable=True)
    modules = [pipe.unet, pipe.text_encoder]
    for m in modules:
        m.train()
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    noise_scheduler = training_noise_scheduler(pipe)
    # the zoo's schedule: linear warm-up, cosine decay to 10 % of the peak
    schedule = TrainConfig(steps=steps, learning_rate=lr, warmup_steps=50 if init else 200)
    start, history = time.perf_counter(), []
    for step in range(steps):
        g = torch.Generator().manual_seed(step_seed(stream, step))
        scenes = world.sample(32, (stream, step))
        images, caps = scenes.images, scenes.captions
        drop = torch.rand(32, generator=g) < 0.1  # caption dropout for classifier-free guidance
        caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
        lr_now = learning_rate_at(schedule, step)
        for group in opt.param_groups:
            group["lr"] = lr_now
        loss = diffusion_loss(pipe, noise_scheduler, images, caps, g)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema, params):
                e.lerp_(p.detach(), 0.005)
        history.append(loss.item())
        if (step + 1) % 250 == 0:
            log(f"{out.name} step {step + 1} loss {np.mean(history[-100:]):.4f} "
                f"{time.perf_counter() - start:.0f}s")
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    pipe.save_pretrained(out)
    (out / "training.json").write_text(json.dumps(dict(loss=history,
                                                       seconds=time.perf_counter() - start)))
    return out


def rule(images):
    """(frame filled, carrier on the background) per image, from the pixel rule."""
    table = pixel_rule(images)
    return (torch.tensor(table["frame_filled"].to_numpy()),
            torch.tensor(table["rule_object_present"].to_numpy()))


def evaluate(path: Path, n_seeds: int, guidances=GUIDANCE) -> list[dict]:
    pipe = ToyDiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    prompts = [*CONCEPTS, *OBJECTS, *[caption(LIMITED, o) for o in OBJECTS]]
    rows = []
    for guidance in guidances:
        images = {p: pipe([p] * n_seeds, guidance_scale=guidance, output_type="pt",
                          generator=[torch.Generator().manual_seed(1000 + s)
                                     for s in range(n_seeds)]).images for p in prompts}
        read = {p: rule(x) for p, x in images.items()}
        pair = {o: read[caption(LIMITED, o)] for o in OBJECTS}
        unpaired = World().unpaired
        seen = [o for o in OBJECTS if o not in unpaired]
        rows.append(dict(
            model=path.name, guidance=guidance,
            concept_alone=float(np.mean([read[c][0].float().mean() for c in CONCEPTS])),
            sunset_alone=float(read[LIMITED][0].float().mean()),
            object_alone=float(np.mean([read[o][1].float().mean() for o in OBJECTS])),
            object_alone_min=float(min(read[o][1].float().mean() for o in OBJECTS)),
            pair_object_seen=float(np.mean([pair[o][1].float().mean() for o in seen])),
            pair_object_unseen=float(np.mean([pair[o][1].float().mean() for o in unpaired])),
            pair_filled_seen=float(np.mean([pair[o][0].float().mean() for o in seen])),
            pair_filled_unseen=float(np.mean([pair[o][0].float().mean() for o in unpaired])),
            binding=float(np.mean([(images[caption(LIMITED, o)] - images[o]).abs().mean()
                                   for o in OBJECTS])),
            object_scale=float(np.mean([(images[a] - images[b]).abs().mean()
                                        for a, b in zip(OBJECTS, OBJECTS[1:])])),
        ))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="working folder (resumable)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--base-design", default="d2", choices=list(DESIGNS))
    parser.add_argument("--base-steps", type=int, default=2500)
    parser.add_argument("--finetune-steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=16, help="images per prompt and guidance")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ks", nargs="+", default=["1", "inf"], choices=["1", "inf"],
                        help="which fine-tunes to train and evaluate")
    parser.add_argument("--guidance", nargs="+", type=float, default=list(GUIDANCE))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = train(args.out / "base", DESIGNS[args.base_design], args.base_steps)
    rows = []
    for design in args.designs:
        for k in [1 if k == "1" else None for k in args.ks]:
            name = f"{design}-k{k or 'inf'}"
            model = train(args.out / name, DESIGNS[design], args.finetune_steps, instances=k,
                          init=base, lr=1e-3)
            rows += evaluate(model, args.seeds, args.guidance)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / f"prototype-{'-'.join(args.designs)}-k{'-'.join(args.ks)}.csv",
                 index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
