"""Linear gradient-descent dynamics and the theorems' bounds (numpy, float64).

* Denoising paper, Prop. 1: GD on 1/2||y - J c||^2 from c_0 = 0 has residual
  r_tau = sum_i w_i <w_i, y> (1 - eta sigma_i^2)^tau.
* Denoising paper, Theorems 1-2: the early-stopping time and error bounds of the two-layer generator.
* CS paper, Theorem 1: the min-norm solution of A J c = y and its error bound.
"""

from __future__ import annotations

import numpy as np


def linear_gd_residuals(J: np.ndarray, y: np.ndarray, step: float, iterations: int) -> np.ndarray:
    """Run GD on 1/2||y - J c||^2 from c = 0; rows t = 0..iterations of the residual y - J c_t."""
    c = np.zeros(J.shape[1])
    out = np.empty((iterations + 1, len(y)))
    for t in range(iterations + 1):
        r = y - J @ c
        out[t] = r
        c = c + step * (J.T @ r)
    return out


def predicted_residual(W: np.ndarray, s: np.ndarray, y: np.ndarray, step: float, tau: int | np.ndarray) -> np.ndarray:
    """sum_i w_i <w_i, y> (1 - eta s_i^2)^tau (Prop. 1), W with orthonormal columns w_i, s_i singular values.

    ``tau`` may be an array of iterations: returns one residual per row.
    """
    coef = W.T @ y
    taus = np.atleast_1d(tau)
    factors = (1.0 - step * s[None, :] ** 2) ** taus[:, None]
    res = (factors * coef[None, :]) @ W.T
    return res[0] if np.ndim(tau) == 0 else res


def predicted_fit(W, s, y, step, tau):
    """y - residual: the linearised model's output after tau GD steps from output 0."""
    return y - predicted_residual(W, s, y, step, tau)


def stopping_time(n: int, p: int, step: float, sigma_p1: float) -> float:
    """Theorem 1 (denoising): tau = log(1 - sqrt(p/n)) / log(1 - eta sigma_{p+1}^2)."""
    return float(np.log(1.0 - np.sqrt(p / n)) / np.log(1.0 - step * sigma_p1**2))


def theorem1_bound(x_norm: float, noise_level: float, n: int, p: int, step: float, sigma_p: float,
                   tau: float, eps_y: float = 0.0) -> float:
    """(1 - eta sigma_p^2)^tau ||x|| + varsigma sqrt(2p/n) + eps ||y|| (eq. 7; eps_y = eps ||y||)."""
    return float((1.0 - step * sigma_p**2) ** tau * x_norm + noise_level * np.sqrt(2.0 * p / n) + eps_y)


def theorem2_bound(W, s, x, z, step, tau, p, eps_y: float = 0.0) -> float:
    """(1 - eta s_p^2)^tau ||x|| + sqrt(sum_i ((1 - eta s_i^2)^tau - 1)^2 <w_i, z>^2) + eps ||y||."""
    f = (1.0 - step * s**2) ** tau
    noise = np.sqrt(np.sum((f - 1.0) ** 2 * (W.T @ z) ** 2))
    return float((1.0 - step * s[p - 1] ** 2) ** tau * np.linalg.norm(x) + noise + eps_y)


def smooth_signal(W: np.ndarray, p: int, seed: int = 0, norm: float = 1.0) -> np.ndarray:
    """A random p-smooth signal: a Gaussian combination of the first p columns of W, scaled to ``norm``."""
    a = np.random.default_rng(seed).standard_normal(p)
    x = W[:, :p] @ a
    return norm * x / np.linalg.norm(x)


def spectral_generator(W: np.ndarray, s: np.ndarray, N: int, seed: int = 0) -> np.ndarray:
    """A wide J = W diag(s) V^T in R^{n x N} with random orthonormal V (N >= n)."""
    n = W.shape[0]
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((N, n)))
    return (W * s[None, :]) @ q.T


def min_norm_estimate(A: np.ndarray, J: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x_hat = J c_hat with c_hat = argmin ||c|| s.t. A J c = y (= GD from 0 run to convergence)."""
    c_hat = np.linalg.lstsq(A @ J, y, rcond=None)[0]
    return J @ c_hat


def cs_theorem1_rhs(W: np.ndarray, s: np.ndarray, x: np.ndarray, m: int) -> float:
    """(sum_i <w_i, x>^2 / s_i^2) * sum_{i > 2m/3} s_i^2 (CS Theorem 1 without its constant C)."""
    coef = W.T @ x
    i = np.arange(1, len(s) + 1)
    return float(np.sum(coef**2 / s**2) * np.sum(s[i > 2 * m / 3] ** 2))


def geometric_bound(gamma: float, m: int, x_norm: float) -> float:
    """gamma^{m/3} / (1 - gamma) ||x||^2, eq. (8) without C, for s_i^2 = gamma^i, x in span(w_1..w_{m/3})."""
    return float(gamma ** (m / 3) / (1.0 - gamma) * x_norm**2)


def gaussian_matrix(m: int, n: int, seed: int = 0) -> np.ndarray:
    """A in R^{m x n} with iid N(0, 1/m) entries (numpy twin of operators.gaussian.GaussianMatrix)."""
    return np.random.default_rng(seed).standard_normal((m, n)) / np.sqrt(m)
