"""The analysed TNT variant (spec section 7) [reconstructed], and the small problems the checks use.

Convergent variant: ``x_{k+1} = x_k - alpha H_k g_k`` with ``g_k`` the gradient of a mini-batch
mean loss (data labels), no momentum, ``H_k = blockdiag_l kron_i (U_{l,i} + eps I)^{-1}`` built
from statistics of batches *before* ``k``; the statistics take the sampled-label gradient of batch
``k`` only after the step (``stats="after"``). ``stats="before"`` is Algorithm 1 with ``T1 = 1``
(the statistics include the current batch), the negative control of AS.4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tnt_ref.data import load_digits
from tnt_ref.fisher import tensor_shape
from tnt_ref.models import Sequential, mlp
from tnt_ref.tensor import mode_products
from tnt_ref.tensor_normal import mode_moments, tnt_factors_from_moments

__all__ = ["flat", "SmallProblem", "softmax_regression", "tanh_mlp", "run_variant", "VariantTrace", "uniform_sampler"]


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
    return np.concatenate([v.reshape(-1) for v in d.values()])


def softmax_regression(n: int) -> SmallProblem:
    """Softmax regression on the first ``n`` digits (64 inputs + bias, 10 classes), from W = 0, b = 0.

    ``L <= (1/2) lambda_max((1/n) sum x~ x~^T)`` with ``x~ = (x, 1)``, since the softmax output
    Hessian ``diag(p) - p p^T <= (1/2) I`` [derived]. Per-example gradients with any label are
    ``(p - e_y) x~^T``, so every sampled-gradient block (and every mean of them) has norm at most
    ``sqrt(2) max ||x||`` (weight) and ``sqrt(2)`` (bias).
    """
    ds = load_digits()
    X, y = ds.X_train[:n], ds.y_train[:n]
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


@dataclass
class VariantTrace:
    """What one run of the variant recorded, per step ``k`` (0-based)."""

    iterates: list = field(default_factory=list)  # x_k (dicts), k = 0..N
    factors: list = field(default_factory=list)  # U used in H_k: dict name -> list of (d_i, d_i)
    inverses: list = field(default_factory=list)  # K_i used in H_k: dict name -> list
    grad_norms: dict = field(default_factory=dict)  # name -> max ||Gbar|| over all statistics batches
    stopped: bool = False  # the run stopped early on a non-finite iterate


def run_variant(
    prob,
    *,
    N: int,
    m: int,
    alpha: float,
    eps: float,
    beta: float = 0.9,
    seed: int = 0,
    stats: str = "after",
    sampler: Callable | None = None,
    batches: list | None = None,
    record: bool = True,
    choose_inverses: Callable | None = None,
) -> VariantTrace:
    """Run ``N`` steps of the convergent variant; ``batches`` fixes the mini-batch of each step.

    ``prob`` is a :class:`SmallProblem` or any object with the same interface: ``n``, ``params0``,
    ``f(params)``, ``grad(params, idx)`` (mini-batch mean gradient, data labels) and
    ``sampled_grad(params, idx, rng)`` (the statistics' gradient).

    ``eps = 0`` is allowed here (AS.3's negative control): the inverses are then plain inverses of
    possibly singular factors (infinite where ``inv`` fails).

    ``choose_inverses(k, params, g, K) -> K'`` (default none) replaces the factor inverses of
    ``H_k`` *after* ``g_k`` is drawn, so ``H_k`` may depend on ``g_k``: AS.4's negative control on
    the tight instance (:mod:`proofs_check.tight`). ``trace.inverses`` then records ``K'``.
    """
    n = prob.n
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"`N` (iterations) must be a positive int; got N={N!r}.")
    if not isinstance(m, int) or not 1 <= m <= n:
        raise ValueError(f"`m` (mini-batch size) must be in [1, {n}] for {n} examples; got m={m!r}.")
    if not alpha > 0 or eps < 0:
        raise ValueError(f"`alpha` must be positive and `eps` non-negative; got alpha={alpha!r}, eps={eps!r}.")
    if stats not in ("after", "before"):
        raise ValueError(f"`stats` must be 'after' (the analysed variant) or 'before' (Algorithm 1, T1 = 1); got {stats!r}.")
    rng_batch = np.random.default_rng(seed)
    rng_label = np.random.default_rng(seed + 10_000)
    sampler = sampler or uniform_sampler(n, m)
    params = {k: v.copy() for k, v in prob.params0.items()}
    shapes = {k: tensor_shape(v.shape) for k, v in params.items()}
    trace = VariantTrace()
    # statistics start from one independent batch at x_0 (the warm start)
    idx0 = sampler(rng_batch)
    G = prob.sampled_grad(params, idx0, rng_label)
    S = {k: mode_moments(G[k].reshape(1, *shapes[k])) for k in params}
    trace.grad_norms = {k: float(np.linalg.norm(G[k])) for k in params}
    for k in range(N):
        idx = batches[k] if batches is not None else sampler(rng_batch)
        if stats == "before":  # Algorithm 1 with T1 = 1: the current batch enters H_k
            G = prob.sampled_grad(params, idx, rng_label)
            S = {p: [beta * s + (1 - beta) * mm for s, mm in zip(S[p], mode_moments(G[p].reshape(1, *shapes[p])))] for p in params}
            for p in params:
                trace.grad_norms[p] = max(trace.grad_norms[p], float(np.linalg.norm(G[p])))
        U = {p: tnt_factors_from_moments(S[p]) for p in params}
        with np.errstate(all="ignore"):
            K = {p: [np.linalg.inv(u + eps * np.eye(u.shape[0])) if eps > 0 else _inv_or_inf(u) for u in U[p]] for p in params}
        if record:
            trace.iterates.append(params)
            trace.factors.append(U)
            trace.inverses.append(K)
        g = prob.grad(params, idx)
        if choose_inverses is not None:  # H_k chosen from the current g_k: breaks AS.4 on purpose
            K = choose_inverses(k, params, g, K)
            if record:
                trace.inverses[-1] = K
        step = {}
        for p in params:
            if all(np.all(np.isfinite(x)) for x in K[p]):
                step[p] = mode_products(g[p].reshape(shapes[p]), K[p]).reshape(params[p].shape)  # H_k g_k, block p
            else:  # a singular factor without damping: H_k does not exist
                step[p] = np.full(params[p].shape, np.inf)
        new = {p: params[p] - alpha * step[p] for p in params}
        if stats == "after":  # statistics of batch k enter H_{k+1} only
            G = prob.sampled_grad(params, idx, rng_label)
            S = {p: [beta * s + (1 - beta) * mm for s, mm in zip(S[p], mode_moments(G[p].reshape(1, *shapes[p])))] for p in params}
            for p in params:
                trace.grad_norms[p] = max(trace.grad_norms[p], float(np.linalg.norm(G[p])))
        params = new
        if not all(np.all(np.isfinite(v)) for v in params.values()):
            trace.stopped = True  # H_k did not exist (no damping, singular factor): nothing to iterate on
            break
    trace.iterates.append(params)
    return trace


def _inv_or_inf(u):
    try:
        inv = np.linalg.inv(u)
    except np.linalg.LinAlgError:
        return np.full(u.shape, np.inf)
    return inv
