"""PNG figures: target / reconstructions / error maps, and previews of written volumes.

Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas: nothing here touches
pyplot's global backend, so importing the package leaves a user's (e.g. notebook) backend alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .files import atomic_path


def new_figure(**kwargs) -> Figure:
    """A figure drawn by Agg, independent of pyplot (no global state, nothing to close)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG atomically (a temporary name, then a rename onto ``path``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def comparison_figure(target: Optional[np.ndarray], recons: Mapping[str, np.ndarray], path: Path,
                      metrics: Optional[Mapping[str, Mapping]] = None, title: str = "",
                      uncertainty: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """One column per method (target first); error maps (|recon - target|, 5x) below; with
    ``uncertainty`` ({method: per-pixel std of an ensemble}) a last row shows those maps (5x, on
    the error maps' scale, so an honest spread looks like the error)."""
    names = list(recons)
    uncertainty = {k: v for k, v in (uncertainty or {}).items() if k in recons}
    cols = len(names) + (target is not None)
    rows = (2 if target is not None else 1) + bool(uncertainty)
    fig = new_figure(figsize=(2.6 * cols, 3.3 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
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
        if uncertainty:
            ax = axes[rows - 1, col + i]
            if name in uncertainty:
                ax.imshow(uncertainty[name], cmap="inferno", vmin=0, vmax=vmax / 5)
                ax.set_title("ensemble std x5", fontsize=8)
            else:
                ax.axis("off")
    if uncertainty and target is not None:
        axes[rows - 1, 0].axis("off")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def preview_figure(volume: np.ndarray, path: Path, title: str = "") -> Path:
    """The middle slice of a reconstructed volume (slices, h, w) as a grey-scale PNG: a picture to
    look at beside the h5 of a real-data run (display range 0 to the 99.5th percentile)."""
    volume = np.asarray(volume)
    image = volume[volume.shape[0] // 2] if volume.ndim == 3 else volume
    h, w = image.shape
    fig = new_figure(figsize=(4.0 * w / max(h, w) + 0.2, 4.0 * h / max(h, w) + (0.5 if title else 0.2)))
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", vmin=0, vmax=float(np.percentile(image, 99.5)) or None)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
