"""The yes/no questions a judge answers about each image: five on the concept, five on the object.

The paper describes its questions but we do not copy its sentences: :data:`OUR_WORDING` is our
own wording of the same plan (see the book's scoring chapter):

- artist: painting style, brushwork, colour, composition typical of the artist, with a *lenient*
  instruction (yes if the picture even loosely recalls the painter);
- landmark: depicted, recognisable, visible in part, its architecture, in front or background;
- character: present, a look-alike, costume or emblem, a reference to the story, a theme;
- object (shared by the three categories): present, partly visible, the main subject,
  recognisable by its form, presented like a product;
- shape (the toy world, both sides): plain presence of a drawn shape.

Every question except the artist-concept ones ends with the strict instruction.

Users who have the authors' wording load it from a JSON file (:func:`load_wording`)::

    {
      "format": "dvd-questions/1",
      "instructions": {"strict": " Reply with yes or no only.", "lenient": " ..."},
      "lenient": ["artist"],
      "concept": {"artist": [5 questions], "landmark": [...], "character": [...]},
      "object": {"default": [5 questions]}
    }

- A question names its subject (the concept, or the object word) as ``{subject}``; ``{content}``
  is accepted as the same field, since the authors' templates call it so. Literal braces are
  doubled (``{{``), as in Python's ``str.format``.
- The text a judge reads is the filled question followed directly by its instruction: write the
  separating space at the start of the instruction, as above.
- ``lenient`` lists the categories whose *concept* questions take the lenient instruction; every
  other question takes the strict one.
- ``object`` maps a category to its object questions; ``default`` serves every category not named.

The concept and object words of a prompt must appear in its prompt text (case and runs of spaces
ignored): :func:`check_prompt_words` checks a whole prompt set before any model is loaded, in
``dvd generate`` and ``dvd score`` (and in their Python functions), so a bad row fails at once,
not after hours of work.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import pandas as pd

from dvdlib.prompts.prompt_sets import PromptSetError, phrase_problems
from dvdlib.scoring.judges.base import QUESTIONS_PER_SIDE, Question

FORMAT = "dvd-questions/1"
SUBJECT_FIELDS = ("subject", "content")  # "content" is the authors' name for the same field
DEFAULT = "default"


class WordingError(ValueError):
    """A question wording (file) that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class Wording:
    """Question templates per category and side, plus the two instructions."""

    concept_templates: Mapping[str, tuple[str, ...]]  # category -> 5 templates
    object_templates: Mapping[str, tuple[str, ...]]  # category (or "default") -> 5 templates
    strict: str  # appended to every question but the lenient ones
    lenient: str  # appended to the concept questions of ``lenient_categories``
    lenient_categories: frozenset[str] = frozenset()
    source: str = "our wording"

    def __post_init__(self):
        object.__setattr__(self, "concept_templates", MappingProxyType(dict(self.concept_templates)))
        object.__setattr__(self, "object_templates", MappingProxyType(dict(self.object_templates)))
        object.__setattr__(self, "lenient_categories", frozenset(self.lenient_categories))
        for side, table in (("concept", self.concept_templates), ("object", self.object_templates)):
            for category, templates in table.items():
                _check_templates(templates, f"{self.source}: {side}.{category}")
        for name in ("strict", "lenient"):
            if not isinstance(getattr(self, name), str):
                raise WordingError(f"{self.source}: instructions.{name} must be a string")
        unknown = sorted(self.lenient_categories - set(self.concept_templates))
        if unknown:
            raise WordingError(
                f"{self.source}: lenient names {', '.join(map(repr, unknown))}, which have no concept "
                f"questions; categories with concept questions: {', '.join(self.concept_templates)}"
            )

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.concept_templates)

    def templates(self, side: str, category: str) -> tuple[str, ...]:
        table = self.concept_templates if side == "concept" else self.object_templates
        found = table.get(category, None if side == "concept" else table.get(DEFAULT))
        if found is None:
            raise WordingError(
                f"{self.source} has no {side} questions for category {category!r}; it has "
                f"{', '.join(table) or 'none'}"
            )
        return found

    def instruction(self, side: str, category: str) -> str:
        lenient = side == "concept" and category in self.lenient_categories
        return self.lenient if lenient else self.strict

    def to_dict(self) -> dict:
        """The JSON form read by :func:`load_wording` (use it as a template for your own file)."""
        return {
            "format": FORMAT,
            "instructions": {"strict": self.strict, "lenient": self.lenient},
            "lenient": sorted(self.lenient_categories),
            "concept": {k: list(v) for k, v in self.concept_templates.items()},
            "object": {k: list(v) for k, v in self.object_templates.items()},
        }


def _check_templates(templates, where: str) -> tuple[str, ...]:
    if (not isinstance(templates, (list, tuple))
            or not all(isinstance(t, str) and t.strip() for t in templates)):
        raise WordingError(f"{where}: expected a list of {QUESTIONS_PER_SIDE} non-empty strings")
    if len(templates) != QUESTIONS_PER_SIDE:
        raise WordingError(
            f"{where}: {len(templates)} questions; a side has exactly {QUESTIONS_PER_SIDE}"
        )
    for template in templates:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        except ValueError as err:
            raise WordingError(f"{where}: {template!r}: {err} (write literal braces as {{{{ }}}})") from None
        bad = [f for f in fields if f not in SUBJECT_FIELDS]
        if bad:
            raise WordingError(
                f"{where}: {template!r} uses placeholder {{{bad[0]}}}; accepted: "
                f"{', '.join('{' + f + '}' for f in SUBJECT_FIELDS)}"
            )
    return tuple(templates)


_STRICT = " Reply with yes or no only."
_LENIENT = (" Say yes if the picture even loosely recalls this painter's work, a faint stylistic "
            "echo included; otherwise say no. Reply with yes or no only.")
_OBJECT = (
    "Is there a {subject} in this picture?",
    "Can at least part of a {subject} be seen in this picture?",
    "Is a {subject} the main thing this picture shows?",
    "Does any item in this picture have the recognisable form of a {subject}?",
    "Does this picture present a {subject} the way a product listing would?",
)

OUR_WORDING = Wording(
    concept_templates={
        "artist": (
            "Does this picture look as if {subject} could have painted it?",
            "Are the brushstrokes or the paint texture here characteristic of {subject}?",
            "Does the colour palette of this picture call paintings by {subject} to mind?",
            "Is the arrangement of the scene reminiscent of a composition by {subject}?",
            "Could this picture be taken for a reproduction of a work by {subject}?",
        ),
        "landmark": (
            "Does this picture depict the {subject}?",
            "Would someone who knows the {subject} recognise it in this picture?",
            "Can any part of the {subject} be seen in this picture?",
            "Does the picture show architecture or scenery that belongs to the {subject}?",
            "Does the {subject} appear in this picture, in front or in the background?",
        ),
        "character": (
            "Does {subject} appear in this picture?",
            "Does any figure in this picture resemble {subject}?",
            "Can you see a costume, emblem or logo that belongs to {subject}?",
            "Does this picture refer to {subject} or to the story {subject} comes from?",
            "Is anything in this picture clearly themed after {subject}?",
        ),
        "print": (
            "Does this picture show a {subject} scene?",
            "Can any part of a {subject} picture be seen here, printed or full-frame?",
            "Is a {subject} the main thing this picture shows?",
            "Do the colours and forms of a {subject} appear in this picture?",
            "Would someone describe this picture as a {subject}?",
        ),
    },
    object_templates={DEFAULT: _OBJECT},
    strict=_STRICT,
    lenient=_LENIENT,
    lenient_categories={"artist"},
)


def load_wording(path: str | Path) -> Wording:
    """Read a question wording from a JSON file in the format of this module's notes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"question file not found: {path}") from None
    except OSError as err:  # a folder, a file we may not read
        raise WordingError(f"cannot read question file {path}: {err.strerror}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise WordingError(f"{path}: not valid JSON ({err})") from None
    return wording_from_dict(data, source=str(path))


def wording_from_dict(data: Any, source: str = "question wording") -> Wording:
    if not isinstance(data, dict):
        raise WordingError(f"{source}: expected a JSON object at the top level")
    if data.get("format") != FORMAT:
        raise WordingError(f"{source}: format is {data.get('format')!r}; expected {FORMAT!r}")
    allowed = {"format", "instructions", "lenient", "concept", "object"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise WordingError(f"{source}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(sorted(allowed))}")
    instructions = data.get("instructions")
    if not isinstance(instructions, dict) or set(instructions) != {"strict", "lenient"}:
        raise WordingError(f"{source}: instructions must be an object with exactly 'strict' and 'lenient'")
    for side in ("concept", "object"):
        if not isinstance(data.get(side), dict) or not data[side]:
            raise WordingError(f"{source}: {side} must be a non-empty object (category -> questions)")
    lenient = data.get("lenient", [])
    if not isinstance(lenient, list) or not all(isinstance(c, str) for c in lenient):
        raise WordingError(f"{source}: lenient must be a list of category names")
    return Wording(
        concept_templates={k: tuple(v) if isinstance(v, list) else v for k, v in data["concept"].items()},
        object_templates={k: tuple(v) if isinstance(v, list) else v for k, v in data["object"].items()},
        strict=instructions["strict"],
        lenient=instructions["lenient"],
        lenient_categories=frozenset(lenient),
        source=source,
    )


def check_categories(wording: Wording, categories, source: str = "the prompt set") -> Wording:
    """``wording`` if it has concept and object questions for every category in ``categories``;
    else a :class:`WordingError` naming each missing category and side (all of them at once)."""
    missing = []
    for category in dict.fromkeys(str(c) for c in categories):
        for side in ("concept", "object"):
            try:
                wording.templates(side, category)
            except WordingError:
                missing.append(f"{side} questions for category {category!r}")
    if missing:
        raise WordingError(
            f"{wording.source} lacks {'; '.join(missing)}, which {source} needs; it has concept questions "
            f"for {', '.join(wording.concept_templates) or 'none'} and object questions for "
            f"{', '.join(wording.object_templates) or 'none'}")
    return wording


def chapter_wording(path: str | Path, categories) -> Wording:
    """The wording a chapter's judge asks: ours when ``path`` is empty, else the file at ``path``,
    checked against the prompt set's ``categories`` before any model is loaded (the toy world's
    prompts have the one category ``shape``)."""
    wording = load_wording(path) if str(path or "").strip() else OUR_WORDING
    return check_categories(wording, categories,
                            f"the prompt set (categories {', '.join(dict.fromkeys(map(str, categories)))})")


def questions_for(category: str, concept: str, object_word: str,
                  wording: Wording = OUR_WORDING) -> list[Question]:
    """The ten questions about an image of one prompt: five on ``concept``, then five on
    ``object_word``."""
    questions = []
    for side, subject in (("concept", concept), ("object", object_word)):
        instruction = wording.instruction(side, category)
        for index, template in enumerate(wording.templates(side, category)):
            text = template.format_map({name: subject for name in SUBJECT_FIELDS}) + instruction
            questions.append(Question(side=side, subject=subject, index=index, text=text))
    return questions


def check_prompt_words(prompts: pd.DataFrame, source: str = "prompt set") -> None:
    """Raise :class:`~dvdlib.prompts.prompt_sets.PromptSetError` if a row's concept or object is not in its prompt.

    The concept and the object are the rows' phrases (``concept_phrase``/``object_phrase`` or,
    in a table without them, ``concept``/``object``), matched as whole words, case and runs of
    white space aside ("Van  Gogh's" contains "van gogh"), or across spacing and hyphens
    ("mousepad" in "mouse pad"). Every bad row is listed, so one run of the check finds them all.
    """
    problems, _ = phrase_problems(prompts)
    if problems:
        raise PromptSetError(
            f"{source}: the concept and object words must appear in the prompt text; "
            f"{len(problems)} do not: " + "; ".join(problems)
        )
