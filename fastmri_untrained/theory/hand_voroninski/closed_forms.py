"""Closed forms of Hand & Voroninski (COLT 2018): the angle map g, rho_d, h_{x,x0}.

For a d-layer ReLU generator with iid N(0, 1/n_i) weights, the descent vector of
f(x) = 1/2 ||A G(x) - A G(x0)||^2 concentrates around h_{x,x0} (their Section 2), a continuous
function that vanishes only at x = x0 and x = -rho_d x0. Everything here is deterministic.
"""

from __future__ import annotations

import math

import numpy as np


def theta_map(theta):
    """g(theta) = arccos(((pi - theta) cos theta + sin theta) / pi), the angle after one ReLU layer.

    Maps [0, pi] into [0, pi/2], is increasing and lies below the identity (their Fig. 2.1).
    """
    theta = np.asarray(theta, dtype=np.float64)
    c = ((math.pi - theta) * np.cos(theta) + np.sin(theta)) / math.pi
    return np.arccos(np.clip(c, -1.0, 1.0))


def theta_sequence(theta0: float, d: int) -> np.ndarray:
    """[theta_bar_0, ..., theta_bar_{d}] with theta_bar_0 = theta0 and theta_bar_i = g(theta_bar_{i-1})."""
    out = [float(theta0)]
    for _ in range(d):
        out.append(float(theta_map(out[-1])))
    return np.array(out)


def _products(thetas: np.ndarray, d: int):
    """P = prod_{i<d} (pi - th_i)/pi and S = sum_i sin(th_i)/pi prod_{i<j<d} (pi - th_j)/pi."""
    frac = (math.pi - thetas[:d]) / math.pi
    prod_all = float(np.prod(frac))
    s = 0.0
    for i in range(d):
        s += math.sin(thetas[i]) / math.pi * float(np.prod(frac[i + 1 : d]))
    return prod_all, s


def rho(d: int) -> float:
    """rho_d = sum_i sin(th_i)/pi prod_{j>i} (pi - th_j)/pi with th_0 = pi (so h vanishes at -rho_d x0).

    rho_1 = 0, rho_2 = 1/pi, rho_d increases to 1.
    """
    if d < 1:
        raise ValueError(f"depth must be >= 1, got {d}")
    return _products(theta_sequence(math.pi, d), d)[1]


def rho_recursive(d: int) -> float:
    """rho_d by the README's recursion rho_{d+1} = (1 - th_d/pi) rho_d + sin(th_d)/pi, rho_1 = 0.

    An independent evaluation used to cross-check ``rho`` (th_0 = pi, th_i = g(th_{i-1})).
    """
    th = theta_sequence(math.pi, d)
    r = 0.0  # rho_1
    for i in range(1, d):
        r = (1.0 - th[i] / math.pi) * r + math.sin(th[i]) / math.pi
    return r


def angle(x: np.ndarray, y: np.ndarray) -> float:
    """The angle between nonzero vectors, in [0, pi] (clipped against rounding)."""
    c = float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    return math.acos(max(-1.0, min(1.0, c)))


def h_vector(x: np.ndarray, x0: np.ndarray, d: int) -> np.ndarray:
    """h_{x,x0} of their Section 1.4 (the limit of the descent vector for nonzero x, x0).

    h = -2^{-d} P x0 + 2^{-d} [x - S ||x0||/||x|| x], with P, S the products over the angle
    sequence starting at theta_bar_0 = angle(x, x0).
    """
    x = np.asarray(x, dtype=np.float64)
    x0 = np.asarray(x0, dtype=np.float64)
    p, s = _products(theta_sequence(angle(x, x0), d), d)
    return (-p * x0 + x - s * np.linalg.norm(x0) / np.linalg.norm(x) * x) / 2.0**d


def f_expected(x: np.ndarray, x0: np.ndarray, d: int) -> float:
    """Large-width limit of f: 2^{-(d+1)} (||x||^2 + ||x0||^2 - 2 ||x|| ||x0|| cos theta_bar_d).

    Each ReLU layer with N(0, 1/n_i) rows halves squared norms and maps angles by g, and A is a
    near-isometry on the range, so f concentrates around this value.
    """
    nx, n0 = float(np.linalg.norm(x)), float(np.linalg.norm(x0))
    if nx == 0.0:
        return n0**2 / 2.0 ** (d + 1)
    th_d = theta_sequence(angle(x, x0), d)[-1]
    return (nx**2 + n0**2 - 2.0 * nx * n0 * math.cos(th_d)) / 2.0 ** (d + 1)


def h_along_axis(t: np.ndarray, d: int) -> np.ndarray:
    """<h_{x,x0}, x0_hat> at x = t x0_hat, ||x0|| = 1 (a scalar function of t, zero at 1 and -rho_d)."""
    x0 = np.array([1.0, 0.0])
    return np.array([h_vector(np.array([ti, 0.0]), x0, d)[0] if ti != 0 else np.nan for ti in t])
