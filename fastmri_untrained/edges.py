"""Where complex data change form. Inside the package every complex array is a native
``torch.complex64`` tensor; it is converted only at these three edges, one function each way:

1. fastMRI (and SigPy's torch interface, ``sigpy.to_pytorch_function``): real tensors with a
   trailing dimension of 2 -- :func:`to_real_pairs` / :func:`from_real_pairs`;
2. the networks: real output channels in (real, imaginary) pairs -- :func:`channels_to_complex`
   (the networks only produce images, so there is no way back);
3. SigPy's NumPy operators and apps: complex64 NumPy arrays -- :func:`to_numpy` /
   :func:`from_numpy`.
"""

from __future__ import annotations

import numpy as np
import torch


def to_real_pairs(x: torch.Tensor) -> torch.Tensor:
    """Complex (...,) -> real (..., 2) (real, imaginary), a zero-copy view."""
    if not torch.is_complex(x):
        raise TypeError(f"expected a complex tensor, got {x.dtype}")
    return torch.view_as_real(x)


def from_real_pairs(x: torch.Tensor) -> torch.Tensor:
    """Real (..., 2) -> complex (...,), as fastMRI's transforms hand k-space over."""
    if x.shape[-1] != 2:
        raise ValueError(f"expected a trailing dimension of size 2, got shape {tuple(x.shape)}")
    return torch.view_as_complex(x.contiguous())


def channels_to_complex(output: torch.Tensor) -> torch.Tensor:
    """Network output (1, 2K, H, W) real -> (K, H, W) complex (channel pairs = real, imaginary)."""
    if output.ndim != 4 or output.shape[0] != 1 or output.shape[1] % 2:
        raise ValueError(f"expected a network output (1, 2K, H, W), got shape {tuple(output.shape)}")
    return torch.complex(output[0, 0::2], output[0, 1::2])


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A complex tensor as a complex64 NumPy array for SigPy (a copy only when x is not on the
    CPU or not complex64)."""
    return x.detach().to("cpu", torch.complex64).numpy()


def from_numpy(a) -> torch.Tensor:
    """A NumPy (or CuPy-converted) complex array from SigPy as a complex64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a), dtype=np.complex64))
