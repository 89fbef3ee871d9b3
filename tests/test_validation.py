"""One validation layer for the public API (issue 12): every case of "silent wrong answers" and
"unclear errors" that concerns the library, each refused with a message naming the argument, and
the valid neighbour of each case still giving the right number (against an independent oracle)."""

from __future__ import annotations

import os
import stat
import time

import numpy as np
import pytest

from tests.conftest import spd
from tnt_ref.cli import main
from tnt_ref.files import atomic_write_json
from tnt_ref.fisher import exact_fisher_blocks, monte_carlo_fisher_blocks
from tnt_ref.kronecker import KroneckerMatrix
from tnt_ref.models import mlp
from tnt_ref.optim import OPTIMIZERS, adam, kfac, make_optimizer, shampoo, sgd, tnt
from tnt_ref.tensor_normal import (
    TensorNormal,
    mode_moments,
    normalize,
    tnt_factors,
    tnt_factors_from_moments,
)
from tnt_ref.tensor_normal_mle import mle
from tnt_ref.training import train_step


@pytest.fixture
def clf():
    rng = np.random.default_rng(3)
    net = mlp([4, 5, 3])
    return net, net.init(rng), rng.random((6, 4)), np.array([0, 1, 2, 0, 1, 2])


@pytest.fixture
def autoencoder():
    rng = np.random.default_rng(4)
    net = mlp([4, 3, 4], "tanh", "sigmoid_cross_entropy")
    X = rng.random((6, 4))
    return net, net.init(rng), X


def _step(net, params, X, y, rng=None, name="tnt", **kw):
    opt = make_optimizer(name, 0.1, **kw)
    rng = np.random.default_rng(0) if rng is None else rng
    return train_step(net, opt, params, opt.init(params), X, y, rng)


# ----------------------------------------------------------------------------- train_step
@pytest.mark.parametrize("name", ["tnt", "sgd", "kfac"])
@pytest.mark.parametrize("bad", [10, 3, -1])
def test_train_step_refuses_labels_out_of_range(clf, name, bad):
    net, params, X, y = clf
    y = y.copy()
    y[-1] = bad
    with pytest.raises(ValueError, match=r"labels `y` must lie in \[0, 2\] for 3 classes"):
        _step(net, params, X, y, name=name)


def test_train_step_valid_labels_unchanged(clf):
    """The label guard adds nothing to a valid step: the loss is net.loss, the update SGD's formula."""
    net, params, X, y = clf
    loss, new, _ = _step(net, params, X, y, name="sgd")
    assert loss == net.loss(params, X, y)
    _, g = net.loss_and_grad(params, X, y)
    for k in params:
        np.testing.assert_array_equal(new[k], params[k] - 0.1 * g[k])


@pytest.mark.parametrize("scale", [16.0, -1.0])
def test_train_step_refuses_bernoulli_targets_outside_unit_interval(autoencoder, scale):
    net, params, X = autoencoder
    with pytest.raises(ValueError, match=r"targets `y` must lie in \[0, 1\]"):
        _step(net, params, X, X * scale, name="sgd")
    loss, _, _ = _step(net, params, X, X, name="sgd")  # soft targets in [0, 1] are fine
    assert loss == net.loss(params, X, X)


def test_impossible_labels_have_infinite_loss(clf, autoencoder):
    """The mechanism that costs no host read: an impossible label or target has loss +inf."""
    net, params, X, y = clf
    z = net.predict(params, X)
    y_bad = y.copy()
    y_bad[0] = 7
    losses = net.loss_fn.loss(z, y_bad)
    assert np.isposinf(losses[0]) and np.all(np.isfinite(losses[1:]))
    ae, pa, Xa = autoencoder
    t = Xa.copy()
    t[2, 1] = 1.5
    la = ae.loss_fn.loss(ae.predict(pa, Xa), t)
    assert np.isposinf(la[2]) and np.isfinite(np.delete(la, 2)).all()


def test_train_step_refuses_wrong_input_width(clf):
    net, params, X, y = clf
    with pytest.raises(ValueError, match=r"`X` must have shape \(n, 4\) for this model; got \(6, 3\)"):
        _step(net, params, X[:, :3], y)


def test_train_step_refuses_missing_and_misshaped_parameters(clf):
    net, params, X, y = clf
    with pytest.raises(ValueError, match=r"missing \['fc2.bias'\]"):
        _step(net, {k: v for k, v in params.items() if k != "fc2.bias"}, X, y)
    with pytest.raises(ValueError, match=r"parameter 'fc1.bias' has shape \(4,\), expected \(5,\) \(in `params`\)"):
        _step(net, {**params, "fc1.bias": np.zeros(4)}, X, y)
    with pytest.raises(TypeError, match="`params` must be a dict"):
        _step(net, list(params.values()), X, y)


def test_train_step_refuses_rng_none(clf):
    net, params, X, y = clf
    for name in ("tnt", "sgd"):
        with pytest.raises(TypeError, match="`rng` must be a numpy.random.Generator"):
            opt = make_optimizer(name, 0.1)
            train_step(net, opt, params, opt.init(params), X, y, None)


def test_train_step_refuses_nan_parameters_inputs_and_complex(clf):
    net, params, X, y = clf
    bad = {**params, "fc2.weight": params["fc2.weight"] * np.nan}
    with pytest.raises(ValueError, match=r"`params\['fc2.weight'\]` contains 15 NaN or Inf"):
        _step(net, bad, X, y)
    Xn = X.copy()
    Xn[1, 1] = np.inf
    # the step's one finiteness read sees the non-finite loss (NumPy may warn on the way), then the check names `X`
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="`X` contains 1 NaN or Inf"):
        _step(net, params, Xn, y)
    with pytest.raises(TypeError, match="`X` must hold real floating-point or integer numbers; got dtype complex128"):
        _step(net, params, X.astype(complex), y)
    with pytest.raises(TypeError, match="`y` must hold integer class indices"):
        _step(net, params, X, y.astype(float))
    with pytest.raises(ValueError, match="at least one example"):
        _step(net, params, X[:0], y[:0])


def test_sequential_loss_checks_parameters(clf):
    net, params, X, y = clf
    with pytest.raises(ValueError, match="missing"):
        net.loss({k: v for k, v in params.items() if k != "fc1.weight"}, X, y)
    with pytest.raises(ValueError, match="NaN or Inf"):
        net.loss_and_grad({**params, "fc1.bias": params["fc1.bias"] + np.nan}, X, y)


# ----------------------------------------------------------------------------- KroneckerMatrix
def _indefinite_pair():
    # two negative eigenvalues: det > 0, so the old sign test of logdet passed it
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return (Q * np.array([-1.0, -2.0, 3.0])) @ Q.T, spd(rng, 2)


def test_kronecker_refuses_indefinite_factors():
    A, B = _indefinite_pair()
    K = KroneckerMatrix([A, B])
    np.testing.assert_allclose(K.matvec(np.ones(6)), np.kron(A, B) @ np.ones(6))  # matvec stays fine
    with pytest.raises(ValueError, match="factor 0 of `factors` must be symmetric positive semi-definite; its smallest eigenvalue is -2"):
        K.logdet()
    with pytest.raises(ValueError, match="positive semi-definite"):
        K.solve_damped(np.ones((3, 2)), 0.1)
    with pytest.raises(ValueError, match="positive semi-definite"):
        K.damped_inverse(0.5)
    with pytest.raises(ValueError, match="factor 1 of `factors`"):
        KroneckerMatrix([B, A]).damped_inverse(0.5, scheme="pi")


def test_kronecker_psd_answers_against_dense_oracle():
    """The valid neighbours: SPD and singular-PSD factors, against dense NumPy."""
    rng = np.random.default_rng(6)
    A, B = spd(rng, 3), spd(rng, 2, cond=100)
    K = KroneckerMatrix([A, B])
    D = np.kron(A, B)
    assert np.isclose(K.logdet(), np.linalg.slogdet(D)[1], rtol=1e-12)
    X = rng.standard_normal((3, 2))
    np.testing.assert_allclose(K.solve_damped(X, 0.3).ravel(), np.linalg.solve(D + 0.3 * np.eye(6), X.ravel()), rtol=1e-10)
    np.testing.assert_allclose(
        K.damped_inverse(0.2).dense(), np.kron(np.linalg.inv(A + 0.2 * np.eye(3)), np.linalg.inv(B + 0.2 * np.eye(2))), rtol=1e-10
    )
    v = rng.standard_normal(3)
    P = np.outer(v, v)  # PSD, rank 1: singular, not indefinite
    assert KroneckerMatrix([P, B]).logdet() == -np.inf
    Ks = KroneckerMatrix([P, B])
    np.testing.assert_allclose(Ks.solve_damped(X, 0.3).ravel(), np.linalg.solve(np.kron(P, B) + 0.3 * np.eye(6), X.ravel()), rtol=1e-10)


def test_normalize_and_tnt_factors_from_moments_refuse_indefinite():
    A, B = _indefinite_pair()
    with pytest.raises(ValueError, match="factor 0 of `factors` must be symmetric positive semi-definite"):
        normalize([A, B])
    with pytest.raises(ValueError, match="factor 0 of `moments` must be symmetric positive semi-definite"):
        # equal traces (both 0 + ...): only the PSD check can refuse it
        tnt_factors_from_moments([np.diag([3.0, -1.0, 2.0]), np.diag([1.0, 3.0])])
    rng = np.random.default_rng(7)
    S = mode_moments(rng.standard_normal((30, 3, 2)))
    U = tnt_factors_from_moments(S)  # PSD moments still pass
    assert np.isclose(np.trace(U[0]) / 3, np.trace(U[1]) / 2)


# ----------------------------------------------------------------------------- fisher
@pytest.mark.parametrize("chunk", [0, -5])
def test_exact_fisher_blocks_refuses_nonpositive_chunk(clf, chunk):
    net, params, X, _ = clf
    with pytest.raises(ValueError, match=rf"`chunk` must be a positive int; got chunk={chunk}"):
        exact_fisher_blocks(net, params, X, chunk=chunk)
    with pytest.raises(TypeError, match="`chunk` must be an integer"):
        exact_fisher_blocks(net, params, X, chunk=2.5)


def test_exact_fisher_blocks_numpy_int_chunk_same_blocks(clf):
    net, params, X, _ = clf
    a = exact_fisher_blocks(net, params, X)
    b = exact_fisher_blocks(net, params, X, chunk=np.int64(2))
    for k in a:
        assert np.any(a[k] != 0)
        np.testing.assert_allclose(b[k], a[k], rtol=1e-12, atol=1e-15)


def test_fisher_refuses_nan_parameters(clf):
    net, params, X, _ = clf
    with pytest.raises(ValueError, match=r"`params\['fc1.weight'\]` contains 20 NaN or Inf"):
        exact_fisher_blocks(net, {**params, "fc1.weight": params["fc1.weight"] * np.nan}, X)


def test_monte_carlo_checks_n_samples_and_rng(clf):
    net, params, X, _ = clf
    rng = np.random.default_rng(0)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="`n_samples` must be a positive int"):
            monte_carlo_fisher_blocks(net, params, X, rng, n_samples=bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError, match="`n_samples` must be an integer"):
            monte_carlo_fisher_blocks(net, params, X, rng, n_samples=bad)
    with pytest.raises(TypeError, match="`rng` must be a numpy.random.Generator"):
        monte_carlo_fisher_blocks(net, params, X, None)
    with pytest.raises(TypeError, match="`batch_size` must be an integer"):
        monte_carlo_fisher_blocks(net, params, X, rng, scale="batch-mean", batch_size="3")
    a = monte_carlo_fisher_blocks(net, params, X, np.random.default_rng(1), n_samples=np.int64(2))
    b = monte_carlo_fisher_blocks(net, params, X, np.random.default_rng(1), n_samples=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


# ----------------------------------------------------------------------------- tensor normal
@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e200])
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 2)])
def test_tnt_factors_of_tiny_and_huge_samples(scale, shape):
    """Oracle: U_i(a G) = a**(2/k) U_i(G) [derived], evaluated on G itself (well scaled)."""
    G = np.random.default_rng(8).standard_normal((20, *shape))
    k = len(shape)
    ref = tnt_factors(G)
    got = tnt_factors(G * scale)
    for u, r in zip(got, ref):
        assert np.all(np.isfinite(u)) and np.any(u != 0)
        np.testing.assert_allclose(u, r * scale ** (2.0 / k), rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-150, 1e-100, 1e120])
def test_mode_moments_rescale_small_and_large_samples(scale):
    G = np.random.default_rng(15).standard_normal((20, 3, 2))
    for m, r in zip(mode_moments(G * scale), mode_moments(G)):
        np.testing.assert_allclose(m, r * scale**2, rtol=1e-12)


def test_tiny_samples_refused_where_not_representable():
    G = np.random.default_rng(9).standard_normal((20, 3))
    with pytest.raises(ValueError, match="not representable in float64"):
        tnt_factors(G * 1e-200)  # k = 1: U = S ~ 1e-400
    with pytest.raises(ValueError, match="underflow to zero"):
        mode_moments(G.reshape(20, 3, 1) * 1e-200)
    with pytest.raises(ValueError, match="overflow"):
        mode_moments(G.reshape(20, 3, 1) * 1e200)


@pytest.mark.parametrize("tol", [-1.0, float("nan"), float("inf"), "1e-8"])
def test_mle_refuses_bad_tol(tol):
    G = np.random.default_rng(10).standard_normal((30, 2, 3))
    with pytest.raises((ValueError, TypeError), match="`tol`"):
        mle(G, tol=tol)


def test_mle_max_iter_validation_and_numpy_integers():
    G = np.random.default_rng(11).standard_normal((30, 2, 3))
    for bad in (0, -3):
        with pytest.raises(ValueError, match="`max_iter` must be a positive int"):
            mle(G, max_iter=bad)
    for bad in (2.5, "5", True):
        with pytest.raises(TypeError, match="`max_iter` must be an integer"):
            mle(G, max_iter=bad)
    a, b = mle(G, max_iter=np.int64(5), tol=0.0), mle(G, max_iter=5, tol=0.0)
    assert a.n_sweeps == b.n_sweeps == 5
    for u, v in zip(a.factors, b.factors):
        np.testing.assert_array_equal(u, v)


def test_mle_rank_deficient_samples_say_add_samples():
    rng = np.random.default_rng(12)
    one = rng.standard_normal((1, 3, 4))
    with pytest.raises(ValueError, match="rank-deficient.*Add more"):
        mle(np.repeat(one, 40, axis=0))
    G = rng.standard_normal((40, 3, 4))
    G[:, 0, :] = 0.0  # mode 0 not spanned
    with pytest.raises(ValueError, match="do not span mode 0.*Add more"):
        mle(G)
    with pytest.raises(ValueError, match="`init`"):
        mle(rng.standard_normal((40, 3, 4)), init=[-np.eye(3), np.eye(4)])


def test_tensor_normal_sample_accepts_numpy_integers():
    tn = TensorNormal([np.eye(2), 2 * np.eye(3)])
    a = tn.sample(np.int64(5), np.random.default_rng(0))
    b = tn.sample(5, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="`n` must be an integer"):
        tn.sample(5.0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="`rng`"):
        tn.sample(5, 0)


@pytest.mark.parametrize("dtype", [complex, object, bool, "U3"])
def test_complex_object_and_other_dtypes_refused(dtype):
    G = np.random.default_rng(13).standard_normal((10, 2, 3))
    arr = G.astype(dtype)
    for f in (tnt_factors, mode_moments, mle):
        with pytest.raises(TypeError, match="`samples` must hold real floating-point or integer numbers"):
            f(arr)
    with pytest.raises(TypeError, match=r"`factors\[0\]` must hold real"):
        KroneckerMatrix([np.eye(2).astype(dtype), np.eye(3)])


def test_integer_samples_accepted():
    G = np.random.default_rng(14).integers(-3, 4, (30, 2, 3))
    for u, v in zip(tnt_factors(G), tnt_factors(G.astype(float))):
        np.testing.assert_array_equal(u, v)


# ----------------------------------------------------------------------------- optimizers
def test_adam_blames_its_own_arguments():
    with pytest.raises(ValueError, match=r"`b1` must be in \[0, 1\); got b1=1.5"):
        adam(1e-3, b1=1.5)
    with pytest.raises(ValueError, match=r"`b2` must be in \[0, 1\); got b2=1"):
        adam(1e-3, b2=1)
    with pytest.raises(ValueError, match="`eps` must be positive and finite; got eps=0"):
        adam(1e-3, eps=0)
    assert adam(1e-3, b1=np.float32(0.5)).hyper["b1"] == 0.5


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("lr", ["0.1", b"0.1", True, None, [0.1]])
def test_learning_rate_must_be_a_number(name, lr):
    with pytest.raises(TypeError, match="`learning_rate` must be a real number"):
        make_optimizer(name, lr)


@pytest.mark.parametrize("name,key", [("sgd", "momentum"), ("tnt", "decay"), ("kfac", "damping"), ("shampoo", "momentum"),
                                      ("adam", "b1"), ("tnt", "T1"), ("kl-shampoo", "decay")])
def test_none_hyperparameter_is_refused_by_name(name, key):
    with pytest.raises(TypeError, match=f"`{key}` must be"):
        make_optimizer(name, 0.1, **{key: None})


def test_numpy_scalars_accepted_for_hyperparameters():
    opt = tnt(np.float64(0.1), T1=np.int64(5), T2=np.int32(20), damping=np.float32(1e-3))
    assert opt.hyper["T1"] == 5 and type(opt.hyper["T1"]) is int and type(opt.hyper["T2"]) is int
    assert type(kfac(0.1, T1=np.int64(2)).hyper["T1"]) is int
    assert type(shampoo(0.1, T2=np.int64(3)).hyper["T2"]) is int
    assert sgd(np.float64(0.1)).hyper["learning_rate"] == 0.1
    with pytest.raises(TypeError, match="`T1` must be an integer"):
        tnt(0.1, T1=2.0)


def test_tnt_tiny_damping_asks_for_more_damping(clf):
    """numpy raised LinAlgError('Singular matrix') from inside the inverse; then a ValueError from the inverse;
    now (issue 24) init refuses it before any step, since (1/damping)**k overflows, naming the least damping."""
    net, params, X, y = clf
    with pytest.raises(ValueError, match=r"`damping`=1e-300 is too small for tnt .*overflows.*use more damping: damping >= "):
        _step(net, params, X, y, damping=1e-300)
    with pytest.raises(ValueError, match=r"inverting factor \d \+ 1e-100 I .*use more damping"):
        _step(net, params, X, y, damping=1e-100)  # representable, but the factors are singular to working precision


def test_kfac_linalg_error_becomes_value_error(clf):
    """A = -sqrt(damping) I makes A + sqrt(damping) I exactly zero: numpy's LinAlgError becomes a ValueError."""
    net, params, X, y = clf
    lam = 1e-2
    opt = kfac(0.1, damping=lam)
    g = {k: np.zeros_like(v) for k, v in params.items()}
    stats = {k: (np.eye(v.shape[0]), -np.sqrt(lam) * np.eye(v.shape[1])) for k, v in params.items() if v.ndim == 2}
    with pytest.raises(ValueError, match="KFAC: inverting A \\+ sqrt\\(damping\\) I .*use more damping"):
        opt.update(g, opt.init(params), params, kfac_stats=stats)


# ----------------------------------------------------------------------------- command line doors
@pytest.mark.parametrize(
    "argv",
    [
        ["fisher", "--model", "mlp", "--n", "10", "--out", "{file}"],
        ["fisher", "--model", "mlp", "--n", "10", "--out", "{file}/sub"],
        ["vectors", "--out", "{file}"],
        ["vectors", "--out", "{file}/sub"],
    ],
)
def test_bad_output_path_fails_at_the_door(tmp_path, capsys, argv):
    afile = tmp_path / "afile"
    afile.write_text("x")
    argv = [a.replace("{file}", str(afile)) for a in argv]
    t0 = time.perf_counter()
    rc = main(argv)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "`--out`" in err and str(afile) in err
    assert elapsed < 1.0, elapsed  # before any computation (the fisher study takes many seconds)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_results_files_have_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_json(tmp_path / "r.json", {"a": 1})
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        assert main(["vectors", "--out", str(tmp_path / "vec")]) == 0
        modes = {stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "vec").iterdir()}
        assert modes == {0o644}
    finally:
        os.umask(old)
