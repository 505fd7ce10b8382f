"""Sampling masks: fastMRI's Cartesian mask functions and SigPy's 2-D Poisson-disk masks."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from fastmri.data.subsample import create_mask_for_mask_type

from ..errors import InputError

FASTMRI_MASK_TYPES = ("random", "equispaced", "equispaced_fraction", "magic", "magic_fraction")
MASK_TYPES = FASTMRI_MASK_TYPES + ("poisson",)


def check_mask_args(mask_type: str, accelerations: Sequence[float], center_fractions: Sequence[float]):
    """Validate mask arguments before any work; raises InputError (a ValueError) naming the
    bad argument by its parameter name (``mask_type``, ``accelerations``, ``center_fractions``)."""
    if mask_type not in MASK_TYPES:
        raise InputError("mask_type", f"unknown mask type {mask_type!r}; choose from {', '.join(MASK_TYPES)}")
    if not accelerations:
        raise InputError("accelerations", "at least one acceleration is needed")
    for a in accelerations:
        if not (a >= 1 and math.isfinite(a)):
            raise InputError("accelerations", f"acceleration must be a finite number >= 1, got {a}")
    if len(center_fractions) != len(accelerations):
        raise InputError("center_fractions", "give one centre fraction per acceleration")
    for a, c in zip(accelerations, center_fractions):
        if not 0 < c < 1:
            raise InputError("center_fractions", f"centre fraction must be in (0, 1), got {c}")
        # The centre alone must leave lines to sample: fastMRI's mask functions divide by
        # (1/acceleration - centre fraction) or its like.
        if mask_type != "poisson" and a > 1 and not c * a < 1:
            raise InputError("center_fractions", f"centre fraction {c} at {a:g}x samples more than 1/{a:g} of "
                                                 f"the lines in the centre alone; use less than {1 / a:.3g}")


def check_column_mask(mask_type: str, width: int, acceleration: float, center_fraction: float) -> torch.Tensor:
    """The column mask for ``width`` phase-encoding lines (seed 0), or an InputError naming the
    parameter (``acceleration``) when fastMRI's mask function cannot make one that samples something."""
    check_mask_args(mask_type, [acceleration], [center_fraction])
    try:
        mask = column_mask(mask_type, (2, width), acceleration, center_fraction)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        raise InputError("acceleration", f"{mask_type} mask at {acceleration:g}x with centre fraction "
                                         f"{center_fraction} cannot be made for {width} lines ({exc})") from None
    if not bool(mask.any()):
        raise InputError("acceleration", f"{mask_type} mask at {acceleration:g}x with centre fraction "
                                         f"{center_fraction} samples none of {width} lines")
    return mask


def fastmri_mask_func(mask_type: str, accelerations: Sequence[float], center_fractions: Sequence[float]):
    """fastMRI's mask function (``fastmri.data.subsample``) for ``SliceDataset`` transforms,
    with its arguments checked first (ValueError naming the parameter).

    Args:
        mask_type: a fastMRI column mask type, e.g. "equispaced_fraction" or "random".
        accelerations: undersampling factors (one is drawn per mask).
        center_fractions: fully sampled centre fraction for each acceleration.
    """
    check_mask_args(mask_type, accelerations, center_fractions)
    if mask_type == "poisson":
        raise ValueError("poisson masks are 2-D; use poisson_mask, not a fastMRI column mask function")
    return create_mask_for_mask_type(mask_type, list(center_fractions), list(accelerations))


def column_mask(mask_type: str, shape: tuple[int, int], acceleration: float, center_fraction: float,
                seed: int = 0) -> torch.Tensor:
    """A fastMRI column mask of shape (1, W) (broadcasts over readout) for k-space (H, W)."""
    func = fastmri_mask_func(mask_type, [acceleration], [center_fraction])
    mask, _ = func((1, shape[0], shape[1], 1), seed=seed)
    return mask.reshape(1, shape[1]).float()


def poisson_mask(shape: tuple[int, int], acceleration: float, calib: int = 24, seed: int = 0) -> torch.Tensor:
    """2-D variable-density Poisson-disk mask (H, W) from sigpy.mri.poisson."""
    import sigpy.mri

    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    mask = sigpy.mri.poisson(tuple(shape), acceleration, calib=(calib, calib), seed=seed, dtype=np.float32)
    return torch.from_numpy(np.real(mask).astype(np.float32))


def make_mask(mask_type: str, shape: tuple[int, int], acceleration: float, center_fraction: float,
              seed: int = 0) -> torch.Tensor:
    """Mask for k-space of shape (H, W): (1, W) for fastMRI types, (H, W) for ``poisson``."""
    if mask_type == "poisson":
        return poisson_mask(shape, acceleration, calib=max(2, round(center_fraction * shape[1])), seed=seed)
    return column_mask(mask_type, shape, acceleration, center_fraction, seed)


def center_run(lines) -> slice:
    """The contiguous run of sampled entries through the centre ``n // 2`` of a 1-D mask (empty
    when the centre is not sampled): the fully sampled centre of fastMRI's column masks. The one
    detector of it, for ESPIRiT's calibration width and for MRD's calibration flags."""
    lines = np.asarray(lines, dtype=bool).reshape(-1)
    c = lines.size // 2
    if not lines[c]:
        return slice(c, c)
    lo, hi = c, c + 1
    while lo > 0 and lines[lo - 1]:
        lo -= 1
    while hi < lines.size and lines[hi]:
        hi += 1
    return slice(lo, hi)


def num_center_lines(mask: torch.Tensor) -> int:
    """Width of the fully sampled centre block of a column (or 2-D) mask, along W."""
    mask = torch.as_tensor(mask)
    run = center_run(mask.reshape(-1, mask.shape[-1]).bool().all(0).cpu().numpy())
    return run.stop - run.start


def calibration_width(mask: torch.Tensor) -> int:
    """Side of the largest fully sampled centred square of a mask (ESPIRiT's calib_width).

    For a column mask every readout row is sampled, so it is the number of centre lines; for a
    2-D mask the centred square must be sampled everywhere.
    """
    mask = torch.as_tensor(mask).bool()
    if mask.ndim == 1 or mask.shape[-2] == 1:
        return num_center_lines(mask.reshape(1, -1))
    h, w = mask.shape[-2:]
    width = 0
    for s in range(2, min(h, w) + 1):
        top = h // 2 - s // 2
        left = w // 2 - s // 2
        if bool(mask[top:top + s, left:left + s].all()):
            width = s
        else:
            break
    return width
