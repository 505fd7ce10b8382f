"""Reproduce Hand & Voroninski (COLT 2018) numerically: rho_d, h_{x,x0}, WDC/RRIC, the landscape
and gradient descent with the negation check (Huang, Hand, Heckel & Voroninski).

    .venv/bin/python scripts/reproduce_hand_voroninski.py --quick   # under a minute, used by tests
    .venv/bin/python scripts/reproduce_hand_voroninski.py           # larger sizes (tens of minutes)
    .venv/bin/python scripts/reproduce_hand_voroninski.py --only gd --set trials=10

Writes PNG figures and ``results.json`` into ``--out`` (default outputs/hand_voroninski).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastmri_untrained.theory.hand_voroninski import closed_forms as ht  # noqa: E402
from fastmri_untrained.theory.hand_voroninski import experiments as ex  # noqa: E402
from fastmri_untrained.theory.sections import run_sections  # noqa: E402

README_RHO = {1: 0.0, 2: 0.31831, 3: 0.49373, 4: 0.60483, 5: 0.68095, 10: 0.85481, 20: 0.94449}


@dataclass
class Config:
    """Sizes. The paper has no experiments; widths follow its expansivity n_i = factor * n_{i-1}."""

    k: int = 10
    depth: int = 2
    factors: list = field(default_factory=lambda: [4, 16, 48])  # width growth for concentration
    m_conc: int = 1000
    conc_points: int = 50
    ts: int = 121  # points on the x0 axis
    plane_grid: int = 61
    sample_pairs: int = 40
    # Gradient descent
    trials: int = 30
    iters: int = 500
    gd_factor: int = 16
    ms: list = field(default_factory=lambda: [4, 8, 10, 12, 15, 20, 30, 50, 100])
    m_gd: int = 100
    depths: list = field(default_factory=lambda: [2, 3, 4, 5])
    depth_factor: dict = field(default_factory=lambda: {2: 16, 3: 8, 4: 5, 5: 4})
    width_factors: list = field(default_factory=lambda: [2, 4, 8, 16, 32])
    seed: int = 0
    device: str = "cpu"  # where the networks and matrices live (set by --device)

    def __post_init__(self):
        # --set passes JSON, whose object keys are strings; depths are ints
        self.depth_factor = {int(d): f for d, f in self.depth_factor.items()}

    @classmethod
    def quick(cls) -> "Config":
        return cls(k=5, factors=[4, 16, 40], m_conc=400, conc_points=10, ts=31, plane_grid=21,
                   sample_pairs=40, trials=6, iters=120, ms=[3, 10, 25], m_gd=50,
                   depths=[2, 3, 4], depth_factor={2: 16, 3: 8, 4: 5}, width_factors=[2, 8, 32])


def run_rho(cfg: Config, out: Path) -> dict:
    """rho_d, two evaluations beside the README's values; the theta map."""
    res = {str(dd): {"ours": ht.rho(dd), "recursion": ht.rho_recursive(dd), "readme": README_RHO.get(dd)}
           for dd in list(range(1, 11)) + [20, 50]}
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.6))
    th = np.linspace(0, math.pi, 200)
    axs[0].plot(th, ht.theta_map(th), label="g(theta)")
    axs[0].plot(th, th, "k--", lw=0.8, label="identity")
    axs[0].set_xlabel("theta")
    axs[0].legend()
    axs[0].set_title("angle map of one ReLU layer")
    dd = np.arange(1, 31)
    axs[1].plot(dd, [ht.rho(int(x)) for x in dd], "o-", ms=3)
    axs[1].plot(list(README_RHO), list(README_RHO.values()), "rx", label="README values")
    axs[1].set_xlabel("depth d")
    axs[1].set_ylabel("rho_d")
    axs[1].legend()
    fig.tight_layout()
    fig.savefig(out / "rho_and_theta_map.png", dpi=90)
    plt.close(fig)
    return res


def run_concentration(cfg: Config, out: Path) -> dict:
    """Concentration of v_{x,x0} around h_{x,x0}; sampled WDC / RRIC constants."""
    d = cfg.depth
    conc = {"factors": cfg.factors, "A=I": [], f"m={cfg.m_conc}": []}
    for fct in cfg.factors:
        w = ex.expansive_widths(cfg.k, d, fct)
        conc["A=I"].append(ex.concentration_error(w, None, cfg.conc_points, cfg.seed, device=cfg.device))
        conc[f"m={cfg.m_conc}"].append(ex.concentration_error(w, cfg.m_conc, cfg.conc_points, cfg.seed,
                                                              device=cfg.device))
    consts = ex.wdc_rric_vs_width(cfg.k, d, cfg.factors, m_factor=cfg.m_conc // (cfg.k * d),
                                  n_samples=cfg.sample_pairs, seed=cfg.seed, device=cfg.device)
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for key in ("A=I", f"m={cfg.m_conc}"):
        ax.plot(cfg.factors, [c["max"] for c in conc[key]], "o-", label=f"||v-h|| / (2^-d max norm), {key}")
    ax.plot(cfg.factors, consts["wdc"], "s--", label="sampled WDC eps (lower bound)")
    ax.plot(cfg.factors, consts["rric"], "^--", label=f"sampled RRIC eps, m={cfg.m_conc} (lower bound)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("expansion factor n_i / n_{i-1}")
    ax.set_title(f"k={cfg.k}, d={d}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "concentration_wdc_rric.png", dpi=90)
    plt.close(fig)
    return {**conc, "wdc_rric_sampled_lower_bounds": consts}


def run_landscape(cfg: Config, out: Path) -> dict:
    """The landscape along the x0 axis (A = I and compressed) and on a plane."""
    d = cfg.depth
    ts = np.linspace(-1.5, 1.5, cfg.ts)
    prof = {}
    fig, axs = plt.subplots(1, 2, figsize=(10, 4))
    for fct in cfg.factors:
        p = ex.axis_profile(ex.expansive_widths(cfg.k, d, fct), cfg.m_conc, ts, cfg.seed, device=cfg.device)
        prof[str(fct)] = {"negative_zero": ex.negative_zero(p["t"], p["v_emp"]),
                          "max_abs_dev_from_h": float(np.nanmax(np.abs(p["v_emp"] - p["v_theory"])))}
        axs[0].plot(ts, p["v_emp"], label=f"empirical, factor {fct}")
        axs[1].plot(ts, p["f_emp"], label=f"empirical, factor {fct}")
    axs[0].plot(ts, p["v_theory"], "k--", lw=2, label="h (theory)")
    axs[1].plot(ts, p["f_theory"], "k--", lw=2, label="f limit (theory)")
    for ax in axs:
        ax.axvline(1.0, color="g", lw=0.8)
        ax.axvline(-ht.rho(d), color="r", lw=0.8)
        ax.set_xlabel("t  (x = t x0, ||x0|| = 1)")
        ax.legend(fontsize=7)
    axs[0].axhline(0, color="k", lw=0.5)
    axs[0].set_ylabel("2^d <v_{x,x0}, x0>")
    axs[1].set_ylabel("2^d f(x)")
    axs[0].set_title(f"zeros: x0 (green), -rho_d x0 = {-ht.rho(d):.4f} (red); m={cfg.m_conc}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "landscape_axis.png", dpi=90)
    plt.close(fig)
    res = {"rho_d": ht.rho(d), "h_negative_zero": ex.negative_zero(ts, p["v_theory"]), "by_factor": prof}
    pl = ex.landscape_plane(ex.expansive_widths(cfg.k, d, cfg.factors[-1]), cfg.m_conc,
                            cfg.plane_grid, seed=cfg.seed, device=cfg.device)
    fig, axs = plt.subplots(1, 2, figsize=(9, 4))
    for ax, key, title in zip(axs, ("f", "f_theory"), ("empirical 2^d f", "large-width limit")):
        cs = ax.contourf(pl["s"], pl["s"], np.log10(pl[key] + 1e-6), levels=25, cmap="viridis")
        ax.plot([1.0], [0.0], "g*", ms=12)
        ax.plot([-pl["rho"]], [0.0], "r*", ms=12)
        ax.set_title(title + " (log10)", fontsize=9)
        ax.set_xlabel("along x0")
        ax.set_ylabel("orthogonal")
        fig.colorbar(cs, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "landscape_plane.png", dpi=90)
    plt.close(fig)
    return res


def run_gd(cfg: Config, out: Path) -> dict:
    """GD success against m, depth (random and near -x0 initialisations) and width."""
    d = cfg.depth
    wf = lambda dep, fct: ex.expansive_widths(cfg.k, dep, fct)  # noqa: E731
    s_m = ex.success_grid(cfg.ms, lambda m: (wf(d, cfg.gd_factor), m), cfg.trials, cfg.iters,
                          seed=cfg.seed, desc="vs m", device=cfg.device)
    s_d = ex.success_grid(cfg.depths, lambda dep: (wf(dep, cfg.depth_factor[dep]), cfg.m_gd),
                          cfg.trials, cfg.iters, seed=cfg.seed, desc="vs depth", device=cfg.device)
    s_dn = ex.success_grid(cfg.depths, lambda dep: (wf(dep, cfg.depth_factor[dep]), cfg.m_gd),
                           cfg.trials, cfg.iters, init="negative", seed=cfg.seed, desc="vs depth, -x0 init",
                           device=cfg.device)
    s_w = ex.success_grid(cfg.width_factors, lambda fct: (wf(d, fct), cfg.m_gd), cfg.trials, cfg.iters,
                          init="negative", seed=cfg.seed, desc="vs width", device=cfg.device)
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, sg, xl, title in [
        (axs[0], s_m, "m", f"random init, k={cfg.k}, d={d}"),
        (axs[1], s_d, "depth d", f"m={cfg.m_gd}; solid random init, dotted near -x0"),
        (axs[2], s_w, "expansion factor", f"init near -x0, d={d}, m={cfg.m_gd}"),
    ]:
        ax.plot(sg["values"], sg["with_check"], "o-", label="with f(-x) check")
        ax.plot(sg["values"], sg["without_check"], "s-", label="plain GD")
        ax.set_xlabel(xl)
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(title, fontsize=9)
    axs[1].plot(s_dn["values"], s_dn["with_check"], "o:", color="C0")
    axs[1].plot(s_dn["values"], s_dn["without_check"], "s:", color="C1")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gd_success.png", dpi=90)
    plt.close(fig)
    return {"vs_m": s_m, "vs_depth_random_init": s_d, "vs_depth_negative_init": s_dn,
            "vs_width_negative_init": s_w}


SECTIONS = {"rho": run_rho, "concentration": run_concentration, "landscape": run_landscape, "gd": run_gd}


def main(argv=None) -> dict:
    res = run_sections("hand_voroninski", __doc__, Config, SECTIONS, argv, default_out="outputs/hand_voroninski")
    print(json.dumps({k: res[k] for k in SECTIONS if k in res}, indent=1, default=float))
    return res


if __name__ == "__main__":
    main()
