"""Hand & Voroninski (COLT 2018): exact formulas, the descent vector, and the quick reproduction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastmri_untrained.theory.hand_voroninski import closed_forms as ht
from fastmri_untrained.theory.hand_voroninski import network as hn

README_RHO = {1: 0.0, 2: 0.31831, 3: 0.49373, 4: 0.60483, 5: 0.68095, 10: 0.85481, 20: 0.94449}
EPS64 = np.finfo(np.float64).eps


@pytest.mark.parametrize("d,val", sorted(README_RHO.items()))
def test_rho_matches_reference_values(d, val):
    assert ht.rho(d) == pytest.approx(val, abs=6e-6)  # the README prints 5 decimals: rounded by <= 5e-6
    # two orders of a d-term sum of products of d factors in [0, 1]: ~d eps each (1 eps measured at d = 20)
    assert ht.rho_recursive(d) == pytest.approx(ht.rho(d), abs=4 * d * EPS64)


def test_rho_exact_small_depths_and_limit():
    # rho_2 = sin(th_1)/pi + O(sin(float pi) = 1.2e-16): 1/pi up to a few roundings (an ulp of 1/pi is 5.6e-17)
    assert ht.rho(2) == pytest.approx(1 / math.pi, abs=4 * EPS64)
    vals = [ht.rho(d) for d in range(1, 60)]
    assert all(b > a for a, b in zip(vals, vals[1:]))
    assert 0.98 < vals[-1] < 1.0


def test_theta_map_properties():
    # the cosine (pi cos 0 + sin 0)/pi may round up to 2 eps below 1, and arccos(1 - 2 eps) = 2 sqrt(eps) = 3e-8
    assert float(ht.theta_map(0.0)) == pytest.approx(0.0, abs=2 * np.sqrt(EPS64))
    # the cosine is sin(float pi)/pi = 3.9e-17, so g(pi) = pi/2 - 3.9e-17: within 2 ulps of pi/2
    assert float(ht.theta_map(math.pi)) == pytest.approx(math.pi / 2, abs=4 * EPS64)
    th = np.linspace(1e-3, math.pi, 500)
    g = ht.theta_map(th)
    assert np.all(np.diff(g) > 0) and np.all(g < th)


@pytest.mark.parametrize("d", [2, 3, 5, 8])
def test_h_vanishes_exactly_at_x0_and_minus_rho_x0(d):
    rng = np.random.default_rng(d)
    x0 = rng.standard_normal(6)
    # h = (1 - P - S) x0 / 2^d with P, S d-factor products: ~d eps rounding, and an angle rounded to
    # ~sqrt(eps) away from 0 or pi enters only at second order (x0 and -rho x0 are critical points)
    zero_tol = 16 * d * EPS64 * np.linalg.norm(x0) / 2**d
    assert np.linalg.norm(ht.h_vector(x0, x0, d)) < zero_tol
    assert np.linalg.norm(ht.h_vector(-ht.rho(d) * x0, x0, d)) < zero_tol
    # ... and nowhere else on the x0 axis or off it (sampled; these bounds are ~1e10 times the rounding above).
    for t in [1.5, 0.5, 0.1, -0.05, -0.9 * ht.rho(d) if d > 1 else -0.5, -1.1 * ht.rho(d) - 0.05, -2.0]:
        assert np.linalg.norm(ht.h_vector(t * x0, x0, d)) > 1e-4 * np.linalg.norm(x0) / 2**d
    x = rng.standard_normal(6)
    assert np.linalg.norm(ht.h_vector(x, x0, d)) > 1e-4


def test_h_is_the_gradient_of_the_large_width_risk():
    """h_{x,x0} = grad of f_bar(x) = 2^-(d+1)(||x||^2 + ||x0||^2 - 2||x|| ||x0|| cos theta_d)."""
    rng = np.random.default_rng(0)
    for d in (2, 4):
        x, x0 = rng.standard_normal(5), rng.standard_normal(5)
        e = 1e-6
        num = np.array([(ht.f_expected(x + e * u, x0, d) - ht.f_expected(x - e * u, x0, d)) / (2 * e)
                        for u in np.eye(5)])
        # central difference: rounding eps f / e ~ 1e-10 (f ~ 1; 8e-11 measured) plus truncation ~e^2 = 1e-12
        np.testing.assert_allclose(num, ht.h_vector(x, x0, d), atol=1e-8)


def hessian_bound(gen, a) -> float:
    """||A||^2 prod ||W_i||^2 >= ||Lambda_x^T A^T A Lambda_x||, the Hessian of f on each linear piece."""
    norms = [torch.linalg.matrix_norm(w, 2) ** 2 for w in gen.weights]
    return float(torch.linalg.matrix_norm(a, 2) ** 2 * math.prod(norms))


def test_descent_vector_is_the_gradient_where_differentiable():
    gen = hn.random_generator((4, 30, 200), seed=1)
    a = hn.measurement_matrix(50, 200, seed=2)
    x0 = torch.randn(4, dtype=torch.float64)
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    hn.risk(gen, a, x, x0).backward()
    # products through widths 4, 30, 200, 50: rounding <= (sum of widths) eps |Hessian| (||x|| + ||x0||)
    tol = (4 + 30 + 200 + 50) * EPS64 * hessian_bound(gen, a) * float(x.detach().norm() + x0.norm())
    assert torch.allclose(x.grad, hn.descent_vector(gen, a, x.detach(), x0), rtol=0, atol=tol)


def test_descent_vector_at_a_kink_is_the_limit_of_gradients_along_a_direction():
    gen = hn.random_generator((4, 30, 200), seed=3)
    a = hn.measurement_matrix(50, 200, seed=4)
    x0 = torch.randn(4, dtype=torch.float64)
    w = torch.randn(4, dtype=torch.float64)
    for x in (torch.zeros(4, dtype=torch.float64),):  # every first-layer pre-activation is 0 here
        v = hn.descent_vector(gen, a, x, x0, direction=w)
        xs = (x + 1e-9 * w).requires_grad_(True)
        hn.risk(gen, a, xs, x0).backward()
        # f is piecewise quadratic: grad f(x + delta w) - v = delta H w, |H| <= hessian_bound ~ 30 (4e-10 measured)
        assert torch.allclose(v, xs.grad, rtol=0, atol=1e-9 * hessian_bound(gen, a) * float(w.norm()))
        v_other = hn.descent_vector(gen, a, x, x0, direction=-w)
        assert not torch.allclose(v, v_other, atol=1e-6)  # a genuine kink: the limit depends on w


def test_q_matrix_is_the_expectation_in_the_wdc():
    """Q_{x,y} = E sum_i 1[w_i.x>0] 1[w_i.y>0] w_i w_i^T for w_i ~ N(0, I/n): many rows -> small deviation."""
    w = torch.randn(40000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) / math.sqrt(40000)
    x = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    # sampling noise of a mean of N = 40000 rank-one terms: entry variances sum to <= 6.75/N (y = x), so
    # its Frobenius norm is ~sqrt(6.75/N) = 0.013 (0.016 measured); 2x that. A wrong Q is off by ~0.1.
    for y in (torch.tensor([0.3, 1.0, -0.2], dtype=torch.float64), x.clone(), -x):
        assert hn.wdc_deviation(w, x, y) < 2 * math.sqrt(6.75 / 40000)
    # the cosine of x with itself may round 2 eps below 1: theta = 2 sqrt(eps) then moves Q by ~theta/pi
    assert torch.allclose(hn.q_matrix(x, x), torch.eye(3, dtype=torch.float64) / 2, rtol=0, atol=2 * math.sqrt(EPS64))


def test_negation_check_escapes_the_negative_basin():
    gen = hn.random_generator((5, 80, 1280), seed=1000)
    a = hn.measurement_matrix(50, 1280, seed=1001)
    g = torch.Generator().manual_seed(1002)
    x0 = torch.randn(5, generator=g, dtype=torch.float64)
    xi = -x0 + 0.05 * x0.norm() * torch.randn(5, generator=g, dtype=torch.float64) / math.sqrt(5)
    plain = hn.gradient_descent(gen, a, x0, xi, iters=300, sign_check=False, tol=1e-6)
    checked = hn.gradient_descent(gen, a, x0, xi, iters=300, sign_check=True, tol=1e-6)
    assert not plain.converged and float(plain.x @ x0) < 0
    assert checked.converged and checked.flips >= 1


# --- the quick reproduction ---------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory, load_script, keep_threads):
    mod = load_script("reproduce_hand_voroninski")
    out = tmp_path_factory.mktemp("hv")
    with keep_threads():
        res = mod.main(["--quick", "--device", "cpu", "--out", str(out)])
    return res, out


def test_quick_writes_figures_and_json(quick):
    res, out = quick
    for name in ("rho_and_theta_map.png", "concentration_wdc_rric.png", "landscape_axis.png",
                 "landscape_plane.png", "gd_success.png", "results.json"):
        assert (out / name).stat().st_size > 1000


def test_descent_vector_concentrates_on_h_as_widths_grow(quick):
    res, _ = quick
    for key in ("A=I", "m=400"):
        errs = [c["max"] for c in res["concentration"][key]]
        assert errs[-1] < 0.35 * errs[0], (key, errs)
    wdc = res["concentration"]["wdc_rric_sampled_lower_bounds"]["wdc"]
    assert wdc[-1] < 0.3 * wdc[0]


def test_empirical_negative_critical_point_near_minus_rho(quick):
    res, _ = quick
    ap = res["landscape"]
    # on t < 0 the angle is pi, so 2^d <h, x0> = t + rho_d is linear: interpolating its zero is exact up to rounding
    assert ap["h_negative_zero"] == pytest.approx(-ap["rho_d"], abs=64 * EPS64)
    widest = ap["by_factor"][str(res["config"]["factors"][-1])]
    assert abs(widest["negative_zero"] + ap["rho_d"]) < 0.06
    narrowest = ap["by_factor"][str(res["config"]["factors"][0])]
    assert widest["max_abs_dev_from_h"] < 0.3 * narrowest["max_abs_dev_from_h"]


def test_gd_success_grows_with_m_and_with_the_check(quick):
    res, _ = quick
    vm = res["gd"]["vs_m"]
    assert vm["with_check"][0] == 0.0  # m = 3 < k = 5: x0 is not identifiable
    assert vm["with_check"][-1] > vm["with_check"][0] and vm["with_check"][-1] >= 0.5
    neg = res["gd"]["vs_depth_negative_init"]
    assert all(c >= p for c, p in zip(neg["with_check"], neg["without_check"]))
    assert min(neg["with_check"]) == 1.0 and sum(neg["without_check"]) < len(neg["values"]) - 1
    vw = res["gd"]["vs_width_negative_init"]
    assert vw["with_check"][-1] == 1.0 and vw["with_check"][-1] > vw["with_check"][0]
