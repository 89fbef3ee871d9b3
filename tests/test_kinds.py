"""One deterministic test per kind of bad input (issue 24), in the library and on the command line.

Kinds: the memory guard (a dense object refused before it is allocated, naming its size and the way
around it); finite, in-range hyperparameters and tolerances; symmetric positive (semi-)definite
covariances, indefinite told apart from rank-deficient; dtypes that cannot hold the statistics;
integer sizes; unique layer names; zero classes, stride and kernel; an optimizer's state matched to
its optimizer and parameters; parameter dicts matched to the model; statistics that cannot exist
(+inf, never a large finite number); messages that name the flag. File ownership is in
``tests/test_ownership.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tnt_ref
from tnt_ref import DenseTooLargeError, KroneckerMatrix, TensorNormal, dense_limit, kron, mle, mode_moments, tnt_factors
from tnt_ref._validation import check_covariance, check_definite, check_real, check_tolerance
from tnt_ref.cli import main
from tnt_ref.data import random_spd, synthetic_tensor_normal_gradients
from tnt_ref.experiments import _gaussian_kl, estimator_study
from tnt_ref.models import Sequential, cnn, mlp
from tnt_ref.models.layers import Activation, Conv2d, Linear
from tnt_ref.optim import adam, kfac, kl_shampoo, sgd, shampoo, soap, tnt, tnt_warm_start
from tnt_ref.training import run


# ----------------------------------------------------------------------------- the memory guard
def test_dense_objects_are_refused_before_allocation_with_size_and_way_around():
    big = [np.eye(1000)] * 3  # D = 1e9: the dense product would be 7.3e6 TiB
    with pytest.raises(DenseTooLargeError, match=r"shape \(1000000000, 1000000000\).*TiB.*KroneckerMatrix.*matvec"):
        kron(*big)
    with pytest.raises(DenseTooLargeError, match=r"KroneckerMatrix.dense\(\).*as_linear_operator"):
        KroneckerMatrix(big).dense()
    with pytest.raises(DenseTooLargeError, match=r"eigvalsh.*products are the spectrum"):
        KroneckerMatrix(big).eigvalsh()
    with pytest.raises(DenseTooLargeError, match=r"TensorNormal.covariance\(\)"):
        TensorNormal([np.eye(200)] * 3).covariance()
    with pytest.raises(DenseTooLargeError, match=r"TensorNormal.sample\(n=1000000000000\).*fewer samples"):
        TensorNormal([np.eye(2)]).sample(10**12, np.random.default_rng(0))
    with pytest.raises(DenseTooLargeError, match="synthetic_tensor_normal_gradients"):
        synthetic_tensor_normal_gradients((100, 100), 10**7, np.random.default_rng(0))
    with pytest.raises(DenseTooLargeError, match=r"random_spd\(d=100000\)"):
        random_spd(np.random.default_rng(0), 100_000)
    with pytest.raises(DenseTooLargeError, match="model's parameters.*smaller layer widths"):
        mlp([10**6, 10**6, 10])
    with pytest.raises(DenseTooLargeError, match="estimator_study"):
        estimator_study(shape=(100, 100, 10), ns=[2])
    params = {"w": np.zeros((1, 200_000))}  # tnt would keep a 200000 x 200000 factor
    with pytest.raises(DenseTooLargeError, match=r"tnt's curvature factor of 'w'.*another optimizer"):
        tnt(0.1).init(params)
    for opt in (kl_shampoo(0.1), soap(0.1)):  # the Shampoo family keeps the same factors, behind the same door
        with pytest.raises(DenseTooLargeError, match=rf"{opt.name}'s curvature factor of 'w'.*another optimizer"):
            opt.init(params)
    sgd(0.1).init(params)  # no factors: fine
    assert issubclass(DenseTooLargeError, ValueError)


def test_dense_limit_is_one_module_constant_with_an_override():
    A = np.eye(64)
    assert tnt_ref._validation.MAX_DENSE_BYTES == 1 << 30
    with dense_limit(1000):  # 64 * 64 * 8 bytes = 32 KiB > 1000 bytes
        with pytest.raises(DenseTooLargeError, match=r"above the limit of 1000 bytes.*dense_limit"):
            kron(A)
    assert kron(A).shape == (64, 64)  # restored
    with dense_limit(1 << 40):
        assert tnt_ref._validation.MAX_DENSE_BYTES == 1 << 40
    with pytest.raises(ValueError, match="`max_bytes` must be a positive int"):
        with dense_limit(0):
            pass


# ----------------------------------------------------------------------------- finite, in-range numbers
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1e-3, 0.0, 1.0])
def test_tolerances_are_finite_and_in_the_open_unit_interval(bad):
    with pytest.raises(ValueError, match=r"`tol` must be a finite number in \(0, 1\)"):
        check_tolerance(bad)
    F = np.kron(np.diag([1.0, 2.0]), np.eye(3))
    with pytest.raises(ValueError, match="`tol`"):
        tnt_ref.frobenius_kron_fit(F, (2, 3), tol=bad)
    assert check_tolerance(1e-10) == 1e-10


def test_mle_nan_tolerance_is_refused():
    G = np.random.default_rng(0).standard_normal((20, 2, 3))
    with pytest.raises(ValueError, match="`tol` must be non-negative and finite; got tol=nan"):
        mle(G, tol=math.nan)


def test_nan_floor_infinite_budget_and_overflowing_damping_are_refused():
    with pytest.raises(ValueError, match="`floor` must be non-negative and finite; got floor=nan"):
        shampoo(0.1, floor=math.nan)
    with pytest.raises(ValueError, match="`floor` must be non-negative and finite; got floor=nan"):
        kl_shampoo(0.1, floor=math.nan)
    with pytest.raises(ValueError, match="`floor`"):
        tnt_ref.kronecker.safe_eigh(np.eye(2), floor=math.nan)
    with pytest.raises(ValueError, match="`seconds` must be positive and finite; got seconds=inf"):
        run("mlp", "sgd", 0.1, epochs=None, seconds=math.inf)
    params = {"fc.weight": np.ones((3, 4)), "fc.bias": np.ones(3)}
    for opt, word in ((tnt(0.1, damping=1e-300), "tnt"), (kfac(0.1, damping=1e-300), "kfac")):
        with pytest.raises(ValueError, match=rf"`damping`=1e-300 is too small for {word} .*damping >= "):
            opt.init(params)
    p32 = {"w": np.ones((3, 4), np.float32)}
    with pytest.raises(ValueError, match=r"float32, 2 factors.*damping >= 5e-12"):
        tnt(0.1, damping=1e-20).init(p32)
    tnt(0.1, damping=1e-11).init(p32)
    tnt(0.1, damping=1e-20).init({"w": np.ones((3, 4))})  # (1e20)**2 fits in float64
    shampoo(0.1, damping=1e-300).init(params)  # the root only reaches damping**-1/2
    kl_shampoo(0.1, damping=1e-300).init(params)  # so does KL-Shampoo's (kron S_i)^-1/2 of damped factors
    with pytest.raises(ValueError, match=r"`damping`=1e-300 is too small for kl-shampoo .*damping >= "):
        kl_shampoo(0.1, damping=1e-300).init({"w": np.ones((3, 4), np.float32)})
    with pytest.raises(ValueError, match=r"`cond` must be a finite number in \[1"):
        random_spd(np.random.default_rng(0), 3, cond=math.nan)
    assert check_real(0.5, "x", low=0, high=1) == 0.5


# ----------------------------------------------------------------------------- covariances
def test_non_symmetric_covariance_is_refused_not_given_a_zero_gap():
    C = np.kron(np.diag([1.0, 2.0]), np.diag([1.0, 3.0]))
    C[0, 1] = 0.5  # not symmetric: the symmetric part would be fitted and reported as this matrix's projection
    with pytest.raises(ValueError, match=r"`covariance` must be symmetric.*not a covariance"):
        mle(covariance=C, shape=(2, 2))
    from proofs_check.separability import kl_gap

    with pytest.raises(ValueError, match=r"`F` must be symmetric"):
        kl_gap(C, (2, 2))
    assert kl_gap(C.T @ C, (2, 2))[0] >= 0  # a symmetric PD neighbour is accepted


def test_indefinite_and_rank_deficient_are_told_apart():
    indef = np.diag([1.0, -1.0])
    sing = np.diag([1.0, 0.0])
    with pytest.raises(ValueError, match="is indefinite.*not a covariance"):
        check_definite(np.linalg.eigvalsh(indef), "U")
    with pytest.raises(ValueError, match="is rank-deficient.*add samples"):
        check_definite(np.linalg.eigvalsh(sing), "U")
    with pytest.raises(ValueError, match="it is indefinite"):
        TensorNormal([indef])
    with pytest.raises(ValueError, match="singular"):
        TensorNormal([sing])
    # a factor for which Cholesky succeeds but which is singular to working precision (rank 1 + round-off)
    v = np.array([1.0, 2.0, 3.0])
    near = np.outer(v, v) + 1e-18 * np.eye(3)
    with pytest.raises(ValueError, match="rank-deficient"):
        TensorNormal([near, np.eye(2)])
    with pytest.raises(ValueError, match=r"smallest eigenvalue -1"):
        check_covariance(indef, "C")
    check_covariance(sing, "C")  # PSD is a covariance
    with pytest.raises(ValueError, match="rank-deficient"):
        check_covariance(sing, "C", definite=True)


# ----------------------------------------------------------------------------- statistics that cannot exist
def test_kl_of_a_singular_estimate_is_inf_not_a_large_finite_number():
    S = np.eye(4)
    K = np.diag([1.0, 1.0, 1.0, 0.0])
    assert _gaussian_kl(S, K) == math.inf
    assert _gaussian_kl(S, np.diag([1.0, 1.0, 1.0, -1.0])) == math.inf
    assert _gaussian_kl(S, S) == pytest.approx(0.0, abs=1e-12)
    A = random_spd(np.random.default_rng(1), 4)
    B = random_spd(np.random.default_rng(2), 4)
    oracle = 0.5 * (np.trace(np.linalg.solve(B, A)) - 4 + np.linalg.slogdet(B)[1] - np.linalg.slogdet(A)[1])
    assert _gaussian_kl(A, B) == pytest.approx(oracle, rel=1e-10)
    rows = estimator_study(shape=(3, 2), ns=[1], seed=0)  # one sample: the Frobenius fit of a rank-1 S is singular
    assert rows and all(r["kl"] > 0 for r in rows)
    assert any(r["kl"] == math.inf for r in rows)


# ----------------------------------------------------------------------------- dtypes
def test_float16_cannot_hold_the_statistics():
    G = np.full((300, 4, 4), 10.0, dtype=np.float16)  # the sums of squares overflow float16 (max 65504)
    for f in (mode_moments, tnt_factors, mle):
        with pytest.raises(TypeError, match="dtype float16, which cannot hold its second moments.*float32 or float64"):
            f(G)
    with pytest.raises(TypeError, match="float16"):
        KroneckerMatrix([np.eye(2, dtype=np.float16)])
    with pytest.raises(TypeError, match=r"params\['w'\].*float16"):
        tnt(0.1).init({"w": np.ones((2, 3), np.float16)})
    assert np.isfinite(mode_moments(G.astype(np.float32))[0]).all()


# ----------------------------------------------------------------------------- structure
def test_sizes_must_be_integers_and_positive():
    with pytest.raises(TypeError, match=r"`sizes\[1\]` must be an integer; got 32.5"):
        mlp([64, 32.5, 10])
    assert mlp([64, np.int64(32), 10]).param_shapes["fc1.weight"] == (32, 64)
    with pytest.raises(ValueError, match="`n_classes` must be a positive int; got n_classes=0"):
        cnn(n_classes=0)
    with pytest.raises(ValueError, match="`stride` must be a positive int; got stride=0"):
        cnn(stride=0)
    with pytest.raises(ValueError, match="`kernel` must be a positive int; got kernel=0"):
        cnn(kernel=0)
    with pytest.raises(TypeError, match="`kernel` must be an integer; got 2.5"):
        Conv2d("c", 1, 2, 2.5)
    with pytest.raises(ValueError, match="`padding` must be an integer >= 0"):
        Conv2d("c", 1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match=r"`channels\[0\]` must be a positive int"):
        cnn(channels=(0,))
    with pytest.raises(TypeError, match="`d_out` must be an integer"):
        Linear("fc", 3, 2.0)
    with pytest.raises(TypeError, match=r"`shape\[0\]` must be an integer"):
        tnt_ref.frobenius_kron_fit(np.eye(6), (2.5, 3))
    with pytest.raises(TypeError, match=r"`shape\[1\]` must be an integer"):
        mle(covariance=np.eye(6), shape=(2, 3.0))


def test_layer_names_must_be_unique():
    layers = [Linear("fc", 4, 4), Activation("tanh"), Linear("fc", 4, 3)]
    with pytest.raises(ValueError, match=r"parameter names .* must be unique; \['fc.weight', 'fc.bias'\].*own name"):
        Sequential(layers, "softmax_cross_entropy", (4,))
    with pytest.raises(TypeError, match="layer's `name` must be a non-empty string"):
        Linear("", 4, 4)


def test_optimizer_state_is_matched_to_its_optimizer_and_parameters():
    params = {"w": np.ones((3, 4)), "b": np.zeros(3)}
    grads = {k: np.ones_like(v) for k, v in params.items()}
    s_sgd = sgd(0.1).init(params)
    for opt in (tnt(0.1), adam(0.1), kfac(0.1), shampoo(0.1), kl_shampoo(0.1), soap(0.1)):
        with pytest.raises(TypeError, match=rf"`state` is a SGDState, not the .* of optimizer '{opt.name}'"):
            opt.update(grads, s_sgd, params)
    with pytest.raises(TypeError, match="SGDState, not the TNTState"):
        tnt(0.1).needs(s_sgd)
    other = {"v": np.ones((3, 4)), "b": np.zeros(3)}
    with pytest.raises(ValueError, match=r"`state`.momentum does not match `params`: missing \['w'\], unexpected \['v'\]"):
        sgd(0.1).update(grads, sgd(0.1).init(other), params)
    wide = {"w": np.ones((3, 5)), "b": np.zeros(3)}
    with pytest.raises(ValueError, match=r"momentum\['w'\] has shape \(3, 5\).*another model"):
        sgd(0.1).update(grads, sgd(0.1).init(wide), params)
    with pytest.raises(ValueError, match=r"`grads` must have the keys of `params`; missing \['b'\]"):
        sgd(0.1).update({"w": grads["w"]}, s_sgd, params)
    with pytest.raises(TypeError, match="`opt` must be a tnt or tnt-ef optimizer; got 'sgd'"):
        tnt_warm_start(sgd(0.1), tnt(0.1).init(params), params, [grads])
    upd, state = sgd(0.1).update(grads, s_sgd, params)  # the matching pair works
    assert state.step == 1 and np.allclose(upd["w"], -0.1)


def test_parameter_dicts_are_matched_to_the_model():
    net = mlp([4, 3, 2])
    params = net.init(np.random.default_rng(0))
    X = np.ones((5, 4))
    bad = {k: v for k, v in params.items() if k != "fc2.bias"}
    for call in (lambda: net.predict(bad, X), lambda: net.forward(bad, X), lambda: net.accuracy(bad, X, np.zeros(5, int)),
                 lambda: net.sample_labels(bad, X, np.random.default_rng(0))):
        with pytest.raises(ValueError, match=r"`params` must have the keys .*missing \['fc2.bias'\]"):
            call()
    with pytest.raises(ValueError, match=r"`X` must have shape \(n, 4\)"):
        net.predict(params, np.ones((5, 3)))
    with pytest.raises(TypeError, match="`rng` must be a numpy.random.Generator"):
        net.sample_labels(params, X, 0)


# ----------------------------------------------------------------------------- messages name the flag
@pytest.mark.parametrize("argv, flag", [
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--seed", "-1"], "--seed"),
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--seeds", "0", "-2"], "--seeds"),
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--seconds", "inf"], "--seconds"),
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "nan", "--epochs", "1"], "--lr"),
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--momentum", "nan"], "--momentum"),
    (["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--val-size", "-5"], "--val-size"),
    (["estimators", "--seed", "-3"], "--seed"),
    (["vectors", "--out", "x", "--seed", "-1"], "--seed"),
    (["fisher", "--seed", "-1"], "--seed"),
    (["fisher", "--damping", "inf"], "--damping"),
    (["compare", "--problem", "mlp", "--out", "x", "--widen", "-1"], "--widen"),
])
def test_cli_refusals_name_the_flag(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "Traceback" not in err


def test_cli_size_guard_is_a_clean_exit(capsys):
    assert main(["estimators", "--shape", "100,100,100", "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert "estimator_study's dense covariances" in err and "smaller `shape`" in err and "Traceback" not in err


def test_found_by_the_round_two_hunt():
    """The library cases the new hunt found (docs/validation.md): each refused with its argument named."""
    X = np.random.default_rng(0).standard_normal((1, 3, 3))
    with pytest.raises(ValueError, match=r"needs at least 2 linearly independent samples .* span only 1"):
        mle(np.repeat(X, 5, axis=0))  # one sample five times: the MLE of one 3x3 sample is not unique
    assert mle(np.random.default_rng(1).standard_normal((5, 3, 3))).converged
    with pytest.raises(TypeError, match=r"`shape\[0\]` must be an integer; got 2.5"):
        tnt_ref.fold(np.ones((2, 4)), 0, (2.5, 4))
    with pytest.raises(ValueError, match="`rtol` must be a finite number"):
        tnt_ref.tnt_factors_from_moments([np.eye(2), np.eye(2)], rtol=math.nan)
    with pytest.raises(ValueError, match="`divergence_factor` must be a finite number > 1; got divergence_factor=inf"):
        run("mlp", "sgd", 0.1, epochs=1, divergence_factor=math.inf)
