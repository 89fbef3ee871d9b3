"""The Kronecker estimators of the Shampoo family, beside TNT's (spec section 4).

Each function estimates the second-moment matrix ``F = E[vec G vec G^T]`` of a zero-mean random
tensor ``G`` of shape ``(d_1, ..., d_k)`` (row-major ``vec``, ``numpy.kron`` order; spec section 1)
by a Kronecker-structured matrix, from one of two kinds of statistics:

* ``samples`` ``(n, d_1, ..., d_k)``: ``F`` is estimated by their mean outer product, so the scale
  is the samples' own (per-example gradients estimate the Fisher ``F``, gradients of mini-batch
  *mean* losses estimate ``F / m``; spec section 5);
* ``covariance=F`` ``(D, D)`` with ``shape=(d_1, ..., d_k)``: the population version.

Both only enter through three products, which the block-free exact Fisher of
:mod:`tnt_ref.fisher_gram` also provides (so the approximation ladder runs these very functions
on blocks too large to form):

* ``mode_moment(i, W)`` = ``E[G_(i) (kron_{l != i} W_l) G_(i)^T]`` (``W = None``: identities);
* ``inner_kron(U)`` = ``<F, kron U_i>``;
* ``rotated_diag(Q)`` = ``diag((kron Q_i)^T F (kron Q_i))`` as a tensor.

The estimators (references: **[GKS18]** Gupta, Koren & Singer, *Shampoo*, ICML 2018; **[MSV+25]**
Morwani, Shapira, Vyas, Malach, Kakade & Janson, *A New Perspective on Shampoo's Preconditioner*,
ICLR 2025; **[VMZ+25]** Vyas, Morwani, Zhao et al., *SOAP*, ICLR 2025; **[LLD+26]** Lin, Lowe,
Dangel, Eschenhagen, Xu & Grosse, *Understanding and Improving Shampoo and SOAP via
Kullback-Leibler Minimization*, ICLR 2026, arXiv:2509.03378):

* :func:`shampoo_factors` — Shampoo's implied approximation ``kron S_i^(1/k)`` (its
  preconditioner is ``kron (S_i + eps I)^(-1/(2k))``, :func:`shampoo_preconditioner`) [GKS18];
* :func:`power_step_factors` — "Shampoo^2": steps of the higher-order power iteration for the
  Frobenius-optimal Kronecker product, started from identities [MSV+25];
* :func:`kl_shampoo_init`, :func:`kl_shampoo_update`, :func:`kl_shampoo_factors` — KL-Shampoo's
  one flip-flop step per optimizer step with its moving average, and its fixed point [LLD+26];
* :func:`soap_factors` — SOAP's eigenbasis (of Shampoo's factors) and Adam's second moment in it
  [VMZ+25].

Every Kronecker estimate is returned normalized to equal average eigenvalue (``tr(U_i) / d_i`` the
same for every mode), as in :mod:`tnt_ref.tensor_normal`: only the product is identifiable.
Imports: :mod:`tnt_ref.tensor`, :mod:`tnt_ref.tensor_normal`, :mod:`tnt_ref.kronecker` (one way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._validation import (
    check_array,
    check_int,
    check_positive,
    check_psd_factors,
    check_samples,
    check_square_factors,
    check_unit_interval,
    linalg_errors,
)
from .backend import get_namespace
from .kronecker import safe_eigh
from .tensor import _mode_products
from .tensor_normal import _normalize, _tnt_factors_from_moments
from .tensor_normal_mle import _mode_update_cov

__all__ = [
    "psd_power",
    "shampoo_factors",
    "shampoo_factors_from_moments",
    "shampoo_preconditioner",
    "power_step_factors",
    "kl_shampoo_init",
    "kl_shampoo_update",
    "kl_shampoo_factors",
    "KLShampooResult",
    "soap_factors",
]


# ----------------------------------------------------------------------------- statistics
class _Samples:
    """The three products of ``F = (1/n) sum_n vec G_n vec G_n^T`` from the samples ``G`` ``(n, *tshape)``."""

    def __init__(self, G):
        self.G = G
        self.tshape = tuple(int(d) for d in G.shape[1:])
        self.n = int(G.shape[0])

    def mode_moment(self, i: int, W=None):
        """``(1/n) sum_n G_(i) (kron_{l != i} W_l) G_(i)^T`` ``(d_i, d_i)``; ``W = None``: the mode moment."""
        xp = get_namespace(self.G)
        k = len(self.tshape)
        Y = self.G if W is None else _mode_products(self.G, [None if l == i else W[l] for l in range(k)], offset=1)
        others = [0] + [l + 1 for l in range(k) if l != i]
        M = xp.tensordot(self.G, Y, axes=(others, others)) / self.n  # (d_i, d_i)
        return (M + M.T) / 2

    def inner_kron(self, U) -> float:
        """``<F, kron U_i> = (1/n) sum_n <G_n, G_n x_1 U_1 ... x_k U_k>`` (``U_i`` symmetric)."""
        xp = get_namespace(self.G)
        return float(xp.sum(self.G * _mode_products(self.G, U, offset=1))) / self.n

    def rotated_diag(self, Q):
        """``(1/n) sum_n (G_n x_1 Q_1^T ... x_k Q_k^T)^2`` ``tshape``: ``diag(Q^T F Q)`` with ``Q = kron Q_i``."""
        xp = get_namespace(self.G)
        Y = _mode_products(self.G, [q.T for q in Q], offset=1)  # (n, *tshape): the rotated samples
        return xp.sum(Y * Y, axis=0) / self.n


class _Covariance:
    """The same three products from a dense ``F`` ``(D, D)`` (row-major ``vec``)."""

    def __init__(self, F, tshape):
        self.F = F
        self.tshape = tuple(int(d) for d in tshape)

    def mode_moment(self, i: int, W=None):
        """The partial trace ``tr_{l != i}[F (I_i kron_{l != i} W_l)]`` ``(d_i, d_i)`` (the MLE's, without ``d_i / D``)."""
        xp = get_namespace(self.F)
        D = math.prod(self.tshape)
        if W is None:
            W = [xp.eye(d, dtype=self.F.dtype) for d in self.tshape]
        return _mode_update_cov(self.F, W, i, self.tshape) * (D / self.tshape[i])

    def inner_kron(self, U) -> float:
        """``tr(F kron U_i)`` by mode products on the column modes (``U_i`` symmetric)."""
        xp = get_namespace(self.F)
        k, D = len(self.tshape), math.prod(self.tshape)
        T = _mode_products(xp.reshape(self.F, (*self.tshape, *self.tshape)), U, offset=k)
        return float(xp.linalg.trace(xp.reshape(T, (D, D))))

    def rotated_diag(self, Q):
        """``diag((kron Q_i)^T F (kron Q_i))`` as a tensor ``tshape``."""
        xp = get_namespace(self.F)
        k, D = len(self.tshape), math.prod(self.tshape)
        T = xp.reshape(self.F, (*self.tshape, *self.tshape))
        T = _mode_products(T, [q.T for q in Q], offset=0)  # rows rotated
        T = _mode_products(T, [q.T for q in Q], offset=k)  # columns rotated
        return xp.reshape(xp.linalg.diagonal(xp.reshape(T, (D, D))), self.tshape)


def _statistics(samples, covariance, shape, who: str):
    """Validate the ``samples`` / ``covariance`` + ``shape`` pair of a public estimator; return its statistics."""
    if (samples is None) == (covariance is None):
        raise ValueError(f"pass exactly one of `samples` (n, d_1, ..., d_k) and `covariance` (D, D) to {who}().")
    if samples is not None:
        check_samples(samples)
        xp = get_namespace(samples)
        if not xp.isdtype(samples.dtype, "real floating"):
            samples = xp.astype(samples, xp.float64)
        return _Samples(samples)
    if shape is None:
        raise ValueError(f"`shape` (d_1, ..., d_k) is required with `covariance` in {who}().")
    shape = tuple(check_int(s, "shape", min_value=1) for s in shape)
    D = math.prod(shape)
    check_array(covariance, "covariance", ndim=2)
    if tuple(covariance.shape) != (D, D):
        raise ValueError(f"`covariance` must have shape ({D}, {D}) for tensor shape {shape}; got {tuple(covariance.shape)}.")
    xp = get_namespace(covariance)
    if not xp.isdtype(covariance.dtype, "real floating"):
        covariance = xp.astype(covariance, xp.float64)
    return _Covariance((covariance + covariance.T) / 2, shape)


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
