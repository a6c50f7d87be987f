"""Interventions that try to bring a dominated object back, each installed per call.

- ``edits``: edits of the cross-attention probabilities (the object boost, the concept cap).
- ``processor``: the processors that apply an edit, a head ablation, a record and a probe, and
  :func:`~dvdlib.interventions.processor.intervention_instruments`, the context manager that
  installs them with ``set_attn_processor`` and restores the old ones.
- ``excite``: Attend-and-Excite's guided latent update, a step-end callback.
- ``heads``: head rankings (made on one model, refused on another) and the random control.
- ``catalogue``: the interventions by name, each one's strength, zero point and range, and the
  pipeline call that applies one (:func:`~dvdlib.interventions.catalogue.call_plan`).
- ``sampling``: images of every prompt and seed under one intervention, with their attention
  and their cost in seconds.
"""
