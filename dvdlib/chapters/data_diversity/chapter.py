"""Chapter 2 in one object: :func:`open_study` knows a toy model from a real one, and the chapter
calls the same steps either way.

- :func:`open_study`: the chapter's setup (:func:`dvdlib.chapters.setup.open_chapter`: a fresh
  output folder, the seeds, the device, the model parsed), its settings with the defaults of the
  model's kind (:data:`DEFAULTS`), the stated test with its criteria checked, and the judge's
  wording, all before any model loads.
- :class:`DiversityStudy`: the chapter's steps in the order it calls them. The toy zoo's causal
  test: :meth:`~DiversityStudy.measure_training`, :meth:`~DiversityStudy.run_causal_test` (every
  run of every arm the zoo holds, :mod:`~dvdlib.chapters.data_diversity.arms`) and their figures
  and tables: per run, over K, the training data's close-ups against the generated images, the
  other conditions; a real model's observation: :meth:`~DiversityStudy.run_real_study` and its
  figure and table. A step that does not apply to the model's kind prints one line that
  says so and returns None. :meth:`~DiversityStudy.numbers` gives every number the chapter's text
  quotes, :meth:`~DiversityStudy.headline` the values and texts the chapter saves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import pandas as pd

from dvdlib.chapters.data_diversity import amplification, arms, figures, toy_pictures, toy_results
from dvdlib.chapters.data_diversity import real_study, toy_runs, toy_summary, verdict
from dvdlib.chapters.data_diversity.comparisons import verdict_table
from dvdlib.chapters.setup import ChapterSetup, open_chapter
from dvdlib.models.spec import parse_model
from dvdlib.prompts.prompt_sets import prompt_set, seeds as paper_seeds
from dvdlib.scoring.questions import Wording, chapter_wording
from dvdlib.stats.verdicts import Test, Verdict

CHAPTER = "02_data_diversity"
# Settings left empty (None) take the default of the model's kind: the toy zoo's own, or the
# paper's for a real model.
DEFAULTS = {"toy": dict(n_seeds=12, steps=20, guidance=4.0, batch_size=64),
            "real": dict(n_seeds=10, steps=50, guidance=7.5, batch_size=4)}
K1_GROUP = toy_results.K1  # the label of the K = 1 arm (its runs pooled)


@dataclass(frozen=True)
class Settings:
    """The chapter's parameters with every default resolved."""

    n_seeds: int  # images per pair prompt and model
    steps: int
    guidance: float
    batch_size: int
    n_resamples: int
    confidence: float
    positive_control_dvd: float
    n_control_seeds: int = 0  # toy: images of each control prompt per model
    n_condition_seeds: int = 0  # toy: images per pair prompt in the other conditions
    n_training_batches: int = 100  # toy: training batches drawn per run for the close-up share
    ceiling_margin: float = 5.0  # DvD points: an arm this close to a bound leaves no room
    resolution: int | None = None  # real: pixels per side (None: the model's own)
    bench_csv: str = ""  # real: the prompt set ("" : the built-in one)
    max_prompts: int = 0  # real: the first N prompts (0: all)
    judge: str = "vlm"  # real: the judge's kind
    judge_model: str = ""  # real: the judge's weights
    clip_model: str = ""  # real: the image embeddings' weights


def open_study(model: str = "toy", *, zoo_folder: str = "", device: str = "",
               questions_file: str = "", n_seeds: int | None = None, steps: int | None = None,
               guidance: float | None = None, batch_size: int | None = None,
               n_control_seeds: int = 6, n_condition_seeds: int = 4,
               resolution: int | None = None, bench_csv: str = "", max_prompts: int = 0,
               judge: str = "vlm", judge_model: str = "", clip_model: str = "",
               n_resamples: int = 2000, confidence: float = 0.95,
               positive_control_dvd: float = 20.0, ceiling_margin: float = 5.0,
               n_training_batches: int = 100) -> "DiversityStudy":
    """Open chapter 2 on ``model``: the toy zoo (``toy``: the causal test over the zoo's models)
    or a real model (the observation over the concepts of a prompt set). Every criterion, the
    model and the question wording are checked here, before any model loads."""
    verdict.check_criteria(positive_control_dvd, confidence, ceiling_margin)
    if isinstance(n_training_batches, bool) or not isinstance(n_training_batches, int) \
            or n_training_batches < 1:
        raise ValueError(f"n_training_batches must be an integer >= 1, got {n_training_batches!r}")
    kind = "toy" if parse_model(model).is_toy else "real"
    given = dict(n_seeds=n_seeds, steps=steps, guidance=guidance, batch_size=batch_size)
    resolved = {k: DEFAULTS[kind][k] if v is None else v for k, v in given.items()}
    settings = Settings(**resolved, n_resamples=n_resamples, confidence=confidence,
                        positive_control_dvd=positive_control_dvd,
                        n_control_seeds=n_control_seeds, n_condition_seeds=n_condition_seeds,
                        resolution=resolution, bench_csv=bench_csv, max_prompts=max_prompts,
                        judge=judge, judge_model=judge_model, clip_model=clip_model,
                        ceiling_margin=ceiling_margin, n_training_batches=n_training_batches)
    setup = open_chapter(CHAPTER, n_seeds=settings.n_seeds, model=model, zoo_folder=zoo_folder,
                         device=device)
    if setup.is_toy:
        from dvdlib.toyworld import zoo

        world = zoo.world_of(zoo.model_names(zoo_folder or None)[0], zoo_folder or None)
        wording = chapter_wording(questions_file, [toy_runs.QUESTION_CATEGORY])
        return DiversityStudy(setup, settings, verdict.toy_test(world.limited, confidence),
                              wording)
    prompts = prompt_set(bench_csv or None)
    wording = chapter_wording(questions_file, prompts["category"])
    prompts = prompts.head(max_prompts) if max_prompts else prompts
    return DiversityStudy(setup, settings, verdict.real_test(confidence), wording, prompts)


@dataclass
class DiversityStudy:
    """Chapter 2's state as its steps fill it in (see the module notes)."""

    setup: ChapterSetup
    settings: Settings
    test: Test  # the stated test: toy_test or real_test
    wording: Wording
    prompts: pd.DataFrame | None = None  # real: the prompt set
    started: float = field(default_factory=time.perf_counter)
    verdict: Verdict | None = None
    # toy: the zoo, and what the steps made
    zoo: dict = field(default_factory=dict)  # names, arms, worlds, configs, judge, embedders
    training: pd.DataFrame | None = None
    study: toy_runs.Study | None = None
    n_runs: int = 0
    results: toy_results.ToyResults | None = None
    # real: every concept's DvD and diversity, and Spearman's rho over them
    concepts: pd.DataFrame | None = None
    rho: tuple[float, float, float] | None = None
    _noted: set = field(default_factory=set)

    @property
    def kind(self) -> str:
        return "toy" if self.setup.is_toy else "real"

    def _applies(self, kind: str, step: str) -> bool:
        """Whether ``step`` applies to this run's model; if not, say so once."""
        if self.kind == kind:
            return True
        if step not in self._noted:
            self._noted.add(step)
            model = self.setup.model.text if self.setup.model else "toy"
            applies = "the toy zoo" if kind == "toy" else "real models (-p model sd1.4, ...)"
            print(f"Skipped, {step}: it applies to {applies} only; this run's model is {model!r}.")
        return False

    # ---------------------------------------------------------------------------------------
    # The toy zoo

    def _toy_zoo(self) -> dict:
        """The zoo's finished runs (least diverse first), its arms (every run of a level), their
        worlds and fine-tuning configs, the judge and the two embeddings of the measure, loaded
        once."""
        if not self.zoo:
            from dvdlib.toyworld import zoo

            folder = self.setup.zoo_folder or None
            found = arms.zoo_arms(folder)
            names = [run for runs in found.values() for run in runs]
            worlds = {name: zoo.world_of(name, folder) for name in names}
            arms.check_levels(found, {name: w.instances for name, w in worlds.items()})
            if arms.UNLIMITED not in found or K1_GROUP not in found:
                raise ValueError(f"the zoo needs K = 1 and unlimited runs; it has {list(found)}")
            configs = {n: zoo.zoo_manifest(folder)["models"][n]["config"] for n in names}
            judge = self.setup.judge("toy")
            embedders = toy_pictures.toy_embedders(judge.detector, worlds[names[0]], seed=(2, 0))
            self.zoo = dict(names=names, arms=found, worlds=worlds, configs=configs, judge=judge,
                            embedders=embedders)
        return self.zoo

    def measure_training(self, n_looks: int) -> None:
        """Our measure of each run's ``n_looks`` training pictures of the limited concept
        (``training_diversity.csv``)."""
        if not self._applies("toy", "the training pictures"):
            return
        zoo = self._toy_zoo()
        self.training = toy_pictures.training_diversity(zoo["worlds"], zoo["embedders"], n_looks,
                                                        seed=(2, 1))
        self.training.to_csv(self.setup.out / "training_diversity.csv", index=False)

    def plot_training_looks(self):
        if self._applies("toy", "the training pictures"):
            return figures.plot_training_looks(self.zoo["worlds"], self.training, seed=(2, 1))

    def training_table(self) -> pd.DataFrame | None:
        """Our diversity of each run's training pictures, per embedding (rows least diverse
        first)."""
        if self._applies("toy", "the training pictures"):
            table = self.training.pivot(index="model", columns="embedding", values="diversity")
            return table.loc[self.zoo["names"]].round(2)

    def run_causal_test(self) -> None:
        """Every run draws and is judged at the chapter's setting; the K = 1 and unlimited runs
        also at the other guidance scales and as EMA snapshots (``images.csv``); the training
        data's close-up share is counted (``training_shares.csv``); then every table, interval
        and verdict (:func:`toy_results.analyse`; ``summary.csv``, ``comparisons.csv``,
        ``verdicts.csv``, ``amplification.csv``)."""
        if not self._applies("toy", "the causal test"):
            return
        from dvdlib.toyworld import zoo as toy_zoo

        zoo, settings, folder = self._toy_zoo(), self.settings, self.setup.zoo_folder or None
        compared = self._compared()
        snapshot_steps = sorted({int(s.split("@")[1])
                                 for s in toy_zoo.model_names(folder, snapshots=True, runs=True)
                                 if s.split("@")[0] in compared})
        condition_seeds = paper_seeds(settings.n_condition_seeds) \
            if settings.n_condition_seeds else []
        plan = toy_runs.plan_runs(zoo["names"], compared, settings.guidance, snapshot_steps,
                                  self.setup.seeds, paper_seeds(settings.n_control_seeds),
                                  condition_seeds, [])  # found alone at other settings: toy_world
        self.study = toy_runs.run_study(plan, partial(toy_zoo.load_model, folder=folder),
                                        zoo["worlds"], zoo["judge"], self.setup.out / "images",
                                        steps=settings.steps, batch_size=settings.batch_size,
                                        wording=self.wording)
        self.study.images.to_csv(self.setup.out / "images.csv", index=False)
        self.n_runs = len(plan)
        self._analyse()

    def _compared(self) -> list[str]:
        """The K = 1 runs, then the unlimited runs: the arms drawn in every condition."""
        return [*self.zoo["arms"][K1_GROUP], *self.zoo["arms"][arms.UNLIMITED]]

    def _default_condition(self) -> str:
        return toy_runs.condition_label(self.settings.guidance, None)

    def _analyse(self) -> None:
        zoo, settings, out = self.zoo, self.settings, self.setup.out
        world = zoo["worlds"][zoo["names"][0]]
        object_sets = {"all objects": list(world.objects),
                       "seen in training": list(world.paired_objects),
                       "never seen": list(world.unpaired)}
        intervals = dict(n_resamples=settings.n_resamples, confidence=settings.confidence)
        runs = {n: (zoo["worlds"][n], zoo["configs"][n]["seed"], zoo["configs"][n]["batch_size"])
                for n in zoo["names"]}
        shares = amplification.training_shares(runs, settings.n_training_batches, **intervals)
        self.results = toy_results.analyse(
            self.study.images, zoo["arms"], shares, object_sets, self._default_condition(),
            concept=world.limited, margin=settings.ceiling_margin,
            positive_control_dvd=settings.positive_control_dvd, **intervals)
        self.verdict = self.results.verdicts[self._default_condition()]
        results = self.results
        for name, table in (("summary", results.summary), ("comparisons", results.comparisons),
                            ("training_shares", shares), ("amplification", results.amplification),
                            ("verdicts", verdict_table(results.verdicts))):
            table.to_csv(out / f"{name}.csv", index=False)

    def plot_by_model(self):
        if self._applies("toy", "the causal test"):
            order = [g for label, runs in self.zoo["arms"].items()
                     for g in (runs + [label] if len(runs) > 1 else runs)]
            return figures.plot_by_model(self.results.summary, order, self._default_condition())

    def plot_dose_response(self):
        """DvD and the outcomes of the pair images against K, every arm with its interval."""
        if self._applies("toy", "the causal test"):
            return figures.plot_dose_response(self.results.summary, list(self.zoo["arms"]),
                                              self._default_condition())

    def dose_table(self) -> pd.DataFrame | None:
        """Every arm at the chapter's setting (:func:`comparisons.dose_table`)."""
        if self._applies("toy", "the causal test"):
            return self.results.dose

    def plot_amplification(self):
        """The share of pair images without their carrier: training against generated."""
        if self._applies("toy", "the amplification"):
            return figures.plot_amplification(self.results.amplification, self.results.shares)

    def amplification_table(self) -> pd.DataFrame | None:
        """Generated and training shares without the carrier, and their difference."""
        if self._applies("toy", "the amplification"):
            return figures.amplification_table(self.results.amplification)

    def plot_conditions(self):
        if self._applies("toy", "the other conditions") and self._has_conditions():
            return figures.plot_conditions(self.results.summary, self._k1_comparisons(),
                                           K1_GROUP, arms.UNLIMITED)

    def condition_table(self) -> pd.DataFrame | None:
        """DvD(K = 1) - DvD(unlimited), the object's presence and the verdict in every other
        condition."""
        if self._applies("toy", "the other conditions") and self._has_conditions():
            words = {c: v.word for c, v in self.results.verdicts.items()}
            return toy_summary.condition_table(self.results.summary, self._k1_comparisons(),
                                               self._default_condition(), K1_GROUP,
                                               arms.UNLIMITED, words).round(2)

    def _k1_comparisons(self) -> pd.DataFrame:
        table = self.results.comparisons
        return table[table["first"] == K1_GROUP]

    def _has_conditions(self) -> bool:
        if self.settings.n_condition_seeds:
            return True
        if "conditions" not in self._noted:
            self._noted.add("conditions")
            print("Skipped, the other conditions: n_condition_seeds is 0.")
        return False

    def design_table(self) -> pd.DataFrame | None:
        """The first K = 1 run's DvD averaged over other objects and seeds
        (:func:`toy_summary.dvd_by_design`)."""
        if self._applies("toy", "the causal test"):
            return self.results.designs[["design", "objects", "seeds", "DvD"]]

    def plot_samples(self):
        """One image per seed of the concept alone and with two objects (one met in training,
        one never), for the first run of each arm, at the chapter's setting."""
        if self._applies("toy", "the samples"):
            world = self.zoo["worlds"][self.zoo["names"][0]]
            shown = [world.limited, f"{world.limited} {world.paired_objects[0]}",
                     f"{world.limited} {world.unpaired[0]}"]
            settings = self.settings
            seeds = paper_seeds(min(settings.n_control_seeds, settings.n_seeds, 8))
            return figures.plot_samples(self.study, self._shown(), shown,
                                        self._default_condition(), seeds)

    def _shown(self) -> list[str]:
        """The first two K = 1 runs and the first run of every other arm."""
        found = self.zoo["arms"]
        return [*found[K1_GROUP][:2], *(runs[0] for a, runs in found.items() if a != K1_GROUP)]

    def drawn_table(self) -> pd.DataFrame | None:
        """Our diversity of what each shown run draws for the concept alone (detector
        embedding, images in which the judge finds the concept; ``drawn_diversity.csv``)."""
        if not self._applies("toy", "the samples"):
            return None
        drawn = toy_pictures.drawn_diversity(self.study, self.zoo["embedders"],
                                             self._default_condition())
        drawn.to_csv(self.setup.out / "drawn_diversity.csv", index=False)
        at = drawn[drawn["embedding"] == "detector"].set_index("model")
        return at.loc[[n for n in self._shown() if n in at.index],
                      ["n", "diversity", "vendi"]].round(2)

    # ---------------------------------------------------------------------------------------
    # A real model

    def run_real_study(self) -> None:
        """Each concept's DvD over the prompt set next to our diversity of its concept-only
        images (``sd/concepts.csv``), Spearman's rho over concepts, and the verdict."""
        if not self._applies("real", "the real-model study"):
            return
        from dvdlib.chapters.data_diversity.measure import clip_image_embeddings
        from dvdlib.models.loading import load_model
        from dvdlib.scoring.judges.clip import DEFAULT_CLIP, ClipJudge

        settings, setup = self.settings, self.setup
        clip = ClipJudge.from_pretrained(settings.clip_model or DEFAULT_CLIP,
                                         device=setup.device or None)
        study = real_study.run_concept_study(
            load_model(setup.model.text, device=setup.device), setup.model.text, self.prompts,
            setup.seeds, setup.out / "sd", setup.judge(settings.judge, settings.judge_model),
            lambda images: clip_image_embeddings(clip.model, clip.preprocess, images),
            steps=settings.steps, guidance=settings.guidance, height=settings.resolution,
            width=settings.resolution, batch_size=settings.batch_size, wording=self.wording,
            n_resamples=settings.n_resamples)
        self.concepts = study.concepts
        self.concepts.to_csv(setup.out / "sd" / "concepts.csv", index=False)
        self.rho = real_study.rank_correlation(self.concepts["diversity"], self.concepts["dvd"],
                                               n_resamples=settings.n_resamples,
                                               confidence=settings.confidence)
        dvds = {r.concept: (r.dvd, r.ci_low, r.ci_high) for r in self.concepts.itertuples()}
        self.verdict = verdict.real_verdict(self.rho, dvds,
                                            positive_control_dvd=settings.positive_control_dvd,
                                            confidence=settings.confidence)

    def plot_concepts(self):
        if self._applies("real", "the real-model study"):
            return figures.plot_concepts(self.concepts, self.rho)

    def concept_table(self) -> pd.DataFrame | None:
        """Every concept's DvD with its interval and our diversity of its concept-only images."""
        if self._applies("real", "the real-model study"):
            columns = ["category", "concept", "n_prompts", "dvd", "ci_low", "ci_high",
                       "diversity", "vendi"]
            return self.concepts[columns].round(2)

    # ---------------------------------------------------------------------------------------
    # What the chapter quotes and saves

    def numbers(self) -> dict[str, float | int | str]:
        """Every number the chapter's text quotes, by glue key: the settings, the toy study's
        numbers and intervals, the verdict word and the run time. (The real study's numbers are
        in its figure, its table and the verdict's reason.) A condition this run did not draw
        (``n_condition_seeds`` 0) is quoted as such."""
        settings = self.settings
        quoted = {"ch2_n_seeds": settings.n_seeds, "ch2_steps": settings.steps,
                  "ch2_guidance": float(settings.guidance), "ch2_n_resamples": settings.n_resamples,
                  "ch2_questions": self.wording.source, "ch2_level": float(settings.confidence),
                  "ch2_positive_control_dvd": float(settings.positive_control_dvd),
                  "ch2_margin": float(settings.ceiling_margin),
                  "ch2_n_training_batches": settings.n_training_batches}
        if self.results is not None:
            quoted.update({f"ch2_{kind}_g{g:g}_{arm}{end}": "(not drawn in this run)"
                           for kind in ("generated", "amplification") for g in (1, 2, 4, 7.5)
                           for arm in ("k1", "unlimited") for end in ("", "_seen", "_never")})
            quoted.update({f"ch2_{kind}_g{g:g}": 0 for kind in ("never_images", "never_wrong",
                                                                "never_wrong_full")
                           for g in (1, 2, 4, 7.5)})
            quoted["ch2_verdict_g7.5"] = "(not drawn in this run)"
            quoted.update(self.results.quoted, ch2_n_images=len(self.study.images),
                          ch2_n_runs=self.n_runs, ch2_seconds=float(self.study.seconds))
        if self.verdict is not None:
            quoted["ch2_verdict"] = self.verdict.word
        quoted["ch2_runtime"] = time.perf_counter() - self.started
        return quoted

    def verdict_texts(self) -> dict[str, str]:
        """The verdicts as the chapter prints them (Markdown), by glue key: the default
        setting's, and (toy) the one at guidance 7.5 when it was drawn."""
        texts = {"ch2_verdict_text": self.verdict.markdown() if self.verdict else "",
                 "ch2_verdict_high_guidance_text": "(guidance 7.5 was not drawn in this run)"}
        high = toy_runs.condition_label(7.5, None)
        if self.results is not None and high in self.results.verdicts:
            texts["ch2_verdict_high_guidance_text"] = self.results.verdicts[high].markdown()
        return texts

    def headline(self) -> tuple[dict, dict]:
        """``(values, texts)`` for :func:`dvdlib.book.headlines.save`: the headline numbers
        (NaN left out: not computed), the verdicts (toy: the default setting's, and guidance
        7.5's when drawn), the resampled unit, and a summary that states every verdict."""
        if self.verdict is None:
            raise ValueError("no verdict yet: run the causal test (toy) or the real-model study")
        texts, verdict_values = {}, {}
        found = {"verdict": self.verdict}
        if self.kind == "toy":
            values = {**self.results.values, "n_seeds": self.settings.n_seeds,
                      "n_control_seeds": self.settings.n_control_seeds,
                      "n_condition_seeds": self.settings.n_condition_seeds,
                      "positive_control_dvd": self.settings.positive_control_dvd,
                      "generation_seconds": self.study.seconds}
            texts["interval_unit"] = toy_results.INTERVAL_UNIT
            high = toy_runs.condition_label(7.5, None)
            if high in self.results.verdicts and high != self._default_condition():
                found["verdict_g7.5"] = self.results.verdicts[high]
            summary = toy_results.summary_text(self.results.quoted, list(found.values()))
        else:
            values = {"rho": self.rho[0], "rho_low": self.rho[1], "rho_high": self.rho[2],
                      "n_concepts": len(self.concepts)}
            texts["interval_unit"] = "concept"
            summary = self.verdict.plain()
        for key, one in found.items():
            saved_values, saved_texts = one.headline(key)
            verdict_values.update(saved_values)
            texts.update(saved_texts)
        values = {k: float(v) for k, v in {**values, **verdict_values}.items() if v == v}
        return values, {**texts, "summary": summary}
