"""KL-Shampoo's step, start and fixed point [LLD+26] (spec section 4).

References and conventions: :mod:`tnt_ref.estimators`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._validation import (
    check_int,
    check_positive,
    check_psd_factors,
    check_square_factors,
    check_unit_interval,
    linalg_errors,
)
from ..backend import get_namespace
from ..tensor_normal import _normalize, _tnt_factors_from_moments
from .statistics import _statistics

__all__ = ["kl_shampoo_init", "kl_shampoo_update", "kl_shampoo_factors", "KLShampooResult"]


# ----------------------------------------------------------------------------- KL-Shampoo
def _kl_step(st, S, beta: float, damping: float, *, checked: bool = True):
    """One KL-Shampoo step on statistics ``st`` from factors ``S`` (every mode from the old ``S``).

    ``checked=False`` (the optimizer's hot path) reads nothing back to the host: no singularity
    check and the traces stay arrays (a non-finite result is caught where the roots are taken).
    """
    xp = get_namespace(*S)
    k, D = len(st.tshape), math.prod(st.tshape)
    invs = []
    for i, s in enumerate(S):
        if not checked:
            inv = xp.linalg.inv(s)
        else:
            with linalg_errors(f"inverting KL-Shampoo's factor {i} (d = {s.shape[0]})",
                               "it is singular: use damping > 0 (or more samples)."):
                inv = xp.linalg.inv(s)
            if not bool(xp.all(xp.isfinite(inv))):
                raise ValueError(f"KL-Shampoo's factor {i} is singular; use damping > 0 (or more samples).")
        invs.append((inv + inv.T) / 2)
    tr_inv = [xp.linalg.trace(v) for v in invs]  # 0-d arrays
    out = []
    for i, d in enumerate(st.tshape):
        T = st.mode_moment(i, invs) * (d / D)  # (d_i / D) E[G_(i) (kron_{j != i} S_j^{-1}) G_(i)^T]
        if damping:  # the same step for F + damping I [derived]
            c = damping * (d / D)
            for j in range(k):
                if j != i:
                    c = c * tr_inv[j]
            T = T + c * xp.eye(d, dtype=T.dtype)
        out.append(beta * S[i] + (1.0 - beta) * T if beta else T)
    return out


def _kl_init(st, damping: float):
    moments = [st.mode_moment(i) for i in range(len(st.tshape))]
    D = math.prod(st.tshape)
    if damping:
        xp = get_namespace(*moments)
        moments = [m + damping * (D / d) * xp.eye(d, dtype=m.dtype) for m, d in zip(moments, st.tshape)]
    return _tnt_factors_from_moments(moments)


def kl_shampoo_init(samples: Any = None, *, covariance: Any = None, shape: Sequence[int] | None = None,
                    damping: float = 0.0):
    """KL-Shampoo's first factors: its step from identities scaled to the statistics' trace [reconstructed].

    A KL-Shampoo step needs the inverses of the current factors. tnt-ref starts from
    ``U_i = c I`` with ``c^k D = tr(F + damping I)`` (identities at the statistics' scale) and takes
    one step with no moving average; this is TNT's estimator (spec section 3) of the damped moments
    ``S_i + damping (D / d_i) I`` [derived]: TNT is KL-Shampoo's first step. (The authors' prototype
    instead starts the factors' eigenvalues at a constant; [LLD+26] leave the start open.)

    Parameters
    ----------
    samples : array ``(n, d_1, ..., d_k)``, optional
    covariance : array ``(D, D)``, optional, with ``shape``
    damping : float
        ``kappa >= 0`` (see :func:`kl_shampoo_update`).

    Returns
    -------
    list of arrays ``(d_i, d_i)``, ``tr(kron U_i) = tr F + damping D``.
    """
    st = _statistics(samples, covariance, shape, "kl_shampoo_init")
    damping = check_positive(damping, "damping", allow_zero=True)
    return _kl_init(st, damping)


def kl_shampoo_update(factors: Sequence[Any], samples: Any = None, *, covariance: Any = None,
                      shape: Sequence[int] | None = None, beta: float, damping: float = 0.0):
    """One KL-Shampoo step: the flip-flop update of every factor, from the old factors, in a moving average [LLD+26].

    With ``S_j`` the current factors and ``G`` the statistics (a mini-batch gradient, a stack of
    samples, or ``F``)::

        T_i = (1 / prod_{j != i} d_j) E[G_(i) (kron_{j != i} S_j^{-1}) G_(i)^T]
              + kappa (1 / prod_{j != i} d_j) prod_{j != i} tr(S_j^{-1}) I
        S_i <- beta S_i + (1 - beta) T_i            (every i from the same old S: a Jacobi step)

    ``T_i`` is the tensor-normal MLE's mode update (spec section 4; ``1 / prod_{j != i} d_j =
    d_i / D``) for the damped target ``F + kappa I``: its second term is the first term's value
    for ``G = kappa^(1/2) * (standard normal)`` [derived], which is how [LLD+26] damp the KL
    objective ``KL(N(0, F + kappa I) || N(0, kron S_i))``. The preconditioner is then
    ``(kron S_i)^(-1/2)``. On fixed statistics the fixed points are those of ``T``, whatever
    ``beta``: the MLE of ``F + kappa I`` (:func:`kl_shampoo_factors`) [derived]. The step
    commutes with rescaling the factors by ``a_i`` with ``prod a_i = 1`` [derived], so the factors
    are returned as computed (not normalized).

    Parameters
    ----------
    factors : list of arrays ``(d_i, d_i)``
        Current factors ``S_i``, symmetric positive definite.
    samples : array ``(n, d_1, ..., d_k)``, optional
        Zero-mean samples (one mini-batch gradient is ``n = 1``).
    covariance : array ``(D, D)``, optional, with ``shape``
    beta : float
        Moving-average weight of the old factors, in ``[0, 1)``.
    damping : float
        ``kappa >= 0``.

    Returns
    -------
    list of arrays ``(d_i, d_i)``.

    Raises
    ------
    ValueError
        A factor is not positive definite, or does not match the statistics' shape.
    """
    st = _statistics(samples, covariance, shape, "kl_shampoo_update")
    factors = check_square_factors(factors, "factors", shape=st.tshape)
    check_psd_factors(factors, "factors", definite=True)
    beta = check_unit_interval(beta, "beta")
    damping = check_positive(damping, "damping", allow_zero=True)
    return _kl_step(st, list(factors), beta, damping)


@dataclass(frozen=True)
class KLShampooResult:
    """Result of :func:`kl_shampoo_factors`.

    Attributes
    ----------
    factors : list of arrays ``(d_i, d_i)``, normalized to equal average eigenvalue
    n_steps : int
    converged : bool
        Whether the largest relative change of a factor fell below ``tol``.
    changes : list of float
        That change after each step.
    """

    factors: list
    n_steps: int = 0
    converged: bool = False
    changes: list = field(default_factory=list)


def kl_shampoo_factors(samples: Any = None, *, covariance: Any = None, shape: Sequence[int] | None = None,
                       damping: float = 0.0, beta: float | None = None, tol: float = 1e-11,
                       max_iter: int = 2000) -> KLShampooResult:
    """KL-Shampoo's fixed point on fixed statistics: :func:`kl_shampoo_update` iterated from :func:`kl_shampoo_init`.

    The fixed point is the tensor-normal MLE of ``F + damping I`` (:func:`tnt_ref.tensor_normal.mle`,
    the KL projection of spec section 4) [derived; LLD+26]; ``tests/test_estimators.py`` checks it.
    ``beta`` does not change the fixed point, only the path: the default ``(k - 1) / k`` removes
    the overall-scale mode of the linearized iteration in one step (the scales of the new factors
    move against the old ones, ``e <- (beta - (k - 1)(1 - beta)) e``) [derived].

    Parameters
    ----------
    samples : array ``(n, d_1, ..., d_k)``, optional
    covariance : array ``(D, D)``, optional, with ``shape``
    damping : float
        ``kappa >= 0``; with 0 the MLE must exist (enough samples, :func:`~tnt_ref.tensor_normal.mle_min_samples`).
    beta : float, optional
    tol : float
        Stop when ``max_i ||S_i' - S_i||_F / ||S_i||_F <= tol``.
    max_iter : int

    Returns
    -------
    KLShampooResult
    """
    st = _statistics(samples, covariance, shape, "kl_shampoo_factors")
    damping = check_positive(damping, "damping", allow_zero=True)
    k = len(st.tshape)
    beta = (k - 1) / k if beta is None else check_unit_interval(beta, "beta")
    tol = check_positive(tol, "tol", allow_zero=True)
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    return _kl_fixed_point(st, damping, beta, tol, max_iter)


def _kl_fixed_point(st, damping: float, beta: float, tol: float = 1e-11, max_iter: int = 2000) -> KLShampooResult:
    S = _kl_init(st, damping)
    xp = get_namespace(*S)
    changes: list[float] = []
    converged = False
    for _ in range(max_iter):
        new = _kl_step(st, S, beta, damping)
        change = max(float(xp.linalg.vector_norm(a - b)) / max(float(xp.linalg.vector_norm(b)), 1e-300)
                     for a, b in zip(new, S))
        S = new
        changes.append(change)
        if change <= tol:
            converged = True
            break
    return KLShampooResult(factors=_normalize(S), n_steps=len(changes), converged=converged, changes=changes)
