"""Shampoo's implied factors and roots [GKS18], Shampoo^2's power steps [MSV+25] and SOAP's eigenbasis [VMZ+25].

References and conventions: :mod:`tnt_ref.estimators`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._validation import (
    check_int,
    check_positive,
    check_psd_factors,
    check_square_factors,
)
from ..backend import get_namespace
from ..kronecker import safe_eigh
from ..tensor_normal import _normalize
from .statistics import _statistics

__all__ = ["psd_power", "shampoo_factors", "shampoo_factors_from_moments", "shampoo_preconditioner",
           "power_step_factors", "soap_factors"]


# ----------------------------------------------------------------------------- matrix powers
def psd_power(u, power: float, *, floor: float = 0.0):
    """``u ** power`` for a symmetric positive semi-definite ``u`` ``(d, d)``, through :func:`safe_eigh`.

    Eigenvalues below ``floor`` are raised to ``floor`` first (round-off makes PSD matrices slightly
    indefinite; a negative ``power`` needs ``floor > 0`` or a definite ``u``).
    """
    lam, Q = safe_eigh(u, floor=floor)
    return (Q * lam**power) @ Q.T


# ----------------------------------------------------------------------------- Shampoo
def shampoo_factors_from_moments(moments: Sequence[Any]):
    """Shampoo's implied Kronecker approximation of ``F`` from mode moments ``S_i`` [GKS18] (spec section 4).

    Shampoo preconditions with ``kron_i (S_i + eps I)^(-1/(2k))`` [GKS18], the inverse square root
    of ``kron_i S_i^(1/k)`` (undamped): that product is the second-moment matrix Shampoo implies, as
    ``diag(F)`` is Adam's [MSV+25]. Its scale is arbitrary (Shampoo's step size is usually grafted);
    here it is fixed by the trace, ``tr(kron U_i) = tau`` (the moments' common trace, ``tr F`` for
    exact moments) [derived]. For ``k = 1``: ``U_1 = S_1`` (the full block).

    Parameters
    ----------
    moments : list of arrays, shapes ``(d_i, d_i)``
        Symmetric PSD mode moments ``S_i`` (same trace; per-sample or batch-mean scale, as given).

    Returns
    -------
    list of arrays ``(d_i, d_i)``, normalized to equal average eigenvalue.

    Examples
    --------
    >>> import numpy as np
    >>> from tnt_ref import kron
    >>> U = shampoo_factors_from_moments([np.diag([4.0, 1.0]), np.diag([1.0, 4.0])])
    >>> bool(np.allclose(np.diag(kron(*U)), 5 * np.array([2, 4, 1, 2]) / 9))
    True
    """
    moments = check_square_factors(moments, "moments")
    check_psd_factors(moments, "moments")
    return _shampoo_from_moments(moments)


def _shampoo_from_moments(moments):
    xp = get_namespace(*moments)
    k = len(moments)
    tau = sum(float(xp.linalg.trace(s)) for s in moments) / k
    R = [psd_power(s, 1.0 / k) for s in moments]
    tr = math.prod(float(xp.linalg.trace(r)) for r in R)
    if tr <= 0.0 or tau <= 0.0:
        return [xp.zeros_like(s) for s in moments]
    return _normalize([R[0] * (tau / tr), *R[1:]])


def shampoo_factors(samples: Any = None, *, covariance: Any = None, shape: Sequence[int] | None = None):
    """:func:`shampoo_factors_from_moments` of the mode moments of ``samples`` or of ``covariance``.

    Parameters
    ----------
    samples : array ``(n, d_1, ..., d_k)``, optional
    covariance : array ``(D, D)``, optional, with ``shape``

    Returns
    -------
    list of arrays ``(d_i, d_i)``: ``kron U_i`` is ``kron S_i^(1/k)`` scaled to trace ``tr F``.
    """
    st = _statistics(samples, covariance, shape, "shampoo_factors")
    return _shampoo_from_moments([st.mode_moment(i) for i in range(len(st.tshape))])


def shampoo_preconditioner(moments: Sequence[Any], damping: float):
    """Shampoo's per-factor roots ``R_i = (S_i + eps I)^(-1/(2k))`` [GKS18]; ``kron R_i`` multiplies ``vec g``.

    Parameters
    ----------
    moments : list of arrays ``(d_i, d_i)``, symmetric PSD
    damping : float
        ``eps > 0``.

    Returns
    -------
    list of arrays ``(d_i, d_i)``.
    """
    moments = check_square_factors(moments, "moments")
    check_psd_factors(moments, "moments")
    eps = check_positive(damping, "damping")
    return _shampoo_roots(moments, eps)


def _shampoo_roots(moments, eps: float, floor: float = 0.0):
    xp = get_namespace(*moments)
    k = len(moments)
    return [psd_power(s + eps * xp.eye(s.shape[0], dtype=s.dtype), -1.0 / (2 * k), floor=floor) for s in moments]


# ----------------------------------------------------------------------------- Shampoo^2: power steps
def power_step_factors(samples: Any = None, *, covariance: Any = None, shape: Sequence[int] | None = None,
                       steps: int = 1):
    """"Shampoo^2": ``steps`` Jacobi steps of the power iteration for ``argmin ||F - kron U_i||_F`` from identities.

    The Frobenius-optimal Kronecker product is the leading rank-one term of the Van Loan-Pitsianis
    rearrangement of ``F`` (spec section 4), and a product of the rearranged ``F`` with
    ``vec(kron_{l != i} X_l)`` is ``mode_moment(i, X)`` [derived]. One step from identities gives
    every factor at once as the mode moment ``S_i = E[G_(i) G_(i)^T]``: for matrices (``k = 2``)
    Shampoo's statistics ``L = E[G G^T]``, ``R = E[G^T G]``, whose product is the *square* of
    Shampoo's implied approximation ``L^(1/2) kron R^(1/2)`` [MSV+25]. For ``k >= 3`` the step
    still gives ``kron S_i``, no longer the square of Shampoo's ``kron S_i^(1/k)`` [derived].

    Scale: [MSV+25] compare directions (cosine similarity), so the step's scale is open. Here it
    is the one the power iteration assigns, the Frobenius projection
    ``sigma = <F, kron X_i>`` for unit-norm ``X_i``: the best multiple of the step's direction
    [derived]. With the trace rule instead (``tr(kron U_i) = tr F``) one step is *exactly* TNT's
    estimator (spec section 3) [derived]. Each step uses only the previous step's factors (Jacobi);
    many steps converge to :func:`~tnt_ref.kronecker.frobenius_kron_fit`.

    Parameters
    ----------
    samples : array ``(n, d_1, ..., d_k)``, optional
    covariance : array ``(D, D)``, optional, with ``shape``
    steps : int
        Number of power steps (``>= 1``).

    Returns
    -------
    list of arrays ``(d_i, d_i)``, normalized to equal average eigenvalue (PSD when ``F`` is).
    """
    st = _statistics(samples, covariance, shape, "power_step_factors")
    steps = check_int(steps, "steps", min_value=1)
    return _power_steps(st, steps)


def _power_steps(st, steps: int = 1):
    k = len(st.tshape)
    X = None  # identities
    for _ in range(steps):
        new = [st.mode_moment(i, X) for i in range(k)]  # every mode from the previous factors (Jacobi)
        xp = get_namespace(*new)
        norms = [float(xp.linalg.vector_norm(m)) for m in new]
        if min(norms) == 0.0:
            return [xp.zeros_like(m) for m in new]
        X = [m / nm for m, nm in zip(new, norms)]
    sigma = st.inner_kron(X)  # <R(F), x_1 o ... o x_k>: the coefficient of the rank-one term
    U = [X[0] * sigma, *X[1:]]
    xp = get_namespace(*U)
    if any(float(xp.linalg.trace(u)) < 0 for u in U):  # only for an F that is not PSD
        return U
    return _normalize(U)


# ----------------------------------------------------------------------------- SOAP
def soap_factors(samples: Any = None, *, covariance: Any = None, shape: Sequence[int] | None = None):
    """SOAP's second-moment matrix: Adam's ``E[g^2]`` in the eigenbasis of Shampoo's factors [VMZ+25].

    SOAP runs Adam on the rotated gradient ``G x_1 Q_1^T ... x_k Q_k^T`` with ``Q_i`` the
    eigenvectors of Shampoo's factors (the mode moments ``S_i``) [VMZ+25]. Adam's second moment
    there estimates ``v = diag(Q^T F Q)`` (``Q = kron Q_i``), so SOAP's implied approximation of
    ``F`` is ``Q diag(vec v) Q^T``: Kronecker eigenvectors, ``D`` free eigenvalues (the
    eigenvalue-corrected form of George et al. 2018 with Shampoo's basis). Among matrices with
    eigenvectors ``Q`` it is the closest to ``F`` in Frobenius norm, and it is exact when ``F`` is a
    Kronecker product of SPD factors with distinct eigenvalues [derived].

    Parameters
    ----------
    samples : array ``(n, d_1, ..., d_k)``, optional
    covariance : array ``(D, D)``, optional, with ``shape``

    Returns
    -------
    (Q, v): list of ``(d_i, d_i)`` orthogonal matrices (eigenvectors as columns, ascending
    eigenvalues of ``S_i``) and ``v`` ``(d_1, ..., d_k)``, the eigenvalues in the row-major
    order of ``kron Q_i``'s columns.
    """
    st = _statistics(samples, covariance, shape, "soap_factors")
    return _soap(st)


def _soap(st):
    Q = [safe_eigh(st.mode_moment(i), floor=None)[1] for i in range(len(st.tshape))]
    return Q, st.rotated_diag(Q)
