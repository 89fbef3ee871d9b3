"""The small problems the theory checks run TNT on (spec section 7) [reconstructed].

Each problem has the interface :func:`proofs_check.runs.run_tnt` needs: ``n`` (examples), ``params0``,
``f(params)``, ``grad(params, idx=None)`` (full gradient, or the mini-batch mean gradient of the
batch ``idx`` with the data labels) and ``sampled_grad(params, idx, rng)`` (the mean gradient of
the batch with labels sampled from the model: TNT's statistic, used here only for the warm start;
the steps get theirs from :func:`tnt_ref.training.train_step`). A problem with a ``net`` is trained
through ``train_step``; these functions are the problem's, never the update's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tnt_ref.data import load_digits
from tnt_ref.models import Sequential, mlp

__all__ = ["flat", "SmallProblem", "softmax_regression", "tanh_mlp", "uniform_sampler", "biased_sampler"]


@dataclass
class SmallProblem:
    name: str
    net: Sequential
    X: np.ndarray
    y: np.ndarray
    params0: dict
    L_bound: float | None  # closed-form Lipschitz bound of grad f, if known
    B_bound: dict | None  # a priori bound on every sampled-gradient block's Frobenius norm, if known

    def f(self, params) -> float:
        return self.net.loss(params, self.X, self.y)

    def grad(self, params, idx=None) -> dict:
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        return self.net.loss_and_grad(params, X, y)[1]

    def per_example(self, params) -> dict:
        return self.net.per_example_grads(params, self.X, self.y)

    @property
    def n(self) -> int:
        """Number of examples the sampler draws from."""
        return int(self.X.shape[0])

    def sampled_grad(self, params, idx, rng: np.random.Generator) -> dict:
        """Mean gradient over the batch ``idx`` with labels sampled from the model (TNT's statistic)."""
        net = self.net
        z, caches = net.forward(params, self.X[idx])
        ys = net.loss_fn.sample(z, rng)
        return net.backward(params, caches, net.loss_fn.grad(z, ys) / len(idx))


def flat(d: dict) -> np.ndarray:
    """All arrays of a parameter dict as one vector (in key order)."""
    return np.concatenate([np.asarray(v).reshape(-1) for v in d.values()])


def softmax_regression(n: int, *, scale: float = 1.0) -> SmallProblem:
    """Softmax regression on the first ``n`` digits (64 inputs + bias, 10 classes), from W = 0, b = 0.

    ``scale`` multiplies the inputs (1: the digits in [0, 1]). ``L <= (1/2) lambda_max((1/n) sum x~ x~^T)``
    with ``x~ = (x, 1)``, since the softmax output Hessian ``diag(p) - p p^T <= (1/2) I`` [derived].
    Per-example gradients with any label are ``(p - e_y) x~^T``, so every sampled-gradient block
    (and every mean of them) has norm at most ``sqrt(2) max ||x||`` (weight) and ``sqrt(2)`` (bias).
    """
    ds = load_digits()
    X, y = scale * ds.X_train[:n], ds.y_train[:n]
    net = mlp([64, 10], "tanh", "softmax_cross_entropy")
    params0 = {k: np.zeros_like(v) for k, v in net.init(np.random.default_rng(0)).items()}
    Xt = np.hstack([X, np.ones((n, 1))])
    L = 0.5 * float(np.linalg.eigvalsh(Xt.T @ Xt / n)[-1])
    B = {"fc1.weight": float(np.sqrt(2) * np.linalg.norm(X, axis=1).max()), "fc1.bias": float(np.sqrt(2))}
    return SmallProblem("softmax-regression", net, X, y, params0, L, B)


def tanh_mlp(n: int) -> SmallProblem:
    """A 64-8-10 tanh MLP on the first ``n`` digits; ``L`` must be estimated (no closed form)."""
    ds = load_digits()
    net = mlp([64, 8, 10], "tanh", "softmax_cross_entropy")
    params0 = net.init(np.random.default_rng(0))
    return SmallProblem("tanh-mlp", net, ds.X_train[:n], ds.y_train[:n], params0, None, None)


def uniform_sampler(n: int, m: int) -> Callable[[np.random.Generator], np.ndarray]:
    """Mini-batches of ``m`` indices drawn uniformly with replacement (AS.2's sampler)."""
    return lambda rng: rng.integers(0, n, m)


def biased_sampler(n: int, m: int) -> Callable[[np.random.Generator], np.ndarray]:
    """Mini-batches drawn uniformly from the first tenth of the examples only: breaks AS.2."""
    return lambda rng: rng.integers(0, max(n // 10, 1), m)
