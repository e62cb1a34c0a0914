"""Figures in the style of the paper (matplotlib, Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage.color import label2rgb  # noqa: E402
from skimage.measure import label as cc_label  # noqa: E402

from .io import atomic_path  # noqa: E402


def save(fig, out: str | Path, dpi: int = 120) -> None:
    """Save a figure atomically and close it."""
    with atomic_path(out, suffix=Path(out).suffix) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def figure3(image, truth, target, weights, out, title: str = "") -> None:
    """Paper figure 3: (a) image, (b) ground truth instances, (c) training target with the
    separation borders between touching cells marked, (d) weight map w(x).

    ``truth`` is an instance label image, or a binary mask (ISBI), whose 4-connected
    components are shown as instances.
    """
    truth = np.asarray(truth)
    instances = cc_label(truth > 0, connectivity=1) if truth.dtype == bool else truth
    borders = (instances > 0) & (np.asarray(target) == 0)
    ignored = np.asarray(weights) == 0  # unannotated cells (weight 0 = ignored)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("(a) image")
    axes[1].imshow(label2rgb(instances, image=image, bg_label=0, alpha=0.35))
    axes[1].set_title(f"(b) ground truth ({len(np.unique(instances)) - 1} instances)")
    rgb = np.stack([target > 0] * 3, -1).astype(float)
    rgb[borders] = (1.0, 0.2, 0.2)
    rgb[ignored] = (0.35, 0.45, 0.9)
    axes[2].imshow(rgb)
    panel = f"(c) target, separation borders in red ({borders.sum()} px)"
    if ignored.any():
        panel += f",\nignored (unannotated cells) in blue ({100 * ignored.mean():.0f} %)"
    axes[2].set_title(panel)
    shown = np.ma.masked_where(ignored, weights)
    cmap = plt.get_cmap("jet").copy()
    cmap.set_bad("white")
    im = axes[3].imshow(shown, cmap=cmap)
    axes[3].set_title("(d) weight map w(x)" + (", w = 0 in white" if ignored.any() else ""))
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    save(fig, out)


def figure4(image, truth, prediction, out, title: str = "") -> None:
    """Paper figure 4 style: (a) image with the ground-truth borders in yellow, (b) our
    segmentation (coloured instances) with the ground-truth borders in yellow."""
    from skimage.segmentation import find_boundaries

    borders = find_boundaries(np.asarray(truth), mode="inner")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    base = np.stack([(image - image.min()) / max(float(np.ptp(image)), 1e-9)] * 3, -1)
    left = base.copy()
    left[borders] = (1.0, 1.0, 0.0)
    axes[0].imshow(left)
    axes[0].set_title("(a) image, ground truth in yellow")
    right = label2rgb(np.asarray(prediction), image=base[..., 0], bg_label=0, alpha=0.4)
    right[borders] = (1.0, 1.0, 0.0)
    axes[1].imshow(right)
    axes[1].set_title("(b) segmentation (colours), ground truth in yellow")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    save(fig, out)


def isbi_curves(tables: dict, out, paper: dict | None = None) -> None:
    """ISBI metrics against the threshold, one line per split (a panel per metric present).

    ``tables``: ``{label: {metric: {threshold: value}}}``; ``paper``: optional
    ``{metric: value}`` drawn as horizontal reference lines.
    """
    errors = ("warping_error", "rand_error", "pixel_error")  # the paper's: lower is better
    scores = ("vrand_thinned", "vinfo_thinned")  # today's leaderboard: higher is better
    metrics = [m for m in (*errors, *scores) if any(m in t for t in tables.values())]
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.7 * len(metrics), 3.8), layout="constrained", squeeze=False
    )
    axes = axes[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for label, table in tables.items():
            ths = sorted(table.get(metric, {}))
            ax.plot(ths, [table[metric][t] for t in ths], marker="o", ms=3, label=label)
        if paper and metric in paper:
            ax.axhline(paper[metric], color="k", ls="--", lw=1, label="paper (test set)")
        ax.set_xlabel("threshold on P(cell)")
        names = {"vrand_thinned": "V_Rand (thinned)", "vinfo_thinned": "V_Info (thinned)"}
        ax.set_title(names.get(metric, metric.replace("_", " ")))
        ax.set_yscale("log" if metric in errors else "linear")
    axes[0].legend(fontsize=8)
    save(fig, out)
