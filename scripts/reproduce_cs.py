#!/usr/bin/env python
"""Reproduce Heckel & Soltanolkotabi, "Compressive sensing with un-trained neural networks: gradient
descent finds the smoothest approximation" (ICML 2020): Theorem 1 (linear generator), Theorem 2
(two-layer generator, phase transition m ~ c p), Figs. 1, 3, 4 and 5 (the MRI run: error over
iterations of a deep decoder fitted to 8x undersampled simulated multi-coil k-space).

    .venv/bin/python scripts/reproduce_cs.py --quick     # about a minute on CPU
    .venv/bin/python scripts/reproduce_cs.py             # paper size (hours on CPU)
    .venv/bin/python scripts/reproduce_cs.py --device cuda   # the deep networks on a GPU

Writes PNG figures and ``results.json`` into ``--out`` (default ``outputs/reproduce_cs``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastmri_untrained.operators.gaussian import GaussianMatrix, SubsampledDCT  # noqa: E402
from fastmri_untrained.theory.heckel_soltanolkotabi import deep_experiments as dn  # noqa: E402
from fastmri_untrained.theory.heckel_soltanolkotabi import experiments as ex  # noqa: E402
from fastmri_untrained.theory.sections import run_sections  # noqa: E402


@dataclass
class CSConfig:
    """Sizes of every experiment; ``quick()`` shrinks them for tests."""

    # Theorem 1 (linear generator)
    lin_n: int = 512
    lin_p: int = 15
    lin_ms: tuple = (12, 24, 36, 48, 60, 90, 120, 180, 240, 300)
    lin_gamma: float = 0.9
    lin_trials: int = 20
    # Theorem 2 (two-layer generator)
    tl_n: int = 128
    tl_ps: tuple = (3, 7, 15)
    tl_ms: tuple = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)
    tl_k: int = 4096
    tl_iterations: int = 5000
    # Fig. 1 (5-layer deep decoder, m = n/4)
    fig1_size: int = 256
    fig1_operator: str = "dct"  # dct (SubsampledDCT) | gaussian (dense GaussianMatrix)
    fig1_layers: int = 5
    fig1_channels: int = 128
    fig1_iterations: int = 5000
    fig1_lr: float = 0.005
    # Fig. 4 (Jacobian spectrum of a 4-layer deep decoder during fitting)
    jac_n: int = 512
    jac_channels: int = 64
    jac_record: tuple = (0, 100, 1000, 3500)
    n_dual: int = 300
    # Fig. 5 (MRI: 5-layer deep decoder, 8x equispaced, simulated multi-coil slice, no early stopping).
    # The paper used a 320x320 fastMRI knee; the demo's 128x128 target keeps this to ~10 min on 2 cores.
    fig5_shape: tuple = (256, 192)  # k-space; target 128x128
    fig5_coils: int = 8
    fig5_layers: int = 5
    fig5_channels: int = 128  # 83k parameters for 49k network outputs (128x192 complex)
    fig5_iterations: int = 3000
    fig5_lr: float = 0.004
    fig5_track_every: int = 50
    device: str = "cpu"  # the deep networks' (set by --device); Theorems 1-2 and Fig. 3 are numpy

    @classmethod
    def quick(cls) -> "CSConfig":
        return cls(lin_n=256, lin_p=10, lin_ms=(12, 24, 36, 48, 60, 90, 120), lin_trials=3,
                   tl_n=64, tl_ps=(3, 7), tl_ms=(2, 4, 8, 12, 16, 24), tl_k=192, tl_iterations=300,
                   fig1_size=32, fig1_operator="gaussian", fig1_layers=4, fig1_channels=32, fig1_iterations=400,
                   fig1_lr=0.01, jac_n=128, jac_channels=16, jac_record=(0, 50, 300),
                   fig5_shape=(128, 224), fig5_coils=8, fig5_channels=64, fig5_iterations=400, fig5_track_every=20)


def _save(fig, out: Path, name: str):
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    plt.close(fig)


def run_linear(cfg: CSConfig, out: Path) -> dict:
    res = {"dual_kernel": ex.linear_cs(n=cfg.lin_n, p=cfg.lin_p, ms=cfg.lin_ms, trials=cfg.lin_trials),
           "geometric": ex.linear_cs(n=cfg.lin_n, p=cfg.lin_p, ms=cfg.lin_ms, gamma=cfg.lin_gamma,
                                     trials=cfg.lin_trials)}
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for a, (name, r) in zip(ax, res.items()):
        ms = [row["m"] for row in r["rows"]]
        a.semilogy(ms, [row["error"] for row in r["rows"]], "o-", label="measured ||x_hat - x*||^2 (mean)")
        a.semilogy(ms, [row["error_max"] for row in r["rows"]], ".", label="worst trial")
        a.semilogy(ms, [row["rhs"] for row in r["rows"]], "s--", label="Theorem 1 RHS (C = 1)")
        if name == "geometric":
            gb = [(row["m"], row["geometric_bound"]) for row in r["rows"] if row["geometric_bound"] is not None]
            a.semilogy(*zip(*gb), "^:", label="gamma^{m/3}/(1-gamma) ||x*||^2")
        a.set_xlabel("measurements m")
        a.set_title(f"linear generator, {name} spectrum, n={r['n']}, p={r['p']}")
        a.legend(fontsize=7)
    _save(fig, out, "theorem1_linear_generator.png")
    for r in res.values():
        r["max_ratio_error_over_rhs"] = max(row["error_max"] / row["rhs"] for row in r["rows"])
    return res


def run_two_layer(cfg: CSConfig, out: Path) -> dict:
    r = ex.two_layer_cs(n=cfg.tl_n, ps=cfg.tl_ps, ms=cfg.tl_ms, k=cfg.tl_k, iterations=cfg.tl_iterations)
    fig, ax = plt.subplots(figsize=(6, 4))
    r["transition_m"] = {}
    for j, (p, rows) in enumerate(r["curves"].items()):
        ms = [row["m"] for row in rows]
        ax.semilogy(ms, [row["error"] for row in rows], "o-", color=f"C{j}", label=f"two-layer net, p={p}")
        ax.semilogy(ms, [row["linear_error"] for row in rows], "--", color=f"C{j}", label=f"kernel regime, p={p}")
        r["transition_m"][p] = ex.transition_point(rows, 0.1)
    ax.axhline(0.1, color="gray", lw=0.8)
    ax.set_xlabel("measurements m")
    ax.set_ylabel("||G(C_T) - x*|| / ||x*||")
    ax.set_title(f"Theorem 2: n={r['n']}, k={r['k']}, Gaussian A")
    ax.legend(fontsize=7)
    _save(fig, out, "theorem2_phase_transition.png")
    return r


def run_fig1(cfg: CSConfig, out: Path) -> dict:
    n = cfg.fig1_size**2
    m = n // 4
    op = SubsampledDCT(m, n, seed=0) if cfg.fig1_operator == "dct" else GaussianMatrix(m, n, seed=0)
    res = {}
    for name in ("art.jpeg", "grass.jpg"):
        img = dn.load_gray(name, cfg.fig1_size, crop=256)
        res[name] = dn.cs_fit(img, op, cfg.fig1_layers, cfg.fig1_channels, cfg.fig1_iterations, cfg.fig1_lr,
                              show_progress=True, device=cfg.device)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, r in res.items():
        ax[0].loglog(np.arange(1, len(r["loss"]) + 1), r["loss"], label=name)
        ax[1].loglog(np.asarray(r["error_iterations"]) + 1, r["error"], label=name)
    ax[0].set_title(f"(a) training loss 1/2||A G(C_t) - y||^2 (m = n/4, {cfg.fig1_operator})")
    ax[1].set_title("(b) true error ||G(C_t) - x*||^2")
    for a in ax:
        a.set_xlabel("iteration (Adam)")
        a.legend()
    _save(fig, out, "fig1_cs_smooth_vs_texture.png")
    return {name: {k: r[k] for k in ("final_relative_error", "best_relative_error", "params")}
            | {"final_loss": r["loss"][-1], "initial_loss": r["loss"][0]} for name, r in res.items()} | {
        "n": n, "m": m, "operator": cfg.fig1_operator}


def run_fig3(cfg: CSConfig, out: Path) -> dict:
    kd = ex.kernels_and_dual_kernels(cfg.n_dual, triangular=(2, 5, 10, 20), gaussian=())
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    fits = {}
    for name, v in kd.items():
        s = np.asarray(v["sigma"])
        ax[0].plot(np.fft.fftshift(v["kernel"]), label=name)
        ax[1].loglog(np.arange(1, len(s) + 1), s / s[0], label=name)
        fits[name] = ex.decay_fit(s)
    ax[0].set_xlim(cfg.n_dual // 2 - 25, cfg.n_dual // 2 + 25)
    ax[0].set_title("triangular kernels")
    ax[1].set_title("weights sigma_i / sigma_1 (log-log)")
    ax[1].legend(fontsize=7)
    _save(fig, out, "fig3_triangular_dual_kernels.png")
    return fits


def run_fig4(cfg: CSConfig, out: Path) -> dict:
    n = cfg.jac_n
    t = np.arange(n) / n
    target = np.where(t < 0.5, 1.0, -0.5) + 0.5 * np.sin(2 * np.pi * 3 * t)
    r = dn.jacobian_spectrum_during_fit(target, record_at=cfg.jac_record, channels=cfg.jac_channels,
                                        n_vectors=(1,), device=cfg.device)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    summ = {"params": r["params"], "n": n}
    s0 = np.asarray(r["snapshots"][0]["singular_values"])
    for it, snap in sorted(r["snapshots"].items()):
        s = np.asarray(snap["singular_values"])
        ax.loglog(np.arange(1, len(s) + 1), s, label=f"t={it}")
        top = min(100, len(s))
        shape, shape0 = s[:top] / s[0], s0[:top] / s0[0]
        summ[f"t={it}"] = {"max_rel_change_top": float(np.max(np.abs(s[:top] - s0[:top]) / s0[:top])),
                           "median_rel_change_normalised": float(np.median(np.abs(shape - shape0) / shape0)),
                           "decay_fit": ex.decay_fit(s / s[0], start=5, stop=top)}
    ax.set_title("Fig. 4: Jacobian singular values, 4-layer 1-D deep decoder")
    ax.legend()
    _save(fig, out, "fig4_jacobian_spectrum.png")
    return summ


def run_fig5(cfg: CSConfig, out: Path) -> dict:
    """The paper's MRI run: a highly over-parameterised 5-layer deep decoder fitted to 8x undersampled
    k-space with a constant learning rate and no early stopping; the error to the fully sampled target
    over iterations shows how much an (oracle) early stop would gain."""
    r = dn.mri_fit_curve(cfg.fig5_shape, cfg.fig5_coils, cfg.fig5_layers, cfg.fig5_channels, cfg.fig5_iterations,
                         cfg.fig5_lr, track_every=cfg.fig5_track_every, device=cfg.device)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].loglog(np.arange(1, len(r["loss"]) + 1), r["loss"])
    ax[0].set_title("(a) training loss ||A G(C_t) - y||^2 / ||y||^2")
    its = np.asarray(r["monitor_iteration"])
    ax[1].semilogx(its + 1, r["mse"], label="deep decoder")
    ax[1].axhline(r["zero_filled_mse"], color="gray", ls=":", label="zero-filled")
    ax[1].axvline(r["best_iteration"] + 1, color="C1", ls="--", label=f"oracle stop (t = {r['best_iteration']})")
    ax[1].set_title(f"(b) MSE to the target, 8x, {r['params']:,} parameters")
    ax[1].set_ylabel("||x_t - x*||^2 / ||x*||^2")
    for a in ax:
        a.set_xlabel("iteration (Adam, constant step)")
    ax[1].legend(fontsize=7)
    _save(fig, out, "fig5_mri_error_over_iterations.png")
    return {k: v for k, v in r.items() if k not in ("loss",)} | {"final_loss": r["loss"][-1],
                                                                 "initial_loss": r["loss"][0]}


SECTIONS = {"linear": run_linear, "two_layer": run_two_layer, "fig3": run_fig3, "fig4": run_fig4, "fig1": run_fig1,
            "fig5": run_fig5}


def main(argv=None) -> dict:
    return run_sections("reproduce_cs", __doc__, CSConfig, SECTIONS, argv)


if __name__ == "__main__":
    main()
