"""The comparison protocol of ``docs/reproduction.md``: tuning on a validation split, fresh report seeds.

:func:`compare` — every optimizer tuned (learning rate, and TNT's and KL-Shampoo's damping) on a validation split
carved from the training set over tuning seeds, grids widened at their edges, the chosen
configurations reported over fresh seeds with 95% intervals and verdicts
(:func:`~tnt_ref.training.summary.summarize`); the runs fanned out by :mod:`tnt_ref.training.grid`.
Two budgets: a number of epochs, or the paper's protocol, a process-time budget per run with the
best loss within it as the score [code].

The top room of :mod:`tnt_ref.training`: it imports ``grid``, ``summary`` and the rooms below them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._validation import check_positive
from ..files import atomic_write_json, atomic_write_text
from ..optim import OPTIMIZERS, make_optimizer
from .grid import RunSpec, run_grid
from .problems import get_problem, load_problem_data
from .runner import _int_arg
from .step import DIVERGENCE_FACTOR
from .summary import results_table, summarize

__all__ = ["compare", "DAMPING_GRIDS", "REPORT_SEED0", "VAL_SIZE"]

#: Training images held out for selection by :func:`compare` (the digits training set has 1497;
#: 1200 are then trained on). The test set is never used for selection.
VAL_SIZE = 297

#: Damping grids tuned with the learning rate for TNT and TNT-EF (the docs say damping matters) and for
#: KL-Shampoo (with 1e-4 on every problem it diverged at most learning rates of the autoencoder, where 1e-3
#: was stable, while the MLP preferred 1e-4: docs/reproduction.md).
DAMPING_GRIDS = {"tnt": [3e-3, 1e-2, 3e-2], "tnt-ef": [3e-3, 1e-2, 3e-2], "kl-shampoo": [1e-4, 1e-3, 1e-2]}

#: Seeds of the tuning runs are ``0 .. tune_seeds-1``; the reported runs use fresh seeds from here on.
REPORT_SEED0 = 1000


def _final(rec: dict, key: str):
    return rec["history"][-1][key] if rec["history"] and not rec["diverged"] else None


def _best(rec: dict, key: str):
    """The lowest ``key`` logged by a run that did not diverge: the score within a process-time budget [code]."""
    return min(h[key] for h in rec["history"]) if rec["history"] and not rec["diverged"] else None


def _score(recs: list[dict], select_by: str, pick=_final):
    """Selection score of one configuration over its tuning seeds (higher is better); ``None`` if any seed diverged.

    ``pick(record, key)`` reads a run's value: its final one (:func:`_final`, epoch budgets) or its
    best within the budget (:func:`_best`, process-time budgets).
    """
    if any(r["diverged"] or not r["history"] for r in recs):
        return None
    vl = float(np.mean([pick(r, "val_loss") for r in recs]))
    if select_by == "val_loss":
        return (-vl,)
    return (float(np.mean([_final(r, "val_accuracy") for r in recs])), -vl)  # ties (1/297) broken by val loss


def _widen(grid: list[float], i: int) -> float | None:
    """The next point beyond the edge ``i`` of a log grid (same ratio), or ``None`` if ``i`` is interior."""
    if len(grid) < 2:
        return None
    if i == 0:
        return grid[0] * grid[0] / grid[1]
    if i == len(grid) - 1:
        return grid[-1] * grid[-1] / grid[-2]
    return None


def compare(
    problem: str,
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    budget_seconds: float | None = None,
    data=None,
    optimizers: Sequence[str] = OPTIMIZERS,
    grids: dict | None = None,
    damping_grids: dict | None = None,
    opt_kwargs: dict | None = None,
    tune_seeds: int = 2,
    seeds: int = 5,
    widen: int = 2,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    dtype: str = "float64",
    val_size: int | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    progress: bool | None = None,
    log=print,
    seed: int | None = None,
) -> dict:
    """The protocol of ``docs/reproduction.md``: tune on a validation split, report on fresh seeds with 95% intervals.

    ``epochs`` per run defaults to the problem's (:data:`~tnt_ref.training.PROBLEMS`: autoencoder 40,
    mlp 20, cnn 15, the study of ``docs/reproduction.md``; mnist-autoencoder 30) unless ``budget_seconds``
    is given.

    1. **Tuning.** For every optimizer, every learning rate of its grid (and, for TNT, TNT-EF and
       KL-Shampoo, every damping of :data:`DAMPING_GRIDS`) on ``tune_seeds`` seeds ``0, 1, ...``. A
       configuration is scored by its mean final *validation* metric (the last ``val_size``
       training images, held out from training): validation loss (autoencoder) or validation
       accuracy, ties broken by validation loss (classifiers). The test set is never used. A
       configuration that diverged (:func:`is_diverged`) on any tuning seed is never chosen. If the
       best learning rate is at an end of its grid, the grid is widened by one log step on that
       side, up to ``widen`` times; an end that is still best is flagged ``lr_at_edge``.
    2. **Report.** The chosen configuration of every optimizer on ``seeds`` fresh seeds
       ``1000, 1001, ...``: centers and 95% intervals (:mod:`~tnt_ref.training.stats`: geometric
       means and log-scale intervals for losses, epochs and seconds; logit-scale ones for
       accuracies) of the final training loss, test loss, test accuracy, and the epochs and seconds
       to reach SGD-m's geometric mean final training loss (over the seeds that reach it; the
       fraction is given), and the claims' verdicts (:func:`~tnt_ref.training.stats.verdict`, on
       the same scales; a claim involving an optimizer tuned to the edge of its grid carries a caveat).

    **Budgets.** ``epochs`` per run (default: the problem's), or ``budget_seconds`` of training process time
    per run, the paper's protocol [code]: each run stops within one step of its budget (the warm
    start and the evaluations are not counted, as in the authors' timer), every history row carries
    ``epoch``, ``step`` and ``process_time``, and a run's score is its **best** loss within the
    budget: the best validation loss in tuning, the best training loss in the report and the
    claims (:func:`~tnt_ref.training.summary.summarize`).

    ``data`` is the MNIST-format folder of a problem on IDX data (``mnist-autoencoder``; default:
    Debian's Fashion-MNIST folder); it is loaded and checked before any run starts
    (:class:`tnt_ref.data.DataError`). ``val_size`` defaults to the problem's (297 digits, 10,000
    MNIST-format images).

    Every run is written to ``out_dir/runs/<key>.json`` when it finishes; ``resume=True`` skips
    those already there. Writes ``results.json`` (schema in ``docs/reproduction.md``),
    ``table.md`` and ``loss.png``. ``jobs`` and ``scheduler`` fan the runs out (:func:`grid.run_grid`);
    the results do not depend on them.
    """
    from ..plots import plot_results  # noqa: PLC0415

    prob = get_problem(problem)
    optimizers = list(optimizers)
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {o!r}; valid: {list(OPTIMIZERS)}.")
    if seed is not None:
        raise ValueError("`seed` is gone: compare runs `tune_seeds` tuning seeds and `seeds` fresh report seeds.")
    if epochs is not None and budget_seconds is not None:
        raise ValueError("give `epochs` or `budget_seconds` (a process-time budget per run), not both.")
    if budget_seconds is not None:  # finite: an infinite budget would train forever
        budget_seconds = check_positive(budget_seconds, "budget_seconds")
    if epochs is None and budget_seconds is None:
        epochs = prob.epochs
    for name, v, low in (("tune_seeds", tune_seeds, 1), ("seeds", seeds, 1), ("widen", widen, 0)):
        _int_arg(v, name, low)
    if epochs is not None:
        _int_arg(epochs, "epochs", 1)
    if isinstance(divergence_factor, bool) or not isinstance(divergence_factor, (int, float)) or not divergence_factor > 1:
        raise ValueError(f"`divergence_factor` must be a number > 1; got divergence_factor={divergence_factor!r}.")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"`dtype` must be 'float64' or 'float32'; got dtype={dtype!r}.")
    ds = load_problem_data(prob, data, dtype)  # the data at the door: a bad folder fails before any run
    n_all = int(ds.X_train.shape[0])
    val_size = prob.val_size if val_size is None else val_size
    _int_arg(val_size, "val_size", 1)
    if val_size > n_all - 100:
        raise ValueError(f"`val_size` must be at most {n_all - 100} (of {n_all} training images); got val_size={val_size}.")
    data_info = None if not ds.fingerprint else {"name": ds.name, "folder": ds.source, "fingerprint": ds.fingerprint,
                                                 "n_train": n_all - val_size, "n_val": val_size,
                                                 "n_test": int(ds.X_test.shape[0])}
    del ds
    pick = _final if budget_seconds is None else _best
    opt_kwargs = dict(opt_kwargs or {})
    dgrids = {o: sorted(float(v) for v in g) for o, g in {**(prob.damping_grids or DAMPING_GRIDS), **(damping_grids or {})}.items()
              if o in optimizers and g}
    if "damping" in opt_kwargs:  # a damping given by the user is not tuned
        dgrids = {}
    lr_grids = {o: sorted(float(v) for v in (grids or {}).get(o, prob.grids[o])) for o in optimizers}

    def kwargs_for(o: str, damping=None) -> dict:
        """The user's overrides that ``o`` accepts (checked by building the optimizer), plus the tuned damping."""
        base = {**prob.hyper.get(o, {})}
        import inspect  # noqa: PLC0415

        from ..optim import factory  # noqa: PLC0415

        accepted = set(inspect.signature(factory(o)).parameters)
        kw = {k: v for k, v in opt_kwargs.items() if k in accepted}
        if damping is not None:
            kw["damping"] = float(damping)
        make_optimizer(o, 1e-3, **{**base, **kw})  # check at the door: bad values fail before any run
        return kw

    def spec(o, lr, s, kw, tag):
        return RunSpec.make(problem, o, lr, s, epochs, kw, dtype=dtype, val_size=int(val_size),
                            divergence_factor=float(divergence_factor), tags=(tag,),
                            budget_seconds=None if budget_seconds is None else float(budget_seconds),
                            data_id=data_info and data_info["fingerprint"], data=data_info and data_info["folder"])

    for o in optimizers:
        for d in dgrids.get(o, [None]):
            kwargs_for(o, d)
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"

    def describe(rec):
        if rec["diverged"]:
            return f"diverged after {rec['last_good_epoch']} good epochs"
        h = rec["history"][-1]
        acc = "" if h["val_accuracy"] is None else f", val acc {h['val_accuracy']:.3f}"
        if budget_seconds is not None:
            return (f"best train loss {_best(rec, 'train_loss'):.4g}, best val loss {_best(rec, 'val_loss'):.4g} "
                    f"in {h['step']} steps ({h['epoch']:g} epochs, {h['process_time']:.0f} s process time)")
        return f"train loss {h['train_loss']:.4g}, val loss {h['val_loss']:.4g}{acc}"

    def grid(specs, what):
        return run_grid(specs, runs_dir, jobs=jobs, scheduler=scheduler, resume=True, progress=progress, log=log,
                        describe=describe, desc=what)

    # ---------------------------------------------------------------- 1. tuning on the validation split
    tuning: dict = {}
    select_by = "val_loss" if prob.select_by == "train_loss" else "val_accuracy"
    rounds = 0
    while True:
        specs = [spec(o, lr, s, kwargs_for(o, d), "tuning") for o in optimizers for lr in lr_grids[o]
                 for d in dgrids.get(o, [None]) for s in range(tune_seeds)]
        recs = dict(zip(specs, grid(specs, f"tuning round {rounds + 1}")))
        grown = False
        for o in optimizers:
            configs = []
            for lr in lr_grids[o]:
                for d in dgrids.get(o, [None]):
                    kw = kwargs_for(o, d)
                    rs = [recs[spec(o, lr, s, kw, "tuning")] for s in range(tune_seeds)]
                    sc = _score(rs, select_by, pick)
                    configs.append({"learning_rate": lr, "damping": d, "opt_kwargs": kw, "score": None if sc is None else list(sc),
                                    "diverged_seeds": sum(r["diverged"] for r in rs),
                                    "val_loss": None if sc is None else float(np.mean([pick(r, "val_loss") for r in rs])),
                                    "val_accuracy": None if sc is None or prob.autoencoder else
                                    float(np.mean([_final(r, "val_accuracy") for r in rs]))})
            ok = [c for c in configs if c["score"] is not None]
            best = max(ok, key=lambda c: tuple(c["score"])) if ok else None
            dg = dgrids.get(o)
            tuning[o] = {"learning_rates": list(lr_grids[o]), "dampings": list(dg) if dg else None, "configs": configs, "best": best,
                         "lr_at_edge": None, "damping_at_edge": None}
            if best is None:
                continue
            i = lr_grids[o].index(best["learning_rate"])
            nxt = _widen(lr_grids[o], i)
            if nxt is not None and rounds < widen:
                lr_grids[o] = sorted([*lr_grids[o], nxt])
                grown = True
            tuning[o]["lr_at_edge"] = nxt is not None
            if dg:
                dnext = _widen(sorted(dg), sorted(dg).index(best["damping"]))
                if dnext is not None and rounds < widen:
                    dgrids[o] = sorted([*dg, dnext])
                    grown = True
                tuning[o]["damping_at_edge"] = dnext is not None
        if not grown:
            break
        rounds += 1

    # ---------------------------------------------------------------- 2. fresh seeds for the report
    report_seeds = list(range(REPORT_SEED0, REPORT_SEED0 + seeds))
    chosen = {o: t["best"] for o, t in tuning.items() if t["best"] is not None}
    specs = [spec(o, c["learning_rate"], s, c["opt_kwargs"], "report") for o, c in chosen.items() for s in report_seeds]
    recs = grid(specs, f"report ({len(chosen)} optimizer{'s' * (len(chosen) != 1)} x {seeds} fresh seed{'s' * (seeds != 1)})") \
        if specs else []
    runs = [{"optimizer": sp.optimizer, "learning_rate": sp.learning_rate, "seed": sp.seed,
             "opt_kwargs": dict(sp.opt_kwargs), "diverged": r["diverged"], "message": r["message"],
             "config": r["config"], "initial_train_loss": r["initial_train_loss"], "history": r["history"]}
            for sp, r in zip(specs, recs)]
    results = {"schema": "tnt-ref compare 3", "problem": problem,
               "config": {"epochs": epochs, "budget_seconds": budget_seconds, "data": data_info, "optimizers": optimizers, "tune_seeds": list(range(tune_seeds)),
                          "report_seeds": report_seeds, "val_size": int(val_size), "dtype": dtype,
                          "divergence_factor": float(divergence_factor), "widen": widen,
                          "select_by": select_by if budget_seconds is None else f"best {select_by} within the budget",
                          "opt_kwargs": opt_kwargs, "damping_grids": {o: tuning[o]["dampings"] for o in dgrids},
                          "lr_grids": lr_grids, "hyper_defaults": prob.hyper,
                          "batch_size": prob.batch_size},
               "tuning": tuning, "runs": runs}
    results.update(summarize(results))
    atomic_write_json(out_dir / "results.json", results)
    plot_results(results, out_dir / "loss.png")  # plot_budget under a budget; the title says seeds, scale and data
    atomic_write_text(out_dir / "table.md", results_table(results))
    return results
