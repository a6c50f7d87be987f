"""Prompts: the prompt sets, the phrases a prompt names, the seeds, and the tokenizer.

- ``prompt_sets``: the authors' DominanceBench CSV (read and written at this boundary only, in
  their column names) and our built-in set, in one table shape (case, category, concept, object,
  prompt); the concept's and the object's phrase in each prompt; the paper's ten seeds and the
  ones after them; seed checks; case folder names.
- ``selection``: what a run draws from: a prompt file, the built-in set or the caller's
  default, the cases chosen (``1-10,201``), and the seeds (a count or the seeds themselves).
- ``targets``: prompt files that name three targets in one prompt (the authors' pilot and
  factorial sets), each target aligned to its own occurrence in its prompt.
- ``describe``: what chapter 1 counts: prompt lengths in tokens, prompts per concept, repeats.
- ``tokenizer``: CLIP's BPE tokenizer, built offline from the merges open_clip ships.
"""
