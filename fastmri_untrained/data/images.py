"""Real MR magnitude images for ground truth, from data bundled with an installed package.

Geometric phantoms are too easy for un-trained networks (piecewise constant, no texture), so
simulations use real brain slices. They come from the ``dipy`` wheel only (never from a local
data folder), so the package works anywhere ``dipy`` is installed:

- ``t1_coronal_slice.npy``: one 256x256 T1-weighted coronal slice, float64 in [0, 1];
- ``S0_10slices.nii.gz``: ten 128x128 axial slices of a b0 (T2-weighted) brain volume.
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


def _augment(image: np.ndarray, rng: np.random.Generator, max_shift: float, max_angle: float):
    if rng.random() < 0.5:
        image = image[:, ::-1]
    angle = rng.uniform(-max_angle, max_angle)
    if angle:
        image = rotate(image, angle, order=1, mode="constant", cval=0.0, preserve_range=True)
    # Integer shifts with zero fill (not np.roll): nothing wraps across the border.
    h, w = image.shape
    dy, dx = (int(round(rng.uniform(-max_shift, max_shift) * n)) for n in (h, w))
    out = np.zeros_like(image)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = image[ys, xs]
    return out


def mr_images(
    num: int,
    size: Sequence[int] = (320, 320),
    seed: int | Sequence[int] = 0,
    augment: bool = True,
    max_shift: float = 0.05,
    max_angle: float = 8.0,
    sources: Optional[Sequence[int]] = None,
) -> np.ndarray:
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

    Returns:
        float32 array of shape (num, height, width), each image with maximum 1.
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
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
        img = np.clip(img, 0.0, None)
        out[i] = img / max(img.max(), 1e-12)
    return out
