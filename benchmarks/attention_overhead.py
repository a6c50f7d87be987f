"""What the attention instruments cost: a plain fused UNet against recording and ablating.

Each repetition runs every variant once, in an order that rotates from one repetition to the next
(so slow phases of a shared machine hit all variants alike); the figures are medians of the
per-repetition ratios to the plain UNet. The cross-attention layers are also timed alone, on the
inputs they receive in a UNet call, and their added time is given as a share of the plain UNet
call: a small overhead is measured more precisely that way than as the ratio of two noisy totals.
On the CPU the clock is this thread's CPU time (one torch thread), which other processes on a
shared machine disturb less than wall time; on a GPU it is wall time between synchronisations.
Random weights (no download): the cost does not depend on
the values.

Cases:
- cpu: the toy world's UNet (7 cross-attention layers x 4 heads, 16x16x12 latent, batch 2 x 32)
  and the SD 1.x layout (16 layers x 8 heads) at a small latent, batch 2 (guidance on).
- cuda (when available): the SD 1.x layout at 512 px (64x64 latent), batch 2 with guidance, fp16.

Also prints the size of a 50-step SD 1.x record per image, on the device and as a file.

    python benchmarks/attention_overhead.py [--reps N] [--sd1-width 1.0] [--sd1-latent 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from dvdlib.attention.ablation import HeadAblation
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.record import AttentionRecord
from dvdlib.models.random_weights import unet_config

TOY_UNET = dict(
    sample_size=16, in_channels=12, out_channels=12, block_out_channels=(32, 32, 64), layers_per_block=1,
    norm_num_groups=8, attention_head_dim=4, cross_attention_dim=64,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def capture_cross_attention_inputs(unet, sample, text) -> dict[str, tuple]:
    """The hidden states each ``attn2`` module receives in one plain UNet call (pre-hooks, removed after)."""
    captured = {}
    handles = [
        module.register_forward_pre_hook(
            lambda mod, args, kwargs, path=path: captured.__setitem__(
                path, (args[0] if args else kwargs["hidden_states"], kwargs["encoder_hidden_states"])),
            with_kwargs=True)
        for path, module in unet.named_modules() if path.endswith("attn2")
    ]
    try:
        unet(sample, 500, text)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def interleaved(variants: dict, unet, run, reps: int, clock, device) -> dict[str, list[float]]:
    """Seconds per ``run(kwargs)`` with each variant's ``(processors, kwargs)``; every repetition runs
    all variants, in a rotating order. Processors are switched outside the timed region."""
    names = list(variants)
    times: dict[str, list[float]] = {key: [] for key in names}
    for rep in range(reps + 1):  # repetition 0 warms up
        for k in range(len(names)):
            key = names[(rep + k) % len(names)]
            processors, kwargs = variants[key]
            unet.set_attn_processor(dict(processors))
            synchronize(device)
            start = clock()
            run(kwargs)
            synchronize(device)
            if rep:
                times[key].append(clock() - start)
    return times


def measure(name: str, unet, images: int, latent: int, reps: int, layer_reps: int) -> None:
    """Time plain / instrumented variants of one UNet call with a ``[uncond; cond]`` batch of ``images``."""
    device, dtype = unet.device, unet.dtype
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    g = torch.Generator(device="cpu").manual_seed(0)
    sample = torch.randn(2 * images, unet.config.in_channels, latent, latent, generator=g).to(device, dtype)
    text = torch.randn(2 * images, 77, unet.config.cross_attention_dim, generator=g).to(device, dtype)
    plain_processors = unet.attn_processors

    def variants(calls: int) -> dict:
        """Processors and per-call kwargs of each variant; records with room for ``calls`` calls."""
        with attention_instruments(unet, sample_size=latent) as layers:
            instrumented = unet.attn_processors
        one_head = {layer.name: [0] for layer in layers}  # one head in every layer: the worst case
        zero = HeadAblation(layers, one_head, "zero")
        return {
            "plain (fused)": (plain_processors, None),
            "installed, idle": (instrumented, None),
            "recording": (instrumented, {
                "attention_record": AttentionRecord(layers, calls, num_images=images)}),
            "ablating (zero)": (instrumented, {"head_ablation": zero}),
            "ablating (mean)": (instrumented, {"head_ablation": HeadAblation(layers, one_head, "mean")}),
            "recording + ablating": (instrumented, {
                "attention_record": AttentionRecord(layers, calls, num_images=images),
                "head_ablation": zero}),
        }

    def whole_unet(kwargs):
        unet(sample, 500, text, cross_attention_kwargs=kwargs)

    # Processors are switched with set_attn_processor (not the context manager) between timed runs;
    # the plain set is restored at the end.
    try:
        with torch.inference_mode():
            unet_times = interleaved(variants(reps + 1), unet, whole_unet, reps, clock, device)
            # The cross-attention layers alone, on the inputs they get in a UNet call: the added cost
            # is measured more precisely than as a small difference of two whole-UNet timings.
            unet.set_attn_processor(dict(plain_processors))
            inputs = capture_cross_attention_inputs(unet, sample, text)
            modules = [(unet.get_submodule(path), hidden, enc) for path, (hidden, enc) in inputs.items()]

            def cross_attention_only(kwargs):
                for module, hidden, enc in modules:
                    module(hidden, encoder_hidden_states=enc, **(kwargs or {}))

            layer_times = interleaved(variants(layer_reps + 1), unet, cross_attention_only, layer_reps,
                                      clock, device)
    finally:
        unet.set_attn_processor(dict(plain_processors))

    plain_unet = statistics.median(unet_times["plain (fused)"])
    plain_layers = statistics.median(layer_times["plain (fused)"])
    print(f"\n{name}: {len(modules)} cross-attention layers, batch {2 * images}, latent {latent}x{latent}, "
          f"{dtype}, {device}; {'wall' if device.type == 'cuda' else 'thread CPU'} time")
    print(f"  whole UNet call: {reps} interleaved reps; cross-attention layers alone: {layer_reps} reps")
    print(f"  {'variant':<22} {'UNet ms':>9} {'UNet ratio':>11} {'attn2 ms':>9} "
          f"{'attn2 added, % of UNet':>23}")
    for key in unet_times:
        ratio = statistics.median([t / p for t, p in zip(unet_times[key], unet_times["plain (fused)"])])
        added = statistics.median([t - p for t, p in zip(layer_times[key], layer_times["plain (fused)"])])
        print(f"  {key:<22} {1000 * statistics.median(unet_times[key]):>9.2f} {ratio:>11.3f} "
              f"{1000 * statistics.median(layer_times[key]):>9.3f} {100 * added / plain_unet:>+22.2f}%")
    print(f"  (plain cross-attention layers: {100 * plain_layers / plain_unet:.1f}% of the plain UNet call)")


def record_size_per_sd1_image(steps: int = 50) -> None:
    """Bytes of a 50-step record of one SD 1.x image: on the device (fp32) and as a file (fp16 .npz)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config("sd1", width_scale=0.05, sample_size=8, cross_attention_dim=32))
    with attention_instruments(unet) as layers:
        pass
    record = AttentionRecord(layers, num_steps=steps, num_images=1)
    for _ in range(steps):
        for layer in layers:
            record.add(layer, torch.softmax(3 * torch.randn(1, layer.heads, 16, 77), dim=-1))
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = record.save(Path(folder) / "record.npz").stat().st_size
    print(f"\nrecord of one SD 1.x image, {steps} steps x 16 layers x 8 heads x 77 tokens: "
          f"{record.nbytes / 1e6:.2f} MB on the device (fp32), "
          f"{file_bytes / 1e6:.3f} MB as a file (fp16 .npz)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=None,
                        help="timed whole-UNet repetitions (default 20 cpu, 100 cuda)")
    parser.add_argument("--sd1-width", type=float, default=0.5,
                        help="SD 1.x channel scale on the CPU (1 = real widths: ~3 s a call on one core)")
    parser.add_argument("--sd1-latent", type=int, default=16, help="SD 1.x latent size on the CPU")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a shared machine; one thread also times steadier
        reps = args.reps or 20
        torch.manual_seed(0)
        toy = UNet2DConditionModel(**TOY_UNET).eval()
        measure("toy world UNet (cpu, fp32)", toy, images=32, latent=16, reps=reps, layer_reps=5 * reps)
        torch.manual_seed(0)
        config = unet_config("sd1", width_scale=args.sd1_width, sample_size=args.sd1_latent)
        sd1 = UNet2DConditionModel(**config).eval()
        measure(f"SD 1.x layout, width x{args.sd1_width:g} (cpu, fp32)", sd1, images=1,
                latent=args.sd1_latent, reps=reps, layer_reps=5 * reps)
    else:
        reps = args.reps or 100
        torch.manual_seed(0)
        sd1 = UNet2DConditionModel(**unet_config("sd1")).to(device, torch.float16).eval()
        print(f"GPU: {torch.cuda.get_device_name(device)}")
        measure("SD 1.x layout at 512 px (cuda, fp16)", sd1, images=1, latent=64, reps=reps, layer_reps=reps)
    record_size_per_sd1_image()


if __name__ == "__main__":
    main()
