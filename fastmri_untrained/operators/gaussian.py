"""Generic operators for the synthetic experiments: Gaussian compressive sensing, denoising,
inpainting.

Signals are real or complex tensors whose last dimension (or last two, for images, see
``flatten``) is the signal; leading dimensions are batch dimensions.
"""

from __future__ import annotations

import math

import torch

from .base import LinearOperator


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(int(seed))


class GaussianMatrix(LinearOperator):
    """A in R^{m x n} with iid N(0, 1/m) entries (seeded): y = A x on the last dimension.

    ``E ||A x||^2 = ||x||^2``, the normalisation of the compressive-sensing papers.
    """

    def __init__(self, m: int, n: int, seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        if m < 1 or n < 1:
            raise ValueError(f"GaussianMatrix needs m, n >= 1, got m={m}, n={n}")
        a = torch.randn(m, n, generator=_generator(seed), dtype=torch.float64) / math.sqrt(m)
        self.register_buffer("matrix", a.to(dtype))
        self.m, self.n = m, n

    def forward(self, x):
        return x @ self.matrix.to(x.dtype).T

    def adjoint(self, y):
        return y @ self.matrix.to(y.dtype).conj()


class SubsampledDCT(LinearOperator):
    """Fast structured CS: y = sqrt(n/m) P_Omega DCT(D x), D random signs, Omega m random rows.

    An orthonormal DCT-II (computed with an FFT) after a random sign flip, keeping m of the n
    coefficients; O(n log n) per application instead of O(mn), for large n. Scaled so that
    E ||A x||^2 = ||x||^2 like ``GaussianMatrix``. Real signals only.
    """

    def __init__(self, m: int, n: int, seed: int = 0):
        super().__init__()
        if not 1 <= m <= n:
            raise ValueError(f"SubsampledDCT needs 1 <= m <= n, got m={m}, n={n}")
        g = _generator(seed)
        self.register_buffer("signs", (torch.randint(0, 2, (n,), generator=g) * 2 - 1).float())
        self.register_buffer("rows", torch.randperm(n, generator=g)[:m].sort().values)
        self.m, self.n = m, n
        self.scale = math.sqrt(n / m)

    def _dct(self, x):
        # Orthonormal DCT-II via an FFT of the even extension (Makhoul's reordering).
        n = x.shape[-1]
        v = torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], dim=-1)
        k = torch.arange(n, device=x.device, dtype=x.dtype)
        w = torch.exp(-1j * math.pi * k / (2 * n))
        c = (torch.fft.fft(v, dim=-1) * w).real
        c = c * math.sqrt(2.0 / n)
        c[..., 0] = c[..., 0] / math.sqrt(2.0)
        return c

    def _idct(self, c):
        # Inverse (= transpose) of the orthonormal DCT-II: V_k = e^{i pi k / 2n} (X_k - i X_{n-k}).
        n = c.shape[-1]
        x_k = c * math.sqrt(n / 2.0)
        x_k[..., 0] = x_k[..., 0] * math.sqrt(2.0)
        x_rev = torch.cat([torch.zeros_like(x_k[..., :1]), x_k[..., 1:].flip(-1)], dim=-1)
        k = torch.arange(n, device=c.device, dtype=c.dtype)
        w = torch.exp(1j * math.pi * k / (2 * n))
        v = torch.fft.ifft(w * (x_k - 1j * x_rev), dim=-1).real
        x = torch.empty_like(v)
        half = (n + 1) // 2
        x[..., ::2] = v[..., :half]
        x[..., 1::2] = v[..., half:].flip(-1)
        return x

    def forward(self, x):
        return self.scale * self._dct(x * self.signs)[..., self.rows]

    def adjoint(self, y):
        full = torch.zeros(*y.shape[:-1], self.n, dtype=y.dtype, device=y.device)
        full[..., self.rows] = y
        return self.scale * self._idct(full) * self.signs


class Denoising(LinearOperator):
    """A = I with additive Gaussian noise of standard deviation ``sigma`` (seeded)."""

    def __init__(self, sigma: float, seed: int = 0):
        super().__init__()
        if sigma < 0:
            raise ValueError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma, self.seed = float(sigma), int(seed)

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y

    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """y = x + sigma * n with n ~ N(0, I) drawn from this operator's seed."""
        noise = torch.randn(x.shape, generator=_generator(self.seed), dtype=torch.float64)
        return x + self.sigma * noise.to(dtype=x.real.dtype, device=x.device)


class Inpainting(LinearOperator):
    """y = M x with a binary mask M (kept pixels = 1); masked entries are zero in y."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        mask = torch.as_tensor(mask)
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("inpainting mask must be binary")
        if not bool(mask.any()):
            raise ValueError("inpainting mask keeps no pixel")
        self.register_buffer("mask", mask.float())

    @classmethod
    def random(cls, shape, keep_fraction: float, seed: int = 0) -> "Inpainting":
        if not 0 < keep_fraction <= 1:
            raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
        return cls((torch.rand(shape, generator=_generator(seed)) < keep_fraction).float())

    def forward(self, x):
        return x * self.mask.to(x.device)

    def adjoint(self, y):
        return y * self.mask.to(y.device)
