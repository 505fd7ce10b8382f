"""fastMRI metrics (NMSE, PSNR, SSIM exactly as fastmri.evaluate computes them) and tables."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import numpy as np
from fastmri import evaluate as fm_eval

METRICS = ("NMSE", "PSNR", "SSIM")


def volume_metrics(target: np.ndarray, recon: np.ndarray, maxval: Optional[float] = None) -> dict:
    """NMSE, PSNR, SSIM of a volume (slices, h, w) as fastmri.evaluate (maxval: volume max)."""
    target = np.asarray(target, dtype=np.float64) if target.dtype != np.float32 else target
    if target.shape != recon.shape:
        raise ValueError(f"shape mismatch: target {target.shape} vs reconstruction {recon.shape}")
    if target.ndim == 2:
        target, recon = target[None], recon[None]
    maxval = float(target.max()) if maxval is None else float(maxval)
    return {
        "NMSE": _scalar(fm_eval.nmse(target, recon)),
        "PSNR": _scalar(fm_eval.psnr(target, recon, maxval=maxval)),
        "SSIM": _scalar(fm_eval.ssim(target, recon, maxval=maxval)),
    }


def _scalar(value) -> float:
    # fastmri.evaluate.ssim returns a 1-element array.
    return float(np.asarray(value).reshape(-1)[0])


def slice_ssim(target: np.ndarray, recon: np.ndarray, maxval: Optional[float] = None) -> float:
    """SSIM of one slice with fastmri.evaluate.ssim (used to monitor fits)."""
    return _scalar(fm_eval.ssim(target[None], recon[None], maxval=float(target.max()) if maxval is None else maxval))


def summarise(rows: Iterable[Mapping], group_key: str = "method") -> dict:
    """Mean and standard deviation of each metric per group."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[group_key], []).append(row)
    out = {}
    for name, items in groups.items():
        out[name] = {"volumes": len(items)}
        for metric in METRICS:
            values = np.array([r[metric] for r in items if metric in r], dtype=np.float64)
            if values.size:
                out[name][metric] = float(values.mean())
                out[name][metric + "_std"] = float(values.std())
        for extra in ("seconds", "iterations"):
            values = [r[extra] for r in items if extra in r]
            if values:
                out[name][extra] = float(np.mean(values))
    return out


def format_table(summary: Mapping[str, Mapping], columns=METRICS + ("seconds",)) -> str:
    """A plain-text table (methods as rows), ranked by SSIM."""
    names = sorted(summary, key=lambda n: -summary[n].get("SSIM", -np.inf))
    header = f"{'method':<16}" + "".join(f"{c:>12}" for c in columns)
    lines = [header, "-" * len(header)]
    for n in names:
        cells = []
        for c in columns:
            v = summary[n].get(c)
            if v is None:
                cells.append(f"{'-':>12}")
            elif c == "NMSE":
                cells.append(f"{v:>12.4f}")
            elif c == "SSIM":
                cells.append(f"{v:>12.4f}")
            else:
                cells.append(f"{v:>12.2f}")
        lines.append(f"{n:<16}" + "".join(cells))
    return "\n".join(lines)
