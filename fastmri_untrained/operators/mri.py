"""Coil-aware subsampled Fourier operators on fastMRI's conventions.

Images and k-space are native complex tensors; the last two dimensions are (readout H,
phase-encoding W), as in fastMRI k-space (..., coils, H, W). The Fourier transform is fastMRI's
centred orthonormal ``fft2c``. Masks are real tensors broadcastable to the k-space (fastMRI
column masks of shape (1, W) or 2-D masks of shape (H, W)) and are applied once, in ``forward``:
for a binary mask M, (M F)^H = F^H M.
"""

from __future__ import annotations

import torch

from .base import LinearOperator
from .fourier import fft1c, fft2c, ifft1c, ifft2c


def _as_mask(mask) -> torch.Tensor:
    mask = torch.as_tensor(mask)
    if torch.is_complex(mask):
        raise TypeError("a sampling mask must be real")
    mask = mask.to(torch.float32)
    if not bool(mask.any()):
        raise ValueError("the sampling mask samples nothing (all zeros)")
    return mask


class SubsampledFourier(LinearOperator):
    """y = M F x: single-coil k-space, or per-coil k-space of coil images.

    ``x`` is (..., H, W) complex. For the single-coil model x is the image; for the coil-image
    model of the deep decoder / ConvDecoder MRI experiments x is (..., C, H, W), one image per
    coil, and the reconstruction is their root-sum-of-squares.
    """

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", _as_mask(mask))

    def forward(self, x):
        return fft2c(x) * self.mask

    def adjoint(self, y):
        return ifft2c(y * self.mask)


class Sense(LinearOperator):
    """Multi-coil SENSE, y_c = M F (sum_s S_{s,c} x_s).

    ``maps`` is (C, H, W) for one set or (S, C, H, W) for S ESPIRiT map sets; the image ``x`` is
    (..., H, W) for one set or (..., S, H, W) for several, and the k-space is (..., C, H, W).
    Equals ``sigpy.mri.linop.Sense(maps, weights=mask)`` (summed over sets).
    """

    def __init__(self, maps, mask):
        super().__init__()
        maps = torch.as_tensor(maps)
        if not torch.is_complex(maps):
            maps = maps.to(torch.complex64)
        if maps.ndim not in (3, 4):
            raise ValueError(f"sensitivity maps must be (C, H, W) or (S, C, H, W), got shape {tuple(maps.shape)}")
        self.single_set = maps.ndim == 3
        self.register_buffer("maps", maps if maps.ndim == 4 else maps[None])
        self.register_buffer("mask", _as_mask(mask))

    @property
    def num_coils(self) -> int:
        return self.maps.shape[1]

    def expand(self, x):
        """Coil images S x (no Fourier transform): (..., C, H, W)."""
        if self.single_set:
            x = x.unsqueeze(-3)
        # x: (..., S, H, W) -> (..., S, 1, H, W) * (S, C, H, W) summed over S
        return (x.unsqueeze(-3) * self.maps).sum(-4)

    def reduce(self, coil_images):
        """S^H: coil images (..., C, H, W) -> image(s) (..., [S,] H, W)."""
        x = (coil_images.unsqueeze(-4) * self.maps.conj()).sum(-3)
        return x.squeeze(-3) if self.single_set else x

    def forward(self, x):
        return fft2c(self.expand(x)) * self.mask

    def adjoint(self, y):
        return self.reduce(ifft2c(y * self.mask))


def crop_readout(x: torch.Tensor, rows: int) -> torch.Tensor:
    """Centre crop of ``rows`` rows along the readout (second-to-last) dimension."""
    total = x.shape[-2]
    if not 0 < rows <= total:
        raise ValueError(f"cannot crop {rows} readout rows from {total}")
    start = (total - rows) // 2
    return x[..., start:start + rows, :]


def reduce_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """Exact readout reduction: inverse FFT along readout, crop to ``rows``, FFT back.

    fastMRI k-space is 2x oversampled along readout (dimension -2) and undersampled only along
    phase encoding (-1), so a column mask commutes with these 1-D transforms: the reduced data
    are exactly the measurements of the cropped image, and the fitted network needs only
    produce ``rows`` rows instead of all of them. The fastMRI target (a centre crop) is inside.
    """
    return fft1c(crop_readout(ifft1c(kspace, dim=-2), rows), dim=-2)


def expand_readout(kspace: torch.Tensor, rows: int) -> torch.Tensor:
    """Adjoint of ``reduce_readout``: zero-pad the image rows back to ``rows`` (k-space in/out)."""
    image_rows = ifft1c(kspace, dim=-2)
    pad_total = rows - image_rows.shape[-2]
    if pad_total < 0:
        raise ValueError(f"cannot expand {image_rows.shape[-2]} readout rows to {rows}")
    before = pad_total // 2
    padded = torch.nn.functional.pad(image_rows, (0, 0, before, pad_total - before))
    return fft1c(padded, dim=-2)


class ReadoutReduction(LinearOperator):
    """The readout reduction as an operator on k-space (..., H, W) -> (..., rows, W)."""

    def __init__(self, full_rows: int, rows: int):
        super().__init__()
        self.full_rows, self.rows = int(full_rows), int(rows)

    def forward(self, k):
        return reduce_readout(k, self.rows)

    def adjoint(self, k):
        return expand_readout(k, self.full_rows)
