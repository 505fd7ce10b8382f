"""Readers for real k-space outside fastMRI files, and validation of k-space inputs.

- BART's ``.cfl``/``.hdr`` pairs (``read_cfl``/``write_cfl``, the same layout as BART's own
  ``python/cfl.py``: complex64 data in column-major order, dimensions in the header);
- numpy ``.npy`` arrays (``read_npy_kspace``);
- ``load_kspace``: either, as a C-order (coils, H, W) complex64 array;
- the sampling mask of undersampled k-space (its fully sampled centre: ``operators.masks``);
- checks on fastMRI HDF5 files and on arrays that raise ``InputError`` naming the file and the
  problem, instead of an h5py/numpy traceback deep inside a reconstruction.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as etree
from pathlib import Path
from typing import NamedTuple, Sequence, Union

import h5py
import numpy as np

from ..errors import InputError
from ..files import atomic_path

PathLike = Union[str, os.PathLike]

KSPACE_NDIM = {"multicoil": 4, "singlecoil": 3}  # (slices, [coils,] H, W) in fastMRI files
TARGET_KEYS = {"multicoil": "reconstruction_rss", "singlecoil": "reconstruction_esc"}  # ground truth per challenge
MAX_CFL_ELEMENTS = 2**32  # 32 GiB of complex64: a header asking for more is refused, not allocated


def read_slice_sources(hf: h5py.File) -> "list[str] | None":
    """The source of each slice of an open simulated file (its ``slice_sources`` attribute), or
    None for a file without one (real data, older simulations)."""
    if "slice_sources" not in hf.attrs:
        return None
    return [s.decode() if isinstance(s, bytes) else str(s) for s in hf.attrs["slice_sources"]]


# --------------------------------------------------------------------------- BART cfl/hdr


def _cfl_base(path: PathLike) -> Path:
    """``x``, ``x.cfl`` or ``x.hdr`` -> ``x`` (BART names a pair by its common stem)."""
    p = Path(path)
    return p.with_suffix("") if p.suffix.lower() in (".cfl", ".hdr") else p


def _cfl_pair(base: Path) -> tuple[Path, Path]:
    """(``base.hdr``, ``base.cfl``): appended, since with_suffix would replace ``.v2`` in ``brain.v2``."""
    return base.with_name(base.name + ".hdr"), base.with_name(base.name + ".cfl")


def read_cfl(path: PathLike) -> np.ndarray:
    """Read a BART ``.cfl``/``.hdr`` pair; ``path`` may have either extension or none.

    Returns the array in BART's own convention, like BART's ``readcfl``: the numpy shape is
    BART's dimension list (trailing singleton dimensions dropped) and the data are laid out
    column-major, so the shared ``1 180 230 8`` file reads as shape (1, 180, 230, 8).
    ``load_kspace`` turns that into a C-order (coils, H, W) array.
    """
    hdr, cfl = _cfl_pair(_cfl_base(path))
    for f in (hdr, cfl):
        if not f.is_file():
            raise InputError(f, "file not found (a BART pair needs both .hdr and .cfl)")
    try:
        lines = hdr.read_text().splitlines()
        i = [l.strip() for l in lines].index("# Dimensions")
        dims = [int(d) for d in lines[i + 1].split()]
    except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise InputError(hdr, f"not a BART header (no '# Dimensions' line of integers): {e}")
    if not dims or any(d < 1 for d in dims):
        raise InputError(hdr, f"invalid dimensions {dims}")
    n = math.prod(dims)  # Python ints: np.prod would overflow silently
    if n >= MAX_CFL_ELEMENTS:
        raise InputError(hdr, f"dimensions {dims} give {n} elements, 2^32 or more: refused (too large to read)")
    expected = n * np.dtype(np.complex64).itemsize
    actual = cfl.stat().st_size
    if actual != expected:
        raise InputError(
            cfl,
            f"size {actual} bytes does not match the header's dimensions {dims} "
            f"({expected} bytes of complex64): truncated or mismatched pair",
        )
    # Keep dimensions up to the last non-singleton one, as BART's readcfl does.
    last = max([k for k, d in enumerate(dims) if d > 1], default=0)
    data = np.fromfile(cfl, dtype=np.complex64, count=n)
    return data.reshape(dims[: last + 1], order="F")


def write_cfl(path: PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as a BART ``.cfl``/``.hdr`` pair (``path`` with or without extension).

    The numpy shape becomes BART's dimension list and the data are written column-major, so
    ``read_cfl(write_cfl(p, a))`` equals ``a`` (up to trailing singleton dimensions). Both
    files are written atomically. Returns the common stem.
    """
    base = _cfl_base(path)
    a = np.asarray(array)
    if a.ndim == 0:
        a = a.reshape(1)
    a = a.astype(np.complex64, copy=False)
    hdr, cfl = _cfl_pair(base)
    with atomic_path(cfl) as tmp:
        # Fortran order: tofile always writes C order, so write the transpose's C order.
        np.ascontiguousarray(a.T).tofile(tmp)
    with atomic_path(hdr) as tmp:
        tmp.write_text("# Dimensions\n" + " ".join(str(d) for d in a.shape) + " \n")
    return base


# --------------------------------------------------------------------------- numpy, dispatch


def read_npy_kspace(path: PathLike) -> np.ndarray:
    """Read complex k-space from a ``.npy`` file as complex64.

    Also accepts fastMRI's real layout (a float array whose last dimension is 2 holding
    real and imaginary parts).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(path, f"not a readable .npy array: {e}")
    if np.iscomplexobj(a):
        return a.astype(np.complex64, copy=False)
    if np.issubdtype(a.dtype, np.floating) and a.ndim >= 1 and a.shape[-1] == 2:
        return (a[..., 0] + 1j * a[..., 1]).astype(np.complex64)
    raise InputError(path, f"k-space must be complex, got dtype {a.dtype} shape {a.shape}")


def load_kspace(path: PathLike) -> np.ndarray:
    """Load multi-coil k-space from ``.cfl``/``.hdr`` (BART) or ``.npy`` as (coils, H, W).

    BART arrays are turned to C order (dimensions reversed) and singleton dimensions are
    squeezed: the shared BART file (dims ``1 180 230 8``) and the shared SigPy ``.npy`` both
    give (8, 230, 180). A 2-D array is returned as one coil, (1, H, W). The result is checked
    with ``check_kspace_array`` (rank, finite, not all zero).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".cfl", ".hdr") or (suffix != ".npy" and _cfl_pair(path)[1].is_file()):
        k = read_cfl(path).T  # column-major BART dims -> C-order numpy axes
        source = _cfl_pair(_cfl_base(path))[1]
    elif suffix == ".npy":
        k = read_npy_kspace(path)
        source = path
    else:
        raise InputError(path, f"unsupported k-space file type {suffix!r} (use .cfl/.hdr or .npy)")
    k = np.squeeze(k)
    if k.ndim == 2:
        k = k[None]
    check_kspace_array(k, source, ndim=3)
    return np.ascontiguousarray(k, dtype=np.complex64)


# --------------------------------------------------------------------------- masks


def sampling_mask_from_kspace(kspace: np.ndarray) -> np.ndarray:
    """Boolean (H, W) mask of the sampled locations: non-zero in any coil.

    ``kspace`` is (coils, H, W) or (H, W); unsampled locations are exact zeros, as in
    retrospectively undersampled files.
    """
    k = np.asarray(kspace)
    nz = k != 0
    return nz.any(axis=tuple(range(k.ndim - 2))) if k.ndim > 2 else nz


# --------------------------------------------------------------------------- validation


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_kspace_array(kspace, source, ndim: Union[int, Sequence[int]] = (2, 3)) -> None:
    """Check a k-space array (numpy or torch); raise ``InputError(source, ...)`` if unusable.

    Checks: complex dtype, rank in ``ndim`` ((H, W) or (coils, H, W) by default), all values
    finite, and not all zero (a mask that samples nothing).
    """
    k = _to_numpy(kspace)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if not np.iscomplexobj(k):
        raise InputError(source, f"k-space must be complex, got dtype {k.dtype}")
    if k.ndim not in allowed:
        raise InputError(
            source, f"k-space has rank {k.ndim} (shape {k.shape}), expected rank {allowed}"
        )
    if k.size == 0:
        raise InputError(source, f"k-space is empty (shape {k.shape})")
    finite = np.isfinite(k)
    if not finite.all():
        raise InputError(
            source, f"k-space has {int((~finite).sum())} non-finite (NaN/inf) values"
        )
    if not np.any(k):
        raise InputError(source, "k-space is all zero (the sampling mask samples nothing)")
    peak = float(np.abs(k).max())
    low, high = kspace_range(k.size)
    if not low <= peak <= high:
        raise InputError(source, f"k-space magnitudes peak at {peak:.3g}, outside the range the float32 "
                                 f"reconstruction computes with ({low:.1e} to {high:.1e}); rescale the data")


F32 = np.finfo(np.float32)


def kspace_range(size: int) -> tuple[float, float]:
    """The peak magnitudes a k-space array of ``size`` values may have, for float32 work:
    below ``high`` the sum of its squared magnitudes (norms, losses, RSS) stays finite, with a
    16x margin; above ``low`` the square of its peak stays a normal float32 number, 1e6 times
    above the smallest (1.2e-38)."""
    high = float(np.sqrt(F32.max / (16 * max(size, 1))))
    low = float(np.sqrt(F32.tiny * 1e6))
    return low, high


def check_maps_match(maps, kspace, source) -> None:
    """Check that sensitivity maps fit k-space: the same (coils, H, W) shape, finite values.

    Raises ``InputError(source, ...)`` otherwise.
    """
    m, k = _to_numpy(maps), _to_numpy(kspace)
    if m.shape != k.shape:
        raise InputError(
            source,
            f"sensitivity maps of shape {m.shape} do not match k-space of shape {k.shape} "
            "(expected the same (coils, H, W))",
        )
    if not np.isfinite(m).all():
        raise InputError(source, "sensitivity maps have non-finite (NaN/inf) values")


class FastMRIFileInfo(NamedTuple):
    """What ``validate_fastmri_file`` found in a valid file."""

    path: Path
    challenge: str
    num_slices: int
    kspace_shape: tuple
    encoding_size: tuple
    recon_size: tuple


def _header_sizes(hf: h5py.File, path: Path):
    if "ismrmrd_header" not in hf:
        raise InputError(path, "missing 'ismrmrd_header' (fastMRI's SliceDataset needs it)")
    from fastmri.data.mri_data import et_query

    try:
        root = etree.fromstring(hf["ismrmrd_header"][()])
        sizes = []
        for space in ("encodedSpace", "reconSpace"):
            q = ["encoding", space, "matrixSize"]
            sizes.append(tuple(int(et_query(root, q + [a])) for a in "xyz"))
        lims = ["encoding", "encodingLimits", "kspace_encoding_step_1"]
        int(et_query(root, lims + ["center"]))
        int(et_query(root, lims + ["maximum"]))
    except (etree.ParseError, RuntimeError, ValueError, TypeError) as e:
        raise InputError(path, f"unusable 'ismrmrd_header' (sizes/limits not parsable): {e}")
    return sizes[0], sizes[1]


def validate_fastmri_file(path: PathLike, challenge: str = "multicoil") -> FastMRIFileInfo:
    """Open a fastMRI HDF5 file and check it can be reconstructed, slice by slice.

    An ISMRMRD raw data file (``dataset/xml`` + ``dataset/data``) is read into fastMRI's layout
    (:func:`data.mrd.fastmri_layout`) and checked as such; its own problems (non-Cartesian, 3-D,
    no imaging data, ...) are InputErrors too.

    Raises ``InputError`` naming the file and the problem for: a missing, truncated or
    non-HDF5 file (h5py's OSError), a missing ``kspace`` dataset, a wrong rank for
    ``challenge`` ((slices, coils, H, W) multicoil, (slices, H, W) singlecoil), a non-complex
    dtype, non-finite values, an all-zero slice, and a missing or unparsable
    ``ismrmrd_header``. Slices are read one at a time, so large files are never loaded whole.
    """
    if challenge not in KSPACE_NDIM:
        raise ValueError(f"challenge must be 'multicoil' or 'singlecoil', got {challenge!r}")
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    from .mrd import fastmri_layout, is_mrd

    if is_mrd(path):  # ISMRMRD raw data: checked as its fastMRI-layout twin, errors name the MRD file
        if challenge != "multicoil":
            raise InputError(path, "an ISMRMRD file reads as multi-coil (slices, coils, H, W) k-space; "
                                   "use --challenge multicoil")
        try:
            return validate_fastmri_file(fastmri_layout(path), challenge)._replace(path=path)
        except InputError as e:
            raise InputError(path, e.problem) from None
    try:
        with h5py.File(path, "r") as hf:
            if "kspace" not in hf:
                raise InputError(path, f"no 'kspace' dataset (keys: {sorted(hf.keys())})")
            ds = hf["kspace"]
            if not isinstance(ds, h5py.Dataset):
                raise InputError(path, "'kspace' is not a dataset")
            want = KSPACE_NDIM[challenge]
            if ds.ndim != want:
                layout = "(slices, coils, H, W)" if challenge == "multicoil" else "(slices, H, W)"
                raise InputError(
                    path,
                    f"'kspace' has rank {ds.ndim} (shape {ds.shape}); {challenge} "
                    f"needs rank {want} {layout}",
                )
            if ds.dtype.kind != "c":
                raise InputError(path, f"'kspace' must be complex, got dtype {ds.dtype}")
            enc, rec = _header_sizes(hf, path)
            if ds.shape[0] == 0:
                raise InputError(path, "has no slices ('kspace' holds 0)")
            if rec[0] > ds.shape[-2]:
                raise InputError(path, f"the header's reconSpace is {rec[0]} rows high, more than the k-space's "
                                       f"{ds.shape[-2]} readout rows")
            for s in range(ds.shape[0]):
                try:
                    check_kspace_array(ds[s], path, ndim=want - 1)
                except InputError as e:
                    raise InputError(path, f"slice {s}: {e.problem}") from None
            return FastMRIFileInfo(path, challenge, ds.shape[0], tuple(ds.shape), enc, rec)
    except InputError:
        raise
    except (OSError, KeyError, RuntimeError) as e:
        # h5py raises OSError for truncated/corrupt/non-HDF5 files, also mid-read.
        raise InputError(path, f"not a readable HDF5 file (truncated or corrupt?): {e}") from e
