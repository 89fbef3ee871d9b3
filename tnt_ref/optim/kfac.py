"""KFAC (Martens & Grosse 2015; KFC for convolutions, Grosse & Martens 2016) as the authors' baseline.

Per weight ``W`` (kernels as ``(C_out, C_in*kh*kw)``), row-major ``vec``: block ``~ G kron A`` with
EMA statistics from sampled labels (spec sections 4 and 6)::

    every T1 steps:  A = beta A + (1-beta) A_batch,  G = beta G + (1-beta) G_batch
    every T2 steps:  A_inv = (A + sqrt(lambda) I)^{-1},  G_inv = (G + sqrt(lambda) I)^{-1}
    v = mu v + g;    P = G_inv V A_inv  (V: v as a matrix);    W = (1 - alpha gamma) W - alpha P

Choices, named: momentum before preconditioning (the same order as TNT, so the two differ only in
the curvature model); per-factor damping ``sqrt(lambda)`` as the authors' KFAC; biases as separate
blocks preconditioned by ``(G + lambda I)^{-1}`` (their exact Fisher block for a linear layer);
statistics at per-example scale (``A_batch = mean a a^T``, ``G_batch = mean delta delta^T`` with the
per-example loss), so ``G kron A`` estimates ``F``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._validation import check_param_dict, linalg_errors
from ..backend import get_namespace
from .base import Optimizer, check_hyper

_MORE_DAMPING = "the damped factor is singular to working precision: use more damping (a larger `damping`)."

__all__ = ["KFACState", "kfac"]


class KFACState(NamedTuple):
    """State of :func:`kfac`.

    step:      int, updates done
    n_stats:   int, statistics updates so far
    momentum:  dict name -> array (parameter shape)
    A, G:      dict weight-or-bias name -> ``(in, in)`` / ``(out, out)`` EMA factors (biases: only ``G``)
    A_inv, G_inv: dict of the damped inverses
    """

    step: int
    n_stats: int
    momentum: dict
    A: dict
    G: dict
    A_inv: dict
    G_inv: dict


def _weight_bias(params: dict) -> tuple[list[str], dict[str, str]]:
    """Weights (2-D or 4-D) and, for each bias, the weight of its layer."""
    weights = [k for k, p in params.items() if p.ndim in (2, 4)]
    bias_of = {}
    for k, p in params.items():
        if p.ndim == 1:
            w = k.rsplit(".", 1)[0] + ".weight"
            if w not in params:
                raise ValueError(f"KFAC needs a weight for bias {k!r}; no parameter {w!r}.")
            bias_of[k] = w
    return weights, bias_of


def kfac(
    learning_rate: float,
    *,
    momentum: float = 0.9,
    decay: float = 0.9,
    damping: float = 1e-2,
    T1: int = 1,
    T2: int = 20,
    weight_decay: float = 0.0,
) -> Optimizer:
    """KFAC; ``update(grads, state, params, *, kfac_stats=None)`` with ``kfac_stats: weight -> (G_batch, A_batch)``."""
    check_hyper(learning_rate=learning_rate, momentum=momentum, decay=decay, damping=damping,
                weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, mu, beta, lam, gamma = float(learning_rate), float(momentum), float(decay), float(damping), float(weight_decay)
    root = math.sqrt(lam)

    def init(params: dict) -> KFACState:
        check_param_dict(params)
        weights, bias_of = _weight_bias(params)
        A, G = {}, {}
        for k in weights:
            xp = get_namespace(params[k])
            out, inn = params[k].shape[0], math.prod(params[k].shape[1:])
            A[k] = xp.zeros((inn, inn), dtype=params[k].dtype)
            G[k] = xp.zeros((out, out), dtype=params[k].dtype)
        A_inv = {k: get_namespace(a).eye(a.shape[0], dtype=a.dtype) / root for k, a in A.items()}
        G_inv = {k: get_namespace(g).eye(g.shape[0], dtype=g.dtype) / root for k, g in G.items()}
        for b in bias_of:
            G_inv[b] = get_namespace(params[b]).eye(params[b].shape[0], dtype=params[b].dtype) / lam
        mom = {k: get_namespace(p).zeros_like(p) for k, p in params.items()}
        return KFACState(0, 0, mom, A, G, A_inv, G_inv)

    def _stats_step(state):
        return state.step % T1 == 0 and (state.step > 0 or state.n_stats == 0)

    def needs(state: KFACState) -> frozenset:
        return frozenset({"kfac_stats"}) if _stats_step(state) else frozenset()

    def update(grads: dict, state: KFACState, params: dict, *, kfac_stats: dict | None = None):
        weights, bias_of = _weight_bias(params)
        v = {k: mu * state.momentum[k] + grads[k] for k in grads}
        A, G, n_stats = state.A, state.G, state.n_stats
        if _stats_step(state):
            if kfac_stats is None:
                raise ValueError(f"KFAC step {state.step} is a statistics step: pass `kfac_stats` (weight -> (G, A)).")
            first = n_stats == 0
            A = {k: kfac_stats[k][1] if first else beta * A[k] + (1 - beta) * kfac_stats[k][1] for k in weights}
            G = {k: kfac_stats[k][0] if first else beta * G[k] + (1 - beta) * kfac_stats[k][0] for k in weights}
            n_stats += 1
        A_inv, G_inv = state.A_inv, state.G_inv
        t = state.step
        if t % (T1 if t < T2 else T2) == 0:
            A_inv, G_inv = {}, {}
            for k in weights:
                xp = get_namespace(A[k])
                with linalg_errors(f"KFAC: inverting A + sqrt(damping) I and G + sqrt(damping) I of {k!r}", _MORE_DAMPING):
                    A_inv[k] = xp.linalg.inv(A[k] + root * xp.eye(A[k].shape[0], dtype=A[k].dtype))
                    G_inv[k] = xp.linalg.inv(G[k] + root * xp.eye(G[k].shape[0], dtype=G[k].dtype))
            for b, w in bias_of.items():
                xp = get_namespace(G[w])
                with linalg_errors(f"KFAC: inverting G + damping I of {b!r}", _MORE_DAMPING):
                    G_inv[b] = xp.linalg.inv(G[w] + lam * xp.eye(G[w].shape[0], dtype=G[w].dtype))
        updates = {}
        for k, p in params.items():
            xp = get_namespace(p)
            if k in A_inv:
                V = xp.reshape(v[k], (p.shape[0], -1))  # (out, in)
                P = xp.reshape(xp.matmul(xp.matmul(G_inv[k], V), A_inv[k]), p.shape)
            else:
                P = xp.matmul(G_inv[k], v[k])
            updates[k] = -alpha * gamma * p - alpha * P
        return updates, KFACState(t + 1, n_stats, v, A, G, A_inv, G_inv)

    hyper = dict(learning_rate=alpha, momentum=mu, decay=beta, damping=lam, T1=T1, T2=T2, weight_decay=gamma)
    return Optimizer("kfac", init, update, needs, "sampled", hyper)
