"""Buskulic, Fadili & Queau (2023): sigmoid constants, the z-reduction of training, Jacobian and
Lipschitz bounds (Lemmas B.2-B.3), the KL function of the p-loss, and the quick reproduction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fastmri_untrained.theory.buskulic import network as bk

EPS64 = float(np.finfo(np.float64).eps)


def test_sigmoid_constants_by_two_quadratures():
    c, cp = bk.activation_constants()
    cq, cpq = bk.activation_constants_quad()
    # quad is asked for epsabs = 1e-14 on C^2 (1e-14 / 2C on C); 200-node Gauss-Hermite is converged to
    # its 200-term rounding: 4x their sum = 2.7e-13
    tol = 4 * (1e-14 / (2 * min(cq, cpq)) + 200 * EPS64)
    assert c == pytest.approx(cq, abs=tol) and cp == pytest.approx(cpq, abs=tol)
    assert c == pytest.approx(0.5416, abs=5e-5) and cp == pytest.approx(0.2117, abs=5e-5)  # published to 4 decimals


def test_sigmoid_lipschitz_constants():
    x = torch.linspace(-10, 10, 200001, dtype=torch.float64)
    h = 20 / 200000
    s = torch.sigmoid(x)
    # 0 is the middle node, where phi' = 1/4 - x^2/16 is flat: only the rounding of 0.25 remains
    assert float((s * (1 - s)).max()) == pytest.approx(bk.B_SIGMOID, abs=EPS64)
    second = s * (1 - s) * (1 - 2 * s)
    # a grid of step h misses a smooth maximum by <= h^2/8 max|phi^(4)| < h^2/32 (|phi^(4)| < 1/4) = 3e-10
    assert float(second.abs().max()) == pytest.approx(bk.LIP_SIGMOID_PRIME, abs=h**2 / 32)
    assert bk.LIP_SIGMOID_PRIME <= bk.B_SIGMOID


def _small_problem(seed=0, n=6, m=3, k=40, d=7):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u = u / u.norm()
    w0 = torch.randn(k, d, generator=g, dtype=torch.float64)
    v = (torch.randint(0, 2, (n, k), generator=g) * 2 - 1).to(torch.float64)
    a = torch.randn(m, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    y = a @ torch.randn(n, generator=g, dtype=torch.float64)
    return u, w0, v, a, y


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_training_w_equals_training_z(p):
    """GD on W moves z = W u by exactly the GD step on z, since ||u|| = 1."""
    u, w0, v, a, y = _small_problem()
    losses_w, w_end = bk.train_w_explicit(u, w0, v, a, y, step=0.7, iters=60, p=p)
    z0 = (w0 @ u)[None]
    batch = bk.Batch(a[None], v[None], z0, torch.zeros(1, 6, dtype=torch.float64), y[None], y[None])
    res = bk.train(batch, step=0.7, iters=59, p=p, tol=0.0, log_every=1)
    # exact in exact arithmetic: 60 steps each adding ~k eps (k = 40) of rounding, 16x margin = 8.5e-12
    drift = 16 * 60 * 40 * EPS64
    np.testing.assert_allclose(res.history["loss"][:, 0], losses_w, rtol=drift)
    # ||W(t) - W(0)||_F equals ||z(t) - z(0)|| (the update is rank one along u).
    z_last = bk.train(batch, step=0.7, iters=60, p=p, tol=0.0).z[0]
    assert torch.allclose(w_end @ u, z_last, rtol=0, atol=drift * float(z_last.abs().max()))
    assert float(torch.linalg.norm(w_end - w0)) == pytest.approx(float(torch.linalg.norm(z_last - z0[0])), rel=drift)


def test_sigma_min_formula_matches_svd_of_the_jacobian():
    u, w0, v, a, y = _small_problem(n=5, k=30, d=4)
    fn = lambda w: v @ torch.sigmoid(w @ u) / math.sqrt(30)  # noqa: E731
    jac = torch.autograd.functional.jacobian(fn, w0).reshape(5, -1)
    sv = torch.linalg.svdvals(jac)
    smin = sv.min()
    # sqrt(lambda_min(J J^T)) vs the SVD: eps (n + k) ||H|| absolute on lambda, so ~(n + k) eps cond(J)^2 on sigma
    rel = 16 * (5 + 30) * EPS64 * float(sv.max() / smin) ** 2
    assert float(bk.sigma_min_jacobian(v[None], (w0 @ u)[None])[0]) == pytest.approx(float(smin), rel=rel)


def test_lemma_b2_sigma_min_at_init_above_c_phi_prime_over_two():
    batch = bk.random_batch(20, 5, 3, 3000, d=20, seed=1)
    s = bk.sigma_min_jacobian(batch.v, batch.z0)
    cp = bk.activation_constants()[1]
    assert bool((s >= cp / 2).all())
    assert float(s.max()) <= cp * 1.2  # concentrates near C_phi' from below (E H = C_phi'^2 I)
    small = bk.random_batch(4, 10, 3, 8, seed=2)  # k < n: J_g has rank < n
    assert bool((bk.sigma_min_jacobian(small.v, small.z0) == 0).all())


def test_lemma_b3_global_lipschitz_bound_of_the_jacobian():
    n, k = 6, 50
    g = torch.Generator().manual_seed(3)
    v = (torch.randint(0, 2, (n, k), generator=g) * 2 - 1).to(torch.float64)
    bound = bk.lip_jacobian_bound(n, k)
    worst = 0.0
    for _ in range(200):
        z1 = torch.randn(k, generator=g, dtype=torch.float64) * 2
        z2 = z1 + torch.randn(k, generator=g, dtype=torch.float64) * 0.5
        # J(W) - J(W') = V diag(phi'(z) - phi'(z')) / sqrt(k) (x) u^T, spectral norm via the n x k factor.
        diff = v * (bk.sigmoid_prime(z1) - bk.sigmoid_prime(z2)) / math.sqrt(k)
        ratio = float(torch.linalg.matrix_norm(diff, ord=2) / torch.linalg.norm(z1 - z2))
        worst = max(worst, ratio)
    assert worst <= bound
    assert worst <= bk.lip_jacobian_bound(n, k, bk.LIP_SIGMOID_PRIME)


@pytest.mark.parametrize("p", [0.0, 0.2, 1.0])
def test_psi_is_a_desingularizing_function_with_equality(p):
    r = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 3
    lval = bk.loss(r, p)
    e = 1e-6
    dpsi = (bk.psi(lval + e, p) - bk.psi(lval - e, p)) / (2 * e)
    grad_norm = torch.linalg.norm(bk.loss_grad(r, p), dim=-1)
    # central difference, relative: rounding of L +- e (eps L / e) and of psi (eps L / (alpha e)), alpha =
    # 1/(2(p+1)) <= 1/2 (2.3e-7 measured at p = 1, L = 1250), plus truncation ~(e / L)^2
    alpha = 1 / (2 * (p + 1))
    rtol = 4 * EPS64 * float(lval.max()) / (alpha * e) + (e / float(lval.min())) ** 2
    np.testing.assert_allclose((dpsi * grad_norm).numpy(), 1.0, rtol=rtol)
    # psi inverts the loss: a 4-term sum, a power and a root, a few eps (1 eps measured)
    assert torch.allclose(bk.psi(lval, p), torch.linalg.norm(r, dim=-1), rtol=16 * EPS64, atol=0)


def test_gradient_of_p_loss_matches_autograd():
    r = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    bk.loss(r, 0.4).sum().backward()
    # s^p r both ways, a few roundings per entry (1.6 eps measured)
    assert torch.allclose(r.grad, bk.loss_grad(r.detach(), 0.4), rtol=16 * EPS64, atol=0)


# --- the quick reproduction ---------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory, load_script, keep_threads):
    mod = load_script("reproduce_buskulic")
    out = tmp_path_factory.mktemp("bk")
    with keep_threads():
        res = mod.main(["--quick", "--device", "cpu", "--out", str(out)])
    return res, out


def test_quick_writes_figures_and_json(quick):
    res, out = quick
    for name in ("fig1_success_maps.png", "fig2a_signal_error.png", "fig2b_final_loss_vs_k.png",
                 "fig3_loss_vs_p.png", "results.json"):
        assert (out / name).stat().st_size > 1000
    # strict JSON (an unreached k is null, not NaN), from the run on the device asked for
    written = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert written["config"]["device"] == "cpu" and written["fig3"] == res["fig3"]


def test_condition_8_and_lemma_3_10(quick):
    res, _ = quick
    tiny, fig1 = res["lemma"]
    # (8) holds for a tiny problem with a huge hidden layer, and Lemma 3.10 (i)-(iii) along GD.
    assert tiny["frac_cond8"] >= 0.5
    assert tiny["frac_check_i"] == tiny["frac_check_ii"] == tiny["frac_check_iii"] == 1.0
    assert tiny["min_sigma_ratio_min"] >= 0.5
    # In the Fig. 1 regime (8) fails (R' >> R): the bound is far from tight, yet GD converges.
    assert fig1["frac_cond8"] == 0.0 and fig1["R_prime_median"] > 10 * fig1["R_median"]
    assert fig1["final_loss_median"] < 1e-5  # a convergence claim (GD reaches the loss floor), not rounding
    assert fig1["frac_check_i"] == 1.0 and fig1["frac_check_ii"] == 1.0
    assert fig1["frac_sigma_min_ge_C_phi_prime_over_2"] == 1.0


def test_fig1_success_grows_with_k_and_required_k_grows_with_n_and_m(quick):
    res, _ = quick
    f1 = res["fig1"]
    for rows in (f1["map_kn"], f1["map_km"]):
        for row in rows:
            assert row[-1] >= row[0]
            assert all(b >= a - 0.2 for a, b in zip(row, row[1:]))  # monotone up to sampling noise
        assert sum(row[-1] - row[0] for row in rows) > 0.5 * len(rows)
    kn = f1["required_k_vs_n"]  # rows n = 2, 4, 6, 10 (m = 10)
    assert kn[0] < kn[1] < kn[2]
    assert not kn[3] <= kn[2]  # at n = m: reached later, or never within the grid (nan)
    km = f1["required_k_vs_m"]  # rows m = 5, 10, 20 (n = 60)
    assert km[0] < km[1] < km[2]
    assert f1["linear_fit_m (c, b)"][0] > 0 and f1["quadratic_fit_n_le_m (c, b)"][0] > 0


def test_fig2b_final_loss_decreases_with_k(quick):
    res, _ = quick
    for row in res["fig2b"]["mean_final_loss"]:
        assert row[-1] < 1e-3 * row[0]


def test_fig3_smaller_p_converges_faster(quick):
    res, _ = quick
    r = res["fig3"]["final_mean_resid"]  # ||y(t) - y|| is comparable across p
    assert r[0] < r[1] < r[2]


def test_fig2a_noise_free_signal_error_decreases(quick):
    res, _ = quick
    f2 = res["fig2a"]
    assert f2["betas"][0] == 0.0
    assert f2["noise_bound_beta_sqrt(m/3)/mu"][0] == 0.0
    assert f2["final_signal_err_mean"][0] < f2["initial_signal_err_mean"][0]


def test_operator_readings_and_shapes():
    """A has std 1/sqrt(n) (README reading) or n^{-1/4} (variance 1/sqrt(n)); V is +-1."""
    b = bk.random_batch(4, 400, 50, 30, d=3, seed=0)
    # sample std of N = 80000 normals: relative standard error 1/sqrt(2N) = 0.0025; 2% is 8 of them, and
    # the two readings differ by 400^0.25 = 4.5x
    assert float(b.a.std()) == pytest.approx(400**-0.5, rel=0.02)
    assert float(bk.random_batch(4, 400, 50, 30, d=3, seed=0, a_reading="var").a.std()) == pytest.approx(
        400**-0.25, rel=0.02)
    assert set(b.v.unique().tolist()) == {-1.0, 1.0}
    # noise beta = 0: the same n-term products, equal up to their rounding n eps |A| |x|
    assert torch.allclose(b.y, (b.a @ b.x_bar[..., None])[..., 0], rtol=0,
                          atol=400 * EPS64 * float((b.a.abs() @ b.x_bar.abs()[..., None]).max()))
    with pytest.raises(ValueError):
        bk.random_batch(1, 4, 2, 3, a_reading="bogus")
