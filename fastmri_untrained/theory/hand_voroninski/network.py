"""Random expansive ReLU generators, the empirical risk and its descent vector (Hand & Voroninski).

G(x) = relu(W_d ... relu(W_1 x)), W_i iid N(0, 1/n_i) (n_i the output width of layer i),
f(x) = 1/2 ||A G(x) - A G(x0)||^2 with A iid N(0, 1/m) (``GaussianMatrix``). The descent
vector v_{x,x0} is the gradient where f is differentiable and, elsewhere, the limit of gradients
along a direction w: ReLU masks are decided by the sign of the pre-activation and, on ties, by the
sign of its derivative along w (forward mode), which is what lim_{delta->0+} grad f(x + delta w)
sees. All in float64 torch, on the device of the weights; random draws are made on the CPU and
then moved, so a seed gives the same numbers on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fastmri_untrained.operators.gaussian import GaussianMatrix

DT = torch.float64


@dataclass
class Generator:
    """Weights [W_1, ..., W_d] (W_i of shape n_i x n_{i-1}) of a bias-free ReLU network."""

    weights: list

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def k(self) -> int:
        return self.weights[0].shape[1]

    @property
    def n(self) -> int:
        return self.weights[-1].shape[0]


def random_generator(widths, seed: int = 0, device: str = "cpu") -> Generator:
    """widths = (k, n_1, ..., n_d); W_i iid N(0, 1/n_i)."""
    g = torch.Generator().manual_seed(int(seed))
    ws = [
        (torch.randn(widths[i + 1], widths[i], generator=g, dtype=DT) / math.sqrt(widths[i + 1])).to(device)
        for i in range(len(widths) - 1)
    ]
    return Generator(ws)


def measurement_matrix(m: int, n: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """A in R^{m x n}, iid N(0, 1/m), from the project's GaussianMatrix operator."""
    return GaussianMatrix(m, n, seed=seed, dtype=DT).matrix.to(device)


def forward(gen: Generator, x: torch.Tensor) -> torch.Tensor:
    """G(x) for x of shape (..., k)."""
    for w in gen.weights:
        x = torch.relu(x @ w.T)
    return x


def masks(gen: Generator, x: torch.Tensor, direction: torch.Tensor | None = None):
    """The ReLU masks at x, ties (pre-activation exactly 0) broken by the derivative along ``direction``.

    Returns the list of boolean masks, one per layer, for a single x of shape (k,).
    """
    a = x
    da = direction if direction is not None else torch.zeros_like(x)
    out = []
    for w in gen.weights:
        p, dp = w @ a, w @ da
        mk = (p > 0) | ((p == 0) & (dp > 0))
        out.append(mk)
        a, da = p * mk, dp * mk
    return out


def lambda_matrix(gen: Generator, x: torch.Tensor, direction: torch.Tensor | None = None):
    """Lambda_x = prod_{i=d}^{1} W_{i,+,x} (n x k), so that G(x) = Lambda_x x."""
    lam = torch.eye(gen.k, dtype=DT, device=x.device)
    for w, mk in zip(gen.weights, masks(gen, x, direction)):
        lam = (w @ lam) * mk[:, None].to(DT)  # diag(mask) W Lambda, without copying W
    return lam


def _measure(a, v: torch.Tensor) -> torch.Tensor:
    """A v on the last dimension; ``a=None`` stands for A = I (no compression, no n x n matrix)."""
    return v if a is None else v @ a.T


def risk(gen: Generator, a, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """f(x) = 1/2 ||A G(x) - A G(x0)||^2 (x may carry leading batch dimensions; a=None: A = I)."""
    r = _measure(a, forward(gen, x) - forward(gen, x0))
    return 0.5 * (r * r).sum(-1)


def descent_vector(gen, a, x, x0, direction=None, ay0=None) -> torch.Tensor:
    """v_{x,x0} = Lambda_x^T A^T A (Lambda_x x - Lambda_{x0} x0), masks at x broken along ``direction``.

    Equals grad f(x) wherever f is differentiable; at kinks it is the one-sided limit of gradients
    along ``direction`` (a random direction if None and some pre-activation is exactly zero).
    """
    if direction is None:
        direction = torch.randn(x.shape, dtype=DT, generator=torch.Generator().manual_seed(12345)).to(x.device)
    if ay0 is None:
        ay0 = _measure(a, forward(gen, x0))
    al = _measure(a, lambda_matrix(gen, x, direction).T).T  # A Lambda_x, m x k
    return al.T @ (al @ x - ay0)


@dataclass
class GDResult:
    x: torch.Tensor
    converged: bool
    rel_error: float
    flips: int
    iterations: int


def gradient_descent(gen, a, x0, x_init, step=None, iters=500, sign_check=True, tol=1e-6):
    """Subgradient descent x <- x - step v_{x,x0}, optionally with the negation check.

    The check (Huang, Hand, Heckel & Voroninski 2018): before each step, replace x by -x when
    f(-x) < f(x); that jumps out of the basin around -rho_d x0, which lies on the far side.
    ``step`` defaults to 2^d / 2: v scales like 2^{-d}, so the natural step is of order 2^d.
    Converged means ||x - x0|| / ||x0|| < tol.
    """
    if step is None:
        step = 0.5 * 2.0**gen.depth
    x = x_init.clone()
    ay0 = _measure(a, forward(gen, x0))  # measurements, computed once

    def _neg_better(z):
        # f(-z) < f(z), both in one batched pass
        r = _measure(a, forward(gen, torch.stack([z, -z]))) - ay0
        fz = (r * r).sum(-1)
        return bool(fz[1] < fz[0])

    flips = 0
    it = 0
    for it in range(1, iters + 1):
        if sign_check and _neg_better(x):
            x = -x
            flips += 1
        x = x - step * descent_vector(gen, a, x, x0, ay0=ay0)
        if float(torch.linalg.norm(x - x0)) < tol * float(torch.linalg.norm(x0)):
            break
    rel = float(torch.linalg.norm(x - x0) / torch.linalg.norm(x0))
    return GDResult(x, rel < tol, rel, flips, it)


# ---------------------------------------------------------------------------------------------
# Empirical WDC and RRIC constants. Both are suprema over all (pairs of) inputs; a maximum over
# sampled inputs is only a LOWER bound on the true constant.


def q_matrix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Q_{x,y} = (pi - theta)/(2 pi) I + sin(theta)/(2 pi) M_{x<->y} (their Definition 2)."""
    k = x.numel()
    xh, yh = x / torch.linalg.norm(x), y / torch.linalg.norm(y)
    c = float(torch.clamp(xh @ yh, -1.0, 1.0))
    th = math.acos(c)
    if th < 1e-12 or abs(th - math.pi) < 1e-12:
        m = math.copysign(1.0, c) * torch.outer(xh, xh)
    else:
        e2 = (yh - c * xh) / math.sin(th)
        s = math.sin(th)
        m = c * torch.outer(xh, xh) + s * (torch.outer(xh, e2) + torch.outer(e2, xh)) - c * torch.outer(e2, e2)
    return (math.pi - th) / (2 * math.pi) * torch.eye(k, dtype=DT, device=x.device) + math.sin(th) / (2 * math.pi) * m


def wdc_deviation(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    """|| sum_i 1[w_i.x > 0] 1[w_i.y > 0] w_i w_i^T - Q_{x,y} || (spectral norm)."""
    sel = ((w @ x) > 0) & ((w @ y) > 0)
    ws = w[sel]
    return float(torch.linalg.matrix_norm(ws.T @ ws - q_matrix(x, y), ord=2))


def empirical_wdc(w: torch.Tensor, n_pairs: int = 200, seed: int = 0) -> float:
    """max over sampled pairs (random, equal, opposite) of the WDC deviation: a lower bound on eps."""
    g = torch.Generator().manual_seed(int(seed))
    k = w.shape[1]
    best = 0.0
    for i in range(n_pairs):
        x = torch.randn(k, generator=g, dtype=DT).to(w.device)
        y = torch.randn(k, generator=g, dtype=DT).to(w.device)
        if i % 4 == 1:
            y = x.clone()
        elif i % 4 == 2:
            y = -x
        best = max(best, wdc_deviation(w, x, y))
    return best


def empirical_rric(gen: Generator, a: torch.Tensor, n_samples: int = 200, seed: int = 0) -> float:
    """max over sampled x1..x4 of |<A u, A v> - <u, v>| / (||u|| ||v||), u = G(x1) - G(x2), v = G(x3) - G(x4).

    Includes u = v (the isometry case). A lower bound on the RRIC constant.
    """
    g = torch.Generator().manual_seed(int(seed))
    xs = torch.randn(n_samples, 4, gen.k, generator=g, dtype=DT).to(a.device)
    gx = forward(gen, xs)
    u, v = gx[:, 0] - gx[:, 1], gx[:, 2] - gx[:, 3]
    v = torch.where((torch.arange(n_samples, device=a.device) % 2 == 0)[:, None], u, v)
    num = ((u @ a.T) * (v @ a.T)).sum(-1) - (u * v).sum(-1)
    den = torch.linalg.norm(u, dim=-1) * torch.linalg.norm(v, dim=-1)
    return float((num.abs() / den).max())
