"""``tnt-ref fisher``: the exact block Fisher of each layer against every Kronecker approximation."""

from __future__ import annotations

import time

from ._args import nonneg_int, positive_float, positive_int


def _kl_text(kl: float | None) -> str:
    """A KL divergence for the table: ``inf`` where the JSON holds null (not finite), ``0`` where round-off left a
    value of either sign below 1e-12 (a KL is never negative), else 3 significant digits."""
    if kl is None:
        return "inf"
    return "0" if abs(kl) < 1e-12 else f"{kl:.3g}"


def _cmd_fisher(args) -> int:
    from pathlib import Path  # noqa: PLC0415

    from ..experiments import COMPARE_MODELS  # noqa: PLC0415
    from ..files import Outputs, prepare_output_dir  # noqa: PLC0415

    out = prepare_output_dir(Path(args.out), "--out")  # at the door: a bad folder fails before any work
    models = {"both": ["mlp", "cnn"], "compare": list(COMPARE_MODELS)}.get(args.model, [args.model])
    outs = Outputs()  # the files this run writes, locked; an earlier run's are replaced only with --overwrite
    for model in models:
        for ext in ("json", "png"):
            outs.file(out / f"fisher_{model}.{ext}", f"--out (its fisher_{model}.{ext})")
    with outs:
        outs.refuse_existing(args.overwrite)
        return _run(args, out, models)


def _run(args, out, models) -> int:
    from ..experiments import fisher_study  # noqa: PLC0415
    from ..files import atomic_write_json  # noqa: PLC0415
    from ..plots import plot_fisher  # noqa: PLC0415
    from ..runtime import Progress  # noqa: PLC0415

    for model in models:
        t0 = time.perf_counter()
        print(f"[{model}] exact block Fisher and its Kronecker approximations on {args.n} digits ...", flush=True)
        bar = Progress(1.0, f"[{model}] fisher", "", count=False, min_interval=2.0,
                       log=lambda s: print(f"  {s}", flush=True))

        def progress(done: float, total: float, note: str, bar=bar) -> None:
            bar.set_total(total)
            bar.advance(done - bar.done, note)

        try:
            res = fisher_study(model, n=args.n, damping=args.damping, seed=args.seed, conv_modes=args.conv_modes,
                               exact=args.exact, progress=progress)
        finally:
            bar.close()
        print(f"{'layer':<14} {'method':<22} {'rel. error':>10} {'KL':>10} {'KL proj.':>10} {'cos(dir)':>9} {'exact':>6}")

        def num(v, fmt):  # null in the JSON: not finite (an undefined cosine)
            return format(v, fmt) if v is not None else format("nan", fmt.split(".")[0])

        for r in res["rows"]:
            print(f"{r['layer']:<14} {r['method']:<22} {num(r['rel_error'], '>10.3g')} {_kl_text(r['kl']):>10} "
                  f"{_kl_text(r['kl_proj']):>10} {num(r['cosine'], '>9.4f')} {r['exact_path']:>6}")
        js = atomic_write_json(out / f"fisher_{model}.json", res)
        fig = plot_fisher(res, out / f"fisher_{model}.png")
        print(f"wrote {js} and {fig} ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    return 0


def add_parsers(sub) -> None:
    from ..experiments import COMPARE_MODELS, FISHER_DAMPING  # noqa: PLC0415

    fis = sub.add_parser("fisher", help="compare every Kronecker approximation with the exact block Fisher")
    fis.add_argument("--model", choices=["mlp", "cnn", "autoencoder-wide", "both", "compare", *COMPARE_MODELS],
                     default="both",
                     help="the model: mlp 64-32-10, cnn, the paper-width autoencoder-wide (the longest: hours, "
                          "docs/fisher.md), both = mlp and cnn, compare = the networks of the `tnt-ref compare` "
                          "problems on the digits, or one of them (default: %(default)s)")
    fis.add_argument("--exact", choices=["dense", "gram", "auto"], default="auto",
                     help="exact block: dense (D x D), gram (block-free, from V^T V), auto (dense when it fits; "
                          "default: %(default)s)")
    fis.add_argument("--n", type=positive_int, default=300, help="number of digits images, 2..1497 (default: %(default)s)")
    fis.add_argument("--damping", type=positive_float, default=FISHER_DAMPING,
                     help="damping eps of the metrics that invert F_hat + eps I (KL, direction), of the MLE of a "
                          "singular block and of KL-Shampoo's rows (default: %(default)g)")
    fis.add_argument("--conv-modes", type=int, choices=[2, 3, 4], default=3,
                     help="conv kernels as 2-, 3- or 4-way tensors (default: %(default)s)")
    fis.add_argument("--seed", type=nonneg_int, default=0,
                     help="seed of the initialization, the warm-up and the sampled labels (default: %(default)s)")
    fis.add_argument("--out", default="tnt-ref-out", help="folder for the JSON files and figures (default: %(default)s)")
    fis.add_argument("--overwrite", action="store_true",
                     help="replace fisher_MODEL.json/.png left in --out by an earlier run (default: refuse)")
    fis.set_defaults(func=_cmd_fisher)
