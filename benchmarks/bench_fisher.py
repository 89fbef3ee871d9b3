"""Time and peak memory of the exact block Fisher, dense and block-free (issues 3 and 15).

1. All exact blocks of a 64-32-10 tanh/softmax MLP on 500 digits (blocks of D = 2048, 32, 320, 10),
   and the floor: the backward passes that produce every ``V`` plus one ``V^T V`` per block
   (ratio goal: at most 1.5).
2. All exact-expectation mode moments of a 64-256-256-10 MLP on all 1797 digits; the largest
   block there (D = 65536) would need 34 GB, so only the Kronecker statistics are computed.
3. Gram path against dense path where both run: the exact side of the metrics (block or V, then
   logdet, (F + lam I)^{-1} g, ||F||) and the metrics of TNT's approximation, fc1.weight of the MLP.
4. The gram path alone on fc2.weight (500 x 1000) of the wide autoencoder on 300 digits, with the
   size of the dense block it avoided.

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
from tnt_ref.fisher import gram as fg
from tnt_ref.experiments import FISHER_MODELS
from tnt_ref.fisher import compare_to_exact, exact_fisher_blocks, exact_mode_moments
from tnt_ref.tensor import kron
from tnt_ref.models import mlp
from tnt_ref.tensor_normal import tnt_factors_from_moments


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

    def floor():
        gs = list(net.fisher_pseudo_grads(params, X_all[:500], per_example=True))  # the backward passes
        V = {nm: np.concatenate([g[nm].reshape(500, -1) for g in gs]) for nm in net.param_names}  # (N, D)
        return {nm: v.T @ v / 500 for nm, v in V.items()}

    F0, dt0, _ = measure(floor)
    err = max(float(np.max(np.abs(F[k] - F0[k])) / np.max(np.abs(F0[k]))) for k in F)
    print(f"floor (backward passes + V^T V): {dt0:.2f} s; exact_fisher_blocks / floor = {dt / dt0:.2f} "
          f"(goal <= 1.5; same numbers to {err:.1e})")

    lam, nm = 1e-3, "fc1.weight"
    Xm = X_all[:500]
    g = rng.standard_normal(net.param_shapes[nm]).reshape(-1)

    def dense():
        Fd = exact_fisher_blocks(net, params, Xm, names=[nm])[nm]
        U = tnt_factors_from_moments(exact_mode_moments(net, params, Xm, names=[nm])[nm])
        return compare_to_exact(Fd, kron(*U), g, lam)

    def gram():
        blk = fg.lowrank_blocks(net, params, Xm, [nm])[nm]
        ex = fg.exact_side(blk, g, lam)
        U = [blk.mode_moment(i) for i in range(2)]
        return fg.lowrank_metrics(blk, ex, ("kron", tnt_factors_from_moments(U)), g, lam)

    md, td, pd = measure(dense)
    mg, tg, pg = measure(gram)
    dev = max(abs(md[k] - mg[k]) / abs(md[k]) for k in md)
    print(f"TNT metrics of {nm} (D = 2048, N = 5000): dense {td:.2f} s / {pd / 2**20:.0f} MiB, gram {tg:.2f} s / "
          f"{pg / 2**20:.0f} MiB; time ratio gram/dense {tg / td:.2f}, memory ratio {pg / pd:.2f}; "
          f"metrics agree to {dev:.1e}")

    wide = FISHER_MODELS["autoencoder-wide"][0]()
    wp = wide.init(rng)
    Xw, nm = ds.X_train[:300], "fc2.weight"
    g = rng.standard_normal(wide.param_shapes[nm])

    def gram_wide():
        blk = fg.lowrank_blocks(wide, wp, Xw, [nm])[nm]
        ex = fg.exact_side(blk, g, lam)
        U = [blk.mode_moment(i) for i in range(2)]
        return blk.N, fg.lowrank_metrics(blk, ex, ("kron", tnt_factors_from_moments(U)), g, lam)

    (N, mw), tw, pw = measure(gram_wide)
    D = int(np.prod(wide.param_shapes[nm]))
    print(f"gram path, autoencoder-wide {nm} (D = {D}, N = {N}): {tw:.1f} s, peak {pw / 2**30:.2f} GiB "
          f"(the dense block would need {D * D * 8 / 1e12:.1f} TB); TNT rel. error {mw['rel_error']:.3f}, "
          f"KL {mw['kl']:.4g}, cosine {mw['cosine']:.4f}")

    net = mlp([64, 256, 256, 10], "tanh", "softmax_cross_entropy")
    params = net.init(rng)
    M, dt, peak = measure(lambda: exact_mode_moments(net, params, X_all))
    D_max = max(int(np.prod(net.param_shapes[k])) for k in M)
    print(f"exact mode moments, 64-256-256-10 MLP, n={X_all.shape[0]}: {dt:.2f} s, peak {peak / 2**20:.1f} MiB "
          f"(largest tensor D = {D_max}: its dense block would need {D_max**2 * 8 / 1e9:.1f} GB)")


if __name__ == "__main__":
    main()
