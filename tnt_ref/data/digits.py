"""scikit-learn's bundled 8x8 handwritten digits (no download), with a fixed train/test split."""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["load_digits", "SPLIT_SEED", "N_TEST"]

#: Seed of the fixed train/test permutation of the digits.
SPLIT_SEED = 0
#: Number of test images (the remaining 1497 are the training set).
N_TEST = 300


def load_digits(*, images: bool = False, dtype=np.float64) -> Dataset:
    """scikit-learn's 8x8 digits, scaled to ``[0, 1]`` (pixel / 16), with a fixed split.

    1797 images of 10 classes (Alpaydin & Kaynak, UCI), read from the copy inside the scikit-learn
    wheel. The split is a permutation with seed :data:`SPLIT_SEED`: the first :data:`N_TEST` images
    are the test set, the other 1497 the training set. Nothing is downloaded.

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
