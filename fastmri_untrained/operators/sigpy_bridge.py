"""Call a SigPy Linop from torch with gradients (sigpy.to_pytorch_function)."""

from __future__ import annotations

import sigpy as sp
import torch

from .base import LinearOperator


class SigPyLinop(LinearOperator):
    """A ``sigpy.linop.Linop`` as a torch operator on complex tensors.

    Uses ``sigpy.to_pytorch_function`` (which exchanges real tensors with a trailing dimension of
    size 2), so autograd flows through the SigPy operator: the backward pass applies ``linop.H``.
    Runs where SigPy runs (NumPy on CPU, CuPy on GPU).
    """

    def __init__(self, linop: sp.linop.Linop):
        super().__init__()
        self.linop = linop
        self._forward = sp.to_pytorch_function(linop, input_iscomplex=True, output_iscomplex=True)
        self._adjoint = sp.to_pytorch_function(linop.H, input_iscomplex=True, output_iscomplex=True)

    def forward(self, x):
        return torch.view_as_complex(self._forward.apply(torch.view_as_real(x.to(torch.complex64)).contiguous()))

    def adjoint(self, y):
        return torch.view_as_complex(self._adjoint.apply(torch.view_as_real(y.to(torch.complex64)).contiguous()))
