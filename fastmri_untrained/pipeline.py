"""Dataset-level reconstruction: fastMRI directories (or real .cfl/.npy k-space) in, fastMRI
reconstruction files out (one h5 per volume, key ``reconstruction``, via
fastmri.save_reconstructions), with fastMRI metrics when targets exist.

Each volume is written once, complete: to a temporary directory, then renamed into place, so
an interrupted run leaves no partial file, and a rerun skips volumes already written. Each
slice is fitted from a seed derived from (seed, file, slice) (:func:`slice_seed`), so the files
do not depend on how slices are spread over processes (``lightning.SliceReconstructionModule``,
which the ``reconstruct`` command runs, reuses these pieces).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import fastmri
import h5py
import numpy as np
import torch
from fastmri.data import SliceDataset
from fastmri.data.transforms import VarNetDataTransform

from .baselines import CLASSICAL_METHODS, classical_reconstructor
from .errors import InputError
from .evaluate import volume_metrics
from .mri import MRISample, holdout_split, kspace_nmse, sample_from_varnet
from .operators.masks import check_mask_args, fastmri_mask_func
from .operators.mri import reduce_readout
from .recon import UNTRAINED_METHODS, UntrainedConfig, UntrainedReconstructor

METHODS = UNTRAINED_METHODS + CLASSICAL_METHODS
KSPACE_SUFFIXES = (".cfl", ".hdr", ".npy")


@dataclass
class MaskSpec:
    """Retrospective undersampling: fastMRI mask type, accelerations, centre fractions."""

    mask_type: str = "equispaced_fraction"
    accelerations: tuple = (4,)
    center_fractions: tuple = (0.08,)

    def __post_init__(self):
        check_mask_args(self.mask_type, self.accelerations, self.center_fractions)
        if self.mask_type == "poisson":
            raise InputError("--mask-type", "poisson masks are 2-D; fastMRI datasets take column masks "
                             "(random, equispaced, equispaced_fraction, magic, magic_fraction)")

    def mask_func(self):
        return fastmri_mask_func(self.mask_type, self.accelerations, self.center_fractions)


def make_reconstructor(method: str, lamda: Optional[float] = None, untrained: Optional[UntrainedConfig] = None,
                       show_progress: bool = True) -> Callable[[MRISample], object]:
    """The reconstructor for ``method`` (un-trained or classical)."""
    if method in UNTRAINED_METHODS:
        cfg = untrained or UntrainedConfig(method=method)
        return UntrainedReconstructor(cfg, show_progress=show_progress)
    if method in CLASSICAL_METHODS:
        return classical_reconstructor(method, lamda=lamda)
    raise InputError("--method", f"unknown method {method!r}; choose from {', '.join(METHODS)}")


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
    cfg = reconstructor.config
    seed = slice_seed(cfg.seed, sample.fname, sample.slice_num)
    fit_cfg = dataclasses.replace(cfg.fit_config(), seed=seed)
    return UntrainedReconstructor(dataclasses.replace(cfg, seed=seed, fit=fit_cfg),
                                  show_progress=reconstructor.show_progress)


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


def write_holdout_report(out_dir: Path, method: str, fraction: float, rows: list[dict]) -> None:
    write_json(Path(out_dir) / "holdout.json", {"method": method, "holdout_fraction": fraction,
                                                "volumes": {r["file"]: r.get("holdout_nmse") for r in rows}})


def h5_files(data_path: Path) -> list[Path]:
    """The fastMRI h5 files of a directory, validated; a clear error when there are none."""
    data_path = Path(data_path)
    if not data_path.exists():
        raise InputError(data_path, "does not exist")
    files = sorted(data_path.glob("*.h5")) if data_path.is_dir() else [data_path]
    if not files:
        raise InputError(data_path, "contains no .h5 files")
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


def save_volume(out_dir: Path, fname: str, volume: np.ndarray) -> Path:
    """fastmri.save_reconstructions into a temporary directory, then an atomic rename."""
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir))
    try:
        fastmri.save_reconstructions({fname: volume.astype(np.float32)}, tmp)
        os.replace(tmp / fname, out_dir / fname)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir / fname


def holdout_score(reconstructor, sample: MRISample, fraction: float, seed: int = 0) -> float:
    """Reconstruct from all but a held-out ``fraction`` of the acquired samples (outside the
    calibration centre) and return the NMSE with which the result predicts the held-out ones."""
    fit_mask, held = holdout_split(sample.mask, fraction, seed=seed)
    fit_sample = sample._replace(kspace=sample.kspace * fit_mask, mask=fit_mask)
    result = reconstructor(fit_sample)
    rows = result.info.get("grid_rows", sample.kspace.shape[-2])
    measured = sample.kspace if rows == sample.kspace.shape[-2] else reduce_readout(sample.kspace, rows)
    return kspace_nmse(result.kspace, measured, held)


def simulated_samples(mask: MaskSpec, shape, coils: int = 8, slices: int = 1, seed: int = 0) -> list[MRISample]:
    """The masked slices of one simulated multi-coil volume, written to a temporary fastMRI file and
    read back through :func:`iterate_volumes`, as a user's data would be (scripts, tuning, theory)."""
    from .data.simulate import simulate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        simulate_dataset(tmp, "multicoil", 1, slices, coils, tuple(shape), seed=seed, show_progress=False)
        _, samples = next(iterate_volumes(sorted(Path(tmp).glob("*.h5")), "multicoil", mask))
    return samples


def iterate_volumes(files: Iterable[Path], challenge: str, mask: MaskSpec):
    """Yield (fname, [MRISample per slice]) for each fastMRI file, one volume at a time."""
    transform = VarNetDataTransform(mask_func=mask.mask_func(), use_seed=True)
    for path in files:
        ds = SliceDataset(root=path.parent, challenge=challenge, transform=transform)
        ds.raw_samples = [s for s in ds.raw_samples if Path(s.fname).name == path.name]
        if not ds.raw_samples:
            raise InputError(path, "has no slices")
        yield path.name, [sample_from_varnet(ds[i], challenge) for i in range(len(ds))]


def reconstruct_dataset(data_path: Path, out_dir: Path, method: str, challenge: str, mask: MaskSpec,
                        reconstructor=None, report_holdout: Optional[float] = None, seed: int = 0,
                        resume: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """Reconstruct every volume of ``data_path`` into ``out_dir``; returns per-volume rows
    (file, seconds and, where targets exist, NMSE/PSNR/SSIM)."""
    from .data.readers import validate_fastmri_file

    files = h5_files(data_path)
    out_dir = check_output_dir(out_dir)
    for f in files:
        validate_fastmri_file(f, challenge)
    reconstructor = reconstructor or make_reconstructor(method)
    rows = []
    for fname, samples in iterate_volumes(files, challenge, mask):
        if resume and (out_dir / fname).exists():
            log(f"{fname}: already reconstructed, skipped")
            continue
        start = time.perf_counter()
        images, holdout = [], []
        for sample in samples:
            rec = for_slice(reconstructor, sample)
            images.append(rec(sample).image)
            if report_holdout:
                holdout.append(holdout_score(rec, sample, report_holdout, seed))
        volume = np.stack(images)
        save_volume(out_dir, fname, volume)
        rows.append(volume_row(fname, method, volume, samples, time.perf_counter() - start, holdout))
    if report_holdout:
        write_holdout_report(out_dir, method, report_holdout, rows)
    return rows


def reconstruct_kspace_file(path: Path, out_dir: Path, method: str, reconstructor=None,
                            report_holdout: Optional[float] = None, seed: int = 0) -> dict:
    """Reconstruct real k-space from a BART .cfl/.hdr or .npy (coils, H, W) file (no metrics)."""
    from .data.readers import load_kspace, sampling_mask_from_kspace

    out_dir = check_output_dir(out_dir)
    kspace = load_kspace(path)
    mask = torch.from_numpy(np.asarray(sampling_mask_from_kspace(kspace))).float()
    sample = MRISample(kspace=torch.from_numpy(kspace), mask=mask, target_size=tuple(kspace.shape[-2:]),
                       challenge="multicoil", fname=Path(path).stem)
    reconstructor = reconstructor or make_reconstructor(method)
    start = time.perf_counter()
    image = reconstructor(sample).image
    fname = Path(path).stem + ".h5"
    save_volume(out_dir, fname, image[None])
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
    from .errors import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=json_default))


def read_reconstruction(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as hf:
        return hf["reconstruction"][()]
