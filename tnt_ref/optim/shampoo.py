"""Shampoo (Gupta, Koren & Singer 2018) as the authors' baseline: EMA statistics, inverse 2k-th roots.

Per tensor of order ``k`` (kernels as ``conv_modes``-way tensors), with the mini-batch gradient ``g``::

    every T1 steps:  L_i = beta L_i + (1-beta) g_(i) g_(i)^T
    every T2 steps:  R_i = (L_i + eps I)^{-1/(2k)}   (eigendecomposition; float64 retry; eigenvalue floor)
    v = mu v + g;    P = v x_1 R_1 ... x_k R_k;    W = (1 - alpha gamma) W - alpha P

If a root fails (non-finite input), the previous ``R_i`` is kept (Distributed Shampoo's failure
tolerance) and a :class:`~tnt_ref.TNTRefWarning` is emitted.
"""

from __future__ import annotations

from typing import NamedTuple

from .._validation import check_param_dict, check_positive, warn
from ..backend import get_namespace
from ..estimators import psd_power
from ..tensor import _mode_products, tensor_shape
from ..tensor_normal import _mode_moments
from .base import Optimizer, check_hyper

__all__ = ["ShampooState", "shampoo"]


class ShampooState(NamedTuple):
    """step: int; momentum: dict (parameter shapes); stats: dict name -> tuple of ``L_i`` ``(d_i, d_i)``;
    roots: dict name -> tuple of ``R_i = (L_i + eps I)^{-1/(2k)}``."""

    step: int
    momentum: dict
    stats: dict
    roots: dict


def shampoo(
    learning_rate: float,
    *,
    momentum: float = 0.9,
    decay: float = 0.9,
    damping: float = 1e-4,
    T1: int = 1,
    T2: int = 20,
    weight_decay: float = 0.0,
    conv_modes: int = 3,
    floor: float = 1e-12,
) -> Optimizer:
    """Shampoo with EMA statistics and inverse ``2k``-th roots; ``update(grads, state, params)``."""
    check_hyper(learning_rate=learning_rate, momentum=momentum, decay=decay, damping=damping,
                weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    floor = check_positive(floor, "floor", allow_zero=True)  # a NaN floor would make every root NaN
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, mu, beta, eps, gamma = float(learning_rate), float(momentum), float(decay), float(damping), float(weight_decay)

    def init(params: dict) -> ShampooState:
        check_param_dict(params)
        stats, roots = {}, {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            stats[k] = tuple(xp.zeros((d, d), dtype=p.dtype) for d in ts)
            roots[k] = tuple(xp.eye(d, dtype=p.dtype) * eps ** (-1.0 / (2 * len(ts))) for d in ts)
        return ShampooState(0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()}, stats, roots)

    def _root(L, prev, k_order):
        xp = get_namespace(L)
        try:  # R_i = (L_i + eps I)^{-1/(2k)} [GKS18] (tnt_ref.estimators.shampoo_preconditioner, with a floor)
            return psd_power(L + eps * xp.eye(L.shape[0], dtype=L.dtype), -1.0 / (2 * k_order), floor=floor)
        except ValueError as err:
            warn(f"Shampoo: inverse root failed ({err}); keeping the previous preconditioner.")
            return prev

    def update(grads: dict, state: ShampooState, params: dict):
        t = state.step
        v = {k: mu * state.momentum[k] + grads[k] for k in grads}
        stats = state.stats
        if t % T1 == 0:
            stats = {}
            for k, p in params.items():
                xp = get_namespace(p)
                M = _mode_moments(xp.reshape(grads[k], (1, *tensor_shape(p.shape, conv_modes))), symmetrize=False)
                first = t == 0
                stats[k] = tuple(m if first else beta * s + (1 - beta) * m for s, m in zip(state.stats[k], M))
        roots = state.roots
        if t % (T1 if t < T2 else T2) == 0:
            roots = {k: tuple(_root(L, R, len(S)) for L, R in zip(S, state.roots[k])) for k, S in stats.items()}
        updates = {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            P = xp.reshape(_mode_products(xp.reshape(v[k], ts), roots[k]), p.shape)
            updates[k] = -alpha * gamma * p - alpha * P
        return updates, ShampooState(t + 1, v, stats, roots)

    hyper = dict(learning_rate=alpha, momentum=mu, decay=beta, damping=eps, T1=T1, T2=T2, weight_decay=gamma,
                 conv_modes=conv_modes, floor=floor)
    return Optimizer("shampoo", init, update, hyper=hyper)
