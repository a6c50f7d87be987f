"""The book's experiments, one package per chapter; each returns tables, figures and verdicts.

- ``data_diversity``: finding 1 (chapter 2): our diversity measure, the toy-zoo study, the
  real-model study.
- ``attention_saturation``: finding 2 (chapter 3).
- ``head_ablation``: finding 3 (chapter 4).
- ``rescue``: chapter 5: can the dominated object be brought back, with the concept kept?
"""
