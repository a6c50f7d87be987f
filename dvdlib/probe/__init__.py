"""``dvd probe``: one prompt, judged and traced, for a practitioner's "why did my object vanish?".

- ``experiment``: the run, its summary, figure and report.
"""
