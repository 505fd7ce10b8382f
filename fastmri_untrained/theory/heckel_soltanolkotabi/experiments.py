"""The exact (small-model) experiments of Heckel & Soltanolkotabi, ICLR 2020 and ICML 2020.

Each function returns a dict of plain numbers/lists (JSON-ready) that the scripts plot and the
tests assert on. Everything here is numpy float64 on the two-layer generator or linear models.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from . import dynamics, network
from .dual_kernel import (
    circulant,
    dual_kernel,
    dual_kernel_convolution_form,
    gaussian_kernel,
    monte_carlo_gram,
    sigma_matrix,
    sorted_basis,
    triangular_kernel,
)


def step_size(u: np.ndarray) -> float:
    """eta = 1 / ||F u||_inf^2, the theorems' step-size condition."""
    return float(1.0 / np.max(np.abs(np.fft.fftn(u))) ** 2)


# --------------------------------------------------------------------------- dual kernel
def dual_kernel_check(n: int = 300, shape_2d=(12, 16), seed: int = 0) -> dict:
    """Eigenvalues of Sigma(U) against sigma^2 for triangular, Gaussian and random kernels.

    Reports the max absolute and max relative (to the largest eigenvalue) mismatch, for the
    autocorrelation form (erratum) and for the printed convolution form. 1-D kernels of length n
    and 2-D kernels of ``shape_2d`` (U block-circulant; a non-square shape catches swapped axes).
    """
    rng = np.random.default_rng(seed)
    kernels = {"triangular(hw=10)": triangular_kernel(n, 10), "gaussian(std=5)": gaussian_kernel(n, 5),
               "random": rng.standard_normal(n), "2-D triangular(hw=4)": triangular_kernel(shape_2d, 4),
               "2-D random": rng.standard_normal(shape_2d)}
    out = {}
    for name, u in kernels.items():
        ev = np.sort(np.linalg.eigvalsh(sigma_matrix(circulant(u))))
        auto = np.sort(dual_kernel(u).ravel() ** 2)
        conv = np.sort(dual_kernel_convolution_form(u).ravel() ** 2)
        out[name] = {"max_abs_error": float(np.abs(ev - auto).max()),
                     "max_rel_error": float(np.abs(ev - auto).max() / ev.max()),
                     "convolution_form_max_abs_error": float(np.abs(ev - conv).max()),
                     "largest_eigenvalue": float(ev.max())}
    return out


def monte_carlo_convergence(n: int = 64, k: int = 64, samples=(1, 4, 16, 64, 256), half_width: float = 8,
                            seed: int = 0) -> dict:
    """||mean_S J J^T - Sigma(U)||_F / ||Sigma(U)||_F for S random C (k channels each)."""
    U = circulant(triangular_kernel(n, half_width))
    S = sigma_matrix(U)
    errs = [float(np.linalg.norm(monte_carlo_gram(U, k, s, seed) - S) / np.linalg.norm(S)) for s in samples]
    return {"samples": list(samples), "relative_error": errs, "k": k, "n": n}


def kernels_and_dual_kernels(n: int = 300, triangular=(2, 5, 10, 20), gaussian=(1, 3, 6)) -> dict:
    """Fig. 6 (ICLR) / Fig. 3 (ICML): kernels and their sorted dual kernels at output size n."""
    out = {}
    for hw in triangular:
        u = triangular_kernel(n, hw)
        out[f"triangular hw={hw}"] = {"kernel": u.tolist(), "sigma": sorted_basis(u)[1].tolist()}
    for s in gaussian:
        u = gaussian_kernel(n, s)
        out[f"gaussian std={s}"] = {"kernel": u.tolist(), "sigma": sorted_basis(u)[1].tolist()}
    return out


def decay_fit(sigma: np.ndarray, start: int = 10, stop: int | None = None) -> dict:
    """Fit log sigma_i against log i (power law) and against i (geometric) on indices start..stop.

    Returns both slopes and R^2; the better R^2 says which decay the measured weights follow.
    """
    stop = stop or len(sigma) // 2
    i = np.arange(start, stop) + 1.0
    ls = np.log(np.asarray(sigma)[start:stop])
    out = {}
    for name, xv in (("power_law", np.log(i)), ("geometric", i)):
        a, b = np.polyfit(xv, ls, 1)
        r2 = 1 - np.sum((ls - (a * xv + b)) ** 2) / np.sum((ls - ls.mean()) ** 2)
        out[name] = {"slope": float(a), "r2": float(r2)}
    return out


# --------------------------------------------------------------------------- Prop. 1 / Fig. 5
def linear_dynamics_check(n: int = 100, iterations: int = 200, seed: int = 0) -> dict:
    """GD on 1/2||y - J c||^2 against Prop. 1's closed form, J with decaying singular values.

    y = w_1 + z, z ~ N(0, I/n) (ICLR Fig. 5): also returns the fit of the signal component and of
    the noise component over iterations.
    """
    rng = np.random.default_rng(seed)
    W, _ = np.linalg.qr(rng.standard_normal((n, n)))
    s = np.linspace(1.0, 0.02, n) ** 2  # decaying singular values
    J = dynamics.spectral_generator(W, s, n, seed + 1)
    eta = 1.0 / s[0] ** 2
    signal = W[:, 0]
    z = rng.standard_normal(n) / np.sqrt(n)
    y = signal + z
    res = dynamics.linear_gd_residuals(J, y, eta, iterations)
    pred = dynamics.predicted_residual(W, s, y, eta, np.arange(iterations + 1))
    fit_signal = np.abs((y - res) @ signal)  # <w_1, J c_t>
    fit_noise = np.linalg.norm((y - res) - np.outer(fit_signal, signal), axis=1)
    return {"max_abs_error": float(np.abs(res - pred).max()), "singular_values": s.tolist(),
            "signal_fitted": fit_signal.tolist(), "noise_fitted": (fit_noise / np.linalg.norm(z)).tolist()}


# --------------------------------------------------------------------------- Theorems 1-2 (ICLR)
def two_layer_denoising(n=64, p: int = 5, half_width: float = 16, noise_level: float = 0.5,
                        ks=(512, 4096), omega_factor: float = 0.1, horizon: float = 4.0, seeds=(0, 1, 2),
                        show_progress: bool = True) -> dict:
    """Denoise p-smooth signals with the two-layer generator, GD with eta = 1/||Fu||^2.

    ``n`` is the signal length, or an image shape such as (16, 16): then u is the separable 2-D
    triangular kernel, U its block-circulant matrix and the basis the 2-D trigonometric one.
    For each k and seed: the error ||G(C_t) - x|| over t, the error at the stopping time tau of
    Theorem 1 against its bound (eq. 7 with the eps||y|| term left out), Theorem 2's curve, and the
    largest deviation from the linearised dynamics G(C_0) + (I - (I - eta Sigma)^t)(y - G(C_0)).
    """
    u = triangular_kernel(n, half_width)
    size = u.size
    U = circulant(u)
    W, s = sorted_basis(u)
    eta = step_size(u)
    tau = dynamics.stopping_time(size, p, eta, s[p])
    T = int(np.ceil(tau))
    iters = int(np.ceil(horizon * T))
    out = {"n": list(u.shape) if u.ndim > 1 else size, "size": size, "p": p, "half_width": half_width,
           "eta": eta, "tau": tau, "tau_int": T, "noise_level": noise_level, "sigma": s.tolist(), "runs": []}
    jobs = [(k, sd) for k in ks for sd in seeds]
    for k, sd in tqdm(jobs, desc="two-layer denoising", disable=not show_progress):
        x = dynamics.smooth_signal(W, p, seed=100 + sd)
        z = np.random.default_rng(200 + sd).standard_normal(size) * noise_level / np.sqrt(size)
        y = x + z
        omega = omega_factor * np.linalg.norm(y) / np.sqrt(size) / np.linalg.norm(u)
        r = network.fit_two_layer(U, y, network.GDConfig(iterations=iters, step=eta, k=k, omega=omega, seed=sd))
        outs = np.asarray(r.outputs)
        g0 = outs[0]
        lin = np.array([y - dynamics.predicted_residual(W, s, y - g0, eta, t) for t in r.iterations])
        err = np.linalg.norm(outs - x, axis=1)
        thm2 = [dynamics.theorem2_bound(W, s, x, z, eta, t, p) for t in r.iterations]
        best = int(np.argmin(err))
        out["runs"].append({
            "k": k, "seed": sd, "error": err.tolist(), "linear_error": np.linalg.norm(lin - x, axis=1).tolist(),
            "theorem2": thm2, "error_at_tau": float(err[T]),
            "theorem1_bound": dynamics.theorem1_bound(np.linalg.norm(x), noise_level, size, p, eta, s[p - 1], T),
            "noise_norm": float(np.linalg.norm(z)), "best_error": float(err[best]),
            "init_norm": float(np.linalg.norm(g0)), "signal": x.tolist(), "noisy": y.tolist(),
            "best_iteration": best, "output_at_tau": outs[T].tolist(), "output_best": outs[best].tolist(),
            "linear_deviation": float(np.linalg.norm(outs - lin, axis=1).max())})
    return out


# --------------------------------------------------------------------------- Theorem 1 (ICML)
def linear_cs(n: int = 256, p: int = 10, ms=(12, 18, 24, 30, 36, 48, 60, 90, 120), gamma: float | None = None,
              half_width: float = 8, N_factor: int = 4, trials: int = 5, seed: int = 0) -> dict:
    """Min-norm recovery x_hat = J (AJ)^+ y, y = A x*, against CS Theorem 1's right-hand side.

    The spectrum of J is the dual kernel of a triangular kernel (or gamma^i when ``gamma``), its left
    singular vectors the sorted trigonometric basis; x* is p-smooth. Errors are squared and relative
    to ||x*||^2, averaged over ``trials`` draws of A.
    """
    u = triangular_kernel(n, half_width)
    W, s = sorted_basis(u)
    if gamma is not None:
        s = np.sqrt(gamma ** np.arange(1, n + 1))
    J = dynamics.spectral_generator(W, s, N_factor * n, seed)
    x = dynamics.smooth_signal(W, p, seed=seed + 1)
    rows = []
    for m in ms:
        errs = []
        for t in range(trials):
            A = dynamics.gaussian_matrix(m, n, seed=1000 * t + m)
            xh = dynamics.min_norm_estimate(A, J, A @ x)
            errs.append(float(np.sum((xh - x) ** 2)))
        row = {"m": m, "error": float(np.mean(errs)), "error_max": float(np.max(errs)),
               "rhs": dynamics.cs_theorem1_rhs(W, s, x, m)}
        if gamma is not None:
            row["geometric_bound"] = dynamics.geometric_bound(gamma, m, 1.0) if p <= m / 3 else None
        rows.append(row)
    return {"n": n, "p": p, "gamma": gamma, "rows": rows}


# --------------------------------------------------------------------------- Theorem 2 (ICML)
def two_layer_cs(n: int = 64, ps=(3, 7), ms=(2, 4, 6, 8, 12, 16, 24, 32), half_width: float = 16,
                 k: int = 512, iterations: int = 1000, omega_factor: float = 0.1, seed: int = 0,
                 show_progress: bool = True) -> dict:
    """Two-layer generator fitted by GD through a Gaussian A (iid N(0,1/m)) until (near) convergence.

    For p-smooth x*: relative error ||G(C_T) - x*|| / ||x*|| against m, the final training loss, and
    the kernel-regime prediction G_0 + Sigma A^T (A Sigma A^T)^{-1}(y - A G_0).
    """
    u = triangular_kernel(n, half_width)
    U = circulant(u)
    W, _ = sorted_basis(u)
    S = sigma_matrix(U)
    out = {"n": n, "k": k, "iterations": iterations, "half_width": half_width, "curves": {}}
    jobs = [(p, m) for p in ps for m in ms]
    for p, m in tqdm(jobs, desc="two-layer CS", disable=not show_progress):
        x = dynamics.smooth_signal(W, p, seed=seed + 1)
        A = dynamics.gaussian_matrix(m, n, seed=seed + m)
        y = A @ x
        M = A @ S @ A.T
        eta = 0.9 / np.linalg.eigvalsh(M).max()
        omega = omega_factor * np.linalg.norm(y) / np.sqrt(n) / np.linalg.norm(u)
        r = network.fit_two_layer(U, y, network.GDConfig(iterations=iterations, step=eta, k=k, omega=omega,
                                                         seed=seed, record_every=iterations), A=A)
        g0 = r.outputs[0]
        lin = g0 + S @ A.T @ np.linalg.solve(M, y - A @ g0)
        out["curves"].setdefault(str(p), []).append({
            "m": m, "error": float(np.linalg.norm(r.output - x)), "linear_error": float(np.linalg.norm(lin - x)),
            "final_loss": r.loss[-1], "initial_loss": r.loss[0]})
    return out


def transition_point(rows: list, threshold: float = 0.1) -> float:
    """Smallest m from which on the error stays below ``threshold`` (inf if never)."""
    ms = [r["m"] for r in rows]
    ok = [r["error"] < threshold for r in rows]
    for i in range(len(ms)):
        if all(ok[i:]):
            return float(ms[i])
    return float("inf")
