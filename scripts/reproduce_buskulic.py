"""Reproduce Buskulic, Fadili & Queau (2023): constants, condition (8), Lemma 3.10, Figs. 1-3.

    .venv/bin/python scripts/reproduce_buskulic.py --quick          # seconds-minutes, used by tests
    .venv/bin/python scripts/reproduce_buskulic.py                  # paper size (hours on 2 cores)
    .venv/bin/python scripts/reproduce_buskulic.py --only fig3 --set runs=20 step=0.5

Writes PNG figures and ``results.json`` into ``--out`` (default outputs/buskulic).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastmri_untrained.theory.buskulic import experiments as ex  # noqa: E402
from fastmri_untrained.theory.buskulic import network as bk  # noqa: E402
from fastmri_untrained.theory.sections import run_sections  # noqa: E402


@dataclass
class Config:
    """Sizes; the defaults are the paper's (Section 5). The step size is ours (not in the paper)."""

    step: float = 1.0
    runs: int = 50
    iters: int = 25000
    tol: float = 1e-7
    d: int = 500
    # Fig. 1a: (k, n) with m = 10; Fig. 1b: (k, m) with n = 60.
    ks: list = field(default_factory=lambda: [20, 40, 70, 100, 150, 200, 300, 450, 650, 1000])
    ns: list = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 40, 60])
    m_fixed: int = 10
    ms: list = field(default_factory=lambda: [2, 4, 6, 8, 10, 15, 20, 30, 40])
    n_fixed: int = 60
    # Fig. 2a
    n2a: int = 10
    k2a: int = 1000
    betas2a: list = field(default_factory=lambda: [0.0, 0.01, 0.05, 0.1])
    iters2a: int = 200000
    p2a: float = 0.2
    # Fig. 2b
    ks2b: list = field(default_factory=lambda: [10, 50, 100, 200, 400, 800, 1600])
    betas2b: list = field(default_factory=lambda: [0.0, 0.1, 0.5])
    iters2b: int = 25000
    # Fig. 3
    ps3: list = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    iters3: int = 1000000
    k3: int = 800
    # Lemma 3.10: a case where (8) holds (tiny n, m, huge k) and the Fig. 1 regime.
    lemma_cases: list = field(default_factory=lambda: [[2, 1, 50000], [3, 2, 100000], [60, 10, 1000]])
    lemma_runs: int = 10
    lemma_iters: int = 2000
    seed: int = 0
    device: str = "cpu"  # where the batched training runs (set by --device)

    @classmethod
    def quick(cls) -> "Config":
        """Small grids and few runs: the boundary trends still show (asserted by the tests)."""
        return cls(
            runs=12, iters=3000, d=10, ks=[10, 40, 160, 640], ns=[2, 4, 6, 10], ms=[5, 10, 20],
            iters2a=3000, k2a=300, betas2a=[0.0, 0.05], ks2b=[10, 100, 800], betas2b=[0.0, 0.5],
            iters2b=2000, ps3=[0.0, 0.5, 1.0], iters3=3000, lemma_cases=[[2, 1, 20000], [60, 10, 1000]],
            lemma_runs=6, lemma_iters=400)


def _imshow_map(ax, rate, ks, rows, row_label, fit, power, fit_max=None):
    ax.imshow(rate, origin="lower", aspect="auto", cmap="gray", vmin=0, vmax=1,
              extent=(-0.5, len(ks) - 0.5, -0.5, len(rows) - 0.5))
    ax.set_xticks(range(len(ks)), [str(k) for k in ks], rotation=45)
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel("k (hidden width)")
    ax.set_ylabel(row_label)
    c, b = fit
    if np.isfinite(c):
        # Draw the fitted boundary k = c x^power + b in grid coordinates (k axis is log-spaced).
        xs = np.linspace(min(rows), fit_max if fit_max is not None else max(rows), 200)  # fitted range
        kk = c * xs**power + b
        ok = (kk >= ks[0]) & (kk <= ks[-1])
        kx = np.interp(np.log(kk[ok]), np.log(ks), np.arange(len(ks)))
        ry = np.interp(xs[ok], rows, np.arange(len(rows)))
        ax.plot(kx, ry, "b-", lw=2, label=f"k = {c:.3g} {row_label[0]}^{power} + {b:.3g}")
        ax.legend(loc="upper left", fontsize=7)


def run_constants(cfg: Config, out: Path) -> dict:
    """C_phi and C_phi' of the sigmoid by two quadratures, beside the paper's values."""
    c_gh, cp_gh = bk.activation_constants()
    c_q, cp_q = bk.activation_constants_quad()
    return {"C_phi": c_gh, "C_phi_prime": cp_gh, "C_phi_quad": c_q, "C_phi_prime_quad": cp_q,
            "paper_C_phi": 0.5416, "paper_C_phi_prime": 0.2117, "sigma_min_bound_C_phi_prime_over_2": cp_gh / 2}


def run_lemma(cfg: Config, out: Path) -> list:
    """Condition (8) and Lemma 3.10 (i)-(iii) along GD, per (n, m, k) case."""
    cp_gh = bk.activation_constants()[1]
    lemma = []
    for n, m, k in cfg.lemma_cases:
        r = ex.lemma_3_10_checks(n, m, k, cfg.lemma_runs, cfg.lemma_iters, cfg.step,
                                 log_every=max(1, cfg.lemma_iters // 100), seed=cfg.seed, device=cfg.device)
        lemma.append({"n": n, "m": m, "k": k,
                      "sigma_min_J0_mean": float(r["sigma_min_J0"].mean()),
                      "sigma_min_J0_min": float(r["sigma_min_J0"].min()),
                      "frac_sigma_min_ge_C_phi_prime_over_2": float((r["sigma_min_J0"] >= cp_gh / 2).mean()),
                      "sigma_F_median": float(np.median(r["sigma_F"])),
                      "R_median": float(np.median(r["R"])), "R_prime_median": float(np.median(r["R_prime"])),
                      "frac_cond8": float(r["cond8"].mean()), "frac_check_i": float(r["check_i"].mean()),
                      "frac_check_ii": float(r["check_ii"].mean()),
                      "frac_check_iii": float(r["check_iii"].mean()),
                      "max_dist_median": float(np.median(r["max_dist"])),
                      "min_sigma_ratio_min": float(r["min_sigma_ratio"].min()),
                      "final_loss_median": float(np.median(r["final_loss"]))})
    return lemma


def run_fig1(cfg: Config, out: Path) -> dict:
    """Fig. 1: success maps over (k, n) and (k, m) with the fitted boundaries."""
    ks = cfg.ks
    map_n = ex.success_map(cfg.ns, ks, {"m": cfg.m_fixed, "d": cfg.d}, "n", cfg.runs, cfg.iters,
                           cfg.step, cfg.tol, cfg.seed, desc="fig1a", device=cfg.device)
    map_m = ex.success_map(cfg.ms, ks, {"n": cfg.n_fixed, "d": cfg.d}, "m", cfg.runs, cfg.iters,
                           cfg.step, cfg.tol, cfg.seed + 1, desc="fig1b", device=cfg.device)
    kreq_n, kreq_m = ex.required_k(map_n, ks), ex.required_k(map_m, ks)
    upto_m = np.asarray(cfg.ns) <= cfg.m_fixed
    fit_n = ex.fit_boundary(np.asarray(cfg.ns)[upto_m], kreq_n[upto_m], 2)
    fit_m = ex.fit_boundary(cfg.ms, kreq_m, 1)
    res = {"ns": cfg.ns, "ms": cfg.ms, "ks": ks, "map_kn": map_n.tolist(), "map_km": map_m.tolist(),
           "required_k_vs_n": kreq_n.tolist(), "required_k_vs_m": kreq_m.tolist(),
           "quadratic_fit_n_le_m (c, b)": fit_n, "linear_fit_m (c, b)": fit_m}
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    _imshow_map(axs[0], map_n, ks, cfg.ns, "n", fit_n, 2, fit_max=cfg.m_fixed)
    axs[0].set_title(f"(a) P(loss<1e-7), m={cfg.m_fixed}, d={cfg.d}")
    _imshow_map(axs[1], map_m, ks, cfg.ms, "m", fit_m, 1)
    axs[1].set_title(f"(b) P(loss<1e-7), n={cfg.n_fixed}, d={cfg.d}")
    fig.tight_layout()
    fig.savefig(out / "fig1_success_maps.png", dpi=90)
    plt.close(fig)
    return res


def run_fig2a(cfg: Config, out: Path) -> dict:
    """Fig. 2a: signal error under uniform noise."""
    s2a = ex.signal_vs_noise(cfg.n2a, cfg.betas2a, cfg.runs, cfg.iters2a, cfg.step, cfg.k2a,
                             p=cfg.p2a, log_every=max(1, cfg.iters2a // 200), seed=cfg.seed, device=cfg.device)
    res = {"betas": cfg.betas2a, "mu": s2a["mu"],
           "initial_signal_err_mean": [float(m[0]) for m in s2a["mean"]],
           "final_signal_err_mean": [float(m[-1]) for m in s2a["mean"]],
           "final_signal_err_std": [float(s[-1]) for s in s2a["std"]],
           "noise_bound_beta_sqrt(m/3)/mu": s2a["bound"]}
    fig, ax = plt.subplots(figsize=(5, 4))
    for beta, mean, std in zip(cfg.betas2a, s2a["mean"], s2a["std"]):
        line, = ax.plot(s2a["it"], mean, label=f"beta={beta}")
        ax.fill_between(s2a["it"], np.maximum(mean - std, 1e-12), mean + std, alpha=0.2,
                        color=line.get_color())
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("||x(t) - x_bar||")
    ax.set_title(f"(2a) n=m={cfg.n2a}, k={cfg.k2a}, p={cfg.p2a}\n(noise bound beta*sqrt(m/3)/mu is"
                 f" {s2a['bound'][-1]:.3g} for the top beta)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig2a_signal_error.png", dpi=90)
    plt.close(fig)
    return res


def run_fig2b(cfg: Config, out: Path) -> dict:
    """Fig. 2b: final loss against k."""
    l2b = ex.final_loss_vs_k(1000, 10, cfg.ks2b, cfg.betas2b, cfg.runs, cfg.iters2b, cfg.step,
                             p=0.1, d=10, seed=cfg.seed, device=cfg.device)
    res = {"ks": cfg.ks2b, "betas": cfg.betas2b, "mean_final_loss": l2b.tolist()}
    fig, ax = plt.subplots(figsize=(5, 4))
    for beta, row in zip(cfg.betas2b, l2b):
        ax.plot(cfg.ks2b, row, "o-", label=f"beta={beta}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("mean final loss")
    ax.set_title(f"(2b) n=1000, m=10, p=0.1, {cfg.iters2b} its")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig2b_final_loss_vs_k.png", dpi=90)
    plt.close(fig)
    return res


def run_fig3(cfg: Config, out: Path) -> dict:
    """Fig. 3: loss curves for different p."""
    c3 = ex.loss_curves_vs_p(1000, 10, cfg.k3, cfg.ps3, cfg.runs, cfg.iters3, cfg.step,
                             log_every=max(1, cfg.iters3 // 300), seed=cfg.seed, device=cfg.device)
    res = {"ps": cfg.ps3, "final_mean_loss": [float(v[-1]) for v in c3["loss"]],
           "stopped_at_iteration": [int(it[-1]) for it in c3["it"]],
           "final_mean_resid": [float(v[-1]) for v in c3["resid"]]}
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    for p, it, lv, rv in zip(cfg.ps3, c3["it"], c3["loss"], c3["resid"]):
        axs[0].plot(it, np.maximum(lv, 1e-300), label=f"p={p}")
        axs[1].plot(it, np.maximum(rv, 1e-300), label=f"p={p}")
    for ax, lab in zip(axs, ["mean loss eta(||y(t)-y||^2)", "mean ||y(t) - y||"]):
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel(lab)
        ax.legend(fontsize=7)
    axs[0].set_title(f"(3) n=1000, m=10, k={cfg.k3}")
    fig.tight_layout()
    fig.savefig(out / "fig3_loss_vs_p.png", dpi=90)
    plt.close(fig)
    return res


SECTIONS = {"constants": run_constants, "lemma": run_lemma, "fig1": run_fig1, "fig2a": run_fig2a,
            "fig2b": run_fig2b, "fig3": run_fig3}


def main(argv=None) -> dict:
    res = run_sections("buskulic", __doc__, Config, SECTIONS, argv, default_out="outputs/buskulic")
    print(json.dumps({key: res[key] for key in ("constants", "lemma") if key in res}, indent=1))
    if "fig1" in res:
        print("fig1 required k vs n:", res["fig1"]["required_k_vs_n"])
        print("fig1 required k vs m:", res["fig1"]["required_k_vs_m"])
    return res


if __name__ == "__main__":
    main()
