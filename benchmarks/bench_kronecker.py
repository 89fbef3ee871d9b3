"""Time to apply kron_i (U_i + eps I)^{-1} through mode products vs a dense solve (issue 2).

Measured in one run, float64, NumPy on the CPU. For each shape: the Kronecker path (per-factor
inverses of the d_i x d_i factors, then mode products) against a dense ``numpy.linalg.solve`` with
the same D x D matrix ``kron_i (U_i + eps I)`` (formed beforehand, not timed), solved by Cholesky
(``scipy.linalg.cho_factor`` + ``cho_solve``, the cheapest dense method for an SPD matrix, so the ratio
is not flattered). The dense matrix is filled in place block by block: at (256, 128) it takes
8.6 GB and the solve takes minutes on 2 cores, so that case runs once. Both answers are compared,
so a fast wrong path cannot pass. Target: ratio >= 100 at (64, 64).

Both paths run with one BLAS thread (threadpoolctl): multithreaded OpenBLAS ``potrf`` crashed
(segmentation fault) on this 2-core machine for D >= 16384, and one thread keeps the two paths
on equal terms.

    python benchmarks/bench_kronecker.py
"""

from __future__ import annotations

import platform
import time

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from tnt_ref import KroneckerMatrix, kron

SHAPES = [(64, 64), (32, 32, 8), (256, 128)]
EPS = 1e-3


def best_time(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def dense_kron(mats):
    """``kron(*mats)`` written block by block into one preallocated array (no temporaries of size D^2)."""
    tail = kron(*mats[1:]) if len(mats) > 1 else np.ones((1, 1))
    A, b = mats[0], tail.shape[0]
    M = np.empty((A.shape[0] * b, A.shape[1] * b))
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            np.multiply(A[i, j], tail, out=M[i * b : (i + 1) * b, j * b : (j + 1) * b])
    return M


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, numpy {np.__version__}, one BLAS thread")
    print(f"{'shape':<14} {'D':>7} {'kron path (s)':>14} {'dense solve (s)':>16} {'ratio':>8} {'max rel diff':>13}")
    for shape in SHAPES:
        factors = []
        for d in shape:
            A = rng.standard_normal((d, 2 * d))
            factors.append(A @ A.T / (2 * d))
        K = KroneckerMatrix(factors)
        G = rng.standard_normal(shape)
        D = G.size

        def kron_path():
            return K.damped_inverse(EPS).apply(G)

        damped = [u + EPS * np.eye(u.shape[0]) for u in factors]
        big = D > 10_000
        out = {}

        def dense_path():
            M = dense_kron(damped)  # (D, D), filled in place; excluded from the time below
            t0 = time.perf_counter()
            # M is symmetric, so M.T (Fortran-contiguous) is the same matrix and LAPACK factors it in place
            c = scipy.linalg.cho_factor(M.T, overwrite_a=True, check_finite=False)
            out["x"] = scipy.linalg.cho_solve(c, G.reshape(-1), check_finite=False)
            return time.perf_counter() - t0

        t_k = best_time(kron_path)
        t_d = min(dense_path() for _ in range(1 if big else 3))
        diff = np.max(np.abs(kron_path().reshape(-1) - out["x"])) / np.max(np.abs(out["x"]))
        print(f"{str(shape):<14} {D:>7} {t_k:>14.3e} {t_d:>16.3e} {t_d / t_k:>8.0f} {diff:>13.2e}", flush=True)


if __name__ == "__main__":
    with threadpool_limits(limits=1, user_api="blas"):
        main()
