"""The probe's figure: the image grid beside the per-step shares with their intervals.

- :func:`probe_figure`: drawn from a :class:`~dvdlib.probe.run.ProbeResult`, on a matplotlib
  ``Figure`` (no pyplot: no global figure state); :func:`save_figure` writes it as a PNG file.
"""

from __future__ import annotations

import io
from pathlib import Path

import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from dvdlib.store import atomic_write_bytes

FIGURE = "probe.png"  # the figure's file in the output folder
GRID_LIMIT = 24  # images shown in the figure's grid


def probe_figure(result) -> Figure:
    """The image grid (seed, yes counts) beside the per-step shares with their intervals, from a
    :class:`~dvdlib.probe.run.ProbeResult`."""
    summary, steps = result.summary, result.steps
    shown = result.images.head(GRID_LIMIT)
    columns = min(5, len(shown))
    grid_rows = -(-len(shown) // columns)
    figure = Figure(figsize=(4 + 1.6 * columns, max(4.2, 1.7 * grid_rows + 0.8)),
                    layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[1.6 * columns, 4.4])
    axes = left.subplots(grid_rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, shown.itertuples(index=False)):
        with Image.open(result.image_dir / row.file) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title(f"seed {row.seed}\nc={row.concept_yes} n={row.object_yes}", fontsize=8)
    more = (f" (first {len(shown)} of {len(result.images)})"
            if len(result.images) > len(shown) else "")
    left.suptitle(f"{summary['prompt']!r}{more}\nc, n: yes answers of 5 on concept, object",
                  fontsize=9)

    share_ax, pair_ax = right.subplots(2, 1, sharex=True)
    labels = {"concept_word_share": f"concept ({summary['concept']})",
              "object_word_share": f"object ({summary['object']})"}
    colours = dict(zip(labels.values(), sns.color_palette(n_colors=len(labels))))
    words = steps[steps["quantity"].isin(list(labels))].assign(
        word=lambda t: t["quantity"].map(labels))
    sns.lineplot(data=words, x="step", y="mean", hue="word", palette=colours, ax=share_ax,
                 marker="o", markersize=3)
    for word, part in words.groupby("word"):
        share_ax.fill_between(part["step"], part["ci_low"], part["ci_high"], alpha=0.25,
                              color=colours[word], linewidth=0)
    share_ax.set_ylabel("share of word-token\nattention")
    share_ax.legend(fontsize=8, title=None)
    pair = steps[steps["quantity"] == "pair_share"]
    sns.lineplot(data=pair, x="step", y="mean", ax=pair_ax, color="black", marker="o", markersize=3)
    pair_ax.fill_between(pair["step"], pair["ci_low"], pair["ci_high"], alpha=0.2, color="black",
                         linewidth=0)
    attention = summary["attention"]
    pair_ax.axhline(attention["threshold"], color="grey", linestyle="--", linewidth=1,
                    label=f"saturation threshold {attention['threshold']:.2f}")
    if "even_pair_share" in attention:
        pair_ax.axhline(attention["even_pair_share"], color="grey", linestyle=":", linewidth=1,
                        label="even attention per token")
    if attention["saturation_step"] is not None:
        pair_ax.axvline(attention["saturation_step"], color="tab:red", linewidth=1,
                        label=f"saturated from step {attention['saturation_step']}")
    pair_ax.legend(fontsize=7)
    pair_ax.set_ylabel("concept / (concept + object)")
    pair_ax.set_xlabel("denoising step (0 = noisiest)")
    pair_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.suptitle(f"dominates: {summary['dominates']}; mean and {summary['confidence']:.0%} "
                   f"interval over {summary['n_images']} images", fontsize=9)
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """``figure`` as a PNG file at ``path``, written atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return atomic_write_bytes(path, buffer.getvalue())
