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
from tnt_ref.tensor import tensor_shape
from tnt_ref.models import Sequential, mlp
from tnt_ref.tensor import _mode_products, mode_products, unfold
from tnt_ref.tensor_normal import tnt_factors_from_moments

__all__ = ["flat", "SmallProblem", "softmax_regression", "tanh_mlp", "run_variant", "VariantTrace", "uniform_sampler", "precondition"]


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
    batches: list = field(default_factory=list)  # idx_k, the mini-batch of step k (index array)
    grads: list = field(default_factory=list)  # g_k = prob.grad(x_k, idx_k), the gradient the step used (dicts)
    directions: list = field(default_factory=list)  # H_k g_k as applied by the step (dicts)
    alpha: float = 0.0  # the step size of the run
    eps: float = 0.0  # the damping of the run


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
    trace = VariantTrace(alpha=float(alpha), eps=float(eps))
    # statistics start from one independent batch at x_0 (the warm start)
    idx0 = sampler(rng_batch)
    G = prob.sampled_grad(params, idx0, rng_label)
    S = {k: _sample_moments(G[k], shapes[k]) for k in params}
    trace.grad_norms = {k: float(np.linalg.norm(G[k])) for k in params}
    for k in range(N):
        idx = batches[k] if batches is not None else sampler(rng_batch)
        if stats == "before":  # Algorithm 1 with T1 = 1: the current batch enters H_k
            G = prob.sampled_grad(params, idx, rng_label)
            S = {p: [beta * s + (1 - beta) * mm for s, mm in zip(S[p], _sample_moments(G[p], shapes[p]))] for p in params}
            for p in params:
                trace.grad_norms[p] = max(trace.grad_norms[p], float(np.linalg.norm(G[p])))
        U = {p: tnt_factors_from_moments(S[p]) for p in params}
        K = {p: _damped_inverses(U[p], eps) for p in params}
        g = prob.grad(params, idx)
        if choose_inverses is not None:  # H_k chosen from the current g_k: breaks AS.4 on purpose
            K = choose_inverses(k, params, g, K)
        step = {p: precondition(g[p], K[p], shapes[p]) for p in params}  # H_k g_k, block by block
        if record:
            trace.iterates.append(params)
            trace.factors.append(U)
            trace.inverses.append(K)
            trace.batches.append(np.asarray(idx).copy())
            trace.grads.append(g)
            trace.directions.append(step)
        new = _update(params, step, alpha)
        if stats == "after":  # statistics of batch k enter H_{k+1} only
            G = prob.sampled_grad(params, idx, rng_label)
            S = {p: [beta * s + (1 - beta) * mm for s, mm in zip(S[p], _sample_moments(G[p], shapes[p]))] for p in params}
            for p in params:
                trace.grad_norms[p] = max(trace.grad_norms[p], float(np.linalg.norm(G[p])))
        params = new
        if not all(np.all(np.isfinite(v)) for v in params.values()):
            trace.stopped = True  # H_k did not exist (no damping, singular factor): nothing to iterate on
            break
    trace.iterates.append(params)
    return trace


def _sample_moments(g, tshape) -> list:
    """``G_(i) G_(i)^T`` of one sampled gradient block, in IEEE arithmetic.

    Not :func:`tnt_ref.tensor_normal.mode_moments`, which refuses moments that underflow: a run
    whose gradients shrink below ``1e-154`` (a diverging control, saturated units) must still be
    recorded, and its statistics are then zero, as the step would compute them.
    """
    G = np.reshape(g, tshape)
    with np.errstate(under="ignore"):
        return [unfold(G, i) @ unfold(G, i).T for i in range(G.ndim)]


def _damped_inverses(us, eps: float) -> list:
    """``K_i = (U_i + eps I)^{-1}`` (plain inverses, infinite where singular, when ``eps = 0``)."""
    with np.errstate(all="ignore"):
        return [np.linalg.inv(u + eps * np.eye(u.shape[0])) if eps > 0 else _inv_or_inf(u) for u in us]


def precondition(g: np.ndarray, K: list, tshape: tuple, *, batched: bool = False) -> np.ndarray:
    """``H g = g x_1 K_1 ... x_k K_k`` for one block: the step's own map (AS.3 probes it on basis vectors).

    ``batched=True``: ``g`` is a stack ``(n, ...)`` mapped one by one. A block whose ``K_i`` are not
    all finite (singular factor without damping) maps to ``inf``: ``H_k`` does not exist.
    """
    if not all(np.all(np.isfinite(x)) for x in K):
        return np.full(np.shape(g), np.inf)
    g = np.asarray(g)
    if batched:
        return _mode_products(g.reshape(g.shape[0], *tshape), K, offset=1).reshape(g.shape)
    return mode_products(g.reshape(tshape), K).reshape(g.shape)


def _update(params: dict, step: dict, alpha: float) -> dict:
    """``x_{k+1} = x_k - alpha H_k g_k``."""
    return {p: params[p] - alpha * step[p] for p in params}


def _inv_or_inf(u):
    try:
        inv = np.linalg.inv(u)
    except np.linalg.LinAlgError:
        return np.full(u.shape, np.inf)
    return inv
