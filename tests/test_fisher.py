"""Exact block Fisher against brute force; exactness cases and the negative case (spec section 9)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tnt_ref import kron, tnt_factors_from_moments
from tnt_ref.fisher import (
    METHODS,
    BlockTooLargeError,
    approximation_ladder,
    empirical_fisher_blocks,
    exact_fisher_blocks,
    exact_mode_moments,
    kfac_factors,
    monte_carlo_fisher_blocks,
)
from tnt_ref.kronecker import frobenius_kron_fit
from tnt_ref.models import cnn, mlp
from tnt_ref.tensor import tensor_shape
from tnt_ref.tensor_normal_mle import mle

from .conftest import np_, on


def _perturbed(net, rng, scale=0.5):
    return {k: v + scale * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}


def brute_force_fisher(net, params, X):
    """(1/n) sum_x sum_y p(y|x) vec g vec g^T by enumerating every label (softmax, Bernoulli)."""
    z = net.predict(params, X)
    L = net.loss_fn
    n, C = z.shape
    F = {k: 0.0 for k in params}
    for i in range(n):
        xi = X[i : i + 1]
        if L.name == "softmax_cross_entropy":
            p = L.probs(z[i : i + 1])[0]
            labels = [(p[c], np.array([c])) for c in range(C)]
        else:
            p = L.probs(z[i : i + 1])[0]
            labels = [
                (np.prod(np.where(np.array(b) == 1, p, 1 - p)), np.array([b], dtype=float))
                for b in itertools.product([0, 1], repeat=C)
            ]
        for w, yl in labels:
            _, g = net.loss_and_grad(params, xi, yl)
            for k in params:
                v = g[k].reshape(-1)
                F[k] = F[k] + w * np.outer(v, v) / n
    return F


def jacobian_fisher(net, params, X):
    """Gaussian output: F = (1/n) sum_x J^T J with J by central differences (independent oracle)."""
    n = X.shape[0]
    F = {}
    for k, p in params.items():
        J = np.zeros((n, net.n_outputs, p.size))
        for j in range(p.size):
            e = np.zeros(p.size)
            e[j] = 1e-6
            zp = net.predict({**params, k: p + e.reshape(p.shape)}, X)
            zm = net.predict({**params, k: p - e.reshape(p.shape)}, X)
            J[:, :, j] = (zp - zm) / 2e-6
        F[k] = np.einsum("nci,ncj->ij", J, J) / n
    return F


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "sigmoid_cross_entropy"])
def test_exact_blocks_against_label_enumeration(rng, loss):
    net = mlp([4, 3, 3], "tanh", loss)
    params = _perturbed(net, rng)
    X = rng.standard_normal((5, 4))
    F = exact_fisher_blocks(net, params, X, chunk=2)
    ref = brute_force_fisher(net, params, X)
    for k in params:
        np.testing.assert_allclose(F[k], ref[k], rtol=1e-11, atol=1e-14)


def test_exact_blocks_gaussian_against_jacobian(rng):
    net = mlp([3, 4, 2], "sigmoid", "squared_error")
    params = _perturbed(net, rng)
    X = rng.standard_normal((4, 3))
    F = exact_fisher_blocks(net, params, X)
    ref = jacobian_fisher(net, params, X)
    for k in params:
        np.testing.assert_allclose(F[k], ref[k], rtol=1e-7, atol=1e-9)


def test_exact_blocks_cnn_against_enumeration(rng):
    net = cnn((1, 5, 5), (2,), 3, 3, "tanh", padding=1)
    params = _perturbed(net, rng)
    X = rng.standard_normal((3, 1, 5, 5))
    F = exact_fisher_blocks(net, params, X)
    ref = brute_force_fisher(net, params, X)
    for k in params:
        np.testing.assert_allclose(F[k], ref[k], rtol=1e-11, atol=1e-14)


def test_empirical_fisher(rng):
    net = mlp([4, 3, 3], "tanh")
    params = _perturbed(net, rng)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    F = empirical_fisher_blocks(net, params, X, y)
    pe = net.per_example_grads(params, X, y)
    for k in params:
        G = pe[k].reshape(6, -1)
        np.testing.assert_allclose(F[k], G.T @ G / 6, rtol=1e-12)


def test_exact_blocks_on_strict_backend(rng):
    from tnt_ref.backend import namespace_for

    xs = namespace_for("array-api-strict")
    net = mlp([4, 3, 3], "tanh", "sigmoid_cross_entropy")
    params = _perturbed(net, rng)
    X = rng.standard_normal((5, 4))
    F = exact_fisher_blocks(net, params, X)
    Fs = exact_fisher_blocks(net, {k: on(xs, v) for k, v in params.items()}, on(xs, X))
    M = exact_mode_moments(net, {k: on(xs, v) for k, v in params.items()}, on(xs, X))
    for k in params:
        np.testing.assert_allclose(np_(Fs[k]), F[k], rtol=1e-12, atol=1e-15)
        assert len(M[k]) == len(params[k].shape)


def partial_trace_moments(F, shape):
    """Oracle: mode moments from a dense block by loops (E[G_(i) G_(i)^T] = partial trace)."""
    T = F.reshape(*shape, *shape)
    k = len(shape)
    out = []
    for i in range(k):
        S = np.zeros((shape[i], shape[i]))
        for rest in itertools.product(*[range(d) for j, d in enumerate(shape) if j != i]):
            idx = list(rest)
            for a, b in itertools.product(range(shape[i]), repeat=2):
                ia = tuple(idx[:i] + [a] + idx[i:])
                ib = tuple(idx[:i] + [b] + idx[i:])
                S[a, b] += T[ia + ib]
        out.append(S)
    return out


@pytest.mark.parametrize("conv_modes", [2, 3, 4])
def test_exact_mode_moments_match_block_and_generic_path(rng, conv_modes):
    net = cnn((1, 5, 5), (2,), 3, 3, "relu", padding=1)
    params = _perturbed(net, rng)
    X = rng.standard_normal((6, 1, 5, 5))
    F = exact_fisher_blocks(net, params, X)
    fast = exact_mode_moments(net, params, X, conv_modes=conv_modes, chunk=4)
    slow = exact_mode_moments(net, params, X, conv_modes=conv_modes, closed_form=False)
    for k in params:
        ts = tensor_shape(params[k].shape, conv_modes)
        ref = partial_trace_moments(F[k], ts)
        for a, b, c in zip(fast[k], slow[k], ref):
            np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-14)
            np.testing.assert_allclose(b, c, rtol=1e-11, atol=1e-14)


def test_conv_view_does_not_change_block():
    assert tensor_shape((16, 8, 3, 3), 3) == (16, 8, 9)
    assert tensor_shape((16, 8, 3, 3), 2) == (16, 72)
    assert tensor_shape((16, 8, 3, 3), 4) == (16, 8, 3, 3)
    assert tensor_shape((10, 64)) == (10, 64)
    with pytest.raises(ValueError, match="conv_modes"):
        tensor_shape((2, 2, 2, 2), 5)


def test_one_input_tnt_and_kfac_exact(rng):
    """Spec section 9: one input, exact expectation: every linear block is (B^T Lambda B) kron (a a^T)."""
    net = mlp([5, 4, 3], "tanh", "softmax_cross_entropy")
    params = _perturbed(net, rng)
    X = rng.standard_normal((1, 5))
    F = exact_fisher_blocks(net, params, X)
    M = exact_mode_moments(net, params, X)
    K = kfac_factors(net, params, X)
    for k in ("fc1.weight", "fc2.weight"):
        np.testing.assert_allclose(kron(*tnt_factors_from_moments(M[k])), F[k], rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(kron(*K[k]), F[k], rtol=1e-10, atol=1e-14)


def test_softmax_regression_at_zero_tnt_exact(rng):
    """Spec section 9: at W = 0, b = 0, F = Lambda kron E[x x^T] for any inputs; TNT and KFAC equal it."""
    net = mlp([6, 4], "tanh", "softmax_cross_entropy")
    params = {k: np.zeros(v.shape) for k, v in net.init(rng).items()}
    X = rng.standard_normal((20, 6))
    F = exact_fisher_blocks(net, params, X)["fc1.weight"]
    Lam = np.eye(4) / 4 - np.full((4, 4), 1 / 16)
    np.testing.assert_allclose(F, np.kron(Lam, X.T @ X / 20), rtol=1e-12, atol=1e-15)
    M = exact_mode_moments(net, params, X)["fc1.weight"]
    np.testing.assert_allclose(kron(*tnt_factors_from_moments(M)), F, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(kron(*kfac_factors(net, params, X)["fc1.weight"]), F, rtol=1e-10, atol=1e-14)


def test_negative_two_inputs_not_kronecker(rng):
    """Spec section 9 (negative): two inputs with different predictions: every Kronecker approximation errs."""
    net = mlp([3, 3], "tanh", "softmax_cross_entropy")
    params = {k: 1.5 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}
    X = rng.standard_normal((2, 3))
    z = net.predict(params, X)
    assert np.max(np.abs(np.diff(net.loss_fn.probs(z), axis=0))) > 0.1  # predictions differ
    F = exact_fisher_blocks(net, params, X)["fc1.weight"]
    M = exact_mode_moments(net, params, X)["fc1.weight"]
    nrm = np.linalg.norm(F)
    errs = {
        "tnt": np.linalg.norm(kron(*tnt_factors_from_moments(M)) - F) / nrm,
        "kfac": np.linalg.norm(kron(*kfac_factors(net, params, X)["fc1.weight"]) - F) / nrm,
        "frobenius": np.linalg.norm(kron(*frobenius_kron_fit(F, (3, 3))) - F) / nrm,
        "mle": np.linalg.norm(kron(*mle(covariance=F + 1e-2 * np.eye(9), shape=(3, 3)).factors) - F - 1e-2 * np.eye(9)) / nrm,
    }
    for name, e in errs.items():
        assert e > 1e-4, (name, e)  # exact cases above hold to 1e-10: six orders of separation
    # and the Frobenius fit is the best of them in its own metric
    assert errs["frobenius"] <= min(errs["tnt"], errs["kfac"]) + 1e-12


def test_monte_carlo_blocks_converge(rng):
    """Per-example MC -> F and batch-mean MC * m -> F, within 5 standard errors per entry."""
    net = mlp([3, 3], "tanh", "softmax_cross_entropy")
    params = _perturbed(net, rng)
    X = rng.standard_normal((8, 3))
    F = exact_fisher_blocks(net, params, X)["fc1.weight"]
    S = 3000
    reps = [monte_carlo_fisher_blocks(net, params, X, rng, n_samples=1, names=["fc1.weight"])["fc1.weight"] for _ in range(S)]
    mean, se = np.mean(reps, axis=0), np.std(reps, axis=0) / np.sqrt(S)
    assert np.all(np.abs(mean - F) <= 5 * se + 1e-12)
    m = 4
    reps = [
        m * monte_carlo_fisher_blocks(net, params, X, rng, scale="batch-mean", batch_size=m, names=["fc1.weight"])["fc1.weight"]
        for _ in range(S)
    ]
    mean, se = np.mean(reps, axis=0), np.std(reps, axis=0) / np.sqrt(S)
    assert np.all(np.abs(mean - F) <= 5 * se + 1e-12)
    # and the batch-mean statistic without the factor m is off by m: the scale matters
    assert np.linalg.norm(mean / m - F) > 0.5 * np.linalg.norm(F)


def test_memory_guard(rng):
    net = mlp([64, 32, 10], "tanh")
    params = net.init(rng)
    with pytest.raises(BlockTooLargeError, match=r"'fc1.weight' \(D = 2048\) needs 33,554,432 bytes.*exact_mode_moments"):
        exact_fisher_blocks(net, params, rng.standard_normal((2, 64)), max_block_bytes=1_000_000)


def test_ladder_rows_and_bias_exactness(rng):
    net = mlp([6, 4, 3], "tanh")
    params = _perturbed(net, rng)
    X, y = rng.standard_normal((24, 6)), rng.integers(0, 3, 24)
    res = approximation_ladder(net, params, X, y, rng, batch_size=4, n_mc=2)
    methods = {(r["layer"], r["method"]) for r in res.rows}
    for nm in params:
        for m in METHODS:
            assert (nm, m) in methods
    for r in res.rows:
        assert np.isfinite(r["rel_error"]) and r["kl"] >= -1e-9 and -1 <= r["cosine"] <= 1 + 1e-12
        if r["layer"].endswith("bias") and r["method"] in ("tnt-exact", "frobenius", "kfac", "mle"):
            assert r["rel_error"] < 1e-8, r  # k = 1: the full block
    assert res.spectra["fc1.weight"]["exact"].shape == (24,)


def test_bad_input(rng):
    net = mlp([4, 3], "tanh")
    params = net.init(rng)
    with pytest.raises(ValueError, match="unknown parameter names"):
        exact_fisher_blocks(net, params, rng.standard_normal((2, 4)), names=["fc9.weight"])
    with pytest.raises(ValueError, match=r"`batch_size` must be in \[1, 2\]"):
        monte_carlo_fisher_blocks(net, params, rng.standard_normal((2, 4)), rng, scale="batch-mean", batch_size=5)
    with pytest.raises(ValueError, match="`scale` must be"):
        monte_carlo_fisher_blocks(net, params, rng.standard_normal((2, 4)), rng, scale="sum")
    with pytest.raises(ValueError, match="NaN"):
        exact_fisher_blocks(net, params, np.full((2, 4), np.inf))
    with pytest.raises(TypeError, match="Sequential"):
        exact_fisher_blocks("mlp", params, np.zeros((2, 4)))


@pytest.mark.parametrize("conv_modes", [2, 4])
def test_ladder_conv_views_frobenius_is_best_in_its_own_metric(rng, conv_modes):
    """Kernels as 2- and 4-way tensors: every metric finite, and the Frobenius-optimal Kronecker product
    has the smallest Frobenius error of the Kronecker methods of that structure (TNT, MLE)."""
    net = cnn((1, 5, 5), (2,), 3, 3, "tanh", padding=1)
    params = _perturbed(net, rng)
    X, y = rng.standard_normal((12, 1, 5, 5)), rng.integers(0, 3, 12)
    res = approximation_ladder(net, params, X, y, rng, conv_modes=conv_modes, batch_size=4, n_mc=2)
    err = {(r["layer"], r["method"]): r["rel_error"] for r in res.rows}
    for r in res.rows:
        assert np.isfinite(r["rel_error"]) and np.isfinite(r["kl"]) and np.isfinite(r["cosine"])
        assert r["tensor_shape"] == list(tensor_shape(r["shape"], conv_modes))
    for layer in ("conv1.weight", "fc1.weight"):
        assert err[(layer, "frobenius")] <= err[(layer, "tnt-exact")] + 1e-9
        assert err[(layer, "frobenius")] <= err[(layer, "mle")] + 1e-9


def test_ladder_skips_a_dead_layer_and_fits_a_zero_block(rng):
    """A ReLU layer whose units are all off has a zero exact block (and so does the next weight, whose input is 0):
    the ladder says so and skips it (no relative error exists), on both paths, without NaN or warnings."""
    net = mlp([3, 4, 2], "relu", "softmax_cross_entropy")
    params = net.init(rng)
    params["fc1.bias"] = np.full(4, -100.0)  # every hidden unit dead
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    for exact in ("dense", "gram"):
        res = approximation_ladder(net, params, X, y, np.random.default_rng(0), batch_size=3, n_mc=1, exact=exact)
        assert [s["layer"] for s in res.skipped] == ["fc1.weight", "fc1.bias", "fc2.weight"]
        assert {r["layer"] for r in res.rows} == {"fc2.bias"}
        assert all(np.isfinite(r["rel_error"]) for r in res.rows)
    assert all(np.array_equal(u, np.zeros((d, d))) for u, d in zip(frobenius_kron_fit(np.zeros((6, 6)), (2, 3)), (2, 3)))


@pytest.mark.parametrize("exact", ["dense", "gram"])
def test_ladder_progress_moves_with_every_fit_and_method(rng, exact):
    """Issue 25's progress on issue 26's longer ladder: a step after each pass, each layer's fits (the MLE, the Frobenius
    fit, Shampoo^2, SOAP, KL-Shampoo's fixed point) and each method's metrics; never backwards; 100% at the end."""
    net = mlp([6, 4, 3], "tanh")
    params = _perturbed(net, rng)
    X, y = rng.standard_normal((24, 6)), rng.integers(0, 3, 24)
    seen = []
    approximation_ladder(net, params, X, y, rng, batch_size=4, n_mc=2, exact=exact,
                         progress=lambda done, total, note: seen.append((done, total, note)))
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] and len({t for _, t, _ in seen}) == 1
    notes = [n for _, _, n in seen]
    for fit in ("mle fit", "frobenius fit", "shampoo2 fit", "soap fit", "kl-shampoo fixed point"):
        assert any(n.startswith("fc1.weight: " + fit) for n in notes), fit
    assert {"exact pass", "sampled labels"} <= set(notes)
    assert sum(n.startswith("fc1.weight: ") for n in notes) >= len(METHODS)  # every method's metrics moved it
