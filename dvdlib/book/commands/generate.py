"""``dvd generate``: one image per prompt and seed, in the folders the DvD scorer reads.

The work, and every check of its arguments, is
:func:`dvdlib.generation.benchmark.generate_benchmark`; this module declares the options and
hands them over.
"""

from __future__ import annotations

from pathlib import Path

from dvdlib.book.commands.options import SCALE_OUT, add_seed_options, note, refusals
from dvdlib.models.families import defaults_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate the benchmark's images with a text-to-image model (resumable)",
        description="Generate one image per prompt and seed into OUT, in the folders the DvD "
        "scorer reads (caseNNN_<slug>/seedNNNNN.png), with a manifest (manifest.csv: prompt, "
        "seed, model, settings, file, SHA-256). The defaults are the model's: for the paper's "
        "models the paper's protocol (DDIM, 50 steps, guidance 7.5, 512 px for SD 1.4 and 768 px "
        "for SD 2.1), for other families their own (generation.json records them and how the run "
        "differs from the paper's protocol); the seeds are the paper's ten. "
        "Rerunning the same command skips the images already made, so a killed run continues "
        "where it stopped; a folder refuses images made with other settings.",
        epilog="MODEL is sd1.4 or sd2.1 (the paper's models), sdxl, sd3, sd3.5-medium, "
        "sd3.5-large, flux-dev or flux-schnell (models of other families), a Hugging Face id such as "
        "CompVis/stable-diffusion-v1-4 (read from the local Hugging Face cache, never downloaded: "
        "fetch it first with `huggingface-cli download ID`), a folder holding a saved diffusers "
        "pipeline (model_index.json, unet/, ...), or toy, toy:NAME or a toy zoo name such as k1 "
        "(which draw the toy world's concepts and objects: their default prompts are the toy "
        "world's pair prompts). " + SCALE_OUT,
    )
    parser.add_argument("-m", "--model", required=True, metavar="MODEL",
                        help="the text-to-image model (see below)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the output folder")
    parser.add_argument("--prompts", metavar="CSV",
                        help="a prompt set in the authors' CSV format, extra columns allowed "
                        "(default: our built-in set; for a toy model, the toy world's prompts)")
    parser.add_argument("--cases", metavar="LIST",
                        help="only these case numbers, e.g. 1-10,201 (default: all)")
    add_seed_options(parser)
    parser.add_argument("--steps", type=int,
                        help=f"denoising steps (default: the model's: {defaults_text('steps')})")
    parser.add_argument("--guidance", type=float,
                        help=f"guidance scale (default: the model's: {defaults_text('guidance')})")
    parser.add_argument("--size", type=int, metavar="PIXELS",
                        help="image height and width (default: the model's own; for the "
                        f"paper's and named models: {defaults_text('resolution')})")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per pipeline call, each with its own seeded generator "
                        "(default: 1)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu; "
                        "under accelerate launch, each process's own GPU)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="weights' precision (default: float32, diffusers' default)")
    parser.add_argument("--record-attention", action="store_true",
                        help="also record cross-attention per image, step, layer, head and token "
                        "(records/<call>/attention.npz; see dvdlib.attention.recorder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    # torch, diffusers and the model load here, not at --help
    from dvdlib.generation.benchmark import generate_benchmark
    from dvdlib.usage import seed_count, seed_list

    seeds = seed_list(args.seed_list) if args.seed_list is not None else seed_count(args.seeds)
    with refusals():
        manifest = generate_benchmark(
            args.model, args.out, prompts=args.prompts, cases=args.cases, seeds=seeds,
            steps=args.steps, guidance=args.guidance, size=args.size, batch_size=args.batch_size,
            device=args.device, dtype=args.dtype, record_attention=args.record_attention,
            progress=not args.no_progress, report=note("generate"))
    if manifest is not None:  # the main process (or the only one)
        out = Path(args.out)
        print(f"{len(manifest)} images in {out} (manifest: {out / 'manifest.csv'})")
    return 0
