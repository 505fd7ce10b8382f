#!/usr/bin/env python
"""Reproduce Heckel & Soltanolkotabi, "Denoising and regularization via exploiting the structural
bias of convolutional generators" (ICLR 2020): theory checks, Figs. 1, 4/8, 5, 6, 7, 9, 12, Table 1.

    .venv/bin/python scripts/reproduce_denoising.py --quick          # seconds-to-minutes, CPU
    .venv/bin/python scripts/reproduce_denoising.py                  # paper size (hours on CPU)
    .venv/bin/python scripts/reproduce_denoising.py --device cuda    # the deep networks on a GPU

Writes PNG figures and ``results.json`` into ``--out`` (default ``outputs/reproduce_denoising``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastmri_untrained.theory.heckel_soltanolkotabi import deep_experiments as dn  # noqa: E402
from fastmri_untrained.theory.heckel_soltanolkotabi import dual_kernel as dk  # noqa: E402
from fastmri_untrained.theory.heckel_soltanolkotabi import experiments as ex  # noqa: E402
from fastmri_untrained.theory.sections import run_sections  # noqa: E402


@dataclass
class DenoisingConfig:
    """Sizes of every experiment; ``quick()`` shrinks them for tests."""

    # theory (exact, cheap at any size)
    n_dual: int = 300
    mc_samples: tuple = (1, 4, 16, 64, 256, 1024)
    two_layer_n: int = 64
    two_layer_ks: tuple = (512, 4096, 16384)
    two_layer_seeds: tuple = (0, 1, 2, 3, 4)
    # the same in 2-D: separable triangular kernel of half-width N/2 on an N x N image
    two_layer_2d_shape: tuple = (16, 16)
    two_layer_2d_half_width: float = 8.0
    two_layer_2d_ks: tuple = (1024, 8192)
    two_layer_2d_horizon: float = 8.0  # GD runs horizon x tau: in 2-D the best stop comes after tau
    # Fig. 1
    fig1_size: int = 256
    fig1_iterations: int = 3000
    fig1_dd: dict = field(default_factory=lambda: {"layers": 6, "channels": 256, "in_size": (8, 8)})
    fig1_dip: dict = field(default_factory=dict)
    fig1_image: str = "skimage:astronaut"
    # Figs. 4 / 8 and 9
    arch_size: int = 256
    arch_factors: tuple = (1, 4, 16)
    arch_iterations: int = 10000
    arch_lr: float = 0.005
    movement_iterations: int = 3000
    # Fig. 7
    jac_n: int = 512
    jac_channels: int = 64
    jac_record: tuple = (0, 50, 3500)
    # Fig. 12
    align_size: int = 128
    align_inits: int = 50
    align_dd: dict = field(default_factory=lambda: {"layers": 5, "channels": 64, "in_size": (8, 8)})
    align_dip: dict = field(default_factory=lambda: {"levels": 4})
    # Table 1
    table_size: int = 512
    table_images: tuple = ("skimage:astronaut", "skimage:camera", "skimage:coffee", "skimage:chelsea",
                           "barbara.png", "kate.png", "F16_GT.png")
    table_dd_over: dict = field(default_factory=lambda: {"layers": 5, "channels": 512, "in_size": (16, 16)})
    table_dd_under: dict = field(default_factory=lambda: {"layers": 5, "channels": 128, "in_size": (16, 16)})
    table_dip: dict = field(default_factory=dict)
    table_steps: tuple = (1500, 3000, 1800)  # DD-O (early stopped), DD-U (to convergence), DIP
    noise_sigma: float = 25.0 / 255.0
    lr: float = 0.01
    device: str = "cpu"  # the deep networks' (set by --device); the exact theory is numpy

    @classmethod
    def quick(cls) -> "DenoisingConfig":
        return cls(mc_samples=(1, 4, 16, 64, 256), two_layer_ks=(512, 4096), two_layer_seeds=(0, 1),
                   two_layer_2d_shape=(12, 12), two_layer_2d_half_width=6.0, two_layer_2d_ks=(512, 4096),
                   fig1_size=32, fig1_iterations=150, fig1_dd={"layers": 4, "channels": 32, "in_size": (4, 4)},
                   fig1_dip={"levels": 3, "channels_down": 16, "channels_up": 16},
                   arch_size=32, arch_factors=(1, 4), arch_iterations=300, arch_lr=0.01,
                   movement_iterations=300, jac_n=128, jac_channels=16, jac_record=(0, 50, 300),
                   align_size=32, align_inits=6, align_dd={"layers": 4, "channels": 32, "in_size": (4, 4)},
                   align_dip={"levels": 3, "channels_down": 16, "channels_up": 16},
                   table_size=64, table_images=("skimage:camera",),
                   table_dd_over={"layers": 4, "channels": 64, "in_size": (8, 8)},
                   table_dd_under={"layers": 4, "channels": 16, "in_size": (8, 8)},
                   table_dip={"levels": 3, "channels_down": 16, "channels_up": 16}, table_steps=(120, 240, 150))


def _save(fig, out: Path, name: str):
    fig.tight_layout()
    fig.savefig(out / name, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- theory
def run_theory(cfg: DenoisingConfig, out: Path) -> dict:
    res = {"dual_kernel_check": ex.dual_kernel_check(cfg.n_dual),
           "monte_carlo": ex.monte_carlo_convergence(samples=cfg.mc_samples),
           "linear_dynamics": ex.linear_dynamics_check()}
    kd = ex.kernels_and_dual_kernels(cfg.n_dual)
    res["decay_fits"] = {k: ex.decay_fit(np.asarray(v["sigma"])) for k, v in kd.items()}

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.5))  # Fig. 6
    for name, v in kd.items():
        ax[0].plot(np.fft.fftshift(v["kernel"]), label=name)
        s = np.asarray(v["sigma"])
        ax[1].plot(s[:60] / s[0], label=name)
        ax[2].loglog(np.arange(1, len(s) + 1), s / s[0], label=name)
    ax[0].set_xlim(cfg.n_dual // 2 - 30, cfg.n_dual // 2 + 30)
    ax[0].set_title("kernels u (centred)")
    ax[1].set_title("dual kernel sigma_i / sigma_1 (sorted)")
    ax[2].set_title("same, log-log")
    ax[0].legend(fontsize=6)
    _save(fig, out, "fig6_dual_kernels.png")

    mc = res["monte_carlo"]
    ld = res["linear_dynamics"]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].loglog(mc["samples"], mc["relative_error"], "o-")
    ax[0].loglog(mc["samples"], mc["relative_error"][0] / np.sqrt(mc["samples"]), "k--", label="1/sqrt(S)")
    ax[0].set_xlabel("Monte Carlo samples S")
    ax[0].set_title("||mean J J^T - Sigma(U)||_F / ||Sigma||_F")
    ax[0].legend()
    ax[1].semilogx(np.arange(1, len(ld["signal_fitted"]) + 1), ld["signal_fitted"], label="signal <w1, Jc>")
    ax[1].semilogx(np.arange(1, len(ld["noise_fitted"]) + 1), ld["noise_fitted"], label="noise fitted (fraction)")
    ax[1].set_title(f"Fig. 5: linear GD (formula error {ld['max_abs_error']:.1e})")
    ax[1].legend()
    _save(fig, out, "fig5_mc_and_linear.png")

    tl = ex.two_layer_denoising(n=cfg.two_layer_n, ks=cfg.two_layer_ks, seeds=cfg.two_layer_seeds)
    res["two_layer"] = {k: v for k, v in tl.items() if k not in ("runs",)}
    res["two_layer"]["summary"] = [{k: r[k] for k in _TWO_LAYER_KEYS} for r in tl["runs"]]
    run = [r for r in tl["runs"] if r["k"] == max(cfg.two_layer_ks)][0]
    fig, ax = plt.subplots(figsize=(6, 4))
    _plot_error_and_bounds(ax, run, tl, linearised=True)
    ax.set_ylabel("||G(C_t) - x||")
    ax.legend(fontsize=7)
    ax.set_title(f"denoising a p={tl['p']}-smooth signal, n={tl['n']}")
    _save(fig, out, "theorem1_two_layer.png")
    res["two_layer_2d"] = run_two_layer_2d(cfg, out)
    return res


_TWO_LAYER_KEYS = ("k", "seed", "error_at_tau", "theorem1_bound", "noise_norm", "best_error",
                   "linear_deviation", "init_norm")


def _plot_error_and_bounds(ax, run: dict, tl: dict, linearised: bool) -> None:
    """One two-layer run's error over GD iterations beside Theorem 2's curve, Theorem 1's bound,
    tau and the noise level (and the linearised dynamics' error when ``linearised``)."""
    t = np.arange(len(run["error"]))
    ax.plot(t, run["error"], label=f"two-layer net, k={run['k']}")
    if linearised:
        ax.plot(t, run["linear_error"], "--", label="linearised dynamics")
    ax.plot(t, run["theorem2"], ":", label="Theorem 2 (no eps term)")
    ax.axhline(run["noise_norm"], color="gray", lw=0.8, label="||z|| (noisy input)")
    ax.axvline(tl["tau"], color="k", lw=0.8, label=f"tau = {tl['tau']:.1f}")
    ax.axhline(run["theorem1_bound"], color="r", lw=0.8, label="Theorem 1 bound")
    ax.set_xlabel("GD iteration")


def run_two_layer_2d(cfg: DenoisingConfig, out: Path) -> dict:
    """Theorems 1-2 on images: the two-layer generator with a 2-D block-circulant U."""
    shape = tuple(cfg.two_layer_2d_shape)
    tl = ex.two_layer_denoising(n=shape, half_width=cfg.two_layer_2d_half_width, ks=cfg.two_layer_2d_ks,
                                seeds=cfg.two_layer_seeds, horizon=cfg.two_layer_2d_horizon)
    res = {k: v for k, v in tl.items() if k not in ("runs", "sigma")}
    res["summary"] = [{**{k: r[k] for k in _TWO_LAYER_KEYS}, "best_iteration": r["best_iteration"],
                       "theorem2_excess": float(np.max(np.asarray(r["error"]) - np.asarray(r["theorem2"])))}
                      for r in tl["runs"]]
    run = [r for r in tl["runs"] if r["k"] == max(cfg.two_layer_2d_ks)][0]
    W, _ = dk.sorted_basis(dk.triangular_kernel(shape, cfg.two_layer_2d_half_width))
    fig = plt.figure(figsize=(13, 5.5))
    lim = np.abs(W[:, :6]).max()
    for i in range(6):  # the leading 2-D basis images, in the order of the dual kernel
        a = fig.add_subplot(2, 6, i + 1)
        a.imshow(W[:, i].reshape(shape), cmap="RdBu_r", vmin=-lim, vmax=lim)
        a.set_title(f"w_{i + 1}, sigma/sigma_1={tl['sigma'][i] / tl['sigma'][0]:.2f}", fontsize=8)
        a.axis("off")
    images = [("x (p-smooth)", run["signal"]), ("y = x + z", run["noisy"]),
              (f"G(C_tau), t={tl['tau_int']}", run["output_at_tau"]),
              (f"G(C_t), t={run['best_iteration']} (best)", run["output_best"])]
    for i, (title, img) in enumerate(images):
        a = fig.add_subplot(2, 6, 7 + i)
        a.imshow(np.reshape(img, shape), cmap="gray")
        a.set_title(title, fontsize=8)
        a.axis("off")
    ax = fig.add_subplot(2, 3, 6)
    _plot_error_and_bounds(ax, run, tl, linearised=False)
    ax.set_title(f"2-D: ||G(C_t) - x||, {shape[0]}x{shape[1]}, p={tl['p']}", fontsize=9)
    ax.legend(fontsize=6)
    _save(fig, out, "theorem1_two_layer_2d.png")
    return res


# --------------------------------------------------------------------------- deep networks
def run_fig1(cfg: DenoisingConfig, out: Path) -> dict:
    img = dn.load_gray(cfg.fig1_image, cfg.fig1_size)
    noisy = img + cfg.noise_sigma * np.random.default_rng(0).standard_normal(img.shape)
    res = {"dd": dn.denoise_curves(img, noisy, "deep-decoder", cfg.fig1_iterations, cfg.lr, show_progress=True,
                                   device=cfg.device, **cfg.fig1_dd),
           "dip": dn.denoise_curves(img, noisy, "dip", cfg.fig1_iterations, cfg.lr, show_progress=True,
                                    device=cfg.device, **cfg.fig1_dip)}
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for a, (name, r) in zip(ax, res.items()):
        for target in ("noisy", "clean", "noise"):
            a.loglog(np.asarray(r[target]["iterations"]) + 1, r[target]["mse"], label=target)
        a.set_title(f"Fig. 1 {name}: MSE (noisy: vs clean image)")
        a.set_xlabel("iteration")
        a.legend()
    _save(fig, out, "fig1_fit_image_vs_noise.png")
    summ = {}
    for name, r in res.items():
        # iterations to bring the MSE to 10% of the target's mean square: image vs noise
        t = {}
        for target, ref in (("clean", img), ("noise", noisy - img)):
            mse = np.asarray(r[target]["mse"])
            hit = np.nonzero(mse <= 0.1 * np.mean(ref**2))[0]
            t[target] = float(r[target]["iterations"][hit[0]]) if len(hit) else float("inf")
        summ[name] = {"iters_to_10pct_clean": t["clean"], "iters_to_10pct_noise": t["noise"],
                      "final_relative_mse_clean": r["clean"]["mse"][-1] / float(np.mean(img**2)),
                      "final_relative_mse_noise": r["noise"]["mse"][-1] / float(np.mean((noisy - img) ** 2)),
                      "final_mse_clean": r["clean"]["mse"][-1], "final_mse_noise": r["noise"]["mse"][-1],
                      "best_mse_noisy_fit": min(r["noisy"]["mse"]), "final_mse_noisy_fit": r["noisy"]["mse"][-1]}
    return summ


def speed_ratio(image_curve, noise_curve, t0: int) -> tuple[float, float, bool]:
    """(threshold, ratio, censored): the residual the image reaches after t0 iterations, how many
    iterations the noise needs to reach it divided by t0, and whether the noise never reached it
    within the budget (then the ratio is a lower bound)."""
    thr = image_curve[t0]
    t_noise = dn.iterations_to_fit(noise_curve, thr)
    censored = not np.isfinite(t_noise)
    return float(thr), (len(noise_curve) - 1 if censored else t_noise) / t0, censored


def run_architectures(cfg: DenoisingConfig, out: Path) -> dict:
    img = dn.load_gray("phantom256.png", cfg.arch_size)
    r = dn.architecture_speeds(img, factors=cfg.arch_factors, iterations=cfg.arch_iterations, lr=cfg.arch_lr,
                               device=cfg.device)
    t0 = max(1, cfg.arch_iterations // 20)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.5), sharey=True)
    summary = {}
    for ax, arch in zip(axes, ("i", "ii", "iii", "iv")):
        for j, f in enumerate(cfg.arch_factors):
            row = r[f"{arch}/{f}"]
            c = f"C{j}"
            ax.semilogy(row["image"], color=c, label=f"image, x{f} (k={row['k']})")
            ax.semilogy(row["noise"], color=c, ls="--", label=f"noise, x{f}")
            thr, ratio, cens = speed_ratio(row["image"], row["noise"], t0)
            summary[f"{arch}/{f}"] = {"k": row["k"], "overparameterization": row["overparameterization"],
                                      "threshold": thr, "noise_over_image_iterations": ratio,
                                      "lower_bound_only": cens, "final_image": row["image"][-1],
                                      "final_noise": row["noise"][-1]}
        ax.set_title(f"arch ({arch})")
        ax.set_xlabel("iteration (Adam)")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("||G - y|| / ||y||")
    _save(fig, out, "fig8_architectures.png")
    return {"t0": t0, "rows": summary}


def run_movement(cfg: DenoisingConfig, out: Path) -> dict:
    img = dn.load_gray("phantom256.png", cfg.arch_size)
    r = dn.weight_movement(img, iterations=cfg.movement_iterations, lr=cfg.arch_lr, device=cfg.device)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
    for a, name in zip(ax, ("image", "noise")):
        for layer, curve in r[name]["layers"].items():
            a.plot(curve, label=layer)
        a.axvline(r[name]["iteration_at_level"], color="k", lw=0.8)
        a.set_title(f"Fig. 9: {name} (line: residual {r['common_level']:.2f} reached)")
        a.set_xlabel("iteration")
    ax[0].set_ylabel("||C_t - C_0|| / ||C_0||")
    ax[0].legend(fontsize=6)
    _save(fig, out, "fig9_weight_movement.png")
    return {"k": r["k"], "common_level": r["common_level"],
            **{f"{name}_{key}": r[name][key] for name in ("image", "noise")
               for key in ("iteration_at_level", "movement_at_level")},
            "final_image": {k: v[-1] for k, v in r["image"]["layers"].items()},
            "final_noise": {k: v[-1] for k, v in r["noise"]["layers"].items()}}


def run_jacobian(cfg: DenoisingConfig, out: Path) -> dict:
    n = cfg.jac_n
    t = np.arange(n) / n
    target = np.where(t < 0.5, 1.0, -0.5) + 0.5 * np.sin(2 * np.pi * 3 * t)  # a step plus a smooth part
    r = dn.jacobian_spectrum_during_fit(target, record_at=cfg.jac_record, channels=cfg.jac_channels,
                                        device=cfg.device)
    snaps = r["snapshots"]
    its = sorted(snaps)
    fig = plt.figure(figsize=(14, 6))
    ax = fig.add_subplot(2, 5, 1)
    for it in its:
        s = np.asarray(snaps[it]["singular_values"])
        ax.semilogy(s / s[0], label=f"t={it}")
    ax.set_title("Jacobian singular values")
    ax.legend(fontsize=7)
    idx = snaps[its[0]]["vector_index"]
    for j, vi in enumerate(idx[:9]):
        a = fig.add_subplot(2, 5, j + 2)
        for it in its:
            v = np.asarray(snaps[it]["vectors"][j])
            ref = np.asarray(snaps[its[0]]["vectors"][j])
            a.plot(v * np.sign(v @ ref if v @ ref != 0 else 1), lw=0.8)
        a.set_title(f"s={vi}", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    _save(fig, out, "fig7_jacobian_1d.png")
    summ = {"params": r["params"], "n": n}
    for it in its:
        s = np.asarray(snaps[it]["singular_values"])
        summ[f"t={it}"] = {"sv_ratio_10": float(s[9] / s[0]), "sv_ratio_50": float(s[49] / s[0]),
                           "low_freq_energy_top5": snaps[it]["low_freq_energy"][:5]}
    return summ


def run_alignment(cfg: DenoisingConfig, out: Path) -> dict:
    img = dn.load_gray("phantom256.png", cfg.align_size)
    res = {"dd": dn.jacobian_alignment(img, "deep-decoder", cfg.align_inits, device=cfg.device, **cfg.align_dd),
           "dip": dn.jacobian_alignment(img, "dip", cfg.align_inits, device=cfg.device, **cfg.align_dip)}
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for a, (name, v) in zip(ax, res.items()):
        a.hist(v["image"], bins=10, alpha=0.6, label="image")
        a.hist(v["noise"], bins=10, alpha=0.6, label="noise (same norm)")
        a.set_title(f"Fig. 12 {name}: ||J^T(C_0) y||")
        a.legend()
    _save(fig, out, "fig12_jacobian_alignment.png")
    return {name: {"mean_image": float(np.mean(v["image"])), "mean_noise": float(np.mean(v["noise"])),
                   "min_image": float(np.min(v["image"])), "max_noise": float(np.max(v["noise"]))}
            for name, v in res.items()}


def run_table(cfg: DenoisingConfig, out: Path) -> dict:
    rows = []
    sd = cfg.noise_sigma
    for i, name in enumerate(cfg.table_images):
        img = dn.load_gray(name, cfg.table_size)
        noisy = img + sd * np.random.default_rng(i).standard_normal(img.shape)
        row = {"image": name, "noisy": dn.psnr(noisy, img)}
        row["dd_k_over_early"] = dn.psnr(dn.denoise(noisy, "deep-decoder", cfg.table_steps[0], cfg.lr,
                                                    show_progress=True, device=cfg.device, **cfg.table_dd_over), img)
        row["dd_k_under_converged"] = dn.psnr(dn.denoise(noisy, "deep-decoder", cfg.table_steps[1], cfg.lr,
                                                         show_progress=True, device=cfg.device, **cfg.table_dd_under),
                                              img)
        row["dip"] = dn.psnr(dn.denoise(noisy, "dip", cfg.table_steps[2], cfg.lr, show_progress=True,
                                        device=cfg.device, **cfg.table_dip), img)
        row["bm3d"] = dn.psnr(dn.bm3d_denoise(noisy, sd), img)
        rows.append(row)
    keys = ["noisy", "dd_k_over_early", "dd_k_under_converged", "dip", "bm3d"]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    paper = {"noisy": 20.60, "dd_k_over_early": 28.08, "dd_k_under_converged": 27.84, "dip": 25.76, "bm3d": 25.52}
    return {"rows": rows, "mean": mean, "paper_imagenet_mean": paper}


SECTIONS = {"theory": run_theory, "fig1": run_fig1, "architectures": run_architectures, "movement": run_movement,
            "jacobian": run_jacobian, "alignment": run_alignment, "table1": run_table}


def main(argv=None) -> dict:
    return run_sections("reproduce_denoising", __doc__, DenoisingConfig, SECTIONS, argv)


if __name__ == "__main__":
    main()
