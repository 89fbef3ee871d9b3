"""GPU benchmark (issue 14): CuPy beside NumPy on the same machine, one run, ratios printed.

Measured, per backend (NumPy on the host CPU, CuPy on the GPU) and dtype (float32, float64):

* ``sgd`` and ``tnt`` step time on the paper's MNIST autoencoder sizes, 784-1000-500-250-30 mirrored
  (ReLU, linear code layer, Bernoulli loss), mini-batch m = 1000 of synthetic inputs in [0, 1]; TNT
  with the authors' autoencoder intervals T1 = 1, T2 = 20, so the 20 timed steps hold exactly one
  inverse step (the amortised cost per step). A step is :func:`tnt_ref.training.train_step`: forward,
  backward, the sampled-label backward (TNT), the optimizer update.
* the damped Kronecker solve ``(A kron B + lam I)^{-1} X`` at (2048, 2048)
  (:meth:`tnt_ref.kronecker.KroneckerMatrix.solve_damped`: two eigendecompositions and four products).
* GPU memory: the CuPy memory pool's peak bytes over each configuration.
* host synchronizations inside the optimizer's ``update`` (CuPy's ``cupyx.allow_synchronize``, where
  the installed CuPy still has it): whether an ordinary step and an inverse step synchronize.

The device is synchronized before every clock read. Results: a table on stdout and ``bench_gpu.json``
in ``--out``. Without CuPy or without a GPU the script says so and exits with status 2 (use ``--smoke
--backends numpy`` to exercise the code on a CPU at toy sizes; the tests do).

    python benchmarks/bench_gpu.py --out DIR [--smoke] [--backends numpy cupy] [--dtypes float32 float64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

SIZES = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]
SMOKE_SIZES = [16, 12, 8, 4, 8, 12, 16]


def _sync(xp) -> None:
    from tnt_ref.backend import is_cupy  # noqa: PLC0415

    if is_cupy(xp):
        import cupy  # noqa: PLC0415

        cupy.cuda.get_current_stream().synchronize()


def _pool_peak_reset():
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        return None
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    return pool


def gpu_info() -> dict:
    """Device name, memory, driver and runtime versions, CuPy version; ``{}`` without a usable GPU."""
    from tnt_ref.backend import cupy_available  # noqa: PLC0415

    if not cupy_available():
        return {}
    import cupy  # noqa: PLC0415

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])

    def version(v: int) -> str:
        return f"{v // 1000}.{(v % 1000) // 10}"

    free, total = rt.memGetInfo()
    return {"device": name, "memory_gib": round(total / 2**30, 1), "driver_cuda": version(rt.driverGetVersion()),
            "runtime_cuda": version(rt.runtimeGetVersion()), "cupy": cupy.__version__}


def _autoencoder(sizes):
    from tnt_ref.models import mlp  # noqa: PLC0415

    n_hidden = len(sizes) - 2
    code = n_hidden // 2
    acts = ["identity" if i == code else "relu" for i in range(n_hidden)]
    return mlp(sizes, acts, "sigmoid_cross_entropy")


def time_steps(xp, dtype, optimizer: str, sizes, m: int, n_steps: int, seed: int = 0) -> dict:
    """Milliseconds per :func:`train_step` of ``optimizer``, averaged over ``n_steps`` timed steps."""
    from tnt_ref.optim import make_optimizer  # noqa: PLC0415
    from tnt_ref.training import train_step  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    net = _autoencoder(sizes)
    params = net.init(rng, xp=xp, dtype=getattr(xp, dtype))
    X = xp.asarray(rng.random((m, sizes[0])), dtype=getattr(xp, dtype))
    T2 = n_steps
    kw = dict(momentum=0.9) if optimizer == "sgd" else dict(damping=1e-2, T1=1, T2=T2)
    opt = make_optimizer(optimizer, 1e-3 if optimizer == "sgd" else 1e-4, **kw)
    state = opt.init(params)
    for _ in range(2):  # warm-up: kernels compiled, memory pool filled
        _, params, state = train_step(net, opt, params, state, X, X, rng)
    if optimizer != "sgd":
        state = state._replace(step=T2)  # the timed steps T2 .. 2 T2 - 1 hold exactly one inverse step
    _sync(xp)
    t0 = time.perf_counter()
    for _ in range(n_steps):
        _, params, state = train_step(net, opt, params, state, X, X, rng)
    _sync(xp)
    return {"ms_per_step": 1e3 * (time.perf_counter() - t0) / n_steps}


def time_kron_solve(xp, dtype, d: int, repeat: int, seed: int = 0) -> dict:
    from tnt_ref.kronecker import KroneckerMatrix  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    fac = []
    for _ in range(2):
        G = rng.standard_normal((d, d)) / np.sqrt(d)
        fac.append(xp.asarray(G @ G.T + np.eye(d), dtype=getattr(xp, dtype)))
    K = KroneckerMatrix(fac)
    X = xp.asarray(rng.standard_normal((d, d)), dtype=getattr(xp, dtype))
    K.solve_damped(X, 1e-3)  # warm-up
    _sync(xp)
    t0 = time.perf_counter()
    for _ in range(repeat):
        Y = K.solve_damped(X, 1e-3)
    _sync(xp)
    ms = 1e3 * (time.perf_counter() - t0) / repeat
    # residual of the solve, as a sanity check that the fast path computed the right thing
    R = K.apply(Y) + 1e-3 * Y - X
    rel = float(xp.linalg.vector_norm(xp.reshape(R, (-1,))) / xp.linalg.vector_norm(xp.reshape(X, (-1,))))
    return {"ms_per_solve": ms, "relative_residual": rel}


def sync_check(xp, dtype, sizes, m: int) -> dict:
    """Does the optimizer's ``update`` synchronize the device (CuPy only)? ``None`` where not measurable."""
    try:
        import cupyx  # noqa: PLC0415

        allow = cupyx.allow_synchronize
        Synced = cupyx.DeviceSynchronized
    except (ImportError, AttributeError):
        return {"ordinary_step_syncs": None, "inverse_step_syncs": None, "note": "cupyx.allow_synchronize unavailable"}
    from tnt_ref.optim import make_optimizer  # noqa: PLC0415

    rng = np.random.default_rng(0)
    net = _autoencoder(sizes)
    params = net.init(rng, xp=xp, dtype=getattr(xp, dtype))
    X = xp.asarray(rng.random((m, sizes[0])), dtype=getattr(xp, dtype))
    g = net.loss_and_grad(params, X, X)[1]
    opt = make_optimizer("tnt", 1e-4, damping=1e-2, T1=1, T2=20)
    state = opt.init(params)
    _, state = opt.update(g, state, params, sampled_grads=g)
    out = {}
    for label, step in (("ordinary_step_syncs", 21), ("inverse_step_syncs", 40)):
        st = state._replace(step=step)
        try:
            with allow(False):
                opt.update(g, st, params, sampled_grads=g)
            out[label] = False
        except Synced:
            out[label] = True
    return out


def run(backends, dtypes, smoke: bool, out_dir: Path, log=print) -> dict:
    sizes = SMOKE_SIZES if smoke else SIZES
    m, n_steps, d, repeat = (32, 4, 64, 2) if smoke else (1000, 20, 2048, 3)
    from tnt_ref.backend import is_cupy, namespace_for  # noqa: PLC0415

    res = {"config": {"sizes": sizes, "batch": m, "timed_steps": n_steps, "T1": 1, "T2": n_steps, "kron_d": d,
                      "smoke": smoke, "numpy": np.__version__, "machine": platform.machine(),
                      "cpu_count": os.cpu_count()},
           "gpu": gpu_info(), "rows": []}
    path = out_dir / "bench_gpu.json"
    for backend in backends:
        xp = namespace_for(backend)
        for dtype in dtypes:
            pool = _pool_peak_reset() if is_cupy(xp) else None
            row = {"backend": backend, "dtype": dtype}
            for opt in ("sgd", "tnt"):
                row[f"{opt}_ms"] = time_steps(xp, dtype, opt, sizes, m, n_steps)["ms_per_step"]
            row["tnt_over_sgd"] = row["tnt_ms"] / row["sgd_ms"]
            ks = time_kron_solve(xp, dtype, d, repeat)
            row["kron_solve_ms"], row["kron_solve_residual"] = ks["ms_per_solve"], ks["relative_residual"]
            if pool is not None:
                row["gpu_pool_bytes"] = int(pool.total_bytes())
                row.update(sync_check(xp, dtype, sizes, m))
            res["rows"].append(row)
            log(f"{backend:<6} {dtype:<8} sgd {row['sgd_ms']:9.2f} ms  tnt {row['tnt_ms']:9.2f} ms  "
                f"tnt/sgd {row['tnt_over_sgd']:5.2f}  kron solve ({d},{d}) {row['kron_solve_ms']:9.2f} ms")
            path.write_text(json.dumps(res, indent=2) + "\n")  # each finished row is kept
    by = {(r["backend"], r["dtype"]): r for r in res["rows"]}
    for dtype in dtypes:
        if ("numpy", dtype) in by and ("cupy", dtype) in by:
            a, b = by[("numpy", dtype)], by[("cupy", dtype)]
            res.setdefault("cupy_over_numpy", {})[dtype] = {
                k: b[k] / a[k] for k in ("sgd_ms", "tnt_ms", "kron_solve_ms")}
    path.write_text(json.dumps(res, indent=2) + "\n")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench_gpu.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.environ.get("OUT", "bench-gpu-out"), help="output folder (default $OUT)")
    p.add_argument("--backends", nargs="+", default=["numpy", "cupy"], choices=["numpy", "cupy"])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--smoke", action="store_true", help="toy sizes (seconds), to exercise the script")
    args = p.parse_args(argv)
    from tnt_ref.backend import cupy_available  # noqa: PLC0415
    from tnt_ref.files import prepare_output_dir  # noqa: PLC0415

    if "cupy" in args.backends and not cupy_available():
        print("bench_gpu.py: no usable GPU: CuPy is not installed or sees no CUDA device. This benchmark "
              "compares CuPy with NumPy and needs one; use --backends numpy --smoke to exercise it on a CPU.",
              file=sys.stderr)
        return 2
    out = prepare_output_dir(args.out, "--out")
    res = run(args.backends, args.dtypes, args.smoke, out)
    if res["gpu"]:
        print("device:", ", ".join(f"{k} {v}" for k, v in res["gpu"].items()))
    for dtype, r in res.get("cupy_over_numpy", {}).items():
        print(f"cupy/numpy {dtype}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
    print(f"wrote {out / 'bench_gpu.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
