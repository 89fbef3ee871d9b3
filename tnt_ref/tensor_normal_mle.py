"""The tensor-normal maximum-likelihood estimate of the Kronecker factors, by flip-flop (spec section 4).

:func:`mle` — block coordinate ascent over the modes, from zero-mean samples or from a dense
population covariance ``F`` (then it is the KL projection ``argmin KL(N(0, F) || N(0, kron U_i))``),
with the log-likelihood trace, the number of sweeps, a converged flag and the scale rule at the end;
:func:`mle_min_samples` — the fewest samples for which it exists. TNT's estimator is one Jacobi sweep of
it from identity factors followed by the scale rule [derived] (``tests/test_tensor_normal.py``).

Imports :mod:`tnt_ref.tensor_normal` (the scale rule, log-determinants), never the other way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import (
    check_array,
    check_covariance,
    check_int,
    check_positive,
    check_samples,
    check_square_factors,
    cholesky_factors,
    linalg_errors,
)
from .backend import get_namespace, to_numpy
from .tensor import _kron, _mode_products
from .tensor_normal import _LOG_2PI, _logdet_from_chol, _normalize, _prod

__all__ = ["MLEResult", "mle", "mle_min_samples"]


@dataclass(frozen=True)
class MLEResult:
    """Result of :func:`mle`.

    Attributes
    ----------
    factors : list of arrays ``(d_i, d_i)``
        The estimate, normalized to equal average eigenvalue.
    loglik : list of float
        Mean log-likelihood per sample after each sweep (for a covariance input: the expected
        log-likelihood under ``N(0, F)``, i.e. ``-KL(N(0,F) || N(0, kron U)) + const``).
    n_sweeps : int
        Number of sweeps done.
    converged : bool
        Whether the relative change of ``loglik`` fell below ``tol``.
    """

    factors: list
    loglik: list = field(default_factory=list)
    n_sweeps: int = 0
    converged: bool = False


def mle_min_samples(shape: Sequence[int]) -> int:
    """Smallest number of samples :func:`mle` accepts for tensors of shape ``shape``.

    The mode-``i`` update pools the ``n`` unfoldings into a ``d_i x (n D / d_i)`` matrix, which
    must have full row rank ``d_i``; this needs ``n >= d_i**2 / D`` for every ``i`` [derived], plus
    one sample of margin so that ``n > max_i d_i**2 / D`` as in the existence results for the
    matrix normal (Dutilleul 1999; Drton, Kuriki & Hoff 2021; Derksen, Makam & Walter 2022).
    """
    D = _prod(shape)
    return int(math.floor(max(d * d for d in shape) / D)) + 1


def mle(
    samples: Any = None,
    *,
    covariance: Any = None,
    shape: Sequence[int] | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
    init: Sequence[Any] | None = None,
    scheme: str = "gauss-seidel",
) -> MLEResult:
    """Tensor-normal maximum likelihood by flip-flop (block coordinate ascent) (spec section 4).

    Mode update (zero mean), with the other factors fixed::

        W   = G x_{j != i} U_j^{-1}
        U_i = (d_i / D) * mean_n G_(i) W_(i)^T

    From a population covariance ``F`` the same update is
    ``U_i = (d_i / D) * partial-trace_{j != i}[F (kron_{j != i} U_j^{-1})]``, and the fixed point is
    the KL projection ``argmin KL(N(0, F) || N(0, kron U_i))``.

    ``scheme="gauss-seidel"`` (default) uses each new factor at once (monotone log-likelihood);
    ``scheme="jacobi"`` updates all modes from the previous sweep's factors. One Jacobi sweep from
    identity factors gives ``U_i = (d_i / D) S_i``: TNT's estimator up to the overall scale, which
    TNT's rule fixes by ``tr(kron U_i) = tau`` (the sweep's trace is ``tau**k / D**(k-1)``) [derived];
    a Gauss-Seidel sweep is in general not proportional to it.

    Parameters
    ----------
    samples : array, shape ``(n, d_1, ..., d_k)``, optional
        Zero-mean samples (not centred here).
    covariance : array, shape ``(D, D)``, optional
        Dense covariance ``F`` (row-major ``vec``); then ``shape`` is required.
    shape : sequence of int, optional
        ``(d_1, ..., d_k)`` for a covariance input.
    tol : float
        Stop when ``|l_t - l_{t-1}| <= tol * max(1, |l_t|)``.
    max_iter : int
        Maximum number of sweeps.
    init : list of arrays, optional
        Starting factors; identity matrices by default.
    scheme : {"gauss-seidel", "jacobi"}

    Returns
    -------
    MLEResult

    Raises
    ------
    ValueError
        Neither or both of ``samples`` and ``covariance``; too few samples for the MLE to exist
        (the message names the minimum); a singular update.
    """
    if (samples is None) == (covariance is None):
        raise ValueError("pass exactly one of `samples` (n, d_1, ..., d_k) and `covariance` (D, D) to mle().")
    if scheme not in ("gauss-seidel", "jacobi"):
        raise ValueError(f"`scheme` must be 'gauss-seidel' or 'jacobi'; got scheme={scheme!r}.")
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    tol = check_positive(tol, "tol", allow_zero=True)
    if samples is not None:
        check_samples(samples)
        shape = tuple(int(s) for s in samples.shape[1:])
        n_min = mle_min_samples(shape)
        if samples.shape[0] < n_min:
            raise ValueError(
                f"the tensor-normal MLE needs at least {n_min} samples for shape {shape}; got n={samples.shape[0]}. "
                "Use tnt_factors, or add samples."
            )
        r = _independent_samples(samples, n_min)
        if r < n_min:  # e.g. one sample repeated: the likelihood is that of r samples, and the MLE is not unique
            raise ValueError(
                f"the tensor-normal MLE needs at least {n_min} linearly independent samples for shape {shape}; the "
                f"{samples.shape[0]} samples given span only {r} (rank-deficient: repeated or dependent samples). "
                "Add more independent samples, or use tnt_factors."
            )
        data = samples
    else:
        if shape is None:
            raise ValueError("`shape` (d_1, ..., d_k) is required with `covariance`.")
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
            raise TypeError(f"`shape` must be a non-empty sequence of mode sizes (d_1, ..., d_k); got {shape!r}.")
        shape = tuple(check_int(s, f"shape[{i}]", min_value=1) for i, s in enumerate(shape))
        D = _prod(shape)
        check_array(covariance, "covariance", ndim=2)
        if tuple(covariance.shape) != (D, D):
            raise ValueError(f"`covariance` must have shape ({D}, {D}) for tensor shape {shape}; got {tuple(covariance.shape)}.")
        # symmetric and PSD: a non-symmetric matrix is not a covariance, and its "KL projection" would be of its
        # symmetric part, reported as if it were the matrix given
        data = check_covariance(covariance, "covariance")
    xp = get_namespace(data)
    k, D = len(shape), _prod(shape)
    if init is None:
        U = [xp.eye(d, dtype=data.dtype) for d in shape]
    else:
        U = list(check_square_factors(init, "init", shape=shape))
        cholesky_factors(U, "init")
    update = _mode_update_samples if samples is not None else _mode_update_cov
    loglik: list[float] = []
    converged = False
    for _sweep in range(max_iter):
        invs = [_checked_inv(xp, u, i) for i, u in enumerate(U)]
        new = list(U)
        for i in range(k):
            new[i] = update(data, invs, i, shape)  # uses invs[j], j != i
            if scheme == "gauss-seidel":  # the next mode sees the new factor at once
                invs[i] = _checked_inv(xp, new[i], i)
        U = new
        loglik.append(_loglik(data, U, shape, samples is not None))
        if len(loglik) > 1 and abs(loglik[-1] - loglik[-2]) <= tol * max(1.0, abs(loglik[-1])):
            converged = True
            break
    return MLEResult(factors=_normalize(U), loglik=loglik, n_sweeps=len(loglik), converged=converged)


def _independent_samples(samples, n_min: int) -> int:
    """The rank of the ``(n, D)`` sample matrix, or a lower bound of it that is at least ``n_min``
    (the rank of the first few samples is enough in the usual case, so big ``n`` costs little)."""
    n = samples.shape[0]
    k = min(n, 4 * n_min)
    head = np.asarray(to_numpy(samples[:k, ...]), dtype=np.float64).reshape(k, -1)  # only k samples to the host
    r = int(np.linalg.matrix_rank(head))
    if r >= n_min or k == n:
        return r
    return int(np.linalg.matrix_rank(np.asarray(to_numpy(samples), dtype=np.float64).reshape(n, -1)))


def _checked_inv(xp, u, i):
    msg = (f"the samples do not span mode {i} (rank-deficient samples: the MLE does not exist for them). "
           "Add more samples (more, and linearly independent, than mle_min_samples), or use tnt_factors.")
    with linalg_errors(f"inverting the flip-flop factor of mode {i}", msg):
        inv = xp.linalg.inv(u)
    if not bool(xp.all(xp.isfinite(inv))):
        raise ValueError(f"inverting the flip-flop factor of mode {i} failed (singular); {msg}")
    return inv


def _mode_update_samples(G, invs, i, shape):
    xp = get_namespace(G)
    k, D, n = len(shape), _prod(shape), G.shape[0]
    W = _mode_products(G, [None if j == i else invs[j] for j in range(k)], offset=1)  # (n, d_1..d_k)
    others = [0] + [j + 1 for j in range(k) if j != i]
    U = xp.tensordot(G, W, axes=(others, others)) * (shape[i] / (D * n))  # (d_i, d_i)
    return (U + U.T) / 2


def _mode_update_cov(F, invs, i, shape):
    """``(d_i / D) sum_{r, s} F[(a, r), (b, s)] (kron_{j != i} invs_j)[r, s]``: the partial trace of
    ``F (I kron_{j != i} invs_j)`` with ``F`` viewed as ``(d_i, R, d_i, R)`` (``R = D / d_i``, the other modes
    row-major) and one contraction with the dense ``(R, R)`` Kronecker product: ``O(D^2)`` work."""
    xp = get_namespace(F)
    k, D = len(shape), _prod(shape)
    d, R = shape[i], D // shape[i]
    order = [i] + [j for j in range(k) if j != i]
    T = xp.permute_dims(xp.reshape(F, (*shape, *shape)), (*order, *[k + j for j in order]))
    T = xp.reshape(T, (d, R, d, R))  # rows (a, r), columns (b, s)
    others = [invs[j] for j in range(k) if j != i]
    W = _kron(*others) if others else xp.ones((1, 1), dtype=F.dtype)  # (R, R), symmetric
    U = xp.tensordot(T, W, axes=([1, 3], [0, 1])) * (d / D)
    return (U + U.T) / 2


def _loglik(data, U, shape, is_samples: bool) -> float:
    """Mean log-likelihood of samples, or expected log-likelihood under N(0, F)."""
    xp = get_namespace(data)
    D = _prod(shape)
    try:
        chols = cholesky_factors(U, "flip-flop factors")
    except ValueError:
        raise ValueError(
            "the flip-flop factors are no longer positive definite (their Cholesky factorization failed): the samples are "
            "rank-deficient and the MLE does not exist for them. Add more (linearly independent) samples, or use tnt_factors."
        ) from None
    logdet = sum((D / d) * _logdet_from_chol(xp, lo) for d, lo in zip(shape, chols))
    invs = [xp.linalg.inv(u) for u in U]
    if is_samples:
        W = _mode_products(data, invs, offset=1)
        quad = float(xp.sum(data * W)) / data.shape[0]
    else:
        k = len(shape)
        T = _mode_products(xp.reshape(data, (*shape, *shape)), invs, offset=k)
        quad = float(xp.linalg.trace(xp.reshape(T, (D, D))))
    return -0.5 * (D * _LOG_2PI + logdet) - 0.5 * quad
