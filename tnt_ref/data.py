"""Data that ships with a package (no download) and synthetic tensor-normal gradients.

* :func:`load_digits` — scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes;
  Alpaydin & Kaynak, UCI), read from the copy inside the scikit-learn wheel, with a fixed
  train/test split.
* :func:`synthetic_tensor_normal_gradients` — samples of ``TN(0; U_1, ..., U_k)`` with known factors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._validation import check_dense_size, check_real, check_rng, check_size
from .tensor_normal import TensorNormal

__all__ = ["Dataset", "load_digits", "synthetic_tensor_normal_gradients", "random_spd"]

#: Seed of the fixed train/test permutation of the digits.
SPLIT_SEED = 0
#: Number of test images (the remaining 1497 are the training set).
N_TEST = 300


@dataclass(frozen=True)
class Dataset:
    """A train/test split. Images are in ``[0, 1]``.

    ``X_*``: ``(n, 64)`` flat or ``(n, 1, 8, 8)`` images; ``y_*``: integer labels ``(n,)``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str = "digits"

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])


def load_digits(*, images: bool = False, dtype=np.float64) -> Dataset:
    """scikit-learn's 8x8 digits, scaled to ``[0, 1]`` (pixel / 16), with a fixed split.

    The split is a permutation with seed :data:`SPLIT_SEED`: the first :data:`N_TEST` images are the
    test set, the other 1497 the training set. Nothing is downloaded: the data ships inside the
    scikit-learn package.

    Parameters
    ----------
    images : bool
        ``(n, 1, 8, 8)`` images instead of ``(n, 64)`` vectors.
    """
    from sklearn.datasets import load_digits as _sk_load_digits  # noqa: PLC0415  (heavy import)

    d = _sk_load_digits()
    X = (d.data / 16.0).astype(dtype)
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(SPLIT_SEED).permutation(X.shape[0])
    X, y = X[perm], y[perm]
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return Dataset(X[N_TEST:], y[N_TEST:], X[:N_TEST], y[:N_TEST])


def random_spd(rng: np.random.Generator, d: int, cond: float = 10.0) -> np.ndarray:
    """Random SPD matrix with eigenvalues geometrically spaced in ``[1, cond]``."""
    check_rng(rng)
    d = check_size(d, "d")
    cond = check_real(cond, "cond", low=1.0)
    check_dense_size((d, d), 8, f"random_spd(d={d})", "Choose a smaller `d`.")
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.geomspace(1.0, cond, d) if d > 1 else np.ones(1)
    return (Q * lam) @ Q.T


def synthetic_tensor_normal_gradients(
    shape: Sequence[int], n: int, rng: np.random.Generator, cond: float = 10.0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``n`` samples ``(n, d_1, ..., d_k)`` of ``TN(0; U_1, ..., U_k)`` and the true factors ``U_i``."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence) or len(shape) == 0:
        raise TypeError(f"`shape` must be a non-empty sequence of mode sizes; got {shape!r}.")
    shape = [check_size(d, f"shape[{i}]") for i, d in enumerate(shape)]
    n = check_size(n, "n")
    check_dense_size((n, *shape), 8, f"synthetic_tensor_normal_gradients(n={n})", "Draw fewer samples per call.")
    factors = [random_spd(rng, d, cond) for d in shape]
    return TensorNormal(factors).sample(n, rng), factors
