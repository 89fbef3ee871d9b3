"""The block-free exact-Fisher path (issue 15) against the dense block, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from tnt_ref.fisher import gram as fg
from tnt_ref.fisher import BlockTooLargeError, approximation_ladder, compare_to_exact
from tnt_ref.kronecker import frobenius_kron_fit
from tnt_ref.models import cnn, mlp
from tnt_ref.tensor import kron
from tnt_ref.tensor_normal_mle import mle

METRICS = ("rel_error", "kl", "kl_proj", "cosine")
#: The Shampoo family's rows (issue 26): each must agree between the dense and the gram path.
NEW = ("shampoo-exact", "shampoo2", "soap", "kl-shampoo", "kl-shampoo-batch-mean")
#: ||F - K||_F / ||F||_F by ||F||^2 - 2<F,K> + ||K||^2 cancels near an exact fit: absolute floor ~ sqrt(eps).
REL_ERROR_FLOOR = 1e-7


def _outer_block(rng, n=5, C=3, out=4, d_in=3):
    delta, a = rng.standard_normal((n, C, out)), rng.standard_normal((n, d_in))
    blk = fg.LowRankBlock((out, d_in), n, delta=delta, a=a)
    V = np.einsum("icp,iq->icpq", delta, a).reshape(n * C, -1)  # (N, D) explicit columns (oracle)
    return blk, V


def _spd(rng, d):
    A = rng.standard_normal((d, d))
    return A @ A.T / d + 0.1 * np.eye(d)


@pytest.mark.parametrize("gi", [True, False])
def test_lowrank_block_identities_against_dense(rng, gi, monkeypatch):
    if not gi:
        monkeypatch.setattr(fg, "_GI_BYTES", 0)
    blk, V = _outer_block(rng)
    n = blk.n
    F = V.T @ V / n
    np.testing.assert_allclose(blk.gram(), V @ V.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(blk.diag().reshape(-1), np.diag(F), rtol=1e-12)
    U = [_spd(rng, 4), _spd(rng, 3)]
    assert blk.inner_kron(U) == pytest.approx(float(np.sum(F * kron(*U))), rel=1e-12)
    # mode moments with weights: (1/n) sum X (I kron W2) X^T and the partial trace of F (W1 kron I)
    T = F.reshape(4, 3, 4, 3)
    np.testing.assert_allclose(blk.mode_moment(0, [None, U[1]]), np.einsum("ikjl,lk->ij", T, U[1]), rtol=1e-12)
    np.testing.assert_allclose(blk.mode_moment(1, [U[0], None]), np.einsum("kilj,lk->ij", T, U[0]), rtol=1e-12)
    g = rng.standard_normal((4, 3))
    np.testing.assert_allclose(blk.vt(g), V @ g.reshape(-1), rtol=1e-12)
    yv = rng.standard_normal(V.shape[0])
    np.testing.assert_allclose(blk.v(yv).reshape(-1), V.T @ yv, rtol=1e-12)
    Q = [np.linalg.qr(rng.standard_normal((d, d)))[0] for d in (4, 3)]  # SOAP's rotated diagonal
    np.testing.assert_allclose(blk.rotated_diag(Q).reshape(-1), np.diag(kron(*Q).T @ F @ kron(*Q)), rtol=1e-11)


def test_exact_side_sylvester_and_woodbury(rng):
    blk, V = _outer_block(rng)
    lam = 0.05
    F = V.T @ V / blk.n
    A = F + lam * np.eye(F.shape[0])
    g = rng.standard_normal(F.shape[0])
    ex = fg.exact_side(blk, g, lam)
    assert ex.logdet == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-12)
    np.testing.assert_allclose(ex.u.reshape(-1), np.linalg.solve(A, g), rtol=1e-10)
    assert ex.norm2 == pytest.approx(float(np.sum(F * F)), rel=1e-12)
    np.testing.assert_allclose(ex.spectrum[:5], np.sort(np.linalg.eigvalsh(F))[::-1][:5], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("explicit", [False, True])
def test_lowrank_metrics_equal_compare_to_exact(rng, explicit):
    blk, V = _outer_block(rng, n=4, C=2, out=4, d_in=6)
    if explicit:  # the same block as a 3-way explicit tensor (a kernel-like view)
        blk = fg.LowRankBlock((4, 3, 2), blk.n, X=V.reshape(-1, 4, 3, 2))
    F = V.T @ V / blk.n
    g = rng.standard_normal(F.shape[0])
    ex = fg.exact_side(blk, g, 1e-2)
    shapes = [blk.tshape, (4, 6)] if explicit else [blk.tshape]
    for shp in shapes:
        U = [_spd(rng, d) for d in shp]
        got = fg.lowrank_metrics(blk, ex, ("kron", U), g, 1e-2)
        want = compare_to_exact(F, kron(*U), g, 1e-2)
        for m in METRICS:
            assert got[m] == pytest.approx(want[m], rel=1e-9), (shp, m)
    d = np.abs(rng.standard_normal(F.shape[0]))
    got, want = fg.lowrank_metrics(blk, ex, ("diag", d), g, 1e-2), compare_to_exact(F, np.diag(d), g, 1e-2)
    for m in METRICS:
        assert got[m] == pytest.approx(want[m], rel=1e-9), m
    # SOAP's kind: Kronecker eigenvectors, free eigenvalues; also through the explicit path's rotated diagonal
    Q = [np.linalg.qr(rng.standard_normal((dd, dd)))[0] for dd in blk.tshape]
    v = np.abs(rng.standard_normal(blk.tshape)) + 0.1
    Qk = kron(*Q)
    got = fg.lowrank_metrics(blk, ex, ("eigen", (Q, v)), g, 1e-2)
    want = compare_to_exact(F, (Qk * v.reshape(-1)) @ Qk.T, g, 1e-2)
    for m in METRICS:
        assert got[m] == pytest.approx(want[m], rel=1e-9), ("eigen", m)
    np.testing.assert_allclose(blk.rotated_diag(Q).reshape(-1), np.diag(Qk.T @ F @ Qk), rtol=1e-11)
    # an indefinite approximation: no Gaussian to compare with, as the dense path
    bad = fg.lowrank_metrics(blk, ex, ("diag", -d - 1.0), g, 1e-2)
    assert bad["kl"] == np.inf and np.isnan(bad["cosine"])


def test_frobenius_and_mle_block_free(rng):
    blk, V = _outer_block(rng, n=6, C=3, out=4, d_in=3)
    F = V.T @ V / blk.n
    np.testing.assert_allclose(kron(*fg.frobenius_fit_lowrank(blk)), kron(*frobenius_kron_fit(F, (4, 3))),
                               rtol=1e-9, atol=1e-12)
    # k = 3 (power iteration, both paths): the same optimum value to round-off; the factors agree to
    # ~1e-8 only, because the objective is flat (quadratic) around its optimum
    X3 = fg.LowRankBlock((2, 2, 3), blk.n, X=V.reshape(-1, 2, 2, 3))
    Kg, Kd = kron(*fg.frobenius_fit_lowrank(X3)), kron(*frobenius_kron_fit(F, (2, 2, 3), tol=1e-15, max_iter=2000))
    assert np.linalg.norm(F - Kg) == pytest.approx(np.linalg.norm(F - Kd), rel=1e-12)
    np.testing.assert_allclose(Kg, Kd, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(kron(*fg.mle_lowrank(blk, 1e-3)),
                               kron(*mle(covariance=F, shape=(4, 3), tol=1e-10, max_iter=100).factors), rtol=1e-9)


def _assert_same_rows(dense, gram):
    assert [(r["layer"], r["method"]) for r in dense.rows] == [(r["layer"], r["method"]) for r in gram.rows]
    for a, b in zip(dense.rows, gram.rows):
        for m in METRICS:
            if a[m] == b[m] == np.inf:  # kl_proj of a singular estimate (a softmax layer's 1^T G = 0), on both paths
                continue
            atol = REL_ERROR_FLOOR if m == "rel_error" else 1e-12
            # kl_proj of a nearly singular estimate carries round-off of about eps times its condition number
            rtol = 1e-7 if m == "kl_proj" else 1e-9
            assert abs(a[m] - b[m]) <= rtol * abs(a[m]) + atol, (a["layer"], a["method"], m, a[m], b[m])


def _ladders(net, params, X, y, **kw):
    out = {}
    for path in ("dense", "gram"):
        out[path] = approximation_ladder(net, params, X, y, np.random.default_rng(3), batch_size=4, n_mc=2,
                                         exact=path, **kw)
    return out["dense"], out["gram"]


def test_gram_equals_dense_mlp(rng):
    net = mlp([6, 5, 3], "tanh")
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}
    X, y = rng.standard_normal((16, 6)), rng.integers(0, 3, 16)
    d, g = _ladders(net, params, X, y)
    _assert_same_rows(d, g)
    assert {r["exact_path"] for r in g.rows if r["layer"].endswith("weight")} == {"gram"}
    assert set(NEW) <= {r["method"] for r in g.rows if r["layer"].endswith("weight")}


def test_gram_equals_dense_cnn(rng):
    net = cnn((1, 5, 5), (2,), 3, 3, "tanh", padding=1)
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}
    X, y = rng.standard_normal((8, 1, 5, 5)), rng.integers(0, 3, 8)
    d, g = _ladders(net, params, X, y)
    _assert_same_rows(d, g)
    assert set(NEW) <= {r["method"] for r in g.rows if r["layer"] == "conv1.weight"}  # 3-way, explicit V


def test_gram_exactness_cases(rng):
    """Spec section 9 through the gram path: one input, and softmax regression at W = 0: TNT and KFAC
    reproduce the block (KL 0, cosine 1, Frobenius error at the subtraction floor)."""
    net = mlp([5, 4, 3], "tanh")
    params = {k: v + 0.5 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}
    cases = [(net, params, rng.standard_normal((1, 5)), np.array([1]))]
    net0 = mlp([6, 4], "tanh")
    cases.append((net0, {k: np.zeros(v.shape) for k, v in net0.init(rng).items()}, rng.standard_normal((20, 6)),
                  rng.integers(0, 4, 20)))
    for nt, p, X, y in cases:
        d, g = _ladders(nt, p, X, y)
        _assert_same_rows(d, g)
        for r in g.rows:
            if r["layer"].endswith("weight") and r["method"] in ("tnt-exact", "kfac", "frobenius"):  # the MLE of a singular F is ridged
                assert r["rel_error"] < REL_ERROR_FLOOR and abs(r["kl"]) < 1e-8 and r["cosine"] > 1 - 1e-10, r


def test_auto_and_errors(rng):
    net = cnn((1, 5, 5), (2,), 3, 3, "tanh", padding=1)
    params = net.init(rng)
    X, y = rng.standard_normal((4, 1, 5, 5)), rng.integers(0, 3, 4)
    res = approximation_ladder(net, params, X, y, rng, batch_size=2, n_mc=1, exact="auto")
    assert {r["exact_path"] for r in res.rows} == {"dense"}  # every block here fits
    with pytest.raises(ValueError, match="`exact` must be 'dense', 'gram' or 'auto'; got exact='sparse'"):
        approximation_ladder(net, params, X, y, rng, exact="sparse")
    with pytest.raises(BlockTooLargeError, match="explicit Gram factor V of 'conv1.weight'"):
        approximation_ladder(net, params, X, y, rng, exact="gram", max_v_bytes=100)
    with pytest.raises(ValueError, match="unknown `methods`"):
        approximation_ladder(net, params, X, y, rng, methods=["newton"])
