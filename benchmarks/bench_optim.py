"""Per-step cost of every optimizer on one model, split by phase, as ratios to SGD-m (issue 4).

Models (synthetic inputs: only time matters here; float64, NumPy on the CPU):
  autoencoder  the paper's MNIST autoencoder sizes, 784-1000-500-250-30 mirrored (ReLU, linear code,
               Bernoulli loss), mini-batch m = 1000 as the paper's autoencoder runs;
  cnn          conv 3->32 and 32->64 (3x3, stride 2, padding 1, ReLU) on 16x16 inputs, linear 1024 -> 10,
               softmax, mini-batch 128 as the paper's CNN runs; kernels as 3-way tensors.

Phases (each timed once per round, all phases interleaved, ``REPEAT`` (5) rounds, the minimum
kept; the phases do not depend on T1 and T2, only the amortisation does):
  gradient        forward + backward with the data labels (the same for every method)
  stats-backward  the extra backward with sampled labels (TNT, KFAC) on the same forward pass
  statistics      the optimizer's statistics update (EMA of the mode moments / of G and A)
  inverses        the optimizer's inverse / root computation
  precondition    the rest of ``update``: momentum, preconditioning, the parameter update
Amortised time per step = gradient + precondition + (stats-backward + statistics) / T1 + inverses / T2.
Optimizer memory = bytes of the optimizer state (momentum, statistics, inverses).

    python benchmarks/bench_optim.py [autoencoder|cnn]    # both models by default, both interval settings
"""

from __future__ import annotations

import platform
import time

import numpy as np

from tnt_ref.fisher import kfac_sums
from tnt_ref.tensor import tensor_shape
from tnt_ref.models import cnn, mlp
from tnt_ref.optim import make_optimizer

REPEAT = 5
M = 1000
SIZES = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
NEVER = 10**9


def nbytes(tree) -> int:
    if isinstance(tree, dict):
        return sum(nbytes(v) for v in tree.values())
    if isinstance(tree, tuple):
        return sum(nbytes(v) for v in tree)
    return int(getattr(tree, "nbytes", 0))


def problem(name: str, rng):
    if name == "autoencoder":
        acts = ["relu", "relu", "relu", "identity", "relu", "relu", "relu"]
        net = mlp(SIZES, acts, "sigmoid_cross_entropy")
        X = rng.random((M, SIZES[0]))
        return net, X, X, f"autoencoder {'-'.join(map(str, SIZES))}"
    net = cnn((3, 16, 16), channels=(32, 64), kernel=3, n_classes=10, activation="relu", padding=1, stride=2)
    return net, rng.random((128, 3, 16, 16)), rng.integers(0, 10, 128), "cnn conv3-32, conv32-64 (3x3, stride 2) on 16x16x3, fc 1024-10"


def main(models=("autoencoder", "cnn")) -> None:
    print(f"machine: {platform.machine()}, numpy {np.__version__}, float64")
    for name in models:
        bench(*problem(name, np.random.default_rng(0)))


def bench(net, X, y, label) -> None:
    rng = np.random.default_rng(1)
    params = net.init(rng)
    M = X.shape[0]
    n_params = sum(p.size for p in params.values())
    sum_d2 = sum(sum(d * d for d in tensor_shape(p.shape, 3)) for p in params.values())
    print(f"\n=== {label}: {n_params:,} parameters, batch {M}")

    z, caches = net.forward(params, X)
    g = net.backward(params, caches, net.loss_fn.grad(z, y) / M)

    def gradient():
        zz, cc = net.forward(params, X)
        net.backward(params, cc, net.loss_fn.grad(zz, y) / M)

    ys = net.loss_fn.sample(z, rng)
    sampled = net.backward(params, caches, net.loss_fn.grad(z, ys) / M)
    kstats = {}
    for k, f in net.backward(params, caches, net.loss_fn.grad(z, ys), per_example="factored").items():
        if hasattr(f, "delta"):
            dd, aa = kfac_sums(f)
            kstats[k] = (dd / M, aa / M)

    # every phase as a timer; all of them run interleaved, round after round, and each keeps its
    # minimum, so a slow spell of the machine affects all phases alike
    timers = {
        "gradient": gradient,
        "stats-backward/tnt": lambda: net.backward(params, caches, net.loss_fn.grad(z, ys) / M),
        "stats-backward/kfac": lambda: {k: kfac_sums(f) for k, f in net.backward(
            params, caches, net.loss_fn.grad(z, ys), per_example="factored").items() if hasattr(f, "delta")},
    }
    memory = {}
    names = ["sgd", "adam", "tnt", "kfac", "shampoo"]
    for name in names:
        kw = {} if name in ("sgd", "adam") else {"damping": 1e-2}
        extra_stats = {"tnt": {"sampled_grads": sampled}, "kfac": {"kfac_stats": kstats}}.get(name, {})

        def make(T1_, T2_, extra, step, name=name, kw=kw, extra_stats=extra_stats):
            opt = make_optimizer(name, 1e-4, **kw, **({} if name in ("sgd", "adam") else {"T1": T1_, "T2": T2_}))
            st = opt.init(params)
            if name in ("tnt", "kfac"):  # statistics initialized once, as after the warm start / first step
                _, st = opt.update(g, st, params, **extra_stats)
            elif name == "shampoo":
                _, st = opt.update(g, st, params)
            st = st._replace(step=step)
            return (lambda: opt.update(g, st, params, **extra)), nbytes(st)

        timers[f"{name}/plain"], memory[name] = make(NEVER, NEVER, {}, 1)  # no statistics, no inverse
        if name not in ("sgd", "adam"):
            # statistics every step (T1 = 1) at a step past T2 = 2 that is not a multiple of 2: no inverse
            timers[f"{name}/stats"], _ = make(1, 2, extra_stats, 3)
            timers[f"{name}/inverse"], _ = make(NEVER, 1, {}, 1)  # an inverse step without statistics
    best = {k: float("inf") for k in timers}
    for _ in range(REPEAT):
        for k, fn in timers.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)

    rows_by = {}
    for name in names:
        t_plain = best[f"{name}/plain"]
        t_sb = best.get(f"stats-backward/{name}", 0.0)
        t_stat = max(best.get(f"{name}/stats", t_plain) - t_plain, 0.0)
        t_inv = max(best.get(f"{name}/inverse", t_plain) - t_plain, 0.0)
        rows_by[name] = (best["gradient"], t_sb, t_stat, t_inv, t_plain, memory[name])
    for T1, T2 in [(1, 20), (10, 100)]:
        print(f"\nintervals T1 = {T1}, T2 = {T2} (ms per step; ratio to SGD-m in brackets)")
        print(f"{'optimizer':<9} {'gradient':>9} {'stats-bwd':>9} {'statistics':>10} {'inverses':>9} {'precond':>8} {'amortised':>16} {'memory (MB)':>18}")
        amort = {n: tg + tp + (tsb + tst) / T1 + tinv / T2 for n, (tg, tsb, tst, tinv, tp, _) in rows_by.items()}
        base_amort, base_mem = amort["sgd"], memory["sgd"] + nbytes(params)
        for name, (tg, tsb, tst, tinv, tp, mem) in rows_by.items():
            total_mem = mem + nbytes(params)
            am = amort[name]
            print(f"{name:<9} {tg*1e3:>9.1f} {tsb*1e3:>9.1f} {tst*1e3:>10.1f} {tinv*1e3:>9.1f} {tp*1e3:>8.1f} "
                  f"{am*1e3:>8.1f} ({am / base_amort:>4.2f}x) {total_mem / 1e6:>9.1f} ({total_mem / base_mem:>4.2f}x)")
        bound = (2 * n_params + 2 * sum_d2) * 8 - nbytes(params)
        print(f"TNT optimizer state {memory['tnt'] / 1e6:.1f} MB; bound momentum + 2 sum d_i^2 = {bound / 1e6:.1f} MB: "
              f"{'within' if memory['tnt'] <= bound else 'ABOVE'}")
        r = amort["tnt"] / base_amort
        target = 2.0 if T1 == 1 else 1.3
        print(f"TNT / SGD-m amortised = {r:.2f} (target <= {target}): {'met' if r <= target else 'NOT met'}; "
              f"TNT vs KFAC {amort['tnt'] / amort['kfac']:.2f}, vs Shampoo {amort['tnt'] / amort['shampoo']:.2f}")


if __name__ == "__main__":
    import sys

    main(tuple(sys.argv[1:]) or ("autoencoder", "cnn"))
