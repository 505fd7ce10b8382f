"""ISMRMRD / MRD raw data in: Cartesian 2-D multi-slice acquisitions in fastMRI's layout.

An MRD file (HDF5 with a ``dataset`` group holding ``xml`` and ``data``; read with the
``ismrmrd`` package) is converted once per process into a fastMRI-layout h5 of the *same name*
in a cache directory (:func:`fastmri_layout`), so that the one dataset path (fastMRI's
``SliceDataset`` through :mod:`data.slices`) reconstructs it unchanged, with the same
retrospective-mask seeds as a fastMRI file of that name. The conversion keeps what fastMRI's own
files keep:

- ``kspace`` (slices, coils, H, W) complex64 with H the readout *as acquired* (2x oversampled,
  fastMRI keeps it; the target crop is the header's recon matrix) and W the encoded phase-encoding
  matrix, line ``e1`` in column ``e1 - center + W // 2`` (fastMRI's padding from the header's
  ``kspace_encoding_step_1`` limits);
- ``ismrmrd_header``: the file's own XML;
- ``mask`` (W,) of the acquired lines, written only when lines inside the acquired window are
  missing: an undersampled acquisition is reconstructed from its own lines, a fully sampled one
  takes the retrospective mask (:func:`data.slices.own_mask`);
- attrs: ``acquisition`` (protocol name), ``calibration_lines`` (lines flagged
  ACQ_IS_PARALLEL_CALIBRATION[_AND_IMAGING]) and the slice geometry (``mrd_positions``,
  ``mrd_read_dir``, ``mrd_phase_dir``, ``mrd_slice_dir``) for the NIfTI/DICOM writers.

Noise, navigator, phase-correction and other non-imaging acquisitions are skipped; repeated
lines (averages) are averaged; calibration-only lines (ACQ_IS_PARALLEL_CALIBRATION, e.g. a
separate GRAPPA reference) fill the lines the imaging data lack, as fastMRI's multi-coil files
hold their calibration lines in k-space. Non-Cartesian, 3-D, multi-contrast/repetition data,
mixed matrix sizes, missing header fields and files without imaging data are refused with an
``InputError`` naming the file and what was found.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import h5py
import numpy as np

from ..errors import InputError
from ..files import atomic_path
from ..operators.masks import center_run

PathLike = Union[str, os.PathLike]

# ismrmrd.constants flag numbers (bit k-1) of acquisitions that are not image data.
NON_IMAGING = {19: "noise measurement", 23: "navigator", 24: "phase correction", 26: "HP feedback",
               27: "dummy scan", 28: "RT feedback", 29: "surface coil correction",
               30: "phase stabilisation reference", 31: "phase stabilisation"}
CALIBRATION, CALIBRATION_AND_IMAGING = 20, 21  # ACQ_IS_PARALLEL_CALIBRATION[_AND_IMAGING]
SINGLE_COUNTERS = ("contrast", "phase", "repetition", "set")  # one image per slice: one of each


def _flag(flags: int, bit: int) -> bool:
    return bool(int(flags) >> (bit - 1) & 1)


def is_mrd(path: PathLike) -> bool:
    """Whether ``path`` is an ISMRMRD raw data file (an h5 with a ``dataset`` group, no ``kspace``)."""
    try:
        with h5py.File(path, "r") as hf:
            return "kspace" not in hf and isinstance(hf.get("dataset"), h5py.Group)
    except OSError:  # not HDF5: validate_fastmri_file says so
        return False


@dataclass
class MRDVolume:
    """One MRD file in fastMRI's layout (see the module docstring)."""

    kspace: np.ndarray  # (slices, coils, H, W) complex64
    mask: np.ndarray  # (W,) bool: acquired lines
    calibration: np.ndarray  # (W,) bool: lines flagged as parallel-imaging calibration
    header_xml: bytes
    fully_sampled: bool
    attrs: dict = field(default_factory=dict)


def _parse_header(xml: bytes, path: Path):
    import ismrmrd.xsd

    try:
        header = ismrmrd.xsd.CreateFromDocument(xml)
    except TypeError as exc:  # xsdata: a required element is missing
        m = re.search(r"(\w+)\.__init__\(\) missing .*?: (.*)$", str(exc))
        what = f"{m.group(2).replace(chr(39), '')} (in <{m.group(1).removesuffix('Type')}>)" if m else str(exc)
        raise InputError(path, f"the ISMRMRD XML header lacks {what}") from None
    except Exception as exc:  # xsdata's ParserError and friends: not a valid ISMRMRD header
        raise InputError(path, f"unreadable ISMRMRD XML header ({type(exc).__name__}: {exc})") from None
    if not header.encoding:
        raise InputError(path, "the ISMRMRD XML header lacks <encoding>")
    enc = header.encoding[0]
    trajectory = getattr(enc.trajectory, "value", enc.trajectory)
    if trajectory != "cartesian":
        raise InputError(path, f"non-Cartesian acquisition (trajectory '{trajectory}'); only Cartesian 2-D "
                               "multi-slice data are read")
    size = enc.encodedSpace.matrixSize
    if size.z > 1:
        raise InputError(path, f"3-D acquisition (encoded matrix {size.x}x{size.y}x{size.z}); only 2-D "
                               "multi-slice data are read")
    if enc.encodingLimits.kspace_encoding_step_1 is None:
        raise InputError(path, "the ISMRMRD XML header lacks encodingLimits/kspace_encoding_step_1 "
                               "(the phase-encoding centre)")
    return header


def read_mrd(path: PathLike) -> MRDVolume:
    """Read an MRD file's Cartesian 2-D multi-slice data into fastMRI's layout (InputError if not)."""
    import ismrmrd

    path = Path(path)
    try:
        with h5py.File(path, "r") as hf:
            missing = [k for k in ("xml", "data") if k not in hf["dataset"]]
    except (OSError, KeyError) as exc:
        raise InputError(path, f"not a readable ISMRMRD file: {exc}") from None
    if missing:
        what = {"xml": "an XML header (dataset/xml)", "data": "acquisitions (dataset/data)"}
        raise InputError(path, "ISMRMRD file without " + " or ".join(what[k] for k in missing))
    with ismrmrd.Dataset(str(path), "dataset", mode="r") as ds:
        xml = ds.read_xml_header()
        xml = xml if isinstance(xml, bytes) else str(xml).encode()
        header = _parse_header(xml, path)
        enc = header.encoding[0]
        H, W = enc.encodedSpace.matrixSize.x, enc.encodedSpace.matrixSize.y
        center = enc.encodingLimits.kspace_encoding_step_1.center
        lines: dict[tuple[int, int], list] = {}  # (slice, column) -> [sum, count], imaging
        calib_only: dict[tuple[int, int], np.ndarray] = {}
        calib_cols: set[int] = set()
        skipped: Counter = Counter()
        counters: dict[str, set] = {name: set() for name in SINGLE_COUNTERS}
        geometry: dict[int, tuple] = {}
        shape, center_sample = None, 0
        for i in range(ds.number_of_acquisitions()):
            acq = ds.read_acquisition(i)
            kind = next((name for bit, name in NON_IMAGING.items() if _flag(acq.flags, bit)), None)
            if kind:
                skipped[kind] += 1
                continue
            if acq.trajectory_dimensions:
                raise InputError(path, f"acquisition {i} carries a {acq.trajectory_dimensions}-D k-space trajectory "
                                       "(non-Cartesian); only Cartesian 2-D multi-slice data are read")
            idx = acq.idx
            if idx.kspace_encode_step_2:
                raise InputError(path, f"3-D acquisition (acquisition {i} has kspace_encode_step_2 = "
                                       f"{idx.kspace_encode_step_2}); only 2-D multi-slice data are read")
            if acq.encoding_space_ref:
                raise InputError(path, f"mixed matrix sizes: acquisition {i} uses encoding space "
                                       f"{acq.encoding_space_ref}, only the header's first is read")
            if shape is None:
                shape, center_sample = (acq.active_channels, acq.number_of_samples), acq.center_sample
            elif (acq.active_channels, acq.number_of_samples) != shape:
                raise InputError(path, f"mixed matrix sizes: acquisition {i} has {acq.active_channels} coils x "
                                       f"{acq.number_of_samples} readout samples, earlier ones {shape[0]} x {shape[1]}")
            for name in SINGLE_COUNTERS:
                counters[name].add(getattr(idx, name))
            col = idx.kspace_encode_step_1 - center + W // 2
            if not 0 <= col < W:
                raise InputError(path, f"line kspace_encode_step_1 = {idx.kspace_encode_step_1} lies outside the "
                                       f"encoded matrix ({W} lines, centre {center})")
            data = np.asarray(acq.data, dtype=np.complex64)
            key = (idx.slice, col)
            calibration = _flag(acq.flags, CALIBRATION) or _flag(acq.flags, CALIBRATION_AND_IMAGING)
            if calibration:
                calib_cols.add(col)
            if _flag(acq.flags, CALIBRATION) and not _flag(acq.flags, CALIBRATION_AND_IMAGING):
                calib_only.setdefault(key, data)  # a reference line: used where imaging lacks it
                continue
            if key in lines:
                lines[key][0] = lines[key][0] + data  # averages
                lines[key][1] += 1
            else:
                lines[key] = [data, 1]
                geometry.setdefault(idx.slice, (acq.position[:], acq.read_dir[:], acq.phase_dir[:],
                                                acq.slice_dir[:]))
    if not lines and not calib_only:
        if skipped:
            found = ", ".join(f"{n} {kind} acquisition(s)" for kind, n in skipped.items())
            raise InputError(path, f"holds no imaging data, only {found}")
        raise InputError(path, "holds no acquisitions")
    for name, values in counters.items():
        if len(values) > 1:
            raise InputError(path, f"holds {len(values)} values of the {name} counter ({sorted(values)}); one image "
                                   f"per slice is reconstructed: split the file by {name}")
    coils, samples = shape
    if samples > H:
        raise InputError(path, f"acquisitions have {samples} readout samples, more than the header's encoded "
                               f"matrix x = {H}")
    slices = sorted({s for s, _ in lines} | {s for s, _ in calib_only})
    row = {s: k for k, s in enumerate(slices)}
    kspace = np.zeros((len(slices), coils, H, W), dtype=np.complex64)
    top = 0 if samples == H else H // 2 - center_sample  # an asymmetric echo: centre sample at H // 2
    if not 0 <= top <= H - samples:
        raise InputError(path, f"the readout's centre sample {center_sample} of {samples} does not fit the "
                               f"encoded matrix x = {H}")
    for (s, col), data in calib_only.items():
        kspace[row[s], :, top:top + samples, col] = data
    for (s, col), (total, count) in lines.items():
        kspace[row[s], :, top:top + samples, col] = total if count == 1 else total / count
    mask = np.zeros(W, dtype=bool)
    mask[[c for _, c in lines] + [c for _, c in calib_only]] = True
    limits = enc.encodingLimits.kspace_encoding_step_1
    left = W // 2 - center  # fastMRI's padding_left / padding_right
    window = mask[max(0, left):min(W, left + limits.maximum + 1)]
    calib = np.zeros(W, dtype=bool)
    calib[sorted(calib_cols)] = True
    attrs = {"acquisition": (header.measurementInformation.protocolName or "")
             if header.measurementInformation else "", "calibration_lines": int(calib.sum())}
    if geometry:  # slice centres and directions (patient coordinates, mm) for the viewer formats
        first = geometry[min(geometry)]
        attrs["mrd_positions"] = np.asarray([geometry.get(s, first)[0] for s in slices], dtype=np.float64)
        for k, name in enumerate(("read_dir", "phase_dir", "slice_dir"), start=1):
            attrs[f"mrd_{name}"] = np.asarray(first[k], dtype=np.float64)
    return MRDVolume(kspace, mask, calib, xml, bool(window.all()), attrs)


def write_fastmri_layout(volume: MRDVolume, dst: PathLike) -> Path:
    """Write ``volume`` as a fastMRI-layout h5 (atomically)."""
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        with h5py.File(tmp, "w") as hf:
            hf.create_dataset("kspace", data=volume.kspace)
            hf.create_dataset("ismrmrd_header", data=np.bytes_(volume.header_xml))
            if not volume.fully_sampled:  # fastMRI's test-file layout: reconstructed from its own lines
                hf.create_dataset("mask", data=volume.mask)
            hf.attrs.update(volume.attrs)
    return dst


_CACHE: dict[tuple, Path] = {}
_CACHE_DIR: list[Path] = []


def fastmri_layout(path: PathLike) -> Path:
    """``path`` itself, or for an MRD file its fastMRI-layout twin (same name, converted once per
    process and file version into a temporary directory removed at exit)."""
    path = Path(path)
    if not is_mrd(path):  # by content: an MRD file may be named .h5 or .mrd
        return path
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE or not _CACHE[key].exists():
        if not _CACHE_DIR:
            _CACHE_DIR.append(Path(tempfile.mkdtemp(prefix="fastmri-untrained-mrd-")))
            atexit.register(shutil.rmtree, _CACHE_DIR[0], True)
        sub = _CACHE_DIR[0] / hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        sub.mkdir(exist_ok=True)
        _CACHE[key] = write_fastmri_layout(read_mrd(path), sub / path.name)  # the name seeds the masks
    return _CACHE[key]


# --------------------------------------------------------------------------- writing MRD


def write_mrd(src: PathLike, dst: PathLike, mask: Optional[np.ndarray] = None,
              calibration: Optional[np.ndarray] = None, separate_calibration: bool = False,
              noise_scan: bool = True) -> Path:
    """Write a fastMRI multi-coil file ``src`` as an MRD file ``dst`` with the ``ismrmrd`` package's writer.

    mask: (W,) lines to write (None: all, fully sampled). calibration: (W,) lines flagged as
    parallel-imaging calibration: ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING, or, with
    ``separate_calibration``, written a second time as ACQ_IS_PARALLEL_CALIBRATION only (a
    separate reference scan). ``noise_scan`` adds one noise measurement first, as scanners do.
    Slices lie 1 thickness apart along z, read along y, phase along x (an axial stack).
    """
    import ismrmrd
    import ismrmrd.xsd

    with h5py.File(src, "r") as hf:
        kspace = hf["kspace"][()]
        header = ismrmrd.xsd.CreateFromDocument(hf["ismrmrd_header"][()])
    if kspace.ndim != 4:
        raise ValueError(f"{src}: write_mrd takes multi-coil (slices, coils, H, W) k-space, got {kspace.shape}")
    S, C, H, W = kspace.shape
    enc = header.encoding[0]
    center = enc.encodingLimits.kspace_encoding_step_1.center
    thickness = float(enc.reconSpace.fieldOfView_mm.z)
    mask = np.ones(W, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    calibration = np.zeros(W, dtype=bool) if calibration is None else np.asarray(calibration, bool).reshape(-1)
    rng = np.random.default_rng(0)
    with atomic_path(dst) as tmp:
        with ismrmrd.Dataset(str(tmp), "dataset", mode="w") as ds:
            ds.write_xml_header(ismrmrd.xsd.ToXML(header).encode())
            if noise_scan:
                noise = (rng.standard_normal((C, H)) + 1j * rng.standard_normal((C, H))).astype(np.complex64)
                acq = ismrmrd.Acquisition.from_array(noise * np.abs(kspace).mean(), center_sample=H // 2)
                acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
                ds.append_acquisition(acq)
            for s in range(S):
                position = (0.0, 0.0, (s - (S - 1) / 2) * thickness)
                cols = [c for c in range(W) if mask[c]]
                extra = [c for c in range(W) if separate_calibration and calibration[c]]
                entries = [(c, False) for c in cols] + [(c, True) for c in extra]
                for n, (c, reference) in enumerate(entries):
                    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[s, :, :, c]), center_sample=H // 2)
                    acq.idx.kspace_encode_step_1 = c - W // 2 + center
                    acq.idx.slice = s
                    acq.position[:] = position
                    acq.read_dir[:] = (0.0, 1.0, 0.0)
                    acq.phase_dir[:] = (1.0, 0.0, 0.0)
                    acq.slice_dir[:] = (0.0, 0.0, 1.0)
                    if reference:
                        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION)
                    elif calibration[c] and not separate_calibration:
                        acq.set_flag(ismrmrd.ACQ_IS_PARALLEL_CALIBRATION_AND_IMAGING)
                    if n == 0:
                        acq.set_flag(ismrmrd.ACQ_FIRST_IN_SLICE)
                    if n == len(entries) - 1:
                        acq.set_flag(ismrmrd.ACQ_LAST_IN_SLICE)
                        if s == S - 1:
                            acq.set_flag(ismrmrd.ACQ_LAST_IN_MEASUREMENT)
                    ds.append_acquisition(acq)
    return Path(dst)


def center_lines(mask: np.ndarray) -> np.ndarray:
    """(W,) bool: the contiguous run of sampled lines around the centre W // 2 (the calibration region)."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    out = np.zeros_like(mask)
    out[center_run(mask)] = True
    return out
