"""Kernels, circulant convolutions, the trigonometric basis and the dual kernel (numpy, float64).

Heckel & Soltanolkotabi, ICLR 2020 (Def. 1, Def. 2) and ICML 2020 (eqs. 10, 11), with the checked
erratum of ``shared/papers/README.md``: the dual kernel uses the circular AUTOcorrelation of u,

    sigma = ||u|| sqrt(|F g(r / ||u||^2)|),   r_l = sum_j u_j u_{j+l},   g(z) = (1/2)(1 - arccos(z)/pi) z,

which equals the printed circular convolution u (*) u only for symmetric kernels.

Every function works in 1-D and 2-D (any number of axes): a kernel is an array of the signal's
shape, convolutions are circular along every axis, signals are flattened in C order, and the
DFT is ``fftn``. Sizes are an int (1-D) or a shape tuple such as ``(16, 16)`` (images).
"""

from __future__ import annotations

import math

import numpy as np


def _shape(n) -> tuple[int, ...]:
    """An int size or a shape tuple, as a shape tuple."""
    shape = (int(n),) if np.ndim(n) == 0 else tuple(int(a) for a in n)
    if not shape or min(shape) < 1:
        raise ValueError(f"sizes must be positive, got {n}")
    return shape


def _separable(n, kernel_1d) -> np.ndarray:
    """The product over axes of a 1-D kernel, e.g. u(a, b) = u1(a) u1(b) for a 2-D shape."""
    out = np.ones(())
    for m in _shape(n):
        out = np.multiply.outer(out, kernel_1d(m))
    return out


def circular_distance(n: int) -> np.ndarray:
    """|j| measured around the circle, j = 0..n-1 (so a kernel centred at index 0 is symmetric)."""
    j = np.arange(n)
    return np.minimum(j, n - j).astype(float)


def triangular_kernel(n, half_width: float) -> np.ndarray:
    """u_j = max(0, 1 - |j|/half_width), centred at 0 on the circle (linear interpolation for 2).

    For a shape, the separable product over axes (bilinear interpolation for 2 in 2-D).
    """
    if half_width <= 0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    return _separable(n, lambda m: np.maximum(0.0, 1.0 - circular_distance(m) / half_width))


def gaussian_kernel(n, std: float) -> np.ndarray:
    """u_j = exp(-j^2 / (2 std^2)), centred at 0 on the circle (for a shape: isotropic, separable)."""
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    return _separable(n, lambda m: np.exp(-circular_distance(m) ** 2 / (2.0 * std**2)))


def circulant(u: np.ndarray) -> np.ndarray:
    """Circulant U with (U x)_i = sum_j u_{j-i} x_j, i.e. row i is u shifted by i (rows u_i).

    For an N-D kernel, the block-circulant matrix of the N-D circular correlation on flattened
    signals: U[i, j] = u[(j - i) mod shape] with i, j multi-indices.
    """
    u = np.asarray(u, float)
    coords = np.indices(u.shape).reshape(u.ndim, -1)  # multi-index of every flattened position
    diff = (coords[:, None, :] - coords[:, :, None]) % np.asarray(u.shape)[:, None, None]
    return u[tuple(diff)]


def autocorrelation(u: np.ndarray) -> np.ndarray:
    """Circular autocorrelation r_l = sum_j u_j u_{j+l} = <u_0, u_l> (rows of ``circulant(u)``)."""
    f = np.fft.fftn(u)
    return np.fft.ifftn(np.abs(f) ** 2).real


def g_arccos(z: np.ndarray) -> np.ndarray:
    """g(z) = (1/2)(1 - arccos(z)/pi) z, the first arc-cosine kernel times z."""
    z = np.clip(z, -1.0, 1.0)
    return 0.5 * (1.0 - np.arccos(z) / np.pi) * z


def dual_kernel(u: np.ndarray) -> np.ndarray:
    """sigma, shaped like u and indexed by DFT frequency: sigma = ||u|| sqrt(|F g(r/||u||^2)|), r autocorrelation."""
    u = np.asarray(u, float)
    nu2 = float(np.vdot(u, u))  # = u @ u in 1-D; g is steep at z = 1, so keep this rounding
    spectrum = np.fft.fftn(g_arccos(autocorrelation(u) / nu2))
    return np.sqrt(nu2 * np.abs(spectrum))


def dual_kernel_convolution_form(u: np.ndarray) -> np.ndarray:
    """The printed form with the circular convolution u (*) u (only right for symmetric u)."""
    u = np.asarray(u, float)
    nu2 = float(np.vdot(u, u))  # = u @ u in 1-D; g is steep at z = 1, so keep this rounding
    conv = np.fft.ifftn(np.fft.fftn(u) ** 2).real
    return np.sqrt(nu2 * np.abs(np.fft.fftn(g_arccos(conv / nu2))))


def sigma_matrix(U: np.ndarray) -> np.ndarray:
    """[Sigma(U)]_ij = (1/2)(1 - arccos(rho_ij)/pi) <u_i, u_j>, rho_ij the cosine between rows.

    This is E[J J^T] of the two-layer generator ReLU(UC)v at C ~ N(0, omega^2) (any omega > 0).
    """
    gram = U @ U.T
    norms = np.sqrt(np.diag(gram))
    rho = np.clip(gram / np.outer(norms, norms), -1.0, 1.0)
    return 0.5 * (1.0 - np.arccos(rho) / np.pi) * gram


def trig_basis(n) -> np.ndarray:
    """Orthonormal trigonometric basis, eq. (5)/(10): one column per DFT frequency f (C order).

    1-D: column i (0-based) is the constant (i = 0), sqrt2 cos(2 pi j i/n) (1 <= i < n/2), the
    alternating vector (i = n/2) or sqrt2 sin(2 pi j i/n) (n/2 < i < n), all divided by sqrt(n).
    For a shape, the phase is 2 pi sum_a f_a j_a / N_a; a frequency equal to its own negative
    (mod the shape) gets the +-1-valued cosine, the first of a pair {f, -f} the cosine and the
    second the sine. Column f is an eigenvector of every symmetric circulant (in 2-D: block-
    circulant) matrix with eigenvalue = DFT of its first row at f, so of every Sigma(U).
    """
    shape = _shape(n)
    size = math.prod(shape)
    coords = np.indices(shape).reshape(len(shape), -1)  # positions j and frequencies f alike
    phase = 2 * np.pi * sum(np.outer(coords[a], coords[a]) / shape[a] for a in range(len(shape)))
    negative = np.ravel_multi_index(tuple((-coords) % np.asarray(shape)[:, None]), shape)
    own = np.arange(size)
    w = np.where((own > negative)[None, :], np.sqrt(2.0) * np.sin(phase), np.sqrt(2.0) * np.cos(phase))
    w[:, own == negative] = np.cos(phase[:, own == negative])  # real +-1 vectors, no sine partner
    return w / np.sqrt(size)


def sorted_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W, sigma) with the trigonometric basis ordered by decreasing dual-kernel value (README erratum).

    Ties (a cosine and a sine of one frequency) keep the frequency order, cosine first.
    """
    u = np.asarray(u, float)
    sigma = dual_kernel(u).ravel()
    order = np.argsort(-np.round(sigma, 12), kind="stable")
    return trig_basis(u.shape)[:, order], sigma[order]


def monte_carlo_gram(U: np.ndarray, k: int, samples: int, seed: int = 0) -> np.ndarray:
    """Average of J(C) J(C)^T over ``samples`` draws C ~ N(0,1)^{n x k} of the two-layer generator.

    J J^T = (1/k) sum_l (a_l a_l^T) o (U U^T), a_l = 1[U c_l > 0]; its mean is Sigma(U).
    """
    rng = np.random.default_rng(seed)
    n = U.shape[0]
    gram = U @ U.T
    acc = np.zeros((n, n))
    for _ in range(samples):
        act = (U @ rng.standard_normal((n, k)) > 0).astype(float)
        acc += (act @ act.T) / k
    return gram * acc / samples
