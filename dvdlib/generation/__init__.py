"""Generation: the paper's protocol (DDIM, seeds, one folder per case) with crash-safe resumption.

- ``protocol``: :func:`~dvdlib.generation.protocol.generate` (any pipeline, a prompt table, seeds),
  its checks, its manifest, and the per-call hook through which recording and ablation ride
  along (``attention_hook``).
- ``benchmark``: :func:`~dvdlib.generation.benchmark.generate_benchmark`, ``dvd generate``'s work:
  a model named by its argument and a chosen prompt set, every argument checked once before the
  model loads, sharded under ``accelerate launch``.
"""
