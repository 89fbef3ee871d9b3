"""Layers, losses and networks: finite differences, loop oracles, label enumeration, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tnt_ref.models import ACTIVATIONS, Conv2d, cnn, from_spec, get_loss, mlp

from .conftest import np_, on

LOSS_LABELS = {
    "softmax_cross_entropy": lambda rng, n, c: rng.integers(0, c, n),
    "sigmoid_cross_entropy": lambda rng, n, c: rng.random((n, c)),
    "squared_error": lambda rng, n, c: rng.standard_normal((n, c)),
}


def _perturbed(net, rng, scale=0.3):
    return {k: v + scale * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}


def fd_check(net, params, X, y, rng, n_dirs=3):
    """Directional derivative by central differences vs <grad, v> for random directions (autograd style)."""
    _, g = net.loss_and_grad(params, X, y)
    for _ in range(n_dirs):
        v = {k: rng.standard_normal(p.shape) for k, p in params.items()}
        h = 1e-6
        lp = net.loss({k: params[k] + h * v[k] for k in params}, X, y)
        lm = net.loss({k: params[k] - h * v[k] for k in params}, X, y)
        fd = (lp - lm) / (2 * h)
        an = sum(float(np.sum(g[k] * v[k])) for k in params)
        assert fd == pytest.approx(an, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSS_LABELS))
def test_mlp_gradients_finite_differences(rng, activation, loss):
    net = mlp([5, 4, 3], activation, loss)
    params = _perturbed(net, rng)
    X = rng.standard_normal((6, 5))
    y = LOSS_LABELS[loss](rng, 6, 3)
    fd_check(net, params, X, y, rng)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (1, 1)])
def test_cnn_gradients_finite_differences(rng, stride, padding):
    net = cnn((2, 7, 6), channels=(3, 2), kernel=3, n_classes=4, activation="tanh", stride=stride, padding=padding)
    params = _perturbed(net, rng)
    X = rng.standard_normal((4, 2, 7, 6))
    fd_check(net, params, X, rng.integers(0, 4, 4), rng)


def conv_loop(x, W, b, stride, padding):
    """Direct loop implementation of 2-D cross-correlation (the oracle)."""
    n, c, h, w = x.shape
    co, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1
    out = np.zeros((n, co, ho, wo))
    for i, o, r, s in itertools.product(range(n), range(co), range(ho), range(wo)):
        patch = xp[i, :, r * stride : r * stride + kh, s * stride : s * stride + kw]
        out[i, o, r, s] = np.sum(patch * W[o]) + b[o]
    return out


@pytest.mark.parametrize("stride,padding,kernel", [(1, 0, 3), (2, 1, 3), (1, 2, (2, 3))])
def test_conv_forward_against_loop(xp, rng, stride, padding, kernel):
    conv = Conv2d("c", 3, 4, kernel, stride=stride, padding=padding)
    p = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in conv.init(rng).items()}
    x = rng.standard_normal((2, 3, 6, 7))
    z, _ = conv.forward({k: on(xp, v) for k, v in p.items()}, on(xp, x))
    np.testing.assert_allclose(np_(z), conv_loop(x, p["c.weight"], p["c.bias"], stride, padding), rtol=1e-12, atol=1e-12)


def test_conv_backward_is_adjoint(rng):
    """<conv(x), g> derivative: input gradient from col2im equals the loop's transpose action."""
    conv = Conv2d("c", 2, 3, 3, stride=2, padding=1)
    p = conv.init(rng)
    x = rng.standard_normal((2, 2, 5, 6))
    z, cache = conv.forward(p, x)
    g = rng.standard_normal(z.shape)
    gx, grads = conv.backward(p, cache, g, per_example=False)
    v = rng.standard_normal(x.shape)
    h = 1e-6
    fd = (np.sum(conv_loop(x + h * v, p["c.weight"], p["c.bias"], 2, 1) * g) - np.sum(conv_loop(x - h * v, p["c.weight"], p["c.bias"], 2, 1) * g)) / (2 * h)
    assert np.sum(gx * v) == pytest.approx(fd, rel=1e-7)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_per_example_grads_sum_to_batch_gradient(xp, rng, model):
    if model == "mlp":
        net, X, y = mlp([6, 5, 3], "relu"), rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    else:
        net, X, y = cnn((1, 6, 6), (2,), 3, 3, "tanh", padding=1), rng.standard_normal((8, 1, 6, 6)), rng.integers(0, 3, 8)
    params = {k: on(xp, v) for k, v in _perturbed(net, rng).items()}
    Xx = on(xp, X)
    yx = xp.asarray(y)
    _, g = net.loss_and_grad(params, Xx, yx)
    pe = net.per_example_grads(params, Xx, yx)
    fac = net.per_example_grads_factored(params, Xx, yx)
    for k in params:
        assert tuple(pe[k].shape) == (8, *params[k].shape)
        np.testing.assert_allclose(np_(xp.sum(pe[k], axis=0)) / 8, np_(g[k]), rtol=1e-12, atol=1e-15)
        f = fac[k].materialize() if hasattr(fac[k], "materialize") else fac[k]
        np.testing.assert_allclose(np_(f), np_(pe[k]), rtol=1e-12, atol=1e-15)


def test_strict_backend_matches_numpy(rng):
    from tnt_ref.backend import namespace_for

    xs = namespace_for("array-api-strict")
    net = cnn((1, 6, 6), (2,), 3, 3, "sigmoid", padding=1)
    params = _perturbed(net, rng)
    X, y = rng.standard_normal((5, 1, 6, 6)), rng.integers(0, 3, 5)
    l1, g1 = net.loss_and_grad(params, X, y)
    l2, g2 = net.loss_and_grad({k: on(xs, v) for k, v in params.items()}, on(xs, X), xs.asarray(y))
    assert l1 == pytest.approx(l2, rel=1e-13)
    for k in g1:
        np.testing.assert_allclose(np_(g2[k]), g1[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", sorted(LOSS_LABELS))
def test_output_fisher_is_expected_score_outer_product(rng, loss):
    """Lambda(x) = E_y[grad_z grad_z^T] by enumeration (softmax, Bernoulli) or exactly (Gaussian); and S S^T = Lambda."""
    L = get_loss(loss)
    C = 3
    z = rng.standard_normal((4, C))
    Lam = L.fisher(z)
    S = L.fisher_sqrt(z)
    np.testing.assert_allclose(np.einsum("ncr,ndr->ncd", S, S), Lam, rtol=1e-12, atol=1e-15)
    if loss == "softmax_cross_entropy":
        p = L.probs(z)
        ref = sum(p[:, c, None, None] * np.einsum("nc,nd->ncd", *(2 * [L.grad(z, np.full(4, c))])) for c in range(C))
    elif loss == "sigmoid_cross_entropy":
        p = L.probs(z)
        ref = 0
        for bits in itertools.product([0.0, 1.0], repeat=C):
            y = np.tile(bits, (4, 1))
            w = np.prod(np.where(y == 1, p, 1 - p), axis=1)
            g = L.grad(z, y)
            ref = ref + w[:, None, None] * np.einsum("nc,nd->ncd", g, g)
    else:
        ref = np.broadcast_to(np.eye(C), (4, C, C))  # E[(z - y)(z - y)^T] = I for y ~ N(z, I)
    np.testing.assert_allclose(Lam, ref, rtol=1e-12, atol=1e-15)


def test_losses_against_direct_formulas(rng):
    z = rng.standard_normal((5, 4))
    y = rng.integers(0, 4, 5)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(get_loss("softmax_cross_entropy").loss(z, y), -np.log(p[np.arange(5), y]), rtol=1e-12)
    t = rng.random((5, 4))
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(
        get_loss("sigmoid_cross_entropy").loss(z, t), -(t * np.log(s) + (1 - t) * np.log(1 - s)).sum(1), rtol=1e-12
    )
    big = np.array([[800.0, -800.0]])
    assert np.all(np.isfinite(get_loss("sigmoid_cross_entropy").loss(big, np.array([[0.0, 1.0]]))))
    assert np.all(np.isfinite(get_loss("softmax_cross_entropy").loss(big, np.array([1]))))


def test_label_sampling_frequencies(rng):
    """Sampled labels follow p(.|x): frequencies within 5 standard errors."""
    z = np.array([[0.0, 1.0, -1.0]])
    L = get_loss("softmax_cross_entropy")
    p = L.probs(z)[0]
    n = 20000
    ys = np.concatenate([L.sample(z, rng) for _ in range(n)])
    freq = np.bincount(ys, minlength=3) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n))
    B = get_loss("sigmoid_cross_entropy")
    zb = np.tile([[0.5, -2.0]], (n, 1))
    pb = B.probs(zb[:1])[0]
    assert np.all(np.abs(B.sample(zb, rng).mean(0) - pb) <= 5 * np.sqrt(pb * (1 - pb) / n))


def test_from_spec_roundtrip():
    net = mlp([4, 3, 2], "relu", "sigmoid_cross_entropy")
    again = from_spec(net.to_json())
    assert again.param_shapes == net.param_shapes and again.spec == net.spec
    c = cnn()
    assert from_spec(c.spec).param_shapes == c.param_shapes
    assert list(net.param_shapes) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_bad_input_messages(rng):
    net = mlp([4, 3, 2], "tanh", "softmax_cross_entropy")
    params = net.init(rng)
    with pytest.raises(ValueError, match=r"`X` must have shape \(n, 4\) for this model; got \(3, 5\)"):
        net.loss(params, np.zeros((3, 5)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"labels `y` must lie in \[0, 1\] for 2 classes; got min 0, max 2"):
        net.loss(params, np.zeros((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"`y` must have shape \(3,\)"):
        net.loss(params, np.zeros((3, 4)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="NaN or Inf"):
        net.loss(params, np.full((3, 4), np.nan), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match=r"unknown activation 'gelu'; valid: \['identity', 'relu', 'sigmoid', 'tanh'\]"):
        mlp([4, 2], "gelu")
    with pytest.raises(ValueError, match="unknown loss 'hinge'; valid"):
        mlp([4, 2], "tanh", "hinge")
    with pytest.raises(ValueError, match=r"parameter 'fc1.weight' has shape \(3, 3\), expected \(3, 4\)"):
        net.loss_and_grad({**params, "fc1.weight": np.zeros((3, 3))}, np.zeros((3, 4)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="missing"):
        net.loss_and_grad({"fc1.weight": params["fc1.weight"]}, np.zeros((3, 4)), np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="integer class indices"):
        net.loss(params, np.zeros((3, 4)), np.zeros(3))
    ae = mlp([4, 2, 4], "relu", "sigmoid_cross_entropy")
    with pytest.raises(ValueError, match=r"targets `y` must lie in \[0, 1\]"):
        ae.loss(ae.init(rng), np.zeros((2, 4)), np.full((2, 4), 2.0))
