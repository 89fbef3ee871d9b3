"""Studies behind the command line: estimator comparisons now, training runs later.

No argument parsing here (that is :mod:`tnt_ref.cli`) and no plotting (that is :mod:`tnt_ref.plots`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .kronecker import frobenius_kron_fit
from .tensor import kron
from .tensor_normal import TensorNormal, mle, mle_min_samples, tnt_factors

__all__ = ["estimator_study"]


def _gaussian_kl(S, K) -> float:
    D = S.shape[0]
    return 0.5 * float(np.trace(np.linalg.solve(K, S)) - D + np.linalg.slogdet(K)[1] - np.linalg.slogdet(S)[1])


def estimator_study(
    shape: Sequence[int] = (6, 5, 4),
    ns: Sequence[int] = (30, 100, 300, 1000, 3000),
    seed: int = 0,
    cond: float = 20.0,
) -> list[dict]:
    """Compare TNT's estimator, the MLE and the Frobenius fit on tensor-normal samples.

    For each sample size ``n``: draw ``n`` samples of ``TN(0; U_1, ..., U_k)`` with random SPD
    factors (condition number ``cond``), estimate ``kron U_i`` three ways, and report the relative
    Frobenius error to the true covariance and ``KL(true || estimate)``.

    Returns
    -------
    list of dict rows with keys ``n``, ``method``, ``rel_error``, ``kl``, ``sweeps``.
    """
    rng = np.random.default_rng(seed)
    factors = []
    for d in shape:
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        factors.append((Q * np.geomspace(1.0, cond, d)) @ Q.T)
    true = kron(*factors)
    tn = TensorNormal(factors)
    rows = []
    for n in ns:
        X = tn.sample(int(n), rng)
        flat = X.reshape(int(n), -1)
        S = flat.T @ flat / n
        res = mle(X, tol=1e-10) if n >= mle_min_samples(shape) else None  # the MLE may not exist below
        ests = {"tnt": (tnt_factors(X), 0), "frobenius": (frobenius_kron_fit(S, shape), 0)}
        if res is not None:
            ests["mle"] = (res.factors, res.n_sweeps)
        for name, (U, sweeps) in ests.items():
            K = kron(*U)
            rows.append(
                {
                    "n": int(n),
                    "method": name,
                    "rel_error": float(np.linalg.norm(K - true) / np.linalg.norm(true)),
                    "kl": _gaussian_kl(true, K),
                    "sweeps": sweeps,
                }
            )
    return rows
