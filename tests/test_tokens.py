"""Token alignment with the real CLIP tokenizer: words and phrases to token positions."""

from __future__ import annotations

import pytest
import torch

from dvdlib.attention.token_positions import (PhraseNotFoundError, PromptTokens, find_phrase, token_groups, tokenize_prompt,
                           word_shares)


def test_positions_and_kinds(tokenizer):
    tokens = tokenize_prompt(tokenizer, "Neuschwanstein Castle Coaster")
    assert tokens.length == 77
    assert tokens.start_position == 0 and tokens.end_position == 7
    assert tokens.word_positions == (1, 2, 3, 4, 5, 6)
    assert tokens.padding_positions == tuple(range(8, 77))
    assert tokens.kinds[:8] == ("start", "word", "word", "word", "word", "word", "word", "end")
    assert not tokens.truncated
    assert PromptTokens.from_dict(tokens.to_dict()) == tokens


def test_multi_token_word_and_case(tokenizer):
    prompt = "Neuschwanstein Castle Coaster"
    assert find_phrase(tokenizer, prompt, "neuschwanstein") == [1, 2, 3, 4]
    assert find_phrase(tokenizer, prompt, "NEUSCHWANSTEIN castle") == [1, 2, 3, 4, 5]
    assert find_phrase(tokenizer, prompt, "coaster") == [6]


def test_punctuation_and_hyphens(tokenizer):
    prompt = "Van Gogh T-Shirt, Starry Night; coaster!"
    tokens = tokenize_prompt(tokenizer, prompt)
    shirt = find_phrase(tokenizer, tokens, "t-shirt")
    assert [tokens.tokens[i] for i in shirt] == ["t</w>", "-</w>", "shirt</w>"]
    assert find_phrase(tokenizer, tokens, "T-SHIRT") == shirt
    coaster = find_phrase(tokenizer, tokens, "coaster")
    assert [tokens.tokens[i] for i in coaster] == ["coaster</w>"]  # the "!" is a token of its own
    assert tokens.tokens[coaster[0] + 1] == "!</w>"
    assert find_phrase(tokenizer, tokens, "night") == [tokens.tokens.index("night</w>")]


def test_repeated_words(tokenizer):
    prompt = "coaster with a castle on a coaster"
    assert find_phrase(tokenizer, prompt, "coaster") == [1, 7]
    assert find_phrase(tokenizer, prompt, "coaster", occurrence=1) == [7]
    assert find_phrase(tokenizer, prompt, "a", occurrence=0) == [3]
    with pytest.raises(ValueError, match="occurs 2 time"):
        find_phrase(tokenizer, prompt, "coaster", occurrence=2)


def test_absent_phrase_names_it_and_shows_tokens(tokenizer):
    shown = r"1:neu 2:sch 3:wan 4:stein 5:castle 6:coaster"
    with pytest.raises(PhraseNotFoundError, match=rf"'mug'.*not in prompt.*{shown}"):
        find_phrase(tokenizer, "Neuschwanstein Castle Coaster", "mug")
    # Whole words only: "mug" is not part of the single token "mugs".
    with pytest.raises(PhraseNotFoundError, match="mugs"):
        find_phrase(tokenizer, "two mugs", "mug")
    with pytest.raises(ValueError, match="non-empty"):
        find_phrase(tokenizer, "two mugs", "  ")


def test_truncation_at_the_limit(tokenizer):
    fits = " ".join(["red"] * 74 + ["mug"])  # 75 word tokens: exactly the limit
    tokens = tokenize_prompt(tokenizer, fits)
    assert not tokens.truncated and tokens.end_position == 76 and tokens.padding_positions == ()
    assert find_phrase(tokenizer, tokens, "mug") == [75]

    too_long = " ".join(["red"] * 74 + ["castle", "coaster"])
    tokens = tokenize_prompt(tokenizer, too_long)
    assert tokens.truncated and tokens.cut_words == ("coaster</w>",)
    assert tokens.end_position == 76 and tokens.tokens[76] == "<|endoftext|>"
    assert find_phrase(tokenizer, tokens, "castle") == [75]
    with pytest.raises(PhraseNotFoundError, match="past the 77-token limit"):
        find_phrase(tokenizer, tokens, "coaster")
    with pytest.raises(PhraseNotFoundError, match="past the 77-token limit"):
        find_phrase(tokenizer, tokens, "castle coaster")  # cut in the middle


def test_groups(tokenizer):
    tokens = tokenize_prompt(tokenizer, "Neuschwanstein Castle Coaster")
    spec = {"concept": "neuschwanstein castle", "object": "coaster", "sot": [0]}
    groups = token_groups(tokenizer, tokens, spec)
    assert groups == {"concept": [1, 2, 3, 4, 5], "object": [6], "sot": [0]}
    with pytest.raises(ValueError, match="share token position 5"):
        token_groups(tokenizer, tokens, {"a": "castle", "b": "castle coaster"})
    with pytest.raises(ValueError, match="outside 0..76"):
        token_groups(tokenizer, tokens, {"a": [80]})


def test_word_shares_renormalise(tokenizer):
    tokens = tokenize_prompt(tokenizer, "castle coaster")
    mass = torch.softmax(torch.randn(3, 77), dim=-1)  # [row, token]
    shares = word_shares(mass, tokens)
    assert torch.allclose(shares[:, [1, 2]].sum(-1), torch.ones(3))
    assert torch.allclose(shares[:, 1] / shares[:, 2], mass[:, 1] / mass[:, 2])
    assert shares[:, [0, 3, 4]].isnan().all()
