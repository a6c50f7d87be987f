"""Describing a prompt set (chapter 1): prompt lengths in tokens, prompts per concept, repeats."""

from __future__ import annotations

import pandas as pd


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
