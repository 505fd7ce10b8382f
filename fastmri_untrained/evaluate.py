"""fastMRI metrics (NMSE, PSNR, SSIM exactly as fastmri.evaluate computes them) and tables."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import math

import numpy as np
import torch
import torchmetrics
from fastmri import evaluate as fm_eval

METRICS = ("NMSE", "PSNR", "SSIM")


def volume_metrics(target: np.ndarray, recon: np.ndarray, maxval: Optional[float] = None) -> dict:
    """fastMRI's metrics of one volume, computed exactly as ``fastmri.evaluate``.

    Args:
        target: (slices, h, w) (or (h, w)) float32 or float64, e.g. ``reconstruction_rss``.
        recon: the reconstruction, same shape.
        maxval: the PSSIM/PSNR data range; default the target's maximum (fastMRI uses the
            file's ``max`` attribute).

    Returns:
        {"NMSE": float, "PSNR": float (dB), "SSIM": float}.
    """
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


class VolumeTable(torchmetrics.Metric):
    """Per-volume values of a distributed run, one row per volume of the run, as a torchmetrics
    state reduced by sum across processes: each volume is reconstructed by exactly one process
    (the others hold zeros in its row), so the reduced table is every process's rows, in float64
    (the values stay the Python floats of :func:`volume_metrics`). A value a volume lacks (no
    target, no held-out score) is NaN and dropped again by :meth:`rows`."""

    full_state_update = False

    def __init__(self, names: Iterable[str], columns: Iterable[str]):
        super().__init__()
        self.names, self.columns = list(names), list(columns)
        self._index = {name: i for i, name in enumerate(self.names)}
        shape = (len(self.names), len(self.columns))
        self.add_state("values", default=torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("present", default=torch.zeros(len(self.names), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, row: Mapping) -> None:
        i = self._index[row["file"]]
        self.values[i] = torch.tensor([float(row.get(c, math.nan)) for c in self.columns], dtype=torch.float64)
        self.present[i] = 1.0

    def compute(self) -> list[dict]:
        return self.rows(self.values, self.present)

    def rows(self, values: torch.Tensor, present: torch.Tensor) -> list[dict]:
        """The reduced table as rows ({"file": ..., column: value}), in the order of ``names``."""
        rows = []
        for name, row_values, there in zip(self.names, values.tolist(), present.tolist()):
            if there:
                rows.append({"file": name, **{c: v for c, v in zip(self.columns, row_values) if not math.isnan(v)}})
        return rows


def slice_metrics(target: np.ndarray, recon: np.ndarray, maxval: Optional[float] = None) -> list[dict]:
    """fastMRI's metrics of each slice of a volume, with the volume's data range (``maxval``,
    default the target volume's maximum) as ``fastmri.evaluate`` uses for the whole volume: the
    volume's SSIM is the mean of these slice SSIMs (its NMSE and PSNR pool the volume instead).

    Returns:
        One {"NMSE", "PSNR", "SSIM"} dict per slice.
    """
    target = np.asarray(target, dtype=np.float64) if target.dtype != np.float32 else target
    maxval = float(target.max()) if maxval is None else float(maxval)
    return [volume_metrics(t[None], r[None], maxval=maxval) for t, r in zip(target, recon)]


#: Resamples of a bootstrap confidence interval: the 2.5% and 97.5% percentiles of 10,000
#: resampled means move by about 0.1% of the interval's width between seeds.
BOOTSTRAP_RESAMPLES = 10_000


def bootstrap_ci(values, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                 groups=None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (slices resampled with replacement).

    With ``groups`` (one label per value, e.g. the volume of each slice) whole groups are
    resampled instead, and each resample's mean is over all slices of the groups drawn: neighbouring
    slices of one volume are not independent, and this interval says so by being wider.
    With one value (or one group) the interval is the mean itself (nothing to resample): callers
    say how many slices and volumes.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("values is empty: no interval")
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    if groups is not None:
        labels, index = np.unique(np.asarray(groups), return_inverse=True)
        if index.size != values.size:
            raise ValueError(f"groups: one label per value, got {index.size} for {values.size} values")
        if labels.size == 1:
            return float(values.mean()), float(values.mean())
        sums, counts = np.bincount(index, weights=values), np.bincount(index).astype(np.float64)
        draws = rng.integers(0, labels.size, size=(resamples, labels.size))
        means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    else:
        if values.size == 1:
            return float(values[0]), float(values[0])
        means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def interval_summary(values, groups=None, **kwargs) -> dict:
    """{"mean", "ci_low", "ci_high", "n"}: a mean over slices and its bootstrap interval over
    slices; with ``groups`` (the volume of each slice) also "ci_low_volumes", "ci_high_volumes"
    (whole volumes resampled) and "volumes"."""
    values = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(values, **kwargs)
    out = {"mean": float(values.mean()), "ci_low": low, "ci_high": high, "n": int(values.size)}
    if groups is not None:
        low, high = bootstrap_ci(values, groups=groups, **kwargs)
        out.update(ci_low_volumes=low, ci_high_volumes=high, volumes=int(np.unique(np.asarray(groups)).size))
    return out


def paired_difference(values, reference, higher_is_better: bool = True, **kwargs) -> dict:
    """A method against a reference on the same slices: the mean of ``values - reference`` with its
    bootstrap interval (the pairs resampled together; with ``groups``, also whole volumes), and the
    fraction of slices where the method is better (ties count half)."""
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(f"paired values need the same slices: {values.shape} vs {reference.shape}")
    diff = values - reference
    better = diff > 0 if higher_is_better else diff < 0
    wins = (better.sum() + 0.5 * (diff == 0).sum()) / diff.size
    return {**interval_summary(diff, **kwargs), "win_fraction": float(wins)}


def _scalar(value) -> float:
    # fastmri.evaluate.ssim returns a 1-element array.
    return float(np.asarray(value).reshape(-1)[0])


def slice_ssim(target: np.ndarray, recon: np.ndarray, maxval: Optional[float] = None) -> float:
    """SSIM of one slice with fastmri.evaluate.ssim (used to monitor fits)."""
    return _scalar(fm_eval.ssim(target[None], recon[None], maxval=float(target.max()) if maxval is None else maxval))


def ranking(summary: Mapping[str, Mapping]) -> list[str]:
    """Method names, best mean SSIM first (ties by name), as on the fastMRI leaderboard."""
    return sorted(summary, key=lambda n: (-summary[n].get("SSIM", -np.inf), n))


def summarise(rows: Iterable[Mapping], group_key: str = "method") -> dict:
    """Per group: ``volumes``, the mean and sample standard deviation (``*_std``, ddof=1 as
    fastmri.evaluate's ``Metrics``; None for a single volume) of each metric, mean seconds and
    iterations, and ``rank`` (1 = best mean SSIM). The one summary behind every table."""
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
                out[name][metric + "_std"] = float(values.std(ddof=1)) if values.size > 1 else None
        for extra in ("seconds", "iterations"):
            values = [r[extra] for r in items if extra in r]
            if values:
                out[name][extra] = float(np.mean(values))
    for rank, name in enumerate(ranking(out), 1):
        out[name]["rank"] = rank
    return out


FORMATS = {"NMSE": ".4f", "PSNR": ".2f", "SSIM": ".4f", "volumes": "d"}  # others: .2f


def _cell(stats: Mapping, column: str) -> str:
    value = stats.get(column)
    if value is None:
        return "-"
    fmt = FORMATS.get(column, ".2f")
    std = stats.get(column + "_std")
    return f"{value:{fmt}}" + (f" ± {std:{fmt}}" if std is not None else "")


def format_table(summary: Mapping[str, Mapping], columns=("volumes",) + METRICS + ("seconds",),
                 title: str = "") -> str:
    """The plain-text table of a :func:`summarise` result: rank, method, then ``columns``
    (metrics as mean ± std where there is a std), best mean SSIM first."""
    names = ranking(summary)
    cells = {n: [_cell(summary[n], c) for c in columns] for n in names}
    widths = [max([len(c) + 2, 8] + [len(cells[n][i]) + 2 for n in names]) for i, c in enumerate(columns)]
    method_width = max([len(n) for n in names] + [6]) + 2
    header = f"{'rank':>4}  {'method':<{method_width}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    lines = ([title] if title else []) + [header, "-" * len(header)]
    for rank, n in enumerate(names, 1):
        lines.append(f"{rank:>4}  {n:<{method_width}}" + "".join(f"{c:>{w}}" for c, w in zip(cells[n], widths)))
    return "\n".join(lines)
