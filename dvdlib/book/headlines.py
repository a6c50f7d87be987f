"""Headline numbers: what a chapter computed that the landing page and sweep summaries quote.

A chapter saves its few key numbers (and, optionally, sentences built from them) with

    headlines.save("02_data_diversity", {"dvd_k1": 63.2}, texts={"summary": "At K=1 ..."})

which writes ``<build folder>/headlines/<chapter>.json`` atomically. The book builder replaces
placeholders such as ``{{ headline:02_data_diversity:summary }}`` in the staged pages with those
values, so the landing page states the numbers this build computed and nobody types them. A
placeholder whose chapter file or key is missing renders as ``(not computed in this build)``:
visible, never silently empty. ``dvd sweep`` reads the same files from each run's folder.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path

from dvdlib.paths import build_dir
from dvdlib.store import atomic_write_bytes

FOLDER = "headlines"  # <build folder>/headlines/<chapter>.json
NOT_COMPUTED = "(not computed in this build)"
RUN_TIME_SUFFIX = "_seconds"  # a headline that times the run (e.g. generation_seconds)

# A chapter or key name: letters, digits, "_", "-" and "." (it is a file stem and a CSV column).
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_NAME_PATTERN = re.compile(rf"^{_NAME}$")
# {{ headline:<chapter>:<key> }} or {{ headline:<chapter>:<key>:<format spec> }}, e.g. ":.1f".
PLACEHOLDER = re.compile(
    rf"\{{\{{\s*headline:(?P<chapter>{_NAME}):(?P<key>{_NAME})(?::(?P<spec>[^}}\s]*))?\s*\}}\}}"
)


@dataclass(frozen=True)
class Placeholder:
    """One placeholder found in a page, and what it was replaced with."""

    chapter: str
    key: str
    value: str | None  # None when the chapter file or the key is missing


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(
            f"bad {kind} name {name!r}: use letters, digits, '_', '-' and '.', "
            "starting with a letter, digit or '_'"
        )
    return name


def _plain_number(chapter: str, key: str, value) -> int | float:
    """A JSON-safe Python number from an int, float or numpy scalar; anything else is an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"headline {chapter}:{key} must be a number (int or float), got "
            f"{type(value).__name__} {value!r}; put sentences in texts="
        )
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"headline {chapter}:{key} must be finite, got {number!r}")
    return number


def headlines_dir(folder: str | Path | None = None) -> Path:
    """Where headline files live: ``<folder>/headlines``, by default in the build folder."""
    return Path(folder if folder is not None else build_dir()) / FOLDER


def save(chapter: str, values: dict, texts: dict | None = None,
         folder: str | Path | None = None) -> Path:
    """Write a chapter's headline numbers and texts to ``<build>/headlines/<chapter>.json``.

    ``values`` maps names to numbers; ``texts`` maps names to sentences (Markdown) that quote
    them. Names may not repeat between the two. The write is atomic: a reader sees the old file
    or the new one, never half of one. Returns the file written.
    """
    _check_name("chapter", chapter)
    clean_values = {_check_name("headline", key): _plain_number(chapter, key, value)
                    for key, value in dict(values).items()}
    clean_texts = {}
    for key, text in dict(texts or {}).items():
        _check_name("headline", key)
        if not isinstance(text, str):
            raise ValueError(f"headline text {chapter}:{key} must be a str, got "
                             f"{type(text).__name__} {text!r}")
        clean_texts[key] = text
    both = sorted(set(clean_values) & set(clean_texts))
    if both:
        raise ValueError(f"headline names used for both a number and a text in {chapter}: "
                         f"{', '.join(both)}")

    target = headlines_dir(folder) / f"{chapter}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {"chapter": chapter, "values": clean_values, "texts": clean_texts}
    atomic_write_bytes(target, json.dumps(document, indent=1, ensure_ascii=False).encode())
    return target


def load(chapter: str, folder: str | Path | None = None) -> dict | None:
    """A chapter's saved headlines ``{"values": {...}, "texts": {...}}``, or None if not saved."""
    _check_name("chapter", chapter)
    path = headlines_dir(folder) / f"{chapter}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise ValueError(f"unreadable headline file {path}: {err}") from None
    return {"values": dict(document.get("values", {})), "texts": dict(document.get("texts", {}))}


def load_all(folder: str | Path | None = None) -> dict[str, dict]:
    """Every chapter's headlines in a build (or run) folder, by chapter name."""
    directory = headlines_dir(folder)
    if not directory.is_dir():
        return {}
    return {path.stem: load(path.stem, folder) for path in sorted(directory.glob("*.json"))}


def flat_values(folder: str | Path | None = None) -> dict[str, int | float]:
    """Every headline number of a folder as ``{"<chapter>:<name>": number}`` (summary columns)."""
    return {f"{chapter}:{key}": value
            for chapter, document in load_all(folder).items()
            for key, value in document["values"].items()}


def format_value(value, spec: str | None = None) -> str:
    """A number as a page shows it: ``spec`` if given (e.g. ".1f"), else a short readable form."""
    if isinstance(value, str):
        return value
    if spec:
        return format(value, spec)
    if isinstance(value, int):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def substitute(text: str, folder: str | Path | None = None) -> tuple[str, list[Placeholder]]:
    """Replace every headline placeholder in ``text``; returns the text and what was replaced.

    Texts are looked up before numbers. A missing chapter file or key becomes
    :data:`NOT_COMPUTED` in the text and a :class:`Placeholder` with ``value=None`` in the list,
    so the caller can report it.
    """
    cache: dict[str, dict | None] = {}
    found: list[Placeholder] = []

    def replace(match: re.Match) -> str:
        chapter, key, spec = match["chapter"], match["key"], match["spec"]
        if chapter not in cache:
            cache[chapter] = load(chapter, folder)
        document = cache[chapter] or {"values": {}, "texts": {}}
        if key in document["texts"]:
            value = document["texts"][key]
        elif key in document["values"]:
            try:
                value = format_value(document["values"][key], spec)
            except ValueError as err:
                raise ValueError(f"bad format spec {spec!r} in placeholder {match[0]}: {err}") \
                    from None
        else:
            value = None
        found.append(Placeholder(chapter, key, value))
        return NOT_COMPUTED if value is None else value

    return PLACEHOLDER.sub(replace, text), found


def value_differences(reference: str | Path, folder: str | Path | None = None) -> list[str]:
    """Where the headline numbers of a build differ from a stored copy, one line each.

    ``reference`` is a folder of ``<chapter>.json`` files as :func:`save` writes them (a copy of an
    earlier build's ``headlines/``); ``folder`` the build or run folder to check (its
    ``headlines/``). Every chapter and every number of the reference must be there with the same
    value; numbers the reference lacks count too. Texts are not compared: their
    wording may change while the numbers stay. Run times (names ending in ``_seconds``) are
    wall-clock measurements, never the same twice: only their presence is compared.
    """
    stored = {path.stem: json.loads(path.read_text(encoding="utf-8"))["values"]
              for path in sorted(Path(reference).glob("*.json"))}
    if not stored:
        raise ValueError(f"no headline files (<chapter>.json) in {reference}")
    built = load_all(folder)
    lines = []
    for chapter, values in stored.items():
        if chapter not in built:
            lines.append(f"{chapter}: not built")
            continue
        now = built[chapter]["values"]
        for key in sorted(set(values) | set(now)):
            if key not in now:
                lines.append(f"{chapter}:{key}: missing (was {values[key]!r})")
            elif key not in values:
                lines.append(f"{chapter}:{key}: new ({now[key]!r})")
            elif now[key] != values[key] and not key.endswith(RUN_TIME_SUFFIX):
                lines.append(f"{chapter}:{key}: {values[key]!r} -> {now[key]!r}")
    return lines


def _limits(texts: dict, key: str) -> str:
    """What limits a saved verdict, in a few words: the chapter's own ``<key>_limits`` text, the
    unmet requirement of a "not testable", or that an inconclusive interval holds its bound."""
    if texts.get(f"{key}_limits"):
        return texts[f"{key}_limits"]
    word = texts[key]
    if word == "not testable":  # what this run found of the unmet requirement, else why
        return texts.get(f"{key}_unmet_found") or texts.get(f"{key}_reason", "")
    if word == "inconclusive":
        return "the interval contains the bound"
    return ""


def findings_table(folder: str | Path | None = None) -> str:
    """A Markdown table of every verdict the chapters of a build saved: the finding, what was
    measured, the estimate with its interval, the verdict and what limits it. Chapters in name
    order, verdicts in the order each chapter saved them; a build with none says so."""
    rows = []
    for chapter, document in load_all(folder).items():
        texts = document["texts"]
        for key, word in texts.items():
            if word not in ("supported", "contradicted", "inconclusive", "not testable") \
                    or f"{key}_measure" not in texts:
                continue
            cells = [texts.get(f"{key}_finding", "").capitalize(), f"{{doc}}`/book/{chapter}`",
                     texts[f"{key}_measure"], texts.get(f"{key}_interval", ""), f"**{word}**",
                     _limits(texts, key)]
            rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                          for c in cells) + " |")
    if not rows:
        return f"No chapter saved a verdict {NOT_COMPUTED}."
    head = ("| Finding | Chapter | What was measured | Estimate [95 % interval] | Verdict "
            "| What limits it |\n|---|---|---|---|---|---|")
    return "\n".join([head, *rows])

