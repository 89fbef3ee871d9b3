"""Tensor normal distribution, TNT's estimator and the flip-flop MLE (spec sections 2-4, 9)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import multivariate_normal

from tnt_ref import TensorNormal, kron, mle, mode_moments, normalize, tnt_factors, tnt_factors_from_moments
from tnt_ref.tensor_normal_mle import mle_min_samples

from .conftest import RTOL64, np_, on, spd


def exact_mode_moments(cov: np.ndarray, shape) -> list[np.ndarray]:
    """Oracle: E[X_(i) X_(i)^T] from a dense covariance by explicit loops over multi-indices."""
    k = len(shape)
    out = []
    for i in range(k):
        S = np.zeros((shape[i], shape[i]))
        others = [range(d) for j, d in enumerate(shape) if j != i]
        for rest in itertools.product(*others):
            for a in range(shape[i]):
                for b in range(shape[i]):
                    ia = list(rest[:i]) + [a] + list(rest[i:])
                    ib = list(rest[:i]) + [b] + list(rest[i:])
                    S[a, b] += cov[np.ravel_multi_index(ia, shape), np.ravel_multi_index(ib, shape)]
        out.append(S)
    return out


def gaussian_kl(S, K):
    """KL(N(0, S) || N(0, K)) for dense matrices."""
    D = S.shape[0]
    return 0.5 * (np.trace(np.linalg.solve(K, S)) - D + np.linalg.slogdet(K)[1] - np.linalg.slogdet(S)[1])


SHAPES = [(3,), (2, 3), (3, 2, 4), (2, 2, 2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_moment_identity_exact(rng, shape):
    """E[X_(i) X_(i)^T] = U_i prod_{j != i} tr(U_j) [paper; derived], against a loop oracle."""
    U = [spd(rng, d) for d in shape]
    S = exact_mode_moments(kron(*U), shape)
    for i in range(len(shape)):
        scale = math.prod(np.trace(U[j]) for j in range(len(shape)) if j != i)
        np.testing.assert_allclose(S[i], U[i] * scale, rtol=RTOL64)
    traces = [np.trace(s) for s in S]
    np.testing.assert_allclose(traces, math.prod(np.trace(u) for u in U), rtol=RTOL64)


def test_mode_moments_monte_carlo(xp, rng):
    """Sample mode moments converge to the exact ones within 5 standard errors."""
    shape, n = (2, 3, 2), 20000
    U = [spd(rng, d, cond=3) for d in shape]
    X = TensorNormal(on(xp, *U)).sample(n, rng)
    S_hat = [np_(s) for s in mode_moments(X)]
    S = exact_mode_moments(kron(*U), shape)
    Xn = np_(X)
    for i, (s_hat, s) in enumerate(zip(S_hat, S)):
        M = np.moveaxis(Xn, i + 1, 1).reshape(n, shape[i], -1)
        per = np.einsum("nar,nbr->nab", M, M)  # per-sample unfolding Gram matrices
        se = per.std(axis=0) / math.sqrt(n)
        assert np.all(np.abs(s_hat - s) <= 5 * se + 1e-12), (i, np.max(np.abs(s_hat - s) / (se + 1e-300)))


def test_mode_moments_literal():
    G = np.arange(24.0).reshape(1, 2, 3, 4)
    S = mode_moments(G)
    X = G[0]
    np.testing.assert_array_equal(S[0], X.reshape(2, 12) @ X.reshape(2, 12).T)
    np.testing.assert_array_equal(S[2], X.reshape(6, 4).T @ X.reshape(6, 4))


@pytest.mark.parametrize("shape", SHAPES)
def test_tnt_scale_rule_invariants(xp, rng, shape):
    """tr(U_i)/d_i = c; kron U_i = kron S_i / tau^(k-1); trace tau (spec section 3, [derived])."""
    G = rng.standard_normal((7, *shape)) @ np.diag(np.arange(1.0, shape[-1] + 1))
    S = [np_(s) for s in mode_moments(on(xp, G))]
    U = [np_(u) for u in tnt_factors(on(xp, G))]
    k, D = len(shape), math.prod(shape)
    tau = np.trace(S[0])
    c = (tau / D) ** (1 / k)
    for u, d in zip(U, shape):
        np.testing.assert_allclose(np.trace(u) / d, c, rtol=RTOL64)
    np.testing.assert_allclose(kron(*U), kron(*S) / tau ** (k - 1), rtol=RTOL64, atol=1e-14)
    np.testing.assert_allclose(np.trace(kron(*U)), tau, rtol=RTOL64)
    if k == 1:
        np.testing.assert_allclose(U[0], S[0], rtol=RTOL64)


@pytest.mark.parametrize("shape", SHAPES)
def test_tnt_exact_on_exact_tensor_normal_moments(xp, rng, shape):
    """Exactness case (spec section 9): exact moments of TN(0; U) give back kron U exactly."""
    U = [spd(rng, d) for d in shape]
    S = exact_mode_moments(kron(*U), shape)
    U_hat = [np_(u) for u in tnt_factors_from_moments(on(xp, *S) if len(S) > 1 else [on(xp, S[0])])]
    np.testing.assert_allclose(kron(*U_hat), kron(*U), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(kron(*U_hat), kron(*[np_(u) for u in normalize(on(xp, *U) if len(U) > 1 else [on(xp, U[0])])]), rtol=1e-10)


def test_tnt_consistent_error_shrinks_like_inverse_sqrt_n(rng):
    """Relative error of kron U_hat ~ C / sqrt(n): the fitted log-log slope is -0.5 +- 0.15."""
    shape = (3, 4, 2)
    U = [spd(rng, d, cond=5) for d in shape]
    K = kron(*U)
    ns = [100, 400, 1600, 6400]
    errs = []
    tn = TensorNormal(U)
    for n in ns:
        e = [np.linalg.norm(kron(*tnt_factors(tn.sample(n, rng))) - K) / np.linalg.norm(K) for _ in range(12)]
        errs.append(np.mean(e))
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    SLOPE_TOL = 0.15  # 12 repetitions per n: the slope's spread is ~0.05 over seeds
    assert abs(slope + 0.5) < SLOPE_TOL, (slope, errs)


def test_mle_beats_truth_and_tnt_on_same_samples(rng):
    shape, n = (3, 4, 2), 200
    U = [spd(rng, d, cond=20) for d in shape]
    tn = TensorNormal(U)
    X = tn.sample(n, rng)
    res = mle(X, tol=1e-12)
    assert res.converged and res.n_sweeps >= 2
    ll_mle = float(np.mean(TensorNormal(res.factors).logpdf(X)))
    ll_true = float(np.mean(tn.logpdf(X)))
    ll_tnt = float(np.mean(TensorNormal(tnt_factors(X)).logpdf(X)))
    assert ll_mle >= ll_true and ll_mle >= ll_tnt
    assert ll_mle == pytest.approx(res.loglik[-1], rel=1e-9)
    assert np.all(np.diff(res.loglik) >= -1e-9 * abs(res.loglik[-1]))  # flip-flop is monotone
    # KL from the sample covariance: the MLE is its KL projection on Kronecker matrices
    flat = X.reshape(n, -1)
    S = flat.T @ flat / n
    kl_mle = gaussian_kl(S, kron(*res.factors))
    kl_tnt = gaussian_kl(S, kron(*tnt_factors(X)))
    assert kl_mle <= kl_tnt


def test_mle_from_covariance_is_kl_projection(xp, rng):
    """For a non-Kronecker F, the MLE's KL is <= TNT's and <= random perturbations of itself."""
    shape = (2, 3)
    A = rng.standard_normal((6, 6))
    F = kron(spd(rng, 2), spd(rng, 3)) + 0.5 * A @ A.T
    res = mle(covariance=on(xp, F), shape=shape, tol=1e-13)
    assert res.converged
    Uh = [np_(u) for u in res.factors]
    kl = gaussian_kl(F, kron(*Uh))
    kl_tnt = gaussian_kl(F, kron(*tnt_factors_from_moments(exact_mode_moments(F, shape))))
    assert kl < kl_tnt
    for _ in range(10):
        P = [u + 1e-3 * (lambda B: B + B.T)(rng.standard_normal(u.shape)) for u in Uh]
        assert gaussian_kl(F, kron(*P)) >= kl - 1e-12
    # KL projection formula: - expected loglik = KL + const
    assert -res.loglik[-1] - 0.5 * (6 * math.log(2 * math.pi) + np.linalg.slogdet(F)[1] + 6) == pytest.approx(kl, rel=1e-8)


def test_mle_exact_on_kronecker_covariance(rng):
    shape = (2, 3, 2)
    U = [spd(rng, d) for d in shape]
    res = mle(covariance=kron(*U), shape=shape)
    np.testing.assert_allclose(kron(*res.factors), kron(*U), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 4)])
def test_tnt_is_one_jacobi_flip_flop_sweep_from_identity(xp, rng, shape):
    """[derived: check it] One Jacobi flip-flop sweep from identity gives U_i = (d_i/D) S_i: TNT's
    factors up to the overall scale, which TNT's rule sets to tr = tau (ratio (tau/D)^(k-1)).
    A Gauss-Seidel sweep is not proportional to TNT's estimate."""
    G = on(xp, rng.standard_normal((30, *shape)) * np.linspace(1, 3, shape[-1]))
    k, D = len(shape), math.prod(shape)
    tnt = kron(*[np_(u) for u in tnt_factors(G)])
    tau = np.trace(tnt)
    jac = kron(*[np_(u) for u in mle(G, max_iter=1, scheme="jacobi").factors])
    np.testing.assert_allclose(jac, tnt * (tau / D) ** (k - 1), rtol=1e-10, atol=1e-13)
    gs = kron(*[np_(u) for u in mle(G, max_iter=1, scheme="gauss-seidel").factors])
    assert np.linalg.norm(gs / np.trace(gs) - tnt / tau) > 1e-6 * np.linalg.norm(tnt / tau)


def test_logpdf_against_scipy(xp, rng):
    shape = (2, 3, 2)
    U = [spd(rng, d) for d in shape]
    M = rng.standard_normal(shape)
    tn = TensorNormal(on(xp, *U), mean=on(xp, M))
    X = rng.standard_normal((5, *shape))
    ref = multivariate_normal(M.reshape(-1), kron(*U)).logpdf(X.reshape(5, -1))
    np.testing.assert_allclose(np_(tn.logpdf(on(xp, X))), ref, rtol=1e-12)
    np.testing.assert_allclose(float(np_(tn.logpdf(on(xp, X[0])))), ref[0], rtol=1e-12)


def test_kl_closed_form(xp, rng):
    shape = (2, 3)
    U, V = [spd(rng, d) for d in shape], [spd(rng, d) for d in shape]
    M = rng.standard_normal(shape)
    p, q = TensorNormal(on(xp, *U), mean=on(xp, M)), TensorNormal(on(xp, *V))
    S, K = kron(*U), kron(*V)
    dm = M.reshape(-1)
    ref = gaussian_kl(S, K) + 0.5 * dm @ np.linalg.solve(K, dm)
    assert p.kl(q) == pytest.approx(ref, rel=1e-12)
    assert p.kl(p) == pytest.approx(0.0, abs=1e-12)


def test_sample_covariance_matches(rng):
    shape = (2, 3)
    U = [spd(rng, d, cond=4) for d in shape]
    n = 40000
    X = TensorNormal(U).sample(n, rng).reshape(n, -1)
    C = X.T @ X / n
    K = kron(*U)
    se = np.sqrt((K**2 + np.outer(np.diag(K), np.diag(K))) / n)  # Wishart entry standard errors
    assert np.all(np.abs(C - K) <= 5 * se)


def test_zero_trace_guard(xp):
    G = on(xp, np.zeros((4, 2, 3)))
    U = [np_(u) for u in tnt_factors(G)]
    assert all(np.array_equal(u, np.zeros_like(u)) for u in U)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_normalize_keeps_product_and_equalizes(shape, seed):
    rng = np.random.default_rng(seed)
    U = [spd(rng, d) * s for d, s in zip(shape, rng.uniform(0.1, 10, len(shape)))]
    N = normalize(U)
    np.testing.assert_allclose(kron(*N), kron(*U), rtol=1e-10)
    avg = [np.trace(u) / u.shape[0] for u in N]
    np.testing.assert_allclose(avg, avg[0], rtol=1e-10)


@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_tnt_exact_property(shape, seed):
    rng = np.random.default_rng(seed)
    U = [spd(rng, d, cond=50) for d in shape]
    S = exact_mode_moments(kron(*U), shape)
    np.testing.assert_allclose(kron(*tnt_factors_from_moments(S)), kron(*U), rtol=1e-9, atol=1e-12)


def test_mle_min_samples_values():
    assert mle_min_samples((4, 20)) == 6  # n > 20/4 (matrix normal, Drton-Kuriki-Hoff)
    assert mle_min_samples((3, 3)) == 2
    assert mle_min_samples((10,)) == 11  # a plain Gaussian needs n > d


def test_bad_input_messages(rng):
    with pytest.raises(ValueError, match=r"needs at least 6 samples for shape \(4, 20\); got n=5"):
        mle(rng.standard_normal((5, 4, 20)))
    with pytest.raises(ValueError, match="symmetric"):
        TensorNormal([np.array([[1.0, 2.0], [0.0, 1.0]])])
    with pytest.raises(ValueError, match="positive definite.*smallest eigenvalue -1"):
        TensorNormal([np.eye(2), -np.eye(3)])
    with pytest.raises(ValueError, match="square"):
        TensorNormal([np.ones((2, 3))])
    with pytest.raises(ValueError, match="NaN or Inf"):
        tnt_factors(np.array([[[np.nan, 1.0]]]))
    with pytest.raises(ValueError, match=r"`mean` must have shape \(2, 3\)"):
        TensorNormal([np.eye(2), np.eye(3)], mean=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"`X` must have shape \(2, 3\)"):
        TensorNormal([np.eye(2), np.eye(3)]).logpdf(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="traces must agree"):
        tnt_factors_from_moments([np.eye(2), 5 * np.eye(3)])
    with pytest.raises(ValueError, match="at least 2 axes"):
        mode_moments(np.zeros(3))
    with pytest.raises(ValueError, match="exactly one of"):
        mle()
    with pytest.raises(ValueError, match=r"`covariance` must have shape \(6, 6\)"):
        mle(covariance=np.eye(5), shape=(2, 3))
    with pytest.raises(ValueError, match="`n` must be a positive int"):
        TensorNormal([np.eye(2)]).sample(0, rng)


def test_synthetic_tensor_normal_gradients(rng):
    """The synthetic data of issue 3: samples of TN(0; U) whose TNT estimate approaches kron U."""
    from tnt_ref.data import synthetic_tensor_normal_gradients

    G, U = synthetic_tensor_normal_gradients((3, 2, 4), 20000, rng, cond=5.0)
    assert G.shape == (20000, 3, 2, 4) and [u.shape for u in U] == [(3, 3), (2, 2), (4, 4)]
    for u in U:
        lam = np.linalg.eigvalsh(u)
        np.testing.assert_allclose([lam[0], lam[-1]], [1.0, 5.0], rtol=1e-10)
    err = np.linalg.norm(kron(*tnt_factors(G)) - kron(*U)) / np.linalg.norm(kron(*U))
    assert err < 0.05  # ~sqrt(D/n) = 0.035 for D = 24, n = 20000
