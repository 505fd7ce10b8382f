"""The two-layer convolutional generator G(C) = ReLU(U C) v of Heckel & Soltanolkotabi (numpy, float64).

U is the circulant matrix of a fixed kernel u, v = [1..1, -1..-1]/sqrt(k) is fixed and C in R^{n x k}
is fitted by plain gradient descent with a fixed step on 1/2 ||A G(C) - y||^2 (A = I for denoising),
from C_0 with iid N(0, omega^2) entries. The theorems are about exactly this loop, so it lives here
rather than in the Adam-oriented ``fit`` engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm


def output_weights(k: int) -> np.ndarray:
    """v = [1,..,1,-1,..,-1]/sqrt(k) (k even)."""
    if k % 2:
        raise ValueError(f"k must be even, got {k}")
    return np.concatenate([np.ones(k // 2), -np.ones(k // 2)]) / np.sqrt(k)


def generator(U: np.ndarray, C: np.ndarray, v: np.ndarray) -> np.ndarray:
    """G(C) = ReLU(U C) v."""
    return np.maximum(U @ C, 0.0) @ v


def jacobian(U: np.ndarray, C: np.ndarray, v: np.ndarray) -> np.ndarray:
    """J = dG/dvec(C) in R^{n x nk}; column block l is v_l diag(1[U c_l > 0]) U."""
    act = (U @ C > 0).astype(float)  # n x k
    blocks = (act * v[None, :])[:, :, None] * U[:, None, :]  # n x k x n
    return blocks.reshape(U.shape[0], -1)


def jacobian_gram(U: np.ndarray, C: np.ndarray, v: np.ndarray) -> np.ndarray:
    """J J^T = (U U^T) o (D diag(v^2) D^T), D = 1[U C > 0], without forming J."""
    act = (U @ C > 0).astype(float)
    return (U @ U.T) * ((act * v[None, :] ** 2) @ act.T)


@dataclass
class GDConfig:
    """Plain gradient descent on 1/2 ||A G(C) - y||^2 with a fixed step."""

    iterations: int = 1000
    step: float = 0.1
    k: int = 1024
    omega: float = 1e-3  # init scale; small so that G(C_0) ~ 0 as in the linearised analysis
    seed: int = 0
    record_every: int = 1
    show_progress: bool = False


@dataclass
class GDResult:
    C: np.ndarray
    output: np.ndarray
    iterations: list = field(default_factory=list)  # recorded iteration numbers
    outputs: list = field(default_factory=list)  # G(C_t) at recorded iterations
    loss: list = field(default_factory=list)  # 1/2 ||A G - y||^2 at recorded iterations


def fit_two_layer(U: np.ndarray, y: np.ndarray, config: GDConfig, A: np.ndarray | None = None) -> GDResult:
    """Fit G(C) = ReLU(UC)v to y (or A G(C) to y) by GD with step ``config.step`` from C_0 ~ N(0, omega^2).

    Records G(C_t) for t = 0, record_every, ... and the final iterate (t = iterations).
    """
    rng = np.random.default_rng(config.seed)
    n = U.shape[0]
    v = output_weights(config.k)
    C = config.omega * rng.standard_normal((n, config.k))
    res = GDResult(C=C, output=generator(U, C, v))
    steps = range(config.iterations + 1)
    for t in tqdm(steps, disable=not config.show_progress, desc="two-layer GD", leave=False):
        pre = U @ C
        out = np.maximum(pre, 0.0) @ v
        r = out - y if A is None else A @ out - y
        if t % config.record_every == 0 or t == config.iterations:
            res.iterations.append(t)
            res.outputs.append(out)
            res.loss.append(0.5 * float(r @ r))
        if t == config.iterations:
            break
        e = r if A is None else A.T @ r
        # dL/dC = U^T ((e v^T) o 1[UC > 0])
        C = C - config.step * (U.T @ (np.outer(e, v) * (pre > 0)))
    res.C, res.output = C, res.outputs[-1]
    return res
