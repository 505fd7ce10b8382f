"""Experiments for Hand & Voroninski (COLT 2018): concentration of v around h, the landscape along
the x0 axis, empirical WDC/RRIC constants, and gradient descent success rates.

The paper itself has no experiments; these check its theorems numerically. Plots live in
``scripts/reproduce_hand_voroninski.py``. ``device`` says where the networks and matrices live
(random draws are made on the CPU, then moved); the closed forms are numpy, on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from . import closed_forms as ht
from . import network as hn

DT = hn.DT


def expansive_widths(k: int, depth: int, factor: int) -> tuple:
    """(k, factor k, factor^2 k, ...): n_i = factor n_{i-1}, expansive when factor >~ log n_{i-1}."""
    return tuple(k * factor**i for i in range(depth + 1))


def _matrix(m, n, seed, device="cpu"):
    """A iid N(0, 1/m), or None for the identity (no compression, their Corollary 5) when m is None."""
    return None if m is None else hn.measurement_matrix(m, n, seed=seed, device=device)


def _randn(k: int, g: torch.Generator, device: str) -> torch.Tensor:
    """N(0, I_k) drawn on the CPU (the same numbers on every device), then moved."""
    return torch.randn(k, generator=g, dtype=DT).to(device)


def concentration_error(widths, m, n_points: int = 20, seed: int = 0, device: str = "cpu") -> dict:
    """Max and mean over random (x, x0) of ||v_{x,x0} - h_{x,x0}|| / (2^{-d} max(||x||, ||x0||)).

    Theorem 4's proof bounds this normalised deviation by O(d^3 sqrt(eps)) under WDC/RRIC with
    constant eps, so it should shrink as the widths (and m) grow. m=None: A = I.
    """
    gen = hn.random_generator(widths, seed=seed, device=device)
    a = _matrix(m, widths[-1], seed + 1, device)
    d, k = gen.depth, gen.k
    g = torch.Generator().manual_seed(seed + 2)
    errs = []
    for _ in range(n_points):
        x, x0 = _randn(k, g, device), _randn(k, g, device)
        v = hn.descent_vector(gen, a, x, x0).cpu().numpy()
        h = ht.h_vector(x.cpu().numpy(), x0.cpu().numpy(), d)
        scale = max(float(x.norm()), float(x0.norm())) / 2.0**d
        errs.append(np.linalg.norm(v - h) / scale)
    return {"max": float(np.max(errs)), "mean": float(np.mean(errs))}


def axis_profile(widths, m: int, ts, seed: int = 0, device: str = "cpu") -> dict:
    """Along x = t x0 (||x0|| = 1): 2^d <v_{x,x0}, x0>, 2^d f(x), and their large-width predictions
    2^d <h_{x,x0}, x0> and 2^d f_expected. The empirical zero of the first on t < 0 locates the
    spurious critical neighbourhood (predicted at t = -rho_d). m=None: A = I."""
    gen = hn.random_generator(widths, seed=seed, device=device)
    a = _matrix(m, widths[-1], seed + 1, device)
    d, k = gen.depth, gen.k
    x0 = _randn(k, torch.Generator().manual_seed(seed + 2), device)
    x0 = x0 / x0.norm()
    ay0 = hn._measure(a, hn.forward(gen, x0))
    v_emp, f_emp, v_th, f_th = [], [], [], []
    for t in ts:
        x = float(t) * x0
        v_emp.append(float(hn.descent_vector(gen, a, x, x0, ay0=ay0) @ x0) * 2.0**d)
        f_emp.append(float(hn.risk(gen, a, x, x0)) * 2.0**d)
        xn, x0n = x.cpu().numpy(), x0.cpu().numpy()
        if t != 0:
            v_th.append(float(ht.h_vector(xn, x0n, d) @ x0n) * 2.0**d)
        else:
            v_th.append(float("nan"))
        f_th.append(ht.f_expected(xn, x0n, d) * 2.0**d)
    return {"t": np.asarray(ts, dtype=float), "v_emp": np.array(v_emp), "f_emp": np.array(f_emp),
            "v_theory": np.array(v_th), "f_theory": np.array(f_th), "rho": ht.rho(d)}


def negative_zero(t: np.ndarray, vals: np.ndarray) -> float:
    """The sign change of ``vals`` on t < 0 closest to t = 0 (linear interpolation), nan if none."""
    best = float("nan")
    for i in range(len(t) - 1):
        if t[i + 1] >= 0 or not (np.isfinite(vals[i]) and np.isfinite(vals[i + 1])):
            continue
        if vals[i] == 0 or vals[i] * vals[i + 1] < 0:
            z = t[i] - vals[i] * (t[i + 1] - t[i]) / (vals[i + 1] - vals[i])
            best = z  # keep the last (closest to 0)
    return float(best)


def landscape_plane(widths, m: int, grid: int, span: float = 1.6, seed: int = 0, device: str = "cpu") -> dict:
    """2^d f on the plane spanned by x0 (||x0|| = 1) and a unit vector orthogonal to it."""
    gen = hn.random_generator(widths, seed=seed, device=device)
    a = hn.measurement_matrix(m, widths[-1], seed=seed + 1, device=device)
    k, d = gen.k, gen.depth
    g = torch.Generator().manual_seed(seed + 2)
    x0 = _randn(k, g, device)
    x0 = x0 / x0.norm()
    e = _randn(k, g, device)
    e = e - (e @ x0) * x0
    e = e / e.norm()
    s = torch.linspace(-span, span, grid, dtype=DT).to(device)
    aa, bb = torch.meshgrid(s, s, indexing="xy")
    pts = aa[..., None] * x0 + bb[..., None] * e
    ay0 = a @ hn.forward(gen, x0)
    # Row by row: a (grid, grid, n) batch of outputs would not fit in memory for wide networks.
    f = torch.stack([0.5 * ((hn.forward(gen, row) @ a.T - ay0) ** 2).sum(-1) for row in pts])
    f = f * 2.0**d
    pts, x0n = pts.cpu().numpy(), x0.cpu().numpy()
    fth = np.array([[ht.f_expected(p, x0n, d) for p in row] for row in pts]) * 2.0**d
    return {"s": s.cpu().numpy(), "f": f.cpu().numpy(), "f_theory": fth, "rho": ht.rho(d)}


def wdc_rric_vs_width(k: int, depth: int, factors, m_factor: int, n_samples: int = 100,
                      seed: int = 0, device: str = "cpu") -> dict:
    """Sampled WDC constant (max over layers) and RRIC constant for growing expansion factors.

    Sampled maxima are LOWER bounds on the constants (which are suprema over all inputs).
    """
    out = {"factors": list(factors), "wdc": [], "rric": []}
    for fct in factors:
        widths = expansive_widths(k, depth, fct)
        gen = hn.random_generator(widths, seed=seed, device=device)
        a = hn.measurement_matrix(m_factor * k * depth, widths[-1], seed=seed + 1, device=device)
        out["wdc"].append(max(hn.empirical_wdc(w, n_samples, seed=seed + 3) for w in gen.weights))
        out["rric"].append(hn.empirical_rric(gen, a, n_samples, seed=seed + 4))
    return out


def gd_success(widths, m: int, trials: int, iters: int, sign_check: bool, init: str = "random",
               success_tol: float = 1e-3, seed: int = 0, device: str = "cpu") -> dict:
    """Fraction of trials (a fresh G, A, x0 each) where GD ends within ``success_tol`` of x0.

    init="random": x_init ~ N(0, I_k); init="negative": x_init = -x0 + small noise, inside the
    basin around -rho_d x0 that the negation check is meant to escape.
    """
    ok, near_neg = 0, 0
    for t in range(trials):
        s = seed + 1000 * t
        gen = hn.random_generator(widths, seed=s, device=device)
        a = hn.measurement_matrix(m, widths[-1], seed=s + 1, device=device)
        g = torch.Generator().manual_seed(s + 2)
        x0 = _randn(widths[0], g, device)
        if init == "random":
            xi = _randn(widths[0], g, device)
        else:
            xi = -x0 + 0.05 * x0.norm() * _randn(widths[0], g, device) / math.sqrt(widths[0])
        r = hn.gradient_descent(gen, a, x0, xi, iters=iters, sign_check=sign_check, tol=success_tol / 10)
        ok += r.rel_error < success_tol
        near_neg += float(r.x @ x0) < 0
    return {"success": ok / trials, "ended_on_negative_side": near_neg / trials}


def success_grid(param_values, make_case, trials, iters, init="random", seed=0, desc="gd", device="cpu") -> dict:
    """Success rates with and without the negation check for each value of a swept parameter.

    ``make_case(value) -> (widths, m)``.
    """
    out = {"values": list(param_values), "with_check": [], "without_check": []}
    for val in tqdm(param_values, desc=desc, leave=False):
        widths, m = make_case(val)
        out["with_check"].append(gd_success(widths, m, trials, iters, True, init, seed=seed, device=device)["success"])
        out["without_check"].append(gd_success(widths, m, trials, iters, False, init, seed=seed,
                                               device=device)["success"])
    return out
