"""Kernels, circulant convolutions, the trigonometric basis and the dual kernel (numpy, float64).

Heckel & Soltanolkotabi, ICLR 2020 (Def. 1, Def. 2) and ICML 2020 (eqs. 10, 11), with the checked
erratum of ``shared/papers/README.md``: the dual kernel uses the circular AUTOcorrelation of u,

    sigma = ||u|| sqrt(|F g(r / ||u||^2)|),   r_l = sum_j u_j u_{j+l},   g(z) = (1/2)(1 - arccos(z)/pi) z,

which equals the printed circular convolution u (*) u only for symmetric kernels.
"""

from __future__ import annotations

import numpy as np


def circular_distance(n: int) -> np.ndarray:
    """|j| measured around the circle, j = 0..n-1 (so a kernel centred at index 0 is symmetric)."""
    j = np.arange(n)
    return np.minimum(j, n - j).astype(float)


def triangular_kernel(n: int, half_width: float) -> np.ndarray:
    """u_j = max(0, 1 - |j|/half_width), centred at 0 on the circle (linear interpolation for 2)."""
    if half_width <= 0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    return np.maximum(0.0, 1.0 - circular_distance(n) / half_width)


def gaussian_kernel(n: int, std: float) -> np.ndarray:
    """u_j = exp(-j^2 / (2 std^2)), centred at 0 on the circle."""
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    return np.exp(-circular_distance(n) ** 2 / (2.0 * std**2))


def circulant(u: np.ndarray) -> np.ndarray:
    """Circulant U with (U x)_i = sum_j u_{j-i} x_j, i.e. row i is u shifted by i (rows u_i)."""
    n = len(u)
    idx = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n
    return np.asarray(u, float)[idx]


def autocorrelation(u: np.ndarray) -> np.ndarray:
    """Circular autocorrelation r_l = sum_j u_j u_{j+l} = <u_0, u_l> (rows of ``circulant(u)``)."""
    f = np.fft.fft(u)
    return np.fft.ifft(np.abs(f) ** 2).real


def g_arccos(z: np.ndarray) -> np.ndarray:
    """g(z) = (1/2)(1 - arccos(z)/pi) z, the first arc-cosine kernel times z."""
    z = np.clip(z, -1.0, 1.0)
    return 0.5 * (1.0 - np.arccos(z) / np.pi) * z


def dual_kernel(u: np.ndarray) -> np.ndarray:
    """sigma in R^n, indexed by DFT frequency: sigma = ||u|| sqrt(|F g(r/||u||^2)|), r autocorrelation."""
    u = np.asarray(u, float)
    nu2 = float(u @ u)
    spectrum = np.fft.fft(g_arccos(autocorrelation(u) / nu2))
    return np.sqrt(nu2 * np.abs(spectrum))


def dual_kernel_convolution_form(u: np.ndarray) -> np.ndarray:
    """The printed form with the circular convolution u (*) u (only right for symmetric u)."""
    u = np.asarray(u, float)
    nu2 = float(u @ u)
    conv = np.fft.ifft(np.fft.fft(u) ** 2).real
    return np.sqrt(nu2 * np.abs(np.fft.fft(g_arccos(conv / nu2))))


def sigma_matrix(U: np.ndarray) -> np.ndarray:
    """[Sigma(U)]_ij = (1/2)(1 - arccos(rho_ij)/pi) <u_i, u_j>, rho_ij the cosine between rows.

    This is E[J J^T] of the two-layer generator ReLU(UC)v at C ~ N(0, omega^2) (any omega > 0).
    """
    gram = U @ U.T
    norms = np.sqrt(np.diag(gram))
    rho = np.clip(gram / np.outer(norms, norms), -1.0, 1.0)
    return 0.5 * (1.0 - np.arccos(rho) / np.pi) * gram


def trig_basis(n: int) -> np.ndarray:
    """Orthonormal trigonometric basis, eq. (5)/(10): columns w_1..w_n with frequencies 0..n-1.

    Column i (0-based) is the constant (i = 0), sqrt2 cos(2 pi j i/n) (1 <= i < n/2), the alternating
    vector (i = n/2) or sqrt2 sin(2 pi j i/n) (n/2 < i < n), all divided by sqrt(n). Column i is an
    eigenvector of every symmetric circulant matrix with eigenvalue = DFT of its first row at i.
    """
    if n % 2:
        raise ValueError(f"the trigonometric basis is defined for even n, got {n}")
    j = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    w = np.where(i < n // 2, np.sqrt(2.0) * np.cos(2 * np.pi * j * i / n),
                 np.sqrt(2.0) * np.sin(2 * np.pi * j * i / n))
    w[:, 0] = 1.0
    w[:, n // 2] = (-1.0) ** np.arange(n)
    return w / np.sqrt(n)


def sorted_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W, sigma) with the trigonometric basis ordered by decreasing dual-kernel value (README erratum).

    Ties (a cosine and a sine of one frequency) keep the frequency order, cosine first.
    """
    n = len(u)
    sigma = dual_kernel(u)
    order = np.argsort(-np.round(sigma, 12), kind="stable")
    return trig_basis(n)[:, order], sigma[order]


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
