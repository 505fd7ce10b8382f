"""PNG figures: target / reconstructions / error maps."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .errors import atomic_path  # noqa: E402


def comparison_figure(target: Optional[np.ndarray], recons: Mapping[str, np.ndarray], path: Path,
                      metrics: Optional[Mapping[str, Mapping]] = None, title: str = "") -> Path:
    """One column per method (target first); error maps (|recon - target|, 5x) below."""
    names = list(recons)
    cols = len(names) + (target is not None)
    rows = 2 if target is not None else 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.3 * rows), squeeze=False)
    vmax = float(np.percentile(target if target is not None else next(iter(recons.values())), 99.5))
    col = 0
    if target is not None:
        axes[0, 0].imshow(target, cmap="gray", vmin=0, vmax=vmax)
        axes[0, 0].set_title("target", fontsize=9)
        axes[1, 0].axis("off")
        col = 1
    for i, name in enumerate(names):
        ax = axes[0, col + i]
        ax.imshow(recons[name], cmap="gray", vmin=0, vmax=vmax)
        label = name
        if metrics and name in metrics:
            m = metrics[name]
            label += f"\nSSIM {m['SSIM']:.3f}  PSNR {m['PSNR']:.1f}"
        ax.set_title(label, fontsize=9)
        if target is not None:
            axes[1, col + i].imshow(np.abs(recons[name] - target), cmap="inferno", vmin=0, vmax=vmax / 5)
            axes[1, col + i].set_title("|error| x5", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
