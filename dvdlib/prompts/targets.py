"""Prompt sets that name several targets in one prompt: the authors' three-target files.

Beside DominanceBench (one concept and one object per prompt, :mod:`dvdlib.prompts.prompt_sets`)
the authors publish prompts that name three targets at once, in two layouts:

- **pilot**: ``case_num, prompt, target{k}_type, target{k} (k = 1..3), carrier, template_id,
  source``; one artist, one landmark and one character per prompt, on a carrier ("a poster
  combining Amedeo Modigliani painting style, Colosseum, and Cinderella", carrier "poster");
- **factorial** (2x2x2): ``case_num, condition, condition_case_num, prompt, target{k}_type,
  target{k}, target{k}_homogeneity, template_id, source``; each slot holds a strong concept
  (homogeneity 1, type artist, landmark or character) or a generic object (homogeneity 0, type
  ``object``), and ``condition`` is the three flags as text, "000" to "111".

:func:`load_targets` reads either layout (the number of slots is read from the header) into a
:class:`TargetSet`: ``prompts``, one row per prompt, and ``targets``, one row per target
(:data:`TARGET_COLUMNS`), each aligned to its own occurrence in its prompt. Every bad row of a
file is named in one error. :func:`align_targets` is the alignment for one prompt and
:func:`target_token_positions` maps the aligned characters to a tokenizer's positions.
:func:`is_target_file` tells such a file from a DominanceBench one by its header (a ``target1``
column), :func:`one_prompt_targets` makes a set of one prompt typed on the command line, and
:func:`select_target_cases` keeps some cases of a set.

How a target is aligned (:func:`align_targets`):

- a word is found as whole words, case and runs of spaces aside, or across spacing and hyphens
  (:func:`~dvdlib.prompts.prompt_sets.find_in_prompt`): "Van Gogh" in "Van Gogh-style artwork",
  "spider-man" in "Spider-Man", "mousepad" in "a mouse pad";
- the longest word claims its occurrence first, so "notebook" never takes the "notebook" inside
  "spiral notebook";
- a word left with several free occurrences goes to the carrier's first and a target's last:
  the templates name the carrier first ("a notebook cover design that includes a notebook, a
  coffee mug, and a spiral notebook"), also where the file does not name it (the factorial
  layout has no carrier column);
- each target records which occurrence it took (``occurrence`` of ``occurrences``), and the
  loader reports every word that occurs more than once.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from dvdlib.prompts.prompt_sets import (CATEGORIES, MAX_CASE_NUM, VOCABULARY, PhraseMatchWarning,
                                        PromptSetError, find_in_prompt, prompt_tokens, read_rows)

LAYOUTS = ("pilot", "factorial")
GENERIC_TYPE = "object"  # a generic slot's type; the strong types are the benchmark's CATEGORIES
TARGET_TYPES = (*CATEGORIES, GENERIC_TYPE)
TARGET_COLUMNS = ("case_num", "slot", "role", "type", "word", "phrase", "strong", "start", "end",
                  "occurrence", "occurrences")
CARRIER_ROLE, TARGET_ROLE = "carrier", "target"
SLOT_FIELDS = {"pilot": ("target{k}_type", "target{k}"),
               "factorial": ("target{k}_type", "target{k}", "target{k}_homogeneity")}
PROMPT_FIELDS = {"pilot": ("case_num", "prompt", "carrier"),
                 "factorial": ("case_num", "condition", "condition_case_num", "prompt")}


@dataclass(frozen=True)
class TargetSet:
    """A prompt set with several targets per prompt, in one tidy form.

    ``prompts``: ``case_num``, ``prompt``, then ``carrier`` (pilot) or ``condition`` (text, "001")
    and ``condition_case_num`` (factorial), then the file's other columns (``template_id``, ...).
    ``targets``: :data:`TARGET_COLUMNS`, one row per target and prompt, ``slot`` 1..n_targets
    (the carrier, when taken as a target, is slot n_targets + 1 with role ``carrier``);
    ``start``/``end`` are the character span of ``phrase`` in the prompt.
    """

    layout: str
    n_targets: int
    prompts: pd.DataFrame
    targets: pd.DataFrame
    source: str


@dataclass(frozen=True)
class Span:
    """Where one word was aligned in its prompt."""

    start: int
    end: int
    phrase: str  # the prompt's own text, prompt[start:end]
    how: str  # "exact" or "spacing", as find_in_prompt matched it
    occurrence: int  # which of the word's whole-word occurrences in the prompt (1-based)
    occurrences: int


def _squeezed(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def word_spans(word: str, prompt: str) -> tuple[list[tuple[int, int]], str]:
    """Every whole-word occurrence of ``word`` in ``prompt`` as ``(start, end)``, and how the
    word was matched (``"exact"``, ``"spacing"``; ``"missing"`` with no occurrence)."""
    found = find_in_prompt(word, prompt)
    if found is None:
        return [], "missing"
    written, how = found  # the prompt's own spelling: search every place it recurs
    pattern = r"\s+".join(re.escape(part) for part in written.split())
    spans = [m.span() for m in re.finditer(rf"(?<!\w){pattern}(?!\w)", prompt, re.IGNORECASE)]
    return spans, how


def align_targets(prompt: str, words: Sequence[str], carrier: str | None = None
                  ) -> tuple[list[Span | None], Span | None]:
    """The span of each word of ``words`` in ``prompt`` (None where none is left), and the
    carrier's (None without one): longest word first, the carrier on its first free occurrence,
    a target on its last (see the module notes)."""
    wanted = [*words, *([carrier] if carrier is not None else [])]
    is_carrier = [False] * len(words) + [True] * (carrier is not None)
    order = sorted(range(len(wanted)),
                   key=lambda i: (-len(_squeezed(wanted[i])), not is_carrier[i], i))
    claimed: list[tuple[int, int]] = []
    spans: list[Span | None] = [None] * len(wanted)
    for i in order:
        found, how = word_spans(wanted[i], prompt)
        free = [(number, (start, end)) for number, (start, end) in enumerate(found, 1)
                if all(end <= taken_start or start >= taken_end
                       for taken_start, taken_end in claimed)]
        if not free:
            continue
        number, (start, end) = free[0] if is_carrier[i] else free[-1]
        claimed.append((start, end))
        spans[i] = Span(start, end, prompt[start:end], how, number, len(found))
    return spans[:len(words)], (spans[-1] if carrier is not None else None)


# --------------------------------------------------------------------------------------------
# Reading and validating a file


def is_target_file(path: str | Path) -> bool:
    """Whether the CSV file at ``path`` names targets (a ``target1`` column in its header): the
    commands read it with :func:`load_targets`, else as a DominanceBench file. A file that cannot
    be read is not one (its reader then names what is wrong)."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as file:
            header = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "target1" in (name.strip() for name in header)


def _layout_of(header: Sequence[str]) -> str:
    factorial = "condition" in header or any(c.endswith("_homogeneity") for c in header)
    return "factorial" if factorial else "pilot"


def _slot_count(header: Sequence[str]) -> int:
    count = 0
    while f"target{count + 1}" in header:
        count += 1
    return count


def required_columns(layout: str, n_targets: int = 3) -> list[str]:
    """The columns a file of ``layout`` must have (``template_id``, ``source`` are optional)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not known; accepted: {', '.join(LAYOUTS)}")
    case, *rest = PROMPT_FIELDS[layout]
    slots = [f.format(k=k) for k in range(1, n_targets + 1) for f in SLOT_FIELDS[layout]]
    return [case, *rest, *slots]


def _whole_number(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d+", text) and int(text) <= MAX_CASE_NUM else None


def _flag(text: str) -> tuple[int | None, str]:
    """A homogeneity flag: ``(0 or 1, "")``, or ``(None, why not)``."""
    try:
        number = float(text)
    except ValueError:
        return None, f"{text!r} is not a number; accepted: 0 or 1"
    if not math.isfinite(number):
        return None, f"{text!r} is not a finite number; accepted: 0 or 1"
    if number not in (0, 1):
        return None, f"{text!r} is neither 0 nor 1 (0: a generic object, 1: a strong concept)"
    return int(number), ""


def _row_problems(row: dict, where: str, layout: str, n_targets: int) -> list[str]:
    """Every problem of one row, each naming its column and value."""
    problems = [f"{where}, column {column}: empty value"
                for column in required_columns(layout, n_targets) if not row.get(column, "-")]
    for k in range(1, n_targets + 1):
        kind, word = row[f"target{k}_type"], row[f"target{k}"]
        if kind and kind not in TARGET_TYPES:
            problems.append(f"{where}, column target{k}_type: unknown value {kind!r}; accepted: "
                            f"{', '.join(TARGET_TYPES)}")
        if layout == "factorial" and row[f"target{k}_homogeneity"]:
            flag, why = _flag(row[f"target{k}_homogeneity"])
            if flag is None:
                problems.append(f"{where}, column target{k}_homogeneity: {why}")
            elif kind in TARGET_TYPES and flag != (kind != GENERIC_TYPE):
                problems.append(f"{where}: target{k} {word!r} has type {kind} but homogeneity "
                                f"{flag}; 1 goes with {', '.join(CATEGORIES)}, 0 with "
                                f"{GENERIC_TYPE}")
    words = [_squeezed(row[f"target{k}"]) for k in range(1, n_targets + 1)]
    for k, word in enumerate(words, 1):
        if word and words.index(word) + 1 < k:
            problems.append(f"{where}: target{words.index(word) + 1} and target{k} are both "
                            f"{row[f'target{k}']!r}; a prompt's targets name different things")
    if layout == "factorial" and row["condition"]:
        flags = "".join(str(_flag(row[f"target{k}_homogeneity"])[0])
                        for k in range(1, n_targets + 1))
        if not re.fullmatch(f"[01]{{{n_targets}}}", row["condition"]):
            problems.append(f"{where}, column condition: {row['condition']!r} is not "
                            f"{n_targets} characters 0 or 1, one per slot (e.g. {'0' * n_targets!r}"
                            f"; a spreadsheet that drops leading zeros breaks it)")
        elif flags.isdigit() and row["condition"] != flags:
            problems.append(f"{where}, column condition: {row['condition']!r} does not match the "
                            f"slots' homogeneity {flags!r}")
    return problems


def _number_problems(rows: Sequence[dict], layout: str, source: str) -> list[str]:
    """Case numbers (and condition case numbers) that are not whole numbers, or repeat: a case
    number once in the file, a condition case number once within its condition."""
    columns = ("case_num", "condition_case_num") if layout == "factorial" else ("case_num",)
    problems, first_row = [], {}
    for line, row in enumerate(rows, 2):
        for column in columns:
            number = _whole_number(row[column])
            if row[column] and number is None:
                problems.append(f"{source}, row {line}, column {column}: {row[column]!r} is not "
                                f"a whole number up to {MAX_CASE_NUM:,}")
                continue
            within = f" within condition {row['condition']}" if column != "case_num" else ""
            key = (column, within, number)
            if number is not None and key in first_row:
                problems.append(f"{source}, row {line}, column {column}: duplicate {column} "
                                f"{number}{within} (first at row {first_row[key]})")
            first_row.setdefault(key, line)
    return problems


def _check_header(header: list[str], source: str) -> tuple[str, int]:
    layout, n_targets = _layout_of(header), _slot_count(header)
    missing = [c for c in required_columns(layout, max(n_targets, 3)) if c not in header]
    if missing:
        hint = (" (content_type, content, nm_word: a two-target DominanceBench file; read it "
                "with dvdlib.prompts.prompt_sets.load_prompts)" if "nm_word" in header else "")
        raise PromptSetError(
            f"{source}: missing column(s) {', '.join(missing)} of the {layout} layout; the header "
            f"is {', '.join(header) or '(empty)'}; expected "
            f"{', '.join(required_columns(layout, max(n_targets, 3)))}{hint}")
    if n_targets < 2:
        raise PromptSetError(f"{source}: {n_targets} target column(s); a target set has at least "
                             f"two, target1 and target2")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise PromptSetError(f"{source}: the header names column(s) {', '.join(repeated)} twice")
    return layout, n_targets


def load_targets(path: str | Path, *, with_carrier: bool = False,
                 report: Callable[[str], None] | None = None,
                 cases: Iterable[int] | None = None) -> TargetSet:
    """Read a prompt file with several targets per prompt (pilot or factorial layout) and
    validate it; see the module notes.

    The layout is told by the header: ``condition`` or a ``target{k}_homogeneity`` column makes
    it factorial. Rows are numbered as in a spreadsheet (the header is row 1). Every problem of
    every row (an empty value, a type outside :data:`TARGET_TYPES`, a homogeneity that is not
    0 or 1 or does not fit the type, a condition that is not one 0/1 character per slot or does
    not match the slots, a case number that is not a whole number or repeats, a target that
    cannot be aligned) is named in one :class:`PromptSetError`. Words matched only across
    spacing, and words that occur more than once in their prompt, are reported through
    ``report`` (default: a :class:`PhraseMatchWarning`).

    ``with_carrier=True`` adds the carrier as one more target (an object, slot n_targets + 1);
    it needs a ``carrier`` column (the pilot layout). ``cases`` keeps only those cases (none if
    the file has none of them); every row is still checked, and the notes are on those cases.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    header, lines = read_rows(path)
    layout, n_targets = _check_header(header, str(path))
    if with_carrier and "carrier" not in header:
        raise PromptSetError(f"{path}: with_carrier needs a carrier column, which the {layout} "
                             f"layout does not have")
    if not lines:
        raise PromptSetError(f"{path}: the file has a header but no prompt rows")
    rows = [{name: value.strip() for name, value in zip(header, fields)} for fields in lines]
    problems = _number_problems(rows, layout, str(path))
    for line, row in enumerate(rows, 2):
        problems += _row_problems(row, f"{path}, row {line}", layout, n_targets)
    if problems:
        raise PromptSetError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems))
    targets, notes, unaligned = _aligned_targets(rows, n_targets, with_carrier)
    if unaligned:
        raise PromptSetError(f"{path}: every target must appear in its prompt, on text of its "
                             f"own; {len(unaligned)} do not: " + "; ".join(unaligned))
    kept = None if cases is None else {int(case) for case in cases}
    notes = [text for case, text in notes if kept is None or case in kept]
    if notes:
        note = f"{path}: {len(notes)} note(s) on aligning the targets: " + "; ".join(notes)
        if report is None:
            warnings.warn(note, PhraseMatchWarning, stacklevel=2)
        else:
            report(note)
    first = list(PROMPT_FIELDS[layout])
    slot_columns = required_columns(layout, n_targets)[len(first):]
    prompts = pd.DataFrame(rows, columns=header)
    prompts = prompts[[*first, *(c for c in header if c not in first and c not in slot_columns)]]
    for column in ("case_num", "condition_case_num"):
        if column in prompts:
            prompts[column] = prompts[column].astype(int)
    loaded = TargetSet(layout, n_targets, prompts.reset_index(drop=True), targets, str(path))
    return loaded if kept is None else select_target_cases(loaded, kept)


def _aligned_targets(rows: Sequence[dict], n_targets: int, with_carrier: bool
                     ) -> tuple[pd.DataFrame, list[tuple[int, str]], list[str]]:
    """The target table of validated rows, the notes on their alignment (case, text) and the
    targets that could not be aligned (one text each)."""
    table, notes, unaligned = [], [], []
    for row in rows:
        case, prompt = int(row["case_num"]), row["prompt"]
        words = [row[f"target{k}"] for k in range(1, n_targets + 1)]
        kinds = [row[f"target{k}_type"] for k in range(1, n_targets + 1)]
        carrier = row.get("carrier") or None
        spans, carrier_span = align_targets(prompt, words, carrier)
        entries = [(k, TARGET_ROLE, kinds[k - 1], words[k - 1], spans[k - 1])
                   for k in range(1, n_targets + 1)]
        if carrier is not None:
            entries.append((n_targets + 1, CARRIER_ROLE, GENERIC_TYPE, carrier, carrier_span))
        for slot, role, kind, word, span in entries:
            name = f"case {case}: {'target' + str(slot) if role == TARGET_ROLE else role} {word!r}"
            if span is None:
                taken = word_spans(word, prompt)[0]
                why = ("occurs only inside the text of another target or the carrier" if taken
                       else "is not in the prompt")
                unaligned.append(f"{name} {why}: {prompt!r} (its tokens: "
                                 f"{prompt_tokens(prompt)})")
                continue
            if span.how == "spacing":
                notes.append((case, f"{name} found across spacing as {span.phrase!r}"))
            if span.occurrences > 1:
                notes.append((case, f"{name} occurs {span.occurrences} times; aligned to "
                                    f"occurrence {span.occurrence}, characters "
                                    f"{span.start}-{span.end}"))
            if role == TARGET_ROLE or with_carrier:
                table.append((case, slot, role, kind, word, span.phrase, kind != GENERIC_TYPE,
                              span.start, span.end, span.occurrence, span.occurrences))
    return pd.DataFrame(table, columns=list(TARGET_COLUMNS)), notes, unaligned


def select_target_cases(target_set: TargetSet, cases: set[int]) -> TargetSet:
    """The set with only the prompts (and targets) of ``cases``."""
    keep = target_set.prompts["case_num"].isin(cases)
    return TargetSet(target_set.layout, target_set.n_targets,
                     target_set.prompts[keep].reset_index(drop=True),
                     target_set.targets[target_set.targets["case_num"].isin(cases)]
                     .reset_index(drop=True), target_set.source)


def target_type(word: str) -> str:
    """A target's type from the benchmark's vocabulary (artist, landmark, character), else
    :data:`GENERIC_TYPE`."""
    name = _squeezed(word)
    return next((kind for kind, words in VOCABULARY.items() if name in words), GENERIC_TYPE)


def one_prompt_targets(prompt: str, targets: Sequence[str], *, source: str = "--targets",
                       report: Callable[[str], None] | None = None) -> TargetSet:
    """A :class:`TargetSet` of one prompt (case 1, pilot layout without a carrier) from words
    typed on the command line: each ``TYPE:WORD`` (TYPE one of :data:`TARGET_TYPES`) or ``WORD``,
    whose type is then :func:`target_type`'s. Checked and aligned as a file's rows are."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptSetError(f"the prompt {prompt!r} is empty; give the prompt, e.g. \"a poster "
                             f"combining Monet, Big Ben and Batman\"")
    if isinstance(targets, str) or len(targets) < 2:
        raise PromptSetError(f"{source} {targets!r}: give at least two targets, e.g. {source} "
                             f"monet 'big ben' 'object:mug'")
    row = {"case_num": "1", "prompt": " ".join(prompt.split())}
    for k, text in enumerate(targets, 1):
        kind, colon, word = str(text).partition(":")
        if not colon:
            kind, word = target_type(text), text
        row[f"target{k}_type"], row[f"target{k}"] = kind.strip().casefold(), " ".join(word.split())
    n_targets = len(targets)
    problems = _row_problems(row, source, "pilot", n_targets)
    if problems:
        raise PromptSetError("; ".join(problems))
    table, notes, unaligned = _aligned_targets([row], n_targets, with_carrier=False)
    notes = [text for _, text in notes]
    if unaligned:
        raise PromptSetError(f"{source}: every target must appear in the prompt, on text of its "
                             f"own: " + "; ".join(unaligned))
    if notes and report is not None:
        report(f"{source}: " + "; ".join(notes))
    prompts = pd.DataFrame([{"case_num": 1, "prompt": row["prompt"]}])
    return TargetSet("pilot", n_targets, prompts, table, source)


# --------------------------------------------------------------------------------------------
# Token positions


def target_token_positions(target_set: TargetSet, tokenizer) -> pd.DataFrame:
    """``target_set.targets`` with ``token_positions``: each target's positions in the sequence
    the text encoder reads (position 0 is the start token when the tokenizer adds one).

    The tokenizer is called as a Hugging Face tokenizer (``tokenizer(text, ...)["input_ids"]``):
    the positions of a span are the tokens added by its characters, counted on the prompt's own
    prefixes, so they are the target's own occurrence. A span whose characters do not fall on
    token boundaries, or whose tokens lie past the tokenizer's ``model_max_length`` (cut by
    truncation, never seen by the model), is refused: every such target in one error.
    """
    prompts = dict(zip(target_set.prompts["case_num"], target_set.prompts["prompt"]))
    limit = getattr(tokenizer, "model_max_length", None)

    def ids(text: str, **options) -> list[int]:
        return list(tokenizer(text, verbose=False, **options)["input_ids"])

    positions, problems = [], []
    for target in target_set.targets.itertuples(index=False):
        prompt = prompts[target.case_num]
        words = ids(prompt, add_special_tokens=False, truncation=False)
        framed = ids(prompt, truncation=False)
        offset = next((i for i in range(len(framed) - len(words) + 1)
                       if framed[i:i + len(words)] == words), 0)
        kept = len(ids(prompt, truncation=True, max_length=limit)) - (len(framed) - len(words)) \
            if limit else len(words)
        before = ids(prompt[:target.start].rstrip(), add_special_tokens=False, truncation=False)
        through = ids(prompt[:target.end], add_special_tokens=False, truncation=False)
        name = f"case {target.case_num}: {target.role} {target.slot} {target.word!r}"
        if words[:len(before)] != before or words[:len(through)] != through:
            problems.append(f"{name}: the characters {target.start}-{target.end} of {prompt!r} "
                            f"do not fall on token boundaries")
        elif len(through) > kept:
            problems.append(f"{name} lies (partly) past the {limit}-token limit and is cut by "
                            f"truncation in {prompt!r}")
        positions.append(tuple(range(offset + len(before), offset + len(through))))
    if problems:
        raise PromptSetError(f"{target_set.source}: {len(problems)} target(s) cannot be mapped "
                             f"to the tokens the text encoder reads: " + "; ".join(problems))
    return target_set.targets.assign(token_positions=positions)
