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


def _cmd_train(args) -> int:
    from pathlib import Path  # noqa: PLC0415

    from .files import atomic_write_json  # noqa: PLC0415
    from .training import DivergedError, run  # noqa: PLC0415

    out = Path(args.out)
    ck = Path(args.checkpoint) if args.checkpoint else out / "checkpoint.npz"
    def show(h):
        acc = "" if h["test_accuracy"] is None else f"  test acc {h['test_accuracy']:.4f}"
        print(f"epoch {h['epoch']:>3}  train loss {h['train_loss']:.5f}  test loss {h['test_loss']:.5f}{acc}  ({h['wall_time']:.1f} s)",
              flush=True)

    try:
        r = run(args.problem, args.optimizer, args.lr, epochs=args.epochs, seconds=args.seconds, seed=args.seed,
                batch_size=args.batch_size, checkpoint=ck, resume=args.resume, backend=args.backend, on_epoch=show)
    except DivergedError as err:
        print(f"tnt-ref train: stopped: {err}", file=sys.stderr)
        return 3
    atomic_write_json(out / "history.json", r.history)
    print(f"wrote {out / 'history.json'}; checkpoint {ck}")
    return 0


def _cmd_compare(args) -> int:
    from .training import compare  # noqa: PLC0415

    t0 = time.perf_counter()
    print(f"{args.problem}: every optimizer over its learning-rate grid, {args.epochs} epochs each", flush=True)
    opts = args.optimizers or None
    compare(args.problem, args.out, epochs=args.epochs, **({"optimizers": opts} if opts else {}), seed=args.seed,
            log=lambda s: print(s, flush=True))
    from pathlib import Path  # noqa: PLC0415

    print((Path(args.out) / "table.md").read_text())
    print(f"wrote {args.out}/results.json, loss.png, table.md ({time.perf_counter() - t0:.0f} s)")
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

    from .optim import OPTIMIZERS  # noqa: PLC0415

    tr = sub.add_parser("train", help="one training run on the digits data")
    tr.add_argument("--problem", required=True, help="autoencoder, mlp or cnn")
    tr.add_argument("--optimizer", required=True, help=f"one of {', '.join(OPTIMIZERS)}")
    tr.add_argument("--lr", type=_positive_float, required=True, help="learning rate")
    tr.add_argument("--epochs", type=_positive_int, default=None)
    tr.add_argument("--seconds", type=_positive_float, default=None, help="budget in training seconds")
    tr.add_argument("--batch-size", type=_positive_int, default=None)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default="tnt-ref-out/train")
    tr.add_argument("--checkpoint", default=None, help="checkpoint file (default OUT/checkpoint.npz)")
    tr.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    tr.add_argument("--backend", default="numpy", help="numpy or cupy")
    tr.set_defaults(func=_cmd_train)

    cmp_ = sub.add_parser("compare", help="every optimizer over its learning-rate grid (the paper's protocol)")
    cmp_.add_argument("--problem", required=True, choices=["autoencoder", "mlp", "cnn"])
    cmp_.add_argument("--out", required=True)
    cmp_.add_argument("--epochs", type=_positive_int, default=30)
    cmp_.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=None)
    cmp_.add_argument("--seed", type=int, default=0)
    cmp_.set_defaults(func=_cmd_compare)

    sub.add_parser("check-theory", help="run proofs_check (the paper's theory, with negative controls); --help for options",
                   add_help=False)

    demo = sub.add_parser("demo", help="the README's main job: a short optimizer comparison on the autoencoder")
    demo.add_argument("--out", default="tnt-ref-out/demo")
    demo.set_defaults(func=_cmd_demo)
    return p


def _cmd_demo(args) -> int:
    args.problem, args.epochs, args.optimizers, args.seed = "autoencoder", DEMO_EPOCHS, None, 0
    return _cmd_compare(args)


#: Epochs per run in ``tnt-ref demo`` (about 3 minutes on 2 CPU cores for all optimizers and grids).
DEMO_EPOCHS = 50


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check-theory"]:
        # proofs_check depends on tnt_ref, never the reverse: imported only here, at the top layer
        from proofs_check.__main__ import main as check_main  # noqa: PLC0415

        return check_main(argv[1:], prog="tnt-ref check-theory")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, RuntimeError) as err:
        print(f"tnt-ref {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
