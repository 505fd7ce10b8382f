"""Claims of Heckel & Soltanolkotabi, ICLR 2020 (denoising via the structural bias), at quick size."""

import json
import math

import numpy as np
import pytest

from fastmri_untrained.theory.heckel_soltanolkotabi import dynamics, experiments, network
from fastmri_untrained.theory.heckel_soltanolkotabi.dual_kernel import (
    autocorrelation,
    circulant,
    gaussian_kernel,
    sigma_matrix,
    sorted_basis,
    triangular_kernel,
    trig_basis,
)

EPS64 = np.finfo(np.float64).eps


def trig_tol(size: int) -> float:
    """Rounding of trigonometric-basis products: phases up to 2 pi size, each off by ~2 pi size eps, summed over size terms."""
    return 8 * np.pi * size * EPS64


def arccos_rounding(u: np.ndarray) -> float:
    """Rounding of Sigma(U) entries plus sigma^2, dominated by arccos at a cosine of 1 (infinite slope).

    rho_ii (Sigma) is rounded up to 2 eps below 1 and r_0/||u||^2 (dual kernel, after an FFT) up to
    ~2 eps log2(size) below 1; (1/2) arccos(1 - delta)/pi ~ sqrt(2 delta)/(2 pi), times ||u||^2.
    """
    return float(np.vdot(u, u)) * np.sqrt(EPS64) * (1 + np.sqrt(np.log2(np.size(u)))) / np.pi


def sigma_tol(u: np.ndarray, S: np.ndarray) -> float:
    """arccos_rounding plus eps-level matrix-product rounding, 64 n eps ||S||_inf."""
    return arccos_rounding(u) + 64 * S.shape[0] * EPS64 * np.abs(S).sum(1).max()


# --------------------------------------------------------------------------- exact linear algebra
def test_trig_basis_orthonormal_and_eigenvectors_of_circulant():
    n = 32
    W = trig_basis(n)
    assert np.allclose(W.T @ W, np.eye(n), rtol=0, atol=trig_tol(n))  # 1.8e-13; measured 6e-15
    u = triangular_kernel(n, 5)
    S = sigma_matrix(circulant(u))
    D = W.T @ S @ W
    # diagonal in the trigonometric basis, up to Sigma's uneven sqrt(eps)-level diagonal rounding (bound 5e-8)
    assert np.abs(D - np.diag(np.diag(D))).max() < sigma_tol(u, S)


def test_autocorrelation_is_row_gram():
    u = np.random.default_rng(3).standard_normal(20)
    U = circulant(u)
    # dot products err <= n eps ||u||^2 (Cauchy-Schwarz), the FFT round trip ~ eps log2(n) ||u||^2: 4x their sum
    assert np.allclose((U @ U.T)[0], autocorrelation(u), rtol=0, atol=4 * u.size * EPS64 * (u @ u))


def test_sigma_eigenvalues_equal_dual_kernel_squared():
    n = 300
    res = experiments.dual_kernel_check(n=n)
    # Not eigvalsh's ~n eps lambda_max (~1e-12): arccos at cosine 1 puts ~||u||^2 sqrt(eps)/pi on both sides
    # (1.59e-8 measured = sqrt(eps) 6.7/(2 pi) when rho_ii rounds 1 ulp below 1), see arccos_rounding.
    # ||u||^2 = 2 Sigma_ii <= 2 lambda_max bounds the relative error by 3.7e-8; a wrong formula is off by O(1).
    rel_tol = 2 * np.sqrt(EPS64) * (1 + np.sqrt(np.log2(n))) / np.pi + 64 * n * EPS64
    for name, r in res.items():
        assert r["max_rel_error"] < rel_tol, (name, r)
    for name, u in (("triangular(hw=10)", triangular_kernel(n, 10)), ("gaussian(std=5)", gaussian_kernel(n, 5))):
        r = res[name]  # abs bound 1.2e-7 (triangular), 1.6e-7 (gaussian): arccos term plus eigvalsh's
        assert r["max_abs_error"] < arccos_rounding(u) + 64 * n * EPS64 * r["largest_eigenvalue"], (name, r)
    # Erratum: the printed convolution form is wrong for a non-symmetric kernel, in 1-D and 2-D
    # (off by O(lambda_max): 86 and 53 measured, lambda_max 665 and 249; rounding is < 1e-5).
    assert res["random"]["convolution_form_max_abs_error"] > 1.0
    assert res["2-D random"]["convolution_form_max_abs_error"] > 1.0


def test_2d_block_circulant_is_circular_correlation_and_basis_diagonalises_sigma():
    shape = (6, 8)  # not square: a swapped axis would show
    rng = np.random.default_rng(5)
    u, x = rng.standard_normal(shape), rng.standard_normal(shape)
    U = circulant(u)
    corr = np.fft.ifftn(np.conj(np.fft.fftn(u)) * np.fft.fftn(x)).real  # sum_j u_{j-i} x_j
    # dot products err <= n eps ||u|| ||x||, the FFTs ~ eps log2(n) ||u|| ||x||: 4x their sum (n = 48)
    assert np.allclose(U @ x.ravel(), corr.ravel(), rtol=0, atol=4 * u.size * EPS64 * np.linalg.norm(u) * np.linalg.norm(x))
    assert np.allclose((U @ U.T)[0], autocorrelation(u).ravel(), rtol=0, atol=4 * u.size * EPS64 * np.vdot(u, u))
    kernel = triangular_kernel(shape, 3)
    W, s = sorted_basis(kernel)
    assert np.allclose(W.T @ W, np.eye(48), rtol=0, atol=trig_tol(48))
    S = sigma_matrix(circulant(kernel))
    D = W.T @ S @ W
    # sqrt(eps)-level arccos rounding (bound 7e-8; 1.5e-8 measured on the diagonal), a wrong basis is off by O(1)
    assert np.abs(D - np.diag(np.diag(D))).max() < sigma_tol(kernel, S)
    assert np.allclose(np.diag(D), s**2, rtol=0, atol=sigma_tol(kernel, S))
    # the 1-D basis is the 2-D construction on a single axis (same phases: equal up to phase rounding)
    assert np.allclose(trig_basis((1, 10)), trig_basis(10), rtol=0, atol=trig_tol(10))


def test_sorted_basis_diagonalises_sigma_with_decreasing_weights():
    u = gaussian_kernel(64, 3)
    W, s = sorted_basis(u)
    S = sigma_matrix(circulant(u))
    D = W.T @ S @ W
    assert np.allclose(np.diag(D), s**2, rtol=0, atol=sigma_tol(u, S))  # bound 9e-8; 1.1e-8 measured
    assert np.all(np.diff(s) <= 1e-12)  # sorted_basis ranks sigma rounded to 12 decimals: ties may swap by < 1e-12


def test_jacobian_gram_matches_explicit_jacobian():
    rng = np.random.default_rng(0)
    U = circulant(triangular_kernel(16, 4))
    C = rng.standard_normal((16, 8))
    v = network.output_weights(8)
    J = network.jacobian(U, C, v)
    assert J.shape == (16, 16 * 8)
    n, k, u_norm = 16, 8, np.linalg.norm(U[0])
    # nk-term sums of |J_i||J_j| <= ||u||^2 (sum v_l^2 = 1): error <= nk eps ||u||^2, 2x margin
    assert np.allclose(J @ J.T, network.jacobian_gram(U, C, v), rtol=0, atol=2 * n * k * EPS64 * u_norm**2)
    # G is positively homogeneous: J(C) vec(C) = G(C); nk-term sums of |J||c| <= ||u|| ||C||_F, 2x margin
    assert np.allclose(J @ C.T.reshape(-1), network.generator(U, C, v), rtol=0,
                       atol=2 * n * k * EPS64 * u_norm * np.linalg.norm(C))


def test_monte_carlo_gram_converges_to_sigma():
    r = experiments.monte_carlo_convergence(n=64, k=64, samples=(1, 4, 16, 64, 256))
    e = r["relative_error"]
    assert all(b < a for a, b in zip(e, e[1:])), e
    # Monte Carlo error ~ 1/sqrt(samples): e[0] / 16 = 0.009 expected at 256 (0.006 measured), 2x margin
    assert e[-1] < 0.02 and e[-1] < e[0] / 8


def test_linear_gd_matches_prop1_formula():
    n, T = 60, 100
    r = experiments.linear_dynamics_check(n=n, iterations=T)
    # GD is non-expansive (eta s_i^2 <= 1) so rounding adds up: T steps of n-term products with
    # ||c_t|| <= sqrt(t) ||y||, ||y|| <= 2: ~T^1.5 n eps ||y|| = 2.7e-11 (7e-16 measured); a wrong formula ~1e-2
    assert r["max_abs_error"] < T**1.5 * n * EPS64 * 2
    # the signal direction is fitted long before the noise
    assert r["signal_fitted"][5] > 0.5 and r["noise_fitted"][5] < 0.5


def test_stopping_time_formula():
    tau = dynamics.stopping_time(n=100, p=4, step=0.5, sigma_p1=0.2)
    # tau = log(0.8)/log(0.98) to ~2 eps relative; a**tau then off by |ln 0.8| 2 eps plus pow's own ulp
    assert math.isclose((1 - 0.5 * 0.04) ** tau, 1 - math.sqrt(0.04), rel_tol=8 * EPS64)


def test_gd_gradient_is_exact():
    """The GD loop's update is -eta * the gradient of 1/2||y - G(C)||^2 (finite differences)."""
    rng = np.random.default_rng(1)
    n, k = 12, 6
    U = circulant(triangular_kernel(n, 3))
    y = rng.standard_normal(n)
    r = network.fit_two_layer(U, y, network.GDConfig(iterations=1, step=1e-6, k=k, omega=1.0, seed=4))
    C0 = np.random.default_rng(4).standard_normal((n, k))
    grad = (C0 - r.C) / 1e-6
    v = network.output_weights(k)
    loss = lambda C: 0.5 * np.sum((network.generator(U, C, v) - y) ** 2)  # noqa: E731
    E = np.zeros_like(C0)
    E[2, 3] = 1e-6
    fd = (loss(C0 + E) - loss(C0 - E)) / 2e-6
    # the loss is piecewise quadratic (exact central difference away from kinks): only rounding remains,
    # eps loss / h in fd and eps |C0| / step in grad: 16x their sum = 3e-8 (4.4e-10 measured)
    assert abs(fd - grad[2, 3]) < 16 * EPS64 * (loss(C0) + np.abs(C0).max()) / 1e-6


# --------------------------------------------------------------------------- two-layer network denoising
@pytest.fixture(scope="module")
def two_layer():
    return experiments.two_layer_denoising(n=64, p=5, half_width=16, noise_level=0.5, ks=(512, 4096),
                                              seeds=(0, 1), horizon=4.0, show_progress=False)


def test_two_layer_error_respects_theorem1_bound(two_layer):
    for run in two_layer["runs"]:
        assert run["error_at_tau"] <= run["theorem1_bound"], run["k"]
        # and early-stopped GD denoises: below the noise energy
        assert run["error_at_tau"] < run["noise_norm"]


def test_two_layer_follows_linearised_dynamics_better_with_width(two_layer):
    dev = {}
    for run in two_layer["runs"]:
        dev.setdefault(run["k"], []).append(run["linear_deviation"])
    small, large = np.mean(dev[512]), np.mean(dev[4096])
    assert large < small / 2, dev
    assert large < 0.05


def test_two_layer_error_respects_theorem2_curve(two_layer):
    for run in two_layer["runs"]:
        if run["k"] == 4096:
            # Theorem 2's eps||y|| term is bounded by the init's size (lazy regime): allow it.
            slack = run["init_norm"] + run["linear_deviation"]
            assert np.all(np.asarray(run["error"]) <= np.asarray(run["theorem2"]) + slack)


@pytest.fixture(scope="module")
def two_layer_2d():
    return experiments.two_layer_denoising(n=(12, 12), p=5, half_width=6, noise_level=0.5, ks=(512, 4096),
                                              seeds=(0, 1), horizon=8.0, show_progress=False)


def test_two_layer_2d_denoises_images_within_the_theorems(two_layer_2d):
    """The 2-D generator (block-circulant U): Theorem 1's bound holds at tau, early-stopped GD
    removes most of the noise, and wider networks follow the linearised dynamics more closely."""
    assert two_layer_2d["n"] == [12, 12] and two_layer_2d["size"] == 144
    dev = {}
    for run in two_layer_2d["runs"]:
        assert run["error_at_tau"] <= run["theorem1_bound"], run["k"]
        assert run["best_error"] < run["noise_norm"] / 2  # measured 0.14-0.15 vs 0.53
        dev.setdefault(run["k"], []).append(run["linear_deviation"])
        if run["k"] == 4096:
            slack = run["init_norm"] + run["linear_deviation"]
            assert np.all(np.asarray(run["error"]) <= np.asarray(run["theorem2"]) + slack)
    assert np.mean(dev[4096]) < np.mean(dev[512]) / 2, dev


def test_dual_kernel_decays_faster_for_wider_kernels():
    out = experiments.kernels_and_dual_kernels(n=300, triangular=(2, 10), gaussian=())
    narrow = np.asarray(out["triangular hw=2"]["sigma"])
    wide = np.asarray(out["triangular hw=10"]["sigma"])
    # measured at n = 300: sigma_61/sigma_1 = 0.92 (hw 2) vs 0.18 (hw 10)
    assert wide[60] / wide[0] < narrow[60] / narrow[0] / 3
    assert np.all(np.diff(wide) <= 1e-12)  # sorted_basis ranks sigma rounded to 12 decimals: ties may swap by < 1e-12


# --------------------------------------------------------------------------- deep networks (script, quick size)
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, load_script, keep_threads):
    """One run of ``scripts/reproduce_denoising.py --quick --device cpu``; the tests below read its numbers."""
    from fastmri_untrained.theory.heckel_soltanolkotabi.deep_experiments import SHARED_IMAGES

    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {SHARED_IMAGES}")
    mod = load_script("reproduce_denoising")
    out = tmp_path_factory.mktemp("denoising")
    with keep_threads():
        res = mod.main(["--quick", "--device", "cpu", "--out", str(out)])
    res["_out"] = out
    return res


def test_script_writes_figures_and_json(quick_run):
    out = quick_run["_out"]
    for name in ("fig1_fit_image_vs_noise.png", "fig5_mc_and_linear.png", "fig6_dual_kernels.png",
                 "fig7_jacobian_1d.png", "fig8_architectures.png", "fig9_weight_movement.png",
                 "fig12_jacobian_alignment.png", "theorem1_two_layer.png", "theorem1_two_layer_2d.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    json.loads((out / "results.json").read_text())


def test_fig1_images_fitted_much_faster_than_noise(quick_run):
    for name, r in quick_run["fig1"].items():
        assert r["iters_to_10pct_clean"] < math.inf, name
        # after the whole budget the noise is still far from fitted while the image is
        assert r["final_relative_mse_noise"] > 10 * r["final_relative_mse_clean"], (name, r)


def test_fig8_fixed_kernels_fit_noise_much_slower_than_learned(quick_run):
    rows = quick_run["architectures"]["rows"]
    factors = sorted({int(k.split("/")[1]) for k in rows})
    for f in factors:
        fixed = min(rows[f"{a}/{f}"]["noise_over_image_iterations"] for a in ("i", "ii"))
        learned = max(rows[f"{a}/{f}"]["noise_over_image_iterations"] for a in ("iii", "iv"))
        assert fixed >= 10, (f, fixed)  # noise needs over 10x the iterations (often a lower bound)
        assert learned < fixed / 2.5, (f, learned, fixed)
    # the gap nearly vanishes for learned filters at the largest over-parameterisation
    assert rows[f"iii/{factors[-1]}"]["noise_over_image_iterations"] < 3


def test_fig9_noise_needs_larger_weight_changes(quick_run):
    r = quick_run["movement"]
    assert r["image_iteration_at_level"] < r["noise_iteration_at_level"] / 10
    img, noise = r["image_movement_at_level"], r["noise_movement_at_level"]
    assert all(noise[k] > 1.5 * img[k] for k in img), (img, noise)


def test_fig7_jacobian_leading_vectors_low_frequency_and_spectrum_decays(quick_run):
    r = quick_run["jacobian"]
    baseline = 12 / r["n"]  # energy a random direction has in 12 of n DCT frequencies
    for key, snap in r.items():
        if key.startswith("t="):
            assert np.mean(snap["low_freq_energy_top5"]) > 5 * baseline, (key, snap)
            assert snap["sv_ratio_50"] < 0.2
    t_keys = sorted((k for k in r if k.startswith("t=")), key=lambda k: int(k[2:]))
    first, last = r[t_keys[0]]["sv_ratio_50"], r[t_keys[-1]]["sv_ratio_50"]
    assert 0.5 < last / first < 2  # the spectrum's shape changes little during training


def test_fig12_images_align_with_leading_jacobian_directions(quick_run):
    for name, r in quick_run["alignment"].items():
        assert r["mean_image"] > 1.5 * r["mean_noise"], (name, r)
        assert r["min_image"] > r["max_noise"], (name, r)


def test_table1_all_methods_denoise(quick_run):
    mean = quick_run["table1"]["mean"]
    for key in ("dd_k_over_early", "dd_k_under_converged", "dip", "bm3d"):
        assert mean[key] > mean["noisy"] + 2.0, (key, mean)
