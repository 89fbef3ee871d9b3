"""Kronecker-factored matrix against dense oracles; Frobenius-optimal fit (spec section 4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from tnt_ref import KroneckerMatrix, frobenius_kron_fit, kron
from tnt_ref.kronecker import safe_eigh

from .conftest import np_, on, spd

SHAPES = [(4,), (2, 3), (3, 2, 4), (2, 2, 3, 2)]


def _factors(xp, rng, shape):
    U = [spd(rng, d) for d in shape]
    return U, [on(xp, u) for u in U]


@pytest.mark.parametrize("shape", SHAPES)
def test_products_against_dense(xp, rng, shape):
    U, Ux = _factors(xp, rng, shape)
    K = KroneckerMatrix(Ux)
    dense = kron(*U)
    D = dense.shape[0]
    v = rng.standard_normal(D)
    V = rng.standard_normal((D, 3))
    np.testing.assert_allclose(np_(K.matvec(on(xp, v))), dense @ v, rtol=1e-12)
    np.testing.assert_allclose(np_(K.matvec(on(xp, V))), dense @ V, rtol=1e-12)
    X = rng.standard_normal((5, *shape))
    np.testing.assert_allclose(np_(K.apply(on(xp, X))).reshape(5, -1), X.reshape(5, -1) @ dense.T, rtol=1e-12)
    np.testing.assert_allclose(np_(K.dense()), dense, rtol=1e-14)
    assert K.trace() == pytest.approx(np.trace(dense), rel=1e-12)
    assert K.logdet() == pytest.approx(np.linalg.slogdet(dense)[1], rel=1e-12)
    np.testing.assert_allclose(np_(K.eigvalsh()), np.linalg.eigvalsh(dense), rtol=1e-10)


@pytest.mark.parametrize("shape", SHAPES)
def test_damped_inverses_against_numpy_inv(xp, rng, shape):
    U, Ux = _factors(xp, rng, shape)
    K = KroneckerMatrix(Ux)
    eps = 0.3
    # per-factor damping, TNT's: kron (U_i + eps I)^{-1}
    ref = np.linalg.inv(kron(*[u + eps * np.eye(u.shape[0]) for u in U]))
    np.testing.assert_allclose(np_(K.damped_inverse(eps).dense()), ref, rtol=1e-10, atol=1e-14)
    # exact damping: (kron U_i + lam I)^{-1}
    X = rng.standard_normal(shape)
    D = X.size
    ref_exact = np.linalg.solve(kron(*U) + eps * np.eye(D), X.reshape(-1))
    np.testing.assert_allclose(np_(K.solve_damped(on(xp, X), eps)).reshape(-1), ref_exact, rtol=1e-10)
    # pi-adjusted: eps_i = pi_i eps^(1/k), pi_i from average eigenvalues
    k = len(shape)
    a = np.array([np.trace(u) / u.shape[0] for u in U])
    pi = a / np.prod(a) ** (1 / k)
    ref_pi = np.linalg.inv(kron(*[u + p * eps ** (1 / k) * np.eye(u.shape[0]) for u, p in zip(U, pi)]))
    np.testing.assert_allclose(np_(K.damped_inverse(eps, scheme="pi").dense()), ref_pi, rtol=1e-10, atol=1e-14)


def test_damping_forms_differ(rng):
    """Per-factor, pi-adjusted and exact damping are three different matrices for k >= 2."""
    U = [spd(rng, d) for d in (3, 4)]
    K = KroneckerMatrix(U)
    per = K.damped_inverse(0.1).dense()
    exact = np.linalg.inv(kron(*U) + 0.1 * np.eye(12))
    pi = K.damped_inverse(0.1, scheme="pi").dense()
    assert np.linalg.norm(per - exact) > 1e-3 * np.linalg.norm(exact)
    assert np.linalg.norm(pi - exact) > 1e-3 * np.linalg.norm(exact)


def test_linear_operator(xp, rng):
    U, Ux = _factors(xp, rng, (2, 3))
    op = KroneckerMatrix(Ux).as_linear_operator()
    v = rng.standard_normal(6)
    if "cupy" in getattr(xp, "__name__", ""):
        pytest.skip("cupyx LinearOperator is exercised in the CuPy suite")
    assert isinstance(op, LinearOperator)
    np.testing.assert_allclose(np_(op @ (v if "strict" in xp.__name__ else on(xp, v))), kron(*U) @ v, rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 2), (2, 2, 2, 2)])
def test_frobenius_fit_exact_on_kronecker(xp, rng, shape):
    U = [spd(rng, d) for d in shape]
    fit = [np_(u) for u in frobenius_kron_fit(on(xp, kron(*U)), shape)]
    np.testing.assert_allclose(kron(*fit), kron(*U), rtol=1e-9, atol=1e-12)
    avg = [np.trace(u) / u.shape[0] for u in fit]
    np.testing.assert_allclose(avg, avg[0], rtol=1e-10)


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 2)])
def test_frobenius_fit_beats_perturbations(rng, shape):
    D = int(np.prod(shape))
    A = rng.standard_normal((D, D))
    F = kron(*[spd(rng, d) for d in shape]) + 0.3 * A @ A.T / D
    fit = frobenius_kron_fit(F, shape)
    best = np.linalg.norm(F - kron(*fit))
    assert best > 1e-3  # F is not a Kronecker product: the fit cannot be exact
    for _ in range(30):
        P = [u + 1e-3 * rng.standard_normal(u.shape) for u in fit]
        assert np.linalg.norm(F - kron(*P)) >= best - 1e-12


def test_frobenius_fit_k2_is_global_optimum_by_svd_value(rng):
    """For k = 2 the residual equals sqrt(||F||^2 - sigma_1^2) of the rearranged matrix."""
    F = rng.standard_normal((6, 6))
    F = F @ F.T
    fit = frobenius_kron_fit(F, (2, 3))
    R = F.reshape(2, 3, 2, 3).transpose(0, 2, 1, 3).reshape(4, 9)
    s = np.linalg.svd(R, compute_uv=False)
    assert np.linalg.norm(F - kron(*fit)) == pytest.approx(np.sqrt(np.sum(s[1:] ** 2)), rel=1e-10)


def test_safe_eigh_zero_and_indefinite_roundoff(xp):
    lam, Q = safe_eigh(on(xp, np.zeros((3, 3))))
    assert np.all(np.isfinite(np_(lam))) and np.all(np_(lam) == 0)
    lam, _ = safe_eigh(on(xp, np.array([[1.0, 1.0], [1.0, 1.0 - 1e-17]])), floor=0.0)
    assert float(np.min(np_(lam))) >= 0.0
    with pytest.raises(ValueError, match="NaN or Inf"):
        safe_eigh(on(xp, np.array([[np.nan, 0.0], [0.0, 1.0]])))


def test_bad_input_messages():
    K = KroneckerMatrix([np.eye(2), np.eye(3)])
    with pytest.raises(ValueError, match=r"`eps` must be positive and finite; got eps=-0.001"):
        K.damped_inverse(-0.001)
    with pytest.raises(ValueError, match=r"`lam` must be positive"):
        K.solve_damped(np.zeros((2, 3)), 0.0)
    with pytest.raises(ValueError, match=r"`v` must have shape \(6,\)"):
        K.matvec(np.zeros(5))
    with pytest.raises(ValueError, match=r"`X` must have shape \(2, 3\)"):
        K.apply(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"`F` must have shape \(6, 6\)"):
        frobenius_kron_fit(np.eye(5), (2, 3))
    with pytest.raises(ValueError, match="must be square"):
        KroneckerMatrix([np.ones((2, 3))])
    with pytest.raises(ValueError, match="scheme"):
        K.damped_inverse(0.1, scheme="exact")


def test_safe_eigh_retries_in_float64(monkeypatch):
    """If the backend's eigh fails (or returns NaN) in float32, safe_eigh retries in float64."""
    from tnt_ref.backend import namespace_for

    xp = namespace_for("numpy")
    real = xp.linalg.eigh
    calls = []

    def flaky(a):
        calls.append(a.dtype)
        if a.dtype == np.float32:
            raise np.linalg.LinAlgError("simulated failure")
        return real(a)

    monkeypatch.setattr(xp.linalg, "eigh", flaky)
    u = np.array([[2.0, 1.0], [1.0, 2.0]], dtype=np.float32)
    lam, Q = safe_eigh(u)
    assert calls == [np.float32, np.float64]
    assert lam.dtype == np.float32 and Q.dtype == np.float32
    np.testing.assert_allclose(lam, [1.0, 3.0], rtol=1e-6)


def test_shampoo_keeps_previous_root_when_a_root_fails():
    """Distributed Shampoo's failure tolerance: a failed inverse root keeps the previous one, with a warning."""
    from tnt_ref import TNTRefWarning
    from tnt_ref.optim import shampoo

    opt = shampoo(0.1, T1=1, T2=1, momentum=0.0)
    params = {"w": np.ones((2, 3))}
    state = opt.init(params)
    _, state = opt.update({"w": np.arange(6.0).reshape(2, 3)}, state, params)
    before = state.roots["w"]
    with np.errstate(all="ignore"), pytest.warns(TNTRefWarning, match="inverse root failed .* keeping the previous preconditioner"):
        _, after = opt.update({"w": np.full((2, 3), np.inf)}, state, params)
    for a, b in zip(after.roots["w"], before):
        np.testing.assert_array_equal(a, b)
