"""Checks of the checker: proofs_check fed deliberately broken variants and bounds. Each break must
make the right check fail, for the right (reported) reason; the unbroken runs pass in
tests/test_proofs_check.py."""

from __future__ import annotations

import numpy as np
import pytest

from proofs_check import assumptions, variant
from proofs_check import run_checks


def _one(name):
    (r,) = run_checks([name], profile="quick")
    return r


def test_ascending_variant_fails_the_step_oracle(monkeypatch):
    monkeypatch.setattr(variant, "_update", lambda params, step, alpha: {p: params[p] + alpha * step[p] for p in params})
    r = _one("AS.3.step_oracle")
    assert r.status == "fail"
    assert r.measured["softmax-regression"]["max_relative_step_error"] > 1.0  # the step has the wrong sign


def test_variant_without_inverse_fails_the_step_oracle(monkeypatch):
    """Applying ``U + eps I`` instead of its inverse."""
    monkeypatch.setattr(variant, "_damped_inverses", lambda us, eps: [u + eps * np.eye(u.shape[0]) for u in us])
    r = _one("AS.3.step_oracle")
    assert r.status == "fail"
    assert r.measured["tanh-mlp"]["max_relative_step_error"] > 1e-2


def _indefinite(shift):
    real = variant.tnt_factors_from_moments

    def broken(S):
        U = real(S)
        U[0] = U[0] - (np.linalg.eigvalsh(U[0])[0] + shift) * np.eye(U[0].shape[0])  # lambda_min(U_0) = -shift
        return U

    return broken


@pytest.mark.parametrize("shift,reason", [(0.1 - 1e-4, "eigenvalue above kappa_hi"),
                                          (0.2, "eigenvalue <= 0 (H_k not positive definite)")])
def test_indefinite_factor_fails_as3_with_its_reason(monkeypatch, shift, reason):
    """An indefinite ``U`` (AS.3 at eps = 0.1): the applied H is huge or indefinite; no clipping hides it."""
    monkeypatch.setattr(variant, "tnt_factors_from_moments", _indefinite(shift))
    r = _one("AS.3.mlp")
    assert r.status == "fail"
    assert reason in r.measured["failures"], r.measured["failures"]


def test_no_damping_with_identity_factors_passes(monkeypatch):
    """eps = 0 with U = I: H = I is bounded, so AS.3's no-damping check must pass (it does not fail by construction)."""
    monkeypatch.setattr(variant, "tnt_factors_from_moments", lambda S: [np.eye(s.shape[0]) for s in S])
    ok, meas = assumptions._as3(variant.tanh_mlp(60), "quick", eps=0.0, m=1, use_apriori=False)
    assert ok, meas
    assert meas["spectrum_min"] == meas["spectrum_max"] == 1.0


def test_no_damping_control_fails_for_the_observed_reason():
    r = _one("AS.3.no_damping")
    assert r.status == "fail"
    singular = {"H_k not finite (does not exist)",
                "H_k numerically singular (lambda_max/lambda_min > 1/(D eps_machine)): unbounded"}
    # the inverse of a factor singular to working precision: which further symptoms the BLAS shows varies by machine
    symptoms = {"H_k not symmetric", "eigenvalue <= 0 (H_k not positive definite)", "eigenvalue below kappa_lo"}
    assert set(r.measured["failures"]) & singular, r.measured["failures"]
    assert set(r.measured["failures"]) <= singular | symptoms, r.measured["failures"]  # never "above kappa_hi" (no bound)


@pytest.mark.parametrize("wrong", ["kappa_hi=1/eps", "kappa_lo*10"])
def test_wrong_kappa_bound_fails_as3(monkeypatch, wrong):
    real = assumptions.kappa_bounds

    def broken(shapes, B, eps):
        lo, hi = real(shapes, B, eps)
        return (lo, 1.0 / eps) if wrong == "kappa_hi=1/eps" else (10 * lo, hi)

    monkeypatch.setattr(assumptions, "kappa_bounds", broken)
    r = _one("AS.3.softmax")
    assert r.status == "fail"
    want = "eigenvalue above kappa_hi" if wrong == "kappa_hi=1/eps" else "eigenvalue below kappa_lo"
    assert want in r.measured["a_priori_B"]["failures"] or want in r.measured["measured_B"]["failures"]


def test_statistics_before_the_step_fail_as4(monkeypatch):
    real = variant.run_variant
    monkeypatch.setattr(assumptions, "run_variant", lambda *a, **k: real(*a, **{**k, "stats": "before"}))
    r = _one("AS.4.variant")
    assert r.status == "fail"
    assert r.measured["softmax"]["H_k_bit_identical"] is False


def test_biased_gradient_oracle_fails_as2(monkeypatch):
    """A variant whose mini-batch gradient is the batch *sum* (not the mean): AS.2's enumeration fails."""
    real = variant.SmallProblem.grad

    def summed(self, params, idx=None):
        g = real(self, params, idx)
        return g if idx is None else {k: len(idx) * v for k, v in g.items()}

    monkeypatch.setattr(variant.SmallProblem, "grad", summed)
    r = _one("AS.2.exact")
    assert r.status == "fail"
    assert r.measured["m=2"]["max_relative_bias"] > 0.5


def test_gradient_with_a_constant_bias_fails_as2_sampled(monkeypatch):
    real = variant.SmallProblem.grad

    def biased(self, params, idx=None):
        g = real(self, params, idx)
        return g if idx is None else {k: v + 0.05 for k, v in g.items()}

    monkeypatch.setattr(variant.SmallProblem, "grad", biased)
    r = _one("AS.2.sampled")
    assert r.status == "fail"
    assert r.measured["bias_statistic_T (E = 1)"] > 9


def test_lipschitz_check_fails_below_the_true_constant():
    """A quadratic with Hessian 2 I: L = 1.9 must fail, L = 2.1 pass."""
    rng = np.random.default_rng(0)
    pts = [rng.standard_normal(4) for _ in range(3)]
    f, g = (lambda w: float(w @ w)), (lambda w: 2 * w)
    assert assumptions.lipschitz_check(f, g, pts, f_low=0.0, L=2.1, rng=rng)[0]
    assert not assumptions.lipschitz_check(f, g, pts, f_low=0.0, L=1.9, rng=rng)[0]


def test_kappa_bounds_literal():
    """Spec section 7 by hand: shapes (2, 3) and (4,), B = (6, 2), eps = 0.5.
    Block 1: c = (36/6)^(1/2) = sqrt(6): kappa = 1/((2 sqrt6 + .5)(3 sqrt6 + .5)); block 2: c = 4/4 = 1:
    kappa = 1/(4 + .5). kappa_lo is the smaller; kappa_hi = max(0.5^-2, 0.5^-1) = 4."""
    lo, hi = assumptions.kappa_bounds({"w": (2, 3), "b": (4,)}, {"w": 6.0, "b": 2.0}, 0.5)
    r6 = 6 ** 0.5
    assert hi == 4.0
    assert lo == pytest.approx(min(1 / ((2 * r6 + 0.5) * (3 * r6 + 0.5)), 1 / 4.5), rel=1e-14)


def test_theorem_bound_is_the_stated_formula():
    """Each row's bound is ``2 L kappa_hi^2 D_f / (N kappa_lo^2) + sigma^2 / m`` from the reported
    constants, and the step is ``kappa_lo / (L kappa_hi^2)`` (a dropped term, an unsquared kappa_lo
    or a wrong step would break this)."""
    from proofs_check.theorem import theorem_study

    res = theorem_study("quick")
    L, lo, hi, D_f, s2 = res["L"], res["kappa_lo"], res["kappa_hi"], res["D_f"], res["sigma2_bound"]
    assert res["alpha"] == pytest.approx(lo / (L * hi**2), rel=1e-14)
    for r in res["rows"]:
        assert r["bound"] == pytest.approx(2 * L * hi**2 * D_f / (r["N"] * lo**2) + s2 / r["m"], rel=1e-14)


def test_a_crashing_negative_control_is_never_as_expected():
    from proofs_check import registry

    name = "test.crashing_control"

    @registry.register(name, "a control whose code raises (must fail)", "derived", "negative-control", expected="fail")
    def _crash(profile):
        raise ZeroDivisionError("bug in control")

    try:
        (res,) = registry.run_checks([name], profile="quick")
    finally:
        del registry.CHECKS[name]
    assert res.status == "error" and not res.ok
    assert res.measured == {"error": "ZeroDivisionError: bug in control"}
