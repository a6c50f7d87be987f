"""Chapter 2, data diversity (finding 1).

- ``measure``: our instance-diversity measure and the image embeddings it is taken in.
- ``toy_study``: K against DvD on the toy zoo (the causal test).
- ``real_study``: the diversity of what a real model draws against its DvD (a proxy).
"""
