"""``dvd probe`` on a prompt with several targets: which of them the images keep, and where the
attention goes.

- :func:`target_probe_request`: the entry check. The prompt comes typed with its targets
  (``--targets``, :func:`~dvdlib.prompts.targets.one_prompt_targets`) or as one case of a prompt
  file with several targets per prompt (:func:`~dvdlib.prompts.selection.choose_targets`); every
  target must lie among the tokens the text encoder reads. Returns a :class:`TargetProbeRequest`.
- :func:`probe_targets`: generate the prompt over the seeds with the attention recorded
  (:mod:`dvdlib.generation.protocol`), judge five questions per target
  (:func:`~dvdlib.scoring.targets.judge_targets`), read each target's attention at its own tokens
  (:func:`~dvdlib.attention.image_shares.target_shares`) and summarise.
- :func:`summarise_targets`, :func:`report_targets`: the numbers (``--json``) and the lines.

The scores are those of :mod:`dvdlib.scoring.target_scores` (the definitions page defines them):
each target's presence with a bootstrap interval over images, the share of images in which all
are present, the who-wins matrix and the pairwise DvD. A target's attention is its tokens' sum,
so the summary also gives the share that even attention per token would give it.

Files in the output folder: ``images/``, ``judged.csv`` (one row per image and target, with the
pair columns of :func:`~dvdlib.scoring.target_scores.image_pair_columns`), ``attention.csv``
(one row per image, step and target).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from dvdlib.attention.image_shares import target_shares
from dvdlib.generation.protocol import RECORD_FILE, attention_hook, generate
from dvdlib.probe.inputs import ProbeInputError, check_prompt
from dvdlib.probe.run import ATTENTION, IMAGES, JUDGED, SETTINGS
from dvdlib.probe.summary import CONFIDENCE, estimate, interval_text
from dvdlib.prompts.selection import choose_targets
from dvdlib.prompts.targets import TargetSet, one_prompt_targets, target_token_positions
from dvdlib.prompts.tokenizer import clip_tokenizer
from dvdlib.scoring.dvd import PRESENT_YES
from dvdlib.scoring.target_scores import (all_present_rate, image_pair_columns, pair_table,
                                          target_presence)
from dvdlib.scoring.targets import judge_targets
from dvdlib.store import check_run_settings, ensure_writable_dir, save_table
from dvdlib.usage import ArgumentError


@dataclass(frozen=True)
class TargetProbeRequest:
    """One probe of a prompt with several targets, checked: a set of one prompt, and the seeds."""

    target_set: TargetSet
    seeds: tuple[int, ...]

    @property
    def prompt(self) -> str:
        return str(self.target_set.prompts["prompt"].iloc[0])


@dataclass
class TargetProbeResult:
    summary: dict  # what --json prints
    judged: pd.DataFrame  # one row per image and target
    shares: pd.DataFrame  # one row per image, step and target
    image_dir: Path


def target_probe_request(prompt: str | None, targets: Sequence[str] | None, seeds: Sequence[int],
                         *, judge: str, prompts: str | Path | None = None, case: int | None = None,
                         with_carrier: bool = False, tokenizer=None,
                         report: Callable[[str], None] | None = None) -> TargetProbeRequest:
    """Check a probe of several targets (see the module notes): ``prompt`` with ``targets``
    (each ``TYPE:WORD`` or ``WORD``), or case ``case`` of the file ``prompts``. ``judge`` is the
    judge's kind: the toy detector knows no artist, landmark or character."""
    if judge == "toy":
        raise ProbeInputError("the toy judge knows only the toy world's concepts and objects; "
                              "probe several targets with --judge clip or vlm")
    if prompts is not None:
        if prompt or targets:
            raise ProbeInputError("give the prompt and its --targets, or --prompts FILE with "
                                  "--case N, not both")
        if case is None:
            raise ProbeInputError(f"--prompts {prompts}: say which prompt with --case N")
        try:
            target_set = choose_targets(prompts, [case], with_carrier=with_carrier, report=report)
        except ArgumentError as err:  # a case the file lacks
            raise ProbeInputError(err.naming("--case")) from None
    else:
        if with_carrier:
            raise ProbeInputError("--with-carrier takes the carrier of a prompt file; with "
                                  "--targets, name the carrier as one more target")
        target_set = one_prompt_targets(prompt, targets or [], report=report)
    tokenizer = tokenizer or clip_tokenizer()
    check_prompt(str(target_set.prompts["prompt"].iloc[0]), tokenizer)
    target_token_positions(target_set, tokenizer)
    return TargetProbeRequest(target_set, tuple(int(s) for s in seeds))


def probe_targets(pipe, judge, request: TargetProbeRequest, out_dir: str | Path, *, model: str,
                  steps: int, guidance: float, size: int | None = None, batch_size: int = 1,
                  confidence: float = CONFIDENCE, progress: bool = False) -> TargetProbeResult:
    """Generate, judge and read the attention of the request's prompt (see the module notes)."""
    out_dir = ensure_writable_dir(out_dir)
    targets = request.target_set.targets
    check_run_settings(out_dir / SETTINGS, {
        "prompt": request.prompt,
        "targets": [[int(t.slot), t.type, t.word] for t in targets.itertuples(index=False)]},
        f"the probe results in {out_dir}")
    seeds, image_dir = list(request.seeds), out_dir / IMAGES
    manifest = generate(pipe, request.target_set, seeds, image_dir, model=model, steps=steps,
                        guidance=guidance, height=size, width=size, batch_size=batch_size,
                        hook=attention_hook(),
                        progress=progress)
    judged = judge_targets(image_dir, request.target_set, judge, out_dir / JUDGED,
                           progress=progress)
    judged = image_pair_columns(judged[judged["seed"].isin(seeds)].reset_index(drop=True))
    save_table(judged, out_dir / JUDGED)
    positions = target_token_positions(request.target_set, pipe.tokenizer)
    made = manifest[manifest["seed"].astype(int).isin(seeds)]
    shares = target_shares(made, image_dir, RECORD_FILE, positions, ["seed"])
    save_table(shares, out_dir / ATTENTION)
    summary = summarise_targets(judged, shares, positions, confidence=confidence)
    summary = {"prompt": request.prompt, "model": model, "judge": judge.name, "steps": steps,
               "guidance": float(guidance), "seeds": seeds, **summary}
    return TargetProbeResult(summary, judged, shares, image_dir)


def summarise_targets(judged: pd.DataFrame, shares: pd.DataFrame, positions: pd.DataFrame, *,
                      confidence: float = CONFIDENCE) -> dict:
    """The probe's numbers, JSON-ready: per target its presence (count and rate with an interval
    over images), mean yes count and attention (its share of the targets' attention at the
    first and the last step, with intervals over images, and the share even attention per token
    would give); the all-present rate; the who-wins matrix and pairwise DvD by slot."""
    presence = target_presence(judged).set_index("slot")
    first, last = shares["step"].min(), shares["step"].max()
    n_tokens = {int(t.slot): len(t.token_positions) for t in positions.itertuples(index=False)}
    rows = []
    for slot, target in presence.iterrows():
        present = judged.loc[judged["slot"] == slot, "present"].astype(float).to_numpy()
        own = shares[shares["slot"] == slot]
        rows.append({
            "slot": int(slot), "role": target["role"], "type": target["type"],
            "word": target["word"], "count": int(present.sum()),
            "presence": estimate(present, confidence), "mean_yes": float(target["mean_yes"]),
            "tokens": n_tokens[int(slot)],
            "even_target_share": n_tokens[int(slot)] / sum(n_tokens.values()),
            "first_step_target_share": estimate(own.loc[own["step"] == first, "target_share"],
                                                 confidence),
            "last_step_target_share": estimate(own.loc[own["step"] == last, "target_share"],
                                                confidence)})
    pairs = pair_table(judged)
    pairs = pairs[pairs["axis"] == "slot"]
    return {
        "n_images": int(judged[["image_name"]].drop_duplicates().shape[0]),
        "targets": rows,
        "all_present": all_present_rate(judged),
        "who_wins": [{"over": int(p.over), "under": int(p.under), "rate": float(p.who_wins)}
                     for p in pairs.itertuples(index=False)],
        "pairwise_dvd": [{"over": int(p.over), "under": int(p.under), "dvd": float(p.pairwise_dvd)}
                         for p in pairs.itertuples(index=False)],
        "num_steps": int(last - first + 1), "present_yes": PRESENT_YES, "confidence": confidence,
    }


def report_targets(summary: dict) -> str:
    """The summary as the lines ``dvd probe`` prints."""
    n = summary["n_images"]
    lines = [f"{summary['prompt']!r}: {n} image(s) from {summary['model']}, judged by "
             f"{summary['judge']}",
             f"  all present       {summary['all_present']:.0%} of the images"]
    for target in summary["targets"]:
        lines.append(
            f"  {target['slot']}. {target['word']!r} ({target['type']}): present in "
            f"{target['count']}/{n}, rate {interval_text(target['presence'])}; share of the targets' "
            f"attention {interval_text(target['first_step_target_share'])} at step 0, "
            f"{interval_text(target['last_step_target_share'])} at the last (even per token: "
            f"{target['even_target_share']:.2f})")
    wins = {(p["over"], p["under"]): p["rate"] for p in summary["who_wins"]}
    dvd = {(p["over"], p["under"]): p["dvd"] for p in summary["pairwise_dvd"]}
    for over, under in sorted(wins):
        lines.append(f"  {over} over {under}          P(present, other absent) "
                     f"{wins[over, under]:.2f}, pairwise DvD {dvd[over, under]:.1f}")
    if n < 5:
        lines.append(f"  note              {n} seed(s) give rough intervals; 10 or more are better")
    if summary.get("files"):
        lines.append(f"  files             {', '.join(summary['files'].values())}")
    return "\n".join(lines)
