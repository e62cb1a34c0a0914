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
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("(a) image")
    axes[1].imshow(label2rgb(instances, image=image, bg_label=0, alpha=0.35))
    axes[1].set_title(f"(b) ground truth ({len(np.unique(instances)) - 1} instances)")
    rgb = np.stack([target > 0] * 3, -1).astype(float)
    rgb[borders] = (1.0, 0.2, 0.2)
    axes[2].imshow(rgb)
    axes[2].set_title(f"(c) target, separation borders in red ({borders.sum()} px)")
    im = axes[3].imshow(weights, cmap="jet")
    axes[3].set_title("(d) weight map w(x)")
    fig.colorbar(im, ax=axes[3], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    save(fig, out)
