"""Host round trips inside a training step, counted (issue 14: "transfers only at the edges").

On a GPU every ``float(x)``, ``bool(x)`` or host copy of a device array synchronizes the device. CuPy
cannot count them on the CPU, but ``array-api-strict`` arrays are plain Python objects, so the same
code path run on them is instrumented here: every conversion of an array to a host value is counted.

What the counts pin: an ordinary step of every optimizer reads the host exactly twice (the loss, and
one finiteness check of all gradients together, the edges of the step); the labels of the
statistics pass are sampled on the device (only uniforms travel host -> device); the optimizers'
``update`` itself reads nothing, except on TNT's, Shampoo's and KL-Shampoo's inverse steps (every
``T2`` steps), where the scale rule's traces and the factor checks are read (KL-Shampoo's
statistics steps between them read nothing).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

array_api_strict = pytest.importorskip("array_api_strict")
from array_api_strict._array_object import Array  # noqa: E402

from tnt_ref.models import cnn, mlp  # noqa: E402
from tnt_ref.optim import OPTIMIZERS, make_optimizer  # noqa: E402
from tnt_ref.training import train_step  # noqa: E402

_HOST = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__array__", "__dlpack__")


@contextlib.contextmanager
def host_reads():
    """Count conversions of array-api-strict arrays to host values (the would-be device syncs)."""
    counts: dict[str, int] = {}
    orig = {n: getattr(Array, n) for n in _HOST}

    def wrap(name, f):
        def counted(self, *a, **k):
            counts[name] = counts.get(name, 0) + 1
            return f(self, *a, **k)
        return counted

    for n in _HOST:
        setattr(Array, n, wrap(n, orig[n]))
    try:
        yield counts
    finally:
        for n, f in orig.items():
            setattr(Array, n, f)


def _problem(kind):
    rng = np.random.default_rng(0)
    if kind == "autoencoder":
        net = mlp([6, 5, 4, 6], ["relu", "identity"], "sigmoid_cross_entropy")
        X = rng.random((8, 6))
        return net, X, X
    net = cnn((1, 5, 5), channels=(2,), kernel=3, n_classes=3, activation="relu")
    return net, rng.random((8, 1, 5, 5)), rng.integers(0, 3, 8)


def test_counter_sees_a_host_read():
    x = array_api_strict.asarray([1.0, 2.0])
    with host_reads() as c:
        float(array_api_strict.sum(x))
        bool(array_api_strict.all(x > 0))
    assert c == {"__float__": 1, "__bool__": 1}


@pytest.mark.parametrize("kind", ["autoencoder", "cnn"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_ordinary_steps_read_the_host_twice(name, kind):
    net, X, y = _problem(kind)
    rng = np.random.default_rng(1)
    params = net.init(rng, xp=array_api_strict)
    Xs, ys = array_api_strict.asarray(X), array_api_strict.asarray(y)
    T = {"T1": 1, "T2": 4} if name in ("tnt", "tnt-ef", "kfac", "shampoo", "kl-shampoo", "soap") else {}
    opt = make_optimizer(name, 1e-4, **T)
    state = opt.init(params)
    for t in range(7):
        with host_reads() as c:
            _, params, state = train_step(net, opt, params, state, Xs, ys, rng)
        inverse_step = name in ("tnt", "tnt-ef", "shampoo", "kl-shampoo", "soap") and (t < 4 or t % 4 == 0)
        if inverse_step:
            assert c.get("__float__", 0) >= 2 and "__dlpack__" not in c and "__array__" not in c, (t, c)
        else:
            # the loss and one finiteness check of all gradients; nothing else (labels sampled on the device)
            assert c == {"__float__": 2}, (name, t, c)


def test_update_alone_reads_nothing_between_inverse_steps():
    net, X, _ = _problem("autoencoder")
    rng = np.random.default_rng(2)
    params = net.init(rng, xp=array_api_strict)
    g = net.loss_and_grad(params, array_api_strict.asarray(X), array_api_strict.asarray(X))[1]
    opt = make_optimizer("tnt", 1e-4, T1=1, T2=4)
    state = opt.init(params)
    _, state = opt.update(g, state, params, sampled_grads=g)  # t = 0: an inverse step
    state = state._replace(step=5)  # past T2: 5 is neither an inverse step nor... a stats step (T1 = 1)
    with host_reads() as c:
        opt.update(g, state, params, sampled_grads=g)
    assert c == {}
