"""``dvd probe``: one prompt, judged and traced, for a practitioner's "why did my object vanish?".

- ``inputs``: what a probe is asked, checked once before any model loads
  (:class:`~dvdlib.probe.inputs.ProbeRequest`), and the seeds.
- ``run``: the probe itself: generate, judge, read the attention records.
- ``summary``: its numbers (what ``--json`` prints) and the printed report.
- ``figure``: the image grid beside the per-step shares.
- ``rescue``: ``--rescue``: chapter 5's interventions on the prompt, and which of them bring the
  object back with the concept kept.

The command's arguments and its body are :mod:`dvdlib.book.commands.probe`.
"""
