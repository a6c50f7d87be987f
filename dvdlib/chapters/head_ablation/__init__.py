"""Chapter 4, head ablation (finding 3): is dominance carried by a few cross-attention heads?

- ``prompts``: the prompts a model is studied on (the toy world's pair prompts, or a prompt set).
- ``model_choice``: the survey of the toy zoo, before any ablation, and the rule that picks the
  chapter's default model from it.
- ``conditions``: what each condition ablates (one head, the first n heads of an order, a whole
  layer, every head, the concept's tokens, the concept's route through its tokens and the end
  and padding tokens) and the chapter's grid of them.
- ``run``: the sweep that generates, judges and records the same images under each condition,
  with its cache of finished conditions.
- ``summaries``: per condition, means with intervals over seeds and paired changes; curves,
  effects, the strongest single head.
- ``rescue``: the outcome of an ablation (does the object come back with the concept kept?),
  the head and the positive control re-measured on fresh seeds, where the largest drops sit.
- ``leakage``: where the concept travels besides its own tokens (attention and imprint per kind
  of token position).
- ``verdict``: the test of finding 3, its criteria and :class:`Findings`; the headline values.
- ``quotes``: the numbers the chapter's Markdown quotes, one glue key each, and the landing
  page's paragraph.
- ``figures``: Figures 4.1 to 4.7 and the styled tables.
"""
