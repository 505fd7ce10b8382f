"""Call a SigPy Linop from torch with gradients (sigpy.to_pytorch_function)."""

from __future__ import annotations

import sigpy as sp
import torch

from ..edges import from_real_pairs, to_real_pairs
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
        return from_real_pairs(self._forward.apply(to_real_pairs(x.to(torch.complex64)).contiguous()))

    def adjoint(self, y):
        return from_real_pairs(self._adjoint.apply(to_real_pairs(y.to(torch.complex64)).contiguous()))
