"""The statistics every estimator of :mod:`tnt_ref.estimators` reads, from samples or a dense covariance.

An estimator touches ``F = E[vec G vec G^T]`` only through three products (the block-free exact Fisher,
:class:`tnt_ref.fisher.gram.LowRankBlock`, provides the same three):

* ``mode_moment(i, W)`` = ``E[G_(i) (kron_{l != i} W_l) G_(i)^T]`` (``W = None``: identities; ``W_l`` symmetric);
* ``inner_kron(U)`` = ``<F, kron U_i>``;
* ``rotated_diag(Q)`` = ``diag((kron Q_i)^T F (kron Q_i))`` as a tensor.
"""

from __future__ import annotations

import math

from .._validation import check_array, check_int, check_samples
from ..backend import get_namespace
from ..tensor import _mode_products
from ..tensor_normal_mle import _mode_update_cov

__all__: list = []


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
