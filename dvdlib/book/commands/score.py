"""``dvd score``: a judge answers the questions about a folder of images; the DvD table.

The work, and every check of its arguments, is :func:`dvdlib.scoring.benchmark.score_benchmark`
(or, for a prompt file with several targets per prompt, :func:`~dvdlib.scoring.benchmark.score_targets`);
this module declares the options, hands them over and prints the scores.
"""

from __future__ import annotations

from dvdlib.book.commands.options import SCALE_OUT, note, refusals
from dvdlib.scoring.judges import DEFAULT_IMAGES_PER_CALL, DEFAULT_QUESTIONS_PER_CALL, JUDGES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="judge a folder of images and compute the DvD score (resumable)",
        description="Ask a judge five yes/no questions about the concept and five about the "
        "object of every image in IMAGES (caseNNN_<slug>/ folders, as `dvd generate` or the "
        "authors' generation lay them out), and write one row per image with the DvD score "
        "c*(5-n)/25*100 and the per-prompt mean, in the authors' scorer columns plus ours. "
        "Answers are kept in OUT's stem + .answers.log as they come, so a killed run continues "
        "where it stopped. Prints the mean DvD per category with 95% bootstrap intervals. By "
        "default the vlm judge asks one question per generate call, as the authors' scorer does "
        "(--questions-per-call batches them). A prompt file with several targets per prompt (a "
        "target1 column: the authors' pilot and factorial three-target sets) is judged with five "
        "questions per target instead; OUT then holds one row per image and target, with the "
        "target's presence over its prompt's images and its wins_over_<slot> and dvd_over_<slot> "
        "against each other target, and OUT's stem + .pairs holds the who-wins matrix and the "
        "pairwise DvD by slot and by type (+ .effects: the factorial set's strong-slot effects).",
        epilog="Judges: vlm is the paper's (Qwen2-VL-2B-Instruct, greedy, 5 new tokens); clip is "
        "ours (open_clip zero-shot presence, see dvdlib.scoring.judges.clip); toy is the toy "
        "world's concept and object detector. Weights are read from a local folder or the Hugging "
        "Face cache, never downloaded. " + SCALE_OUT,
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="the image folder")
    parser.add_argument("--out", required=True, metavar="TABLE",
                        help="the per-image table to write (.csv or .parquet)")
    parser.add_argument("--prompts", metavar="CSV",
                        help="the prompt set the images were made from (default: our built-in set; "
                        "with --judge toy, the toy world's prompts)")
    parser.add_argument("--with-carrier", action="store_true",
                        help="a target set with a carrier column: judge each prompt's carrier as "
                        "one more target")
    parser.add_argument("--cases", metavar="LIST", help="only these case numbers, e.g. 1-100")
    parser.add_argument("--judge", choices=JUDGES, default="vlm", help="the judge (default: vlm)")
    parser.add_argument("--judge-model", metavar="PATH_OR_ID",
                        help="the judge's weights: a folder or a Hugging Face id in the local "
                        "cache (default: Qwen/Qwen2-VL-2B-Instruct for vlm, the CLIP ViT-L/14 of "
                        "dvdlib.scoring.judges.clip for clip, the shipped detector for toy)")
    parser.add_argument("--questions", metavar="JSON",
                        help="the question wording (format: see dvdlib.scoring.questions; "
                        "default: ours)")
    parser.add_argument("--images-per-call", type=int, default=DEFAULT_IMAGES_PER_CALL,
                        metavar="N",
                        help=f"images judged together (default: {DEFAULT_IMAGES_PER_CALL})")
    parser.add_argument("--questions-per-call", type=int, metavar="N",
                        help=f"vlm only: questions per generate call (default: "
                        f"{DEFAULT_QUESTIONS_PER_CALL}, the authors' one-question-per-call loop); "
                        "larger values, e.g. 10, answer an image's questions in one batched call: "
                        "faster, and equal to the loop on a random-weight model in float32, but "
                        "not yet checked on the real judge in bfloat16 on a GPU")
    parser.add_argument("--per-question", metavar="TABLE",
                        help="also write one row per image and question (.csv or .parquet)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu; "
                        "under accelerate launch, each process's own GPU)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    # pandas, torch and the judge's libraries load here, not at --help
    from dvdlib.prompts.targets import is_target_file
    from dvdlib.scoring.benchmark import score_benchmark
    from dvdlib.scoring.dvd import category_scores
    from dvdlib.usage import UsageError

    if args.prompts and is_target_file(args.prompts):
        if args.per_question:
            raise UsageError("--per-question applies to prompt sets of one concept and one "
                             f"object; {args.prompts} names several targets per prompt")
        return _run_targets(args)
    if args.with_carrier:
        raise UsageError("--with-carrier applies to a prompt file with several targets per "
                         "prompt and a carrier column (give it with --prompts)")
    with refusals():
        table = score_benchmark(
            args.images, args.out, prompts=args.prompts, cases=args.cases, judge=args.judge,
            judge_model=args.judge_model, questions=args.questions,
            images_per_call=args.images_per_call, questions_per_call=args.questions_per_call,
            per_question=args.per_question, device=args.device, progress=not args.no_progress,
            report=note("score"))
    if table is None:  # another process than the main one: the main one reports
        return 0
    judges = ", ".join(map(str, table["judge"].unique())) or args.judge
    print(f"{len(table)} images judged by {judges}; table: {args.out}")
    print(category_scores(table).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _run_targets(args) -> int:
    """``dvd score`` on a prompt file with several targets per prompt."""
    from dvdlib.scoring.benchmark import score_targets
    from dvdlib.scoring.target_scores import all_present_rate, omission_rates

    with refusals():
        scores = score_targets(
            args.images, args.out, args.prompts, cases=args.cases, judge=args.judge,
            judge_model=args.judge_model, questions=args.questions,
            images_per_call=args.images_per_call, questions_per_call=args.questions_per_call,
            with_carrier=args.with_carrier, device=args.device, progress=not args.no_progress,
            report=note("score"))
    judged = scores.judged
    number = lambda v: f"{v:.2f}"  # noqa: E731
    n_images = judged[["case_num", "image_name"]].drop_duplicates().shape[0]
    print(f"{n_images} images judged ({len(judged)} targets) by {judged['judge'].iloc[0]}; "
          f"tables: {', '.join(str(path) for path in scores.files.values())}")
    print(f"all targets present in {all_present_rate(judged):.1%} of the images")
    print(omission_rates(judged).to_string(index=False, float_format=number))
    slots = scores.pairs[scores.pairs["axis"] == "slot"]
    for value, title in (("who_wins", "P(row present and column absent), by slot"),
                         ("pairwise_dvd", "pairwise DvD, row over column, by slot")):
        print(title)
        print(slots.pivot(index="over", columns="under", values=value)
              .to_string(float_format=number, na_rep="-"))
    return 0
