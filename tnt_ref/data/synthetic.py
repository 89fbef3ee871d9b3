"""Synthetic tensor-normal "gradients" with known factors, and random SPD matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validation import check_dense_size, check_real, check_rng, check_size
from ..tensor_normal import TensorNormal

__all__ = ["random_spd", "synthetic_tensor_normal_gradients"]


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
