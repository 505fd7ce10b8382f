"""Claims of Heckel & Soltanolkotabi, ICML 2020 (compressive sensing with un-trained networks), quick size."""

import json

import numpy as np
import pytest

from fastmri_untrained.theory.heckel_soltanolkotabi import dynamics, experiments
from fastmri_untrained.theory.heckel_soltanolkotabi.dual_kernel import sorted_basis, triangular_kernel

EPS64 = np.finfo(np.float64).eps


def test_min_norm_solution_is_gd_limit_and_interpolates():
    """GD from 0 on 1/2||A J c - y||^2 converges to the min-norm solution (the estimate analysed)."""
    rng = np.random.default_rng(0)
    n, N, m = 20, 40, 8
    W, s = sorted_basis(triangular_kernel(n, 4))
    J = dynamics.spectral_generator(W, s, N, 1)
    A = dynamics.gaussian_matrix(m, n, 2)
    x = rng.standard_normal(n)
    y = A @ x
    xh = dynamics.min_norm_estimate(A, J, y)
    M = A @ J
    sv = np.linalg.svd(M, compute_uv=False)
    c_norm = np.linalg.norm(y) / sv[-1]  # >= ||c*||, c* = M^+ y
    # lstsq is backward stable: residual ~ N eps ||A|| ||J|| ||c*||, 16x margin (2e-15 measured)
    assert np.allclose(A @ xh, y, rtol=0, atol=16 * N * EPS64 * np.linalg.norm(A, 2) * np.linalg.norm(J, 2) * c_norm)
    c = np.zeros(N)
    eta = 1.0 / sv[0] ** 2
    T = 20000
    for _ in range(T):
        c -= eta * M.T @ (M @ c - y)
    # GD contracts the error by (1 - 1/cond(M)^2) per step (cond = 5: gone after T), leaving its rounding
    # floor ~cond^2 N eps ||c*||, 16x margin; both seen through ||J||
    kappa2 = (sv[0] / sv[-1]) ** 2
    gd_tol = np.linalg.norm(J, 2) * c_norm * ((1 - 1 / kappa2) ** T + 16 * kappa2 * N * EPS64)
    assert np.allclose(J @ c, xh, rtol=0, atol=gd_tol)


def test_linear_generator_error_below_theorem1_rhs_and_decreasing():
    for gamma in (None, 0.9):
        r = experiments.linear_cs(n=128, p=6, ms=(12, 24, 36, 60), gamma=gamma, trials=4)
        errs = [row["error"] for row in r["rows"]]
        for row in r["rows"]:
            assert row["error_max"] <= row["rhs"], row  # holds with constant C = 1
            if gamma is not None and row["geometric_bound"] is not None:
                assert row["error_max"] <= row["geometric_bound"], row
        assert errs[-1] < errs[0] / 10


def test_theorem1_rhs_is_not_vacuous():
    """The RHS tracks the measured error: it falls with m, and a signal outside the leading
    directions (not smooth) gets a much larger bound and error."""
    n, m = 128, 30
    W, s = sorted_basis(triangular_kernel(n, 8))
    smooth = dynamics.smooth_signal(W, 5, seed=0)
    rough = W[:, -5:] @ np.ones(5) / np.sqrt(5)
    assert dynamics.cs_theorem1_rhs(W, s, rough, m) > 100 * dynamics.cs_theorem1_rhs(W, s, smooth, m)
    J = dynamics.spectral_generator(W, s, 2 * n, 0)
    A = dynamics.gaussian_matrix(m, n, 1)
    e_s = np.sum((dynamics.min_norm_estimate(A, J, A @ smooth) - smooth) ** 2)
    e_r = np.sum((dynamics.min_norm_estimate(A, J, A @ rough) - rough) ** 2)
    assert e_r > 0.5 and e_s < 0.1


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, load_script, keep_threads):
    """One run of ``scripts/reproduce_cs.py --quick --device cpu``; the tests below read its numbers."""
    from fastmri_untrained.theory.heckel_soltanolkotabi.deep_experiments import SHARED_IMAGES

    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"shared images not found at {SHARED_IMAGES}")
    mod = load_script("reproduce_cs")
    out = tmp_path_factory.mktemp("cs")
    with keep_threads():
        res = mod.main(["--quick", "--device", "cpu", "--out", str(out)])
    res["_out"] = out
    return res


def test_script_writes_figures_and_json(quick_run):
    out = quick_run["_out"]
    for name in ("theorem1_linear_generator.png", "theorem2_phase_transition.png", "fig1_cs_smooth_vs_texture.png",
                 "fig3_triangular_dual_kernels.png", "fig4_jacobian_spectrum.png",
                 "fig5_mri_error_over_iterations.png", "results.json"):
        assert (out / name).stat().st_size > 0, name
    json.loads((out / "results.json").read_text())


def test_two_layer_phase_transition_m_proportional_to_p(quick_run):
    r = quick_run["two_layer"]
    trans = {int(p): m for p, m in r["transition_m"].items()}
    ps = sorted(trans)
    for p in ps:
        assert trans[p] <= 4 * p, trans  # O(p) measurements suffice (measured c ~ 2-3)
        rows = r["curves"][str(p)]
        below = [row["error"] for row in rows if row["m"] < p]
        assert all(e > 0.3 for e in below), (p, below)  # fewer measurements than p: no recovery
    assert trans[ps[-1]] > trans[ps[0]]
    # fitted to (near) convergence, no early stopping
    for rows in r["curves"].values():
        for row in rows:
            assert row["final_loss"] < 1e-3 * row["initial_loss"]


def test_fig1_smooth_image_recovered_better_than_texture(quick_run):
    r = quick_run["fig1"]
    art, grass = r["art.jpeg"], r["grass.jpg"]
    assert art["final_relative_error"] < grass["final_relative_error"]
    for v in (art, grass):
        # no early stopping needed: the last iterate is within 15% of the best one
        assert v["final_relative_error"] < 1.15 * v["best_relative_error"]
        assert v["final_loss"] < 1e-2 * v["initial_loss"]


def test_fig3_wide_triangular_weights_decay_as_power_law(quick_run):
    fits = quick_run["fig3"]
    for name in ("triangular hw=10", "triangular hw=20"):
        assert fits[name]["power_law"]["r2"] > fits[name]["geometric"]["r2"], fits[name]
        assert fits[name]["power_law"]["slope"] < -0.8


def test_fig4_jacobian_spectrum_decays(quick_run):
    r = quick_run["fig4"]
    for key, snap in r.items():
        if key.startswith("t="):
            assert snap["decay_fit"]["geometric"]["slope"] < -0.01
            # the spectrum changes only slightly during fitting (normalised shape, top 100)
            assert snap["median_rel_change_normalised"] < 0.35, (key, snap)


def test_fig5_mri_deep_decoder_needs_no_early_stopping(quick_run):
    r = quick_run["fig5"]
    assert r["acceleration"] == 8
    # fitted without early stopping, the training loss falls by two orders of magnitude ...
    assert r["final_loss"] < 1e-2 * r["initial_loss"]
    # ... and the last iterate beats zero-filled and is within 10% of the best (oracle) stop
    assert r["final_mse"] < 0.9 * r["zero_filled_mse"], r
    assert r["final_ssim"] > r["zero_filled_ssim"] + 0.03, r
    assert r["final_mse"] < 1.1 * r["best_mse"], r
    # the error was tracked over the whole fit and fell from the random start
    assert len(r["mse"]) >= 10 and r["mse"][0] > 2 * r["final_mse"]
