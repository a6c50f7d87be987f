"""Interventions that try to bring a dominated object back, each installed per call.

- ``edits``: edits of the cross-attention probabilities (the object boost, the concept cap).
  They travel to the cross-attention layers as ``attention_edit`` (and the Attend-and-Excite
  probe as ``attention_probe``) through the recorder's own processors
  (:func:`~dvdlib.attention.recorder.attention_instruments`), so an edit, a head ablation and a
  record compose in one call.
- ``excite``: Attend-and-Excite's guided latent update, a step-end callback.
- ``heads``: head rankings (made on one model, refused on another) and the random control.
- ``catalogue``: the interventions by name, each one's strength, zero point and range, and the
  pipeline call that applies one (:func:`~dvdlib.interventions.catalogue.call_plan`).
- ``sampling``: images of every prompt and seed under one intervention, with their attention
  and their cost in seconds.
"""
