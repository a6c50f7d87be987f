"""What the attention instruments cost on SD 1.x, SDXL, SD3 and Flux: a plain fused call against
recording and ablating.

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
- cpu: the toy world's UNet (7 cross-attention layers x 4 heads, 16x16x12 latent, batch 2 x 32),
  the SD 1.x layout (16 layers x 8 heads, 8 channels a head) at a small latent, and the SDXL layout (70 layers: 10 of
  10 heads and 60 of 20, with its ``added_cond_kwargs``) with every head narrowed to 8 channels,
  text states 256 wide instead of 2048 (their key and value projections would otherwise be most of
  a narrowed call) and a 32x32 latent (attention at 16x16 and 8x8), each with a guidance batch of 2.
- cuda (when available): the SD 1.x layout at 512 px (64x64 latent) and the SDXL layout at
  1024 px (128x128 latent, real widths), batch 2 with guidance, fp16.
- SD3 and Flux (:mod:`dvdlib.attention.joint`), the same variants plus the ``mask`` ablation: on
  the CPU the SD3-Medium layout (24 heads; 4 of its 24 blocks) and the Flux.1-dev layout (24 heads;
  2 of 19 double- and 4 of 38 single-stream blocks), heads narrowed to 8 channels (narrow heads
  make the attention a larger share of the call than at the real widths), a 32x32
  latent (256 image tokens) and the real text lengths (333 keys for SD3, 512 for Flux), SD3 with
  its guidance batch of 2, Flux in one pass. With CUDA the whole real layouts at 1024 px
  (128x128 latent: 4096 image tokens) in bf16, with the peak memory of each variant. The joint
  attentions timed alone are the ``attn`` modules of the blocks.

Also prints the size of a record per image: 50 steps of SD 1.x and of SDXL, 28 steps of
SD3-Medium and of Flux.1-dev at every layer, head and text key, on the device and as a file.

The default run on the CPU takes about two minutes of one core; ``--reps`` trades time for
steadier medians.

    python benchmarks/attention_overhead.py [--reps N] [--sd1-width 1.0] [--sd1-latent 16]
                                            [--sdxl-width 0.125] [--mmdit-head-dim 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from diffusers import FluxPipeline, UNet2DConditionModel

from dvdlib.attention.ablation import HeadAblation
from dvdlib.attention.joint import joint_attention_instruments
from dvdlib.attention.joint_ablation import JointHeadAblation
from dvdlib.attention.joint_layers import transformer_family
from dvdlib.attention.joint_record import JointAttentionRecord
from dvdlib.attention.layers import cross_attention_layers
from dvdlib.attention.recorder import attention_instruments
from dvdlib.attention.record import AttentionRecord
from dvdlib.models.random_mmdit import MMDIT_LAYOUTS, layout_transformer
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


def unet_inputs(unet, rows: int, latent: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Random inputs of one UNet call with ``rows`` rows: the latent, the text states and, for
    SDXL's UNet, its ``added_cond_kwargs`` (pooled text and six size ids: the time embedding's)."""
    device, dtype = unet.device, unet.dtype
    g = torch.Generator(device="cpu").manual_seed(0)
    sample = torch.randn(rows, unet.config.in_channels, latent, latent, generator=g).to(device, dtype)
    text = torch.randn(rows, 77, unet.config.cross_attention_dim, generator=g).to(device, dtype)
    if unet.config.addition_embed_type != "text_time":
        return sample, text, {}
    pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
    size = float(8 * latent)
    added = {"text_embeds": torch.randn(rows, pooled, generator=g).to(device, dtype),
             "time_ids": torch.tensor([[size, size, 0.0, 0.0, size, size]] * rows).to(device, dtype)}
    return sample, text, {"added_cond_kwargs": added}


def capture_cross_attention_inputs(unet, sample, text, extra) -> dict[str, tuple]:
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
        unet(sample, 500, text, **extra)
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
    sample, text, extra = unet_inputs(unet, 2 * images, latent)
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
        unet(sample, 500, text, **extra, cross_attention_kwargs=kwargs)

    # Processors are switched with set_attn_processor (not the context manager) between timed runs;
    # the plain set is restored at the end.
    try:
        with torch.inference_mode():
            unet_times = interleaved(variants(reps + 1), unet, whole_unet, reps, clock, device)
            # The cross-attention layers alone, on the inputs they get in a UNet call: the added cost
            # is measured more precisely than as a small difference of two whole-UNet timings.
            unet.set_attn_processor(dict(plain_processors))
            inputs = capture_cross_attention_inputs(unet, sample, text, extra)
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
    print_overhead(unet_times, layer_times, whole="UNet", part="attn2")
    print(f"  (plain cross-attention layers: {100 * plain_layers / plain_unet:.1f}% of the plain UNet call)")


def print_overhead(call_times: dict, layer_times: dict, *, whole: str, part: str,
                   peaks: dict | None = None) -> None:
    """One row per variant: the whole call's median time and its ratio to the plain call (paired
    reps), the attention layers' median time and what the variant adds to them as a share of the
    plain whole call; peak memory when measured."""
    plain = "plain (fused)"
    plain_call = statistics.median(call_times[plain])
    added_header = f"{part} added, % of {whole}"
    print(f"  {'variant':<22} {whole + ' ms':>9} {whole + ' ratio':>11} {part + ' ms':>9} "
          f"{added_header:>23}" + (f" {'peak GB':>8}" if peaks else ""))
    for key in call_times:
        ratio = statistics.median([t / p for t, p in zip(call_times[key], call_times[plain])])
        added = statistics.median([t - p for t, p in zip(layer_times[key], layer_times[plain])])
        print(f"  {key:<22} {1000 * statistics.median(call_times[key]):>9.2f} {ratio:>11.3f} "
              f"{1000 * statistics.median(layer_times[key]):>9.3f} {100 * added / plain_call:>+22.2f}%"
              + (f" {peaks[key] / 1e9:>8.2f}" if peaks else ""))


def joint_inputs(transformer, latent: int, rows: int, text_length: int) -> dict:
    """Random inputs of one SD3 or Flux transformer call with ``rows`` rows at latent size ``latent``."""
    device, dtype = transformer.device, transformer.dtype
    g = torch.Generator(device="cpu").manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device, dtype)

    common = dict(encoder_hidden_states=randn(rows, text_length, transformer.config.joint_attention_dim),
                  pooled_projections=randn(rows, transformer.config.pooled_projection_dim))
    if transformer_family(transformer) == "sd3":
        return dict(hidden_states=randn(rows, transformer.config.in_channels, latent, latent),
                    timestep=torch.full((rows,), 500.0, device=device, dtype=dtype), **common)
    grid = latent // 2
    return dict(hidden_states=randn(rows, grid * grid, transformer.config.in_channels),
                timestep=torch.full((rows,), 0.5, device=device, dtype=dtype),
                guidance=torch.full((rows,), 3.5, device=device, dtype=dtype),
                img_ids=FluxPipeline._prepare_latent_image_ids(rows, grid, grid, device, dtype),
                txt_ids=torch.zeros(text_length, 3, device=device, dtype=dtype), **common)


def capture_joint_attention_inputs(transformer, layers, inputs) -> list[tuple]:
    """``(module, kwargs)`` of each joint attention in one plain transformer call (pre-hooks, removed)."""
    captured = []
    modules = [transformer.get_submodule(layer.module_path) for layer in layers]
    handles = [module.register_forward_pre_hook(
        lambda mod, args, kwargs: captured.append((mod, dict(kwargs))), with_kwargs=True)
        for module in modules]
    try:
        transformer(**inputs)
    finally:
        for handle in handles:
            handle.remove()
    return captured


def measure_joint(name: str, layout: str, transformer, latent: int, reps: int, layer_reps: int) -> None:
    """Plain / instrumented variants of one SD3 (guidance batch of 2) or Flux (one pass) call."""
    device = transformer.device
    clock = time.perf_counter if device.type == "cuda" else time.thread_time
    family = transformer_family(transformer)
    text_length = MMDIT_LAYOUTS[layout]["text_length"]
    rows, guidance = (2, "batched") if family == "sd3" else (1, "none")
    inputs = joint_inputs(transformer, latent, rows, text_length)
    extra = {"text_length": text_length} if family == "flux" else {}
    plain_processors = transformer.attn_processors

    def variants(calls: int) -> dict:
        with joint_attention_instruments(transformer, sample_size=latent) as layers:
            instrumented = transformer.attn_processors
        one_head = {layer.name: [0] for layer in layers}  # one head in every layer: the worst case

        def record():
            return JointAttentionRecord(layers, calls, num_images=1, guidance=guidance)

        return {
            "plain (fused)": (plain_processors, None),
            "installed, idle": (instrumented, None),
            "recording": (instrumented, {"attention_record": record(), **extra}),
            "ablating (zero)": (instrumented, {
                "head_ablation": JointHeadAblation(layers, one_head), **extra}),
            "ablating (mask)": (instrumented, {
                "head_ablation": JointHeadAblation(layers, one_head, "mask"), **extra}),
            "recording + ablating": (instrumented, {
                "attention_record": record(), "head_ablation": JointHeadAblation(layers, one_head), **extra}),
        }

    def whole_call(kwargs):
        transformer(**inputs, joint_attention_kwargs=kwargs)

    peaks = {}
    try:
        with torch.inference_mode():
            call_times = interleaved(variants(reps + 1), transformer, whole_call, reps, clock, device)
            if device.type == "cuda":
                for key, (processors, kwargs) in variants(1).items():
                    transformer.set_attn_processor(dict(processors))
                    torch.cuda.reset_peak_memory_stats(device)
                    whole_call(kwargs)
                    peaks[key] = torch.cuda.max_memory_allocated(device)
            transformer.set_attn_processor(dict(plain_processors))
            with joint_attention_instruments(transformer, sample_size=latent) as layers:
                pass
            captured = capture_joint_attention_inputs(transformer, layers, inputs)

            def attention_only(kwargs):
                for module, module_kwargs in captured:
                    module(**module_kwargs, **(kwargs or {}))

            layer_times = interleaved(variants(layer_reps + 1), transformer, attention_only, layer_reps,
                                      clock, device)
    finally:
        transformer.set_attn_processor(dict(plain_processors))

    plain_call = statistics.median(call_times["plain (fused)"])
    plain_layers = statistics.median(layer_times["plain (fused)"])
    image_tokens = (latent // 2) ** 2
    print(f"\n{name}: {len(layers)} joint attentions x {layers[0].heads} heads, batch {rows}, "
          f"{image_tokens} image + {text_length} text tokens, {transformer.dtype}, {device}; "
          f"{'wall' if device.type == 'cuda' else 'thread CPU'} time")
    print(f"  whole call: {reps} interleaved reps; joint attentions alone: {layer_reps} reps")
    print_overhead(call_times, layer_times, whole="call", part="attn", peaks=peaks)
    print(f"  (plain joint attentions: {100 * plain_layers / plain_call:.1f}% of the plain call)")


def joint_record_size(layout: str, steps: int = 28) -> None:
    """Bytes of a ``steps``-step record of one image at every layer, head and text key of ``layout``
    (the four statistics; no maps): on the device (fp32) and as a file (fp16 .npz)."""
    spec = MMDIT_LAYOUTS[layout]
    transformer = layout_transformer(layout, head_dim=8)
    with joint_attention_instruments(transformer) as layers:
        pass
    family, text = transformer_family(transformer), spec["text_length"]
    rows, guidance = (2, "batched") if family == "sd3" else (1, "none")
    record = JointAttentionRecord(layers, steps, num_images=1, guidance=guidance)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):  # one image query suffices: the statistics' size does not depend on it
        for layer in layers:
            query = torch.randn(rows, layer.heads, 1 + text, 1, generator=g)
            record.observe(layer, query, torch.randn_like(query), slice(0, 1), slice(1, None), scale=1.0)
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = record.save(Path(folder) / "record.npz").stat().st_size
    print(f"record of one {layout} image, {steps} steps x {len(layers)} layers x {layers[0].heads} heads x "
          f"{text} text keys x 4 statistics: {record.nbytes / 1e6:.2f} MB on the device (fp32), "
          f"{file_bytes / 1e6:.2f} MB as a file (fp16 .npz)")


def unet_record_size(layout: str, steps: int = 50) -> None:
    """Bytes of a ``steps``-step record of one image of the UNet ``layout`` ("sd1", "sdxl") at
    every layer, head and token: on the device (fp32) and as a file (fp16 .npz)."""
    with torch.device("meta"):  # the real layout; only its module tree is read
        unet = UNet2DConditionModel(**unet_config(layout))
    layers = cross_attention_layers(unet)
    record = AttentionRecord(layers, num_steps=steps, num_images=1, classifier_free_guidance=False)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):  # a few query positions suffice: the record keeps their mean
        for layer in layers:
            record.add(layer, torch.softmax(3 * torch.randn(1, layer.heads, 16, 77, generator=g), dim=-1))
    with tempfile.TemporaryDirectory() as folder:
        file_bytes = record.save(Path(folder) / "record.npz").stat().st_size
    heads = sum(layer.heads for layer in layers)
    print(f"record of one {layout} image, {steps} steps x {len(layers)} layers ({heads:,} heads) x "
          f"77 tokens: {record.nbytes / 1e6:.2f} MB on the device (fp32), "
          f"{file_bytes / 1e6:.3f} MB as a file (fp16 .npz)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=None,
                        help="timed whole-call repetitions (default 6 cpu, 100 cuda); the layers "
                             "alone are timed twice as often on the CPU")
    parser.add_argument("--sd1-width", type=float, default=0.25,
                        help="SD 1.x channel scale on the CPU (0.25: 8 channels a head, as the other "
                             "narrowed layouts; 1 = real widths: ~3 s a call on one core)")
    parser.add_argument("--sd1-latent", type=int, default=16, help="SD 1.x latent size on the CPU")
    parser.add_argument("--sdxl-width", type=float, default=0.125,
                        help="SDXL channel scale on the CPU (0.125: 8 channels a head)")
    parser.add_argument("--mmdit-head-dim", type=int, default=8,
                        help="SD3 and Flux head dimension on the CPU (the real 64 and 128: slow)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(1)  # a shared machine; one thread also times steadier
        reps = args.reps or 6
        torch.manual_seed(0)
        toy = UNet2DConditionModel(**TOY_UNET).eval()
        measure("toy world UNet (cpu, fp32)", toy, images=32, latent=16, reps=reps, layer_reps=2 * reps)
        torch.manual_seed(0)
        config = unet_config("sd1", width_scale=args.sd1_width, sample_size=args.sd1_latent)
        sd1 = UNet2DConditionModel(**config).eval()
        measure(f"SD 1.x layout, width x{args.sd1_width:g} (cpu, fp32)", sd1, images=1,
                latent=args.sd1_latent, reps=reps, layer_reps=2 * reps)
        torch.manual_seed(0)
        config = unet_config("sdxl", width_scale=args.sdxl_width, sample_size=32, cross_attention_dim=256)
        sdxl = UNet2DConditionModel(**config).eval()
        measure(f"SDXL layout, width x{args.sdxl_width:g}, text width 256 (cpu, fp32)", sdxl, images=1,
                latent=32, reps=reps, layer_reps=2 * reps)
        for name, layout, blocks in (("SD3-Medium layout, 4 of 24 blocks", "sd3-medium", (4, 0)),
                                     ("Flux.1-dev layout, 2+4 of 19+38 blocks", "flux-dev", (2, 4))):
            model = layout_transformer(layout, head_dim=args.mmdit_head_dim, num_layers=blocks[0],
                                       num_single_layers=blocks[1])
            measure_joint(f"{name}, head dim {args.mmdit_head_dim} (cpu, fp32)", layout, model, latent=32,
                          reps=reps, layer_reps=2 * reps)
    else:
        reps = args.reps or 100
        torch.manual_seed(0)
        sd1 = UNet2DConditionModel(**unet_config("sd1")).to(device, torch.float16).eval()
        print(f"GPU: {torch.cuda.get_device_name(device)}")
        measure("SD 1.x layout at 512 px (cuda, fp16)", sd1, images=1, latent=64, reps=reps, layer_reps=reps)
        del sd1
        torch.manual_seed(0)
        sdxl = UNet2DConditionModel(**unet_config("sdxl")).to(device, torch.float16).eval()
        measure("SDXL layout at 1024 px (cuda, fp16)", sdxl, images=1, latent=128,
                reps=max(5, reps // 5), layer_reps=max(5, reps // 5))
        del sdxl
        torch.cuda.empty_cache()
        for name, layout in (("SD3-Medium layout at 1024 px", "sd3-medium"),
                             ("Flux.1-dev layout at 1024 px", "flux-dev")):
            torch.set_default_dtype(torch.bfloat16)  # random weights made in bf16 on the GPU
            try:
                with torch.device(device):
                    model = layout_transformer(layout)
            finally:
                torch.set_default_dtype(torch.float32)
            measure_joint(f"{name} (cuda, bf16)", layout, model, latent=128, reps=max(5, reps // 10),
                          layer_reps=max(5, reps // 10))
            del model
            torch.cuda.empty_cache()
    print()
    for layout in ("sd1", "sdxl"):
        unet_record_size(layout)
    for layout in ("sd3-medium", "flux-dev"):
        joint_record_size(layout)


if __name__ == "__main__":
    main()
