"""Kronecker-factored symmetric matrices, applied without forming the product.

``KroneckerMatrix([U_1, ..., U_k])`` stands for ``U_1 kron ... kron U_k`` (``numpy.kron`` order,
row-major ``vec``; spec section 1). It multiplies through mode products, so a ``D x D`` matrix
costs ``O(D sum_i d_i)`` per product and ``sum_i d_i^2`` memory.

Two damped inverses (GUIDE: "say which one each option is"):

* per-factor damping ``kron_i (U_i + eps I)^{-1}`` — what TNT does [code] (:meth:`KroneckerMatrix.damped_inverse`);
  ``scheme="pi"`` instead damps factor ``i`` with ``pi_i * eps ** (1/k)``, the pi-adjusted form of
  Martens & Grosse (2015) that kfac-jax applies to TNT's factors (``pi_i = 1`` after TNT's scale rule);
* exact damping ``(kron_i U_i + lam I)^{-1}`` through the factors' eigendecompositions
  (:meth:`KroneckerMatrix.solve_damped`).

Also the Frobenius-optimal Kronecker fit of a dense matrix (spec section 4):
:func:`frobenius_kron_fit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import (
    check_array,
    check_dense_size,
    check_int,
    check_positive,
    check_psd_factors,
    check_square_factors,
    check_tolerance,
    itemsize_of,
    linalg_errors,
    warn,
)
from .backend import get_namespace, is_cupy, is_numpy, scipy_namespace, to_numpy
from .tensor import _kron, _mode_products, check_kron_size, outer
from .tensor_normal import _normalize

__all__ = ["KroneckerMatrix", "damped_inverse_factors", "frobenius_kron_fit", "safe_eigh"]


def safe_eigh(u, *, floor: float = 0.0):
    """Eigendecomposition of a symmetric PSD matrix with the safeguards peers learned the hard way.

    Symmetrizes first; refuses NaN/Inf input; returns ``(0, I)`` for an all-zero matrix without
    calling ``eigh``; retries in float64 if the backend's ``eigh`` fails
    or returns non-finite values (CuPy's ``eigh`` of a zero matrix has returned NaN, cupy#6539);
    clips eigenvalues below ``floor`` (roundoff makes PSD matrices slightly indefinite).

    Parameters
    ----------
    u : array, shape ``(d, d)``
    floor : float
        Smallest eigenvalue kept.

    Returns
    -------
    (eigenvalues ``(d,)`` ascending, eigenvectors ``(d, d)`` as columns), in ``u``'s dtype.
    """
    xp = get_namespace(u)
    check_array(u, "u", ndim=2)
    if floor is not None:
        floor = check_positive(floor, "floor", allow_zero=True)
    dtype = u.dtype
    s = (u + u.T) / 2
    if not bool(xp.any(s != 0)):  # all-zero statistics: answer directly (CuPy's eigh has returned NaN here)
        return xp.zeros((u.shape[0],), dtype=dtype), xp.eye(u.shape[0], dtype=dtype)
    ok = False
    try:
        lam, Q = xp.linalg.eigh(s)
        ok = bool(xp.all(xp.isfinite(lam))) and bool(xp.all(xp.isfinite(Q)))
    except Exception:  # noqa: BLE001  (LinAlgError and backend equivalents: retry below)
        ok = False
    if not ok:
        lam, Q = xp.linalg.eigh(xp.astype(s, xp.float64))
        if not (bool(xp.all(xp.isfinite(lam))) and bool(xp.all(xp.isfinite(Q)))):
            raise ValueError("eigendecomposition failed in float64 too; the matrix is not a usable PSD matrix.")
        lam, Q = xp.astype(lam, dtype), xp.astype(Q, dtype)
    lam = xp.clip(lam, floor, None) if floor is not None else lam
    return lam, Q


class KroneckerMatrix:
    """The symmetric matrix ``U_1 kron ... kron U_k`` held as its factors.

    Parameters
    ----------
    factors : list of arrays, shapes ``(d_i, d_i)``
        Symmetric factors (positive semi-definite for :meth:`logdet` and the damped inverses).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((3, 3)); B = rng.standard_normal((4, 4))
    >>> K = KroneckerMatrix([A @ A.T, B @ B.T]); v = rng.standard_normal(12)
    >>> bool(np.allclose(K.matvec(v), np.kron(A @ A.T, B @ B.T) @ v))
    True
    """

    def __init__(self, factors: Sequence[Any]):
        self.factors = check_square_factors(factors, "factors")
        self.tensor_shape = tuple(int(u.shape[0]) for u in self.factors)
        D = 1
        for d in self.tensor_shape:
            D *= d
        self.shape = (D, D)
        self._xp = get_namespace(*self.factors)

    @property
    def dtype(self):
        return self.factors[0].dtype

    def __repr__(self) -> str:
        return f"KroneckerMatrix(tensor_shape={self.tensor_shape}, dtype={self.dtype})"

    def apply(self, X):
        """``X x_1 U_1 ... x_k U_k`` for a tensor ``(d_1, ..., d_k)`` or a stack ``(n, d_1, ..., d_k)``."""
        check_array(X, "X")
        batched = self._check_tensor(X)
        return _mode_products(X, self.factors, offset=int(batched))

    def _check_tensor(self, X) -> bool:
        k = len(self.tensor_shape)
        if tuple(X.shape[-k:]) != self.tensor_shape or X.ndim not in (k, k + 1):
            raise ValueError(
                f"`X` must have shape {self.tensor_shape} or (n, *{self.tensor_shape}); got {tuple(X.shape)}."
            )
        return X.ndim == k + 1

    def matvec(self, v):
        """``(kron U_i) v`` for ``v`` of shape ``(D,)`` or ``(D, r)``, via mode products."""
        check_array(v, "v")
        xp = self._xp
        D = self.shape[0]
        if v.ndim not in (1, 2) or v.shape[0] != D:
            raise ValueError(f"`v` must have shape ({D},) or ({D}, r); got {tuple(v.shape)}.")
        if v.ndim == 1:
            return xp.reshape(_mode_products(xp.reshape(v, self.tensor_shape), self.factors), (D,))
        X = xp.reshape(xp.moveaxis(v, 1, 0), (v.shape[1], *self.tensor_shape))  # (r, d_1..d_k)
        Y = _mode_products(X, self.factors, offset=1)
        return xp.moveaxis(xp.reshape(Y, (v.shape[1], D)), 0, 1)

    def dense(self):
        """The dense ``D x D`` matrix (``numpy.kron`` block order); for checks and small cases.

        Refused above ``tnt_ref._validation.MAX_DENSE_BYTES`` (:class:`~tnt_ref.DenseTooLargeError`)."""
        check_kron_size(self.factors, f"KroneckerMatrix.dense() (D = {self.shape[0]})")
        return _kron(*self.factors)

    def trace(self) -> float:
        """``tr(kron U_i) = prod_i tr(U_i)``."""
        out = 1.0
        for u in self.factors:
            out *= float(self._xp.linalg.trace(u))
        return out

    def logdet(self) -> float:
        """``logdet(kron U_i) = sum_i (D / d_i) logdet(U_i)``; ``-inf`` if singular, error if indefinite.

        Raises
        ------
        ValueError
            A factor is indefinite (an eigenvalue below ``-d * 100 * eps * max|lambda|``); the
            determinant of the product can then be positive while the matrix is not PSD.
        """
        D = self.shape[0]
        total = 0.0
        for i, lam in enumerate(check_psd_factors(self.factors, "factors")):
            d = lam.shape[0]
            tol = d * 100 * float(self._xp.finfo(lam.dtype).eps) * float(self._xp.max(self._xp.abs(lam)))
            if float(lam[0]) <= tol:  # singular up to round-off (a rank-deficient PSD factor)
                return float("-inf")
            total += (D / d) * float(self._xp.sum(self._xp.log(lam)))
        return total

    def eigvalsh(self):
        """All ``D`` eigenvalues, ascending: the products of the factors' eigenvalues [derived]."""
        xp = self._xp
        check_dense_size((self.shape[0],), itemsize_of(self.factors[0]), "KroneckerMatrix.eigvalsh() (all D eigenvalues)",
                         "Use the factors' eigenvalues (numpy.linalg.eigvalsh of each factor): their products are the spectrum.")
        lams = [xp.linalg.eigvalsh((u + u.T) / 2) for u in self.factors]
        return xp.sort(xp.reshape(outer(*lams), (-1,)))

    def damped_inverse(self, eps: float, *, scheme: str = "per-factor") -> KroneckerMatrix:
        """Per-factor damped inverse ``kron_i (U_i + eps_i I)^{-1}`` as a new KroneckerMatrix.

        ``scheme="per-factor"``: ``eps_i = eps`` for every factor, as TNT's code [code].
        ``scheme="pi"``: ``eps_i = pi_i * eps ** (1/k)`` with
        ``pi_i = (tr U_i / d_i) / (prod_j tr U_j / d_j) ** (1/k)`` (Martens & Grosse 2015; kfac-jax).

        Neither equals ``(kron U_i + eps I)^{-1}``; for that use :meth:`solve_damped`.

        Raises
        ------
        ValueError
            A factor is indefinite (then ``U_i + eps I`` may be indefinite or singular and the
            "inverse" is not positive definite), or ``eps`` is too small to make a factor invertible.
        """
        eps = check_positive(eps, "eps")
        if scheme not in ("per-factor", "pi"):
            raise ValueError(f"`scheme` must be 'per-factor' or 'pi'; got scheme={scheme!r}.")
        check_psd_factors(self.factors, "factors")
        return KroneckerMatrix(damped_inverse_factors(self.factors, eps, scheme))

    def solve_damped(self, X, lam: float):
        """Exactly damped solve ``(kron U_i + lam I)^{-1} vec(X)``, returned in ``X``'s shape.

        Uses ``U_i = Q_i diag(l_i) Q_i^T``: ``(kron U_i + lam I)^{-1} = (kron Q_i)
        diag(1 / (outer(l_i) + lam)) (kron Q_i)^T`` [derived].

        Parameters
        ----------
        X : array, shape ``(d_1, ..., d_k)`` or ``(n, d_1, ..., d_k)``
        lam : float
            Positive damping.

        Raises
        ------
        ValueError
            A factor is indefinite: a product of two negative eigenvalues is positive, so clipping
            or using the eigenvalues as they are would both give a wrong answer without a word.
        """
        lam = check_positive(lam, "lam")
        check_array(X, "X")
        batched = self._check_tensor(X)
        eig = [safe_eigh(u, floor=None) for u in self.factors]
        check_psd_factors(self.factors, "factors", eigenvalues=[l for l, _ in eig])
        eig = [(self._xp.clip(l, 0.0, None), Q) for l, Q in eig]  # round-off negatives of a PSD factor
        Y = _mode_products(X, [Q.T for _, Q in eig], offset=int(batched))
        Y = Y / (outer(*[l for l, _ in eig]) + lam)
        out = _mode_products(Y, [Q for _, Q in eig], offset=int(batched))
        if not bool(self._xp.all(self._xp.isfinite(out))):
            raise ValueError(f"the damped solve overflowed (lam={lam:g} against eigenvalues near 0); use a larger `lam`.")
        return out

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (``cupyx`` for CuPy) that applies this matrix.

        For ``array-api-strict`` factors the operator takes and returns NumPy arrays.
        """
        xp = self._xp
        D = self.shape[0]
        if is_numpy(xp) or is_cupy(xp):
            LO = scipy_namespace(xp).sparse.linalg.LinearOperator
            return LO((D, D), matvec=self.matvec, rmatvec=self.matvec, matmat=self.matvec, dtype=self.dtype)
        import scipy.sparse.linalg as spla  # noqa: PLC0415

        def mv(v):
            return to_numpy(self.matvec(xp.asarray(np.asarray(v))))

        return spla.LinearOperator((D, D), matvec=mv, rmatvec=mv, matmat=mv, dtype=to_numpy(self.factors[0]).dtype)


def damped_inverse_factors(factors, eps: float, scheme: str = "per-factor") -> list:
    """``[(U_i + eps_i I)^{-1}]`` for symmetric PSD factors, no input checks (see
    :meth:`KroneckerMatrix.damped_inverse` for the schemes). Raises if a damped factor is singular."""
    xp = get_namespace(*factors)
    k = len(factors)
    if scheme == "per-factor":
        eps_i = [eps] * k
    else:
        a = [max(float(xp.linalg.trace(u)) / u.shape[0], 0.0) for u in factors]
        g = float(np.prod(a)) ** (1.0 / k)
        eps_i = [(ai / g if g > 0 else 1.0) * eps ** (1.0 / k) for ai in a]
    invs = []
    for i, (u, e) in enumerate(zip(factors, eps_i)):
        with linalg_errors(f"inverting factor {i} + {e:g} I (d = {u.shape[0]})",
                           "it is singular to working precision: use more damping (a larger `eps`/`damping`)."):
            inv = xp.linalg.inv(u + e * xp.eye(u.shape[0], dtype=u.dtype))
        if not bool(xp.all(xp.isfinite(inv))):
            raise ValueError(f"factor {i} + {e:g} I is singular; use more damping (a larger `eps`/`damping`).")
        invs.append((inv + inv.T) / 2)
    return invs


def _rearrange(F, shape):
    """Van Loan–Pitsianis rearrangement: ``T[(a_1 b_1), ..., (a_k b_k)] = F[(a_1..a_k), (b_1..b_k)]``."""
    xp = get_namespace(F)
    k = len(shape)
    T = xp.reshape(F, (*shape, *shape))
    order = [ax for i in range(k) for ax in (i, k + i)]
    return xp.reshape(xp.permute_dims(T, tuple(order)), tuple(d * d for d in shape))  # (d_1^2, ..., d_k^2)


def _contract_except(T, xs, i):
    """Contract ``T`` with vectors ``xs[j]`` along every mode ``j != i``."""
    xp = get_namespace(T)
    for j in range(len(xs) - 1, -1, -1):
        if j != i:
            T = xp.tensordot(T, xs[j], axes=([j], [0]))
    return T


def frobenius_kron_fit(F, shape: Sequence[int], *, tol: float = 1e-13, max_iter: int = 500):
    """Frobenius-optimal Kronecker approximation ``argmin ||F - U_1 kron ... kron U_k||_F`` (spec section 4).

    ``k = 2``: Van Loan–Pitsianis rearrangement and a rank-1 SVD (exact optimum). ``k >= 3``: the
    rearranged tensor's best rank-1 approximation by higher-order power iteration, started from
    the leading singular vectors of its unfoldings (a local optimum, in practice the global one).
    Signs are chosen so every factor has a non-negative trace, then the factors are normalized to
    equal average eigenvalue (for an SPD ``F`` the optimal factors are PSD: Van Loan & Pitsianis 1993).

    Parameters
    ----------
    F : array, shape ``(D, D)``
        Dense matrix, row-major ``vec`` (``D = prod(shape)``).
    shape : sequence of int
        ``(d_1, ..., d_k)``, ``k >= 1``.

    Returns
    -------
    list of arrays, shapes ``(d_i, d_i)``.
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"`shape` must be a sequence of mode sizes (d_1, ..., d_k); got {type(shape).__name__}.")
    shape = tuple(check_int(s, f"shape[{i}]", min_value=1) for i, s in enumerate(shape))
    tol = check_tolerance(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    check_array(F, "F", ndim=2)
    D = int(np.prod(shape)) if shape else 0
    if not shape or tuple(F.shape) != (D, D):
        raise ValueError(f"`F` must have shape ({D}, {D}) for tensor shape {shape}; got {tuple(F.shape)}.")
    xp = get_namespace(F)
    k = len(shape)
    if k == 1:
        return [(F + F.T) / 2]
    if not bool(xp.any(F != 0)):  # F = 0: the optimum is 0 (the power iteration would divide by zero)
        return [xp.zeros((d, d), dtype=F.dtype) for d in shape]
    T = _rearrange(F, shape)  # (d_1^2, ..., d_k^2)
    if k == 2:
        u, s, vt = xp.linalg.svd(T, full_matrices=False)
        xs, sigma = [u[:, 0], vt[0, :]], float(s[0])
    else:
        xs = []
        for i in range(k):
            Ti = xp.reshape(xp.moveaxis(T, i, 0), (T.shape[i], -1))
            u, _, _ = xp.linalg.svd(Ti, full_matrices=False)
            xs.append(u[:, 0])
        sigma = 0.0
        for _ in range(max_iter):
            for i in range(k):
                y = _contract_except(T, xs, i)
                xs[i] = y / xp.linalg.vector_norm(y)
            new_sigma = float(xp.sum(_contract_except(T, xs, 0) * xs[0]))
            if abs(new_sigma - sigma) <= tol * abs(new_sigma):
                sigma = new_sigma
                break
            sigma = new_sigma
        else:
            warn(f"frobenius_kron_fit: power iteration did not converge in {max_iter} iterations.")
    factors = [xp.reshape(x, (d, d)) for x, d in zip(xs, shape)]
    sign = 1.0 if sigma >= 0 else -1.0
    for i, A in enumerate(factors):
        if float(xp.linalg.trace(A)) < 0:
            factors[i], sign = -A, -sign
    factors[0] = factors[0] * (sign * abs(sigma))
    factors = [(A + A.T) / 2 for A in factors]
    if all(float(xp.linalg.trace(A)) >= 0 for A in factors):
        factors = _normalize(factors)
    return factors
