"""Linear operators as torch modules with a forward (A) and an adjoint (A^H).

In the spirit of ``sigpy.linop.Linop``: each operator knows how to apply itself and its
adjoint, composes with ``@``, and is differentiable, batched and device-agnostic because it is
built from torch ops. Inner products are the real part of the complex Euclidean one, so
``adjoint_test`` holds for real and complex operators alike.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearOperator(nn.Module):
    """A linear map y = A x with its adjoint x = A^H y.

    Subclasses implement ``forward`` and ``adjoint``. Buffers (masks, maps, matrices) are
    registered so that ``.to(device)`` moves them with the module.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # A x
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # A^H y
        raise NotImplementedError

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^H A x."""
        return self.adjoint(self.forward(x))

    @property
    def H(self) -> "LinearOperator":
        return _Adjoint(self)

    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        return _Compose(self, other)


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        super().__init__()
        self.op = op

    def forward(self, x):
        return self.op.adjoint(x)

    def adjoint(self, y):
        return self.op.forward(y)


class _Compose(LinearOperator):
    """(A @ B) x = A(B x)."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        super().__init__()
        self.outer, self.inner = outer, inner

    def forward(self, x):
        return self.outer(self.inner(x))

    def adjoint(self, y):
        return self.inner.adjoint(self.outer.adjoint(y))


class Identity(LinearOperator):
    """A = I (denoising)."""

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product Re <a, b> = Re sum(conj(a) * b), in float64/complex128."""
    if torch.is_complex(a) or torch.is_complex(b):
        a, b = a.to(torch.complex128), b.to(torch.complex128)
        return torch.sum(torch.conj(a) * b).real
    return torch.sum(a.double() * b.double())


def random_like_shape(shape, dtype=torch.complex64, device=None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device="cpu").manual_seed(seed)
    if dtype.is_complex:
        real = torch.randn(*shape, 2, generator=g, dtype=torch.float64)
        x = torch.view_as_complex(real)
    else:
        x = torch.randn(*shape, generator=g, dtype=torch.float64)
    return x.to(dtype=dtype, device=device)


def adjoint_test(op: LinearOperator, x_shape, dtype=torch.complex64, device=None, seed: int = 0,
                 rtol: float = 1e-5) -> float:
    """Check <A x, y> = <x, A^H y> for random x, y; returns the relative mismatch.

    The one adjoint-test helper for every operator in the project. Raises AssertionError when
    the mismatch exceeds ``rtol`` relative to |<A x, y>|.
    """
    x = random_like_shape(x_shape, dtype, device, seed)
    with torch.no_grad():
        ax = op(x)
        y = random_like_shape(tuple(ax.shape), ax.dtype, device, seed + 1)
        ahy = op.adjoint(y)
    if tuple(ahy.shape) != tuple(x.shape):
        raise AssertionError(f"adjoint returns shape {tuple(ahy.shape)}, expected {tuple(x.shape)}")
    lhs, rhs = inner(ax, y), inner(x, ahy)
    rel = float(abs(lhs - rhs) / max(abs(lhs), 1e-30))
    if rel >= rtol:
        raise AssertionError(f"{type(op).__name__} fails the adjoint test: |<Ax,y>-<x,A^H y>|/|<Ax,y>| = {rel:.3e}")
    return rel
