"""``tnt-ref train``, ``tnt-ref compare`` and ``tnt-ref demo``.

Each checks its output folder at the door (created and written before any computation; a bad path
ends at once with exit code 2), takes a lock on it (a second live run in the same folder is
refused), refuses a folder that holds another run unless ``--resume`` or ``--overwrite`` is given,
keeps every finished epoch (``train``) or run (``compare``, ``demo``) on disk, and ends a Ctrl-C
with one line saying what was kept, and exit code 130. ``train`` ends a diverged run with exit
code 3, naming the last good epoch and its loss.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path

from ._args import nonneg_float, nonneg_int, positive_float, positive_int, unit_float

#: Epochs per run in ``tnt-ref demo`` (about a minute on 2 CPU cores: 1 tuning seed, 3 report seeds).
DEMO_EPOCHS = 30
#: One damping per TNT variant in the demo (no damping tuning): 0.01 for TNT; 0.03 for TNT-EF, which diverges at
#: every learning rate of its grid with 0.01 on the autoencoder. 0.03 is the damping the full protocol selected
#: for both on this problem (docs/results/autoencoder). KL-Shampoo keeps its default 1e-3 (5 of 5 seeds stable in
#: docs/results/shampoo-family/autoencoder): tuned on the demo's one seed, its damping went to 1e-4, which diverged
#: on all 3 report seeds at epoch 4.
DEMO_DAMPING = {"tnt": [1e-2], "tnt-ef": [3e-2], "kl-shampoo": [1e-3]}

#: Exit codes.
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

#: Optimizer hyperparameter flags: (flag, keyword, type, help). ``None`` defaults mean the problem's setting, which is
#: the optimizer's own default except the intervals T1, T2 and mnist-autoencoder's dampings (tests/test_cli.py checks
#: the defaults named here).
_HYPER_FLAGS = [
    ("--damping", "damping", positive_float,
     "damping eps (tnt, tnt-ef, kfac, shampoo, kl-shampoo; default: the optimizer's own, 1e-2 for tnt, tnt-ef and "
     "kfac, 1e-4 for shampoo, 1e-3 for kl-shampoo; on mnist-autoencoder 0.1, kfac 0.3; compare tunes tnt's and "
     "tnt-ef's over --damping-grid and kl-shampoo's over 1e-4 1e-3 1e-2 unless this is given)"),
    ("--T1", "T1", positive_int, "steps between statistics updates (tnt, tnt-ef, kfac, shampoo, kl-shampoo, soap; "
                                 "default: 1 on the autoencoder, 5 on mlp and cnn)"),
    ("--T2", "T2", positive_int, "steps between inverse (soap: eigenbasis) updates (default: 20 on the autoencoder, 25 "
                                 "on mlp and cnn)"),
    ("--momentum", "momentum", unit_float, "momentum (sgd, tnt, tnt-ef, kfac, shampoo, kl-shampoo; default: 0.9)"),
    ("--decay", "decay", unit_float, "EMA decay of the curvature statistics (tnt, tnt-ef, kfac, shampoo, kl-shampoo, "
                                     "soap; default: 0.9, soap 0.95)"),
    ("--weight-decay", "weight_decay", nonneg_float, "decoupled weight decay (all optimizers; default: 0)"),
    ("--b1", "b1", unit_float, "first-moment decay (adam, soap; default: 0.9, soap 0.95)"),
    ("--b2", "b2", unit_float, "second-moment decay (adam, soap; default: 0.999, soap 0.95)"),
    ("--eps", "eps", positive_float, "epsilon added to the root of the second moment (adam, soap; default: 1e-8)"),
    ("--floor", "floor", positive_float, "smallest eigenvalue kept before an inverse root (shampoo, kl-shampoo; "
                                         "default: shampoo 1e-12, kl-shampoo 1e-30)"),
    ("--stat-scale", "stat_scale", str, "tnt's statistics: moments of the batch-mean gradient, mean of the per-example "
                                        "moments, moments of the summed gradient over m, or per-example over m "
                                        "(default: batch-mean)"),
    ("--damping-scheme", "damping_scheme", str, "tnt's damping: eps on each factor, one eps split across the factors "
                                                "(pi), or (kron U + eps I)^-1 (exact) (default: per-factor)"),
    ("--ema", "ema", str, "tnt's moving average of the statistics after the warm start: first (the first statistics "
                          "start it), plain, bias-corrected (default: first)"),
    ("--momentum-placement", "momentum_placement", str, "tnt's momentum before or after preconditioning "
                                                        "(default: before)"),
    ("--bias", "bias", str, "tnt's bias: a tensor of its own, or an extra input column of its weight (convolutions need "
                            "--conv-modes 2) (default: own-tensor)"),
    ("--inverse-schedule", "inverse_schedule", str, "tnt's inverses: every T1 steps until T2 then every T2 (warm-up), "
                                                    "or every T2 from the start (periodic) (default: warm-up)"),
    ("--conv-modes", "conv_modes", positive_int, "modes of a conv weight (tnt, shampoo, kl-shampoo, soap; default: 3)"),
]


def _choices() -> dict:
    """The values each tnt convention flag takes, from the optimizer itself."""
    from ..optim.tnt import BIASES, DAMPING_SCHEMES, EMAS, INVERSE_SCHEDULES, MOMENTUM_PLACEMENTS, STAT_SCALES  # noqa: PLC0415

    return {"stat_scale": STAT_SCALES, "damping_scheme": DAMPING_SCHEMES, "ema": EMAS, "momentum_placement": MOMENTUM_PLACEMENTS,
            "bias": BIASES, "inverse_schedule": INVERSE_SCHEDULES,
            "conv_modes": (2, 3, 4)}


def _add_hyper(p) -> None:
    g = p.add_argument_group("optimizer hyperparameters (default: the problem's setting, docs/reproduction.md)")
    choices = _choices()
    for flag, dest, typ, text in _HYPER_FLAGS:
        c = choices.get(dest)
        g.add_argument(flag, dest=f"hp_{dest}", type=typ, default=None, help=text, choices=c,
                       metavar=None if c else dest.upper())


def _hyper(args) -> dict:
    return {dest: getattr(args, f"hp_{dest}") for _, dest, *_ in _HYPER_FLAGS if getattr(args, f"hp_{dest}") is not None}


def _accepted(optimizer: str) -> set:
    import inspect  # noqa: PLC0415

    from ..optim import factory  # noqa: PLC0415

    return set(inspect.signature(factory(optimizer)).parameters)


def _check_resume_overwrite(args) -> None:
    if args.resume and args.overwrite:
        raise ValueError("give either --resume or --overwrite, not both.")


def _check_data(args):
    """The problem's data loaded and checked at the door (a bad --data folder: one line, exit 2, nothing written)."""
    from ..training import get_problem  # noqa: PLC0415
    from ..training.problems import load_problem_data  # noqa: PLC0415

    return load_problem_data(get_problem(args.problem), args.data, args.dtype)


# ----------------------------------------------------------------------------- train
def _cmd_train(args) -> int:
    from ..files import Outputs  # noqa: PLC0415

    _check_resume_overwrite(args)  # --problem and --optimizer: argparse's choices
    if args.epochs is None and args.seconds is None and args.budget_seconds is None:
        raise ValueError("give a budget: --epochs, --seconds (wall) and/or --budget-seconds (process time).")
    ds = _check_data(args)
    hyper = _hyper(args)
    bad = sorted(k for k in hyper if k not in _accepted(args.optimizer))
    if bad:
        raise ValueError(f"{', '.join('--' + b.replace('_', '-') for b in bad)} does not apply to {args.optimizer}.")
    if args.seeds is not None:
        return _train_seeds(args, hyper, ds)
    outs = Outputs()
    out = outs.folder(args.out, "--out")
    ck = outs.file(args.checkpoint if args.checkpoint is not None else out / "checkpoint.npz", "--checkpoint")
    hist_path = outs.file(out / "history.json", "--out (its history.json)")
    with outs:  # locks first, then the existence check: two runs started together cannot both pass it
        if not args.resume and not args.overwrite and (ck.exists() or hist_path.exists()):
            raise ValueError(f"{'--checkpoint' if ck.exists() else '--out'} "
                             f"{str(ck if ck.exists() else out)!r} holds another run "
                             f"({ck.name if ck.exists() else hist_path.name}); pass --resume to continue it or "
                             "--overwrite to replace it.")
        return _train_one(args, hyper, out, ck, hist_path)


def _train_one(args, hyper: dict, out: Path, ck: Path, hist_path: Path) -> int:
    from ..files import atomic_write_json  # noqa: PLC0415
    from ..training import DivergedError, run  # noqa: PLC0415

    doc: dict = {"status": "running", "config": None, "initial_train_loss": None, "history": []}

    def write(status: str) -> None:
        doc["status"] = status
        if doc["config"] is not None:
            atomic_write_json(hist_path, doc)

    def start(config, history):
        doc["config"], doc["initial_train_loss"], doc["history"] = config, config["initial_train_loss"], history
        write("running")

    def show(h):
        doc["history"].append(h)
        write("running")
        acc = "" if h["test_accuracy"] is None else f"  test acc {h['test_accuracy']:.4f}"
        print(f"epoch {h['epoch']:>3g}  train loss {h['train_loss']:.5f}  test loss {h['test_loss']:.5f}{acc}  "
              f"({h['wall_time']:.1f} s)", flush=True)

    # inside the caller's ownership (locks) of out, ck and hist_path
    if args.overwrite:
        ck.unlink(missing_ok=True)
        hist_path.unlink(missing_ok=True)
    try:
        run(args.problem, args.optimizer, args.lr, epochs=args.epochs, seconds=args.seconds, seed=args.seed,
            batch_size=args.batch_size, checkpoint=ck, resume=args.resume, backend=args.backend,
            opt_kwargs=hyper, dtype=args.dtype, divergence_factor=args.divergence_factor, val_size=args.val_size,
            budget_seconds=args.budget_seconds, data=args.data,
            on_start=start, on_epoch=show)
    except DivergedError as err:
        write("diverged")
        doc["message"] = str(err)
        atomic_write_json(hist_path, doc) if doc["config"] is not None else None
        print(f"tnt-ref train: diverged after epoch {err.last_good_epoch} (the last good one; training loss "
              f"{err.last_good_loss:.4g}): {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        write("interrupted")
        n = len(doc["history"])
        kept = f"{n} finished epochs in {ck} and {hist_path}; continue with --resume" if n else "nothing (no epoch had finished)"
        print(f"tnt-ref train: interrupted (Ctrl-C); kept {kept}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    write("finished")
    print(f"wrote {hist_path}; checkpoint {ck}")
    return 0


def _train_seeds(args, hyper: dict, ds) -> int:
    """``train --seeds S1 S2 ...``: one run per seed through the grid engine, and their mean and 95% interval."""
    from ..files import Outputs  # noqa: PLC0415
    from ..training import RunSpec, run_grid  # noqa: PLC0415

    if (args.epochs is None and args.budget_seconds is None) or args.seconds is not None:
        raise ValueError("--seeds needs an --epochs or --budget-seconds budget (not --seconds: wall time is not "
                         "comparable across the runs of a grid).")
    if args.checkpoint:
        raise ValueError("--seeds keeps one record per finished run, not checkpoints: drop --checkpoint.")
    if args.backend != "numpy":
        raise ValueError("--seeds runs on numpy only; drop --backend.")
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds lists a seed twice ({list(args.seeds)}); each seed is one run.")
    outs = Outputs()
    out = outs.folder(args.out, "--out")
    runs = out / "runs"
    summary_path = outs.file(out / "summary.json", "--out (its summary.json)")
    specs = [RunSpec.make(args.problem, args.optimizer, args.lr, s, args.epochs, hyper, dtype=args.dtype,
                          val_size=args.val_size, divergence_factor=args.divergence_factor, batch_size=args.batch_size,
                          budget_seconds=args.budget_seconds, data_id=ds.fingerprint or None, data=ds.source or None)
             for s in args.seeds]
    with outs:
        if not args.resume and not args.overwrite and (runs.exists() or summary_path.exists()
                                                       or (out / "checkpoint.npz").exists()):
            raise ValueError(f"--out {str(out)!r} holds other runs; pass --resume to continue (finished seeds are "
                             "skipped) or --overwrite to replace them.")
        if args.overwrite:
            shutil.rmtree(runs, ignore_errors=True)
            summary_path.unlink(missing_ok=True)
        try:
            recs = run_grid(specs, runs, jobs=args.jobs, resume=True, log=lambda t: print(t, flush=True), desc="seeds")
        except KeyboardInterrupt:
            n = len(list(runs.glob("*.json"))) if runs.is_dir() else 0
            print(f"tnt-ref train: interrupted (Ctrl-C); kept {n} finished runs in {runs}; rerun the same command "
                  "with --resume to skip them.", file=sys.stderr)
            return EXIT_INTERRUPTED
        return _seeds_summary(args, recs, runs, summary_path)


def _seeds_summary(args, recs, runs: Path, summary_path: Path) -> int:
    from ..files import atomic_write_json  # noqa: PLC0415
    from ..training import mean_ci  # noqa: PLC0415
    from ..training.stats import METHODS  # noqa: PLC0415

    ok = [r for r in recs if not r["diverged"]]
    fin = {k: [r["history"][-1][k] for r in ok] for k in ("train_loss", "test_loss", "test_accuracy", "val_loss")}
    trials = {"test_accuracy": recs[0]["config"].get("n_test")}
    scale = {k: "logit" if k == "test_accuracy" else "log" for k in fin}
    summary = {"config": recs[0]["config"], "seeds": list(args.seeds), "diverged_seeds": [r["spec"]["seed"] for r in recs if r["diverged"]],
               "intervals": {"losses": METHODS["log"], "accuracies": METHODS["logit"]},
               **{f"final_{k}": (None if not vals or any(v is None for v in vals) else
                                 mean_ci(vals, scale=scale[k], trials=trials.get(k))) for k, vals in fin.items()}}
    atomic_write_json(summary_path, summary)
    s = summary["final_train_loss"]
    print(f"{len(ok)}/{len(recs)} seeds finished; final train loss {s['mean']:.5g} "
          + (f"[{s['ci_low']:.5g}, {s['ci_high']:.5g}] (geometric mean [95% CI on the log scale])"
             if s and s.get("ci_low") is not None else "(one seed: no interval)")
          + f"; wrote {summary_path} and {runs}/" if ok else f"every seed diverged; wrote {summary_path}")
    if summary["diverged_seeds"]:
        print(f"tnt-ref train: seeds {summary['diverged_seeds']} diverged (see {runs}/*.json).", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


# ----------------------------------------------------------------------------- compare and demo
def _cmd_compare(args) -> int:
    from ..files import OutputPathError, Outputs  # noqa: PLC0415
    from ..training import (
        compare,  # noqa: PLC0415
        connect,  # noqa: PLC0415
    )

    _check_resume_overwrite(args)
    if args.epochs is not None and args.budget_seconds is not None:
        raise ValueError("give --epochs or --budget-seconds (process time per run), not both.")
    if args.epochs is None and args.budget_seconds is None:
        args.epochs = _problem_epochs(args.problem)
    _check_data(args)
    outs = Outputs()
    out = outs.folder(args.out, "--out")
    ours = [outs.file(out / n, f"--out (its {n})") for n in ("results.json", "table.md", "loss.png")]
    runs = out / "runs"
    if runs.exists() and not runs.is_dir():
        raise OutputPathError(f"`--out` {str(out)!r}: {runs} is a file; remove it.")
    t0 = time.perf_counter()
    with outs, contextlib.ExitStack() as stack:
        if not args.resume and not args.overwrite and (runs.exists() or any(p.exists() for p in ours)):
            raise ValueError(f"--out {str(out)!r} holds another comparison; pass --resume to continue it (finished "
                             "runs are skipped) or --overwrite to replace it.")
        if args.overwrite:
            shutil.rmtree(runs, ignore_errors=True)
            for p in ours:
                p.unlink(missing_ok=True)
        scheduler = stack.enter_context(connect(args.scheduler)) if args.scheduler else None
        print(f"{args.problem}: tuning on {args.tune_seeds} seed{'s' * (args.tune_seeds != 1)} over the validation split, "
              f"then {args.seeds} fresh seed{'s' * (args.seeds != 1)}; "
              + (f"{args.epochs} epoch{'s' * (args.epochs != 1)} per run; " if args.budget_seconds is None else
                 f"{args.budget_seconds:g} s of process time per run; ")
              + (f"Dask scheduler {args.scheduler}" if args.scheduler else f"{args.jobs} local job(s)"), flush=True)
        kw = {"optimizers": args.optimizers} if args.optimizers else {}
        if args.damping_grid:  # one grid for both TNT variants (--damping-grid), or the demo's per-variant grids
            kw["damping_grids"] = {"tnt": args.damping_grid, "tnt-ef": args.damping_grid}
        elif args.damping_grids:
            kw["damping_grids"] = dict(args.damping_grids)
        if args.damping_grid_ef:  # tnt-ef's own grid
            kw["damping_grids"] = {**kw.get("damping_grids", {}), "tnt-ef": args.damping_grid_ef}
        try:
            compare(args.problem, out, epochs=args.epochs, budget_seconds=args.budget_seconds, data=args.data,
                    tune_seeds=args.tune_seeds, seeds=args.seeds,
                    widen=args.widen, jobs=args.jobs, scheduler=scheduler, opt_kwargs=_hyper(args), dtype=args.dtype,
                    divergence_factor=args.divergence_factor, val_size=args.val_size,
                    log=lambda s: print(s, flush=True), **kw)
        except KeyboardInterrupt:
            n = len(list(runs.glob("*.json"))) if runs.is_dir() else 0
            print(f"tnt-ref {args.command}: interrupted (Ctrl-C); kept {n} finished runs in {runs}; rerun the same "
                  "command with --resume to skip them.", file=sys.stderr)
            return EXIT_INTERRUPTED
    print((out / "table.md").read_text())
    print(f"wrote {out}/results.json, loss.png, table.md, runs/ ({time.perf_counter() - t0:.0f} s)")
    return 0


def _cmd_demo(args) -> int:
    args.problem, args.epochs, args.optimizers = "autoencoder", DEMO_EPOCHS, None
    args.tune_seeds, args.seeds, args.widen, args.damping_grid, args.damping_grid_ef = 1, 3, 0, None, None
    args.damping_grids = DEMO_DAMPING
    args.dtype, args.divergence_factor, args.val_size = "float64", _default_factor(), _default_val()
    args.budget_seconds, args.data = None, None
    for _, dest, *_ in _HYPER_FLAGS:
        setattr(args, f"hp_{dest}", None)
    return _cmd_compare(args)


def _problem_epochs(problem: str) -> int:
    from ..training import get_problem  # noqa: PLC0415

    return get_problem(problem).epochs


def _default_factor() -> float:
    from ..training import DIVERGENCE_FACTOR  # noqa: PLC0415

    return DIVERGENCE_FACTOR


def _default_val() -> int:
    from ..training import VAL_SIZE  # noqa: PLC0415

    return VAL_SIZE


def _add_data(p) -> None:
    from ..data import FASHION_MNIST_DIR, INSTALL_HINT  # noqa: PLC0415

    p.add_argument("--data", default=None, metavar="DIR",
                   help="MNIST-format folder for mnist-autoencoder: train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzip (.gz) or plain (default: "
                        f"{FASHION_MNIST_DIR}, from `{INSTALL_HINT}`)")


def _add_common(p, *, val_default: int | None) -> None:
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="floating type (default: float64)")
    p.add_argument("--divergence-factor", type=positive_float, default=_default_factor(),
                   help="a run diverges when its loss is NaN/Inf or above this multiple of its initial training loss "
                        "(default: %(default)g)")
    p.add_argument("--val-size", type=nonneg_int, default=val_default,
                   help="training images held out as the validation split (default: "
                        + ("%(default)s)" if val_default is not None else "the problem's: 297 digits, 10000 MNIST-format)"))
    p.add_argument("--resume", action="store_true", help="continue the run(s) in --out (default: off)")
    p.add_argument("--overwrite", action="store_true", help="replace the run(s) in --out (default: off)")


def _add_grid(p) -> None:
    p.add_argument("--jobs", type=positive_int, default=1, help="local worker processes, one BLAS thread each (default: 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask cluster through joblib's dask backend, e.g. tcp://10.0.0.1:8786 "
                        "(default: none, local; --jobs is then ignored)")


def add_parsers(sub) -> None:
    from ..optim import OPTIMIZERS  # noqa: PLC0415
    from ..training import PROBLEMS  # noqa: PLC0415

    tr = sub.add_parser("train", help="one training run on the digits data")
    tr.add_argument("--problem", required=True, choices=list(PROBLEMS),
                    help="the problem: autoencoder, mlp, cnn on the bundled digits; mnist-autoencoder on an "
                         "MNIST-format folder (--data) (required)")
    _add_data(tr)
    tr.add_argument("--optimizer", required=True, choices=list(OPTIMIZERS), help="the optimizer (required)")
    tr.add_argument("--lr", type=positive_float, required=True, help="learning rate (required)")
    tr.add_argument("--epochs", type=positive_int, default=None, help="budget in epochs (default: none; give it or --seconds)")
    tr.add_argument("--seconds", type=positive_float, default=None,
                    help="budget in training wall seconds, checked after each epoch (default: none)")
    tr.add_argument("--budget-seconds", type=positive_float, default=None, metavar="SECONDS",
                    help="budget in training process seconds, checked after every step: the paper's protocol "
                         "(default: none)")
    tr.add_argument("--batch-size", type=positive_int, default=None,
                    help="mini-batch size (default: the problem's, 100 autoencoder, 64 mlp and cnn)")
    tr.add_argument("--seed", type=nonneg_int, default=0, help="seed of initialization, batches and sampled labels (default: 0)")
    tr.add_argument("--seeds", type=nonneg_int, nargs="+", default=None, metavar="SEED",
                    help="run these seeds instead (a grid: --jobs, OUT/runs/*.json, OUT/summary.json with mean and "
                         "95%% CI; default: one run with --seed)")
    tr.add_argument("--out", default="tnt-ref-out/train", help="output folder (default: %(default)s)")
    tr.add_argument("--checkpoint", default=None, help="checkpoint file (default: OUT/checkpoint.npz)")
    tr.add_argument("--backend", default="numpy", choices=["numpy", "cupy"],
                    help="where data and parameters are created (default: %(default)s)")
    tr.add_argument("--jobs", type=positive_int, default=1, help="worker processes for --seeds (default: 1)")
    _add_common(tr, val_default=0)
    _add_hyper(tr)
    tr.set_defaults(func=_cmd_train)

    cmp_ = sub.add_parser("compare", help="every optimizer tuned on a validation split, reported over fresh seeds "
                                          "with 95%% intervals (docs/reproduction.md)")
    cmp_.add_argument("--problem", required=True, choices=list(PROBLEMS),
                      help="the problem: autoencoder, mlp, cnn on the bundled digits; mnist-autoencoder, the paper's "
                           "784-1000-500-250-30 autoencoder on an MNIST-format folder (--data) (required)")
    cmp_.add_argument("--out", required=True, help="output folder (required)")
    _add_data(cmp_)
    cmp_.add_argument("--epochs", type=positive_int, default=None,
                      help="epochs per run (default: the problem's, "
                           + ", ".join(f"{k} {v.epochs}" for k, v in PROBLEMS.items()) + ", unless --budget-seconds is given)")
    cmp_.add_argument("--budget-seconds", type=positive_float, default=None, metavar="SECONDS",
                      help="the paper's protocol instead of epochs: training process time per run (one BLAS thread; "
                           "checked after every step; warm start and evaluations not counted), scored by the best "
                           "loss within it (default: none)")
    cmp_.add_argument("--optimizers", nargs="+", choices=list(OPTIMIZERS), default=None,
                      help="optimizers to compare (default: all)")
    cmp_.add_argument("--seeds", type=positive_int, default=5, help="fresh seeds for the report (default: %(default)s)")
    cmp_.add_argument("--tune-seeds", type=positive_int, default=2, help="seeds for tuning (default: %(default)s)")
    cmp_.add_argument("--widen", type=nonneg_int, default=2,
                      help="times a grid is widened when its best value is at an end (default: %(default)s)")
    cmp_.add_argument("--damping-grid", type=positive_float, nargs="+", default=None,
                      help="damping values tuned for tnt and tnt-ef (default: the problem's, 3e-3 1e-2 3e-2 on the digits, "
                           "0.03 0.1 0.3 on mnist-autoencoder)")
    cmp_.add_argument("--damping-grid-ef", type=positive_float, nargs="+", default=None,
                      help="damping values tuned for tnt-ef alone (default: those of tnt)")
    _add_grid(cmp_)
    _add_common(cmp_, val_default=None)
    _add_hyper(cmp_)
    cmp_.set_defaults(func=_cmd_compare, damping_grids=None)

    demo = sub.add_parser("demo", help="the README's main job: a short optimizer comparison on the autoencoder "
                                       f"({DEMO_EPOCHS} epochs, 1 tuning seed, 3 report seeds)")
    demo.add_argument("--out", default="tnt-ref-out/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out (default: off)")
    demo.add_argument("--overwrite", action="store_true", help="replace the demo in --out (default: off)")
    _add_grid(demo)
    demo.set_defaults(func=_cmd_demo)
