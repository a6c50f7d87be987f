"""Cross-attention: where it is, which tokens a word has, recording it, ablating it, shares.

- ``layers``: locating a UNet's cross-attention layers (name, block, resolution, heads).
- ``token_positions``: a prompt's words mapped to their token positions (concept, object, start,
  end, padding).
- ``recorder``: the attention processors and :func:`~dvdlib.attention.recorder.attention_instruments`,
  the context manager that installs them with ``set_attn_processor`` and restores the old ones.
- ``instruments``: :func:`~dvdlib.attention.instruments.instruments_for`, the one place that
  gives a pipeline the instruments of its model family (toy, SD 1.x/2.x, SDXL; SD3/SD3.5 and
  Flux with the joint-attention modules below), and
  :func:`~dvdlib.attention.instruments.load_record`, which reads a record of either kind.
- ``record``: :class:`~dvdlib.attention.record.AttentionRecord`, the ``[image, step, layer, head,
  token]`` mass the processors fill, its tables, maps and files.
- ``ablation``: head ablation (zero, mean, scale) and the concept-token value ablation, passed
  per call.
- ``shares``: our saturation measures: the concept's word and pair share per step, the saturation
  step, map concentration.
- ``image_shares``: those measures read back from the records of a folder of generated images,
  keyed by the images (chapter 3 and ``dvd probe``).

The same for the joint attention of SD3/SD3.5 and Flux (MMDiTs, no cross-attention layer):

- ``joint_layers``: locating the joint attentions (``joint.i``; ``double.i``, ``single.j``);
- ``joint_tokens``: the text keys of a prompt (SD3: CLIP then T5; Flux: T5), words found by offsets;
- ``joint``: the processors and :func:`~dvdlib.attention.joint.joint_attention_instruments`;
- ``joint_statistics``: one call's image-to-text statistics, without the full attention matrix;
- ``joint_record``: :class:`~dvdlib.attention.joint_record.JointAttentionRecord`, those statistics
  per ``[image, step, layer, head, token]``, tables, maps and files;
- ``joint_ablation``: head ablation by zeroing a head's text values or masking its text keys, and
  the text-key value ablation.
"""
