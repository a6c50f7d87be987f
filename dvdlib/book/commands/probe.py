"""``dvd probe``: one prompt over many seeds, judged and traced (the probe is :mod:`dvdlib.probe`).

- :func:`register`: the command's arguments and help.
- :func:`run`: its body. It checks what the command line alone can tell (the request, with
  :func:`dvdlib.probe.inputs.probe_request`, and the numbers), then loads the judge and the model,
  probes (:func:`dvdlib.probe.run.probe`) and prints the report or the JSON summary. A prompt
  with several targets (``--targets``, or ``--prompts FILE --case N``) is checked by
  :func:`dvdlib.probe.targets.target_probe_request` and probed by
  :func:`dvdlib.probe.targets.probe_targets`. Its imports
  of pandas, torch and the models sit inside it, so ``dvd --help`` loads none of them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dvdlib.book.commands.options import add_seed_options, folder

DEFAULT_MODEL = "toy:k1"
JUDGES = ("toy", "clip", "vlm")

_DESCRIPTION = """\
Why did my object vanish? Generate PROMPT over N seeds, have a judge answer five yes/no
questions about the concept and five about the object of every image, record the image's
attention to the text at every denoising step, and report:

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
detector); sd1.4, sd2.1, sdxl, sd3, sd3.5-medium, sd3.5-large, flux-dev, flux-schnell, a
Hugging Face id in the local cache or a folder with a saved diffusers pipeline of Stable
Diffusion 1.x/2.x, XL, 3/3.5 or Flux (judged by the paper's VLM unless --judge says otherwise).
On SD3 and Flux the attention is the image-to-text block of each joint attention, and a word
counts its tokens in every text encoder the keys hold (SD3: CLIP and T5). Steps and guidance
default to the model's own (50 and 7.5 for Stable Diffusion 1.x/2.x, 50 and 5 for SDXL, 28
and 7 for SD3, 28 and 3.5 for Flux.1-dev, 20 and 4 for the toy).

seeds: --seeds 10 takes the paper's ten seeds (1825, 410, ...), larger counts continue with
10001, 10002, ... (as every chapter does); --seed-list 1825,410 gives the seeds themselves.

several targets: --targets names each target of PROMPT (TYPE:WORD, TYPE one of artist,
landmark, character, object; a bare WORD takes its DominanceBench category, else object), or
--prompts FILE --case N takes prompt N of a file with several targets per prompt (the authors'
pilot or factorial set). Each target is asked its five questions; the report gives each
target's presence, the share of images with all present, who wins each pair (P(one present,
the other absent)) and the pairwise DvD, and each target's share of the targets' attention.

--rescue: instead of the trace, try the interventions of chapter 5 at their default
strengths (object boost, concept cap, top-k heads and k random heads ablated, the
attend-and-excite update, lower guidance, the object first, a negative prompt naming the
concept) on the same seeds, and print which bring the object back with the concept kept:
the both-present share rises (interval above 0) and concept presence falls by less than
--margin points. With --out, DIR receives rescue.png (a contact sheet) and rescue.csv.

examples:
  dvd probe "sunset coaster" --concept sunset --object coaster --out probe/
  dvd probe "sunset coaster" --concept sunset --object coaster --rescue --strength boost=4
  dvd probe "Neuschwanstein Castle Coaster" --concept "neuschwanstein castle" \\
      --object coaster --model sd1.4 --seeds 20 --out coaster/ --json
  dvd probe "a poster combining Monet, Big Ben, and Batman" --targets monet "big ben" \\
      batman --model sd1.4 --seeds 10
  dvd probe --prompts factorial.csv --case 12 --model sd1.4 --seeds 10 --out case12/
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "probe", help="one prompt: which concept dominates, its DvD, and when attention saturates",
        description=_DESCRIPTION, epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", metavar="PROMPT", nargs="?",
                        help="the prompt, quoted (none with --prompts)")
    parser.add_argument("--concept", metavar="WORD",
                        help="the concept expected to dominate: a word or phrase of PROMPT")
    parser.add_argument("--object", dest="object_word", metavar="WORD",
                        help="the object that may vanish: a word or phrase of PROMPT")
    parser.add_argument("--targets", nargs="+", metavar="TARGET",
                        help="instead of --concept and --object: two or more targets of PROMPT, "
                        "each WORD or TYPE:WORD (see below)")
    parser.add_argument("--prompts", metavar="CSV",
                        help="a prompt file with several targets per prompt; probe its --case")
    parser.add_argument("--case", type=int, metavar="N", help="the case of --prompts to probe")
    parser.add_argument("--with-carrier", action="store_true",
                        help="with --prompts: also judge the prompt's carrier as a target")
    add_seed_options(parser)
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, metavar="MODEL",
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
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="images per pipeline call (default: 1; with --rescue, 32)")
    parser.add_argument("--threshold", type=float, metavar="SHARE",
                        help="pair share at which the concept's attention counts as saturated "
                        "(default: 0.6)")
    parser.add_argument("--out", metavar="DIR", type=folder,
                        help="keep the images, tables, figure and summary here (default: nothing "
                        "is kept)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON on stdout instead of the report")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                        help="weights' precision (default: float32)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    rescue = parser.add_argument_group("rescue (chapter 5's interventions)")
    rescue.add_argument("--rescue", action="store_true",
                        help="try the interventions on the prompt and print which bring the "
                        "object back with the concept kept (see below)")
    rescue.add_argument("--interventions", metavar="LIST",
                        help="which, comma-separated (default: all): boost, cap, heads, "
                        "random_heads, excite, guidance, object_first, negative")
    rescue.add_argument("--strength", action="append", default=[], metavar="NAME=VALUE",
                        help="an intervention's strength instead of its default (repeatable), "
                        "e.g. boost=4 or cap=0.5")
    rescue.add_argument("--head-ranking", metavar="FILE",
                        help="the heads intervention's ranking (a rescue run's "
                        "head_ranking.json on the same model; default: ranked on the plain images)")
    rescue.add_argument("--margin", type=float, default=None, metavar="POINTS",
                        help="concept presence must fall by less than this for a rescue "
                        "(default: 10)")
    parser.set_defaults(func=run)


def _check_numbers(args) -> None:
    """Refuse a step count, batch size or image size that no pipeline call can take."""
    from dvdlib.models.loading import check_device
    from dvdlib.probe.inputs import ProbeInputError
    from dvdlib.usage import ArgumentError

    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise ProbeInputError(f"{option} must be at least 1, got {value}")
    if args.size is not None and (args.size < 8 or args.size % 8):
        raise ProbeInputError(f"--size {args.size}: must be a positive multiple of 8")
    if args.guidance is not None and not 0 <= args.guidance < float("inf"):  # NaN fails too
        raise ProbeInputError(f"--guidance {args.guidance}: accepted: a finite number of at "
                              f"least 0")
    try:
        check_device(args.device)
    except ArgumentError as err:
        raise ProbeInputError(err.naming("--device")) from None


def _request(args, seeds: list[int], judge_kind: str, is_toy: bool):
    """The checked request: two words of a prompt, or several targets (see the module notes)."""
    from dvdlib.probe.inputs import DEFAULT_THRESHOLD, ProbeInputError, probe_request
    from dvdlib.probe.targets import target_probe_request

    several = args.targets is not None or args.prompts is not None
    if several:
        given = [o for o, v in (("--concept", args.concept), ("--object", args.object_word),
                                ("--category", args.category), ("--threshold", args.threshold))
                 if v is not None]
        if given:
            raise ProbeInputError(f"{', '.join(given)} applies to a probe of a concept and an "
                                  f"object, not of several targets (--targets, --prompts)")
        if is_toy:
            raise ProbeInputError(f"--model {args.model}: the toy world draws one concept on one "
                                  f"object; probe several targets with a real model")
        return target_probe_request(args.prompt, args.targets, seeds, judge=judge_kind,
                                    prompts=args.prompts, case=args.case,
                                    with_carrier=args.with_carrier, report=_note)
    missing = [o for o, v in (("PROMPT", args.prompt), ("--concept", args.concept),
                              ("--object", args.object_word)) if v is None]
    if missing:
        raise ProbeInputError(f"give {', '.join(missing)}: a probe takes PROMPT with --concept "
                              f"and --object, or with --targets, or --prompts FILE --case N")
    if args.case is not None or args.with_carrier:
        raise ProbeInputError("--case and --with-carrier go with --prompts")
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    return probe_request(args.prompt, args.concept, args.object_word, seeds, judge=judge_kind,
                         category=args.category, threshold=threshold)


def _note(text: str) -> None:
    import sys

    print(f"dvd probe: note: {text}", file=sys.stderr)


def run(args) -> int:
    """``dvd probe`` once its arguments are parsed."""
    import json
    import shutil
    import tempfile

    from dvdlib.models.spec import parse_model
    from dvdlib.probe.inputs import probe_seeds
    from dvdlib.probe.summary import report
    from dvdlib.probe.targets import TargetProbeRequest, report_targets
    from dvdlib.store import StoreError, check_writable_dir, no_new_folders_on_error
    from dvdlib.usage import UsageError, seed_count, seed_list

    from dvdlib.attention.instruments import check_instruments

    try:
        is_toy = parse_model(args.model).is_toy
        check_instruments(args.model)  # a family without instruments, before anything loads
    except ValueError as err:
        raise UsageError(f"--model: {err}") from None
    judge_kind = args.judge or ("toy" if is_toy else "vlm")
    seeds = (seed_list(args.seed_list) if args.seed_list is not None
             else probe_seeds(seed_count(args.seeds)))
    request = _request(args, seeds, judge_kind, is_toy)
    _check_numbers(args)
    if args.rescue and isinstance(request, TargetProbeRequest):
        raise UsageError("--rescue tries interventions on one concept and one object; it does not "
                         "take --targets or a file with several targets per prompt")
    rescue = _rescue_request(args) if args.rescue else None
    out = check_writable_dir(args.out) if args.out is not None else None  # before any model loads
    if rescue is not None:
        return _rescue(args, request, rescue, judge_kind, out)
    work = out or Path(tempfile.mkdtemp(prefix="dvd-probe-"))
    try:
        with no_new_folders_on_error(work):
            result = _probe_into(args, request, judge_kind, work, out)
    except StoreError as err:
        raise UsageError(str(err)) from None
    finally:
        if out is None:
            shutil.rmtree(work, ignore_errors=True)
    text = report_targets if isinstance(request, TargetProbeRequest) else report
    print(json.dumps(result.summary, indent=1, ensure_ascii=False) if args.json
          else text(result.summary))
    return 0


def _probe_into(args, request, judge_kind: str, work: Path, out: Path | None):
    """Load the judge and the model, probe into ``work``, save the figure and summary in ``out``."""
    from dvdlib.models.families import model_defaults
    from dvdlib.models.loading import load_pipeline
    from dvdlib.probe.figure import FIGURE, probe_figure, save_figure
    from dvdlib.probe.run import ATTENTION, IMAGES, JUDGED, probe
    from dvdlib.probe.summary import SUMMARY
    from dvdlib.probe.targets import TargetProbeRequest, probe_targets
    from dvdlib.scoring.judges import load_judge
    from dvdlib.store import atomic_write_json

    judge = load_judge(judge_kind, args.judge_model, args.device, None)  # weights often missing: first
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    defaults = model_defaults(args.model, pipe)
    steps = args.steps or defaults.steps
    guidance = args.guidance if args.guidance is not None else defaults.guidance
    run = probe_targets if isinstance(request, TargetProbeRequest) else probe
    result = run(pipe, judge, request, work, model=args.model, steps=steps, guidance=guidance,
                 size=args.size, batch_size=args.batch_size or 1, progress=not args.no_progress)
    files = None
    if out is not None and isinstance(request, TargetProbeRequest):
        files = {name: str(out / name) for name in (IMAGES, JUDGED, ATTENTION, SUMMARY)}
    elif out is not None:
        save_figure(probe_figure(result), out / FIGURE)
        files = {name: str(out / name) for name in (IMAGES, JUDGED, ATTENTION, FIGURE, SUMMARY)}
    result.summary["files"] = files
    if out is not None:
        atomic_write_json(out / SUMMARY, result.summary)
    return result


def _rescue_request(args):
    """The rescue's interventions and strengths, checked before any model loads."""
    from dvdlib.probe.rescue import DEFAULT_MARGIN, parse_strengths, rescue_request

    if args.margin is not None and not 0 <= args.margin < 100:  # NaN fails too
        raise ValueError(f"--margin {args.margin}: accepted: points in [0, 100)")
    strengths = parse_strengths(args.interventions, args.strength)
    return rescue_request(args.model, "", strengths, guidance=args.guidance,
                          head_ranking=args.head_ranking or "",
                          margin=DEFAULT_MARGIN if args.margin is None else args.margin)


def _rescue(args, request, rescue_request, judge_kind: str, out: Path | None) -> int:
    """``dvd probe --rescue``: load the judge and the model, try the interventions, report."""
    import json

    from dvdlib.models.families import model_defaults
    from dvdlib.models.loading import load_pipeline
    from dvdlib.probe.figure import save_figure

    from dvdlib.probe.rescue import SHEET, TABLE, report, rescue, rescue_sheet, rescue_summary
    from dvdlib.scoring.judges import load_judge
    from dvdlib.store import save_table

    judge = load_judge(judge_kind, args.judge_model, args.device, None)
    pipe = load_pipeline(args.model, device=args.device, dtype=args.dtype)
    defaults = model_defaults(args.model, pipe)
    steps = args.steps or defaults.steps
    guidance = args.guidance if args.guidance is not None else defaults.guidance
    result = rescue(pipe, judge, request, rescue_request, model=args.model, steps=steps,
                    guidance=guidance, size=args.size, batch_size=args.batch_size or 32)
    if out is not None:
        save_figure(rescue_sheet(result), out / SHEET)
        save_table(result.table, out / TABLE)
    print(json.dumps(rescue_summary(result, rescue_request.margin), indent=1, ensure_ascii=False)
          if args.json else report(result, rescue_request.margin))
    return 0
