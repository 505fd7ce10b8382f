"""Leaderboard-style evaluation of fastMRI reconstruction directories.

Each prediction directory is one method (its directory name). Every target volume must have a
matching prediction (one h5 per volume, key ``reconstruction``, the target's shape); any
problem is reported by file name and fails the run -- nothing is skipped silently.

Metrics are computed exactly as ``fastmri.evaluate.evaluate`` (fastmri 0.3.0) does:

- target key ``reconstruction_rss`` (multicoil) or ``reconstruction_esc`` (singlecoil);
- target and prediction centre-cropped to (w, w), w = the target's width;
- NMSE, PSNR, SSIM of the whole volume with ``fastmri.evaluate``'s functions, with
  ``maxval`` = the maximum of the cropped target volume (``evaluate`` calls the metric
  functions without ``maxval``). ``maxval="attr"`` uses the file's ``max`` attribute
  instead, as fastMRI's Lightning validation (MriModule) does;
- means over volumes, and standard deviations with ddof=1 (runstats, as ``Metrics``).

Methods are ranked by mean SSIM, as on the fastMRI leaderboard. Beside fastMRI's volume table,
every slice is scored with its volume's data range (:func:`evaluate.slice_metrics`): per method
the mean over slices with a 95% bootstrap interval (slices resampled), per source where the
targets record one (the attribute ``slice_sources`` of simulated files), and with
``paired_against`` each method minus that reference on the same slices (mean difference, its
interval, fraction of slices won).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import h5py
import numpy as np
from fastmri.data import transforms

from .data.readers import TARGET_KEYS, read_slice_sources
from .errors import InputError
from .evaluate import (METRICS, format_table, interval_summary, paired_difference, slice_metrics, summarise,
                       volume_metrics)
from .files import atomic_path

OTHER_CHALLENGE = {"multicoil": "singlecoil", "singlecoil": "multicoil"}
MAXVAL_CHOICES = ("target", "attr")
PRED_KEY = "reconstruction"
COLUMNS = ("volumes",) + METRICS  # the report's table


@dataclass
class TargetVolume:
    """A ground-truth file: name, shape of its target dataset, acquisition, ``max`` attr."""

    path: Path
    shape: tuple
    acquisition: str
    max_attr: Optional[float]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class Leaderboard:
    """The result of an evaluation.

    Attributes:
        challenge: "multicoil" or "singlecoil".
        maxval: "target" (fastmri.evaluate) or "attr" (the files' ``max`` attribute).
        acquisition: the --acquisition filter, or None.
        rows: one dict per (method, volume): method, file, acquisition, slices, maxval,
            NMSE, PSNR, SSIM.
        summary: per method: volumes, NMSE/PSNR/SSIM means and ``*_std`` (ddof=1; None
            for a single volume), and ``rank`` (1 = best mean SSIM).
        by_acquisition: acquisition -> the same summary restricted to that acquisition.
        excluded: target files left out by the --acquisition filter (named, not silent).
        unused_predictions: method -> prediction files with no target (not evaluated).
        slice_rows: one dict per (method, volume, slice): method, file, slice, source, metrics.
        intervals: method -> metric -> mean over slices with its 95% bootstrap interval.
        by_source: source -> the same intervals over that source's slices.
        paired_against: the reference method of ``paired``, or None.
        paired: method -> metric -> the paired difference to the reference (method minus
            reference; see :func:`evaluate.paired_difference`).
    """

    challenge: str
    maxval: str
    acquisition: Optional[str]
    rows: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    by_acquisition: dict = field(default_factory=dict)
    excluded: list = field(default_factory=list)
    unused_predictions: dict = field(default_factory=dict)
    slice_rows: list = field(default_factory=list)
    intervals: dict = field(default_factory=dict)
    by_source: dict = field(default_factory=dict)
    paired_against: Optional[str] = None
    paired: dict = field(default_factory=dict)

    def ranking(self) -> list[str]:
        """Method names, best (highest mean SSIM) first."""
        return sorted(self.summary, key=lambda m: self.summary[m]["rank"])


# ---------------------------------------------------------------------------------------
# Input checks: every problem is collected and reported by file name, then the run fails.


def _h5_names(path: Path, what: str) -> list[Path]:
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} directory does not exist")
    if not path.is_dir():
        raise InputError(path, f"{what} path must be a directory of .h5 files")
    files = sorted(p for p in path.glob("*.h5") if p.is_file())
    if not files:
        raise InputError(path, f"{what} directory contains no .h5 files")
    return files


def _volume_dataset(hf: h5py.File, key: str, path: Path) -> h5py.Dataset:
    """``hf[key]`` if it is a real-valued image volume; else InputError naming the file (the
    metrics take magnitudes: a group, complex or string entry would fail deep in numpy)."""
    ds = hf[key]
    if not isinstance(ds, h5py.Dataset):
        raise InputError(path, f"'{key}' is an HDF5 {type(ds).__name__.lower()}, not a dataset")
    if ds.dtype.kind not in "fiu":
        got = "strings" if h5py.check_string_dtype(ds.dtype) else f"dtype {ds.dtype}"
        hint = " (save the magnitude, e.g. np.abs)" if ds.dtype.kind == "c" else ""
        raise InputError(path, f"'{key}' must be a real-valued image volume, got {got}{hint}")
    return ds


def _fail(source, problems: Sequence[str], header: str):
    if problems:
        raise InputError(source, header + "\n  " + "\n  ".join(problems))


def read_targets(target_path: Path, challenge: str, acquisition: Optional[str] = None):
    """Check the target files and return (targets to evaluate, names excluded by acquisition).

    Raises InputError listing every file without ground truth for ``challenge`` (test-set
    files, the other challenge's targets, unreadable files).
    """
    if challenge not in TARGET_KEYS:
        raise InputError("challenge", f"must be one of {', '.join(TARGET_KEYS)}, got {challenge!r}")
    key, other_key = TARGET_KEYS[challenge], TARGET_KEYS[OTHER_CHALLENGE[challenge]]
    targets, problems = [], []
    for path in _h5_names(target_path, "target"):
        try:
            with h5py.File(path, "r") as hf:
                if key not in hf:
                    if other_key in hf:
                        problems.append(f"{path.name}: no '{key}' but '{other_key}': these are "
                                        f"{OTHER_CHALLENGE[challenge]} targets, not {challenge}")
                    else:
                        problems.append(f"{path.name}: no ground truth ('{key}' missing; keys: "
                                        f"{', '.join(sorted(hf.keys()))}) -- test/challenge-set files "
                                        "cannot be evaluated")
                    continue
                ds = _volume_dataset(hf, key, path)
                if ds.ndim != 3:
                    problems.append(f"{path.name}: '{key}' has shape {ds.shape}; expected (slices, h, w)")
                    continue
                acq = hf.attrs.get("acquisition", "unknown")
                acq = acq.decode() if isinstance(acq, bytes) else str(acq)
                try:
                    max_attr = float(hf.attrs["max"]) if "max" in hf.attrs else None
                except (TypeError, ValueError):
                    raise InputError(path, f"'max' attribute is not a number: {hf.attrs['max']!r}") from None
                targets.append(TargetVolume(path, tuple(ds.shape), acq, max_attr))
        except OSError as exc:
            problems.append(f"{path.name}: cannot be read as HDF5 ({exc})")
    _fail(target_path, problems, f"{len(problems)} target file(s) cannot be used for the {challenge} challenge:")
    excluded = []
    if acquisition is not None:
        available = sorted({t.acquisition for t in targets})
        excluded = [t.name for t in targets if t.acquisition != acquisition]
        targets = [t for t in targets if t.acquisition == acquisition]
        if not targets:
            raise InputError("acquisition", f"no target volume has acquisition {acquisition!r} "
                                              f"(available: {', '.join(available)})")
    return targets, excluded


def method_names(prediction_paths: Sequence[Path]) -> list[str]:
    """Method name = prediction directory name; duplicates are an error (they'd be merged)."""
    names = [Path(p).resolve().name for p in prediction_paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError("prediction_paths", f"several directories are named {', '.join(dupes)}; the "
                                               "directory name is the method name, so rename or symlink them")
    return names


def check_predictions(pred_dir: Path, targets: Sequence[TargetVolume], challenge: str) -> list[str]:
    """Check one method's directory against the targets; returns files with no target.

    Raises InputError naming every missing or unreadable file, file without
    ``reconstruction``, and wrong shape or slice count. A ``reconstruction`` that is not a
    real-valued dataset (a group, complex, strings) fails at once, naming its file; non-finite
    values are found, and named, when the volume is evaluated.
    """
    pred_dir = Path(pred_dir)
    present = {p.name for p in _h5_names(pred_dir, "predictions")}
    problems, mismatched = [], 0
    for t in targets:
        if t.name not in present:
            problems.append(f"{t.name}: missing (no prediction for this target volume)")
            continue
        path = pred_dir / t.name
        try:
            with h5py.File(path, "r") as hf:
                if PRED_KEY not in hf:
                    problems.append(f"{t.name}: no '{PRED_KEY}' dataset (keys: {', '.join(sorted(hf.keys()))})")
                    continue
                shape = tuple(_volume_dataset(hf, PRED_KEY, path).shape or ())  # None: an empty dataset
        except OSError as exc:
            problems.append(f"{t.name}: cannot be read as HDF5 ({exc})")
            continue
        if shape != t.shape:
            mismatched += 1
            what = "slice count" if shape[:1] != t.shape[:1] else "shape"
            problems.append(f"{t.name}: wrong {what}: prediction {shape}, target {t.shape}")
    count = len(problems)
    if mismatched and mismatched == len(targets):
        problems.append(f"no prediction matches its target's shape: is this directory for the "
                        f"{OTHER_CHALLENGE[challenge]} challenge or another data split?")
    _fail(pred_dir, problems, f"{count} problem(s) with the predictions of {pred_dir.name!r} ({challenge}):")
    return sorted(present - {t.name for t in targets})


# ---------------------------------------------------------------------------------------
# Metrics


def fastmri_crop(target: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The crop fastmri.evaluate.evaluate applies: both to (w, w), w = the target's width."""
    size = (target.shape[-1], target.shape[-1])
    return transforms.center_crop(target, size), transforms.center_crop(recon, size)


def evaluate_volume(target_file: Path, pred_file: Path, challenge: str, maxval: str = "target") -> dict:
    """NMSE, PSNR, SSIM of one prediction file against one target file (see module doc)."""
    if maxval not in MAXVAL_CHOICES:
        raise InputError("maxval", f"must be one of {', '.join(MAXVAL_CHOICES)}, got {maxval!r}")
    with h5py.File(target_file, "r") as hf:
        target = hf[TARGET_KEYS[challenge]][()]
        max_attr = hf.attrs.get("max")
        sources = read_slice_sources(hf)
    with h5py.File(pred_file, "r") as hf:
        recon = hf[PRED_KEY][()]
    if target.shape[-2] < target.shape[-1]:
        raise InputError(target_file, f"target {target.shape} is wider than tall; fastmri.evaluate's (w, w) "
                                      "crop is undefined for it")
    if not np.isfinite(target).all():
        raise InputError(target_file, f"the target '{TARGET_KEYS[challenge]}' contains NaN or infinite values")
    if not np.isfinite(recon).all():
        raise InputError(pred_file, "the reconstruction contains NaN or infinite values")
    target, recon = fastmri_crop(target, recon)
    if maxval == "attr":
        if max_attr is None:
            raise InputError(target_file, "no 'max' attribute (needed by --maxval attr)")
        value = float(max_attr)
    else:
        value = float(target.max())
    if not (np.isfinite(value) and value > 0):  # PSNR/SSIM divide by it: NaN metrics otherwise
        what = "'max' attribute" if maxval == "attr" else "maximum of the cropped target"
        raise InputError(target_file, f"the {what} is {value:g}; PSNR/SSIM need a positive data range")
    # volume_metrics passes float32 arrays through unchanged, as fastmri.evaluate reads them.
    row = volume_metrics(target, recon, maxval=value)
    row["maxval"] = value
    row["per_slice"] = slice_metrics(target, recon, maxval=value)
    for i, r in enumerate(row["per_slice"]):
        # The source of the slice ("dipy:S0_10slices[3]" -> "dipy:S0_10slices") where the file records it.
        r["source"] = sources[i].split("[")[0] if sources and i < len(sources) else None
    return row


def evaluate_predictions(target_path: Path, prediction_paths: Sequence[Path], challenge: str,
                         acquisition: Optional[str] = None, maxval: str = "target",
                         log: Callable[[str], None] = lambda m: None,
                         paired_against: Optional[str] = None) -> Leaderboard:
    """Evaluate every prediction directory against ``target_path`` (see the module doc);
    ``paired_against``: a method name (a prediction directory's name) to compare every other
    method with, slice by slice.

    All inputs are checked before any metric is computed; InputError lists every problem.
    """
    if maxval not in MAXVAL_CHOICES:
        raise InputError("maxval", f"must be one of {', '.join(MAXVAL_CHOICES)}, got {maxval!r}")
    if not prediction_paths:
        raise InputError("prediction_paths", "give at least one prediction directory")
    names = method_names(prediction_paths)
    if paired_against is not None and paired_against not in names:
        raise InputError("paired_against", f"{paired_against!r} is not one of the evaluated methods ({', '.join(names)})")
    if paired_against is not None and len(names) < 2:
        raise InputError("paired_against", "needs at least one other method to compare")
    targets, excluded = read_targets(Path(target_path), challenge, acquisition)
    board = Leaderboard(challenge=challenge, maxval=maxval, acquisition=acquisition, excluded=excluded,
                        paired_against=paired_against)
    for name, pred_dir in zip(names, prediction_paths):
        unused = check_predictions(Path(pred_dir), targets, challenge)
        if unused:
            board.unused_predictions[name] = unused
    for name, pred_dir in zip(names, prediction_paths):
        log(f"evaluating {name} ({len(targets)} volumes)")
        for t in targets:
            row = {"method": name, "file": t.name, "acquisition": t.acquisition, "slices": t.shape[0]}
            row.update(evaluate_volume(t.path, Path(pred_dir) / t.name, challenge, maxval))
            for i, metrics in enumerate(row.pop("per_slice")):
                board.slice_rows.append({"method": name, "file": t.name, "slice": i, **metrics})
            board.rows.append(row)
    board.summary = summarise(board.rows)
    for acq in sorted({r["acquisition"] for r in board.rows}):
        board.by_acquisition[acq] = summarise([r for r in board.rows if r["acquisition"] == acq])
    board.intervals = slice_intervals(board.slice_rows)
    sources = {r["source"] for r in board.slice_rows}
    if len(sources) > 1 and None not in sources:
        board.by_source = {src: slice_intervals([r for r in board.slice_rows if r["source"] == src])
                           for src in sorted(sources)}
    if paired_against is not None:
        board.paired = paired_table(board.slice_rows, paired_against)
    return board


def slice_intervals(slice_rows: Sequence[dict]) -> dict:
    """method -> metric -> mean over the slices of ``slice_rows`` with its bootstrap interval."""
    out: dict = {}
    for name in dict.fromkeys(r["method"] for r in slice_rows):
        rows = [r for r in slice_rows if r["method"] == name]
        out[name] = {m: interval_summary([r[m] for r in rows], groups=[r["file"] for r in rows]) for m in METRICS}
    return out


def paired_table(slice_rows: Sequence[dict], reference: str) -> dict:
    """method -> metric -> the paired difference (method minus ``reference``, same slices)."""
    key = lambda r: (r["file"], r["slice"])  # noqa: E731
    ref = {key(r): r for r in slice_rows if r["method"] == reference}
    out: dict = {}
    for name in dict.fromkeys(r["method"] for r in slice_rows):
        if name == reference:
            continue
        rows = [r for r in slice_rows if r["method"] == name]
        out[name] = {m: paired_difference([r[m] for r in rows], [ref[key(r)][m] for r in rows],
                                          higher_is_better=m != "NMSE", groups=[r["file"] for r in rows])
                     for m in METRICS}
    return out


# ---------------------------------------------------------------------------------------
# Reports


def format_report(board: Leaderboard) -> str:
    """The overall table, then one table per acquisition, plus notes on excluded files."""
    what = f"{board.challenge}, maxval={board.maxval}"
    parts = [format_table(board.summary, COLUMNS, f"fastMRI leaderboard ({what}; ranked by SSIM; mean ± std):")]
    if len(board.by_acquisition) > 1:
        for acq, summary in board.by_acquisition.items():
            parts.append(format_table(summary, COLUMNS, f"acquisition {acq}:"))
    n = _slices(board)
    caution = (f" (fewer than {FEW_SLICES} slices: the intervals understate the uncertainty; read them as "
               "descriptive)") if n < FEW_SLICES else ""
    parts.append(format_intervals(board.intervals, f"per slice: mean [95% bootstrap interval, slices resampled] "
                                                    f"over {n} slices{caution}:"))
    for src, intervals in board.by_source.items():
        parts.append(format_intervals(intervals, f"source {src}:"))
    if board.paired:
        parts.append(format_paired(board.paired, board.paired_against))
    if board.excluded:
        parts.append(f"{len(board.excluded)} target volume(s) excluded by --acquisition {board.acquisition}: "
                     + ", ".join(board.excluded))
    for name, files in board.unused_predictions.items():
        parts.append(f"{name}: {len(files)} prediction file(s) have no target and were not evaluated: "
                     + ", ".join(files))
    return "\n\n".join(parts)


def _slices(board: Leaderboard) -> int:
    first = board.ranking()[0]
    return sum(1 for r in board.slice_rows if r["method"] == first)


def _interval(stats: dict, fmt: str, sign: str = "") -> str:
    return f"{stats['mean']:{sign}{fmt}} [{stats['ci_low']:{sign}{fmt}}, {stats['ci_high']:{sign}{fmt}}]"


FORMATS = {"NMSE": ".4f", "PSNR": ".2f", "SSIM": ".4f"}
# A percentile bootstrap of a mean of very few slices is too narrow (it cannot see beyond the
# values drawn): below this many slices the report says so.
FEW_SLICES = 10


def format_intervals(intervals: dict, title: str) -> str:
    """Per method (best mean SSIM first): each metric's mean over slices with its interval."""
    names = sorted(intervals, key=lambda n: -intervals[n]["SSIM"]["mean"])
    width = max(len(n) for n in names) + 2
    lines = [title, f"{'method':<{width}}" + "".join(f"{m:>26}" for m in METRICS)]
    for n in names:
        lines.append(f"{n:<{width}}" + "".join(f"{_interval(intervals[n][m], FORMATS[m]):>26}" for m in METRICS))
    return "\n".join(lines)


def format_paired(paired: dict, reference: str) -> str:
    """Per method: mean difference to the reference [interval] and the fraction of slices won."""
    width = max(len(n) for n in paired) + 2
    lines = [f"paired against {reference} (method minus {reference}, same slices; an interval that excludes 0 "
             "is a difference; slices of one volume are correlated, so paired.csv also gives the interval with "
             "whole volumes resampled; won = fraction of slices where the method is better):",
             f"{'method':<{width}}" + "".join(f"{m + ' diff':>28}{'won':>7}" for m in METRICS)]
    for n in sorted(paired, key=lambda n: -paired[n]["SSIM"]["mean"]):
        lines.append(f"{n:<{width}}" + "".join(f"{_interval(paired[n][m], FORMATS[m], '+'):>28}"
                                               f"{paired[n][m]['win_fraction']:>7.2f}" for m in METRICS))
    return "\n".join(lines)


def interval_rows(board: Leaderboard) -> list[dict]:
    """Flat rows for intervals.csv: source "all" first, then each source; one row per method and metric."""
    out = []
    for source, table in [("all", board.intervals)] + list(board.by_source.items()):
        for name, metrics in table.items():
            for metric, stats in metrics.items():
                out.append({"source": source, "method": name, "metric": metric, **stats})
    return out


def paired_rows(board: Leaderboard) -> list[dict]:
    return [{"reference": board.paired_against, "method": name, "metric": metric, **stats}
            for name, metrics in board.paired.items() for metric, stats in metrics.items()]


def paired_figure(board: Leaderboard, path: Path) -> Path:
    """Left: each slice's SSIM, method against the reference (above the diagonal: the method wins).
    Right: the mean SSIM difference to the reference with its 95% interval, per method."""
    from .figures import new_figure, save_png

    ref = board.paired_against
    names = sorted(board.paired, key=lambda n: -board.paired[n]["SSIM"]["mean"])
    key = lambda r: (r["file"], r["slice"])  # noqa: E731
    ref_ssim = {key(r): r["SSIM"] for r in board.slice_rows if r["method"] == ref}
    fig = new_figure(figsize=(9.0, 4.0))
    scatter, bars = fig.subplots(1, 2)
    for name in names:
        rows = [r for r in board.slice_rows if r["method"] == name]
        scatter.scatter([ref_ssim[key(r)] for r in rows], [r["SSIM"] for r in rows], s=12, label=name, alpha=0.8)
    low, high = scatter.get_xlim()
    lo, hi = min(low, scatter.get_ylim()[0]), max(high, scatter.get_ylim()[1])
    scatter.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
    scatter.set_xlabel(f"{ref} SSIM (per slice)")
    scatter.set_ylabel("method SSIM")
    scatter.legend(fontsize=7)
    stats = [board.paired[n]["SSIM"] for n in names]
    means = np.array([s["mean"] for s in stats])
    err = np.array([[s["mean"] - s["ci_low"] for s in stats], [s["ci_high"] - s["mean"] for s in stats]])
    bars.errorbar(means, range(len(names)), xerr=err, fmt="o", capsize=3)
    bars.axvline(0, color="grey", lw=0.8)
    bars.set_yticks(range(len(names)))
    bars.set_yticklabels(names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel(f"SSIM minus {ref} (mean, 95% interval)")
    fig.suptitle(f"paired against {ref}: {_slices(board)} slices", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
    return path


def summary_rows(board: Leaderboard) -> list[dict]:
    """Flat rows (acquisition "all" first, then each acquisition) for leaderboard.csv."""
    out = []
    for acq, summary in [("all", board.summary)] + list(board.by_acquisition.items()):
        for name in sorted(summary, key=lambda n: summary[n]["rank"]):
            out.append({"acquisition": acq, "method": name, **summary[name]})
    return out


SUMMARY_COLUMNS = ("acquisition", "rank", "method", "volumes") + tuple(
    c for m in METRICS for c in (m, m + "_std"))
VOLUME_COLUMNS = ("method", "file", "acquisition", "slices", "maxval") + METRICS
SLICE_COLUMNS = ("method", "file", "slice", "source") + METRICS
INTERVAL_COLUMNS = ("source", "method", "metric", "mean", "ci_low", "ci_high", "n", "ci_low_volumes",
                    "ci_high_volumes", "volumes")
PAIRED_COLUMNS = ("reference", "method", "metric", "mean", "ci_low", "ci_high", "n", "ci_low_volumes",
                  "ci_high_volumes", "volumes", "win_fraction")


def metric_bars(board: Leaderboard, path: Path) -> Path:
    """One panel per metric: mean per method (ranked order) with ±1 std error bars."""
    from .figures import new_figure, save_png

    names = board.ranking()
    fig = new_figure(figsize=(3.2 * len(METRICS), 0.5 * len(names) + 2.2))
    axes = fig.subplots(1, len(METRICS))
    for ax, metric in zip(axes, METRICS):
        means = [board.summary[n][metric] for n in names]
        stds = [board.summary[n][metric + "_std"] or 0.0 for n in names]
        ax.barh(range(len(names)), means, xerr=stds, color="tab:blue", alpha=0.8, capsize=3)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names if ax is axes[0] else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(metric + (" (lower is better)" if metric == "NMSE" else ""), fontsize=9)
        if metric == "SSIM":
            ax.set_xlim(max(0.0, min(means) - 2 * max(stds + [0.02])), 1.0)
    fig.suptitle(f"{board.challenge}: mean ± std over volumes", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def slice_figure(board: Leaderboard, target_path: Path, prediction_paths: Sequence[Path], path: Path,
                 volume: Optional[str] = None) -> Path:
    """The middle slice of one volume: target, each method (ranked) and error maps."""
    from .figures import comparison_figure

    volume = volume or board.rows[0]["file"]
    with h5py.File(Path(target_path) / volume, "r") as hf:
        target_vol = hf[TARGET_KEYS[board.challenge]]
        s = target_vol.shape[0] // 2
        target = target_vol[s]
    dirs = dict(zip(method_names(prediction_paths), prediction_paths))
    recons, metrics = {}, {}
    for name in board.ranking():
        with h5py.File(Path(dirs[name]) / volume, "r") as hf:
            recons[name] = fastmri_crop(target, hf[PRED_KEY][s])[1]
        metrics[name] = next(r for r in board.rows if r["method"] == name and r["file"] == volume)
    target = fastmri_crop(target, target)[0]
    return comparison_figure(target, recons, path, metrics=metrics,
                             title=f"{volume}, slice {s} (volume metrics)")


def _finite(value):
    """JSON-safe copy: inf/NaN (PSNR of a perfect reconstruction is inf) become None."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_report(board: Leaderboard, out_dir: Path, target_path: Path, prediction_paths: Sequence[Path],
                 figure_volume: Optional[str] = None) -> dict:
    """leaderboard.csv, volumes.csv, slice_metrics.csv, intervals.csv (means over
    slices with bootstrap intervals), leaderboard.json, metrics.png, slices.png and, when paired,
    paired.csv and paired.png in ``out_dir``, each written atomically. Returns {kind: path}."""
    from .pipeline import write_json

    out_dir = Path(out_dir)
    paths = {
        "leaderboard_csv": _write_csv(out_dir / "leaderboard.csv", summary_rows(board), SUMMARY_COLUMNS),
        "volumes_csv": _write_csv(out_dir / "volumes.csv", board.rows, VOLUME_COLUMNS),
    }
    write_json(out_dir / "leaderboard.json", _finite({**asdict(board), "ranking": board.ranking()}))
    paths["json"] = out_dir / "leaderboard.json"
    paths["metrics_png"] = metric_bars(board, out_dir / "metrics.png")
    paths["slice_metrics_csv"] = _write_csv(out_dir / "slice_metrics.csv", board.slice_rows, SLICE_COLUMNS)
    paths["intervals_csv"] = _write_csv(out_dir / "intervals.csv", interval_rows(board), INTERVAL_COLUMNS)
    if board.paired:
        paths["paired_csv"] = _write_csv(out_dir / "paired.csv", paired_rows(board), PAIRED_COLUMNS)
        paths["paired_png"] = paired_figure(board, out_dir / "paired.png")
    paths["slices_png"] = slice_figure(board, target_path, prediction_paths, out_dir / "slices.png", figure_volume)
    return paths


# ---------------------------------------------------------------------------------------
# Command line


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--target-path", type=Path, required=True,
                   help="directory of ground-truth fastMRI h5 files (reconstruction_rss / _esc)")
    p.add_argument("--predictions-path", type=Path, nargs="+", required=True,
                   help="one or more directories of reconstructions (one h5 per volume, key 'reconstruction'); "
                        "the directory name is the method name")
    p.add_argument("--challenge", choices=tuple(TARGET_KEYS), required=True,
                   help="which targets to score against: reconstruction_rss (multicoil) or _esc (singlecoil)")
    p.add_argument("--acquisition", default=None,
                   help="only volumes with this 'acquisition' attribute (e.g. CORPD_FBK, AXT2); default: all")
    p.add_argument("--maxval", choices=MAXVAL_CHOICES, default="target",
                   help="PSNR/SSIM data range: 'target' = max of the cropped target volume, as "
                        "fastmri.evaluate; 'attr' = the file's 'max' attribute, as fastMRI's validation")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory: leaderboard.csv, volumes.csv, leaderboard.json, metrics.png, slices.png")
    p.add_argument("--figure-volume", default=None, help="volume (file name) shown in slices.png; default: the first")
    p.add_argument("--paired-against", default=None, metavar="METHOD",
                   help="compare every method with METHOD (a prediction directory's name) slice by slice: mean "
                        "difference with a 95%% bootstrap interval and the fraction of slices won (paired.csv, "
                        "paired.png)")
    return p


def cmd_evaluate(args) -> int:
    """Run the evaluation; print the ranked table; write the report. Exit code 0."""
    from .pipeline import check_output_dir

    if args.out is not None:
        check_output_dir(args.out)  # before any work
    board = evaluate_predictions(args.target_path, args.predictions_path, args.challenge,
                                 acquisition=args.acquisition, maxval=args.maxval,
                                 log=lambda m: print(m, file=sys.stderr), paired_against=args.paired_against)
    if args.figure_volume is not None and args.figure_volume not in {r["file"] for r in board.rows}:
        raise InputError("--figure-volume", f"{args.figure_volume!r} is not an evaluated volume")
    print(format_report(board))
    if args.out is not None:
        paths = write_report(board, args.out, args.target_path, args.predictions_path, args.figure_volume)
        print("\nreport: " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_evaluate(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on a ``parser.add_subparsers()`` object."""
    p = subparsers.add_parser("evaluate", help="fastMRI leaderboard: rank reconstruction directories by "
                                               "NMSE/PSNR/SSIM against the targets")
    add_arguments(p)
    p.set_defaults(func=cmd_evaluate)
    return p


def main(argv=None) -> int:
    """Standalone entry point (scripts/leaderboard.py): same arguments as ``evaluate``."""
    parser = add_arguments(argparse.ArgumentParser(prog="leaderboard", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return cmd_evaluate(args)
    except InputError as exc:
        print(f"leaderboard: error: {exc}", file=sys.stderr)
        return 2
