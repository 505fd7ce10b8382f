"""Viewer formats out: NIfTI (nibabel) and DICOM (pydicom) beside the fastMRI h5.

``reconstruct --output-format nifti|dicom`` writes, for volume ``NAME.h5``,

- ``NAME.nii.gz``: float32 (h, w, slices) magnitudes, the affine from the source header's recon
  field of view (``reconSpace/fieldOfView_mm`` over the recon matrix; the slice step is the
  slices' distance where an ISMRMRD file gives their positions, else the FOV's z, the slice
  thickness); 1 mm spacing with a warning where the source has no header (.npy/.cfl k-space);
- ``NAME_dicom/IM_0001.dcm, ...``: one MR secondary-capture series, 16-bit unsigned magnitudes
  with one RescaleSlope/RescaleIntercept per volume (``stored * slope + intercept`` recovers the
  float values to within one quantisation step), Image Plane geometry (position, orientation,
  pixel spacing) and fresh study / series / instance UIDs per run; patient fields anonymous.

Geometry follows ISMRMRD (and DICOM) patient coordinates (LPS, mm); NIfTI's world is RAS, so
its affine flips x and y. Image rows run along the readout (fastMRI's image axis 0), columns
along phase encoding; where the source gives no directions, an axial stack is assumed. Every
file is written to a temporary name and renamed into place: never a half-written file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import xml.etree.ElementTree as etree
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np

OUTPUT_FORMATS = ("fastmri", "nifti", "dicom")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Defaults where the source has no directions: rows posterior (read along y), columns to the
# patient's left (phase along x), slices along z -- an axial stack as viewers show it.
DEFAULT_DIRS = (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))


@dataclass
class Geometry:
    """Where the voxels of a (slices, h, w) volume lie (LPS, mm)."""

    spacing: tuple[float, float]  # (between rows, between columns)
    thickness: float
    read_dir: np.ndarray  # rows run along it
    phase_dir: np.ndarray  # columns run along it
    slice_dir: np.ndarray
    positions: Optional[np.ndarray]  # (slices, 3) slice centres, or None (stacked by thickness)
    known: bool  # False: 1 mm spacing assumed (no header)

    def slice_centres(self, slices: int) -> np.ndarray:
        if self.positions is not None and len(self.positions) == slices:
            return np.asarray(self.positions, dtype=np.float64)
        offsets = (np.arange(slices) - (slices - 1) / 2) * self.thickness
        return offsets[:, None] * self.slice_dir[None]

    def corners(self, shape: Sequence[int]) -> np.ndarray:
        """(slices, 3): the centre of each slice's first pixel (DICOM's ImagePositionPatient)."""
        slices, h, w = shape
        shift = (h // 2) * self.spacing[0] * self.read_dir + (w // 2) * self.spacing[1] * self.phase_dir
        return self.slice_centres(slices) - shift[None]  # fastMRI's centred FFT: the centre is pixel (h//2, w//2)

    def affine(self, shape: Sequence[int]) -> np.ndarray:
        """4x4 RAS affine of voxel (row, column, slice) for NIfTI."""
        slices = shape[0]
        corners = self.corners(shape)
        step = (corners[-1] - corners[0]) / (slices - 1) if slices > 1 else self.thickness * self.slice_dir
        if np.linalg.norm(step) < 1e-6:  # positions given but all equal: stack by thickness
            step = self.thickness * self.slice_dir
        lps = np.eye(4)
        lps[:3, 0] = self.spacing[0] * self.read_dir
        lps[:3, 1] = self.spacing[1] * self.phase_dir
        lps[:3, 2] = step
        lps[:3, 3] = corners[0]
        return LPS_TO_RAS @ lps


def _unit(v, default: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    n = float(np.linalg.norm(v)) if v.size == 3 else 0.0
    return v / n if n > 1e-6 else default


def volume_geometry(source: Optional[os.PathLike], name: str = "") -> Geometry:
    """The geometry of ``source`` (fastMRI or ISMRMRD h5): the recon FOV of its header, and the slice
    positions and directions an ISMRMRD file gives. Without a usable header: 1 mm spacing, a warning."""
    fov = None
    attrs: dict = {}
    if source is not None:  # a .npy/.cfl source is no HDF5 file: OSError, no geometry
        from fastmri.data.mri_data import et_query

        from .data.mrd import fastmri_layout

        try:
            with h5py.File(fastmri_layout(source), "r") as hf:
                attrs = {k: hf.attrs[k] for k in hf.attrs if str(k).startswith("mrd_")}
                root = etree.fromstring(hf["ismrmrd_header"][()])
            space = ["encoding", "reconSpace"]
            matrix = [float(et_query(root, space + ["matrixSize", a])) for a in "xy"]
            fov = [float(et_query(root, space + ["fieldOfView_mm", a])) for a in "xyz"]
            if not all(v > 0 for v in matrix + fov):
                fov = None
        except (OSError, KeyError, RuntimeError, ValueError, TypeError, etree.ParseError):
            fov = None
    dirs = [_unit(attrs.get(f"mrd_{n}"), d) for n, d in zip(("read_dir", "phase_dir", "slice_dir"), DEFAULT_DIRS)]
    if fov is None:
        warnings.warn(f"{name or source}: no field of view in a header; NIfTI/DICOM written with 1 mm voxels")
        return Geometry((1.0, 1.0), 1.0, *dirs, positions=None, known=False)
    positions = attrs.get("mrd_positions")
    return Geometry((fov[0] / matrix[0], fov[1] / matrix[1]), fov[2], *dirs,
                    positions=None if positions is None else np.asarray(positions, dtype=np.float64), known=True)


def _replace_into(tmp: Path, final: Path) -> None:
    if final.is_dir():  # an earlier, interrupted run's series: replaced whole
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_nifti(path: Path, volume: np.ndarray, geometry: Geometry) -> Path:
    """``volume`` (slices, h, w) as a float32 NIfTI-1 (h, w, slices) with the geometry's affine."""
    import nibabel as nib

    path = Path(path)
    affine = geometry.affine(volume.shape)
    image = nib.Nifti1Image(np.ascontiguousarray(np.transpose(volume, (1, 2, 0)), dtype=np.float32), affine)
    image.header.set_xyzt_units("mm")
    code = 1 if geometry.known else 0  # scanner coordinates, or "unknown"
    image.set_qform(affine, code=code)
    image.set_sform(affine, code=code)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=path.parent))
    try:
        nib.save(image, tmp / path.name)  # nibabel picks the format from the name: a plain temp name would not do
        _replace_into(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _ds(value: float) -> str:
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))  # DICOM decimal strings hold 16 characters


def quantise(volume: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(uint16 values, slope, intercept) with ``values * slope + intercept`` within one step of
    ``volume``; slope and intercept are the values their 16-character decimal strings hold."""
    low = min(0.0, float(volume.min()))
    span = float(volume.max()) - low
    intercept = float(_ds(low))
    slope = float(_ds(span / 65535 if span > 0 else 1.0))
    # A slope rounded down by its decimal string clips the top value by ~1e-10 of the range: far below a step.
    values = np.clip(np.rint((volume.astype(np.float64) - intercept) / slope), 0, 65535).astype(np.uint16)
    return values, slope, intercept


def write_dicom(directory: Path, volume: np.ndarray, geometry: Geometry, description: str = "") -> Path:
    """``volume`` (slices, h, w) as one DICOM series: ``directory/IM_0001.dcm`` ... (replaced whole)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, SecondaryCaptureImageStorage, \
        generate_uid

    directory = Path(directory)
    values, slope, intercept = quantise(volume)
    corners = geometry.corners(volume.shape)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    vmax = float(volume.max())
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=directory.parent))
    try:
        for k in range(volume.shape[0]):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
            ds.file_meta.MediaStorageSOPInstanceUID = uid = generate_uid()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.Modality, ds.ConversionType = "MR", "WSD"
            ds.ImageType = ["DERIVED", "SECONDARY", "M"]
            ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Anonymous", "anonymous", "", ""
            ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", ""
            ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
            ds.SeriesDescription = description[:64]
            ds.PositionReferenceIndicator = ""
            ds.ImagePositionPatient = [_ds(v) for v in corners[k]]
            ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([geometry.phase_dir, geometry.read_dir])]
            ds.PixelSpacing = [_ds(geometry.spacing[0]), _ds(geometry.spacing[1])]
            ds.SliceThickness = _ds(geometry.thickness)
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds(slope), _ds(intercept), "US"
            ds.WindowCenter, ds.WindowWidth = _ds(vmax / 2), _ds(vmax if vmax > 0 else 1.0)
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[2])
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.PixelData = np.ascontiguousarray(values[k]).tobytes()
            ds.save_as(tmp / f"IM_{k + 1:04d}.dcm", enforce_file_format=True)
        _replace_into(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def viewer_paths(out_dir: Path, fname: str, formats: Sequence[str]) -> dict[str, Path]:
    """{format: path} of the viewer files of volume ``fname`` (the fastMRI h5 is not among them)."""
    stem = Path(fname).stem
    paths = {"nifti": Path(out_dir) / f"{stem}.nii.gz", "dicom": Path(out_dir) / f"{stem}_dicom"}
    return {f: paths[f] for f in formats if f in paths}


def write_viewer_formats(out_dir: Path, fname: str, volume: np.ndarray, formats: Sequence[str],
                         source: Optional[os.PathLike] = None) -> list[Path]:
    """Write the NIfTI / DICOM files of ``formats`` for volume ``fname`` (geometry from ``source``)."""
    paths = viewer_paths(out_dir, fname, formats)
    if not paths:
        return []
    volume = np.asarray(volume, dtype=np.float32)
    geometry = volume_geometry(source, Path(source).name if source is not None else fname)
    written = []
    if "nifti" in paths:
        written.append(write_nifti(paths["nifti"], volume, geometry))
    if "dicom" in paths:
        written.append(write_dicom(paths["dicom"], volume, geometry, description=Path(fname).stem))
    return written


def write_missing(out_dir: Path, source: Path, formats: Sequence[str]) -> list[Path]:
    """For a volume finished by an earlier run (its h5 in ``out_dir``): the viewer files still missing."""
    missing = [f for f, p in viewer_paths(out_dir, Path(source).name, formats).items() if not p.exists()]
    if not missing:
        return []
    with h5py.File(Path(out_dir) / Path(source).name, "r") as hf:
        volume = hf["reconstruction"][()]
    return write_viewer_formats(out_dir, Path(source).name, volume, missing, source)
