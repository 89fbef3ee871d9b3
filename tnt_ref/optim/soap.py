"""SOAP: Adam in the eigenbasis of Shampoo's factors (Vyas, Morwani, Zhao et al., ICLR 2025) [VMZ+25].

Per parameter tensor of order ``k`` (kernels as ``conv_modes``-way tensors), with ``g`` the
gradient of the mini-batch mean loss (data labels)::

    if t % T1 == 0:                                      # Shampoo's statistics
        L_i = beta L_i + (1 - beta) g_(i) g_(i)^T         (t == 0: L_i = g_(i) g_(i)^T)
    if t % T2 == 0:                                      # the eigenbasis
        t == 0:  Q_i = eigenvectors of L_i
        else:    Q_i = qr((L_i + c_i I) Q_i)              # one power step from the previous basis
    m = b1 m + (1 - b1) g                                 # Adam's first moment, original coordinates
    g' = g x_1 Q_1^T ... x_k Q_k^T;  m' = m x_1 Q_1^T ... x_k Q_k^T
    v = b2 v + (1 - b2) g'^2                              # Adam's second moment, rotated coordinates
    n' = (m' / (1 - b1^(t+1))) / (sqrt(v / (1 - b2^(t+1))) + eps)
    W = (1 - alpha gamma) W - alpha n' x_1 Q_1 ... x_k Q_k

The second-moment matrix SOAP implies is ``Q diag(v) Q^T`` with ``Q = kron Q_i``
(:func:`tnt_ref.estimators.soap_factors` is its population version, the approximation ladder's
``soap`` row). ``v`` is not rotated when the basis changes, as in [VMZ+25]; ``m`` is kept in the
original coordinates (the paper's algorithm box; the authors' code keeps it rotated and re-rotates
it when the basis changes, the same numbers).

The basis follows the authors' code: an exact eigendecomposition at the first step, then every
``T2`` steps one power step and a QR factorization from the previous basis. Both matter: the
statistics of the first steps are rank-deficient and the eigenvectors of their null space are
arbitrary, so an ``eigh`` at every step (tnt-ref's "``T1`` before ``T2``" schedule) turns them from
step to step while ``v`` stays in the old coordinates; on a least-squares problem the loss doubled
in 5 steps at a learning rate where this version descends, and on a softmax layer it grew 300-fold
in 4 steps. The shift ``c_i = 1e-6 tr(L_i) / d_i`` [reconstructed] keeps the previous direction of a
column in the null space of ``L_i`` (there ``L_i q`` is round-off, and QR would make it an
arbitrary direction); it does not change the eigenvectors the power step converges to.

Where tnt-ref's version differs from the authors' code [reconstructed]: the statistics of a step are updated
before its update (theirs: after, and their first step only initializes the statistics); Shampoo's
statistics are initialized by the first step rather than averaged against zeros. Biases (``k = 1``)
are rotated by the eigenvectors of their full ``g g^T`` average, as a 1-way tensor (their code can
leave 1-D tensors unrotated, ``precondition_1d=False``).
"""

from __future__ import annotations

from typing import NamedTuple

from .._validation import check_param_dict, check_positive, check_unit_interval, warn
from ..backend import get_namespace
from ..kronecker import safe_eigh
from ..tensor import _mode_products, tensor_shape
from ..tensor_normal import _mode_moments
from .base import Optimizer, check_hyper

__all__ = ["SOAPState", "soap"]


class SOAPState(NamedTuple):
    """State of :func:`soap`.

    step:   int, the iteration counter ``t`` (number of updates done)
    mu:     dict name -> array of the parameter's shape, Adam's first moment ``m`` (original coordinates)
    nu:     dict name -> array of the parameter's shape, Adam's second moment ``v`` (rotated coordinates: entry
            ``vec v`` belongs to column ``vec`` of ``kron Q_i``; kept in the parameter's shape, as every
            per-parameter buffer, so the state check at the optimizers' door applies to it)
    stats:  dict name -> tuple of ``(d_i, d_i)`` arrays, Shampoo's EMA statistics ``L_i``
    basis:  dict name -> tuple of ``(d_i, d_i)`` orthogonal arrays ``Q_i`` (eigenvectors as columns)
    """

    step: int
    mu: dict
    nu: dict
    stats: dict
    basis: dict


def soap(
    learning_rate: float,
    *,
    b1: float = 0.95,
    b2: float = 0.95,
    eps: float = 1e-8,
    decay: float = 0.95,
    T1: int = 1,
    T2: int = 10,
    weight_decay: float = 0.0,
    conv_modes: int = 3,
) -> Optimizer:
    """SOAP [VMZ+25]; ``update(grads, state, params)``.

    Symbols: ``learning_rate`` alpha, ``b1``/``b2``/``eps`` Adam's, ``decay`` beta (the moving
    average of Shampoo's statistics; [VMZ+25] use ``b2``), ``T1`` statistics interval, ``T2``
    basis interval (their ``precondition_frequency``, 10), ``weight_decay`` gamma (decoupled).
    Defaults are the authors' code's (``betas = (0.95, 0.95)``).
    """
    check_hyper(learning_rate=learning_rate, decay=decay, weight_decay=weight_decay, intervals={"T1": T1, "T2": T2})
    b1, b2 = check_unit_interval(b1, "b1"), check_unit_interval(b2, "b2")
    eps = check_positive(eps, "eps")
    tensor_shape((1, 1, 1, 1), conv_modes)  # validates conv_modes
    T1, T2 = int(T1), int(T2)  # NumPy integers accepted (checked above); plain ints in the state and logs
    alpha, beta, gamma = float(learning_rate), float(decay), float(weight_decay)

    def init(params: dict) -> SOAPState:
        check_param_dict(params)
        stats, basis, nu = {}, {}, {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            stats[k] = tuple(xp.zeros((d, d), dtype=p.dtype) for d in ts)
            basis[k] = tuple(xp.eye(d, dtype=p.dtype) for d in ts)
            nu[k] = xp.zeros_like(p)
        return SOAPState(0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()}, nu, stats, basis)

    def _eigenbasis(L, prev, first: bool, name: str):
        try:
            if first:
                return tuple(safe_eigh(s, floor=None)[1] for s in L)
            xp = get_namespace(*L)
            new = []
            for s, q in zip(L, prev):
                d = s.shape[0]
                c = 1e-6 * xp.linalg.trace(s) / d  # 0-d: no host read
                new.append(xp.linalg.qr(((s + s.T) / 2 + c * xp.eye(d, dtype=s.dtype)) @ q)[0])  # one warm power step
            new = tuple(new)
            if not all(bool(xp.all(xp.isfinite(q))) for q in new):
                raise ValueError("non-finite statistics")
            return new
        except ValueError as err:
            warn(f"SOAP: the eigenbasis of {name!r} failed ({err}); keeping the previous basis.")
            return prev

    def update(grads: dict, state: SOAPState, params: dict):
        t = state.step
        stats = state.stats
        if t % T1 == 0:  # Shampoo's statistics L_i
            stats = {}
            for k, p in params.items():
                xp = get_namespace(p)
                M = _mode_moments(xp.reshape(grads[k], (1, *tensor_shape(p.shape, conv_modes))), symmetrize=False)
                stats[k] = tuple(M) if t == 0 else tuple(beta * s + (1 - beta) * m for s, m in zip(state.stats[k], M))
        basis = state.basis
        if t % T2 == 0:  # Q_i: eigenvectors of L_i (t = 0), then a warm power step
            basis = {k: _eigenbasis(L, state.basis[k], t == 0, k) for k, L in stats.items()}
        c1, c2 = 1 - b1 ** (t + 1), 1 - b2 ** (t + 1)  # Adam's bias corrections
        mu, nu, updates = {}, {}, {}
        for k, p in params.items():
            xp = get_namespace(p)
            ts = tensor_shape(p.shape, conv_modes)
            mu[k] = b1 * state.mu[k] + (1 - b1) * grads[k]
            QT = [q.T for q in basis[k]]
            g_rot = _mode_products(xp.reshape(grads[k], ts), QT)  # g' = g x_i Q_i^T
            m_rot = _mode_products(xp.reshape(mu[k], ts), QT)
            nu_t = b2 * xp.reshape(state.nu[k], ts) + (1 - b2) * g_rot * g_rot
            nu[k] = xp.reshape(nu_t, p.shape)
            n_rot = (m_rot / c1) / (xp.sqrt(nu_t / c2) + eps)
            P = xp.reshape(_mode_products(n_rot, list(basis[k])), p.shape)  # back: n' x_i Q_i
            updates[k] = -alpha * gamma * p - alpha * P  # W <- (1 - alpha gamma) W - alpha P
        return updates, SOAPState(t + 1, mu, nu, stats, basis)

    hyper = dict(learning_rate=alpha, b1=b1, b2=b2, eps=eps, decay=beta, T1=T1, T2=T2, weight_decay=gamma,
                 conv_modes=conv_modes)
    return Optimizer("soap", init, update, hyper=hyper)
