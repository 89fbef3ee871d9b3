"""The ``tnt-ref`` command line. Argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {v}")
    return v


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 6,5,4; got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 6,5,4; got {text!r}")
    return shape


def _cmd_estimators(args) -> int:
    from .experiments import estimator_study  # noqa: PLC0415

    t0 = time.perf_counter()
    rows = estimator_study(shape=args.shape, ns=args.n, seed=args.seed)
    print(f"Kronecker estimators on tensor-normal samples, shape {args.shape} (seed {args.seed})")
    print(f"{'n':>6}  {'method':<10} {'rel. error':>11} {'KL(true||est)':>14} {'sweeps':>7}")
    for r in rows:
        print(f"{r['n']:>6}  {r['method']:<10} {r['rel_error']:>11.4g} {r['kl']:>14.4g} {r['sweeps']:>7}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {v}")
    return v


def _cmd_fisher(args) -> int:
    from pathlib import Path  # noqa: PLC0415

    from .experiments import fisher_study  # noqa: PLC0415
    from .files import atomic_write_json  # noqa: PLC0415
    from .plots import plot_ladder  # noqa: PLC0415

    out = Path(args.out)
    models = ["mlp", "cnn"] if args.model == "both" else [args.model]
    for model in models:
        t0 = time.perf_counter()
        print(f"[{model}] exact block Fisher and its Kronecker approximations on {args.n} digits ...", flush=True)
        res = fisher_study(model, n=args.n, damping=args.damping, seed=args.seed, conv_modes=args.conv_modes)
        print(f"{'layer':<14} {'method':<16} {'rel. error':>10} {'KL':>10} {'cos(dir)':>9}")
        for r in res["rows"]:
            print(f"{r['layer']:<14} {r['method']:<16} {r['rel_error']:>10.3g} {r['kl']:>10.3g} {r['cosine']:>9.4f}")
        js = atomic_write_json(out / f"fisher_{model}.json", res)
        fig = plot_ladder(res["rows"], res["spectra"], out / f"fisher_{model}.png", title=f"{model} on digits, n={args.n}")
        print(f"wrote {js} and {fig} ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    return 0


def _cmd_vectors(args) -> int:
    from .vectors import write_vectors  # noqa: PLC0415

    for p in write_vectors(args.out, seed=args.seed):
        print(f"wrote {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tnt-ref", description="Tensor Normal Training, reference implementation.")
    sub = p.add_subparsers(dest="command", required=True)

    est = sub.add_parser("estimators", help="compare TNT, MLE and Frobenius estimators on tensor-normal data")
    est.add_argument("--shape", type=_shape, default=(6, 5, 4), help="tensor shape, e.g. 6,5,4")
    est.add_argument("--n", type=_positive_int, nargs="+", default=[30, 100, 300, 1000, 3000])
    est.add_argument("--seed", type=int, default=0)
    est.set_defaults(func=_cmd_estimators)

    fis = sub.add_parser("fisher", help="compare every Kronecker approximation with the exact block Fisher")
    fis.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    fis.add_argument("--n", type=_positive_int, default=300, help="number of digits images (2..1497)")
    fis.add_argument("--damping", type=_positive_float, default=1e-3)
    fis.add_argument("--conv-modes", type=int, choices=[2, 3, 4], default=3, help="conv kernels as 2-, 3- or 4-way tensors")
    fis.add_argument("--seed", type=int, default=0)
    fis.add_argument("--out", default="tnt-ref-out", help="folder for the JSON files and figures")
    fis.set_defaults(func=_cmd_fisher)

    vec = sub.add_parser("vectors", help="write known-answer test vectors (.npz), see docs/vectors.md")
    vec.add_argument("--out", required=True, help="folder for the .npz files")
    vec.add_argument("--seed", type=int, default=0)
    vec.set_defaults(func=_cmd_vectors)

    demo = sub.add_parser("demo", help="the README's main job")
    demo.set_defaults(func=_cmd_demo)
    return p


def _cmd_demo(args) -> int:
    args.shape, args.n, args.seed = (6, 5, 4), [30, 100, 300, 1000, 3000], 0
    return _cmd_estimators(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError) as err:
        print(f"tnt-ref {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
