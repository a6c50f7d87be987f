"""Prompt sets: the authors' DominanceBench CSV, our built-in set, and the paper's seeds.

A prompt set is a table with the authors' columns ``case_num, content_type, content, nm_word,
prompt``: ``content`` is the concept expected to dominate, ``nm_word`` the object expected to be
suppressed.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

COLUMNS = ("case_num", "content_type", "content", "nm_word", "prompt")
CATEGORIES = ("artist", "landmark", "character")

# The paper's ten seeds: ten draws of randint(1, 10000) from random.Random(42).
PAPER_SEEDS = (1825, 410, 4507, 4013, 3658, 2287, 1680, 8936, 1425, 9675)
EXTRA_SEED_START = 10_001  # seeds after the paper's ten (drawn from 1..10000): no collision


def seeds(n: int) -> list[int]:
    """``n`` seeds: the paper's ten first, then 10001, 10002, ... (never one of the paper's)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {n!r}")
    extra = [EXTRA_SEED_START + i for i in range(max(0, n - len(PAPER_SEEDS)))]
    return [*PAPER_SEEDS[:n], *extra]


class PromptSetError(ValueError):
    """A prompt table that cannot be used; the message names the row and the column."""


def load_prompts(path: str | Path, categories: Iterable[str] = CATEGORIES) -> pd.DataFrame:
    """Read a prompt set in the authors' CSV format and validate it.

    Standard CSV quoting (quoted commas, doubled quotes) and UTF-8 text are read as written.
    Rows are numbered as in a spreadsheet: the header is row 1, the first prompt row 2.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise PromptSetError(
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"the header is {', '.join(header) or '(empty)'}; expected {', '.join(COLUMNS)}"
            )
        rows = [{c: row[c] for c in COLUMNS} for row in reader]
    return validate_prompts(pd.DataFrame(rows, columns=list(COLUMNS)), categories, source=str(path))


def validate_prompts(table: pd.DataFrame, categories: Iterable[str] = CATEGORIES,
                     source: str = "prompt table") -> pd.DataFrame:
    """Check a prompt table and return a typed copy (``case_num`` as int, text stripped)."""
    categories = tuple(categories)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise PromptSetError(f"{source}: missing column(s) {', '.join(missing)}")
    table = table[list(COLUMNS)].copy()
    seen: dict[int, int] = {}
    case_nums = []
    for i, row in enumerate(table.itertuples(index=False)):
        where = f"{source}, row {i + 2}"
        raw = str(row.case_num).strip() if row.case_num is not None else ""
        if not re.fullmatch(r"\d+", raw):
            raise PromptSetError(f"{where}, column case_num: {raw!r} is not a positive integer")
        num = int(raw)
        if num in seen:
            raise PromptSetError(
                f"{where}, column case_num: duplicate case number {num} (first at row {seen[num]})"
            )
        seen[num] = i + 2
        case_nums.append(num)
        if row.content_type not in categories:
            raise PromptSetError(
                f"{where}, column content_type: unknown value {row.content_type!r}; "
                f"accepted: {', '.join(categories)}"
            )
        for column in ("content", "nm_word", "prompt"):
            value = getattr(row, column)
            if value is None or not str(value).strip():
                raise PromptSetError(f"{where}, column {column}: empty value")
    table["case_num"] = case_nums
    return table.reset_index(drop=True)


def case_slug(prompt: str, max_length: int = 80) -> str:
    """The folder-name form of a prompt: lower case, runs of non-word characters as ``_``."""
    slug = re.sub(r"\W+", "_", prompt.lower()).strip("_")
    return slug[:max_length].rstrip("_") or "prompt"


def case_folder(case_num: int, prompt: str) -> str:
    """The image folder the authors' scorer expects, e.g. ``case001_notebook_windmill_rembrandt``."""
    return f"case{int(case_num):03d}_{case_slug(prompt)}"


def parse_case_folder(name: str) -> int | None:
    """The case number of a ``caseNNN_<slug>`` folder name, or None for any other name."""
    match = re.match(r"case(\d+)(?:_|$)", name)
    return int(match.group(1)) if match else None


# The concept vocabulary of DominanceBench (facts from the paper's benchmark), and templates we
# wrote ourselves, so every chapter runs without the authors' file.
VOCABULARY = {
    "artist": [
        "amedeo modigliani", "andy warhol", "camille pissarro", "caravaggio", "claude monet",
        "edgar degas", "edvard munch", "egon schiele", "frida kahlo", "gustav klimt", "hokusai",
        "kandinsky", "leonardo da vinci", "leonid afremov", "monet", "pierre-auguste renoir",
        "raphael", "rembrandt", "titian", "van gogh", "vermeer",
    ],
    "landmark": [
        "acropolis", "big ben", "brandenburg gate", "colosseum", "eiffel tower",
        "empire state building", "golden gate bridge", "grand canyon", "great wall of china",
        "hagia sophia", "kremlin", "machu picchu", "neuschwanstein castle", "parthenon", "petra",
        "pyramid", "space needle", "taj mahal", "times square", "tower bridge",
    ],
    "character": [
        "barbie", "batman", "black panther", "buzz lightyear", "captain america", "cinderella",
        "goku", "hello kitty", "hulk", "iron man", "joker", "luffy", "mickey mouse", "minions",
        "naruto", "pikachu", "rapunzel", "simpson", "spider-man", "superman", "thor",
        "wonder woman", "woody",
    ],
}
OBJECTS = [
    "apron", "bag", "bottle", "clock", "coaster", "coffee mug", "cup", "curtain", "headphones",
    "hoodie", "lamp", "magnet", "mouse pad", "necklace", "notebook", "placemat", "pouch", "rug",
    "spiral notebook", "sweatshirt", "t-shirt", "tie", "tote bag", "umbrella", "wallet",
]
TEMPLATES = {
    "artist": [
        "{concept} Painting {object}",
        "{object} with Art by {concept}",
        "{concept} Style Floral {object}",
        "Famous {concept} Masterpiece Printed {object}",
        "{object}, {concept} Inspired Design",
    ],
    "landmark": [
        "{concept} {object}",
        "{concept} at Night Souvenir {object}",
        "Vintage {concept} Travel Poster {object}",
        "{object} with {concept} Photo Print",
        "{concept} Skyline {object} Gift",
    ],
    "character": [
        "{concept} {object}",
        "Cute {concept} Cartoon {object}",
        "{object} featuring {concept}",
        "Kids {concept} Logo {object}",
        "Retro {concept} Comic {object}",
    ],
}
PROMPTS_PER_CATEGORY = 100


def _title(words: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in words.split(" "))


def builtin_prompts() -> pd.DataFrame:
    """Our own 300-prompt set in the authors' table shape: 100 prompts per category.

    Prompt ``i`` of a category pairs concept ``i mod n_concepts`` with template ``i mod 5`` and an
    object chosen by a stride through the object list, so every concept, template and object
    appears and no (concept, object, template) triple repeats.
    """
    rows = []
    for c, category in enumerate(CATEGORIES):
        concepts = VOCABULARY[category]
        for i in range(PROMPTS_PER_CATEGORY):
            concept = concepts[i % len(concepts)]
            obj = OBJECTS[(7 * i + 3 * c) % len(OBJECTS)]
            template = TEMPLATES[category][(i // len(concepts) + i) % len(TEMPLATES[category])]
            prompt = template.format(concept=_title(concept), object=_title(obj))
            rows.append((c * PROMPTS_PER_CATEGORY + i + 1, category, concept, obj, prompt))
    return validate_prompts(pd.DataFrame(rows, columns=list(COLUMNS)), source="built-in prompts")


def prompt_set(bench_csv: str | Path | None = None) -> pd.DataFrame:
    """The authors' file when a path is given, else our built-in set."""
    return load_prompts(bench_csv) if bench_csv else builtin_prompts()


# --- Describing a prompt set (chapter 1) -------------------------------------------------------


def token_lengths(table: pd.DataFrame, tokenizer) -> pd.Series:
    """Each prompt's length in the tokenizer's tokens, start and end tokens excluded, untruncated."""
    ids = tokenizer(list(table["prompt"]), add_special_tokens=False, truncation=False)["input_ids"]
    return pd.Series([len(x) for x in ids], index=table.index, name="tokens")


def concept_counts(table: pd.DataFrame, column: str = "content") -> pd.DataFrame:
    """Prompts per (category, concept), most frequent first, with each concept's share of its
    category and its rank."""
    counts = (table.groupby(["content_type", column]).size().rename("prompts").reset_index()
              .sort_values(["content_type", "prompts", column], ascending=[True, False, True]))
    totals = counts.groupby("content_type")["prompts"].transform("sum")
    counts["share"] = counts["prompts"] / totals
    counts["rank"] = counts.groupby("content_type").cumcount() + 1
    return counts.reset_index(drop=True)


def duplicate_prompts(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose prompt text repeats another row's, compared case- and space-insensitively."""
    key = table["prompt"].str.lower().str.split().str.join(" ")
    repeated = key.duplicated(keep=False)
    dup = table[repeated].assign(normalised=key[repeated])
    return dup.sort_values(["normalised", "case_num"]).reset_index(drop=True)
