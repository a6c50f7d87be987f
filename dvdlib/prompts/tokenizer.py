"""The CLIP BPE tokenizer, built offline.

Stable Diffusion 1.x/2.x/XL and our toy model all tokenize with CLIP's byte-level BPE (49,408
tokens, 77 positions). Its merges ship inside ``open_clip`` (``bpe_simple_vocab_16e6.txt.gz``), so
the Hugging Face ``CLIPTokenizer`` can be built from them with no download. The vocabulary order
is CLIP's own: 256 byte symbols, the same with an end-of-word mark, one entry per merge, then
``<|startoftext|>`` and ``<|endoftext|>`` (ids 49406 and 49407).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from transformers import CLIPTokenizer

# CLIP keeps the first 49152 - 256 - 2 merges of the file (line 0 is a header).
_N_MERGES = 49152 - 256 - 2
MAX_LENGTH = 77


def _bpe_file() -> Path:
    import open_clip.tokenizer as oct

    path = Path(oct.default_bpe())
    if not path.is_file():
        raise FileNotFoundError(f"open_clip's BPE vocabulary is missing at {path}")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    from open_clip.tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's BPE vocabulary (token -> id) and merge list, read from open_clip's file."""
    lines = gzip.open(_bpe_file()).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def clip_tokenizer(model_max_length: int = MAX_LENGTH, pad_token: str = "<|endoftext|>"
                   ) -> CLIPTokenizer:
    """A Hugging Face ``CLIPTokenizer`` equal to Stable Diffusion 1.x's, built with no download.

    ``pad_token="!"`` gives SDXL's second tokenizer (OpenCLIP-G's), which pads with "!" (id 0)
    where CLIP-L's repeats the end token; the vocabulary and merges are the same.
    """
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length,
                         pad_token=pad_token)
