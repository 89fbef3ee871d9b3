"""The tensor normal distribution, its mode moments and TNT's estimator of its Kronecker factors.

* :class:`TensorNormal` — ``vec(X) ~ N(vec(M), U_1 kron ... kron U_k)`` [RG21] [paper] (spec section 2).
* :func:`mode_moments` — ``S_i = mean_n G_(i) G_(i)^T``.
* :func:`tnt_factors` / :func:`tnt_factors_from_moments` — TNT's estimator with the
  "equal average eigenvalue" scale rule [code; paper] (spec section 3).
* :func:`normalize` — the scale rule applied to any factors (the product is unchanged).

The tensor-normal maximum-likelihood estimate (flip-flop) is in :mod:`tnt_ref.tensor_normal_mle`,
which imports this module.

Scale convention: the factors are identifiable only up to ``(a_1 U_1, ..., a_k U_k)`` with
``prod a_i = 1`` [paper]; every estimator here returns them normalized so that ``tr(U_i) / d_i``
is the same number ``c`` for every mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import (
    check_array,
    check_dense_size,
    check_int,
    check_psd_factors,
    check_rng,
    check_samples,
    check_square_factors,
    check_tolerance,
    cholesky_factors,
)
from .backend import get_namespace
from .tensor import _kron, _mode_products, check_kron_size

__all__ = [
    "TensorNormal",
    "mode_moments",
    "tnt_factors",
    "tnt_factors_from_moments",
    "normalize",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _logdet_from_chol(xp, lower) -> float:
    return 2.0 * float(xp.sum(xp.log(xp.linalg.diagonal(lower))))


class TensorNormal:
    """Tensor normal distribution ``TN(M; U_1, ..., U_k)`` [RG21] [paper] (spec section 2).

    ``X ~ TN(M; U_1, ..., U_k)`` means ``vec(X) ~ N(vec(M), U_1 kron ... kron U_k)`` with the
    row-major ``vec`` of spec section 1.

    Parameters
    ----------
    factors : list of arrays, shapes ``(d_i, d_i)``
        Symmetric positive definite covariance factors ``U_i``, one per mode.
    mean : array, shape ``(d_1, ..., d_k)``, optional
        ``M``; zero if omitted.

    Raises
    ------
    ValueError
        A factor is not square, symmetric or positive definite, or ``mean`` has the wrong shape.

    Examples
    --------
    >>> import numpy as np
    >>> tn = TensorNormal([np.eye(2), 2 * np.eye(3)])
    >>> tn.shape, float(np.trace(tn.covariance()))
    ((2, 3), 12.0)
    """

    def __init__(self, factors: Sequence[Any], mean: Any = None):
        factors = check_square_factors(factors, "factors")
        self._chols = cholesky_factors(factors, "factors")
        self.factors = [(u + u.T) / 2 for u in factors]
        self.shape = tuple(int(u.shape[0]) for u in factors)
        self.size = _prod(self.shape)
        xp = get_namespace(*self.factors)
        self._xp = xp
        if mean is not None:
            check_array(mean, "mean")
            if tuple(mean.shape) != self.shape:
                raise ValueError(f"`mean` must have shape {self.shape} to match the factors; got {tuple(mean.shape)}.")
        self.mean = mean
        # L_i^{-1}: whitening operators (small d_i x d_i matrices)
        self._chol_inv = [xp.linalg.inv(lo) for lo in self._chols]

    @property
    def ndim(self) -> int:
        """Number of modes ``k``."""
        return len(self.shape)

    def covariance(self):
        """Dense covariance ``U_1 kron ... kron U_k``, shape ``(D, D)`` (for checks and small cases;
        refused above ``tnt_ref._validation.MAX_DENSE_BYTES``)."""
        check_kron_size(self.factors, f"TensorNormal.covariance() (D = {self.size})")
        return _kron(*self.factors)

    def sample(self, n: int, rng: np.random.Generator):
        """Draw ``n`` samples ``X = M + Z x_1 L_1 ... x_k L_k`` with ``L_i L_i^T = U_i`` [derived].

        The standard normal ``Z`` is drawn on the host with ``rng`` and moved to the factors'
        backend, so the same seed gives the same samples on every backend.

        Returns
        -------
        array, shape ``(n, d_1, ..., d_k)``
        """
        n = check_int(n, "n", min_value=1)
        check_rng(rng)
        check_dense_size((n, *self.shape), 8, f"TensorNormal.sample(n={n})",
                         "Draw fewer samples per call (a loop over batches of n), or use the exact moments.")
        xp = self._xp
        z = xp.asarray(rng.standard_normal((n, *self.shape)), dtype=self.factors[0].dtype)
        x = _mode_products(z, self._chols, offset=1)  # (n, d_1, ..., d_k)
        return x if self.mean is None else x + self.mean

    def logpdf(self, X):
        """Log-density, using the Kronecker structure (never the dense covariance).

        ``-(D/2) log 2pi - (1/2) sum_i (D/d_i) logdet U_i - (1/2) ||(X - M) x_1 L_1^{-1} ... x_k L_k^{-1}||_F^2``
        [derived] (spec section 2).

        Parameters
        ----------
        X : array, shape ``(d_1, ..., d_k)`` or ``(n, d_1, ..., d_k)``

        Returns
        -------
        float array of shape ``()`` or ``(n,)``.
        """
        check_array(X, "X")
        batched = X.ndim == self.ndim + 1
        if tuple(X.shape[int(batched) :]) != self.shape:
            raise ValueError(
                f"`X` must have shape {self.shape} or (n, {', '.join(map(str, self.shape))}); got {tuple(X.shape)}."
            )
        xp = self._xp
        R = X if self.mean is None else X - self.mean
        Y = _mode_products(R, self._chol_inv, offset=int(batched))  # whitened, same shape as R
        axes = tuple(range(int(batched), Y.ndim))
        quad = xp.sum(Y * Y, axis=axes)
        D = self.size
        logdet = sum((D / d) * _logdet_from_chol(xp, lo) for d, lo in zip(self.shape, self._chols))
        return -0.5 * (D * _LOG_2PI + logdet) - 0.5 * quad

    def kl(self, other: TensorNormal) -> float:
        """``KL(self || other)`` in closed form through the factors.

        ``KL = (1/2) [prod_i tr(V_i^{-1} U_i) - D + logdet(V) - logdet(U) + dm^T V^{-1} dm]`` with
        ``V = kron V_i`` the other covariance and ``dm`` the mean difference [derived].
        """
        if not isinstance(other, TensorNormal):
            raise TypeError(f"`other` must be a TensorNormal; got {type(other).__name__}.")
        if other.shape != self.shape:
            raise ValueError(f"`other` has shape {other.shape}, expected {self.shape}.")
        xp = self._xp
        D = self.size
        tr = 1.0
        for u, v in zip(self.factors, other.factors):
            tr *= float(xp.linalg.trace(xp.linalg.solve(v, u)))
        logdet_u = sum((D / d) * _logdet_from_chol(xp, lo) for d, lo in zip(self.shape, self._chols))
        logdet_v = sum((D / d) * _logdet_from_chol(xp, lo) for d, lo in zip(other.shape, other._chols))
        maha = 0.0
        if self.mean is not None or other.mean is not None:
            zero = xp.zeros(self.shape, dtype=self.factors[0].dtype)
            dm = (other.mean if other.mean is not None else zero) - (self.mean if self.mean is not None else zero)
            y = _mode_products(dm, other._chol_inv)
            maha = float(xp.sum(y * y))
        return 0.5 * (tr - D + logdet_v - logdet_u + maha)


def mode_moments(samples):
    """Mode moments ``S_i = (1/n) sum_n G_(i) G_(i)^T`` of a stack of tensors.

    Every ``S_i`` has the same trace ``(1/n) sum_n ||G_n||_F^2`` [derived].

    Parameters
    ----------
    samples : array, shape ``(n, d_1, ..., d_k)``

    Returns
    -------
    list of ``k`` arrays, shapes ``(d_i, d_i)``; per-sample scale (a mean, not a sum).

    Examples
    --------
    >>> import numpy as np
    >>> G = np.arange(24.0).reshape(1, 2, 3, 4)
    >>> [round(float(np.trace(s))) for s in mode_moments(G)]
    [4324, 4324, 4324]
    """
    check_samples(samples)
    xp = get_namespace(samples)
    samples, s, peak = _power_of_two_scale(samples)
    if s == 1.0:
        return _mode_moments(samples)
    # scale back by s**2 only if the result is representable
    fi = xp.finfo(samples.dtype)
    out = _mode_moments(samples / s)
    tau = float(xp.linalg.trace(out[0])) * s * s  # a Python float: inf or 0.0 without a warning
    if not (float(fi.smallest_normal) <= tau <= float(fi.max)):
        raise ValueError(
            f"the mode moments of `samples` (largest |entry| {peak:.3g}) are not representable in {samples.dtype}: "
            f"their squares {'overflow' if tau > 1 else 'underflow to zero'}. Rescale `samples` (the moments "
            "scale with its square), or use tnt_factors, which rescales internally."
        )
    return [m * s * s for m in out]


def _power_of_two_scale(samples):
    """``(samples as real floats, s, peak)`` with ``peak`` the largest ``|entry|``.

    ``s = 1`` when the squares of the entries stay in the float range; otherwise ``s`` is the power
    of two that brings ``peak`` into ``[1, 2)``, so the moments are formed from ``samples / s``
    (an exact division) and scaled back by the caller. Integer samples become float64 (no integer
    overflow in the moments).
    """
    xp = get_namespace(samples)
    if not xp.isdtype(samples.dtype, "real floating"):
        samples = xp.astype(samples, xp.float64)
    fi = xp.finfo(samples.dtype)
    peak = float(xp.max(xp.abs(samples)))
    if peak == 0.0 or (float(fi.smallest_normal) ** 0.25 <= peak <= float(fi.max) ** 0.25):
        return samples, 1.0, peak
    return samples, 2.0 ** math.floor(math.log2(peak)), peak


def _mode_moments(samples, symmetrize: bool = True):
    """Mode moments, no checks. ``symmetrize=False`` (hot loops whose consumers symmetrize anyway:
    the damped inverses, ``safe_eigh``) skips the transposed pass that removes round-off asymmetry."""
    xp = get_namespace(samples)
    n, k = samples.shape[0], samples.ndim - 1
    out = []
    for i in range(k):
        Ui = xp.reshape(xp.moveaxis(samples, i + 1, 0), (samples.shape[i + 1], -1))  # (d_i, n D / d_i)
        S = xp.matmul(Ui, Ui.T)  # (d_i, d_i), summed over samples; NumPy uses SYRK for A @ A.T
        if n > 1:
            S = S / n
        out.append((S + S.T) / 2 if symmetrize else S)
    return out


def tnt_factors_from_moments(moments: Sequence[Any], *, rtol: float | None = None):
    """TNT's estimator of the Kronecker factors from mode moments [code; paper] (spec section 3).

    Given ``S_i = E[G_(i) G_(i)^T]`` (common trace ``tau``) of a zero-mean tensor ``G``::

        c   = (tau / D) ** (1 / k)
        U_i = S_i / (c ** (k - 1) * D / d_i)

    so that ``tr(U_i) / d_i = c`` for every mode ("equal average eigenvalue") and
    ``kron U_i = kron S_i / tau ** (k - 1)`` with trace ``tau`` [derived]. For ``k = 1`` this is
    ``U_1 = S_1``, the full block. If ``G`` is tensor normal and the moments are exact, the
    estimator returns its covariance factors (normalized) exactly [derived].

    Zero-trace guard (not in the authors' code): if ``tau == 0`` (an all-zero gradient block) the
    formula is 0/0; the factors returned are then zero matrices, so a damped inverse
    ``(U_i + eps I)^{-1}`` becomes ``I / eps``.

    Parameters
    ----------
    moments : list of arrays, shapes ``(d_i, d_i)``
        Symmetric positive semi-definite mode moments (same scale for all modes).
    rtol : float, optional
        Tolerance on the relative spread of the traces ``tr S_i`` (they must agree). Default
        ``max(1e-6, 100 * eps)`` of the dtype.

    Returns
    -------
    list of arrays, shapes ``(d_i, d_i)``.

    Raises
    ------
    ValueError
        The traces of the moments disagree (they cannot be mode moments of one tensor), or a
        moment is not positive semi-definite (mode moments always are).
    """
    moments = check_square_factors(moments, "moments")
    check_psd_factors(moments, "moments")
    if rtol is not None:
        rtol = check_tolerance(rtol, "rtol")  # a NaN tolerance would accept any traces
    return _tnt_factors_from_moments(moments, rtol)


def _tnt_factors_from_moments(moments, rtol: float | None = None):
    """:func:`tnt_factors_from_moments` without the per-factor checks (the traces are still compared)."""
    xp = get_namespace(*moments)
    shape = [int(s.shape[0]) for s in moments]
    k, D = len(shape), _prod(shape)
    traces = [float(xp.linalg.trace(s)) for s in moments]
    tau = sum(traces) / k
    if rtol is None:
        rtol = max(1e-6, 100 * float(xp.finfo(moments[0].dtype).eps))
    spread = max(abs(t - tau) for t in traces)
    if not all(math.isfinite(t) for t in traces) or min(traces) < 0 or spread > rtol * max(abs(tau), 1e-300):
        raise ValueError(
            f"`moments` must be mode moments of one tensor: their traces must agree and be non-negative; "
            f"got traces {[f'{t:.6g}' for t in traces]} (relative spread {spread / max(abs(tau), 1e-300):.3g} > {rtol:g})."
        )
    if tau == 0.0:
        return [xp.zeros_like(s) for s in moments]
    c = (tau / D) ** (1.0 / k)
    return [s / (c ** (k - 1) * D / d) for s, d in zip(moments, shape)]


def tnt_factors(samples):
    """TNT's factors from samples: :func:`tnt_factors_from_moments` of :func:`mode_moments`.

    Parameters
    ----------
    samples : array, shape ``(n, d_1, ..., d_k)``
        Zero-mean gradient tensors (no centring is done, as in [RG21]).

    Returns
    -------
    list of arrays, shapes ``(d_i, d_i)``, normalized to equal average eigenvalue.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.random.default_rng(0).standard_normal((50, 2, 3))
    >>> U = tnt_factors(G)
    >>> bool(np.isclose(np.trace(U[0]) / 2, np.trace(U[1]) / 3))
    True
    """
    check_samples(samples)
    xp = get_namespace(samples)
    k = samples.ndim - 1
    samples, s, peak = _power_of_two_scale(samples)
    if s == 1.0:
        return tnt_factors_from_moments(_mode_moments(samples))
    # scale back: U_i(G) = s**(2/k) U_i(G / s) [derived]
    fi = xp.finfo(samples.dtype)
    U = tnt_factors_from_moments(_mode_moments(samples / s))
    try:
        a = s ** (2.0 / k)
    except OverflowError:  # Python's float power raises instead of returning inf
        a = math.inf
    if not (a > 0.0 and math.isfinite(a)) or not (float(fi.smallest_normal) <= a * float(xp.max(xp.abs(U[0]))) <= float(fi.max)):
        raise ValueError(
            f"TNT's factors of `samples` (largest |entry| {peak:.3g}) are not representable in {samples.dtype}: "
            f"they scale like |entry|**(2/k) = {peak:.3g}**{2.0 / k:.3g}. Rescale `samples`."
        )
    return [u * a for u in U]


def normalize(factors: Sequence[Any]):
    """Rescale factors to equal average eigenvalue, keeping their Kronecker product (spec section 3).

    ``U_i <- U_i * g / a_i`` with ``a_i = tr(U_i) / d_i`` and ``g = (prod a_i) ** (1/k)``; the
    scalars multiply to one, so ``kron U_i`` is unchanged [paper: scale non-identifiability].
    If any factor has zero trace the product is zero and zero factors are returned.

    Raises
    ------
    ValueError
        A factor is not positive semi-definite (the scale rule divides by traces, and an
        indefinite factor would be rescaled without a word).
    """
    factors = check_square_factors(factors, "factors")
    check_psd_factors(factors, "factors")
    return _normalize(factors)


def _normalize(factors):
    xp = get_namespace(*factors)
    a = [float(xp.linalg.trace(u)) / u.shape[0] for u in factors]
    if min(a) < 0:
        raise ValueError(f"`factors` must be positive semi-definite; got average eigenvalues {a}.")
    if min(a) == 0.0:
        return [xp.zeros_like(u) for u in factors]
    g = math.exp(sum(math.log(x) for x in a) / len(a))
    return [u * (g / ai) for u, ai in zip(factors, a)]
