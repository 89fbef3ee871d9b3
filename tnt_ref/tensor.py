"""Tensor algebra with the row-major conventions of the spec ([RG21]; spec section 1).

Conventions, pinned literally in ``tests/test_tensor.py``:

* ``vec(X) = X.reshape(-1)`` (C order): the **first** mode varies **slowest** [paper].
* Mode-``i`` unfolding ``X_(i) = moveaxis(X, i, 0).reshape(d_i, D // d_i)``; its Gram matrix
  ``X_(i) X_(i)^T`` does not depend on the order of the columns [derived].
* Mode-``i`` product ``X x_i A`` (``A`` of shape ``(m, d_i)``): the tensor whose mode-``i``
  unfolding is ``A X_(i)``.
* ``vec(X x_1 A_1 x_2 ... x_k A_k) = (A_1 kron ... kron A_k) vec(X)`` with ``numpy.kron``'s block
  order [derived]. Column-major texts (Kolda & Bader 2009) write ``A_k kron ... kron A_1``
  because their ``vec`` lets the first mode vary fastest; see ``docs/conventions.md``.

Modes are 0-based in code and 1-based in the maths.
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from typing import Any

from ._validation import check_array, check_dense_size, check_int, check_mode, itemsize_of
from .backend import get_namespace

__all__ = ["vec", "unfold", "fold", "mode_product", "mode_products", "kron", "outer", "tensor_shape"]


def vec(X):
    """Row-major vectorization, ``vec(X) = X.reshape(-1)`` [RG21] [paper] (spec section 1).

    Parameters
    ----------
    X : array, shape ``(d_1, ..., d_k)``

    Returns
    -------
    array, shape ``(D,)`` with ``D = d_1 ... d_k``; the last index varies fastest.

    Examples
    --------
    >>> import numpy as np
    >>> vec(np.arange(6).reshape(2, 3)).tolist()
    [0, 1, 2, 3, 4, 5]
    """
    xp = get_namespace(X)
    return xp.reshape(X, (-1,))


def unfold(X, mode: int):
    """Mode-``mode`` unfolding ``X_(i) = moveaxis(X, i, 0).reshape(d_i, D / d_i)``.

    Parameters
    ----------
    X : array, shape ``(d_1, ..., d_k)``
    mode : int
        0-based mode ``i``.

    Returns
    -------
    array, shape ``(d_i, D // d_i)``. Columns are the remaining modes in row-major order.

    Examples
    --------
    >>> import numpy as np
    >>> unfold(np.arange(24).reshape(2, 3, 4), 1)[:, :5].tolist()
    [[0, 1, 2, 3, 12], [4, 5, 6, 7, 16], [8, 9, 10, 11, 20]]
    """
    check_array(X, "X", min_ndim=1)
    check_mode(mode, X.ndim)
    return _unfold(X, mode)


def _unfold(X, axis: int):
    xp = get_namespace(X)
    d = X.shape[axis]
    r = math.prod(X.shape[:axis] + X.shape[axis + 1 :])  # explicit: reshape(-1) is ambiguous for zero-size X
    return xp.reshape(xp.moveaxis(X, axis, 0), (d, r))  # (d_i, D / d_i)


def fold(M, mode: int, shape: Sequence[int]):
    """Inverse of :func:`unfold`: the tensor of shape ``shape`` whose mode-``mode`` unfolding is ``M``.

    Parameters
    ----------
    M : array, shape ``(shape[mode], prod(shape) // shape[mode])``
    mode : int
    shape : sequence of int
        ``(d_1, ..., d_k)``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(24).reshape(2, 3, 4)
    >>> bool((fold(unfold(X, 2), 2, X.shape) == X).all())
    True
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise TypeError(f"`shape` must be a non-empty sequence of mode sizes; got {shape!r}.")
    shape = tuple(check_int(s, f"shape[{i}]", min_value=0) for i, s in enumerate(shape))  # 2.5 refused, not truncated
    check_array(M, "M", ndim=2)
    check_mode(mode, len(shape))
    size = 1
    for s in shape:
        size *= s
    if M.shape[0] != shape[mode] or M.shape[0] * M.shape[1] != size:
        raise ValueError(
            f"`M` has shape {tuple(M.shape)}, expected ({shape[mode]}, {size // max(shape[mode], 1)}) "
            f"to fold along mode {mode} into shape {shape}."
        )
    xp = get_namespace(M)
    rest = shape[:mode] + shape[mode + 1 :]
    return xp.moveaxis(xp.reshape(M, (shape[mode], *rest)), 0, mode)


def mode_product(X, A, mode: int):
    """Mode-``i`` product ``X x_i A``: the tensor whose mode-``i`` unfolding is ``A X_(i)``.

    Parameters
    ----------
    X : array, shape ``(d_1, ..., d_k)``
    A : array, shape ``(m, d_i)``
    mode : int
        0-based mode ``i``.

    Returns
    -------
    array, shape ``(d_1, ..., m, ..., d_k)`` (``m`` in position ``i``).

    Raises
    ------
    ValueError
        ``A`` is not a matrix with ``d_i`` columns.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(24.0).reshape(2, 3, 4); A = np.arange(6.0).reshape(2, 3)
    >>> bool(np.allclose(unfold(mode_product(X, A, 1), 1), A @ unfold(X, 1)))
    True
    """
    check_array(X, "X", min_ndim=1)
    check_mode(mode, X.ndim)
    _check_mode_matrix(A, X, mode, "A")
    return _mode_product(X, A, mode)


def _check_mode_matrix(A, X, mode: int, name: str) -> None:
    check_array(A, name, ndim=2)
    if A.shape[1] != X.shape[mode]:
        raise ValueError(
            f"`{name}` has shape {tuple(A.shape)}, expected ({A.shape[0]}, {X.shape[mode]}) "
            f"to multiply mode {mode} of `X` (size {X.shape[mode]})."
        )


def _mode_product(X, A, axis: int):
    """``X x_axis A`` at any axis, no checks (also used on stacks ``(n, d_1, ..., d_k)``)."""
    xp = get_namespace(X, A)
    Y = xp.tensordot(A, X, axes=([1], [axis]))  # (m, other axes of X in order)
    return xp.moveaxis(Y, 0, axis)


def mode_products(X, mats: Sequence[Any]):
    """``X x_1 A_1 x_2 ... x_k A_k``; a ``None`` entry leaves that mode alone.

    ``vec`` of the result equals ``kron(A_1, ..., A_k) @ vec(X)`` (row-major; spec section 1).

    Parameters
    ----------
    X : array, shape ``(d_1, ..., d_k)``
    mats : sequence of length ``k`` of arrays of shape ``(m_i, d_i)`` or ``None``

    Returns
    -------
    array, shape ``(m_1, ..., m_k)`` (``m_i = d_i`` where ``mats[i] is None``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((2, 3)); A, B = rng.standard_normal((4, 2)), rng.standard_normal((5, 3))
    >>> bool(np.allclose(vec(mode_products(X, [A, B])), np.kron(A, B) @ vec(X)))
    True
    """
    check_array(X, "X", min_ndim=1)
    if len(mats) != X.ndim:
        raise ValueError(
            f"`mats` must have one entry (matrix or None) per mode of `X` ({X.ndim}); got {len(mats)}."
        )
    for i, A in enumerate(mats):
        if A is not None:
            _check_mode_matrix(A, X, i, f"mats[{i}]")
    return _mode_products(X, mats)


def _mode_products(X, mats: Sequence[Any], offset: int = 0):
    """Apply ``mats[i]`` to axis ``offset + i``; no checks. ``offset=1`` treats axis 0 as a batch."""
    for i, A in enumerate(mats):
        if A is not None:
            X = _mode_product(X, A, offset + i)
    return X


def kron(*mats):
    """Dense Kronecker product ``A_1 kron ... kron A_k`` in ``numpy.kron``'s block order.

    For checks and small cases only: the result has ``prod(m_i) * prod(n_i)`` entries.

    Parameters
    ----------
    *mats : arrays of shape ``(m_i, n_i)``

    Returns
    -------
    array, shape ``(prod m_i, prod n_i)``; entry ``[(a_1..a_k), (b_1..b_k)]`` (row-major
    multi-indices) is ``prod_i A_i[a_i, b_i]``.

    Examples
    --------
    >>> import numpy as np
    >>> A, B = np.arange(4.0).reshape(2, 2), np.arange(6.0).reshape(2, 3)
    >>> bool(np.array_equal(kron(A, B), np.kron(A, B)))
    True
    """
    if not mats:
        raise ValueError("`kron` needs at least one matrix; got none.")
    for i, A in enumerate(mats):
        check_array(A, f"mats[{i}]", ndim=2)
    check_kron_size(mats, "the Kronecker product `kron(*mats)`")
    return _kron(*mats)


def check_kron_size(mats: Sequence[Any], what: str) -> None:
    """The memory guard of every dense Kronecker product (:func:`tnt_ref._validation.check_dense_size`)."""
    m = n = 1
    for A in mats:
        m, n = m * int(A.shape[0]), n * int(A.shape[1])
    check_dense_size((m, n), max(itemsize_of(A) for A in mats), what,
                     "Apply it without forming it: tnt_ref.KroneckerMatrix(factors).matvec / .apply / "
                     ".as_linear_operator(), or mode_products.")


def _kron(*mats):
    xp = get_namespace(*mats)
    K = mats[0]
    for B in mats[1:]:
        m, n = K.shape
        p, q = B.shape
        K = xp.reshape(xp.reshape(K, (m, 1, n, 1)) * xp.reshape(B, (1, p, 1, q)), (m * p, n * q))
    return K


def outer(*vectors):
    """Row-major outer product of vectors: the tensor ``T[a_1..a_k] = prod_i v_i[a_i]``.

    ``vec(outer(v_1, ..., v_k))`` is the diagonal of ``kron(diag v_1, ..., diag v_k)``; this is how
    the eigenvalues of a Kronecker product are formed (products of the factors' eigenvalues).
    """
    xp = get_namespace(*vectors)
    k = len(vectors)
    T = None
    for i, v in enumerate(vectors):
        shape = [1] * k
        shape[i] = v.shape[0]
        vi = xp.reshape(v, tuple(shape))
        T = vi if T is None else T * vi
    return T


def tensor_shape(shape: Sequence[int], conv_modes: int = 3) -> tuple[int, ...]:
    """The tensor shape TNT uses for a parameter of shape ``shape``.

    Convolution kernels ``(C_out, C_in, kh, kw)`` become ``(C_out, C_in, kh*kw)`` for
    ``conv_modes=3`` (the authors' choice), ``(C_out, C_in*kh*kw)`` for 2, and stay 4-way for 4
    [code] (spec section 6). All are row-major reshapes, so ``vec`` and the Fisher block are the
    same; only the Kronecker structure changes. Other shapes are returned unchanged.
    """
    shape = tuple(int(s) for s in shape)
    if conv_modes not in (2, 3, 4):
        raise ValueError(f"`conv_modes` must be 2, 3 or 4; got conv_modes={conv_modes!r}.")
    if len(shape) == 4:
        co, ci, kh, kw = shape
        return {4: shape, 3: (co, ci, kh * kw), 2: (co, ci * kh * kw)}[conv_modes]
    return shape
