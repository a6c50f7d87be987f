"""Prompt sets: the authors' DominanceBench CSV, our built-in set, and the paper's seeds.

A prompt set is a table with the columns ``case_num, category, concept, object, prompt``:
``concept`` is the concept expected to dominate, ``object`` the object expected to be suppressed.

This module is the one place that knows the authors' CSV names for those columns
(``content_type``, ``content``, ``nm_word``): :func:`load_prompts` reads a file in their format
and :func:`save_prompts` writes one; every other table of dvdlib says category, concept and
object. A table handed over with the authors' names is refused with a message saying so.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from dvdlib.store import save_table

COLUMNS = ("case_num", "category", "concept", "object", "prompt")
# The authors' CSV header, column for column with COLUMNS.
AUTHORS_COLUMNS = ("case_num", "content_type", "content", "nm_word", "prompt")
FROM_AUTHORS = dict(zip(AUTHORS_COLUMNS, COLUMNS))
TO_AUTHORS = dict(zip(COLUMNS, AUTHORS_COLUMNS))
CATEGORIES = ("artist", "landmark", "character")

# The paper's ten seeds: ten draws of randint(1, 10000) from random.Random(42).
MAX_CASE_NUM = 999_999_999  # case folders and tables hold case numbers as 64-bit integers
PAPER_SEEDS = (1825, 410, 4507, 4013, 3658, 2287, 1680, 8936, 1425, 9675)
EXTRA_SEED_START = 10_001  # seeds after the paper's ten (drawn from 1..10000): no collision
MAX_SEED = 2**32 - 1  # the largest seed numpy's and torch's generators both take


def seeds(n: int) -> list[int]:
    """``n`` seeds: the paper's ten first, then 10001, 10002, ... (never one of the paper's)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"the number of seeds must be a positive integer, got {n!r}")
    extra = [EXTRA_SEED_START + i for i in range(max(0, n - len(PAPER_SEEDS)))]
    return [*PAPER_SEEDS[:n], *extra]


def check_seeds(seeds: Sequence) -> list[int]:
    """The seeds as ints; a ValueError naming the first seed that is not a whole number in
    0..:data:`MAX_SEED`, or ``seeds`` itself if it is one string (``"1825"`` is not four seeds)."""
    if isinstance(seeds, (str, bytes)):
        raise ValueError(f"{seeds!r} is one string, not a list of seeds; give a list, e.g. "
                         f"[1825, 410], or a number of seeds")
    checked = []
    for seed in seeds:
        text = str(seed).strip()
        if isinstance(seed, bool) or not text.isdigit() or int(text) > MAX_SEED:
            raise ValueError(f"seed {seed!r} is not a non-negative integer up to {MAX_SEED:,}; "
                             f"seeds are whole numbers such as 1825")
        checked.append(int(text))
    if not checked:
        raise ValueError("no seeds given")
    if len(set(checked)) != len(checked):
        raise ValueError(f"seeds repeat: {checked}")
    return checked


class PromptSetError(ValueError):
    """A prompt table that cannot be used; the message names the row and the column."""


# The phrase columns every validated table carries: the words as they appear in the prompt.
# A file may give them (the authors' extra-column files have ``object_prompt_phrase``); else
# they are found in the prompt from ``concept`` / ``object``.
PHRASES = {  # derived column -> (the word column, the authors' phrase column)
    "concept_phrase": ("concept", "content_prompt_phrase"),
    "object_phrase": ("object", "object_prompt_phrase"),
}
# What ``load_prompts(expect=...)`` can check: the authors' benchmark file.
EXPECTATIONS = {"dominancebench": {"rows": 300, "per_category": 100}}


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def prompt_tokens(prompt: str) -> str:
    """The prompt's words and punctuation marks, as a matcher sees them: ``Notebook · Windmill``."""
    return " · ".join(re.findall(r"\w+|[^\w\s]", str(prompt))) or "(none)"


def find_in_prompt(phrase: str, prompt: str) -> tuple[str, str] | None:
    """Where ``phrase`` is written in ``prompt``: ``(the prompt's own text, how)``, or None.

    ``how`` is ``"exact"`` when the phrase occurs as whole words (case and runs of white space
    aside) and ``"spacing"`` when it occurs only once spaces and hyphens are ignored between its
    letters ("mousepad" in "a mouse pad", "t-shirt" in "a t shirt"). Either way the match covers
    whole words: "mug" is not found in "mugs".
    """
    phrase, prompt = str(phrase), str(prompt)
    words = phrase.split()
    if not words:
        return None
    exact = r"\s+".join(re.escape(word) for word in words)
    found = re.search(rf"(?<!\w){exact}(?!\w)", prompt, re.IGNORECASE)
    if found:
        return found.group(0), "exact"
    letters = [c for c in phrase if not c.isspace() and c != "-"]
    loose = r"[\s-]*".join(re.escape(c) for c in letters)
    found = re.search(rf"(?<!\w){loose}(?!\w)", prompt, re.IGNORECASE) if letters else None
    if found:
        return found.group(0), "spacing"
    return None


def _phrase_of(row, column: str) -> tuple[str, str, str]:
    """``(phrase, where it comes from, how it was found)`` for one row and derived column."""
    word_column, given_column = PHRASES[column]
    given = getattr(row, given_column, None)
    source = given_column if _is_text(given) else word_column
    wanted = str(given if _is_text(given) else getattr(row, word_column)).strip()
    found = find_in_prompt(wanted, row.prompt)
    if found is None:
        return wanted, source, "missing"
    return found[0], source, found[1]


def phrase_problems(table: pd.DataFrame, names: dict[str, str] | None = None
                    ) -> tuple[list[str], list[str]]:
    """Rows whose concept or object is not in the prompt, and rows matched across spacing.

    Returns ``(problems, matches)``, one text per row and side, every row listed: a problem
    names the case, the column, the word and the prompt's tokens; a match names the word and
    the prompt's text it was matched to ("mousepad" -> "mouse pad"). ``names`` maps a column to
    the name the messages give it (a file's own header: :data:`TO_AUTHORS`).
    """
    names = names or {}
    problems, matches = [], []
    for row in table.itertuples(index=False):
        for column in PHRASES:
            phrase, source, how = _phrase_of(row, column)
            shown = names.get(source, source)
            if how == "missing":
                problems.append(f"case {row.case_num}: {shown} {phrase!r} is not in the prompt "
                                f"{row.prompt!r} (its tokens: {prompt_tokens(row.prompt)})")
            elif how == "spacing":
                matches.append(f"case {row.case_num}: {shown} {getattr(row, source)!r} as "
                               f"{phrase!r}")
    return problems, matches


def with_phrases(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``concept_phrase`` and ``object_phrase``: each side as the prompt writes it.

    A side not found in its prompt keeps its word (:func:`phrase_problems` says which).
    """
    table = table.copy()
    for column in PHRASES:
        table[column] = [_phrase_of(row, column)[0] for row in table.itertuples(index=False)]
    return table


def concept_phrase(row) -> str:
    """The concept as its prompt writes it: the row's ``concept_phrase``, else its ``concept``."""
    value = getattr(row, "concept_phrase", None)
    return value if _is_text(value) else row.concept


def object_phrase(row) -> str:
    """The object as its prompt writes it: the row's ``object_phrase``, else its ``object``."""
    value = getattr(row, "object_phrase", None)
    return value if _is_text(value) else row.object


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of a CSV file, refusing text that is not UTF-8 and ragged rows."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise PromptSetError(
            f"{path}, line {line}: byte 0x{data[err.start]:02x} (byte offset {err.start}) is not "
            f"UTF-8 text; save the file as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        rows = []
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if len(fields) != len(header):
                raise PromptSetError(
                    f"{path}, row {len(rows) + 2} (line {reader.line_num}): {len(fields)} fields, "
                    f"the header has {len(header)} ({', '.join(header)}); quote a field that "
                    f"holds a comma"
                )
            rows.append(fields)
    except csv.Error as err:
        raise PromptSetError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None
    return header, rows


def load_prompts(path: str | Path, categories: Iterable[str] = CATEGORIES, *,
                 expect: str | None = None, report: Callable[[str], None] | None = None
                 ) -> pd.DataFrame:
    """Read a prompt set in the authors' CSV format and validate it; the table says ``category``,
    ``concept`` and ``object`` where the file says ``content_type``, ``content`` and ``nm_word``.

    Standard CSV quoting (quoted commas, doubled quotes) and UTF-8 text are read as written.
    Rows are numbered as in a spreadsheet: the header is row 1, the first prompt row 2. Extra
    columns are kept (the authors' other prompt files have ``object_prompt_phrase``,
    ``template_id``, ...). Every row gains ``concept_phrase`` and ``object_phrase``, the concept
    and the object as the prompt writes them (see :func:`with_phrases`); a word that is not in
    its prompt is refused, every such row listed at once. A word found only across spacing or
    hyphens ("mousepad" for "mouse pad") is accepted and reported through ``report`` (default:
    a :class:`PhraseMatchWarning`). Messages name the file's own columns.

    ``expect="dominancebench"`` also checks the benchmark's shape: 300 rows, 100 per category.
    """
    path = Path(path)
    if expect is not None and expect not in EXPECTATIONS:
        raise ValueError(f"expect={expect!r} is not a known prompt file; accepted: "
                         f"{', '.join(EXPECTATIONS)} (or None)")
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    header, rows = read_rows(path)
    missing = [c for c in AUTHORS_COLUMNS if c not in header]
    if missing:
        raise PromptSetError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"the header is {', '.join(header) or '(empty)'}; expected {', '.join(AUTHORS_COLUMNS)}"
            + _our_names_hint(header)
            + ("; it names targets (target1, ...): a file with several targets per prompt, read "
               "by dvdlib.prompts.targets.load_targets (and by dvd generate, score and probe)"
               if "target1" in header else "")
        )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise PromptSetError(f"{path}: the header names column(s) {', '.join(repeated)} twice")
    if not rows:
        raise PromptSetError(f"{path}: the file has a header but no prompt rows; a row is "
                             f"{', '.join(AUTHORS_COLUMNS)}")
    taken = set(header) & (set(COLUMNS) - set(AUTHORS_COLUMNS))
    if taken:  # an extra column would collide with a renamed one
        raise PromptSetError(f"{path}: the header names {', '.join(sorted(taken))} beside the "
                             f"authors' columns {', '.join(AUTHORS_COLUMNS)}; rename or drop it")
    columns = [*AUTHORS_COLUMNS, *(c for c in header if c not in AUTHORS_COLUMNS)]
    table = pd.DataFrame(rows, columns=header)[columns].rename(columns=FROM_AUTHORS)
    table = validate_prompts(table, categories, source=str(path), names=TO_AUTHORS)
    _check_pairs(table, str(path))
    problems, matches = phrase_problems(table, TO_AUTHORS)
    if problems:
        raise PromptSetError(f"{path}: the concept and object must appear in the prompt text; "
                             f"{len(problems)} do not: " + "; ".join(problems))
    if matches:
        note = (f"{path}: {len(matches)} word(s) found in the prompt only across spacing or "
                f"hyphens, used as written in the prompt: " + "; ".join(matches))
        if report is None:
            warnings.warn(note, PhraseMatchWarning, stacklevel=2)
        else:
            report(note)
    if expect is not None:
        _check_expected(table, expect, str(path))
    return table


class PhraseMatchWarning(UserWarning):
    """Words of a prompt file matched in their prompt across spacing or hyphens."""


def save_prompts(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a prompt table as a CSV in the authors' format, which :func:`load_prompts` reads
    (and ``dvd generate --prompts`` takes): their five columns first, under their names, then
    the table's other columns (``concept_phrase``/``object_phrase`` are left out: they are
    found again on reading)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise ValueError(f"a prompt file is a CSV; got {str(path)!r}")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise PromptSetError(f"the prompt table for {path}: missing column(s) "
                             f"{', '.join(missing)}" + _authors_names_hint(table.columns))
    extra = [c for c in table.columns if c not in COLUMNS and c not in PHRASES]
    return save_table(table[[*COLUMNS, *extra]].rename(columns=TO_AUTHORS), path)


def _our_names_hint(columns) -> str:
    """A note for a header that uses dvdlib's names where the authors' are expected."""
    ours = [c for c in COLUMNS if c in columns and c not in AUTHORS_COLUMNS]
    return (f" (it names {', '.join(ours)}: dvdlib's names for "
            f"{', '.join(TO_AUTHORS[c] for c in ours)}; write prompt files with "
            f"dvdlib.prompts.prompt_sets.save_prompts)" if ours else "")


def _authors_names_hint(columns) -> str:
    """A note for a table that uses the authors' names where dvdlib's are expected."""
    theirs = [c for c in AUTHORS_COLUMNS if c in columns and c not in COLUMNS]
    return (f" (it names {', '.join(theirs)}: the authors' CSV names for "
            f"{', '.join(FROM_AUTHORS[c] for c in theirs)}; read their file with "
            f"dvdlib.prompts.prompt_sets.load_prompts)" if theirs else "")


def _check_expected(table: pd.DataFrame, expect: str, source: str) -> None:
    wanted = EXPECTATIONS[expect]
    counts = table["category"].value_counts()
    per_category = {c: int(counts.get(c, 0)) for c in CATEGORIES}
    off = {c: n for c, n in per_category.items() if n != wanted["per_category"]}
    if len(table) != wanted["rows"] or off:
        found = ", ".join(f"{n} {c}" for c, n in per_category.items())
        raise PromptSetError(
            f"{source}: not the {expect} file: it has {len(table)} rows ({found}); "
            f"{expect} has {wanted['rows']} rows, {wanted['per_category']} per category "
            f"({', '.join(CATEGORIES)})"
        )


def validate_prompts(table: pd.DataFrame, categories: Iterable[str] = CATEGORIES,
                     source: str = "prompt table", names: dict[str, str] | None = None
                     ) -> pd.DataFrame:
    """Check a prompt table and return a typed copy.

    ``case_num`` becomes int; the text columns are stripped of surrounding white space; extra
    columns are kept, after the five of :data:`COLUMNS`; ``concept_phrase`` and
    ``object_phrase`` are added (:func:`with_phrases`). Whether the words are in their prompts
    is :func:`phrase_problems`'s check. ``names`` maps a column to the name messages give it.
    """
    names = names or {}
    if not isinstance(table, pd.DataFrame):  # a file name where a table is expected, say
        raise ValueError(f"{source}: expected a prompt table (a pandas DataFrame with columns "
                         f"{', '.join(COLUMNS)}), got {type(table).__name__} {table!r:.80}; read "
                         f"a prompt file with load_prompts(path)")
    if isinstance(categories, (str, bytes)):  # tuple("print") would be its letters
        raise ValueError(f"categories={categories!r} is one string; give a list of categories, "
                         f"e.g. [{categories!r}]")
    categories = tuple(categories)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise PromptSetError(f"{source}: missing column(s) {', '.join(missing)}"
                             + _authors_names_hint(table.columns))
    table = table[[*COLUMNS, *(c for c in table.columns if c not in COLUMNS)]].copy()
    seen: dict[int, int] = {}
    case_nums = []
    for i, row in enumerate(table.itertuples(index=False)):
        where = f"{source}, row {i + 2}"
        raw = str(row.case_num).strip() if _present(row.case_num) else ""
        if not re.fullmatch(r"\d+", raw):
            raise PromptSetError(f"{where}, column case_num: {raw!r} is not a positive integer")
        num = int(raw)
        if num > MAX_CASE_NUM:
            raise PromptSetError(f"{where}, column case_num: {raw} is above the largest case "
                                 f"number accepted, {MAX_CASE_NUM:,}")
        if num in seen:
            raise PromptSetError(
                f"{where}, column case_num: duplicate case number {num} (first at row {seen[num]})"
            )
        seen[num] = i + 2
        case_nums.append(num)
        category = str(row.category).strip() if _present(row.category) else ""
        if category not in categories:
            raise PromptSetError(
                f"{where}, column {names.get('category', 'category')}: unknown value "
                f"{category!r}; accepted: {', '.join(categories)}"
            )
        for column in ("concept", "object", "prompt"):
            value = getattr(row, column)
            if not _present(value) or not str(value).strip():
                raise PromptSetError(f"{where}, column {names.get(column, column)}: empty value")
    table["case_num"] = case_nums
    for column in ("category", "concept", "object", "prompt"):
        table[column] = [str(v).strip() for v in table[column]]
    return with_phrases(table.reset_index(drop=True))


def _check_pairs(table: pd.DataFrame, source: str) -> None:
    """Refuse a row of a prompt file whose concept is its object: a DvD pair names two things.
    (Tables built in code may hold one-word controls, the concept prompted alone.)"""
    for i, row in enumerate(table.itertuples(index=False)):
        if " ".join(row.concept.split()).casefold() == " ".join(row.object.split()).casefold():
            raise PromptSetError(f"{source}, row {i + 2}: {TO_AUTHORS['concept']} and "
                                 f"{TO_AUTHORS['object']} are both {row.concept!r}; a pair names "
                                 f"two different things")


def _present(value) -> bool:
    """False for None and NaN (a missing field), True for any other value."""
    return value is not None and not (isinstance(value, float) and value != value)


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
    """Our own 300-prompt set, 100 prompts per category, in the shape :func:`load_prompts` returns.

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
