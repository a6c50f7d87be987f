"""What batching buys the VLM judge, and what the attention hook costs generation.

1. Judge: the paper's loop (one processor call and one ``generate`` per question,
   ``questions_per_call=1``) against our batched path (one ``generate`` per image for its ten
   questions, on a shared prefix run once: see ``dvdlib.scoring.judges.vlm``) on the same images and
   questions. The answers of the two are
   asserted identical (decoded text, every question); the figures are seconds per question and
   their ratio (the goal is 5x or more). Random weights (no download): the cost does not depend on
   the values. ``--architecture tiny`` is the test model (CPU); ``qwen2-vl-2b`` has the real 2B
   layout (for a GPU: ``--architecture qwen2-vl-2b --device cuda --dtype bfloat16``).

   What is compared: decoded answers of the loop and of the batched path, question by question,
   on random weights, the real Qwen2-VL image processor and *our* Qwen2-VL-style chat template
   (not the one in the real model's processor config). Run so far: ``tiny`` in float32 on the CPU
   (identical). Not yet run: the real 2B layout in bfloat16 on a GPU, the check that would allow
   batching by default; until then ``dvd score`` and the chapters use the loop (one question per
   ``generate`` call, as the authors' scorer).
2. Hook: ``dvdlib.generation.protocol.generate`` on the SD 1.x layout (dummy weights, small width) with the
   attention hook (``dvdlib.attention.recorder``) on and off; the figure is the ratio of the medians.

Repetitions alternate the variants, and the figures are medians. On the CPU the clock is this
thread's CPU time (one torch thread), which other processes on a shared machine disturb less than
wall time; on a GPU it is wall time between synchronisations.

    python benchmarks/judge_throughput.py [--architecture tiny] [--images 4] [--reps 3] [--skip-hook]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dvdlib.prompts.prompt_sets import builtin_prompts
from dvdlib.scoring.judges.vlm import ARCHITECTURES, QwenVLJudge, random_qwen2vl
from dvdlib.scoring.questions import questions_for

GOAL = 5.0


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.thread_time()


def noise_images(count: int, size: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def judge_section(args) -> None:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    model, processor = random_qwen2vl(args.architecture, device=args.device, dtype=dtype,
                                      initializer_range=0.5 if args.architecture == "tiny" else 0.02)
    parameters = sum(p.numel() for p in model.parameters())
    prompts = builtin_prompts().iloc[[0, 100, 200, 50]]  # artist, landmark, character, artist
    items = [(image, questions_for(row.category, row.concept, row.object))
             for image, row in zip(noise_images(args.images, args.image_size),
                                   (prompts.iloc[i % len(prompts)] for i in range(args.images)))]
    questions = sum(len(q) for _, q in items)
    loop = QwenVLJudge(model, processor, questions_per_call=1)
    batched = QwenVLJudge(model, processor, questions_per_call=args.questions_per_call)
    print(f"judge: random-weight Qwen2-VL '{args.architecture}' ({parameters / 1e6:.2f} M parameters), "
          f"{args.device}, {args.dtype}; {args.images} images of {args.image_size} px x 10 questions; "
          "compared: decoded answers, loop vs batched, with our chat template (not the real model's)")

    reference = loop.answer_texts(items[:1])  # warm-up (first-call costs)
    batched.answer_texts(items[:1])
    times = {"loop": [], "batched": []}
    for rep in range(args.reps):
        order = (("loop", loop), ("batched", batched)) if rep % 2 == 0 else (("batched", batched), ("loop", loop))
        answers = {}
        for name, judge in order:
            start = clock(device)
            answers[name] = judge.answer_texts(items)
            times[name].append(clock(device) - start)
        differ = sum(a != b for x, y in zip(answers["loop"], answers["batched"]) for a, b in zip(x, y))
        assert differ == 0, f"repetition {rep}: {differ} of {questions} answers differ between loop and batched"
    assert reference[0] == answers["loop"][0]
    loop_s, batched_s = statistics.median(times["loop"]), statistics.median(times["batched"])
    ratio = loop_s / batched_s
    print(f"  answers identical: {questions} questions x {args.reps} repetitions")
    print(f"  loop (1 question per call):      {1000 * loop_s / questions:8.2f} ms/question "
          f"(runs: {', '.join(f'{t:.2f}' for t in times['loop'])} s)")
    print(f"  batched (an image's questions per call, shared prefix): {1000 * batched_s / questions:8.2f} "
          f"ms/question (runs: {', '.join(f'{t:.2f}' for t in times['batched'])} s)")
    print(f"  speed-up: {ratio:.2f}x (goal {GOAL:.0f}x: {'met' if ratio >= GOAL else 'NOT met'})")


def hook_section(args) -> None:
    try:
        import dvdlib.attention.recorder  # noqa: F401
    except ImportError:
        print("hook: dvdlib.attention.recorder is not available; nothing measured")
        return
    from dvdlib.generation.protocol import attention_hook, generate
    from dvdlib.models.random_weights import dummy_sd_pipeline

    device = torch.device(args.device)
    pipe = dummy_sd_pipeline("sd1", width_scale=args.sd1_width, sample_size=args.sd1_latent).to(device)
    prompts = builtin_prompts().head(2)
    seeds = [1, 2]
    print(f"hook: generate() on the SD 1.x layout (width x{args.sd1_width}, latent {args.sd1_latent}), "
          f"{len(prompts) * len(seeds)} images, batch 2, {args.hook_steps} steps, {args.device}")
    times = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(args.reps + 1):  # the first repetition warms up and is not counted
            order = ("off", "on") if rep % 2 == 0 else ("on", "off")
            for name in order:
                out = Path(scratch) / f"{name}{rep}"
                start = clock(device)
                generate(pipe, prompts, seeds, out, model="dummy", steps=args.hook_steps, batch_size=2,
                         hook=attention_hook() if name == "on" else None, progress=False)
                if rep:
                    times[name].append(clock(device) - start)
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"  hook off: {off:.2f} s, hook on: {on:.2f} s (medians of {args.reps}); on/off = {on / off:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--images", type=int, default=4, help="images judged (10 questions each)")
    parser.add_argument("--image-size", type=int, default=512, help="pixels per side (SD 1.4: 512)")
    parser.add_argument("--questions-per-call", type=int, default=40)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--skip-hook", action="store_true", help="measure the judge only")
    parser.add_argument("--skip-judge", action="store_true", help="measure the hook only")
    parser.add_argument("--sd1-width", type=float, default=0.25)
    parser.add_argument("--sd1-latent", type=int, default=16)
    parser.add_argument("--hook-steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_judge:
        judge_section(args)
    if not args.skip_hook:
        hook_section(args)


if __name__ == "__main__":
    main()
