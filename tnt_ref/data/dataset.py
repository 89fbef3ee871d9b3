"""The train/test split every loader of :mod:`tnt_ref.data` returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split. Images are in ``[0, 1]``.

    ``X_*``: ``(n, h * w)`` flat or ``(n, 1, h, w)`` images (row-major pixels); ``y_*``: integer
    labels ``(n,)``. ``name`` says where the data came from (``"digits"``, or an IDX folder's name);
    for data read from disk, ``source`` is the folder (resolved) and ``fingerprint`` a SHA-256 of
    the arrays as read (empty for the bundled digits).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str = "digits"
    source: str = ""
    fingerprint: str = ""

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])
