"""fastMRI samples on the project's side of the edge: native complex tensors, one sample type.

fastMRI's transforms produce real tensors with a trailing dimension of size 2; they are
converted here, once (:func:`edges.from_real_pairs`), into :class:`MRISample` (complex64
k-space, real mask). Every
reconstructor takes an ``MRISample`` and returns a :class:`Reconstruction`.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Mapping, NamedTuple, Optional

import fastmri
import numpy as np
import torch
from fastmri.data.transforms import center_crop

from .edges import from_real_pairs
from .operators.fourier import fft2c, ifft2c
from .operators.masks import calibration_width
from .operators.mri import reduce_readout


class MRISample(NamedTuple):
    """One slice to reconstruct.

    kspace: complex64 (C, H, W) masked k-space (C = 1 for single-coil), zeros where unsampled.
    mask: float (1, W) column mask or (H, W) 2-D mask.
    target_size: (h, w) of the fastMRI target crop.
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    target_size: tuple
    challenge: str = "multicoil"
    target: Optional[np.ndarray] = None
    fname: str = ""
    slice_num: int = 0
    max_value: float = 0.0


class Reconstruction(NamedTuple):
    """A reconstruction: the fastMRI target-sized magnitude image and, where the method models
    it, the predicted coil k-space on the grid it fitted (``grid_rows`` readout rows)."""

    image: np.ndarray
    kspace: Optional[torch.Tensor] = None
    # Read-only when defaulted: a NamedTuple default is shared by every instance.
    info: Mapping = MappingProxyType({})


def sample_from_varnet(sample, challenge: str = "multicoil") -> MRISample:
    """Convert a fastmri ``VarNetSample`` into an :class:`MRISample`: the edge where fastMRI's
    real tensors with a trailing dimension of 2 become native complex ones.

    Args:
        sample: from ``VarNetDataTransform``: ``masked_kspace`` float32 (C, H, W, 2) (or (H, W, 2)
            single-coil), ``mask`` (1, 1, W, 1), ``target`` float32 (h, w) or empty.
        challenge: "multicoil" or "singlecoil".

    Returns:
        ``MRISample`` with complex64 k-space (C, H, W) and a float mask (1, W).
    """
    kspace = from_real_pairs(sample.masked_kspace)
    if kspace.ndim == 2:
        kspace = kspace[None]
    mask = sample.mask.reshape(-1, sample.mask.shape[-2]).float() if sample.mask.shape[-1] == 1 \
        else sample.mask.float()
    mask = mask[:1] if mask.shape[0] != kspace.shape[-2] else mask
    target = sample.target.numpy() if torch.is_tensor(sample.target) and sample.target.numel() > 1 else None
    crop = tuple(int(c) for c in sample.crop_size)
    return MRISample(kspace=kspace, mask=mask, target_size=crop, challenge=challenge, target=target,
                     fname=str(sample.fname), slice_num=int(sample.slice_num), max_value=float(sample.max_value))


def is_column_mask(mask: torch.Tensor) -> bool:
    return mask.ndim == 1 or mask.shape[-2] == 1


def reduced_problem(sample: MRISample, enabled: bool = True) -> tuple[torch.Tensor, int]:
    """The k-space to fit and its number of readout rows.

    With a column mask, the readout reduction keeps the central H/2 rows (at least the target
    height), which hold the object and the fastMRI target; it is exact, see
    ``operators.mri.reduce_readout``.
    """
    h = sample.kspace.shape[-2]
    # Readout oversampling is 2x: the object, and so the target, lies in the central H/2 rows.
    rows = max(h // 2, sample.target_size[0])
    if not enabled or not is_column_mask(sample.mask) or rows >= h:
        return sample.kspace, h
    return reduce_readout(sample.kspace, rows), rows


def rss_image(coil_images: torch.Tensor) -> torch.Tensor:
    """Root-sum-of-squares over coils (dim -3) of complex coil images (fastmri.rss)."""
    return fastmri.rss(coil_images.abs(), dim=-3)


def data_consistency(predicted_kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Put the measured k-space back where it was sampled."""
    m = mask.to(predicted_kspace.real.dtype)
    return predicted_kspace * (1 - m) + measured * m


def to_target(image: torch.Tensor, target_size) -> np.ndarray:
    """Magnitude image centre-cropped to the fastMRI target size, float32 numpy."""
    h, w = target_size
    image = image.abs() if torch.is_complex(image) else image
    if image.shape[-1] < w:  # fastMRI pads nothing; a narrow matrix keeps its width
        w = image.shape[-1]
    return center_crop(image, (h, w)).detach().cpu().float().numpy()


def zero_filled_coils(kspace: torch.Tensor) -> torch.Tensor:
    return ifft2c(kspace)


def holdout_split(mask: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split acquired samples outside the fully sampled centre into (fit mask, held-out mask).

    Column masks hold out whole phase-encoding lines; 2-D masks hold out points. The calibration
    centre always stays in the fit mask (ESPIRiT and the low frequencies need it).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    mask = mask.float()
    centre = torch.zeros_like(mask, dtype=torch.bool)
    width = calibration_width(mask)
    w = mask.shape[-1]
    lo = w // 2 - width // 2
    if is_column_mask(mask):
        centre[..., lo:lo + width] = True
    else:
        h = mask.shape[-2]
        top = h // 2 - width // 2
        centre[..., top:top + width, lo:lo + width] = True
    candidates = (mask > 0) & ~centre
    idx = candidates.flatten().nonzero().flatten()
    if idx.numel() < 2:
        raise ValueError("too few acquired samples outside the calibration centre to hold any out")
    g = torch.Generator().manual_seed(seed)
    n_hold = max(1, int(round(fraction * idx.numel())))
    chosen = idx[torch.randperm(idx.numel(), generator=g)[:n_hold]]
    held = torch.zeros(mask.numel(), dtype=torch.bool)
    held[chosen] = True
    held = held.reshape(mask.shape)
    return mask * (~held).float(), held.float()


def kspace_noise_std(kspace: torch.Tensor, mask: torch.Tensor, fraction: float = 0.05) -> float:
    """The noise level of ``kspace`` (C, H, W): the std of the real (and of the imaginary) part of
    the noise, estimated from the outermost ``fraction`` of the acquired, non-zero samples, where
    MR signal has decayed below the noise. The magnitude of complex Gaussian noise of that std is
    Rayleigh, whose median is std * sqrt(2 ln 2); the median keeps the few strong samples that
    remain (edges, a bright object) from inflating the estimate."""
    h, w = kspace.shape[-2:]
    acquired = torch.broadcast_to(mask.bool(), (h, w)) & (kspace.abs().amax(dim=0) > 0)
    if not bool(acquired.any()):
        raise ValueError("the k-space has no acquired sample")
    ky, kx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt((ky / (h / 2)) ** 2 + (kx / (w / 2)) ** 2).to(mask.device)
    outer = acquired & (radius >= torch.quantile(radius[acquired].double(), 1 - fraction).to(radius.dtype))
    return float(torch.median(kspace[:, outer].abs()) / math.sqrt(2 * math.log(2)))


def kspace_nmse(predicted: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor) -> float:
    """||M (k_pred - k)||^2 / ||M k||^2 on the samples selected by ``mask``."""
    m = mask.to(measured.real.dtype)
    num = torch.sum(((predicted - measured) * m).abs() ** 2)
    den = torch.sum((measured * m).abs() ** 2)
    return float(num / den)


__all__ = ["MRISample", "Reconstruction", "sample_from_varnet", "reduced_problem", "rss_image",
           "data_consistency", "to_target", "holdout_split", "kspace_nmse", "kspace_noise_std", "fft2c", "ifft2c",
           "zero_filled_coils"]
