"""Drivers for the experiments of Buskulic, Fadili & Queau (2023), Section 5 (Figs. 1-3).

Each returns plain numpy arrays / dicts; ``scripts/reproduce_buskulic.py`` plots them.
The paper does not state its step size; ours is a fixed ``step`` (default 1.0) shared by all runs.
``device`` says where the batched training runs (the problems are drawn on the CPU, then moved).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm import tqdm

from . import network as bk


def success_map(rows, ks, fixed: dict, row_name: str, runs: int, iters: int, step: float,
                tol: float = 1e-7, seed: int = 0, desc: str = "map", device: str = "cpu") -> np.ndarray:
    """Fraction of ``runs`` networks whose loss 1/2||y(t) - y||^2 falls below ``tol`` within ``iters``.

    ``rows`` are the values of ``row_name`` ("n" or "m"); ``fixed`` gives the others (n/m, d).
    Returns an array (len(rows), len(ks)).
    """
    out = np.zeros((len(rows), len(ks)))
    bar = tqdm(total=len(rows) * len(ks), desc=desc, leave=False)
    for i, r in enumerate(rows):
        for j, k in enumerate(ks):
            dims = dict(fixed, **{row_name: int(r)})
            batch = bk.random_batch(runs, dims["n"], dims["m"], int(k), d=dims["d"],
                                    seed=seed + 7919 * i + 104729 * j, device=device)
            res = bk.train(batch, step, iters, p=0.0, tol=tol)
            out[i, j] = float((res.iters_to_tol >= 0).double().mean())
            bar.update(1)
    bar.close()
    return out


def required_k(rate_map: np.ndarray, ks, level: float = 0.5) -> np.ndarray:
    """Per row, the k at which the success rate first reaches ``level`` (log-linear interpolation
    between grid points); nan where it is never reached."""
    ks = np.asarray(ks, dtype=float)
    out = np.full(rate_map.shape[0], np.nan)
    for i, row in enumerate(rate_map):
        idx = np.nonzero(row >= level)[0]
        if idx.size == 0:
            continue
        j = idx[0]
        if j == 0:
            out[i] = ks[0]
            continue
        r0, r1 = row[j - 1], row[j]
        frac = (level - r0) / (r1 - r0) if r1 > r0 else 1.0
        out[i] = math.exp(math.log(ks[j - 1]) + frac * (math.log(ks[j]) - math.log(ks[j - 1])))
    return out


def fit_boundary(xs, kreq, power: int):
    """Least-squares fit k = c x^power + b through the finite (x, required k) points.

    power = 2 for the paper's quadratic (k ~ n^2) boundary, 1 for the linear (k ~ m) one.
    Returns (c, b) or (nan, nan) with fewer than two points.
    """
    xs = np.asarray(xs, dtype=float)
    ok = np.isfinite(kreq)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    c, b = np.polyfit(xs[ok] ** power, kreq[ok], 1)
    return float(c), float(b)


def signal_vs_noise(n: int, betas, runs: int, iters: int, step: float, k: int, p: float = 0.2,
                    log_every: int = 100, seed: int = 0, device: str = "cpu") -> dict:
    """Fig. 2a: ||x(t) - x_bar|| under uniform noise U(-beta, beta), n = m, A fixed with singular
    values 1/(z^2 + 1), z = 0..n-1, p-loss. x_bar is drawn in the range of the network (x_bar =
    g(u, W*) for a random W*) so that dist(x_bar, Sigma) = 0 and (13) reduces to
    optimisation + noise terms; mu_{F,Sigma} = sigma_min(A) because Sigma spans R^n."""
    svals = 1.0 / (np.arange(n) ** 2 + 1.0)
    a = bk.matrix_with_singular_values(svals, seed=seed + 1)
    mu = float(svals.min())
    out = {"it": None, "mean": [], "std": [], "bound": [], "betas": list(betas), "mu": mu}
    for bi, beta in enumerate(tqdm(betas, desc="fig2a", leave=False)):
        base = bk.random_batch(runs, n, n, k, seed=seed + 31 * bi, device=device)
        # x_bar = V phi(z*) / sqrt(k) for an independent z*: a signal the network can produce.
        zstar = torch.randn(base.z0.shape, generator=torch.Generator().manual_seed(seed + 99 + bi),
                            dtype=bk.DT).to(device)
        x_bar = base.signal(zstar)
        batch = bk.random_batch(runs, n, n, k, seed=seed + 31 * bi, a=a, noise_beta=beta, x_bar=x_bar,
                                device=device)
        batch.v = base.v  # same V as used to build x_bar, so x_bar lies in Sigma
        res = bk.train(batch, step, iters, p=p, tol=0.0, log_every=log_every, track_signal=True)
        err = res.history["signal_err"]
        out["it"] = res.history["it"]
        out["mean"].append(err.mean(1))
        out["std"].append(err.std(1))
        # E||eps|| <= sqrt(E||eps||^2) = beta sqrt(m/3); the noise term ||eps|| / mu of (13).
        out["bound"].append(beta * math.sqrt(n / 3.0) / mu)
    return out


def final_loss_vs_k(n: int, m: int, ks, betas, runs: int, iters: int, step: float, p: float = 0.1,
                    d: int = 10, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Fig. 2b: mean final loss eta(||y(t_end) - y||^2) against k, per noise level; (len(betas), len(ks))."""
    out = np.zeros((len(betas), len(ks)))
    bar = tqdm(total=len(betas) * len(ks), desc="fig2b", leave=False)
    for i, beta in enumerate(betas):
        for j, k in enumerate(ks):
            batch = bk.random_batch(runs, n, m, int(k), d=d, seed=seed + 17 * i + 1009 * j,
                                    noise_beta=beta, device=device)
            res = bk.train(batch, step, iters, p=p, tol=0.0)
            out[i, j] = float(res.final_loss.mean())
            bar.update(1)
    bar.close()
    return out


def loss_curves_vs_p(n: int, m: int, k: int, ps, runs: int, iters: int, step: float,
                     log_every: int, tol: float = 1e-14, seed: int = 0, device: str = "cpu") -> dict:
    """Fig. 3: mean loss and mean residual ||y(t) - y|| per iteration for each p (same problems
    for every p). The residual is comparable across p; the loss eta(s) is a different function
    for each p."""
    out = {"it": [], "loss": [], "resid": [], "ps": list(ps)}
    for p in tqdm(ps, desc="fig3", leave=False):
        batch = bk.random_batch(runs, n, m, k, seed=seed, device=device)
        res = bk.train(batch, step, iters, p=float(p), tol=tol, log_every=log_every)
        out["it"].append(res.history["it"])  # runs stop at tol, so lengths differ per p
        out["loss"].append(res.history["loss"].mean(1))
        out["resid"].append(res.history["resid"].mean(1))
    return out


def lemma_3_10_checks(n: int, m: int, k: int, runs: int, iters: int, step: float,
                      log_every: int, seed: int = 0, device: str = "cpu") -> dict:
    """Radii of (9), condition (8), and Lemma 3.10 along discrete GD trajectories (MSE loss).

    (i)  whenever ||W(t) - W0||_F <= R: sigma_min(J_g(t)) >= sigma_min(J_g(0))/2;
    (ii) if sigma_min(J_g(s)) >= sigma_min(J_g(0))/2 for s <= t, then ||W(t) - W0||_F <= R'
         (proved for the gradient flow; we check GD with a small step);
    (iii) if R' < R: sigma_min(J_g(t)) >= sigma_min(J_g(0))/2 for all t.
    Returns per-run booleans (True where the premise fails, i.e. vacuous) and the radii.
    """
    batch = bk.random_batch(runs, n, m, k, seed=seed, device=device)
    rad = {key: val.cpu() for key, val in bk.radii(batch).items()}
    res = bk.train(batch, step, iters, p=0.0, tol=0.0, log_every=log_every, track_jacobian=True)
    dist, smin = res.history["dist"], res.history["sigma_min"]  # (T, R)
    s0 = rad["sigma_min_J0"].numpy()
    half = smin >= s0[None, :] / 2 - 1e-12
    in_r = dist <= rad["R"].numpy()[None, :]
    check_i = np.all(~in_r | half, axis=0)
    stay = np.cumprod(half, axis=0).astype(bool)  # premise of (ii) up to each logged t
    check_ii = np.all(~stay | (dist <= rad["R_prime"].numpy()[None, :] + 1e-12), axis=0)
    cond8 = rad["cond8"].numpy()
    check_iii = np.where(cond8, half.all(axis=0), True)
    return {
        "sigma_min_J0": s0, "sigma_F": rad["sigma_F"].numpy(), "R": rad["R"].numpy(),
        "R_prime": rad["R_prime"].numpy(), "cond8": cond8, "check_i": check_i,
        "check_ii": check_ii, "check_iii": check_iii, "max_dist": dist.max(0),
        "min_sigma_ratio": (smin / s0[None, :]).min(0), "final_loss": res.final_loss.cpu().numpy(),
    }
