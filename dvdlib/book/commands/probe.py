"""``dvd probe``: one prompt over many seeds, judged and traced (see :mod:`dvdlib.probe.experiment`)."""

from __future__ import annotations

import argparse

from dvdlib.book.commands.options import add_seed_options

DEFAULT_MODEL = "toy:k1"
JUDGES = ("toy", "clip", "vlm")

_DESCRIPTION = """\
Why did my object vanish? Generate PROMPT over N seeds, have a judge answer five yes/no
questions about the concept and five about the object of every image, record the
cross-attention of every denoising step, and report:

  which side dominates   concept, object or balanced: from the presence rates below
  DvD                    the paper's score, mean over images, with a bootstrap interval
  presence rates         share of images in which the judge sees the concept / the object
                         (at least 3 of its 5 questions answered yes)
  saturation step        the first step from which the concept's share of the attention
                         that concept and object receive stays >= --threshold to the end

Dominance is concept rate - object rate; the verdict is "concept" when its interval lies
above 0, "object" when below, else "balanced". Intervals are percentile bootstraps over
the images (95%). A word's attention is the sum over its tokens, so the report also gives
the share that even attention per token would give (5/6 for five tokens against one). With --out, DIR receives the images (with their manifest and attention
records), judged.csv, attention.csv, probe.png and probe.json; a rerun of the same probe
into DIR reuses what was made.
"""

_EPILOG = """\
models: toy:k1 (default), toy:NAME or a toy zoo name (the toy world, judged by its
detector); sd1.4, sd2.1, a Hugging Face id in the local cache or a folder with a saved
diffusers pipeline (judged by the paper's VLM unless --judge says otherwise). Steps and
guidance default to the model's own (50 and 7.5 for Stable Diffusion, 20 and 4 for the toy).

seeds: --seeds 10 takes the paper's ten seeds (1825, 410, ...), larger counts continue with
10001, 10002, ... (as every chapter does); --seed-list 1825,410 gives the seeds themselves.

examples:
  dvd probe "sunset coaster" --concept sunset --object coaster --out probe/
  dvd probe "Neuschwanstein Castle Coaster" --concept "neuschwanstein castle" \\
      --object coaster --model sd1.4 --seeds 20 --out coaster/ --json
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe", help="one prompt: which concept dominates, its DvD, and when attention saturates",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", metavar="PROMPT", help="the prompt, quoted")
    parser.add_argument("--concept", required=True, metavar="WORD",
                        help="the concept expected to dominate: a word or phrase of PROMPT")
    parser.add_argument("--object", dest="object_word", required=True, metavar="WORD",
                        help="the object that may vanish: a word or phrase of PROMPT")
    add_seed_options(parser)
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="MODEL",
                        help=f"the text-to-image model (default: {DEFAULT_MODEL}; see below)")
    parser.add_argument("--judge", choices=JUDGES,
                        help="the judge: toy (the toy world's detector), clip or vlm (the "
                        "paper's Qwen2-VL); default: toy for toy models, else vlm")
    parser.add_argument("--judge-model", metavar="PATH_OR_ID",
                        help="the judge's weights (default: the judge's own, as in `dvd score`)")
    parser.add_argument("--category", choices=("artist", "landmark", "character", "print"),
                        help="which question set fits the concept (default: the concept's "
                        "DominanceBench category, or print for the toy world)")
    parser.add_argument("--steps", type=int, metavar="N", help="denoising steps (default: the model's)")
    parser.add_argument("--guidance", type=float, metavar="SCALE",
                        help="classifier-free guidance scale (default: the model's)")
    parser.add_argument("--size", type=int, metavar="PIXELS",
                        help="image height and width (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N",
                        help="images per pipeline call (default: 1)")
    parser.add_argument("--threshold", type=float, metavar="SHARE",
                        help="pair share at which the concept's attention counts as saturated "
                        "(default: 0.6)")
    parser.add_argument("--out", metavar="DIR",
                        help="keep the images, tables, figure and summary here (default: nothing "
                        "is kept)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout instead of the report")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="weights' precision (default: float32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args) -> int:
    from dvdlib.probe.experiment import run_command  # pandas, torch and the models load here, not at --help

    return run_command(args)
