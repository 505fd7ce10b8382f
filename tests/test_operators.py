"""Forward operators: SigPy equivalence, adjoint tests, shapes, dtypes, devices, gradients."""

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri
import torch

import fastmri
from fastmri_untrained.operators.base import Identity, LinearOperator, adjoint_test
from fastmri_untrained.operators.fourier import fft2c, ifft2c
from fastmri_untrained.operators.gaussian import Denoising, GaussianMatrix, Inpainting, SubsampledDCT
from fastmri_untrained.operators.masks import (calibration_width, check_mask_args, make_mask,
                                               num_center_lines)
from fastmri_untrained.operators.mri import (ReadoutReduction, Sense, SubsampledFourier, crop_readout,
                                             reduce_readout)
from fastmri_untrained.operators.sigpy_bridge import SigPyLinop

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def fft_tol(n: int, passes: int = 1) -> float:
    """Normwise relative rounding of ``passes`` complex64 FFTs (or map products) over n points:
    ~eps32 log2(n) each, with a 4x margin (1-2 eps32 measured against SigPy)."""
    return 4 * passes * EPS32 * np.log2(n)


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def random_complex(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def smooth_maps(coils, h, w, seed=0):
    return sigpy.mri.birdcage_maps((coils, h, w)).astype(np.complex64)


class WrongAdjoint(LinearOperator):
    def forward(self, x):
        return 2 * x

    def adjoint(self, y):
        return y


def test_adjoint_test_catches_a_wrong_adjoint():
    with pytest.raises(AssertionError, match="adjoint test"):
        adjoint_test(WrongAdjoint(), (4, 5))


def test_fft2c_matches_fastmri_and_sigpy():
    x = random_complex((3, 16, 12))
    ours = fft2c(torch.from_numpy(x)).numpy()
    theirs = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(torch.from_numpy(x)))).numpy()
    assert rel_err(ours, theirs) < 8 * EPS32  # the same torch.fft on the same data (0 measured)
    assert rel_err(ours, sp.fft(x, axes=(-2, -1), center=True, norm="ortho")) < fft_tol(16 * 12)
    assert rel_err(ifft2c(torch.from_numpy(ours)).numpy(), x) < fft_tol(16 * 12, passes=2)


@pytest.mark.parametrize("mask_type", ["random", "equispaced", "equispaced_fraction", "magic", "poisson"])
def test_single_coil_matches_sigpy_fft_with_mask(mask_type):
    h, w = 32, 24
    mask = make_mask(mask_type, (h, w), 4, 0.16, seed=3)
    op = SubsampledFourier(mask)
    x = random_complex((h, w))
    ours = op(torch.from_numpy(x)).numpy()
    m = np.broadcast_to(mask.numpy(), (h, w))
    sp_op = sp.linop.Multiply((h, w), m) * sp.linop.FFT((h, w), center=True)
    assert rel_err(ours, sp_op * x) < fft_tol(h * w)
    assert rel_err(op.adjoint(torch.from_numpy(ours)).numpy(), sp_op.H * (sp_op * x)) < fft_tol(h * w, passes=2)
    adjoint_test(op, (2, h, w))


def test_sense_matches_sigpy_sense():
    c, h, w = 4, 24, 20
    maps = smooth_maps(c, h, w)
    mask = make_mask("equispaced_fraction", (h, w), 4, 0.2)
    weights = np.broadcast_to(mask.numpy(), (h, w)).astype(np.float32)
    op = Sense(torch.from_numpy(maps), mask)
    sp_op = sigpy.mri.linop.Sense(maps, weights=weights)
    x = random_complex((h, w))
    # SENSE: a map product and an FFT (forward), an IFFT, map products and a coil sum (adjoint)
    assert rel_err(op(torch.from_numpy(x)).numpy(), sp_op * x) < fft_tol(h * w, passes=2)
    y = random_complex((c, h, w), seed=1) * weights
    assert rel_err(op.adjoint(torch.from_numpy(y)).numpy(), sp_op.H * y) < fft_tol(h * w, passes=2)
    adjoint_test(op, (h, w))
    adjoint_test(op, (3, h, w))  # batched


def test_sense_with_two_map_sets_is_the_sum_of_sigpy_senses():
    c, h, w = 3, 16, 16
    maps = np.stack([smooth_maps(c, h, w), random_complex((c, h, w), seed=5)])
    mask = make_mask("random", (h, w), 2, 0.25, seed=1)
    weights = np.broadcast_to(mask.numpy(), (h, w)).astype(np.float32)
    op = Sense(torch.from_numpy(maps), mask)
    x = random_complex((2, h, w))
    expected = sum(sigpy.mri.linop.Sense(maps[s], weights=weights) * x[s] for s in range(2))
    assert rel_err(op(torch.from_numpy(x)).numpy(), expected) < fft_tol(h * w, passes=2)
    adjoint_test(op, (2, h, w))


def test_coil_image_operator_is_per_coil_masked_fft():
    c, h, w = 5, 20, 16
    mask = make_mask("equispaced", (h, w), 2, 0.25)
    op = SubsampledFourier(mask)
    x = random_complex((c, h, w))
    sp_op = sp.linop.Multiply((c, h, w), np.broadcast_to(mask.numpy(), (h, w))) * \
        sp.linop.FFT((c, h, w), axes=(-2, -1), center=True)
    assert rel_err(op(torch.from_numpy(x)).numpy(), sp_op * x) < fft_tol(h * w)
    adjoint_test(op, (c, h, w))


def test_readout_reduction_is_exact_for_column_masks():
    c, h, w, rows = 3, 32, 16, 16
    mask = make_mask("equispaced_fraction", (h, w), 4, 0.2)
    # An object confined to the central rows, as with fastMRI's 2x readout oversampling.
    x = np.zeros((c, h, w), np.complex64)
    x[:, 8:24] = random_complex((c, 16, w))
    full = SubsampledFourier(mask)(torch.from_numpy(x))
    reduced = reduce_readout(full, rows)
    direct = SubsampledFourier(mask)(crop_readout(torch.from_numpy(x), rows))
    # exact in exact arithmetic; the reduction adds a 1-D IFFT and FFT along the readout to the 2-D FFT
    assert rel_err(reduced.numpy(), direct.numpy()) < fft_tol(h * w, passes=2)
    adjoint_test(ReadoutReduction(h, rows), (c, h, w))


@pytest.mark.parametrize("op,shape,dtype", [
    (GaussianMatrix(30, 50, seed=2), (4, 50), torch.float32),
    (GaussianMatrix(30, 50, seed=2), (50,), torch.complex64),
    (SubsampledDCT(40, 128, seed=1), (3, 128), torch.float32),
    (SubsampledDCT(40, 127, seed=1), (127,), torch.float64),
    (Identity(), (3, 8, 8), torch.float32),
    (Inpainting.random((8, 8), 0.5, seed=0), (2, 8, 8), torch.float32),
])
def test_generic_operators_pass_adjoint_test(op, shape, dtype):
    adjoint_test(op, shape, dtype=dtype)


def test_gaussian_matrix_statistics_and_seed():
    a = GaussianMatrix(200, 300, seed=7).matrix
    assert torch.equal(a, GaussianMatrix(200, 300, seed=7).matrix)
    assert not torch.equal(a, GaussianMatrix(200, 300, seed=8).matrix)
    assert abs(float(a.var()) * 200 - 1) < 4 * (2 / a.numel()) ** 0.5  # 4 standard errors of a sample variance
    x = torch.randn(300)
    ratio = float(SubsampledDCT(150, 300, seed=0)(x).norm() ** 2 / x.norm() ** 2)
    assert 0.5 < ratio < 1.5  # E = 1 (rows scaled by sqrt(n/m)); std 0.08 (2 Beta(75, 75)): +-0.5 is 6 of them


def test_subsampled_dct_rows_are_orthonormal():
    op = SubsampledDCT(20, 64, seed=4)
    rows = op(torch.eye(64, dtype=torch.float64)).T  # (m, n) matrix
    gram = rows @ rows.T * op.m / op.n
    # float64 DCT (eps log2 n) and 64-term dot products of unit-norm rows (n eps): 4 n eps = 5.7e-14
    assert torch.allclose(gram, torch.eye(20, dtype=torch.float64), rtol=0, atol=4 * 64 * EPS64)


def test_denoising_noise_is_seeded_with_requested_sigma():
    x = torch.zeros(100, 100)
    y = Denoising(0.1, seed=3).measure(x)
    assert torch.equal(y, Denoising(0.1, seed=3).measure(x))
    assert abs(float(y.std()) - 0.1) < 4 * 0.1 / (2 * y.numel()) ** 0.5  # 4 standard errors of a sample std


@pytest.mark.parametrize("device", DEVICES)
def test_operators_are_differentiable_on_device(device):
    c, h, w = 2, 16, 12
    mask = make_mask("random", (h, w), 2, 0.25)
    op = Sense(torch.from_numpy(smooth_maps(c, h, w)), mask).to(device)
    x = torch.randn(h, w, dtype=torch.complex64, device=device, requires_grad=True)
    y = op(x)
    assert y.dtype == torch.complex64 and y.shape == (c, h, w) and y.device.type == device
    (y.abs() ** 2).sum().backward()
    # Gradient of ||A x||^2 is 2 A^H A x (Wirtinger convention of torch).
    expected = 2 * op.normal(x.detach())
    # A^H A: two FFTs and two map products per route, float32 rounding relative to the largest entry
    assert torch.allclose(x.grad, expected, rtol=0, atol=fft_tol(h * w, passes=4) * float(expected.abs().max()))


def test_sigpy_linop_bridge_matches_and_passes_gradients():
    c, h, w = 3, 12, 10
    maps = smooth_maps(c, h, w)
    weights = np.broadcast_to(make_mask("equispaced", (h, w), 2, 0.3).numpy(), (h, w)).astype(np.float32)
    linop = sigpy.mri.linop.Sense(maps, weights=weights)
    op = SigPyLinop(linop)
    x = torch.from_numpy(random_complex((h, w))).requires_grad_(True)
    y = op(x)
    assert rel_err(y.detach().numpy(), linop * x.detach().numpy()) < 8 * EPS32  # the same SigPy linop (0 measured)
    (y.abs() ** 2).sum().backward()
    expected = 2 * (linop.H * (linop * x.detach().numpy()))
    assert rel_err(x.grad.numpy(), expected) < fft_tol(h * w, passes=2)  # the backward applies linop.H
    adjoint_test(op, (h, w))


def test_masks_and_calibration_width():
    m8 = make_mask("equispaced_fraction", (640, 368), 8, 0.04)
    assert m8.shape == (1, 368)
    assert num_center_lines(m8) == calibration_width(m8)
    assert 13 <= calibration_width(m8) <= 16  # 0.04 x 368 ~ 15 lines, not SigPy's default 24
    pm = make_mask("poisson", (64, 64), 4, 0.25, seed=0)
    assert pm.shape == (64, 64) and calibration_width(pm) >= 14
    with pytest.raises(ValueError, match="mask_type"):  # the parameter; the CLI names its flag
        check_mask_args("spiral", [4], [0.08])
    with pytest.raises(ValueError, match="acceleration"):
        check_mask_args("random", [0.5], [0.08])
    with pytest.raises(ValueError, match="samples nothing"):
        SubsampledFourier(torch.zeros(1, 8))
