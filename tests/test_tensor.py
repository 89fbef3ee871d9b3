"""Convention pins (spec section 1) and the row-major Kronecker identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tnt_ref import fold, kron, mode_product, mode_products, unfold, vec
from tnt_ref.tensor import outer

from .conftest import RTOL64, np_, on

X24 = np.arange(24).reshape(2, 3, 4)


def test_vec_is_row_major_literally():
    assert vec(X24).tolist() == list(range(24))
    # the first mode varies slowest: entry (a, b, c) sits at 12a + 4b + c
    assert vec(X24)[1 * 12 + 2 * 4 + 3] == X24[1, 2, 3]


def test_unfoldings_literally():
    assert unfold(X24, 0).tolist() == [list(range(12)), list(range(12, 24))]
    assert unfold(X24, 1).tolist() == [
        [0, 1, 2, 3, 12, 13, 14, 15],
        [4, 5, 6, 7, 16, 17, 18, 19],
        [8, 9, 10, 11, 20, 21, 22, 23],
    ]
    assert unfold(X24, 2).tolist() == [
        [0, 4, 8, 12, 16, 20],
        [1, 5, 9, 13, 17, 21],
        [2, 6, 10, 14, 18, 22],
        [3, 7, 11, 15, 19, 23],
    ]


def test_fold_inverts_unfold(xp):
    X = on(xp, X24)
    for i in range(3):
        assert np.array_equal(np_(fold(unfold(X, i), i, X24.shape)), X24)


def test_kron_identity_literal_2x3():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    X = np.arange(6.0).reshape(2, 3)
    # by hand: X x_1 A x_2 B = A X B^T for a matrix
    assert np.array_equal(mode_products(X, [A, B]), A @ X @ B.T)
    assert np.array_equal(vec(A @ X @ B.T), np.kron(A, B) @ vec(X))
    # the column-major convention reverses the order: vec_F(A X B^T) = (B kron A) vec_F(X)
    assert np.array_equal((A @ X @ B.T).reshape(-1, order="F"), np.kron(B, A) @ X.reshape(-1, order="F"))
    assert not np.array_equal(vec(A @ X @ B.T), np.kron(B, A) @ vec(X))


def test_gram_of_unfolding_ignores_column_order(rng):
    X = rng.standard_normal((3, 4, 5))
    M = unfold(X, 1)
    perm = rng.permutation(M.shape[1])
    np.testing.assert_allclose(M @ M.T, M[:, perm] @ M[:, perm].T, rtol=RTOL64)


def test_mode_product_definition(xp, rng):
    X = rng.standard_normal((2, 3, 4))
    for i, m in enumerate((5, 2, 3)):
        A = rng.standard_normal((m, X.shape[i]))
        Y = mode_product(*on(xp, X, A), i)
        assert tuple(Y.shape) == tuple(m if j == i else X.shape[j] for j in range(3))
        np.testing.assert_allclose(np_(unfold(Y, i)), A @ unfold(X, i), rtol=RTOL64, atol=1e-12)


@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    rect=st.booleans(),
)
def test_kron_identity_random_shapes(shape, seed, rect):
    """vec(X x_1 A_1 ... x_k A_k) = kron(A_1, ..., A_k) vec(X), orders 1 to 4 (numpy)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(shape)
    mats = [rng.standard_normal(((d + 1) if rect else d, d)) for d in shape]
    lhs = vec(mode_products(X, mats))
    rhs = kron(*mats) @ vec(X)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4), (2, 1, 3, 2)])
def test_kron_identity_on_every_backend(xp, rng, shape):
    X = rng.standard_normal(shape)
    mats = [rng.standard_normal((d, d)) for d in shape]
    lhs = np_(vec(mode_products(on(xp, X), [on(xp, A) for A in mats])))
    rhs = np_(kron(*[on(xp, A) for A in mats])) @ X.reshape(-1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10, atol=1e-12)


def test_kron_matches_numpy_kron(rng):
    mats = [rng.standard_normal((2, 3)), rng.standard_normal((4, 1)), rng.standard_normal((2, 2))]
    np.testing.assert_array_equal(kron(*mats), np.kron(np.kron(mats[0], mats[1]), mats[2]))


def test_mode_products_none_leaves_mode(rng):
    X = rng.standard_normal((2, 3, 4))
    B = rng.standard_normal((3, 3))
    np.testing.assert_allclose(mode_products(X, [None, B, None]), mode_product(X, B, 1), rtol=RTOL64)


def test_outer_is_diagonal_of_kron_of_diagonals(rng):
    v = [rng.standard_normal(d) for d in (2, 3, 2)]
    np.testing.assert_allclose(vec(outer(*v)), np.diag(kron(*[np.diag(x) for x in v])), rtol=RTOL64)


def test_bad_input_messages():
    X = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"`A` has shape \(5, 2\), expected \(5, 3\) to multiply mode 1"):
        mode_product(X, np.zeros((5, 2)), 1)
    with pytest.raises(ValueError, match=r"`mode` must be in \[0, 2\].*got mode=3"):
        unfold(X, 3)
    with pytest.raises(ValueError, match="one entry .* per mode"):
        mode_products(X, [None, None])
    with pytest.raises(ValueError, match="NaN or Inf"):
        unfold(np.array([[1.0, np.nan]]), 0)
    with pytest.raises(ValueError, match=r"expected \(3, 8\) to fold"):
        fold(np.zeros((3, 7)), 1, (2, 3, 4))
    with pytest.raises(TypeError, match="must be an array"):
        unfold([[1, 2]], 0)
