"""Real MR magnitude images for ground truth, from data bundled with an installed package.

Geometric phantoms are too easy for un-trained networks (piecewise constant, no texture), so
simulations use real brain slices. They come from the ``dipy`` wheel only (never from a local
data folder), so the package works anywhere ``dipy`` is installed:

- ``t1_coronal_slice.npy``: one 256x256 T1-weighted coronal slice, float64 in [0, 1];
- ``S0_10slices.nii.gz``: ten 128x128 axial slices of a b0 (T2-weighted) brain volume.

Contiguous slabs (volumes of neighbouring slices, :func:`mr_images` with ``contiguous``) come
from two 3-D sources (:data:`SLAB_SOURCES`): dipy's b0 volume, and the MNI152 2009 T1 template
that the ``nilearn`` wheel bundles (197x233x189 at 1 mm; axial slices 3 mm apart, a clinical
slice spacing). Neither is among the single-slice sources' T1 slice, and the MNI template is
never drawn for unrelated-slice volumes: a split that uses it shares no image with one that
does not.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np
from skimage.transform import resize, rotate


class MRSlice(NamedTuple):
    """One source slice: a name for provenance and its magnitude, scaled to [0, 1]."""

    name: str
    image: np.ndarray


def _dipy_files() -> Path:
    try:
        import dipy
    except ImportError as e:  # an optional dependency: say how to get it
        raise ImportError(
            "real MR ground-truth images need dipy (pip install 'fastmri_untrained[data]')"
        ) from e
    return Path(dipy.__file__).parent / "data" / "files"


@functools.lru_cache(maxsize=1)
def _load_sources() -> tuple[MRSlice, ...]:
    import nibabel as nib

    files = _dipy_files()
    t1 = np.load(files / "t1_coronal_slice.npy").astype(np.float64)
    out = [MRSlice("dipy:t1_coronal_slice", t1 / t1.max())]

    vol = np.asarray(nib.load(files / "S0_10slices.nii.gz").dataobj, dtype=np.float64)
    vol = vol.reshape(vol.shape[:3])
    for z in range(vol.shape[2]):
        # NIfTI is (x, y) with y pointing anterior: transpose and flip so anterior is up.
        s = np.flipud(vol[:, :, z].T)
        # A few CSF/vessel voxels saturate at 4095; scale by a high percentile and clip so
        # that one voxel does not set the contrast of the whole slice.
        s = np.clip(s / np.percentile(s, 99.5), 0.0, 1.0)
        out.append(MRSlice(f"dipy:S0_10slices[{z}]", s))
    return tuple(out)


def source_slices() -> list[MRSlice]:
    """All distinct bundled MR slices (11: one T1 coronal, ten b0 axial), each in [0, 1]."""
    return [MRSlice(s.name, s.image.copy()) for s in _load_sources()]


def fit_to_size(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize ``image`` to fit inside ``size`` keeping its aspect ratio, zero-padding the rest.

    Uses skimage's anti-aliased resize, so downscaling does not alias.
    """
    h, w = int(size[0]), int(size[1])
    scale = min(h / image.shape[0], w / image.shape[1])
    nh = max(1, min(h, round(image.shape[0] * scale)))
    nw = max(1, min(w, round(image.shape[1] * scale)))
    small = resize(image, (nh, nw), order=1, anti_aliasing=scale < 1, preserve_range=True)
    out = np.zeros((h, w), dtype=np.float64)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[top : top + nh, left : left + nw] = small
    return out


def _draw_augmentation(rng: np.random.Generator, max_shift: float, max_angle: float) -> tuple:
    """(flip, angle in degrees, (dy, dx) as fractions of the size): one random pose."""
    flip = bool(rng.random() < 0.5)
    angle = rng.uniform(-max_angle, max_angle)
    shift = tuple(rng.uniform(-max_shift, max_shift) for _ in range(2))
    return flip, angle, shift


def _apply_augmentation(image: np.ndarray, pose: tuple) -> np.ndarray:
    flip, angle, shift = pose
    if flip:
        image = image[:, ::-1]
    if angle:
        image = rotate(image, angle, order=1, mode="constant", cval=0.0, preserve_range=True)
    # Integer shifts with zero fill (not np.roll): nothing wraps across the border.
    h, w = image.shape
    dy, dx = (int(round(f * n)) for f, n in zip(shift, (h, w)))
    out = np.zeros_like(image)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = image[ys, xs]
    return out


def _augment(image: np.ndarray, rng: np.random.Generator, max_shift: float, max_angle: float):
    return _apply_augmentation(image, _draw_augmentation(rng, max_shift, max_angle))


def _finish(image: np.ndarray) -> np.ndarray:
    image = np.clip(image, 0.0, None)
    return image / max(image.max(), 1e-12)


#: The 3-D sources of contiguous slabs -> their number of slices: dipy's b0 volume (indices 1..10
#: of :func:`source_slices`, in slice order) and the MNI152 T1 template's axial slices 40, 43,
#: ..., 127 (every 3 mm through the brain; needs nilearn).
SLAB_SOURCES = {"dipy:S0_10slices": 10, "mni152:T1": 30}
SLAB_SOURCE = "dipy:S0_10slices"  # the default
MNI_SLICES = range(40, 130, 3)


@functools.lru_cache(maxsize=1)
def _mni_slices() -> tuple[MRSlice, ...]:
    import importlib.util

    import nibabel as nib

    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:  # an optional dependency: say how to get it
        raise ImportError("the mni152:T1 source needs nilearn (pip install 'fastmri_untrained[data]')")
    path = Path(spec.origin).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    volume = np.asarray(nib.load(path).dataobj, dtype=np.float64)  # RAS: (x, y, z)
    out = []
    for z in MNI_SLICES:
        s = np.flipud(volume[:, :, z].T)  # anterior up, as the dipy slices
        out.append(MRSlice(f"mni152:T1[{z}]", np.clip(s / np.percentile(s, 99.5), 0.0, 1.0)))
    return tuple(out)


def slab_slices(source: str) -> list[MRSlice]:
    """The slices of a 3-D source of :data:`SLAB_SOURCES`, in order."""
    if source not in SLAB_SOURCES:
        raise ValueError(f"unknown slab source {source!r}; choose from {', '.join(SLAB_SOURCES)}")
    if source == "mni152:T1":
        return list(_mni_slices())
    return [s for s in _load_sources() if s.name.startswith(source + "[")]


def mr_images(
    num: int,
    size: Sequence[int] = (320, 320),
    seed: int | Sequence[int] = 0,
    augment: bool = True,
    max_shift: float = 0.05,
    max_angle: float = 8.0,
    sources: Optional[Sequence[int]] = None,
    return_sources: bool = False,
    contiguous: bool = False,
    slab_source: str = SLAB_SOURCE,
    slab_start: Optional[int] = None,
) -> np.ndarray | tuple[np.ndarray, list[str]]:
    """A stack of real MR magnitude images, deterministic under ``seed``.

    Source slices are drawn without replacement in a seeded random order (so the first 11
    images of a stack are distinct slices; longer stacks reuse slices with fresh
    augmentations). Each is fitted to ``size`` (aspect kept, anti-aliased, zero-padded) and,
    if ``augment``, randomly flipped left-right, rotated by up to ``max_angle`` degrees and
    shifted by up to ``max_shift`` of the size, so different seeds give different volumes.

    Args:
        num: number of images.
        size: (height, width) of each image.
        seed: an int or a sequence of ints (e.g. ``(seed, volume_index)``) for numpy's
            ``default_rng``.
        augment: apply the random flip/rotation/shift.
        sources: indices into :func:`source_slices` to draw from (default: all). Disjoint
            sets keep a training split from ever seeing a test image.
        return_sources: also return the source name of each image.
        contiguous: ``num`` contiguous slices of the 3-D source ``slab_source`` (one of
            :data:`SLAB_SOURCES`) from a seeded start, with one random pose for the whole slab,
            so neighbouring images differ as neighbouring slices of one scan do (``sources``
            must be None).
        slab_start: with ``contiguous``, the slab's first slice (an index into
            :func:`slab_slices`); None draws it from ``seed``. Fixed starts keep the slabs of
            different splits apart.

    Returns:
        float32 array of shape (num, height, width), each image with maximum 1 (and, with
        ``return_sources``, the list of source names).
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if contiguous:
        if sources is not None:
            raise ValueError(f"sources does not apply to contiguous slabs (of {slab_source}); leave it None")
        return _slab(slab_slices(slab_source), num, size, seed, augment, max_shift, max_angle, return_sources,
                     slab_start)
    if slab_start is not None:
        raise ValueError("slab_start applies to contiguous slabs only (contiguous=True)")
    all_sources = _load_sources()
    pool = list(range(len(all_sources))) if sources is None else [int(i) for i in sources]
    if not pool or any(not 0 <= i < len(all_sources) for i in pool):
        raise ValueError(f"sources must be indices in [0, {len(all_sources)}), got {sources}")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < num:
        order.extend(pool[i] for i in rng.permutation(len(pool)))
    out = np.empty((num, int(size[0]), int(size[1])), dtype=np.float32)
    for i, j in enumerate(order[:num]):
        img = fit_to_size(all_sources[j].image, size)
        if augment:
            img = _augment(img, rng, max_shift, max_angle)
        out[i] = _finish(img)
    return (out, [all_sources[j].name for j in order[:num]]) if return_sources else out


def _slab(slabs, num, size, seed, augment, max_shift, max_angle, return_sources, slab_start=None):
    if num > len(slabs):
        raise ValueError(f"num (slices) must be <= {len(slabs)} for a contiguous slab of "
                         f"{slabs[0].name.split('[')[0]}, got {num}")
    rng = np.random.default_rng(seed)
    start = int(rng.integers(0, len(slabs) - num + 1))  # drawn always: a fixed start keeps the pose of the seed
    if slab_start is not None:
        if not 0 <= slab_start <= len(slabs) - num:
            raise ValueError(f"slab_start must be in [0, {len(slabs) - num}] for {num} slices of "
                             f"{slabs[0].name.split('[')[0]}, got {slab_start}")
        start = int(slab_start)
    pose = _draw_augmentation(rng, max_shift, max_angle) if augment else None
    out = np.empty((num, int(size[0]), int(size[1])), dtype=np.float32)
    for i in range(num):
        img = fit_to_size(slabs[start + i].image, size)
        out[i] = _finish(_apply_augmentation(img, pose) if augment else img)
    names = [slabs[start + i].name for i in range(num)]
    return (out, names) if return_sources else out
