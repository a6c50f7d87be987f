"""Generation: the paper's protocol (DDIM, seeds, one folder per case) with crash-safe resumption.

- ``protocol``: :func:`~dvdlib.generation.protocol.generate`, its manifest, and the per-call hook
  through which recording and ablation ride along (``attention_hook``).
"""
