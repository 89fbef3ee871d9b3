"""Time and peak memory of the exact block Fisher and of the exact-expectation mode moments (issue 3).

1. All exact blocks of a 64-32-10 tanh/softmax MLP on 500 digits (blocks of D = 2048, 32, 320, 10).
2. All exact-expectation mode moments of a 64-256-256-10 MLP on all 1797 digits; the largest
   block there (D = 65536) would need 34 GB, so only the Kronecker statistics are computed.

Peak memory is measured with tracemalloc (NumPy reports its array allocations to it): the peak
of Python and NumPy allocations during the call, above what was allocated before.

    python benchmarks/bench_fisher.py
"""

from __future__ import annotations

import platform
import time
import tracemalloc

import numpy as np

from tnt_ref.data import load_digits
from tnt_ref.fisher import exact_fisher_blocks, exact_mode_moments
from tnt_ref.models import mlp


def measure(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return out, dt, peak


def main() -> None:
    ds = load_digits()
    X_all = np.concatenate([ds.X_train, ds.X_test])
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, numpy {np.__version__}")

    net = mlp([64, 32, 10], "tanh", "softmax_cross_entropy")
    params = net.init(rng)
    F, dt, peak = measure(lambda: exact_fisher_blocks(net, params, X_all[:500]))
    sizes = {k: v.shape[0] for k, v in F.items()}
    block_mb = sum(v.nbytes for v in F.values()) / 2**20
    print(f"exact blocks, 64-32-10 MLP, n=500: {dt:.2f} s, peak {peak / 2**20:.1f} MiB "
          f"(the blocks themselves: {block_mb:.1f} MiB; D = {sizes})")

    net = mlp([64, 256, 256, 10], "tanh", "softmax_cross_entropy")
    params = net.init(rng)
    M, dt, peak = measure(lambda: exact_mode_moments(net, params, X_all))
    D_max = max(int(np.prod(net.param_shapes[k])) for k in M)
    print(f"exact mode moments, 64-256-256-10 MLP, n={X_all.shape[0]}: {dt:.2f} s, peak {peak / 2**20:.1f} MiB "
          f"(largest tensor D = {D_max}: its dense block would need {D_max**2 * 8 / 1e9:.1f} GB)")


if __name__ == "__main__":
    main()
