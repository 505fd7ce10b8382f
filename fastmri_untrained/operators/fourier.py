"""Centred orthonormal 2-D FFTs on native complex tensors.

fastMRI's ``fft2c``/``ifft2c`` act on real tensors with a trailing dimension of size 2; the
project works on ``torch.complex64`` throughout, so these wrappers hand fastmri a zero-copy
``view_as_real`` and view its result back as complex. The transform itself is fastmri's.
"""

import fastmri
import torch


def _as_real(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_complex(x):
        raise TypeError(f"expected a complex tensor, got {x.dtype}")
    return torch.view_as_real(x)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal FFT over the last two dimensions (fastmri.fft2c on complex)."""
    return torch.view_as_complex(fastmri.fft2c(_as_real(x)))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse FFT over the last two dimensions (fastmri.ifft2c)."""
    return torch.view_as_complex(fastmri.ifft2c(_as_real(k)))


def fft1c(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Centred orthonormal 1-D FFT along ``dim`` (the same convention as fft2c)."""
    x = torch.fft.ifftshift(x, dim=dim)
    return torch.fft.fftshift(torch.fft.fft(x, dim=dim, norm="ortho"), dim=dim)


def ifft1c(k: torch.Tensor, dim: int) -> torch.Tensor:
    """Centred orthonormal 1-D inverse FFT along ``dim``."""
    k = torch.fft.ifftshift(k, dim=dim)
    return torch.fft.fftshift(torch.fft.ifft(k, dim=dim, norm="ortho"), dim=dim)


def to_complex(x: torch.Tensor) -> torch.Tensor:
    """fastMRI trailing-2 real tensor -> complex tensor (the one conversion at the edge)."""
    if x.shape[-1] != 2:
        raise ValueError(f"expected a trailing dimension of size 2, got shape {tuple(x.shape)}")
    return torch.view_as_complex(x.contiguous())
