"""``tnt-ref estimators`` and ``tnt-ref vectors``."""

from __future__ import annotations

import time

from ._args import nonneg_int, positive_int, shape


def _cmd_estimators(args) -> int:
    from ..experiments import estimator_study  # noqa: PLC0415

    t0 = time.perf_counter()
    rows = estimator_study(shape=args.shape, ns=args.n, seed=args.seed)
    print(f"Kronecker estimators on tensor-normal samples, shape {args.shape} (seed {args.seed})")
    print(f"{'n':>6}  {'method':<10} {'rel. error':>11} {'KL(true||est)':>14} {'sweeps':>7}")
    for r in rows:
        print(f"{r['n']:>6}  {r['method']:<10} {r['rel_error']:>11.4g} {r['kl']:>14.4g} {r['sweeps']:>7}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_vectors(args) -> int:
    from ..files import Outputs, prepare_output_dir  # noqa: PLC0415

    out = prepare_output_dir(args.out, "--out")  # at the door: a bad folder fails before any work

    from ..vectors import CASES, write_vectors  # noqa: PLC0415

    outs = Outputs()
    for name in CASES:
        outs.file(out / f"{name}.npz", f"--out (its {name}.npz)")
    with outs:
        outs.refuse_existing(args.overwrite)
        for p in write_vectors(out, seed=args.seed):
            print(f"wrote {p}")
    return 0


def add_parsers(sub) -> None:
    est = sub.add_parser("estimators", help="compare TNT, MLE and Frobenius estimators on tensor-normal data")
    est.add_argument("--shape", type=shape, default=(6, 5, 4), help="tensor shape (default: 6,5,4)")
    est.add_argument("--n", type=positive_int, nargs="+", default=[30, 100, 300, 1000, 3000], metavar="N",
                     help="sample sizes, one row group each (default: 30 100 300 1000 3000)")
    est.add_argument("--seed", type=nonneg_int, default=0,
                     help="seed of the covariance factors and the samples (default: %(default)s)")
    est.set_defaults(func=_cmd_estimators)

    vec = sub.add_parser("vectors", help="write known-answer test vectors (.npz), see docs/vectors.md")
    vec.add_argument("--out", required=True, help="folder for the .npz files (required)")
    vec.add_argument("--overwrite", action="store_true", help="replace vectors written earlier in --out (default: refuse)")
    vec.add_argument("--seed", type=nonneg_int, default=0,
                     help="seed of the random inputs written into the vectors (default: %(default)s)")
    vec.set_defaults(func=_cmd_vectors)
