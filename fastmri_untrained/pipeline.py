"""The pieces of a dataset-level run: input checks, per-slice seeding, the writer, reports.

The driver that puts them together is :func:`lightning.reconstruct_dataset` (every
``reconstruct``, ``demo`` and leaderboard run); a single real k-space file (.cfl/.npy/MRD) has
the plain :func:`reconstruct_kspace_file`. Each volume is written once, complete, by
:func:`save_volume`: to a temporary directory, then renamed into place, so an interrupted run
leaves no partial file, and a rerun skips volumes already written. Each slice is fitted from a
seed derived from (seed, file, slice) (:func:`slice_seed`), so the files do not depend on how
slices are spread over processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import fastmri
import h5py
import numpy as np
import torch

from .baselines import CLASSICAL_METHODS, classical_reconstructor
from .data.slices import slice_dataset
from .errors import InputError
from .evaluate import volume_metrics
from .mri import MRISample, holdout_split, kspace_nmse, sample_from_varnet
from .operators.espirit import min_calibration_width
from .operators.masks import calibration_width, check_column_mask, check_mask_args, fastmri_mask_func, num_center_lines
from .operators.mri import reduce_readout
from .recon import UNTRAINED_METHODS, UntrainedConfig, UntrainedReconstructor

METHODS = UNTRAINED_METHODS + CLASSICAL_METHODS
KSPACE_SUFFIXES = (".cfl", ".hdr", ".npy")


@dataclass
class MaskSpec:
    """Retrospective undersampling: fastMRI mask type, accelerations, centre fractions.

    It applies to fully sampled files; files that are already undersampled (fastMRI's test and
    challenge files) keep their own mask unless ``retrospective`` is set.
    """

    mask_type: str = "equispaced_fraction"
    accelerations: tuple = (4,)
    center_fractions: tuple = (0.08,)
    retrospective: bool = False

    def __post_init__(self):
        check_mask_args(self.mask_type, self.accelerations, self.center_fractions)
        if self.mask_type == "poisson":
            raise InputError("mask_type", "poisson masks are 2-D; fastMRI datasets take column masks "
                             "(random, equispaced, equispaced_fraction, magic, magic_fraction)")

    def mask_func(self):
        return fastmri_mask_func(self.mask_type, self.accelerations, self.center_fractions)

    def calibration_width(self, width: int) -> int:
        """The narrowest fully sampled centre this spec gives ``width`` lines (InputError when a
        mask cannot be made or samples nothing)."""
        return min(calibration_width(check_column_mask(self.mask_type, width, a, c))
                   for a, c in zip(self.accelerations, self.center_fractions))


ESPIRIT_METHODS = ("sense", "l1-wavelet", "tv")


def needs_espirit(method: str, untrained: Optional[UntrainedConfig]) -> bool:
    """Whether ``method`` cannot run without ESPIRiT maps on multi-coil data (the un-trained
    methods' default SENSE model falls back to coil images instead, see recon.MRIProblem)."""
    return method in ESPIRIT_METHODS or (untrained is not None and untrained.forward_model == "sense")


def check_calibration(width: int, source) -> None:
    """InputError naming ``source`` when a centre of ``width`` lines is too narrow for ESPIRiT."""
    if width < min_calibration_width():
        raise InputError(source, f"the fully sampled centre is {width} lines wide; ESPIRiT maps need at least "
                                 f"{min_calibration_width()} (sample a wider centre, or use zero-filled or an un-trained "
                                 "method with the coil-images forward model)")


def check_inputs(infos, mask: MaskSpec, method: str, untrained: Optional[UntrainedConfig],
                 log: Callable[[str], None] = print) -> None:
    """Before any work: the masks for each file's width, and ESPIRiT's calibration centre.

    ``infos`` are :func:`data.readers.validate_fastmri_file` results. Files that are already
    undersampled keep their own mask (said once per file) unless ``mask.retrospective``.
    """
    from .data.slices import own_mask

    widths = {}
    for info in infos:
        own = None if mask.retrospective else own_mask(info.path)
        multicoil = info.challenge == "multicoil" and info.kspace_shape[1] > 1
        if own is not None:
            log(f"{info.path.name}: already undersampled ({int(own.sum())} of {own.size} lines); reconstructed "
                "from its own mask (--retrospective-mask undersamples it again)")
            if multicoil and needs_espirit(method, untrained):
                check_calibration(num_center_lines(torch.from_numpy(own)[None]), info.path)
            continue
        width = info.kspace_shape[-1]
        if width not in widths:
            widths[width] = mask.calibration_width(width)
        if multicoil and needs_espirit(method, untrained):
            check_calibration(widths[width], "center_fractions")


def make_reconstructor(method: str, lamda: Optional[float] = None, untrained: Optional[UntrainedConfig] = None,
                       show_progress: bool = True, seed: int = 0,
                       cycle_spin: bool = False) -> Callable[[MRISample], object]:
    """The reconstructor for ``method`` (un-trained or classical); ``seed`` seeds the un-trained
    fits when no ``untrained`` configuration is given; ``cycle_spin``: L1-wavelet with random
    wavelet shifts (:class:`baselines.ShiftedWaveletL1`)."""
    if lamda is not None and not (math.isfinite(lamda) and lamda >= 0):
        raise InputError("lamda", f"must be a finite number >= 0, got {lamda}")
    if cycle_spin and method != "l1-wavelet":
        raise InputError("cycle_spin", f"applies to l1-wavelet only, not {method}")
    if method in UNTRAINED_METHODS:
        cfg = untrained or UntrainedConfig(method=method, seed=seed)
        return UntrainedReconstructor(cfg, show_progress=show_progress)
    if method in CLASSICAL_METHODS:
        return classical_reconstructor(method, lamda=lamda, **({"cycle_spin": True} if cycle_spin else {}))
    raise InputError("method", f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def check_uncertainty(method: str, untrained: Optional[UntrainedConfig]) -> None:
    """An uncertainty map is the spread of an ensemble: refused (by name) for anything else."""
    if method not in UNTRAINED_METHODS:
        raise InputError("save_uncertainty", f"needs an ensemble of un-trained fits; {method} is not un-trained")
    ensemble = (untrained or UntrainedConfig(method=method)).ensemble
    if ensemble < 2:
        raise InputError("save_uncertainty", f"needs an ensemble of 2 or more fits (ensemble), {method} has {ensemble}")


def slice_seed(seed: int, fname: str, slice_num: int) -> int:
    """The seed of one slice's fit, derived from (seed, volume name, slice index).

    A slice's reconstruction depends only on its data and this seed -- not on which process
    fits it or in which order -- so a run on N processes writes the same files as a run on one.
    """
    digest = hashlib.sha256(f"{int(seed)}/{Path(fname).name}/{int(slice_num)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def for_slice(reconstructor, sample: MRISample):
    """``reconstructor`` re-seeded for ``sample`` (un-trained: network initialisation, DIP
    input noise, holdout split) with :func:`slice_seed`; classical methods are returned as is."""
    if not isinstance(reconstructor, UntrainedReconstructor):
        return reconstructor
    return reconstructor.with_seed(slice_seed(reconstructor.config.seed, sample.fname, sample.slice_num))


def volume_row(fname: str, method: str, volume: np.ndarray, samples: list[MRISample], seconds: float,
               holdout: Optional[list[float]] = None) -> dict:
    """The per-volume result row: file, seconds and, where targets exist, fastMRI metrics."""
    row = {"file": fname, "method": method, "seconds": seconds}
    if samples[0].target is not None:
        target = np.stack([s.target for s in samples])
        row.update(volume_metrics(target, volume, maxval=samples[0].max_value or None))
    if holdout:
        row["holdout_nmse"] = float(np.mean(holdout))
    return row


def write_reports(out_dir: Path, method: str, rows: list[dict], holdout_fraction: Optional[float] = None) -> None:
    """``out_dir/metrics.json`` (rows with targets and their summary) and, with
    ``holdout_fraction``, ``out_dir/holdout.json``: the one writer of a run's reports."""
    from .evaluate import summarise

    if rows and any("SSIM" in r for r in rows):
        write_json(Path(out_dir) / "metrics.json", {"rows": rows, "summary": summarise(rows)})
    if holdout_fraction:
        write_json(Path(out_dir) / "holdout.json", {"method": method, "holdout_fraction": holdout_fraction,
                                                    "volumes": {r["file"]: r.get("holdout_nmse") for r in rows}})


def finished_rows(data_files: Iterable[Path], out_dir: Path, method: str, challenge: str,
                  rows: list[dict]) -> list[dict]:
    """``rows`` of this run plus one row for every other volume of ``data_files`` already in
    ``out_dir`` (a resumed run): its row from the previous reports where they have it, else its
    metrics computed from the files (as :func:`volume_row` does), so reports cover every volume."""
    out_dir = Path(out_dir)
    done = {r["file"] for r in rows}
    previous = {}
    if (out_dir / "metrics.json").exists():
        try:
            previous = {r["file"]: r for r in json.loads((out_dir / "metrics.json").read_text())["rows"]}
        except (ValueError, KeyError, TypeError):
            previous = {}
    held = {}
    if (out_dir / "holdout.json").exists():
        try:
            held = json.loads((out_dir / "holdout.json").read_text())["volumes"]
        except (ValueError, KeyError, TypeError):
            held = {}
    from .data.readers import TARGET_KEYS

    target_key = TARGET_KEYS[challenge]
    extra = []
    for path in data_files:
        name = Path(path).name
        if name in done or not (out_dir / name).exists():
            continue
        row = previous.get(name)
        if row is None or "SSIM" not in row:
            row = {"file": name, "method": method}
            with h5py.File(path, "r") as hf:
                if target_key in hf:
                    maxval = float(hf.attrs["max"]) if "max" in hf.attrs else None
                    row.update(volume_metrics(hf[target_key][()], read_reconstruction(out_dir / name), maxval=maxval))
        if held.get(name) is not None:
            row.setdefault("holdout_nmse", held[name])
        extra.append(row)
    return sorted(rows + extra, key=lambda r: r["file"])


def h5_files(data_path: Path, log: Optional[Callable[[str], None]] = None) -> list[Path]:
    """The h5 files (fastMRI or ISMRMRD) of a directory (or the one file given); a clear error when there are
    none. Other entries (text files, sub-directories) are ignored, and ``log`` is told so once."""
    data_path = Path(data_path)
    if not data_path.exists():
        raise InputError(data_path, "does not exist")
    if not data_path.is_dir():
        return [data_path]
    entries = sorted(data_path.iterdir())
    files = [p for p in entries if p.suffix == ".h5" and p.is_file()]
    if not files:
        raise InputError(data_path, "contains no .h5 files")
    others = [p.name for p in entries if p not in files and not p.name.startswith(".")]
    if others and log is not None:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        log(f"{data_path}: ignoring {len(others)} entries that are not .h5 files ({shown})")
    return files


def check_output_dir(out_dir: Path) -> Path:
    """Create ``out_dir`` and check it is writable, before any work."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InputError(out_dir, f"output directory cannot be written ({exc.strerror or exc})") from exc
    return out_dir


class VolumeAssembler:
    """Collects the slices of each volume, in any order, and hands a volume over once all its
    slices are in (then forgets it, so only unfinished volumes are held). The one assembler of
    every writer: un-trained and classical (:class:`lightning.SliceReconstructionModule`) and
    trained (:class:`trained.VolumeWriter`)."""

    def __init__(self, slices_per_file: Mapping[str, int]):
        self.expected = dict(slices_per_file)
        self.pending: dict[str, dict] = {}
        self.finished: set[str] = set()

    def add(self, fname: str, slice_num: int, item) -> Optional[list]:
        """Add one slice's ``item``; returns the volume's items in slice order when it is
        complete, else None. A slice that arrives twice (a sampler's padding) counts once."""
        if fname in self.finished:
            return None
        slices = self.pending.setdefault(fname, {})
        slices.setdefault(slice_num, item)
        if len(slices) < self.expected.get(fname, -1):
            return None
        del self.pending[fname]
        self.finished.add(fname)
        return [slices[k] for k in sorted(slices)]

    def missing(self, fname: str) -> int:
        """Slices of ``fname`` not added yet."""
        return self.expected.get(fname, 0) - len(self.pending.get(fname, {})) if fname not in self.finished else 0

    @property
    def incomplete(self) -> list[str]:
        return sorted(self.pending)


#: The h5 dataset of an ensemble's per-pixel standard deviation, beside fastMRI's ``reconstruction``.
UNCERTAINTY_KEY = "reconstruction_std"


def _check_finite(fname: str, what: str, array: np.ndarray) -> None:
    if array.size == 0 or not np.isfinite(array).all():
        raise RuntimeError(f"{fname}: the {what} has {array.size - int(np.isfinite(array).sum())} "
                           f"non-finite values of {array.size}; not written")


def save_volume(out_dir: Path, fname: str, volume: np.ndarray, formats: Sequence[str] = ("fastmri",),
                source: Optional[Path] = None, std: Optional[np.ndarray] = None) -> Path:
    """fastmri.save_reconstructions into a temporary directory, then an atomic rename.
    A volume with NaN or inf values is refused (RuntimeError), never written. ``formats`` may add
    NIfTI / DICOM files (:mod:`export`, geometry from the ``source`` data file); they are written
    first, so the h5 -- what resume, metrics and ``evaluate`` read -- marks a finished volume.
    ``std`` (the shape of ``volume``): an ensemble's per-pixel standard deviation, stored as
    :data:`UNCERTAINTY_KEY` in the same h5 (fastMRI's readers read ``reconstruction`` only)."""
    out_dir = Path(out_dir)
    volume = np.asarray(volume, dtype=np.float32)
    _check_finite(fname, "reconstruction", volume)
    if std is not None:
        std = np.asarray(std, dtype=np.float32)
        if std.shape != volume.shape:
            raise ValueError(f"std has shape {std.shape}, the volume {volume.shape}")
        _check_finite(fname, "uncertainty map", std)
    if set(formats) - {"fastmri"}:
        from .export import write_viewer_formats

        write_viewer_formats(out_dir, fname, volume, formats, source)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))
    try:
        fastmri.save_reconstructions({fname: volume.astype(np.float32)}, tmp)
        if std is not None:
            with h5py.File(tmp / fname, "a") as hf:
                hf.create_dataset(UNCERTAINTY_KEY, data=std)
        os.replace(tmp / fname, out_dir / fname)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / fname


def holdout_reconstruction(reconstructor, sample: MRISample, fraction: float, seed: int = 0):
    """Reconstruct from all but a held-out ``fraction`` of the acquired samples (outside the
    calibration centre); returns (the NMSE with which the result predicts the held-out samples,
    the reconstruction)."""
    fit_sample, held = _holdout_sample(sample, fraction, seed)
    result = reconstructor(fit_sample)
    return _holdout_nmse(result, sample, held), result


def holdout_scores_volume(reconstructor: UntrainedReconstructor, samples: list[MRISample], fraction: float,
                          seed: int, slice_seeds: list[int]) -> list[float]:
    """:func:`holdout_score` of each of a volume's ``samples`` reconstructed together, as
    :meth:`UntrainedReconstructor.reconstruct_volume` does (joint networks): every slice loses its
    own held-out ``fraction`` (split from ``seed``), the slices are fitted with ``slice_seeds``."""
    fit_samples, held = zip(*(_holdout_sample(sample, fraction, seed) for sample in samples))
    results = reconstructor.reconstruct_volume(list(fit_samples), slice_seeds)
    return [_holdout_nmse(result, sample, h) for result, sample, h in zip(results, samples, held)]


def _holdout_sample(sample: MRISample, fraction: float, seed: int) -> tuple[MRISample, torch.Tensor]:
    """``sample`` without a held-out ``fraction`` of its acquired samples, and the held-out mask."""
    fit_mask, held = holdout_split(sample.mask, fraction, seed=seed)
    return sample._replace(kspace=sample.kspace * fit_mask, mask=fit_mask), held


def _holdout_nmse(result, sample: MRISample, held: torch.Tensor) -> float:
    rows = result.info.get("grid_rows", sample.kspace.shape[-2])
    measured = sample.kspace if rows == sample.kspace.shape[-2] else reduce_readout(sample.kspace, rows)
    return kspace_nmse(result.kspace, measured, held)


def holdout_score(reconstructor, sample: MRISample, fraction: float, seed: int = 0) -> float:
    """The held-out NMSE of :func:`holdout_reconstruction`."""
    return holdout_reconstruction(reconstructor, sample, fraction, seed)[0]


def simulated_samples(mask: MaskSpec, shape, coils: int = 8, slices: int = 1, seed: int = 0) -> list[MRISample]:
    """The masked slices of one simulated multi-coil volume, written to a temporary fastMRI file and
    read back through :func:`iterate_volumes`, as a user's data would be (scripts, tuning, theory)."""
    from .data.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset(tmp, "multicoil", 1, slices, coils, tuple(shape), seed=seed, show_progress=False)
        _, samples = next(iterate_volumes(sorted(Path(tmp).glob("*.h5")), "multicoil", mask))
    return samples


def iterate_volumes(files: Iterable[Path], challenge: str, mask: MaskSpec):
    """Yield (fname, [MRISample per slice]) for each fastMRI file, one volume at a time (files
    that are already undersampled keep their own mask, see :mod:`data.slices`)."""
    for path in files:
        ds = slice_dataset([path], challenge, mask.mask_func(), retrospective=mask.retrospective)
        if not ds.raw_samples:
            raise InputError(path, "has no slices")
        yield path.name, [sample_from_varnet(ds[i], challenge) for i in range(len(ds))]


def kspace_file_sample(path: Path) -> MRISample:
    """The one slice of a BART .cfl/.hdr or .npy (coils, H, W) k-space file, its sampling mask
    read from the zeros, the whole grid as the target size."""
    from .data.readers import load_kspace, sampling_mask_from_kspace

    kspace = load_kspace(path)
    mask = torch.from_numpy(np.asarray(sampling_mask_from_kspace(kspace))).float()
    return MRISample(kspace=torch.from_numpy(kspace), mask=mask, target_size=tuple(kspace.shape[-2:]),
                     challenge="multicoil", fname=Path(path).stem)


def reconstruct_kspace_file(path: Path, out_dir: Path, method: str, reconstructor=None,
                            report_holdout: Optional[float] = None, seed: int = 0,
                            output_formats: Sequence[str] = ("fastmri",), save_uncertainty: bool = False) -> dict:
    """Reconstruct real k-space from a BART .cfl/.hdr or .npy (coils, H, W) file (no metrics);
    ``save_uncertainty``: also store the ensemble's standard deviation (:func:`check_uncertainty`)."""
    if "dicom" in output_formats:  # no header: no recon matrix (target size), no pixel spacing
        raise InputError("output_formats", f"dicom needs a target size and geometry from a header; {Path(path).name} "
                                            "is raw k-space without one (use nifti, written with 1 mm voxels)")
    out_dir = check_output_dir(out_dir)
    sample = kspace_file_sample(path)
    if sample.kspace.shape[0] > 1 and needs_espirit(method, getattr(reconstructor, "config", None)):
        check_calibration(calibration_width(sample.mask), path)
    reconstructor = reconstructor or make_reconstructor(method)
    if save_uncertainty:
        check_uncertainty(method, getattr(reconstructor, "config", None))
    start = time.perf_counter()
    result = reconstructor(sample)
    fname = Path(path).stem + ".h5"
    std = result.info["image_std"][None] if save_uncertainty else None
    save_volume(out_dir, fname, result.image[None], output_formats, source=Path(path), std=std)
    row = {"file": fname, "method": method, "seconds": time.perf_counter() - start}
    if report_holdout:
        row["holdout_nmse"] = holdout_score(reconstructor, sample, report_holdout, seed)
        write_json(out_dir / "holdout.json", {"method": method, "holdout_fraction": report_holdout,
                                              "volumes": {fname: row["holdout_nmse"]}})
    return row


def json_default(obj):
    """``json.dumps(default=...)`` for numpy scalars and arrays."""
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: Path, data) -> None:
    """Write ``data`` (numpy values allowed) as JSON, atomically."""
    from .files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=json_default))


def read_reconstruction(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as hf:
        return hf["reconstruction"][()]
