"""The theory checks run the optimizer users run: a thin adapter, no arithmetic of its own.

Every AS and theorem check drives :func:`tnt_ref.optim.tnt` (Algorithm 2 of spec section 7 is its
``schedule="convergent"``; Algorithm 1 its default) through :func:`tnt_ref.training.train_step`
for a problem with a network, or through the same ``update``/``apply_updates`` contract for the
synthetic quadratic of :mod:`proofs_check.tight`. :func:`run_tnt` records what the optimizer
*received* (the iterate, the mini-batch gradient ``g_k``, the sampled-label gradient of the
statistics, the state) by wrapping ``opt.update``, so a check can replay the exact step:
:func:`applied` calls the optimizer's own ``update`` again on a probe vector, and
:func:`used_inverses` reads the factor inverses that update returned (the ones it applied).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from tnt_ref.optim import Optimizer, apply_updates, tnt, tnt_warm_start
from tnt_ref.training import DivergedError, train_step

from .problems import uniform_sampler

__all__ = ["Trace", "convergent", "algorithm1", "run_tnt", "received_grads", "applied", "used_inverses"]


def convergent(alpha: float, eps: float, **kw) -> Optimizer:
    """Algorithm 2 (spec section 7): ``tnt(alpha, schedule="convergent", damping=eps)``."""
    return tnt(alpha, schedule="convergent", damping=eps, **kw)


def algorithm1(alpha: float, eps: float, *, T1: int, momentum: float = 0.0, **kw) -> Optimizer:
    """Algorithm 1 as the authors ran it (statistics from the current batch every ``T1`` steps),
    without momentum unless asked, so that it differs from Algorithm 2 only in its schedule."""
    return tnt(alpha, damping=eps, T1=T1, momentum=momentum, **kw)


@dataclass
class Trace:
    """What the optimizer received at each step ``k = 0..N-1`` of one run, and the iterates."""

    opt: Optimizer  # the optimizer that ran (not the recording wrapper)
    iterates: list = field(default_factory=list)  # x_0..x_N (dicts)
    batches: list = field(default_factory=list)  # idx_k
    grads: list = field(default_factory=list)  # g_k as update received it (data labels, mini-batch mean)
    sampled: list = field(default_factory=list)  # the sampled-label gradient update received at step k (or None)
    states: list = field(default_factory=list)  # state before step k (k = 0..N; states[0] after the warm start)
    warm: dict | None = None  # the warm start's sampled-label gradient (one independent batch at x_0)
    stopped: str = ""  # why the run stopped before N steps ("" if it did not)

    @property
    def alpha(self) -> float:
        return float(self.opt.hyper["learning_rate"])

    @property
    def eps(self) -> float:
        return float(self.opt.hyper["damping"])

    @property
    def steps(self) -> int:
        return len(self.grads)


def _recording(opt: Optimizer, log: list) -> Optimizer:
    def update(grads, state, params, **extra):
        log.append((grads, state, params, extra.get("sampled_grads")))
        return opt.update(grads, state, params, **extra)

    return dataclasses.replace(opt, update=update)


def run_tnt(prob, opt: Optimizer, *, N: int, m: int, seed: int = 0, sampler: Callable | None = None,
            batches: list | None = None, warm_start: bool = True) -> Trace:
    """``N`` steps of ``opt`` on ``prob`` with mini-batches of ``m`` (``batches`` fixes the batch of
    each step; otherwise ``sampler``, uniform with replacement by default, with ``seed``).

    The warm start (``warm_start=True``) is TNT's own :func:`tnt_warm_start` on one independent
    batch at ``x_0``. Labels for the statistics come from ``numpy.random.default_rng(seed + 10_000)``
    (the warm start first, then ``train_step``'s draws). The run stops early, with the reason in
    ``trace.stopped``, when ``train_step`` reports a non-finite loss or gradient, the optimizer
    refuses (a damped factor singular to working precision) or an iterate is not finite.
    """
    n = prob.n
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"`N` (iterations) must be a positive int; got N={N!r}.")
    if not isinstance(m, int) or not 1 <= m <= n:
        raise ValueError(f"`m` (mini-batch size) must be in [1, {n}] for {n} examples; got m={m!r}.")
    rng_batch = np.random.default_rng(seed)
    rng_label = np.random.default_rng(seed + 10_000)
    sampler = sampler or uniform_sampler(n, m)
    params = {k: np.array(v, dtype=float) for k, v in prob.params0.items()}
    trace = Trace(opt)
    state = opt.init(params)
    if warm_start:
        trace.warm = prob.sampled_grad(params, sampler(rng_batch), rng_label)
        state = tnt_warm_start(opt, state, params, [trace.warm])
    log: list = []
    rec = _recording(opt, log)
    net = getattr(prob, "net", None)
    trace.iterates.append(params)
    trace.states.append(state)
    for k in range(N):
        idx = np.asarray(batches[k] if batches is not None else sampler(rng_batch))
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # non-finite values are checked below
                if net is not None:
                    _, params, state = train_step(net, rec, params, state, prob.X[idx], prob.y[idx], rng_label)
                else:
                    g = prob.grad(params, idx)
                    sg = prob.sampled_grad(params, idx, rng_label) if opt.needs(state) else None
                    upd, state = rec.update(g, state, params, sampled_grads=sg)
                    params = apply_updates(params, upd)
        except (DivergedError, ValueError) as err:
            if log and len(log) > len(trace.grads):  # the optimizer was called: record what it received
                _append(trace, log[-1], idx)
            trace.stopped = f"step {k}: {type(err).__name__}: {err}"
            break
        _append(trace, log[-1], idx)
        trace.iterates.append(params)
        trace.states.append(state)
        if not all(np.all(np.isfinite(v)) for v in params.values()):
            trace.stopped = f"step {k}: non-finite iterate"
            break
    return trace


def _append(trace: Trace, entry, idx) -> None:
    g, _, _, sg = entry
    trace.batches.append(np.asarray(idx).copy())
    trace.grads.append(g)
    trace.sampled.append(sg)


class _NoState(NamedTuple):
    """The empty state of the recording optimizer of :func:`received_grads`."""


def received_grads(prob, params: dict, idx) -> dict:
    """The gradient ``train_step`` hands the optimizer at ``params`` for the batch ``idx`` (data labels)."""
    got: list = []

    def update(grads, state, params, **extra):
        got.append(grads)
        return {k: np.zeros_like(v) for k, v in params.items()}, state

    probe = Optimizer("probe", lambda params: _NoState(), update)
    idx = np.asarray(idx)
    train_step(prob.net, probe, params, _NoState(), prob.X[idx], prob.y[idx], np.random.default_rng(0))
    return got[0]


def applied(trace: Trace, k: int, v: dict) -> dict:
    """The update the optimizer returns at step ``k`` (same state, iterate and statistics input) when
    its gradient input is ``v``: ``-alpha H_k v`` for the convergent schedule."""
    return trace.opt.update(v, trace.states[k], trace.iterates[k], sampled_grads=trace.sampled[k])[0]


def used_inverses(trace: Trace, k: int) -> dict:
    """The factor inverses ``K_i`` of ``H_k``: those the update of step ``k`` returned in its state
    (it applied them: :func:`applied` is checked against them by AS.3)."""
    return trace.states[k + 1].inverses
