"""``dvd probe --rescue``: on one prompt, which interventions bring the object back, concept kept.

:func:`rescue_request` checks what the rescue is asked before any model loads: the names of the
interventions (:data:`dvdlib.interventions.catalogue.NAMES`), their strengths (the catalogue's
defaults, or ``NAME=VALUE`` overrides) against their ranges and the model's head count read from
its configuration, a head ranking file against the model's layout, and the margin.
:func:`rescue` then makes the prompt's images over the seeds under the plain model and under
each intervention (chapter 5's :class:`~dvdlib.chapters.rescue.run.RescueStudy`: the same
starting noise per seed in every arm), judges them, and decides chapter 5's rescue test per
intervention (:func:`dvdlib.chapters.rescue.verdict.findings`; with one prompt, a seed is an
image). Without a ranking, the head intervention ablates the heads ranked first on the plain
images, by chapter 4's functions.

:func:`report` prints the table (:func:`rescue_summary`: the same as JSON);
:func:`rescue_sheet` is the contact sheet (one row per arm, one column per seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pandas as pd

from dvdlib.chapters.rescue import figures, run, summary, verdict
from dvdlib.interventions import catalogue
from dvdlib.interventions.heads import HeadRanking
from dvdlib.probe.inputs import ProbeRequest
from dvdlib.stats.verdicts import Verdict

SHEET, TABLE = "rescue.png", "rescue.csv"
SHOWN_SEEDS = 8  # columns of the contact sheet
DEFAULT_MARGIN = 10.0


@dataclass(frozen=True)
class RescueRequest:
    """The checked strengths (name -> strength), the ranking given, the test's margin."""

    strengths: dict[str, float]
    ranking: HeadRanking | None
    margin: float


def parse_strengths(names: str | None, overrides: Sequence[str]) -> dict[str, float]:
    """``--interventions a,b`` (default: all) and ``--strength NAME=VALUE`` overrides as
    ``{name: strength}``; a ValueError naming a bad entry."""
    chosen = list(catalogue.NAMES) if not names else [n.strip() for n in names.split(",")]
    strengths = {catalogue.check_name(name): float(catalogue.DEFAULTS[name]) for name in chosen}
    for text in overrides or ():
        name, sep, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not sep or number is None:
            raise ValueError(f"--strength {text!r}: accepted: NAME=NUMBER, e.g. boost=4")
        catalogue.check_name(name.strip())
        strengths[name.strip()] = number
    return strengths


def rescue_request(model: str, zoo_folder: str, strengths: Mapping[str, float], *,
                   guidance: float | None, head_ranking: str = "",
                   margin: float = DEFAULT_MARGIN) -> RescueRequest:
    """Everything ``--rescue`` is asked that can be refused before the model loads (with the
    guidance unknown until then, lower guidance is bounded by its own range only)."""
    inputs = run.check_inputs(model, zoo_folder, strengths,
                              guidance=float("inf") if guidance is None else guidance,
                              n_strengths=1, head_ranking=head_ranking, margin=margin)
    return RescueRequest(inputs.strengths, inputs.ranking, float(margin))


@dataclass
class RescueResult:
    table: pd.DataFrame  # the plain model and each intervention, as printed
    verdicts: dict[str, Verdict]
    images: pd.DataFrame  # one row per arm and image
    sheet: dict[str, list]  # arm label -> its images, one per seed (at most SHOWN_SEEDS)
    seeds: list[int]


def rescue(pipe, judge, request: ProbeRequest, rescue_request: RescueRequest, *, model: str,
           steps: int, guidance: float, size: int | None = None,
           batch_size: int = 32) -> RescueResult:
    """The plain model and every intervention on the request's prompt and seeds (module notes)."""
    for name, strength in rescue_request.strengths.items():  # guidance is known now
        catalogue.check_strength(name, strength, guidance=guidance)
    prompts = pd.DataFrame([(1, request.category, request.concept, request.object,
                             request.prompt)],
                           columns=["case_num", "category", "concept", "object", "prompt"])
    arms = [run.Arm(run.PLAIN, float("nan"))] + [run.Arm(name, strength, is_test=True)
                                                 for name, strength in
                                                 rescue_request.strengths.items()]
    study = run.RescueStudy(pipe, prompts, request.seeds, judge, model=model, steps=steps,
                            guidance=guidance, height=size, width=size, batch_size=batch_size,
                            ranking=rescue_request.ranking, keep_all=True)
    images = study.run(arms)
    table = summary.summarise(images)
    found = verdict.findings(images, rescue_request.margin)
    sheet = {figures.arm_label(arm.intervention, arm.strength): study.kept[arm.name][:SHOWN_SEEDS]
             for arm in arms}
    return RescueResult(figures.rescue_table(summary.tested_rows(table), found), found, images,
                        sheet, list(request.seeds))


def rescue_summary(result: RescueResult, margin: float) -> dict:
    """What ``--json`` prints: the table's rows, the verdicts, the rescuing interventions."""
    return {"seeds": result.seeds, "margin": margin,
            "arms": result.table.to_dict(orient="records"),
            "verdicts": {name: v.word for name, v in result.verdicts.items()},
            "rescued": [name for name, v in result.verdicts.items() if v.word == "supported"]}


def report(result: RescueResult, margin: float) -> str:
    """The table and the one line a practitioner reads first."""
    rescued = [catalogue.TITLES[n] for n, v in result.verdicts.items() if v.word == "supported"]
    answer = (f"brings the object back with the concept kept: {', '.join(rescued)}" if rescued
              else "no intervention tried brings the object back with the concept kept "
                   "(rescue margin interval above 0)")
    columns = ["arm", "both present", "concept present", "object present",
               "change of both (points)", "rescue margin (points)", "verdict", "cost vs plain"]
    return "\n".join([
        result.table[columns].to_string(index=False), "",
        f"rescue: the both-present share rises and concept presence falls by less than "
        f"{margin:g} points (95 % interval over {len(result.seeds)} seeds)",
        answer])


def rescue_sheet(result: RescueResult):
    """The contact sheet: one row per arm, one column per seed."""
    return figures.contact_sheet(result.sheet, [f"seed {s}" for s in result.seeds[:SHOWN_SEEDS]])
