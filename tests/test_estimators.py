"""The Shampoo family's Kronecker estimators against dense oracles (spec section 4).

Oracles: explicit unfoldings with dense ``kron`` of the other modes' matrices, loops over
multi-indices for partial traces, the Van Loan-Pitsianis rearrangement written out entry by entry,
``scipy.linalg.fractional_matrix_power``; and the tensor-normal MLE (:func:`tnt_ref.mle`) as the
fixed point KL-Shampoo must reach.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg

from tnt_ref import frobenius_kron_fit, kron, mle, tnt_factors, tnt_factors_from_moments
from tnt_ref.estimators import (
    kl_shampoo_factors,
    kl_shampoo_init,
    kl_shampoo_update,
    power_step_factors,
    psd_power,
    shampoo_factors,
    shampoo_factors_from_moments,
    shampoo_preconditioner,
    soap_factors,
)

from .conftest import np_, on, spd

SHAPES = [(3, 4), (2, 3, 4), (4, 1, 3)]


def _unfold(X, i):
    return np.moveaxis(X, i, 0).reshape(X.shape[i], -1)


def _samples(rng, shape, n=30):
    """Heavy-tailed, correlated samples (not tensor normal: no estimator is exact on them)."""
    D = math.prod(shape)
    A = rng.standard_normal((D, D)) / math.sqrt(D) + np.eye(D)
    Z = rng.standard_normal((n, D)) ** 3
    return (Z @ A.T).reshape(n, *shape)


def _cov(X):
    n = X.shape[0]
    V = X.reshape(n, -1)
    return V.T @ V / n


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _partial_trace_oracle(F, shape, i, W):
    """``sum_{r, s} F[(a, r), (b, s)] (kron_{l != i} W_l)[r, s]`` by loops over multi-indices."""
    others = [l for l in range(len(shape)) if l != i]
    Wk = kron(*[W[l] for l in others]) if others else np.ones((1, 1))
    rest = list(itertools.product(*[range(shape[l]) for l in others]))
    out = np.zeros((shape[i], shape[i]))
    for a in range(shape[i]):
        for b in range(shape[i]):
            for ri, r in enumerate(rest):
                for si, s in enumerate(rest):
                    ia, ib = list(r), list(s)
                    ia.insert(i, a)
                    ib.insert(i, b)
                    out[a, b] += F[np.ravel_multi_index(ia, shape), np.ravel_multi_index(ib, shape)] * Wk[ri, si]
    return out


def kl_step_oracle(S, X, beta, kappa):
    """One KL-Shampoo step from samples, written out: dense ``kron`` of the other inverses, ``numpy.linalg.inv``."""
    shape = X.shape[1:]
    k, D = len(shape), math.prod(shape)
    inv = [np.linalg.inv(s) for s in S]
    out = []
    for i in range(k):
        others = [j for j in range(k) if j != i]
        Wk = kron(*[inv[j] for j in others]) if others else np.ones((1, 1))
        T = sum(_unfold(x, i) @ Wk @ _unfold(x, i).T for x in X) / X.shape[0] / math.prod(shape[j] for j in others)
        T = T + kappa * math.prod(np.trace(inv[j]) for j in others) / math.prod(shape[j] for j in others) * np.eye(shape[i])
        out.append(beta * S[i] + (1 - beta) * T)
    del D
    return out


def _rearrange_oracle(F, shape):
    """Van Loan-Pitsianis for k = 2, entry by entry: ``R[(a c), (b d)] = F[(a b), (c d)]``."""
    p, q = shape
    R = np.zeros((p * p, q * q))
    for a, b, c, d in itertools.product(range(p), range(q), range(p), range(q)):
        R[a * p + c, b * q + d] = F[a * q + b, c * q + d]
    return R


# ----------------------------------------------------------------------------- KL-Shampoo
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kappa", [0.0, 0.2])
def test_kl_shampoo_step_matches_dense_oracle(rng, shape, kappa):
    X = _samples(rng, shape)
    S = [spd(rng, d) for d in shape]
    for beta in (0.0, 0.9):
        got = kl_shampoo_update(S, X, beta=beta, damping=kappa)
        want = kl_step_oracle(S, X, beta, kappa)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3), (2, 2, 3)])
def test_kl_shampoo_step_from_covariance_matches_partial_trace_loops(rng, shape):
    X = _samples(rng, shape)
    F = _cov(X) + 0.1 * np.eye(math.prod(shape))  # a covariance that is not a sample's
    S = [spd(rng, d) for d in shape]
    inv = [np.linalg.inv(s) for s in S]
    got = kl_shampoo_update(S, covariance=F, shape=shape, beta=0.0)
    D = math.prod(shape)
    for i, d in enumerate(shape):
        np.testing.assert_allclose(got[i], (d / D) * _partial_trace_oracle(F, shape, i, inv), rtol=1e-10)


def test_kl_shampoo_damping_is_the_step_on_the_damped_covariance(rng):
    """The damping term is the undamped step applied to ``F + kappa I`` [derived]."""
    shape, kappa = (3, 2, 4), 0.37
    X = _samples(rng, shape)
    F = _cov(X)
    S = [spd(rng, d) for d in shape]
    a = kl_shampoo_update(S, covariance=F, shape=shape, beta=0.6, damping=kappa)
    b = kl_shampoo_update(S, covariance=F + kappa * np.eye(F.shape[0]), shape=shape, beta=0.6)
    c = kl_shampoo_update(S, X, beta=0.6, damping=kappa)
    for u, v, w in zip(a, b, c):
        np.testing.assert_allclose(u, v, rtol=1e-11)
        np.testing.assert_allclose(w, v, rtol=1e-11)


@pytest.mark.parametrize("shape", SHAPES)
def test_kl_shampoo_fixed_point_is_the_mle(rng, shape):
    """Iterating the public step on fixed samples reaches ``mle(samples)``: the same Kronecker product."""
    X = _samples(rng, shape, n=40)
    m = mle(X, tol=0.0, max_iter=5000)
    S = kl_shampoo_init(X)
    for _ in range(400):
        S = kl_shampoo_update(S, X, beta=0.5)
    K, Km = kron(*S), kron(*m.factors)
    # mle stops when its log-likelihood stops changing in float64, ~1e-8 from the fixed point
    assert _rel(K, Km) < 1e-6
    assert _rel(kron(*tnt_factors(X)), Km) > 1e-2  # not trivially: TNT (the first step) is far from it
    res = kl_shampoo_factors(X)
    assert res.converged and _rel(kron(*res.factors), Km) < 1e-6
    # the fixed point is a fixed point: one more step moves nothing, and mle's answer nearly so
    assert _rel(kron(*kl_shampoo_update(res.factors, X, beta=0.0)), kron(*res.factors)) < 1e-9
    assert _rel(kron(*kl_shampoo_update(m.factors, X, beta=0.0)), Km) < 1e-6


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2)])
def test_kl_shampoo_damped_fixed_point_is_mle_of_damped_covariance(rng, shape):
    X = _samples(rng, shape, n=6)  # too few samples for the undamped MLE of a (3, 4) tensor: damping makes it exist
    F = _cov(X)
    kappa = 0.05 * np.trace(F) / F.shape[0]
    m = mle(covariance=F + kappa * np.eye(F.shape[0]), shape=shape, tol=0.0, max_iter=5000)
    for res in (kl_shampoo_factors(X, damping=kappa), kl_shampoo_factors(covariance=F, shape=shape, damping=kappa)):
        assert res.converged
        assert _rel(kron(*res.factors), kron(*m.factors)) < 1e-6


def test_kl_shampoo_beta_changes_the_path_not_the_fixed_point(rng):
    X = _samples(rng, (3, 4), n=40)
    a = kl_shampoo_factors(X, beta=0.5)
    b = kl_shampoo_factors(X, beta=0.9, max_iter=20000)
    assert a.converged and b.converged and b.n_steps > a.n_steps
    assert _rel(kron(*a.factors), kron(*b.factors)) < 1e-8


def test_kl_shampoo_scale_mode_needs_beta_above_k_minus_2_over_k(rng):
    """Linearized, the product's scale error obeys ``e <- (beta - (k-1)(1-beta)) e`` [derived]:
    ``beta = 0`` oscillates for ``k = 2`` and blows up for ``k = 3``."""
    X2, X3 = _samples(rng, (3, 4), n=40), _samples(rng, (2, 3, 4), n=40)
    assert not kl_shampoo_factors(X2, beta=0.0, max_iter=300).converged
    with pytest.raises(ValueError, match="singular|overflow"):
        with np.errstate(all="ignore"):
            kl_shampoo_factors(X3, beta=0.0, max_iter=3000)
    assert kl_shampoo_factors(X3, beta=0.5).converged  # (k - 2)/k = 1/3 < 0.5


@pytest.mark.parametrize("shape", SHAPES)
def test_kl_shampoo_init_is_tnt_of_damped_moments_and_one_step_from_scaled_identities(rng, shape):
    X = _samples(rng, shape)
    kappa, D, k = 0.3, math.prod(shape), len(shape)
    U0 = kl_shampoo_init(X, damping=kappa)
    S = [sum(_unfold(x, i) @ _unfold(x, i).T for x in X) / X.shape[0] for i in range(k)]
    damped = [s + kappa * (D / d) * np.eye(d) for s, d in zip(S, shape)]
    for u, t in zip(U0, tnt_factors_from_moments(damped)):
        np.testing.assert_allclose(u, t, rtol=1e-11)
    c = ((np.trace(S[0]) + kappa * D) / D) ** (1 / k)  # identities at the statistics' scale
    step = kl_shampoo_update([c * np.eye(d) for d in shape], X, beta=0.0, damping=kappa)
    np.testing.assert_allclose(kron(*step), kron(*U0), rtol=1e-11)
    assert math.isclose(np.trace(kron(*U0)), np.trace(_cov(X)) + kappa * D, rel_tol=1e-11)
    assert math.isclose(np.trace(kron(*kl_shampoo_init(X))), np.trace(_cov(X)), rel_tol=1e-11)


def test_kl_shampoo_update_on_backends(xp, rng):
    shape = (2, 3, 2)
    X = _samples(rng, shape, n=5)
    S = [spd(rng, d) for d in shape]
    want = kl_step_oracle(S, X, 0.7, 0.1)
    got = kl_shampoo_update(on(xp, *S), on(xp, X), beta=0.7, damping=0.1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np_(g), w, rtol=1e-10)


# ----------------------------------------------------------------------------- Shampoo
@pytest.mark.parametrize("shape", SHAPES + [(5,)])
def test_shampoo_factors_against_fractional_powers(rng, shape):
    X = _samples(rng, shape)
    k = len(shape)
    S = [sum(_unfold(x, i) @ _unfold(x, i).T for x in X) / X.shape[0] for i in range(k)]
    R = [np.real(scipy.linalg.fractional_matrix_power(s, 1.0 / k)) for s in S]
    want = kron(*R) * (np.trace(S[0]) / math.prod(np.trace(r) for r in R))
    got = shampoo_factors(X)
    np.testing.assert_allclose(kron(*got), want, rtol=1e-9)
    np.testing.assert_allclose(kron(*shampoo_factors_from_moments(S)), want, rtol=1e-9)
    np.testing.assert_allclose(kron(*shampoo_factors(covariance=_cov(X), shape=shape)), want, rtol=1e-9)
    avg = [np.trace(u) / u.shape[0] for u in got]
    np.testing.assert_allclose(avg, avg[0], rtol=1e-12)
    if k > 1:  # the power matters: kron S_i (TNT's direction) is a different matrix
        assert _rel(kron(*tnt_factors(X)), want) > 1e-2


def test_shampoo_preconditioner_root_is_minus_one_over_2k(rng):
    """Non-identity spectra, so ``-1/4`` cannot pass for ``-1/6`` (GUIDE: identities hide powers)."""
    shape = (2, 3, 4)
    S = [spd(rng, d, cond=50.0) for d in shape]
    eps = 0.01
    got = shampoo_preconditioner(S, eps)
    for r, s in zip(got, S):
        want = np.real(scipy.linalg.fractional_matrix_power(s + eps * np.eye(len(s)), -1.0 / 6))
        np.testing.assert_allclose(r, want, rtol=1e-10)
        assert _rel(r, np.real(scipy.linalg.fractional_matrix_power(s + eps * np.eye(len(s)), -0.25))) > 1e-2


def test_psd_power_floor_and_zero_matrix():
    np.testing.assert_allclose(psd_power(np.diag([4.0, 9.0]), 0.5), np.diag([2.0, 3.0]))
    np.testing.assert_allclose(psd_power(np.diag([4.0, -1e-17]), 0.5), np.diag([2.0, 0.0]))
    np.testing.assert_allclose(psd_power(np.zeros((2, 2)), 0.5), np.zeros((2, 2)))


# ----------------------------------------------------------------------------- Shampoo^2
def test_power_step_matches_rearrangement_oracle_k2(rng):
    shape = (3, 4)
    X = _samples(rng, shape)
    F = _cov(X)
    R = _rearrange_oracle(F, shape)
    u = R @ np.eye(4).reshape(-1)  # one step from identities, both sides at once
    v = R.T @ np.eye(3).reshape(-1)
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    sigma = u @ R @ v
    want = sigma * kron(u.reshape(3, 3), v.reshape(4, 4))
    for got in (power_step_factors(X), power_step_factors(covariance=F, shape=shape)):
        np.testing.assert_allclose(kron(*got), want, rtol=1e-10)
    # the step's direction is Shampoo's statistics L, R: the square of Shampoo's kron L^(1/2) R^(1/2) [MSV+25]
    L, Rt = (sum(x @ x.T for x in X), sum(x.T @ x for x in X))
    Sh = kron(*shampoo_factors(X))
    Sq = Sh @ Sh
    cos = lambda A, B: np.sum(A * B) / np.linalg.norm(A) / np.linalg.norm(B)  # noqa: E731
    assert cos(kron(L, Rt), want) > 1 - 1e-12 and cos(Sq, want) > 1 - 1e-12


@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 2, 2)])
def test_power_step_k3_is_frobenius_projection_of_kron_moments(rng, shape):
    X = _samples(rng, shape)
    F = _cov(X)
    S = [_partial_trace_oracle(F, shape, i, [np.eye(d) for d in shape]) for i in range(len(shape))]
    K = kron(*S)
    want = K * np.sum(F * K) / np.sum(K * K)  # the best multiple of the step's direction
    np.testing.assert_allclose(kron(*power_step_factors(X)), want, rtol=1e-10)
    # the trace rule instead gives TNT's estimator exactly [derived]
    np.testing.assert_allclose(kron(*tnt_factors(X)), K * np.trace(F) / np.trace(K), rtol=1e-10)
    # many steps converge to the Frobenius-optimal fit
    fit = kron(*frobenius_kron_fit(F, shape, tol=1e-15, max_iter=3000))
    assert _rel(kron(*power_step_factors(X, steps=300)), fit) < 1e-6  # the k >= 3 fit's factors are good to ~1e-8
    assert _rel(kron(*power_step_factors(X)), fit) > 1e-4  # one step is not the optimum here
    err = [np.linalg.norm(F - kron(*power_step_factors(X, steps=s))) for s in (1, 3, 300)]
    assert err[0] >= err[1] >= err[2] - 1e-12


# ----------------------------------------------------------------------------- SOAP
@pytest.mark.parametrize("shape", SHAPES)
def test_soap_against_dense_rotation(rng, shape):
    X = _samples(rng, shape)
    F = _cov(X)
    for Q, v in (soap_factors(X), soap_factors(covariance=F, shape=shape)):
        Qk = kron(*Q)
        np.testing.assert_allclose(Qk.T @ Qk, np.eye(F.shape[0]), atol=1e-12)
        np.testing.assert_allclose(v.reshape(-1), np.diag(Qk.T @ F @ Qk), rtol=1e-10, atol=1e-14)
        S = [sum(_unfold(x, i) @ _unfold(x, i).T for x in X) / X.shape[0] for i in range(len(shape))]
        for q, s in zip(Q, S):  # Q_i diagonalizes Shampoo's factor S_i
            R = q.T @ s @ q
            np.testing.assert_allclose(R - np.diag(np.diag(R)), 0.0, atol=1e-10 * np.abs(R).max())
        A = Qk @ np.diag(v.reshape(-1)) @ Qk.T  # Frobenius-closest to F among matrices with eigenvectors Qk
        w = v.reshape(-1) * (1 + 0.01 * rng.standard_normal(v.size))
        assert np.linalg.norm(F - A) < np.linalg.norm(F - Qk @ np.diag(w) @ Qk.T)


def test_soap_exact_on_kronecker_covariance(rng):
    shape = (3, 4)
    U = [spd(rng, d) for d in shape]
    F = kron(*U)
    Q, v = soap_factors(covariance=F, shape=shape)
    Qk = kron(*Q)
    np.testing.assert_allclose(Qk @ np.diag(v.reshape(-1)) @ Qk.T, F, rtol=1e-10, atol=1e-12)
    # not exact on a non-Kronecker F
    G = F + 0.3 * np.outer(rng.standard_normal(12), rng.standard_normal(12))
    G = G @ G.T
    Q, v = soap_factors(covariance=G, shape=shape)
    Qk = kron(*Q)
    assert _rel(Qk @ np.diag(v.reshape(-1)) @ Qk.T, G) > 1e-3


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_name_the_argument(rng):
    X = _samples(rng, (2, 3))
    with pytest.raises(ValueError, match="exactly one of `samples`"):
        shampoo_factors()
    with pytest.raises(ValueError, match="`shape`"):
        power_step_factors(covariance=np.eye(6))
    with pytest.raises(ValueError, match=r"`covariance` must have shape \(6, 6\)"):
        soap_factors(covariance=np.eye(5), shape=(2, 3))
    with pytest.raises(ValueError, match="`beta` must be in"):
        kl_shampoo_update([np.eye(2), np.eye(3)], X, beta=1.0)
    with pytest.raises(ValueError, match=r"factor 1 of `factors` has shape \(2, 2\), expected \(3, 3\)"):
        kl_shampoo_update([np.eye(2), np.eye(2)], X, beta=0.5)
    with pytest.raises(ValueError, match="positive definite"):
        kl_shampoo_update([np.eye(2), np.diag([1.0, 0.0, 1.0])], X, beta=0.5)
    with pytest.raises(ValueError, match="`damping` must be non-negative"):
        kl_shampoo_factors(X, damping=-1.0)
    with pytest.raises(ValueError, match="`steps` must be a positive int"):
        power_step_factors(X, steps=0)
    with pytest.raises(ValueError, match="`damping` must be positive"):
        shampoo_preconditioner([np.eye(2)], 0.0)
