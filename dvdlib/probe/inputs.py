"""What ``dvd probe`` is asked, checked once, before any model loads.

- :func:`probe_request`: the probe's entry check. The prompt must fit the text encoder, the
  concept and the object must be different whole words of it, the threshold a share; with the
  toy judge both words must be the toy world's; the question set is the concept's category
  (:func:`infer_category`) unless one is given. It returns a :class:`ProbeRequest`, which
  :func:`dvdlib.probe.run.probe` takes as checked.
- :func:`probe_seeds`: a seed count as every chapter takes it.
- :func:`check_prompt`, :func:`check_words`, :func:`check_toy_words`: the checks themselves, each
  raising :class:`ProbeInputError` with a message that names the bad value and what fits.

The prompt is read with the CLIP tokenizer that SD 1.x, SD 2.x and the toy world share
(:func:`dvdlib.prompts.tokenizer.clip_tokenizer`), so no model is needed to check it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dvdlib.attention.token_positions import PhraseNotFoundError, token_groups
from dvdlib.prompts.prompt_sets import VOCABULARY
from dvdlib.prompts.prompt_sets import seeds as bench_seeds
from dvdlib.prompts.tokenizer import clip_tokenizer
from dvdlib.toyworld.world import CATEGORY, CONCEPTS, OBJECTS, unknown_words

MAX_SEED_COUNT = 10_000  # distinct values of the paper's seed draw, randint(1, 10000)
DEFAULT_THRESHOLD = 0.6
TOY_CATEGORY = CATEGORY  # the question category of the toy world's prompts


class ProbeInputError(ValueError):
    """A prompt, word or seed list that cannot be probed; the message names it."""


@dataclass(frozen=True)
class ProbeRequest:
    """One probe's checked inputs: the words in lower case, as judges and questions take them."""

    prompt: str
    concept: str
    object: str
    seeds: tuple[int, ...]
    category: str
    threshold: float = DEFAULT_THRESHOLD


def probe_seeds(count: int) -> list[int]:
    """``count`` seeds as every chapter takes them (:func:`dvdlib.prompts.prompt_sets.seeds`)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SEED_COUNT:
        raise ProbeInputError(f"the number of seeds must be a whole number in 1..{MAX_SEED_COUNT}, "
                              f"got {count!r}")
    return bench_seeds(count)


def prompt_words(prompt: str) -> list[str]:
    """The prompt's words as written, without the punctuation around them."""
    words = [word.strip(".,;:!?\"'()[]{}") for word in prompt.split()]
    return [word for word in words if word]


def check_prompt(prompt: str, tokenizer) -> int:
    """The prompt's token count (start and end tokens included) if the text encoder reads it whole."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ProbeInputError(f"the prompt {prompt!r} is empty; give the prompt to probe, e.g. "
                              f"\"Neuschwanstein Castle Coaster\"")
    limit = tokenizer.model_max_length
    ids = tokenizer(prompt, truncation=False, verbose=False).input_ids  # [start, words..., end]
    if len(ids) > limit:
        # CLIP marks a word's last token with </w>: the cut tokens read back as words.
        cut = "".join(tokenizer.convert_ids_to_tokens(ids[limit - 1:-1])).replace("</w>", " ").strip()
        raise ProbeInputError(
            f"the prompt is {len(ids)} tokens long, start and end tokens included; the text "
            f"encoder reads at most {limit}, so it would never see {cut!r}. Shorten the "
            f"prompt by {len(ids) - limit} token(s)"
        )
    return len(ids)


def check_words(prompt: str, concept: str, object_word: str, tokenizer) -> dict[str, list[int]]:
    """The token positions of the concept and the object in the prompt (both whole words of it)."""
    for option, word in (("--concept", concept), ("--object", object_word)):
        if not isinstance(word, str) or not word.strip():
            raise ProbeInputError(f"{option} is empty; give a word of the prompt, one of: "
                                  f"{', '.join(prompt_words(prompt))}")
    for option, word in (("--concept", concept), ("--object", object_word)):
        try:
            token_groups(tokenizer, prompt, {"word": word})
        except PhraseNotFoundError:
            raise ProbeInputError(
                f"{option} {word!r} is not in the prompt {prompt!r}; the prompt's words are: "
                f"{', '.join(prompt_words(prompt))} (a word matches whole words, case aside: "
                f"'mug' does not match 'mugs')"
            ) from None
    try:
        return token_groups(tokenizer, prompt, {"concept": concept, "object": object_word})
    except ValueError:
        raise ProbeInputError(f"--concept {concept!r} and --object {object_word!r} share words of the "
                              f"prompt; give two different parts of {prompt!r}") from None


def infer_category(concept: str, judge: str, toy_concepts: Sequence[str] = CONCEPTS) -> str:
    """The question set for ``concept``: its DominanceBench category, or ``print`` (a toy-world
    concept, or any concept the toy judge reads)."""
    name = " ".join(concept.split()).casefold()
    for category, concepts in VOCABULARY.items():
        if name in concepts:
            return category
    if name in toy_concepts or judge == "toy":
        return TOY_CATEGORY
    raise ProbeInputError(
        f"cannot tell which questions fit the concept {concept!r}: it is none of the benchmark's "
        f"artists, landmarks or characters nor a toy-world concept ({', '.join(toy_concepts)}); "
        f"pass --category (accepted: artist, landmark, character, {TOY_CATEGORY})"
    )


def check_toy_words(concept: str, object_word: str) -> None:
    """Refuse a concept or object the toy judge does not know, naming what it knows."""
    strangers = unknown_words(concept, object_word)
    if strangers:
        raise ProbeInputError(
            f"the toy judge sees only the concepts {', '.join(CONCEPTS)} and the objects "
            f"{', '.join(OBJECTS)}; {' and '.join(strangers)} "
            f"{'is' if len(strangers) == 1 else 'are'} not among them: probe the toy world's own "
            f"words (e.g. 'sunset coaster'), or choose --judge clip or vlm")


def probe_request(prompt: str, concept: str, object_word: str, seeds: Sequence[int], *,
                  judge: str, category: str | None = None,
                  threshold: float = DEFAULT_THRESHOLD, tokenizer=None) -> ProbeRequest:
    """Check what a probe is asked (see the module notes) and return it as a :class:`ProbeRequest`.

    ``judge`` is the judge's kind (``toy``, ``clip``, ``vlm``); ``tokenizer`` defaults to CLIP's.
    """
    tokenizer = tokenizer or clip_tokenizer()
    check_prompt(prompt, tokenizer)
    check_words(prompt, concept, object_word, tokenizer)
    if not 0 < threshold < 1:
        raise ProbeInputError(f"--threshold {threshold}: must be between 0 and 1")
    # Judges and question templates take the words in lower case, as the prompt sets write them.
    concept, object_word = (" ".join(w.split()).casefold() for w in (concept, object_word))
    if judge == "toy":
        check_toy_words(concept, object_word)
    return ProbeRequest(prompt, concept, object_word, tuple(int(s) for s in seeds),
                        category or infer_category(concept, judge), threshold)
