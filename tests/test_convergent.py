"""``tnt(..., schedule="convergent")``: the analysed variant of spec section 7 is a schedule of the
shipped optimizer. A dense reference written from the spec, the AS.4 property at the level of one
update, Theorem 1's step (:func:`theory_step_size`) pinned literally, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tnt_ref.models import mlp
from tnt_ref.optim import tnt, tnt_warm_start
from tnt_ref.optim import theory_step_size
from tnt_ref.tensor import kron, tensor_shape
from tnt_ref.training import train_step


def _moments(G):
    return [np.moveaxis(G, i, 0).reshape(G.shape[i], -1) @ np.moveaxis(G, i, 0).reshape(G.shape[i], -1).T
            for i in range(G.ndim)]


def _U(S, ts):
    k, D = len(ts), math.prod(ts)
    c = (float(np.trace(S[0])) / D) ** (1.0 / k)
    return [s / (c ** (k - 1) * D / d) for s, d in zip(S, ts)]


def test_convergent_schedule_matches_a_dense_reference_of_spec_section_7():
    """x_{k+1} = x_k - alpha H_k g_k, H_k = (kron_i (U_i + eps I))^{-1} from the warm start and batches 0..k-1;
    batch k's sampled-label statistics (at x_k) enter after the step. Driven through train_step."""
    rng = np.random.default_rng(0)
    net = mlp([6, 4, 3], "tanh", "softmax_cross_entropy")
    X, y = rng.standard_normal((40, 6)), rng.integers(0, 3, 40)
    params = net.init(rng)
    alpha, eps, beta, m = 0.3, 0.05, 0.8, 8
    opt = tnt(alpha, schedule="convergent", damping=eps, decay=beta)
    assert opt.hyper["momentum"] == 0.0 and opt.hyper["T1"] == opt.hyper["T2"] == 1 and opt.hyper["schedule"] == "convergent"
    batches = [rng.integers(0, 40, m) for _ in range(7)]
    w = rng.integers(0, 40, m)
    run_rng, ref_rng = np.random.default_rng(5), np.random.default_rng(5)

    def sampled(p, idx, r):
        z, caches = net.forward(p, X[idx])
        return net.backward(p, caches, net.loss_fn.grad(z, net.loss_fn.sample(z, r)) / len(idx))

    state = tnt_warm_start(opt, opt.init(params), params, [sampled(params, w, run_rng)])
    p = params
    for idx in batches:
        _, p, state = train_step(net, opt, p, state, X[idx], y[idx], run_rng)
    # the reference: same label draws (the warm start, then one draw per step in train_step's order)
    shapes = {k: tensor_shape(v.shape) for k, v in params.items()}
    G = sampled(params, w, ref_rng)
    S = {k: _moments(G[k].reshape(shapes[k])) for k in params}
    q = params
    for idx in batches:
        z = net.forward(q, X[idx])[0]
        g = net.loss_and_grad(q, X[idx], y[idx])[1]
        ys = net.loss_fn.sample(z, ref_rng)
        Gs = net.loss_and_grad(q, X[idx], ys)[1]
        H = {k: kron(*[u + eps * np.eye(u.shape[0]) for u in _U(S[k], shapes[k])]) for k in q}
        new = {k: q[k] - alpha * np.linalg.solve(H[k], g[k].reshape(-1)).reshape(q[k].shape) for k in q}
        S = {k: [beta * a + (1 - beta) * b for a, b in zip(S[k], _moments(Gs[k].reshape(shapes[k])))] for k in q}
        q = new
    for k in params:
        np.testing.assert_allclose(p[k], q[k], rtol=1e-10, atol=1e-13, err_msg=k)
        assert np.linalg.norm(p[k] - params[k]) > 1e-3  # the run moved


def test_convergent_step_does_not_read_the_current_batch_statistics():
    """AS.4 at the level of one update: the direction of step k is the same whatever batch k's
    sampled gradient; that gradient only changes the state (H_{k+1}). Algorithm 1 (T1 = 1) reads it."""
    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(3)}
    g = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    s1 = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    s2 = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    for schedule, same in (("convergent", True), ("algorithm1", False)):
        kw = {} if schedule == "convergent" else {"momentum": 0.0}
        opt = tnt(0.1, damping=0.1, schedule=schedule, **kw)
        st = tnt_warm_start(opt, opt.init(params), params, [s1])
        st = opt.update(g, st, params, sampled_grads=s1)[1]  # step 0 (Algorithm 1: no statistics at t = 0)
        u1, n1 = opt.update(g, st, params, sampled_grads=s1)
        u2, n2 = opt.update(g, st, params, sampled_grads=s2)
        assert all(np.array_equal(u1[k], u2[k]) for k in params) is same, schedule
        assert not all(np.array_equal(a, b) for a, b in zip(n1.stats["w"], n2.stats["w"]))


def test_default_schedule_is_unchanged():
    opt = tnt(0.1)
    assert "schedule" not in opt.hyper
    assert (opt.hyper["momentum"], opt.hyper["T1"], opt.hyper["T2"]) == (0.9, 1, 20)
    assert tnt(0.1, momentum=0.5, T1=3, T2=7).hyper["T1"] == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="algorithm2"), r"`schedule` must be one of \['algorithm1', 'convergent'\]; got schedule='algorithm2'"),
    (dict(schedule="convergent", momentum=0.9), r"schedule='convergent' \(spec section 7\) has momentum = 0.0; got momentum=0.9"),
    (dict(schedule="convergent", T1=2), r"has T1 = 1; got T1=2\. Leave `T1` out, or use schedule='algorithm1'"),
    (dict(schedule="convergent", T2=20), r"has T2 = 1; got T2=20"),
    (dict(schedule="convergent", weight_decay=1e-4), r"has weight_decay = 0.0; got weight_decay=0.0001"),
    (dict(schedule="convergent", momentum=True), r"has momentum = 0.0; got momentum=True"),
])
def test_convergent_schedule_refuses_what_it_fixes(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tnt(0.1, **kwargs)


def test_convergent_schedule_accepts_the_values_it_fixes_and_needs_statistics_every_step():
    opt = tnt(0.1, schedule="convergent", momentum=0.0, T1=1, T2=np.int64(1), weight_decay=0.0)
    params = {"w": np.ones((2, 3))}
    st = opt.init(params)
    for _ in range(3):
        assert opt.needs(st) == {"sampled_grads"}
        st = opt.update({"w": np.ones((2, 3))}, st, params, sampled_grads={"w": np.ones((2, 3))})[1]
    with pytest.raises(ValueError, match="TNT step 3 is a statistics step: pass `sampled_grads`"):
        opt.update({"w": np.ones((2, 3))}, st, params)


def test_theory_step_size_literal():
    """Spec section 7 by hand: shapes (2, 3) and (4,), B = (6, 2), eps = 0.5, L = 3: kappa_hi = 0.5^-2 = 4,
    kappa_lo = min(1/((2 sqrt6 + .5)(3 sqrt6 + .5)), 1/(4 + .5)), step = kappa_lo / (3 * 16)."""
    c = theory_step_size({"w": np.zeros((2, 3)), "b": np.zeros(4)}, damping=0.5, lipschitz=3.0, grad_bound={"w": 6.0, "b": 2.0})
    r6 = 6 ** 0.5
    lo = min(1 / ((2 * r6 + 0.5) * (3 * r6 + 0.5)), 1 / 4.5)
    assert c.kappa_hi == 4.0
    assert c.kappa_lo == pytest.approx(lo, rel=1e-14)
    assert c.step == pytest.approx(lo / 48, rel=1e-14)


@pytest.mark.parametrize("kwargs, match", [
    (dict(damping=0.0), r"`damping` must be positive"),
    (dict(lipschitz=-1.0), r"`lipschitz` must be positive"),
    (dict(grad_bound={"v": 1.0}), r"`grad_bound` must be a dict with one bound per parameter \['w'\]; got \['v'\]"),
    (dict(grad_bound={"w": float("nan")}), r"`grad_bound\['w'\]` must be non-negative and finite"),
])
def test_theory_step_size_refusals(kwargs, match):
    base = dict(damping=0.5, lipschitz=1.0, grad_bound={"w": 1.0})
    with pytest.raises(ValueError, match=match):
        theory_step_size({"w": np.zeros((2, 3))}, **{**base, **kwargs})
