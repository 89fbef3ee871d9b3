"""CuPy on a GPU (issue 14): the safeguards that only a GPU can exercise. Skipped without one.

Every test here has ``cupy`` in its name, so ``pytest -k cupy`` (what ``benchmarks/gpu_check.sh``
runs on a lent GPU machine) selects them together with the ``xp``-parametrized suite's CuPy cases.
"""

from __future__ import annotations

import numpy as np
import pytest

from tnt_ref.backend import cupy_available, namespace_for, to_numpy

pytestmark = pytest.mark.skipif(not cupy_available(), reason="CuPy with a GPU is not available")


@pytest.fixture
def cp():
    return namespace_for("cupy")


def test_cupy_zero_statistics_block_no_nan(cp):
    """An all-zero statistics block (cupy#6539: eigh of a zero matrix returned NaN) stays finite."""
    from tnt_ref.kronecker import KroneckerMatrix, safe_eigh
    from tnt_ref.optim import tnt

    lam, Q = safe_eigh(cp.zeros((4, 4)))
    assert np.all(to_numpy(lam) == 0) and np.allclose(to_numpy(Q), np.eye(4))
    Y = KroneckerMatrix([cp.zeros((3, 3)), cp.zeros((2, 2))]).solve_damped(cp.ones((3, 2)), 0.5)
    assert np.allclose(to_numpy(Y), 2.0)
    params = {"w": cp.zeros((3, 2)), "b": cp.ones(3)}
    opt = tnt(1e-2, damping=1e-3, T1=1, T2=1)
    st = opt.init(params)
    zeros = {k: cp.zeros_like(v) for k, v in params.items()}
    upd, st = opt.update(zeros, st, params, sampled_grads=zeros)
    assert all(np.all(np.isfinite(to_numpy(v))) for v in upd.values())
    assert all(np.allclose(to_numpy(K), np.eye(K.shape[0]) / 1e-3) for K in st.inverses["w"])


@pytest.mark.parametrize(("damping", "lr", "tol"), [(1e-2, 1e-3, 1e-4), (1e-4, 1e-5, 1e-2)])
def test_cupy_float32_tnt_matches_numpy_float64(cp, damping, lr, tol):
    """float32 TNT on the GPU follows float64 NumPy within float32 round-off, for small damping too.

    Tolerances: NumPy float32 on the CPU deviates from float64 by 8e-7 (damping 1e-2) and 7e-4
    (damping 1e-4, where the inverses amplify round-off) after these 8 steps; the tolerances are more than ten times that."""
    from tnt_ref.models import mlp
    from tnt_ref.optim import tnt
    from tnt_ref.training import train_step

    rng0 = np.random.default_rng(0)
    net = mlp([16, 12, 4, 12, 16], ["relu", "identity", "relu"], "sigmoid_cross_entropy")
    p64 = net.init(rng0)
    X = rng0.random((64, 16))
    runs = {}
    for name, xp, dt in (("np64", namespace_for("numpy"), np.float64), ("cp32", cp, cp.float32)):
        rng = np.random.default_rng(1)
        params = {k: xp.asarray(v, dtype=dt) for k, v in p64.items()}
        Xb = xp.asarray(X, dtype=dt)
        opt = tnt(lr, damping=damping, T1=1, T2=5)
        st = opt.init(params)
        for _ in range(8):
            loss, params, st = train_step(net, opt, params, st, Xb, Xb, rng)
        runs[name] = (loss, {k: to_numpy(v).astype(np.float64) for k, v in params.items()})
    assert np.isfinite(runs["cp32"][0])
    for k in p64:
        a, b = runs["np64"][1][k], runs["cp32"][1][k]
        assert np.linalg.norm(a - b) <= tol * max(np.linalg.norm(a), 1.0), k


def test_cupy_float64_step_equals_numpy(cp):
    """A float64 step on the GPU equals the CPU step to 1e-10 (same sampled labels: uniforms from one rng)."""
    from tnt_ref.models import mlp
    from tnt_ref.optim import make_optimizer
    from tnt_ref.training import train_step

    net = mlp([8, 6, 3], "tanh", "softmax_cross_entropy")
    rng0 = np.random.default_rng(3)
    p = net.init(rng0)
    X, y = rng0.random((20, 8)), rng0.integers(0, 3, 20)
    for name in ("tnt", "kfac", "shampoo", "adam", "sgd", "kl-shampoo", "soap"):
        out = []
        for xp in (namespace_for("numpy"), cp):
            rng = np.random.default_rng(4)
            params = {k: xp.asarray(v) for k, v in p.items()}
            opt = make_optimizer(name, 1e-3)
            st = opt.init(params)
            for _ in range(3):
                _, params, st = train_step(net, opt, params, st, xp.asarray(X), xp.asarray(y), rng)
            out.append({k: to_numpy(v) for k, v in params.items()})
        for k in p:
            np.testing.assert_allclose(out[1][k], out[0][k], rtol=1e-10, atol=1e-12, err_msg=f"{name} {k}")


def test_cupy_update_does_not_synchronize(cp):
    """The optimizer's update between inverse steps makes no host round trip (cupyx.allow_synchronize)."""
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize (deprecated since v10); the CPU count in test_transfers.py stands")
    from tnt_ref.models import mlp
    from tnt_ref.optim import make_optimizer

    net = mlp([8, 6, 8], ["relu"], "sigmoid_cross_entropy")
    params = net.init(np.random.default_rng(0), xp=cp)
    X = cp.asarray(np.random.default_rng(1).random((16, 8)))
    g = net.loss_and_grad(params, X, X)[1]
    opt = make_optimizer("tnt", 1e-3, T1=1, T2=4)
    st = opt.init(params)
    _, st = opt.update(g, st, params, sampled_grads=g)
    st = st._replace(step=5)
    with cupyx.allow_synchronize(False):
        opt.update(g, st, params, sampled_grads=g)


def test_cupy_training_run_backend_flag(tmp_path):
    """``training.run(..., backend="cupy")`` trains and its history matches the NumPy run closely."""
    from tnt_ref.training import run

    h = {b: run("mlp", "tnt", 1e-4, epochs=1, backend=b).history[-1] for b in ("numpy", "cupy")}
    assert abs(h["cupy"]["train_loss"] - h["numpy"]["train_loss"]) <= 1e-8 * abs(h["numpy"]["train_loss"])
