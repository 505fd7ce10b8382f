"""Centred orthonormal 2-D FFTs on native complex tensors.

fastMRI's ``fft2c``/``ifft2c`` act on real tensors with a trailing dimension of size 2; the
project works on ``torch.complex64`` throughout, so these wrappers hand fastmri a zero-copy view
(:mod:`edges`) and view its result back as complex. The transform itself is fastmri's.
"""

import fastmri
import torch

from ..edges import from_real_pairs, to_real_pairs


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT over the last two dimensions (fastmri.fft2c on complex)."""
    return from_real_pairs(fastmri.fft2c(to_real_pairs(x)))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT over the last two dimensions (fastmri.ifft2c)."""
    return from_real_pairs(fastmri.ifft2c(to_real_pairs(k)))


def fft1c(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Centred orthonormal 1-D FFT along ``dim`` (the same convention as fft2c)."""
    x = torch.fft.ifftshift(x, dim=dim)
    return torch.fft.fftshift(torch.fft.fft(x, dim=dim, norm="ortho"), dim=dim)


def ifft1c(k: torch.Tensor, dim: int) -> torch.Tensor:
    """Centred orthonormal 1-D inverse FFT along ``dim``."""
    k = torch.fft.ifftshift(k, dim=dim)
    return torch.fft.fftshift(torch.fft.ifft(k, dim=dim, norm="ortho"), dim=dim)
