"""dvdlib: measure concept dominance (DvD) in text-to-image diffusion models.

One module per concern:

- ``bench``: prompt sets (the authors' DominanceBench CSV, our built-in set) and the paper's seeds.
- ``tokenizer``: the CLIP BPE tokenizer, built offline from the vocabulary open_clip ships.
- ``paths``: where the book's build and caches live.
- ``book``: execute the chapters with papermill (cached) and render them with Jupyter Book.
"""

__version__ = "0.1.0"
