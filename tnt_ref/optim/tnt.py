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

``schedule="convergent"`` is the variant the convergence analysis covers [reconstructed] (spec
section 7, Algorithm 2): no momentum, no weight decay, statistics and inverses at every step, and
the statistics of batch ``k`` taken *after* the step, so ``H_k`` depends only on the batches before
``k`` (AS.4)::

    for k = 0, 1, ...:
        K_i = (U_i + eps I)^{-1},  U = normalize(S)       # S: the warm start and batches 0..k-1
        W = W - alpha * (g x_1 K_1 ... x_k K_k)           # g: gradient of batch k, data labels
        S_i = beta * S_i + (1 - beta) * Gbar_(i) Gbar_(i)^T   # Gbar: batch k, labels y~ ~ p(.|x) at W_k

Theorem 1's step ``alpha = kappa_lo / (L kappa_hi^2)`` is :func:`theory_step_size`.

Options beyond the authors' run, each named (the conventions other implementations use; the
conformance harness, :mod:`tnt_ref.conformance`, searches over them):

* ``stat_scale``: ``"batch-mean"`` [code] moments of the mean gradient (estimate ``F / m``);
  ``"per-example"`` [derived] mean of the per-example moments (estimate ``F``: ``eps`` then reads
  on the Fisher's own scale); ``"sum"`` [derived; kfac-jax ``NaiveTNT``] moments of the summed
  per-example gradients divided by ``m`` (``m`` times ``"batch-mean"``, also an estimate of ``F``);
  ``"per-example-over-m"`` [derived; kfac-jax's ``fisher_empirical`` mode with ``DenseTNT`` /
  ``Conv2DTNT``] ``"per-example"`` divided by ``m`` (the per-example gradients of the *mean* loss:
  an estimate of ``F / m`` without the cross terms of ``"batch-mean"``).
* ``damping_scheme``: ``"per-factor"`` [code] ``eps`` on each factor; ``"pi"`` [derived; kfac-jax]
  Martens & Grosse's pi-adjusted split of one ``eps`` across the ``k`` factors, ``eps ** (1/k)``
  per factor after TNT's scale rule; ``"exact"`` [derived; kfac-jax ``use_exact_inverses``]
  ``(U_1 kron ... kron U_k + eps I)^{-1}`` through the factors' eigendecompositions.
* ``inverse_schedule``: ``"warm-up"`` [code] inverses every ``T1`` steps while ``t < T2``, then
  every ``T2``; ``"periodic"`` [derived; kfac-jax's ``inverse_update_period``] every ``T2`` from ``t = 0``.
* ``ema``: ``"first"`` (default; without a warm start the first statistics initialize ``S``, no
  EMA against zeros) [code: the warm start plays that role there]; ``"plain"`` [derived]
  ``S_0 = 0``, ``S <- beta S + (1 - beta) M`` from the first step on; ``"bias-corrected"``
  [derived; kfac-jax's weighted moving average] the plain EMA divided by ``1 - beta ** n`` after
  ``n`` statistics updates (a warm start counts as one).
* ``momentum_placement``: ``"before"`` [code] ``v = mu v + g; P = K v``; ``"after"`` [derived]
  ``v = mu v + K g; P = v``.
* ``bias``: ``"own-tensor"`` [code] every parameter is its own tensor (a bias is a 1-way tensor,
  ``k = 1``); ``"extra-input"`` [derived; kfac-jax ``DenseTNT``/``Conv2DTNT``] a bias ``X.bias``
  becomes an extra input column of its weight ``X.weight``: one 2-way tensor
  ``[W_(out, in) | b]`` of shape ``(out, in + 1)`` (conv kernels need ``conv_modes=2``).
* ``conv_modes`` 2, 3 or 4 [code: 3 on CIFAR, 2 on the autoencoders' "KFAC reshaping"].
An all-zero statistics block (``tau = 0``) gives zero factors, so ``K_i = I / eps`` (the guard
of :func:`tnt_ref.tensor_normal.tnt_factors_from_moments`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, NamedTuple

from .._validation import check_opt_state, check_param_dict, check_positive
from ..backend import get_namespace
from ..kronecker import damped_inverse_factors, safe_eigh
from ..tensor import _mode_products, outer, tensor_shape
from ..tensor_normal import _mode_moments, _tnt_factors_from_moments
from .base import Optimizer, check_hyper

__all__ = ["TNTState", "tnt", "tnt_warm_start", "STAT_SCALES", "DAMPING_SCHEMES", "EMAS", "MOMENTUM_PLACEMENTS", "BIASES",
           "INVERSE_SCHEDULES", "SCHEDULES", "TheoryStep", "theory_step_size"]

#: The values of each convention option of :func:`tnt` (the first is the default, the authors').
STAT_SCALES = ("batch-mean", "per-example", "sum", "per-example-over-m")
DAMPING_SCHEMES = ("per-factor", "pi", "exact")
INVERSE_SCHEDULES = ("warm-up", "periodic")
EMAS = ("first", "plain", "bias-corrected")
MOMENTUM_PLACEMENTS = ("before", "after")
BIASES = ("own-tensor", "extra-input")
#: ``"algorithm1"``: the authors' schedule [RG21, Alg. 1] [code]; ``"convergent"``: the analysed variant (spec section 7).
SCHEDULES = ("algorithm1", "convergent")


class TNTState(NamedTuple):
    """State of :func:`tnt`.

    step:        int, the iteration counter ``t`` (number of updates done)
    n_stats:     int, number of statistics updates so far (0: ``S`` not initialized)
    momentum:    dict name -> array of the parameter's shape, ``v``
    stats:       dict name -> tuple of ``(d_i, d_i)`` arrays, the EMA mode moments ``S_i``
    inverses:    dict name -> tuple of ``(d_i, d_i)`` arrays, ``K_i = (U_i + eps I)^{-1}``
    (with ``bias="extra-input"`` a weight's entries cover ``[W | b]`` and its bias has none)
    """

    step: int
    n_stats: int
    momentum: dict
    stats: dict
    inverses: dict


def _moments(G, scale: str, tshape):
    """Mode moments of a batch-mean gradient ``(*shape)`` or of per-example gradients ``(m, *shape)``."""
    xp = get_namespace(G)
    if scale == "batch-mean":
        return _mode_moments(xp.reshape(G, (1, *tshape)), symmetrize=False)  # the inverses are symmetrized instead
    if G.ndim == len(tshape) and G.shape == tuple(tshape):
        raise ValueError(f"stat_scale={scale!r} needs per-example gradients (m, *shape); got one gradient of shape {tuple(G.shape)}.")
    stack = xp.reshape(G, (G.shape[0], *tshape))
    if scale in ("per-example", "per-example-over-m"):
        M = _mode_moments(stack, symmetrize=False)
        return M if scale == "per-example" else [s / G.shape[0] for s in M]
    return [M / G.shape[0] for M in _mode_moments(xp.sum(stack, axis=0)[None, ...], symmetrize=False)]  # "sum"


def _blocks(params: dict, bias: str, conv_modes: int) -> dict:
    """``block name -> (member parameter names, TNT tensor shape)``; with ``bias="extra-input"`` the
    block ``X.weight`` holds ``[W_(out, in) | b]``, shape ``(out, in + 1)``, and ``X.bias`` joins it."""
    pairs = {}
    if bias == "extra-input":
        for k, p in params.items():
            b = k[: -len("weight")] + "bias"
            if k.endswith(".weight") and b in params and len(p.shape) in (2, 4):
                if tensor_shape(p.shape, conv_modes) != (p.shape[0], math.prod(p.shape[1:])) or tuple(params[b].shape) != tuple(p.shape[:1]):
                    raise ValueError(f"bias='extra-input' needs a 2-way weight (conv kernels: conv_modes=2) and a bias of shape "
                                     f"(out,); got {k} {tuple(p.shape)} with conv_modes={conv_modes} and {b} {tuple(params[b].shape)}.")
                pairs[k] = b
    joined = set(pairs.values())
    return {k: ((k, pairs[k]), (p.shape[0], math.prod(p.shape[1:]) + 1)) if k in pairs else ((k,), tensor_shape(p.shape, conv_modes))
            for k, p in params.items() if k not in joined}


def _join(arrs: dict, members: tuple, lead: int):
    """The block's tensor: one parameter as it is, or ``[W | b]`` (``lead`` leading batch axes kept)."""
    if len(members) == 1:
        return arrs[members[0]]
    xp = get_namespace(arrs[members[0]])
    W, b = arrs[members[0]], arrs[members[1]]
    return xp.concat([xp.reshape(W, (*W.shape[: lead + 1], -1)), b[..., None]], axis=-1)


def _split(X, members: tuple, params: dict) -> dict:
    """Inverse of :func:`_join` for one tensor (no batch axis)."""
    xp = get_namespace(X)
    if len(members) == 1:
        return {members[0]: xp.reshape(X, params[members[0]].shape)}
    return {members[0]: xp.reshape(X[:, :-1], params[members[0]].shape), members[1]: X[:, -1]}


class _Default:
    """Marks a default the caller left out, so that ``schedule="convergent"`` can replace it (it
    behaves as its value; ``None`` stays a wrong value, refused by name)."""


class _DefaultFloat(_Default, float):
    pass


class _DefaultInt(_Default, int):
    pass


_MOMENTUM, _T1, _T2 = _DefaultFloat(0.9), _DefaultInt(1), _DefaultInt(20)


def tnt(
    learning_rate: float,
    *,
    momentum: float = _MOMENTUM,
    decay: float = 0.9,
    damping: float = 1e-2,
    T1: int = _T1,
    T2: int = _T2,
    weight_decay: float = 0.0,
    conv_modes: int = 3,
    stat_scale: str = "batch-mean",
    damping_scheme: str = "per-factor",
    empirical: bool = False,
    ema: str = "first",
    momentum_placement: str = "before",
    bias: str = "own-tensor",
    inverse_schedule: str = "warm-up",
    schedule: str = "algorithm1",
) -> Optimizer:
    """TNT [RG21, Alg. 1] [code]; ``empirical=True`` is TNT-EF (statistics from data labels).

    Symbols: ``learning_rate`` alpha, ``momentum`` mu (default 0.9), ``decay`` beta (EMA),
    ``damping`` eps, ``T1`` statistics interval (default 1), ``T2`` inverse interval (default 20),
    ``weight_decay`` gamma (decoupled).
    ``stat_scale``, ``damping_scheme``, ``ema``, ``momentum_placement``, ``bias``,
    ``inverse_schedule`` and ``conv_modes``: the conventions of the module docstring; the defaults
    are the authors'.

    ``schedule="convergent"`` is the analysed variant (module docstring; spec section 7): it fixes
    ``momentum = 0``, ``T1 = T2 = 1`` and ``weight_decay = 0``; other values are refused.

    ``update(grads, state, params, *, sampled_grads=None)``: ``sampled_grads`` is required when
    ``"sampled_grads"`` (or ``"sampled_per_example"`` with ``stat_scale`` ``"per-example"`` or
    ``"sum"``) is in ``opt.needs(state)``.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {list(SCHEDULES)}; got schedule={schedule!r}.")
    after = schedule == "convergent"
    fixed = {"momentum": 0.0, "T1": 1, "T2": 1, "weight_decay": 0.0} if after else {}
    given = {"momentum": momentum, "T1": T1, "T2": T2, "weight_decay": weight_decay}
    for name, value in given.items():
        if name in fixed and not isinstance(value, _Default) and not (
                isinstance(value, numbers.Real) and not isinstance(value, bool) and value == fixed[name]):
            raise ValueError(f"schedule='convergent' (spec section 7) has {name} = {fixed[name]}; got {name}={value!r}. "
                             f"Leave `{name}` out, or use schedule='algorithm1'.")
    if after:  # the defaults left out are the schedule's
        momentum, T1, T2 = fixed["momentum"], fixed["T1"], fixed["T2"]
    check_hyper(learning_rate=learning_rate, momentum=momentum, decay=decay, damping=damping,
                weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    for name, value, valid in (("stat_scale", stat_scale, STAT_SCALES), ("damping_scheme", damping_scheme, DAMPING_SCHEMES),
                               ("ema", ema, EMAS), ("momentum_placement", momentum_placement, MOMENTUM_PLACEMENTS),
                               ("bias", bias, BIASES), ("inverse_schedule", inverse_schedule, INVERSE_SCHEDULES)):
        if value not in valid:
            raise ValueError(f"`{name}` must be one of {list(valid)}; got {name}={value!r}.")
    tensor_shape((1, 1, 1, 1), conv_modes)  # validates conv_modes
    per_example = stat_scale != "batch-mean"
    need_key = "sampled_per_example" if per_example else "sampled_grads"
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, mu, beta, eps, gamma = float(learning_rate), float(momentum), float(decay), float(damping), float(weight_decay)

    def init(params: dict) -> TNTState:
        check_param_dict(params)
        stats, invs = {}, {}
        for k, (_, ts) in _blocks(params, bias, conv_modes).items():
            p = params[k]
            xp = get_namespace(p)
            stats[k] = tuple(xp.zeros((d, d), dtype=p.dtype) for d in ts)
            invs[k] = tuple(xp.eye(d, dtype=p.dtype) / eps for d in ts)
            if damping_scheme == "exact":  # (Q_1, ..., Q_k, 1 / (outer(l) + eps)): here U = 0
                invs[k] = (*(xp.eye(d, dtype=p.dtype) for d in ts), xp.full(ts, 1 / eps, dtype=p.dtype))
        return TNTState(0, 0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()}, stats, invs)

    def _stats_step(state: TNTState) -> bool:
        t = state.step
        return after or (t % T1 == 0 and (t > 0 or state.n_stats == 0))

    def _inverse_step(state: TNTState) -> bool:
        t = state.step
        return t % (T1 if t < T2 and inverse_schedule == "warm-up" else T2) == 0

    def needs(state: TNTState) -> frozenset:
        return frozenset({need_key}) if _stats_step(state) else frozenset()

    def _require(sampled_grads: dict | None, t: int) -> None:
        if sampled_grads is None:
            raise ValueError(
                f"TNT step {t} is a statistics step: pass `sampled_grads` "
                f"({'per-example gradients (m, *shape)' if per_example else 'the mini-batch mean gradient with sampled labels'})."
            )

    def _statistics(stats: dict, n_stats: int, sampled_grads: dict, blocks: dict):
        """S_i = beta S_i + (1 - beta) Gbar_(i) Gbar_(i)^T (with ``ema="first"`` the first statistics initialize S)."""
        new = {}
        for k, S in stats.items():
            members, ts = blocks[k]
            M = _moments(_join(sampled_grads, members, int(per_example)), stat_scale, ts)
            new[k] = tuple(M) if n_stats == 0 and ema != "plain" else tuple(_ema(s, m, beta, ema, n_stats) for s, m in zip(S, M))
        return new, n_stats + 1

    def update(grads: dict, state: TNTState, params: dict, *, sampled_grads: dict | None = None):
        blocks = _blocks(params, bias, conv_modes)
        # [RG21, Alg. 1] momentum before preconditioning (momentum_placement="after": below; mu = 0 in the convergent schedule)
        v = {k: mu * state.momentum[k] + grads[k] for k in grads} if momentum_placement == "before" else grads
        stats, n_stats = state.stats, state.n_stats
        if _stats_step(state):
            _require(sampled_grads, state.step)
            if not after:  # statistics from the sampling-based gradient, same mini-batch
                stats, n_stats = _statistics(stats, n_stats, sampled_grads, blocks)
        inverses = state.inverses
        if _inverse_step(state):  # U = normalize(S); K_i = (U_i + eps I)^{-1}
            inverses = {k: _damped_inverses(S, eps, damping_scheme) for k, S in stats.items()}
        P = {}
        for k, (members, ts) in blocks.items():
            xp = get_namespace(params[k])
            P.update(_split(_apply_inverses(xp.reshape(_join(v, members, 0), ts), inverses[k]), members, params))  # P = v x_1 K_1 ... x_k K_k
        if momentum_placement == "after":
            v = P = {k: mu * state.momentum[k] + P[k] for k in P}
        updates = {k: -alpha * gamma * p - alpha * P[k] for k, p in params.items()}  # W <- (1 - alpha gamma) W - alpha P
        if after:  # spec section 7: batch k's statistics enter H_{k+1} only (AS.4)
            stats, n_stats = _statistics(stats, n_stats, sampled_grads, blocks)
        return updates, TNTState(state.step + 1, n_stats, v, stats, inverses)

    name = "tnt-ef" if empirical else "tnt"
    hyper = dict(learning_rate=alpha, momentum=mu, decay=beta, damping=eps, T1=T1, T2=T2, weight_decay=gamma,
                 conv_modes=conv_modes, stat_scale=stat_scale, damping_scheme=damping_scheme)
    # non-default conventions only: the hyper dict (logs, checkpoints) of the authors' settings is unchanged
    hyper.update({n: v for n, v, d in (("ema", ema, "first"), ("momentum_placement", momentum_placement, "before"),
                                       ("bias", bias, "own-tensor"), ("inverse_schedule", inverse_schedule, "warm-up"),
                                       ("schedule", schedule, "algorithm1")) if v != d})
    return Optimizer(name, init, update, needs, "data" if empirical else "sampled", hyper)


def _ema(s, m, beta: float, ema: str = "first", n: int = 0):
    """``beta * s + (1 - beta) * m``, computed in place on ``m`` (a fresh statistic, never an input);
    ``ema="bias-corrected"``: ``(beta w s + (1 - beta) m) / (beta w + 1 - beta)``, ``w = 1 - beta ** n``
    the weight of the ``n`` updates so far (``s`` is already corrected)."""
    if ema == "bias-corrected":
        w = 1.0 - beta**n
        m *= (1 - beta) / (beta * w + 1 - beta)
        m += (beta * w / (beta * w + 1 - beta)) * s
        return m
    m *= 1 - beta
    m += beta * s
    return m


def _damped_inverses(S: tuple, eps: float, scheme: str) -> tuple:
    """U = normalize(S) (spec section 3); K_i = (U_i + eps I)^{-1}. Trusted inputs: no per-factor checks.
    ``scheme="exact"``: ``(kron U_i + eps I)^{-1}`` as ``(Q_1, ..., Q_k, 1 / (outer(l_1, ..., l_k) + eps))``
    from ``U_i = Q_i diag(l_i) Q_i^T`` [derived; kfac-jax's ``use_exact_inverses``]."""
    U = _tnt_factors_from_moments(list(S))
    if scheme == "exact":
        eig = [safe_eigh(u, floor=None) for u in U]
        return (*(Q for _, Q in eig), 1.0 / (outer(*[get_namespace(l).clip(l, 0.0, None) for l, _ in eig]) + eps))
    return tuple(damped_inverse_factors(U, eps, scheme))


def _apply_inverses(X, K: tuple):
    """``X x_1 K_1 ... x_k K_k``, or for an exact inverse ``(Q_1, ..., Q_k, D)`` the damped solve."""
    if len(K) == X.ndim:
        return _mode_products(X, list(K))
    Q = list(K[:-1])
    return _mode_products(_mode_products(X, [q.T for q in Q]) * K[-1], Q)


class TheoryStep(NamedTuple):
    """Theorem 1's constants for TNT (spec section 7) [reconstructed].

    step:      float, ``alpha = kappa_lo / (L kappa_hi^2)``
    kappa_lo:  float, ``min_l prod_i (d_{l,i} (B_l^2 / D_l)^{1/k_l} + eps)^{-1}``, a lower bound on ``H_k``
    kappa_hi:  float, ``max_l eps^{-k_l}``, an upper bound on ``H_k``
    """

    step: float
    kappa_lo: float
    kappa_hi: float


def theory_step_size(params: dict, *, damping: float, lipschitz: float, grad_bound: dict, conv_modes: int = 3) -> TheoryStep:
    """Theorem 1's constant step for ``tnt(..., schedule="convergent")`` [reconstructed] (spec section 7).

    Parameters
    ----------
    params : dict name -> array
        The parameters (only their shapes are read; ``conv_modes`` as in :func:`tnt`; every
        parameter its own tensor, the default ``bias="own-tensor"``).
    damping : float
        ``eps`` (per-factor damping, the optimizer's default ``damping_scheme``).
    lipschitz : float
        ``L``, a Lipschitz constant of ``grad f`` (AS.1).
    grad_bound : dict name -> float
        ``B_l``, a bound on the Frobenius norm of every statistics gradient ``Gbar_l`` of that
        parameter (the EMA then keeps ``tr S_l <= B_l^2``).

    Returns
    -------
    TheoryStep
        ``(step, kappa_lo, kappa_hi)`` with ``kappa_lo I <= H_k <= kappa_hi I`` and
        ``step = kappa_lo / (L kappa_hi^2)``.

    Examples
    --------
    >>> import numpy as np
    >>> c = theory_step_size({"w": np.zeros((2, 3))}, damping=1.0, lipschitz=2.0, grad_bound={"w": 6 ** 0.5})
    >>> c.kappa_hi, c.kappa_lo == 1 / ((2 + 1) * (3 + 1)), c.step == c.kappa_lo / 2
    (1.0, True, True)
    """
    check_param_dict(params)
    eps = check_positive(damping, "damping")
    L = check_positive(lipschitz, "lipschitz")
    if not isinstance(grad_bound, dict) or set(grad_bound) != set(params):
        raise ValueError(f"`grad_bound` must be a dict with one bound per parameter {sorted(params)}; "
                         f"got {sorted(grad_bound) if isinstance(grad_bound, dict) else type(grad_bound).__name__}.")
    lo, hi = math.inf, 0.0
    for k, p in params.items():
        B = check_positive(grad_bound[k], f"grad_bound[{k!r}]", allow_zero=True)
        ts = tensor_shape(p.shape, conv_modes)
        order, D = len(ts), math.prod(ts)
        hi = max(hi, eps ** (-order))
        lo = min(lo, math.prod(1.0 / (d * (B**2 / D) ** (1.0 / order) + eps) for d in ts))
    return TheoryStep(lo / (L * hi**2), lo, hi)


def tnt_warm_start(opt: Optimizer, state: TNTState, params: dict, sampled_grads: Iterable[dict]) -> TNTState:
    """The authors' warm start: ``S_i`` = running mean of ``Gbar_(i) Gbar_(i)^T`` over one pass at
    ``theta_0`` (no updates) [code]; ``sampled_grads`` yields one dict per mini-batch."""
    if not isinstance(opt, Optimizer) or opt.name not in ("tnt", "tnt-ef"):
        raise TypeError(f"`opt` must be a tnt or tnt-ef optimizer; got {getattr(opt, 'name', type(opt).__name__)!r}.")
    check_opt_state(state, TNTState, opt.name, check_param_dict(params))
    scale = opt.hyper["stat_scale"]
    blocks = _blocks(params, opt.hyper.get("bias", "own-tensor"), opt.hyper["conv_modes"])
    total: dict[str, Any] = {}
    count = 0
    for sg in sampled_grads:
        for k, (members, ts) in blocks.items():
            M = _moments(_join(sg, members, int(scale != "batch-mean")), scale, ts)
            total[k] = tuple(M) if k not in total else tuple(a + b for a, b in zip(total[k], M))
        count += 1
    if count == 0:
        raise ValueError("tnt_warm_start needs at least one mini-batch of sampled gradients; got none.")
    stats = {k: tuple(s / count for s in total[k]) for k in blocks}
    return state._replace(stats=stats, n_stats=state.n_stats + 1)
