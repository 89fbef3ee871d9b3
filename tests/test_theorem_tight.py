"""The tight instance of Theorem 1 (proofs_check.tight): its constants are exact, the pinned case
meets the closed form ``bound - sigma^2/(m N)``, and breaking a constant makes the bound fail."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from proofs_check.tight import (TightQuadratic, bisector_H, bound_value, observed_gradnorm,
                                theorem1_adaptive, theorem1_biased, theorem1_tight, theorem1_unbounded,
                                tight_constants)


def test_constants_are_exact_by_enumeration():
    prob = TightQuadratic(n=8)
    x = {"w": np.random.default_rng(1).standard_normal(prob.shape)}
    full = prob.grad(x)["w"]
    # AS.2 exactly: all m^n ordered batches (with replacement), m = 2
    devs = [np.sum((prob.grad(x, list(b))["w"] - full) ** 2) for b in itertools.product(range(prob.n), repeat=2)]
    assert np.mean(devs) == pytest.approx(prob.sigma2 / 2, rel=1e-12)
    means = np.mean([prob.grad(x, list(b))["w"] for b in itertools.product(range(prob.n), repeat=2)], axis=0)
    np.testing.assert_allclose(means, full, atol=1e-12)
    # grad f is L x, f_low = f(0), D_f = (L/2)||x_1||^2
    np.testing.assert_allclose(full, prob.L * x["w"])
    assert prob.f({"w": np.zeros(prob.shape)}) == pytest.approx(prob.f_low, rel=1e-14)
    assert prob.D_f() == pytest.approx(0.5 * prob.L * np.sum(prob.params0["w"] ** 2), rel=1e-12)
    # AS.3's a priori B: every statistics block has norm <= L a sqrt(D), with equality for m = 1
    rng = np.random.default_rng(0)
    norms = [np.linalg.norm(prob.sampled_grad(x, rng.integers(0, prob.n, m), rng)["w"]) for m in (1, 3) for _ in range(50)]
    assert max(norms) <= prob.B["w"] * (1 + 1e-12)
    assert max(norms) == pytest.approx(prob.B["w"], rel=1e-12)


def test_pinned_preconditioner_meets_the_closed_form():
    """H_k = kappa I exactly (TNT itself with zero statistics: U = 0, so H = eps^-2 I):
    E||grad f(x_R)||^2 = bound - sigma^2 / (m N) (module docstring)."""
    prob = TightQuadratic(zero_statistics=True)
    kappa = 1e-4
    c = {"L": prob.L, "kappa_lo": kappa, "kappa_hi": kappa, "sigma2": prob.sigma2, "D_f": prob.D_f()}
    alpha = kappa / (prob.L * kappa**2)
    N, m, seeds = 10, 4, 400
    obs, se, h = observed_gradnorm(prob, N=N, m=m, alpha=alpha, eps=100.0, seeds=seeds)
    closed = bound_value(c, N, m) - prob.sigma2 / (m * N)
    assert h["h_min"] == pytest.approx(kappa) and h["h_max"] == pytest.approx(kappa)
    assert abs(obs - closed) <= 4 * se, (obs, closed, se)
    assert obs / bound_value(c, N, m) > 0.9
    # the oracle distinguishes: with the off-by-one output x_{R+1} the value is (N-1)/N of the noise term lower
    assert abs((closed - prob.L**2 * np.sum(prob.params0["w"] ** 2) / N + prob.sigma2 / (m * N)) - obs) > 10 * se


def test_tight_check_passes_and_is_nearly_attained():
    ok, res = theorem1_tight("quick")
    assert ok
    assert res["kappa_ratio"] == pytest.approx(1e4 / (103 * 104))
    assert res["H_within_kappa"]
    assert res["min_observed_over_bound"] >= 0.75  # tight everywhere, not only somewhere
    assert all(r["observed"] + 2 * r["se"] <= r["bound"] for r in res["rows"])


def test_too_large_a_step_makes_the_tight_bound_fail():
    """A wrong constant (the step of L/2 instead of L) must show: the check can fail."""
    prob = TightQuadratic()
    c = tight_constants(prob)
    obs, se, _ = observed_gradnorm(prob, N=40, m=16, alpha=2.1 * c["alpha"], eps=c["eps"], seeds=8)
    assert obs - 2 * se > bound_value(c, 40, 16)


@pytest.mark.parametrize("control", [theorem1_biased, theorem1_adaptive, theorem1_unbounded])
def test_each_control_exceeds_the_bound(control):
    ok, res = control("quick")
    assert not ok
    assert any(r["observed"] - 2 * r["se"] > r["bound"] for r in res["rows"])


def test_adaptive_H_stays_within_kappa_and_independent_H_does_not_fail():
    ok, res = theorem1_adaptive("quick")
    assert res["H_within_kappa"]  # only AS.4 is broken
    fixed = res["independent_H_kappa_hi"][0]
    assert fixed["observed"] + 2 * fixed["se"] <= fixed["bound"]


def test_bisector_is_the_worst_case_direction():
    prob = TightQuadratic(shape=(12,), x1_scale=1.0)
    lo, hi = 1.0, 5.0
    g = {"w": np.random.default_rng(3).standard_normal(12)}
    a = prob.grad(prob.params0)["w"]
    H = bisector_H(a, g["w"], lo, hi)
    lam = np.linalg.eigvalsh(H)
    assert lam.min() == pytest.approx(lo) and lam.max() == pytest.approx(hi)
    # no SPD matrix in [lo, hi] gives a smaller a^T H g: compare with random ones
    rng = np.random.default_rng(4)
    for _ in range(200):
        Q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
        Hr = Q @ np.diag(rng.uniform(lo, hi, 12)) @ Q.T
        assert a @ H @ g["w"] <= a @ Hr @ g["w"] + 1e-12


def test_bad_arguments():
    with pytest.raises(ValueError, match="`n` must be an even int"):
        TightQuadratic(n=7)
    with pytest.raises(ValueError, match="`L`, `a` must be positive"):
        TightQuadratic(L=0.0)
