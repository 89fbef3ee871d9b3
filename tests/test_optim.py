"""Optimizers: conformance table, golden TNT trajectory against a dense implementation, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tnt_ref import TNTRefWarning, kron
from tnt_ref.data import load_digits
from tnt_ref.tensor import tensor_shape
from tnt_ref.models import cnn, mlp
from tnt_ref.optim import OPTIMIZERS, TNTState, make_optimizer, tnt, tnt_warm_start
from tnt_ref.training import train_step

SAFE = {  # learning rate and keyword arguments that are stable on every small problem
    "tnt": (1e-2, dict(damping=0.3, T1=1, T2=3)),
    "tnt-ef": (1e-2, dict(damping=0.3, T1=1, T2=3)),
    "sgd": (0.05, {}),
    "adam": (1e-2, {}),
    "kfac": (1e-2, dict(damping=0.3, T1=2, T2=3)),
    "shampoo": (1e-2, dict(damping=1e-3, T1=1, T2=3)),
    "kl-shampoo": (3e-3, dict(damping=1e-3, T1=1, T2=3)),
    "soap": (1e-2, dict(T1=1, T2=3)),
}


def _problem(name, dtype, rng):
    ds = load_digits()
    if name == "quadratic":  # linear least squares: the loss is a quadratic in the parameters
        net = mlp([5, 3], "identity", "squared_error")
        X = rng.standard_normal((40, 5))
        y = X @ rng.standard_normal((5, 3)) + 0.1 * rng.standard_normal((40, 3))
    elif name == "softmax":
        net = mlp([64, 10], "tanh", "softmax_cross_entropy")
        X, y = ds.X_train[:128], ds.y_train[:128]
    else:
        net = mlp([64, 16, 10], "tanh", "softmax_cross_entropy")
        X, y = ds.X_train[:128], ds.y_train[:128]
    params = {k: v.astype(dtype) for k, v in net.init(rng).items()}
    return net, params, X.astype(dtype), (y.astype(dtype) if y.dtype.kind == "f" else y)


def _readonly(tree):
    if isinstance(tree, np.ndarray):
        t = tree.copy()
        t.flags.writeable = False
        return t
    if isinstance(tree, dict):
        return {k: _readonly(v) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*[_readonly(v) for v in tree])
    if isinstance(tree, tuple):
        return tuple(_readonly(v) for v in tree)
    return tree


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}")
    elif isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for f in tree._fields:
            yield from _leaves(getattr(tree, f), f"{prefix}/{f}")
    elif isinstance(tree, tuple):
        for i, v in enumerate(tree):
            yield from _leaves(v, f"{prefix}/{i}")
    else:
        yield prefix, tree


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("problem", ["quadratic", "softmax", "mlp"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_conformance(name, problem, dtype):
    """Loss decreases; state shapes and dtypes stable; no input mutated (read-only arrays)."""
    rng = np.random.default_rng(0)
    net, params, X, y = _problem(problem, dtype, rng)
    lr, kw = SAFE[name]
    opt = make_optimizer(name, lr, **kw)
    state = opt.init(params)
    shapes0 = {p: (np.shape(v), getattr(v, "dtype", type(v))) for p, v in _leaves(state)}
    loss0 = net.loss(params, X, y)
    for _ in range(25):
        params, state = _readonly(params), _readonly(state)
        before = {k: v.copy() for k, v in params.items()}
        _, params, state = train_step(net, opt, params, state, X, y, rng)
        for k, v in before.items():
            assert params[k] is not v
        for p, v in _leaves(state):
            assert (np.shape(v), getattr(v, "dtype", type(v))) == shapes0[p], p
        for k, v in params.items():
            assert v.dtype == dtype, k
    loss1 = net.loss(params, X, y)
    assert math.isfinite(loss1) and loss1 < 0.9 * loss0, (loss0, loss1)


def _unfold(X, i):
    return np.moveaxis(X, i, 0).reshape(X.shape[i], -1)


def dense_tnt_reference(net, params, X, y, rng, steps, *, lr, mu, beta, eps, T1, T2, gamma, conv_modes):
    """Slow TNT [RG21, Alg. 1]: explicit unfoldings, the estimator formula, a dense kron of the damped
    factors and numpy.linalg.solve. Returns the list of iterates."""
    params = {k: v.copy() for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    S = {}
    K = {}
    out = []
    m = X.shape[0]
    for t in range(steps):
        z, caches = net.forward(params, X)
        g = net.backward(params, caches, net.loss_fn.grad(z, y) / m)
        v = {k: mu * v[k] + g[k] for k in g}
        if t % T1 == 0:
            ys = net.loss_fn.sample(z, rng)
            gbar = net.backward(params, caches, net.loss_fn.grad(z, ys) / m)
            for k, p in params.items():
                G = gbar[k].reshape(tensor_shape(p.shape, conv_modes))
                new = [_unfold(G, i) @ _unfold(G, i).T for i in range(G.ndim)]
                S[k] = new if t == 0 else [beta * a + (1 - beta) * b for a, b in zip(S[k], new)]
        if t % (T1 if t < T2 else T2) == 0:
            for k, p in params.items():
                ts = tensor_shape(p.shape, conv_modes)
                kk, D = len(ts), math.prod(ts)
                tau = np.trace(S[k][0])
                c = (tau / D) ** (1 / kk)
                U = [s / (c ** (kk - 1) * D / d) for s, d in zip(S[k], ts)]
                K[k] = kron(*[u + eps * np.eye(u.shape[0]) for u in U])  # dense, damped per factor
        for k, p in params.items():
            P = np.linalg.solve(K[k], v[k].reshape(-1)).reshape(p.shape)
            params[k] = (1 - lr * gamma) * p - lr * P
        out.append({k: a.copy() for k, a in params.items()})
    return out


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_golden_trajectory_against_dense_implementation(model):
    """TNT's first 5 iterates equal the slow dense implementation's to 1e-10 (identical label draws)."""
    rng0 = np.random.default_rng(3)
    if model == "mlp":
        net = mlp([5, 4, 3], "tanh", "softmax_cross_entropy")
        X, y = rng0.standard_normal((12, 5)), rng0.integers(0, 3, 12)
    else:
        net = cnn((2, 5, 5), (3,), 3, 3, "tanh", padding=1)
        X, y = rng0.standard_normal((12, 2, 5, 5)), rng0.integers(0, 3, 12)
    params = net.init(rng0)
    hyper = dict(lr=0.05, mu=0.9, beta=0.8, eps=0.05, T1=1, T2=3, gamma=0.01, conv_modes=3)
    ref = dense_tnt_reference(net, params, X, y, np.random.default_rng(7), 5, **hyper)
    opt = tnt(hyper["lr"], momentum=hyper["mu"], decay=hyper["beta"], damping=hyper["eps"], T1=1, T2=3,
              weight_decay=hyper["gamma"], conv_modes=3)
    state = opt.init(params)
    rng = np.random.default_rng(7)
    p = params
    for t in range(5):
        _, p, state = train_step(net, opt, p, state, X, y, rng)
        for k in p:
            np.testing.assert_allclose(p[k], ref[t][k], rtol=1e-10, atol=1e-12, err_msg=f"step {t}, {k}")


def test_tnt_schedule_and_needs():
    """Statistics every T1 (t > 0 after a warm start), inverses every T1 before T2 and every T2 after."""
    opt = tnt(0.1, T1=2, T2=6, damping=0.1)
    params = {"w": np.ones((2, 3))}
    state = opt.init(params)
    state = tnt_warm_start(opt, state, params, [{"w": np.arange(6.0).reshape(2, 3)}])
    stat_steps, inv_steps = [], []
    for t in range(14):
        assert state.step == t
        need = opt.needs(state)
        sg = {"w": np.full((2, 3), 0.5 + t)} if need else None
        old = state.inverses
        _, state = opt.update({"w": np.ones((2, 3))}, state, params, sampled_grads=sg)
        if need:
            stat_steps.append(t)
        if state.inverses is not old:
            inv_steps.append(t)
    assert stat_steps == [2, 4, 6, 8, 10, 12]
    assert inv_steps == [0, 2, 4, 6, 12]


def test_warm_start_is_running_mean():
    opt = tnt(0.1)
    params = {"w": np.zeros((2, 2))}
    G = [np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 3.0]])]
    st = tnt_warm_start(opt, opt.init(params), params, [{"w": g} for g in G])
    np.testing.assert_allclose(st.stats["w"][0], np.diag([0.5, 4.5]))
    np.testing.assert_allclose(st.stats["w"][1], np.diag([0.5, 4.5]))
    with pytest.raises(ValueError, match="at least one mini-batch"):
        tnt_warm_start(opt, opt.init(params), params, [])


def test_zero_trace_guard_in_optimizer():
    """An all-zero statistics block gives K = I / eps, and a zero tensor stays put (no NaN)."""
    opt = tnt(0.1, damping=0.5, momentum=0.0)
    params = {"w": np.zeros((2, 3)), "b": np.ones(2)}
    state = opt.init(params)
    upd, state = opt.update({"w": np.zeros((2, 3)), "b": np.ones(2)}, state, params,
                            sampled_grads={"w": np.zeros((2, 3)), "b": np.ones(2)})
    assert np.all(upd["w"] == 0) and np.all(np.isfinite(upd["b"]))
    np.testing.assert_allclose(state.inverses["w"][0], np.eye(2) / 0.5)


def test_tnt_per_example_scale_and_pi_damping():
    rng = np.random.default_rng(0)
    net = mlp([4, 3, 2], "tanh")
    params = net.init(rng)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 2, 16)
    for kw in (dict(stat_scale="per-example"), dict(damping_scheme="pi")):
        opt = tnt(0.01, damping=0.3, **kw)
        state = opt.init(params)
        p = params
        loss0 = net.loss(p, X, y)
        for _ in range(10):
            _, p, state = train_step(net, opt, p, state, X, y, rng)
        assert net.loss(p, X, y) < loss0
    # per-example statistics are m times the batch-mean ones in expectation; here just the scale check
    assert isinstance(state, TNTState)


def test_missing_extra_inputs_are_clear_errors():
    opt = tnt(0.1)
    params = {"w": np.ones((2, 2))}
    with pytest.raises(ValueError, match="statistics step: pass `sampled_grads`"):
        opt.update({"w": np.ones((2, 2))}, opt.init(params), params)
    k = make_optimizer("kfac", 0.1)
    with pytest.raises(ValueError, match="pass `kfac_stats`"):
        k.update({"fc.weight": np.ones((2, 2))}, k.init({"fc.weight": np.ones((2, 2))}), {"fc.weight": np.ones((2, 2))})


@pytest.mark.parametrize(
    "name,kwargs,match",
    [
        ("tnt", dict(learning_rate=-1.0), r"`learning_rate` must be positive"),
        ("tnt", dict(learning_rate=0.1, damping=0.0), r"`damping` must be positive"),
        ("tnt", dict(learning_rate=0.1, decay=1.0), r"`decay` must be in \[0, 1\)"),
        ("tnt", dict(learning_rate=0.1, T1=0), r"`T1` must be an integer >= 1"),
        ("kfac", dict(learning_rate=0.1, T2=0), r"`T2` must be an integer >= 1"),
        ("sgd", dict(learning_rate=0.1, momentum=1.5), r"`momentum` must be in \[0, 1\)"),
        ("shampoo", dict(learning_rate=0.1, decay=-0.1), r"`decay` must be in \[0, 1\)"),
        ("adam", dict(learning_rate=0.0), r"`learning_rate` must be positive"),
        ("tnt", dict(learning_rate=0.1, stat_scale="mean"), r"`stat_scale` must be one of"),
        ("tnt", dict(learning_rate=0.1, ema="adam"), r"`ema` must be one of"),
        ("tnt", dict(learning_rate=0.1, momentum_placement="both"), r"`momentum_placement` must be one of"),
        ("tnt", dict(learning_rate=0.1, bias="row"), r"`bias` must be one of"),
        ("lbfgs", dict(learning_rate=0.1), r"unknown optimizer 'lbfgs'; valid: \['tnt', 'tnt-ef', 'sgd', 'adam', 'kfac', 'shampoo', 'kl-shampoo', 'soap'\]"),
        ("soap", dict(learning_rate=0.1, b2=1.0), r"`b2` must be in \[0, 1\)"),
        ("kl-shampoo", dict(learning_rate=0.1, damping=0.0), r"`damping` must be positive"),
    ],
)
def test_bad_hyperparameters(name, kwargs, match):
    lr = kwargs.pop("learning_rate")
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, lr, **kwargs)


def test_kl_shampoo_refuses_a_decay_that_loses_the_scale_of_3_way_kernels():
    """``decay <= (k-2)/k`` makes the factors' overall scale blow up on a k-way tensor (estimators' test)."""
    net = cnn((1, 5, 5), channels=(2,), kernel=3, n_classes=3, activation="relu")
    params = net.init(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"`decay` must exceed \(k-2\)/k = 0.333 for the 3-way tensor 'conv1.weight'"):
        make_optimizer("kl-shampoo", 1e-3, decay=0.3).init(params)
    make_optimizer("kl-shampoo", 1e-3, decay=0.3, conv_modes=2).init(params)  # 2-way kernels: any decay
    make_optimizer("kl-shampoo", 1e-3, decay=0.34).init(params)


def test_kl_shampoo_root_failure_keeps_the_previous_preconditioner():
    net = mlp([4, 3], "identity", "squared_error")
    rng = np.random.default_rng(0)
    params = net.init(rng)
    X, y = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    opt = make_optimizer("kl-shampoo", 1e-2, T1=1, T2=1)
    state = opt.init(params)
    _, params, state = train_step(net, opt, params, state, X, y, rng)
    g = {k: np.full_like(v, np.nan) for k, v in params.items()}
    with pytest.warns(TNTRefWarning) as rec:
        _, new = opt.update(g, state, params)
    assert sorted(str(w.message).split(" failed")[0] for w in rec) == [
        "KL-Shampoo: the root of 'fc1.bias'", "KL-Shampoo: the root of 'fc1.weight'"]
    for a, b in zip(new.roots["fc1.weight"], state.roots["fc1.weight"]):
        assert a is b
