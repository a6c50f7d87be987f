"""Statistics: every interval the book prints and the verdict it draws from them.

- ``bootstrap``: bootstrap intervals (plain, paired, clustered, two-level, per denoising step) and
  rank correlations.
- ``verdicts``: a finding's stated test turned into supported, contradicted, inconclusive or not
  testable, with the sentence that says so.
"""
