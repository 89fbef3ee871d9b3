"""KL-Shampoo (Lin, Lowe, Dangel, Eschenhagen, Xu & Grosse, ICLR 2026, arXiv:2509.03378) [LLD+26].

Per parameter tensor of order ``k`` (kernels as ``conv_modes``-way tensors), with ``g`` the
gradient of the mini-batch mean loss (data labels, as Shampoo; spec section 4)::

    v = mu v + g                                          # momentum before preconditioning
    if t % T1 == 0:                                       # statistics: one flip-flop step [LLD+26]
        t == 0:  S_i = kl_shampoo_init(g, kappa)          # TNT's factors of the damped moments
        else:    S_i = beta S_i + (1 - beta) [ (d_i/D) g_(i) (kron_{j != i} S_j^{-1}) g_(i)^T
                                               + kappa (d_i/D) prod_{j != i} tr(S_j^{-1}) I ]
    if t % (T1 if t < T2 else T2) == 0:                   # roots (eigendecomposition)
        R_i = S_i^{-1/2}
    P = v x_1 R_1 ... x_k R_k                             # (kron S_i)^{-1/2} vec v
    W = (1 - alpha gamma) W - alpha P                     # decoupled weight decay

The statistics step is :func:`tnt_ref.estimators.kl_shampoo_update` (every factor from the old
factors) and the first one :func:`tnt_ref.estimators.kl_shampoo_init`: the same code the
approximation ladder runs. ``kappa`` (``damping``) damps the KL objective, ``KL(N(0, E[g g^T] +
kappa I) || N(0, kron S_i))``, so the factors stay positive definite and the fixed point on fixed
statistics is the tensor-normal MLE of ``E[g g^T] + kappa I``.

Where tnt-ref's version is the idealized one and the authors' prototype differs [reconstructed]:
the prototype keeps each factor's eigenbasis (one QR power step every few steps) and updates
eigenvalue estimates in that basis every step, uses an exponential moving average of the
gradient (``m = b1 m + (1 - b1) g``, the same direction as ``v`` above up to the step size
factor ``1 - mu``), updates the statistics after the step, skips the first step, starts the
eigenvalues at a constant, and damps the root as ``1 / (sqrt(lambda) + eps)``. Here the roots are
exact eigendecompositions every ``T2`` steps, as tnt-ref's Shampoo, TNT and KFAC do, so that the
four methods differ in their curvature estimate only.

Stability [derived]: linearized, the overall scale of ``kron S_i`` obeys ``e <- (beta - (k-1)(1 -
beta)) e`` under repeated steps on the same statistics, so ``beta`` must exceed ``(k-2)/k`` for a
``k``-way tensor (1/3 for 3-way kernels); ``init`` refuses a smaller ``decay``. The statistics steps read
nothing back to the host (GPU-friendly); if a root fails (non-finite factors), the previous roots
are kept and a :class:`~tnt_ref.TNTRefWarning` is emitted (Distributed Shampoo's failure tolerance).
"""

from __future__ import annotations

from typing import NamedTuple

from .._validation import check_param_dict, check_positive, warn
from ..backend import get_namespace
from ..estimators.kl_shampoo import _kl_init, _kl_step
from ..estimators.shampoo import psd_power
from ..estimators.statistics import _Samples
from ..tensor import _mode_products, tensor_shape
from .base import Optimizer, check_hyper

__all__ = ["KLShampooState", "kl_shampoo"]


class KLShampooState(NamedTuple):
    """State of :func:`kl_shampoo`.

    step:      int, the iteration counter ``t`` (number of updates done)
    momentum:  dict name -> array of the parameter's shape, ``v``
    factors:   dict name -> tuple of ``(d_i, d_i)`` arrays, KL-Shampoo's ``S_i`` (identities before the first step)
    roots:     dict name -> tuple of ``(d_i, d_i)`` arrays, ``R_i = S_i^{-1/2}``
    """

    step: int
    momentum: dict
    factors: dict
    roots: dict


def kl_shampoo(
    learning_rate: float,
    *,
    momentum: float = 0.9,
    decay: float = 0.9,
    damping: float = 1e-3,
    T1: int = 1,
    T2: int = 20,
    weight_decay: float = 0.0,
    conv_modes: int = 3,
    floor: float = 1e-30,
) -> Optimizer:
    """KL-Shampoo [LLD+26]; ``update(grads, state, params)``.

    Symbols: ``learning_rate`` alpha, ``momentum`` mu, ``decay`` beta (the factors' moving
    average), ``damping`` kappa (added to the second-moment matrix ``E[g g^T]``, so on the scale of
    one squared gradient entry), ``T1`` statistics interval, ``T2`` root interval,
    ``weight_decay`` gamma (decoupled), ``floor`` the smallest eigenvalue kept before the root.
    """
    check_hyper(learning_rate=learning_rate, momentum=momentum, decay=decay, damping=damping,
                weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    floor = check_positive(floor, "floor", allow_zero=True)  # a NaN floor would make every root NaN
    tensor_shape((1, 1, 1, 1), conv_modes)  # validates conv_modes
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, mu, beta, kappa, gamma = float(learning_rate), float(momentum), float(decay), float(damping), float(weight_decay)

    def init(params: dict) -> KLShampooState:
        check_param_dict(params)
        factors, roots = {}, {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            if len(ts) >= 3 and beta <= (len(ts) - 2) / len(ts):
                raise ValueError(
                    f"`decay` must exceed (k-2)/k = {(len(ts) - 2) / len(ts):.3g} for the {len(ts)}-way tensor {k!r} "
                    f"(KL-Shampoo's factors lose their scale otherwise); got decay={beta!r}."
                )
            factors[k] = tuple(xp.eye(d, dtype=p.dtype) for d in ts)
            roots[k] = tuple(xp.eye(d, dtype=p.dtype) for d in ts)
        return KLShampooState(0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()}, factors, roots)

    def _statistics(g, S, first: bool, tshape):
        xp = get_namespace(g)
        st = _Samples(xp.reshape(g, (1, *tshape)))  # one sample: the mini-batch mean gradient
        # no host reads here (a non-finite step is caught at the next root, which keeps the previous roots)
        return tuple(_kl_init(st, kappa) if first else _kl_step(st, list(S), beta, kappa, checked=False))

    def _root(S, prev, name: str):
        try:
            return tuple(psd_power(s, -0.5, floor=floor) for s in S)
        except ValueError as err:
            warn(f"KL-Shampoo: the root of {name!r} failed ({err}); keeping the previous preconditioner.")
            return prev

    def update(grads: dict, state: KLShampooState, params: dict):
        t = state.step
        v = {k: mu * state.momentum[k] + grads[k] for k in grads}  # momentum before preconditioning
        factors = state.factors
        if t % T1 == 0:  # one KL-Shampoo step per statistics step [LLD+26]
            factors = {k: _statistics(grads[k], state.factors[k], t == 0, tensor_shape(p.shape, conv_modes))
                       for k, p in params.items()}
        roots = state.roots
        if t % (T1 if t < T2 else T2) == 0:  # R_i = S_i^{-1/2}
            roots = {k: _root(S, state.roots[k], k) for k, S in factors.items()}
        updates = {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            P = xp.reshape(_mode_products(xp.reshape(v[k], ts), roots[k]), p.shape)  # (kron S_i)^{-1/2} vec v
            updates[k] = -alpha * gamma * p - alpha * P  # W <- (1 - alpha gamma) W - alpha P
        return updates, KLShampooState(t + 1, v, factors, roots)

    hyper = dict(learning_rate=alpha, momentum=mu, decay=beta, damping=kappa, T1=T1, T2=T2, weight_decay=gamma,
                 conv_modes=conv_modes, floor=floor)
    return Optimizer("kl-shampoo", init, update, hyper=hyper)
