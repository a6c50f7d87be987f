"""Prototype of a toy world whose structure mirrors DominanceBench: can the object vanish?

The shipped toy world draws small shapes side by side; its dominant concept almost never removes
its partner (DvD 5-10). This prototype tests, before any change to dvdlib, a world built like the
benchmark: **concepts** are full-frame pictures (a sunset, an ocean, a forest: the painting or
postcard analogue), **objects** are carriers (mug, shirt, bag, hat, kite: filled silhouettes on
a plain light background), and a **pair** is the carrier with the concept printed inside it,
captioned in product-title form ("sunset mug"). The limited concept (sunset) is never printed on
the hat or the kite in training.

Two designs differ only in how often each kind of scene is shown (every other number is equal):

- ``d1`` "duplicated full-frame template": scenes are 35 % objects, 55 % concepts alone, 10 %
  pairs, so 15 % of the concept's pictures are pairs;
- ``d2`` "carrier and print": 30 % objects, 30 % concepts alone, 40 % pairs (57 %).

Stages (each resumes from its output folder): a base model (unlimited diversity, design
``--base-design``), then per design a K = 1 and an unlimited fine-tune of it, then an evaluation of
every fine-tune at several guidance scales with a pixel rule that needs no trained judge: a
carrier stands on the plain background, so the border of its picture is background; a concept
alone fills the frame. Printed per model and guidance:

- ``concept_alone``: "sunset" comes out filling the frame; ``object_alone``: "mug" etc. come out
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
import colorsys
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from dvdlib.toyworld.pipeline import ToyDiffusionPipeline, toy_components, training_noise_scheduler
from dvdlib.toyworld.train import diffusion_loss, step_seed

RES, SS = 32, 4  # canvas and sub-pixels per pixel side
N = RES * SS
BG = torch.tensor([0.86, 0.86, 0.84]).view(3, 1, 1)
OUTLINE = torch.tensor([0.15, 0.15, 0.15]).view(3, 1, 1)
CONCEPTS = ("sunset", "ocean", "forest")
OBJECTS = ("mug", "shirt", "bag", "hat", "kite")
LIMITED, UNPAIRED = "sunset", ("hat", "kite")
DESIGNS = {"d1": (0.35, 0.55, 0.10), "d2": (0.30, 0.30, 0.40)}  # object, concept, pair shares
GUIDANCE = (1.0, 2.0, 4.0, 7.5)


def hsv(h, s, v):
    return torch.tensor(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=torch.float32).view(3, 1, 1)


def sample_params(concept, rng):
    u = rng.uniform
    if concept == "sunset":
        return dict(top=(u(0.93, 1.03), u(0.6, 0.9), u(0.55, 0.8)),
                    bot=(u(0.05, 0.12), u(0.7, 1.0), u(0.9, 1.0)), hor=u(0.55, 0.75),
                    sx=u(0.2, 0.8), sr=u(0.10, 0.18), ground=(u(0.7, 0.8), u(0.4, 0.6), u(0.2, 0.32)))
    if concept == "ocean":
        return dict(sky=(u(0.52, 0.58), u(0.2, 0.4), u(0.9, 1.0)), hor=u(0.25, 0.4),
                    sea=(u(0.58, 0.64), u(0.7, 0.9), u(0.5, 0.7)), f=u(3, 6), a=u(0.05, 0.2),
                    g=u(0.5, 2.0), ph=u(0, 1))
    n = int(rng.integers(3, 7))
    return dict(sky=(u(0.12, 0.2), u(0.15, 0.35), u(0.9, 1.0)), hor=u(0.25, 0.4),
                ground=(u(0.27, 0.33), u(0.6, 0.8), u(0.45, 0.6)),
                trees=[(u(0.05, 0.95), u(0.7, 1.0), u(0.3, 0.55), u(0.12, 0.22)) for _ in range(n)])


def picture(concept, p, uu, vv):
    """The concept's picture at picture coordinates ``uu``, ``vv`` in [0, 1]: ``[3, h, w]``."""
    if concept == "sunset":
        t = (vv / p["hor"]).clamp(0, 1)
        img = hsv(*p["top"]) * (1 - t) + hsv(*p["bot"]) * t
        sun = ((uu - p["sx"]) ** 2 + (vv - (p["hor"] - 0.3 * p["sr"])) ** 2) <= p["sr"] ** 2
        img = torch.where(sun, torch.tensor([1.0, 0.93, 0.45]).view(3, 1, 1), img)
        return torch.where(vv > p["hor"], hsv(*p["ground"]).expand_as(img), img)
    if concept == "ocean":
        wave = torch.sin(2 * math.pi * (p["f"] * vv + p["a"] * torch.sin(
            2 * math.pi * (p["g"] * uu + p["ph"])))) > 0.55
        sea = torch.where(wave, hsv(p["sea"][0], 0.35, 0.95), hsv(*p["sea"]))
        return torch.where(vv < p["hor"], hsv(*p["sky"]).expand(3, *vv.shape), sea)
    img = torch.where(vv < p["hor"], hsv(*p["sky"]).expand(3, *vv.shape),
                      hsv(*p["ground"]).expand(3, *vv.shape))
    dark = torch.zeros_like(vv, dtype=torch.bool)
    for x, base, h, w in p["trees"]:
        rel = (base - vv) / h  # 0 at the foot, 1 at the tip
        dark |= (rel >= 0) & (rel <= 1) & ((uu - x).abs() <= w / 2 * (1 - rel))
    return torch.where(dark, torch.tensor([0.08, 0.3, 0.12]).view(3, 1, 1), img)


def _poly(u, v, verts):
    inside = torch.zeros_like(u, dtype=torch.bool)
    for (xi, yi), (xj, yj) in zip(verts, verts[1:] + verts[:1]):
        if yi != yj:
            inside ^= ((yi > v) != (yj > v)) & (u < xi + (xj - xi) * (v - yi) / (yj - yi))
    return inside


SHIRT = [(-0.35, -0.8), (0.35, -0.8), (0.95, -0.4), (0.75, -0.05), (0.45, -0.2), (0.45, 0.9),
         (-0.45, 0.9), (-0.45, -0.2), (-0.75, -0.05), (-0.95, -0.4)]


def silhouette(obj, u, v):
    """Inside the carrier at box coordinates ``u``, ``v`` in [-1, 1]."""
    if obj == "mug":
        r2 = (u - 0.38) ** 2 + v ** 2
        return (((u + 0.2).abs() <= 0.55) & (v.abs() <= 0.75)) | (
            (r2 <= 0.45 ** 2) & (r2 >= 0.22 ** 2) & (u > 0.3))
    if obj == "shirt":
        return _poly(u, v, SHIRT)
    if obj == "bag":
        r2 = u ** 2 + (v + 0.25) ** 2
        return ((u.abs() <= 0.8) & (v >= -0.25) & (v <= 0.9)) | (
            (r2 <= 0.55 ** 2) & (r2 >= 0.35 ** 2) & (v < -0.25))
    if obj == "hat":
        return ((u ** 2 + (v - 0.3) ** 2 <= 0.62 ** 2) & (v <= 0.3)) | (
            (u.abs() <= 0.97) & (v >= 0.22) & (v <= 0.45))
    return (u.abs() / 0.7 + v.abs() / 0.95) <= 1  # kite


_grid = (torch.arange(N, dtype=torch.float32) + 0.5) / SS
GY, GX = torch.meshgrid(_grid, _grid, indexing="ij")


def render(scene):
    """A concept alone, an object alone, or the concept printed on the object: ``[3, 32, 32]``."""
    concept, obj = scene.get("concept"), scene.get("obj")
    if obj is None:
        img = picture(concept[0], concept[1], GX / RES, GY / RES)
    else:
        name, colour, size, x, y = obj
        u, v = (GX - x) / (size / 2), (GY - y) / (size / 2)
        mask = silhouette(name, u, v)
        ring = F.max_pool2d(mask.float()[None, None], 2 * SS + 1, 1, SS)[0, 0] > 0
        fill = (picture(concept[0], concept[1], (u + 1) / 2, (v + 1) / 2) if concept
                else torch.tensor(colour).view(3, 1, 1).expand(3, N, N))
        img = torch.where(ring, OUTLINE.expand(3, N, N), BG.expand(3, N, N))
        img = torch.where(mask, fill, img)
    return F.avg_pool2d(img[None], SS)[0]


class PrintWorld:
    """Scenes of the design's mix; the limited concept drawn from K fixed pictures (or fresh)."""

    def __init__(self, mix, instances=None, instance_seed=0):
        self.probs = np.array(mix) / sum(mix)
        rng = np.random.default_rng((instance_seed, 7))
        self.fixed = [sample_params(LIMITED, rng) for _ in range(instances)] if instances else []
        self.words = (*CONCEPTS, *OBJECTS)

    def concept_params(self, c, rng):
        if c == LIMITED and self.fixed:
            return self.fixed[int(rng.integers(len(self.fixed)))]
        return sample_params(c, rng)

    @staticmethod
    def draw_object(name, rng):
        size = float(rng.uniform(20, 28))
        lo, hi = size / 2 + 1.5, RES - size / 2 - 1.5
        colour = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.55, 0.95))
        return (name, colour, size, float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))

    def sample_scene(self, rng):
        kind = rng.choice(3, p=self.probs)
        if kind == 0:
            o = OBJECTS[int(rng.integers(len(OBJECTS)))]
            return dict(obj=self.draw_object(o, rng)), o
        c = CONCEPTS[int(rng.integers(len(CONCEPTS)))]
        if kind == 1:
            return dict(concept=(c, self.concept_params(c, rng))), c
        allowed = [o for o in OBJECTS if not (c == LIMITED and o in UNPAIRED)]
        o = allowed[int(rng.integers(len(allowed)))]
        return dict(concept=(c, self.concept_params(c, rng)), obj=self.draw_object(o, rng)), f"{c} {o}"

    def sample(self, n, seed):
        rng = np.random.default_rng(seed)
        scenes = [self.sample_scene(rng) for _ in range(n)]
        return torch.stack([render(s) for s, _ in scenes]), [c for _, c in scenes]


def train(out: Path, mix, steps, instances=None, init=None, lr=2e-3, log=print):
    """Train (base) or fine-tune (``init``) into ``out``; skipped when ``out`` is finished."""
    if (out / "model_index.json").is_file():
        return out
    world = PrintWorld(mix, instances)
    stream = 1 if init else 0
    if init:
        pipe = ToyDiffusionPipeline.from_pretrained(init)
    else:
        px = world.sample(1000, 12345)[0] * 2 - 1  # standardise the "latent" on this world
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
    warm, start, history = (50 if init else 200), time.perf_counter(), []
    for step in range(steps):
        g = torch.Generator().manual_seed(step_seed(stream, step))
        images, caps = world.sample(32, (stream, step))
        drop = torch.rand(32, generator=g) < 0.1  # caption dropout for classifier-free guidance
        caps = ["" if d else c for c, d in zip(caps, drop.tolist())]
        lr_now = lr * ((step + 1) / warm if step < warm else 0.1 + 0.9 * 0.5 * (
            1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))
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


def pixel_rule(x):
    """``[n, 3, 32, 32]`` -> (frame filled, carrier on the background) per image."""
    d = (x - BG.view(1, 3, 1, 1)).abs().amax(1)
    ring = torch.ones(RES, RES, dtype=torch.bool)
    ring[2:-2, 2:-2] = False
    filled = (d[:, ring] < 0.1).float().mean(1) < 0.5
    return filled, (~filled) & ((d > 0.12).float().mean((1, 2)) > 0.15)


def evaluate(path: Path, n_seeds: int) -> list[dict]:
    pipe = ToyDiffusionPipeline.from_pretrained(path)
    pipe.set_progress_bar_config(disable=True)
    prompts = [*CONCEPTS, *OBJECTS, *[f"{LIMITED} {o}" for o in OBJECTS]]
    rows = []
    for guidance in GUIDANCE:
        images = {p: pipe([p] * n_seeds, guidance_scale=guidance, output_type="pt",
                          generator=[torch.Generator().manual_seed(1000 + s)
                                     for s in range(n_seeds)]).images for p in prompts}
        rule = {p: pixel_rule(x) for p, x in images.items()}
        pair = {o: rule[f"{LIMITED} {o}"] for o in OBJECTS}
        seen = [o for o in OBJECTS if o not in UNPAIRED]
        rows.append(dict(
            model=path.name, guidance=guidance,
            concept_alone=float(np.mean([rule[c][0].float().mean() for c in CONCEPTS])),
            sunset_alone=float(rule[LIMITED][0].float().mean()),
            object_alone=float(np.mean([rule[o][1].float().mean() for o in OBJECTS])),
            object_alone_min=float(min(rule[o][1].float().mean() for o in OBJECTS)),
            pair_object_seen=float(np.mean([pair[o][1].float().mean() for o in seen])),
            pair_object_unseen=float(np.mean([pair[o][1].float().mean() for o in UNPAIRED])),
            pair_filled_seen=float(np.mean([pair[o][0].float().mean() for o in seen])),
            pair_filled_unseen=float(np.mean([pair[o][0].float().mean() for o in UNPAIRED])),
            binding=float(np.mean([(images[f"{LIMITED} {o}"] - images[o]).abs().mean()
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = train(args.out / "base", DESIGNS[args.base_design], args.base_steps)
    rows = []
    for design in args.designs:
        for k in (1, None):
            name = f"{design}-k{k or 'inf'}"
            model = train(args.out / name, DESIGNS[design], args.finetune_steps, instances=k,
                          init=base, lr=1e-3)
            rows += evaluate(model, args.seeds)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "prototype.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
