"""Describing a prompt set (chapter 1): prompt lengths in tokens, prompts per concept, repeats;
and a set with several targets per prompt (:func:`describe_target_set`): its prompts and targets
per condition and category, their lengths in tokens, and how each target was aligned."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dvdlib.prompts.targets import TARGET_TYPES, load_targets, target_token_positions


def token_lengths(table: pd.DataFrame, tokenizer) -> pd.Series:
    """Each prompt's length in the tokenizer's tokens, start and end tokens excluded, untruncated."""
    ids = tokenizer(list(table["prompt"]), add_special_tokens=False, truncation=False)["input_ids"]
    return pd.Series([len(x) for x in ids], index=table.index, name="tokens")


def concept_counts(table: pd.DataFrame, column: str = "concept") -> pd.DataFrame:
    """Prompts per (category, concept), most frequent first, with each concept's share of its
    category and its rank."""
    counts = (table.groupby(["category", column]).size().rename("prompts").reset_index()
              .sort_values(["category", "prompts", column], ascending=[True, False, True]))
    totals = counts.groupby("category")["prompts"].transform("sum")
    counts["share"] = counts["prompts"] / totals
    counts["rank"] = counts.groupby("category").cumcount() + 1
    return counts.reset_index(drop=True)


def duplicate_prompts(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose prompt text repeats another row's, compared case- and space-insensitively."""
    key = table["prompt"].str.lower().str.split().str.join(" ")
    repeated = key.duplicated(keep=False)
    dup = table[repeated].assign(normalised=key[repeated])
    return dup.sort_values(["normalised", "case_num"]).reset_index(drop=True)


ALL_CONDITIONS = "all"  # the row of a set without conditions (the pilot layout)


@dataclass
class TargetSetDescription:
    """What :func:`describe_target_set` found; empty tables when no set was given."""

    source: str | None  # the file read, or None
    layout: str | None = None
    n_prompts: int = 0
    n_targets: int = 0  # targets in all (prompts x slots)
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)  # condition x (prompts, types)
    tokens: pd.DataFrame = field(default_factory=pd.DataFrame)  # per type: token lengths
    prompt_tokens: pd.Series = field(default_factory=lambda: pd.Series(dtype=int))
    alignment: pd.DataFrame = field(default_factory=pd.DataFrame)  # the targets with a note
    notes: list[str] = field(default_factory=list)  # the loader's notes, as it gave them

    def sentence(self) -> str:
        """One sentence for the chapter's text."""
        if self.source is None:
            return ("none was given (the parameter targets_csv is empty), so this section shows "
                    "nothing")
        return (f"{self.source} holds {self.n_prompts} prompts in the {self.layout} layout, "
                f"{self.n_targets} targets in all; prompts run {self.prompt_tokens.median():.0f} "
                f"CLIP tokens at the median and {self.prompt_tokens.max()} at most, and "
                f"{len(self.alignment)} targets were aligned with a note (listed below)")


def describe_target_set(path: str | Path | None, tokenizer) -> TargetSetDescription:
    """Read a prompt file with several targets per prompt (None: no set) and describe it.

    ``counts``: per condition (the factorial layout's "000" ... "111"; ``all`` otherwise) the
    prompts and the targets of each category. ``tokens``: per category the targets and their
    length in tokens (median, max: the tokens of each target's own occurrence,
    :func:`~dvdlib.prompts.targets.target_token_positions`). ``prompt_tokens``: each prompt's
    length in tokens (start and end aside). ``alignment``: every target whose word occurs more
    than once in its prompt or is written otherwise there (which occurrence it took, its tokens).
    """
    if path is None:
        return TargetSetDescription(source=None)
    notes: list[str] = []
    target_set = load_targets(path, report=notes.append)
    targets = target_token_positions(target_set, tokenizer)
    targets = targets.assign(tokens=targets["token_positions"].map(len))
    conditions = target_set.prompts.set_index("case_num")["condition"] \
        if "condition" in target_set.prompts else None
    targets["condition"] = (targets["case_num"].map(conditions) if conditions is not None
                            else ALL_CONDITIONS)
    kinds = [k for k in TARGET_TYPES if k in set(targets["type"])]
    counts = targets.pivot_table(index="condition", columns="type", values="slot",
                                 aggfunc="size", fill_value=0).reindex(columns=kinds)
    counts.insert(0, "prompts", targets.groupby("condition")["case_num"].nunique())
    tokens = targets.groupby("type")["tokens"].agg(targets="size", median="median", max="max")
    written = targets["phrase"].str.casefold().str.split().str.join(" ") != \
        targets["word"].str.casefold().str.split().str.join(" ")
    alignment = targets[(targets["occurrences"] > 1) | written]
    lengths = token_lengths(target_set.prompts, tokenizer)
    return TargetSetDescription(
        source=str(path), layout=target_set.layout, n_prompts=len(target_set.prompts),
        n_targets=len(targets), counts=counts.rename_axis(columns=None),
        tokens=tokens.reindex(kinds), prompt_tokens=lengths,
        alignment=alignment[["case_num", "slot", "type", "word", "phrase", "occurrence",
                             "occurrences", "token_positions"]].reset_index(drop=True),
        notes=notes)
