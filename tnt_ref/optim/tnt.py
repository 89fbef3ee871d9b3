"""Tensor Normal Training as the authors ran it [RG21, Alg. 1] [code] (spec section 6).

::

    warm start: S_i = running mean of Gbar_(i) Gbar_(i)^T over one pass at theta_0 (no updates)
    for t = 0, 1, ...:
        g  = gradient of the mini-batch mean loss (data labels)
        v  = mu * v + g                                    # momentum before preconditioning
        if t % T1 == 0 and t > 0:                          # statistics, same mini-batch
            Gbar = gradient of the mean loss with labels y~ ~ p(.|x)
            S_i  = beta * S_i + (1 - beta) * Gbar_(i) Gbar_(i)^T
        if t % (T1 if t < T2 else T2) == 0:                # inverses
            U = normalize(S) (spec section 3);  K_i = (U_i + eps I)^{-1}
        P = v x_1 K_1 x_2 ... x_k K_k
        W = (1 - alpha * gamma) * W - alpha * P            # decoupled decay, every tensor

Options beyond the authors' run, each named: ``stat_scale="per-example"`` (statistics from
per-example sampled gradients, an estimate of ``F`` instead of ``F / m``: ``eps`` then reads on
the Fisher's own scale); ``damping_scheme="pi"`` (Martens & Grosse's pi-adjusted per-factor
damping; equal to ``eps ** (1/k)`` per factor after TNT's scale rule); ``conv_modes`` 2, 3 or 4.
Without a warm start the first step's statistics initialize ``S`` (no EMA against zeros).
An all-zero statistics block (``tau = 0``) gives zero factors, so ``K_i = I / eps`` (the guard
of :func:`tnt_ref.tensor_normal.tnt_factors_from_moments`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from .._validation import check_param_dict
from ..backend import get_namespace
from ..kronecker import damped_inverse_factors
from ..tensor import _mode_products, tensor_shape
from ..tensor_normal import _mode_moments, _tnt_factors_from_moments
from .base import Optimizer, check_hyper

__all__ = ["TNTState", "tnt", "tnt_warm_start"]


class TNTState(NamedTuple):
    """State of :func:`tnt`.

    step:        int, the iteration counter ``t`` (number of updates done)
    n_stats:     int, number of statistics updates so far (0: ``S`` not initialized)
    momentum:    dict name -> array of the parameter's shape, ``v``
    stats:       dict name -> tuple of ``(d_i, d_i)`` arrays, the EMA mode moments ``S_i``
    inverses:    dict name -> tuple of ``(d_i, d_i)`` arrays, ``K_i = (U_i + eps I)^{-1}``
    """

    step: int
    n_stats: int
    momentum: dict
    stats: dict
    inverses: dict


def _moments(G, per_example: bool, tshape):
    """Mode moments of a batch-mean gradient ``(*shape)`` or of per-example gradients ``(m, *shape)``."""
    xp = get_namespace(G)
    stack = xp.reshape(G, (G.shape[0], *tshape)) if per_example else xp.reshape(G, (1, *tshape))
    return _mode_moments(stack, symmetrize=False)  # the damped inverses are symmetrized instead


def tnt(
    learning_rate: float,
    *,
    momentum: float = 0.9,
    decay: float = 0.9,
    damping: float = 1e-3,
    T1: int = 1,
    T2: int = 20,
    weight_decay: float = 0.0,
    conv_modes: int = 3,
    stat_scale: str = "batch-mean",
    damping_scheme: str = "per-factor",
    empirical: bool = False,
) -> Optimizer:
    """TNT [RG21, Alg. 1] [code]; ``empirical=True`` is TNT-EF (statistics from data labels).

    Symbols: ``learning_rate`` alpha, ``momentum`` mu, ``decay`` beta (EMA), ``damping`` eps,
    ``T1`` statistics interval, ``T2`` inverse interval, ``weight_decay`` gamma (decoupled).

    ``update(grads, state, params, *, sampled_grads=None)``: ``sampled_grads`` is required when
    ``"sampled_grads"`` (or ``"sampled_per_example"`` with ``stat_scale="per-example"``) is in
    ``opt.needs(state)``.
    """
    check_hyper(learning_rate=learning_rate, momentum=momentum, decay=decay, damping=damping,
                weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    if stat_scale not in ("batch-mean", "per-example"):
        raise ValueError(f"`stat_scale` must be 'batch-mean' or 'per-example'; got stat_scale={stat_scale!r}.")
    if damping_scheme not in ("per-factor", "pi"):
        raise ValueError(f"`damping_scheme` must be 'per-factor' or 'pi'; got damping_scheme={damping_scheme!r}.")
    tensor_shape((1, 1, 1, 1), conv_modes)  # validates conv_modes
    per_example = stat_scale == "per-example"
    need_key = "sampled_per_example" if per_example else "sampled_grads"
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, mu, beta, eps, gamma = float(learning_rate), float(momentum), float(decay), float(damping), float(weight_decay)

    def init(params: dict) -> TNTState:
        check_param_dict(params)
        stats, invs = {}, {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            stats[k] = tuple(xp.zeros((d, d), dtype=p.dtype) for d in ts)
            invs[k] = tuple(xp.eye(d, dtype=p.dtype) / eps for d in ts)
        return TNTState(0, 0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()}, stats, invs)

    def _stats_step(state: TNTState) -> bool:
        t = state.step
        return t % T1 == 0 and (t > 0 or state.n_stats == 0)

    def _inverse_step(state: TNTState) -> bool:
        t = state.step
        return t % (T1 if t < T2 else T2) == 0

    def needs(state: TNTState) -> frozenset:
        return frozenset({need_key}) if _stats_step(state) else frozenset()

    def update(grads: dict, state: TNTState, params: dict, *, sampled_grads: dict | None = None):
        # [RG21, Alg. 1] momentum before preconditioning
        v = {k: mu * state.momentum[k] + grads[k] for k in grads}
        stats, n_stats = state.stats, state.n_stats
        if _stats_step(state):  # statistics from the sampling-based gradient, same mini-batch
            if sampled_grads is None:
                raise ValueError(
                    f"TNT step {state.step} is a statistics step: pass `sampled_grads` "
                    f"({'per-example gradients (m, *shape)' if per_example else 'the mini-batch mean gradient with sampled labels'})."
                )
            new = {}
            for k, S in stats.items():
                M = _moments(sampled_grads[k], per_example, tensor_shape(params[k].shape, conv_modes))
                new[k] = tuple(M) if n_stats == 0 else tuple(_ema(s, m, beta) for s, m in zip(S, M))
            stats, n_stats = new, n_stats + 1
        inverses = state.inverses
        if _inverse_step(state):  # U = normalize(S); K_i = (U_i + eps I)^{-1}
            inverses = {k: _damped_inverses(S, eps, damping_scheme) for k, S in stats.items()}
        updates = {}
        for k, p in params.items():
            ts = tensor_shape(p.shape, conv_modes)
            xp = get_namespace(p)
            P = xp.reshape(_mode_products(xp.reshape(v[k], ts), inverses[k]), p.shape)  # P = v x_1 K_1 ... x_k K_k
            updates[k] = -alpha * gamma * p - alpha * P  # W <- (1 - alpha gamma) W - alpha P
        return updates, TNTState(state.step + 1, n_stats, v, stats, inverses)

    name = "tnt-ef" if empirical else "tnt"
    hyper = dict(learning_rate=alpha, momentum=mu, decay=beta, damping=eps, T1=T1, T2=T2, weight_decay=gamma,
                 conv_modes=conv_modes, stat_scale=stat_scale, damping_scheme=damping_scheme)
    return Optimizer(name, init, update, needs, "data" if empirical else "sampled", hyper)


def _ema(s, m, beta: float):
    """``beta * s + (1 - beta) * m``, computed in place on ``m`` (a fresh statistic, never an input)."""
    m *= 1 - beta
    m += beta * s
    return m


def _damped_inverses(S: tuple, eps: float, scheme: str) -> tuple:
    """U = normalize(S) (spec section 3); K_i = (U_i + eps I)^{-1}. Trusted inputs: no per-factor checks."""
    return tuple(damped_inverse_factors(_tnt_factors_from_moments(list(S)), eps, scheme))


def tnt_warm_start(opt: Optimizer, state: TNTState, params: dict, sampled_grads: Iterable[dict]) -> TNTState:
    """The authors' warm start: ``S_i`` = running mean of ``Gbar_(i) Gbar_(i)^T`` over one pass at
    ``theta_0`` (no updates) [code]; ``sampled_grads`` yields one dict per mini-batch."""
    conv_modes = opt.hyper["conv_modes"]
    per_example = opt.hyper["stat_scale"] == "per-example"
    total: dict[str, Any] = {}
    count = 0
    for sg in sampled_grads:
        for k, p in params.items():
            M = _moments(sg[k], per_example, tensor_shape(p.shape, conv_modes))
            total[k] = tuple(M) if k not in total else tuple(a + b for a, b in zip(total[k], M))
        count += 1
    if count == 0:
        raise ValueError("tnt_warm_start needs at least one mini-batch of sampled gradients; got none.")
    stats = {k: tuple(s / count for s in total[k]) for k in params}
    return state._replace(stats=stats, n_stats=state.n_stats + 1)
