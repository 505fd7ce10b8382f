"""fastMRI slices of a list of files: fastMRI's ``SliceDataset`` and ``VarNetDataTransform``,
with the file's own sampling mask where the file is already undersampled.

Every dataset-level run (``pipeline.iterate_volumes``, ``lightning.FastMRIDataModule``,
the trained baselines) builds its slices here, so that

- only the given h5 files are read (fastMRI's ``SliceDataset`` opens every entry of its root
  directory, so a ``README.txt``, a sub-directory or the run's own output directory inside the
  data directory would crash it);
- ISMRMRD raw data files are read as fastMRI-layout twins of the same name (:mod:`data.mrd`);
- fastMRI test and challenge files, which are undersampled already and carry a ``mask`` dataset
  (or zero phase-encoding lines), are reconstructed from the lines they hold: a retrospective
  mask applies only to fully sampled files, unless ``retrospective`` forces it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import h5py
import numpy as np
from fastmri.data import SliceDataset
from fastmri.data.mri_data import FastMRIRawDataSample
from fastmri.data.transforms import VarNetDataTransform

from .mrd import fastmri_layout


def own_mask(path: Path) -> Optional[np.ndarray]:
    """The sampling mask (W,) of an already undersampled fastMRI file, None if fully sampled.

    A file is undersampled when it has a ``mask`` dataset (fastMRI's test and challenge layout)
    or when whole phase-encoding lines inside its acquired window are zero in every slice and coil.
    An ISMRMRD file is read as its fastMRI-layout twin (the lines it acquired).
    """
    path = fastmri_layout(path)
    with h5py.File(path, "r") as hf:
        if "mask" in hf:
            return np.asarray(hf["mask"][()], dtype=bool).reshape(-1)
        kspace = hf["kspace"]
        sampled = np.zeros(kspace.shape[-1], dtype=bool)
        for s in range(kspace.shape[0]):  # slice by slice: large files are never loaded whole
            sampled |= np.abs(kspace[s]).reshape(-1, kspace.shape[-1]).any(axis=0)
    left, right = _acquired_window(path, sampled.size)
    inside = sampled[left:right]
    return None if inside.all() else sampled


def _acquired_window(path: Path, width: int) -> tuple[int, int]:
    # fastMRI's padding (zero columns outside the acquisition window) is not undersampling.
    # _retrieve_metadata uses no instance state: fastMRI's own header parsing, called unbound.
    raw = SliceDataset._retrieve_metadata(None, path)[0]
    left, right = int(raw["padding_left"]), int(raw["padding_right"])
    return (max(0, left), min(width, right)) if 0 <= left < right else (0, width)


class MaskSelectingTransform:
    """``VarNetDataTransform`` with the retrospective ``mask_func`` for fully sampled files and
    the file's own mask (fastMRI's ``mask_func=None`` path) for undersampled ones."""

    def __init__(self, mask_func: Callable, undersampled: dict[str, np.ndarray]):
        self.retrospective = VarNetDataTransform(mask_func=mask_func, use_seed=True)
        self.as_acquired = VarNetDataTransform(mask_func=None)
        self.undersampled = undersampled

    def __call__(self, kspace, mask, target, attrs, fname, slice_num):
        own = self.undersampled.get(Path(fname).name)
        if own is None:
            return self.retrospective(kspace, mask, target, attrs, fname, slice_num)
        return self.as_acquired(kspace, own if mask is None else mask, target, attrs, fname, slice_num)


class FileSliceDataset(SliceDataset):
    """fastMRI's ``SliceDataset`` over an explicit list of h5 files (not a whole directory)."""

    def __init__(self, files: Sequence[Path], challenge: str, transform: Optional[Callable] = None):
        # fastMRI's constructor lists its root directory: give it an empty one, then add the
        # files' slices with its own metadata reader.
        with tempfile.TemporaryDirectory() as empty:
            super().__init__(root=empty, challenge=challenge, transform=transform)
        for path in files:
            path = fastmri_layout(path)  # ISMRMRD raw data: its fastMRI-layout twin of the same name
            metadata, num_slices = self._retrieve_metadata(Path(path))
            self.raw_samples += [FastMRIRawDataSample(Path(path), i, metadata) for i in range(num_slices)]


def slice_dataset(files: Sequence[Path], challenge: str, mask_func: Callable,
                  retrospective: bool = False) -> FileSliceDataset:
    """The slices of ``files`` as fastMRI ``VarNetSample`` s. Files that are already undersampled
    keep their own mask unless ``retrospective`` (then ``mask_func`` undersamples every file)."""
    files = [Path(f) for f in files]
    undersampled = {} if retrospective else {f.name: m for f in files if (m := own_mask(f)) is not None}
    return FileSliceDataset(files, challenge, MaskSelectingTransform(mask_func, undersampled))
