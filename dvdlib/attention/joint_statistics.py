"""The image-to-text statistics of one joint-attention call, without the full attention matrix.

:func:`text_statistics` is what the joint-attention record keeps of each call
(:mod:`dvdlib.attention.joint_record`): for the image queries and the text keys of one attention,
per head and text key, the mean and the maximum over the image queries of

- ``mass`` / ``max``: the attention renormalised over the **text keys**;
- ``mass_all_keys`` / ``max_all_keys``: the attention normalised over **all keys** (image and text).

The image queries are taken in chunks, each scored against all keys in float32; the softmax over
the whole row (its normaliser is the log-sum-exp over all keys) and the softmax over the text
columns are reduced at once, so at most ``chunk_bytes`` of scores and probabilities exist at a time.
"""

from __future__ import annotations

import torch

STATISTICS = ("mass", "max", "mass_all_keys", "max_all_keys")
DEFAULT_CHUNK_BYTES = 256 * 2**20


def text_statistics(query: torch.Tensor, key: torch.Tensor, text: slice, scale: float, *,
                    map_tokens: torch.Tensor | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The :data:`STATISTICS` of image queries on text keys, without the full attention matrix.

    ``query`` ``[batch, head, image query, dim]``, ``key`` ``[batch, head, key, dim]`` (all keys),
    ``text`` the text keys' slice, ``scale`` the attention's (``1 / sqrt(dim)``). Scores are
    computed in float32, whatever the model's dtype. Returns
    ``[statistic, batch, head, text token]`` and, with ``map_tokens`` (positions within the text
    keys), ``[batch, image query, map token]`` of ``mass_all_keys`` averaged over heads.
    """
    batch, heads, n_query, _ = query.shape
    n_keys = key.shape[2]
    n_text = len(range(n_keys)[text])
    # Two float32 tensors of [batch, head, chunk, key] live at once: the scores and their softmax.
    chunk = max(1, min(n_query, chunk_bytes // (8 * batch * heads * n_keys)))
    key_t = key.float().transpose(-1, -2) * scale  # [batch, head, dim, key]
    stats = torch.zeros(4, batch, heads, n_text, dtype=torch.float32, device=query.device)
    maps = None
    if map_tokens is not None:
        maps = torch.empty(batch, n_query, len(map_tokens), dtype=torch.float32, device=query.device)
    for start in range(0, n_query, chunk):
        scores = torch.matmul(query[:, :, start:start + chunk].float(), key_t)  # [batch, head, chunk, key]
        # The softmax over all keys normalises by their log-sum-exp; only the text columns are kept.
        share_all = scores.softmax(-1)[..., text]  # [batch, head, chunk, text token]
        share_text = scores[..., text].softmax(-1)
        del scores
        for k, share in ((0, share_text), (2, share_all)):
            stats[k] += share.sum(2)
            torch.maximum(stats[k + 1], share.amax(2), out=stats[k + 1])
        if maps is not None:
            maps[:, start:start + chunk] = share_all.index_select(-1, map_tokens).mean(1)
    stats[0] /= n_query
    stats[2] /= n_query
    return stats, maps
