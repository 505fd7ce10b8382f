"""Two-layer DIP of Buskulic, Fadili & Queau (2023): constants, batched training, diagnostics.

Network g(u, W) = V phi(W u) / sqrt(k): u in R^d uniform on the sphere, W in R^{k x d} iid N(0,1)
(trained), V in R^{n x k} with iid +-1 entries (fixed), phi the sigmoid. Signal x = g in R^n,
measurements y = A x in R^m; k is the hidden width.

Only W is trained and it enters through z = W u in R^k. A gradient step on W,
W <- W - eta (grad_z) u^T, moves z by -eta ||u||^2 grad_z = -eta grad_z because ||u|| = 1, so
gradient descent on W is exactly gradient descent on z started at z(0) = W(0) u ~ N(0, I_k), and
||W(t) - W(0)||_F = ||z(t) - z(0)||. This is why d plays no role (their Remark 4.5) and why 50 runs
batch into one (runs, k) tensor. ``train_w_explicit`` checks the equivalence on small sizes.

Training runs on the device of the batch; problems are drawn on the CPU and then moved, so a seed
gives the same problems on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DT = torch.float64
B_SIGMOID = 0.25  # sup|phi'| = 1/4 and phi' is 1/4-Lipschitz too: the constant B of A-5
LIP_SIGMOID_PRIME = 1.0 / (6.0 * math.sqrt(3.0))  # sup|phi''|, the sharp Lipschitz constant of phi'


def sigmoid(x):
    return torch.sigmoid(x)


def sigmoid_prime(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def activation_constants(n_nodes: int = 200):
    """(C_phi, C_phi') = (sqrt E[phi(X)^2], sqrt E[phi'(X)^2]), X ~ N(0,1), by Gauss-Hermite quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)  # weight exp(-x^2/2)
    w = w / math.sqrt(2 * math.pi)
    s = 1.0 / (1.0 + np.exp(-x))
    return float(np.sqrt(np.sum(w * s**2))), float(np.sqrt(np.sum(w * (s * (1 - s)) ** 2)))


def activation_constants_quad():
    """The same constants by adaptive quadrature (scipy.integrate.quad), as an independent check."""
    from scipy.integrate import quad

    dens = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    c = quad(lambda x: sig(x) ** 2 * dens(x), -40.0, 40.0, epsabs=1e-14, limit=200)[0]
    cp = quad(lambda x: (sig(x) * (1 - sig(x))) ** 2 * dens(x), -40.0, 40.0, epsabs=1e-14, limit=200)[0]
    return math.sqrt(c), math.sqrt(cp)


# ---------------------------------------------------------------------------------------------
# Problems


@dataclass
class Batch:
    """R independent problems. a: (R,m,n), v: (R,n,k), z0: (R,k), x_bar: (R,n), y: (R,m)."""

    a: torch.Tensor
    v: torch.Tensor
    z0: torch.Tensor
    x_bar: torch.Tensor
    y: torch.Tensor
    y_clean: torch.Tensor

    @property
    def k(self) -> int:
        return self.v.shape[-1]

    def m_mat(self) -> torch.Tensor:
        """M = A V / sqrt(k), (R, m, k): y(z) = M phi(z)."""
        return self.a @ self.v / math.sqrt(self.k)

    def signal(self, z: torch.Tensor) -> torch.Tensor:
        """x = V phi(z) / sqrt(k), (R, n)."""
        return (self.v @ sigmoid(z)[..., None])[..., 0] / math.sqrt(self.k)


def random_batch(runs, n, m, k, d=10, seed=0, a=None, noise_beta=0.0, x_bar=None,
                 a_reading: str = "std", device: str = "cpu") -> Batch:
    """Draw R = ``runs`` problems as in the paper's Section 5.

    A iid N(0, 1/n) (std 1/sqrt(n), the README's reading of "N(0, 1/sqrt n)") unless ``a`` (m x n)
    is given and shared; x_bar iid N(0,1); V iid +-1; u uniform on S^{d-1}; W(0) iid N(0,1), z0 = W(0) u.
    Noise: y = A x_bar + eps with eps iid U(-beta, beta). ``a_reading="var"`` takes the printed
    "N(0, 1/sqrt n)" literally as variance 1/sqrt(n) (std n^{-1/4}) instead. The batch lives on
    ``device``; a given ``a`` and ``x_bar`` may be on any device.
    """
    if a_reading not in ("std", "var"):
        raise ValueError(f"a_reading must be 'std' or 'var', got {a_reading!r}")
    g = torch.Generator().manual_seed(int(seed))
    if a is None:
        a_std = n**-0.5 if a_reading == "std" else n**-0.25
        a = torch.randn(runs, m, n, generator=g, dtype=DT) * a_std
    else:
        a = a.to("cpu", DT).expand(runs, m, n)
    v = torch.randint(0, 2, (runs, n, k), generator=g).to(DT) * 2 - 1
    u = torch.randn(runs, d, generator=g, dtype=DT)
    u = u / torch.linalg.norm(u, dim=-1, keepdim=True)
    w0 = torch.randn(runs, k, d, generator=g, dtype=DT)
    z0 = (w0 @ u[..., None])[..., 0]
    if x_bar is None:
        x_bar = torch.randn(runs, n, generator=g, dtype=DT)
    x_bar = x_bar.to("cpu")
    y_clean = (a @ x_bar[..., None])[..., 0]
    eps = (torch.rand(runs, m, generator=g, dtype=DT) * 2 - 1) * noise_beta
    return Batch(*(t.to(device) for t in (a, v, z0, x_bar, y_clean + eps, y_clean)))


def matrix_with_singular_values(svals, seed=0) -> torch.Tensor:
    """A = U diag(svals) V^T with Haar-random orthogonal U, V (square)."""
    g = torch.Generator().manual_seed(int(seed))
    n = len(svals)
    q1, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
    q2, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
    return q1 @ torch.diag(torch.as_tensor(svals, dtype=DT)) @ q2.T


# ---------------------------------------------------------------------------------------------
# Losses: L(y(t)) = eta(||y(t) - y||^2), eta(s) = s^(p+1) / (2(p+1)); p = 0 is 1/2 ||.||^2.


def loss(resid: torch.Tensor, p: float = 0.0) -> torch.Tensor:
    s = (resid * resid).sum(-1)
    return s ** (p + 1) / (2 * (p + 1))


def loss_grad(resid: torch.Tensor, p: float = 0.0) -> torch.Tensor:
    """grad_v eta(||v - y||^2) = 2 eta'(s) (v - y) = s^p (v - y)."""
    if p == 0.0:
        return resid
    s = (resid * resid).sum(-1, keepdim=True)
    return s**p * resid


def psi(loss_value, p: float = 0.0):
    """Desingularizing function of the p-loss: psi(L) = (2(p+1) L)^{1/(2(p+1))} (= ||v - y||).

    From psi'(L) ||grad L|| = 1 with ||grad L|| = s^{p+1/2} and L = s^{p+1}/(2(p+1)): a
    Lojasiewicz exponent alpha = 1/(2(p+1)), so alpha = 1/2 (exponential rate) only for p = 0.
    """
    return (2 * (p + 1) * loss_value) ** (1.0 / (2 * (p + 1)))


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainResult:
    z: torch.Tensor  # (R, k) final
    final_loss: torch.Tensor  # (R,)
    iters_to_tol: torch.Tensor  # (R,) iteration at which loss < tol (-1 if never)
    history: dict  # logged arrays, each (n_logs, R)


def train(batch: Batch, step: float, iters: int, p: float = 0.0, tol: float = 1e-7,
          log_every: int = 0, track_signal: bool = False, track_jacobian: bool = False,
          progress=None) -> TrainResult:
    """Gradient descent with a fixed step on z (= on W), all runs at once.

    A run stops (is frozen) as soon as its loss drops below ``tol``, as in the paper.
    Logged every ``log_every`` iterations: loss, residual norm, ||z - z0|| (= ||W - W0||_F), and
    optionally the signal error ||x - x_bar|| and sigma_min(J_g).
    """
    mm = batch.m_mat()
    z = batch.z0.clone()
    runs = z.shape[0]
    active = torch.ones(runs, dtype=torch.bool, device=z.device)
    hit = torch.full((runs,), -1, dtype=torch.long, device=z.device)
    hist = {"it": [], "loss": [], "resid": [], "dist": [], "signal_err": [], "sigma_min": []}

    def log(it, lval, resid):
        hist["it"].append(it)
        hist["loss"].append(lval.clone())
        hist["resid"].append(torch.linalg.norm(resid, dim=-1))
        hist["dist"].append(torch.linalg.norm(z - batch.z0, dim=-1))
        if track_signal:
            hist["signal_err"].append(torch.linalg.norm(batch.signal(z) - batch.x_bar, dim=-1))
        if track_jacobian:
            hist["sigma_min"].append(sigma_min_jacobian(batch.v, z))

    it_range = range(iters + 1)
    if progress is not None:
        it_range = progress(it_range)
    for it in it_range:
        phi = sigmoid(z)
        resid = (mm @ phi[..., None])[..., 0] - batch.y
        lval = loss(resid, p)
        newly = active & (lval < tol)
        hit[newly] = it
        active = active & ~newly
        if log_every and it % log_every == 0:
            log(it, lval, resid)
        if it == iters or not bool(active.any()):
            break
        gz = (mm.transpose(-1, -2) @ loss_grad(resid, p)[..., None])[..., 0] * phi * (1 - phi)
        z = torch.where(active[:, None], z - step * gz, z)
    final_resid = (mm @ sigmoid(z)[..., None])[..., 0] - batch.y
    if log_every and hist["it"] and hist["it"][-1] != it:
        log(it, loss(final_resid, p), final_resid)
    history = {key: torch.stack(val).cpu().numpy() if val and key != "it" else np.array(val)
               for key, val in hist.items()}
    return TrainResult(z, loss(final_resid, p), hit, history)


def train_w_explicit(u, w0, v, a, y, step, iters, p=0.0):
    """Plain autograd gradient descent on W itself (one run), to check the z-reduction.

    Returns the list of losses and the final W.
    """
    w = w0.clone().requires_grad_(True)
    k = w.shape[0]
    losses = []
    for _ in range(iters):
        x = v @ torch.sigmoid(w @ u) / math.sqrt(k)
        lval = loss(a @ x - y, p)
        losses.append(float(lval.detach()))
        (gw,) = torch.autograd.grad(lval, w)
        with torch.no_grad():
            w -= step * gw
    return losses, w.detach()


# ---------------------------------------------------------------------------------------------
# Diagnostics of Theorem 3.2 / Lemma 3.10 / Lemma B.2-B.3


def sigma_min_jacobian(v: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """sigma_min(J_g) w.r.t. W, (R,): sqrt(lambda_min(H)), H = (1/k) V diag(phi'(z)^2) V^T (||u|| = 1).

    J_g is n x kd of rank <= k, so for k < n its n-th singular value is 0 (returned as 0).
    """
    n, k = v.shape[-2], v.shape[-1]
    if k < n:
        return torch.zeros(v.shape[0], dtype=DT, device=v.device)
    dp = sigmoid_prime(z)
    h = (v * dp[:, None, :] ** 2) @ v.transpose(-1, -2) / k
    return torch.sqrt(torch.clamp(torch.linalg.eigvalsh(h)[:, 0], min=0.0))


def sigma_f(a: torch.Tensor) -> torch.Tensor:
    """sigma_F of (7) for a linear F = A: the smallest nonzero singular value of A, (R,)."""
    s = torch.linalg.svdvals(a)
    return s.min(-1).values


def lip_jacobian_bound(n: int, k: int, lip_phi_prime: float = B_SIGMOID, d_bound: float = 1.0) -> float:
    """Lemma B.3: Lip(J_g) <= B D sqrt(n / k) (global, since V is fixed)."""
    return lip_phi_prime * d_bound * math.sqrt(n / k)


def radii(batch: Batch, p: float = 0.0, lip_phi_prime: float = B_SIGMOID) -> dict:
    """sigma_min(J_g(0)), sigma_F, R' and R of (9) for every run, and whether (8) R' < R holds.

    R' = 2 psi(L(y(0))) / (sigma_F sigma_min(J_g(0))), R = sigma_min(J_g(0)) / (2 Lip(J_g)).
    """
    n, k = batch.v.shape[-2], batch.k
    smin = sigma_min_jacobian(batch.v, batch.z0)
    sf = sigma_f(batch.a)
    resid = (batch.m_mat() @ sigmoid(batch.z0)[..., None])[..., 0] - batch.y
    ps = psi(loss(resid, p), p)
    # R' is infinite when J_g(0) is rank deficient (k < n): (8) cannot hold then.
    r_prime = torch.where(smin > 0, 2 * ps / (sf * smin.clamp(min=1e-300)), torch.full_like(smin, math.inf))
    r = smin / (2 * lip_jacobian_bound(n, k, lip_phi_prime))
    return {"sigma_min_J0": smin, "sigma_F": sf, "psi0": ps, "R_prime": r_prime, "R": r,
            "cond8": (smin > 0) & (r_prime < r)}
