"""A single training run with per-epoch logs, checkpoints and bit-identical resume.

:func:`run` — a budget in epochs, wall seconds, or process seconds (the paper's protocol: checked
after every step), per-epoch logs (train, validation and test loss and accuracy, steps, wall and
process time), a tqdm bar on a terminal, a checkpoint every epoch, bit-identical resume on NumPy,
and a clear stop on divergence (:func:`~tnt_ref.training.step.is_diverged`), naming the last good
epoch. TNT and TNT-EF start with the authors' warm start [code].

Imports ``step``, ``checkpoint`` and ``problems`` (below it); the grid and the comparison
protocol import it.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import check_positive
from ..backend import namespace_for
from ..files import Outputs
from ..models import Sequential
from ..optim import OPTIMIZERS, make_optimizer, tnt_warm_start
from .checkpoint import load_checkpoint, save_checkpoint
from .problems import Problem, get_problem, load_problem_data
from .step import DIVERGENCE_FACTOR, DivergedError, is_diverged, train_step

__all__ = ["RunResult", "run"]


@dataclass
class RunResult:
    """A finished (or stopped) run: its settings, per-epoch history and final parameters.

    ``config`` is the full configuration (problem, optimizer, every hyperparameter, seed, batch
    size, dtype, validation size, model); ``initial_train_loss`` is the training loss at
    ``theta_0``, the reference of the divergence test (:func:`is_diverged`).
    """

    problem: str
    optimizer: str
    learning_rate: float
    history: list = field(default_factory=list)
    params: dict | None = None
    diverged: bool = False
    message: str = ""
    config: dict = field(default_factory=dict)
    initial_train_loss: float | None = None


def _fmt(x: float) -> str:
    """A loss for messages: 4 significant digits, never 132 of them."""
    return f"{x:.4g}"


def _evaluate(net: Sequential, params, problem: Problem, X_tr, y_tr, X_va, y_va, X_te, y_te) -> dict:
    acc = (lambda X, y: None) if problem.autoencoder else (lambda X, y: net.accuracy(params, X, y))
    row = {"train_loss": net.loss(params, X_tr, y_tr), "test_loss": net.loss(params, X_te, y_te),
           "test_accuracy": acc(X_te, y_te), "val_loss": None, "val_accuracy": None}
    if X_va is not None:
        row["val_loss"], row["val_accuracy"] = net.loss(params, X_va, y_va), acc(X_va, y_va)
    return row


def _int_arg(value, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__}.")
    if int(value) < low:
        raise ValueError(f"`{name}` must be >= {low}; got {name}={value}.")
    return int(value)


def run(problem: str, optimizer: str, learning_rate: float, *, checkpoint: str | Path | None = None, **kwargs) -> RunResult:
    # the checkpoint is owned for the whole run (tnt_ref.files.Outputs): a second run writing the same file at the
    # same time is refused instead of both finishing with one run's checkpoint lost
    outs = Outputs()
    if checkpoint is not None:
        outs.file(checkpoint, "checkpoint")
    with outs:
        return _run(problem, optimizer, learning_rate, checkpoint=checkpoint, **kwargs)


def _run(
    problem: str,
    optimizer: str,
    learning_rate: float,
    *,
    epochs: int | None = 10,
    seconds: float | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    backend: str = "numpy",
    opt_kwargs: dict | None = None,
    on_epoch=None,
    on_start=None,
    dtype: str = "float64",
    val_size: int = 0,
    divergence_factor: float = DIVERGENCE_FACTOR,
    budget_seconds: float | None = None,
    data=None,
) -> RunResult:
    """Train ``problem`` with ``optimizer`` at ``learning_rate``.

    Budget: ``epochs``, ``seconds`` of training wall time (checked after each epoch), and/or
    ``budget_seconds`` of training **process time** (the paper's protocol [code]: checked after
    every step, so a run stops within one step of its budget; the last, partial epoch is then
    evaluated and logged with a fractional ``epoch``). A run under a time budget is reproducible
    up to where its budget cuts it: how many steps fit is a measurement.
    Each epoch logs ``epoch, step`` (steps so far), ``train_loss, test_loss, test_accuracy``
    (``None`` for autoencoders), ``val_loss, val_accuracy`` (``None`` unless ``val_size > 0``: the
    last ``val_size`` training images are then held out from training, for selection),
    ``wall_time`` and ``process_time`` (cumulative seconds of training, evaluation and the warm
    start excluded, as the authors' timer [code]; the warm start's process time is
    ``config["warm_start_process_time"]``), and, with ``checkpoint``, writes the
    parameters, optimizer state, random state and history to that ``.npz`` file atomically.
    ``resume=True`` continues from it; on NumPy the continued run is bit-identical to an
    uninterrupted one. ``on_start(config, history)`` is called once before the first epoch (with
    the full configuration and, on resume, the history so far); ``on_epoch(row)`` after each
    epoch's log row (and checkpoint).
    ``opt_kwargs`` override the problem's optimizer defaults (:data:`PROBLEMS`). ``data`` is the
    MNIST-format folder of a problem on IDX data (default: Debian's Fashion-MNIST folder); its
    folder and fingerprint go into ``config["data"]``.

    TNT and TNT-EF start with the authors' warm start (one pass over the training set at
    ``theta_0`` accumulating the statistics, no updates).

    Raises
    ------
    ValueError
        Unknown problem or optimizer, bad hyperparameters or budget.
    tnt_ref.data.DataError
        The data folder is missing, incomplete, truncated or of another format (a ``ValueError``).
    CheckpointError
        ``resume`` from a corrupted checkpoint or one of another problem/optimizer/setting.
    DivergedError
        :func:`is_diverged` (NaN/Inf, or above ``divergence_factor`` times the initial training
        loss) on a mini-batch or epoch loss. The last good checkpoint is kept; the error carries
        ``last_good_epoch``, ``last_good_loss`` and ``history`` (the rows of the good epochs).
    """
    prob = get_problem(problem)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {list(OPTIMIZERS)}.")
    if epochs is None and seconds is None and budget_seconds is None:
        raise ValueError("give a budget: `epochs`, `seconds` and/or `budget_seconds`.")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1):
        raise ValueError(f"`epochs` must be a positive int; got epochs={epochs!r}.")
    epochs = None if epochs is None else int(epochs)
    if seconds is not None:  # finite: an infinite budget would train forever
        seconds = check_positive(seconds, "seconds")
    if budget_seconds is not None:
        budget_seconds = check_positive(budget_seconds, "budget_seconds")
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` path.")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"`dtype` must be 'float64' or 'float32'; got dtype={dtype!r}.")
    seed = _int_arg(seed, "seed")
    val_size = _int_arg(val_size, "val_size")
    if isinstance(divergence_factor, bool) or not isinstance(divergence_factor, (int, float)) or not divergence_factor > 1 \
            or not math.isfinite(divergence_factor):
        raise ValueError(f"`divergence_factor` must be a finite number > 1; got divergence_factor={divergence_factor!r}.")
    kwargs = {**prob.hyper.get(optimizer, {}), **(opt_kwargs or {})}
    opt = make_optimizer(optimizer, learning_rate, **kwargs)
    xp = namespace_for(backend)
    net = prob.build()
    ds = load_problem_data(prob, data, dtype)
    n_all = ds.X_train.shape[0]
    if val_size > n_all - 1:
        raise ValueError(f"`val_size` must be at most {n_all - 1} (of {n_all} training images); got val_size={val_size}.")
    n_fit = n_all - val_size  # the last val_size training images are held out for selection
    X_tr, X_te = xp.asarray(ds.X_train[:n_fit]), xp.asarray(ds.X_test)
    X_va = xp.asarray(ds.X_train[n_fit:]) if val_size else None
    y_tr = X_tr if prob.autoencoder else xp.asarray(ds.y_train[:n_fit])
    y_te = X_te if prob.autoencoder else xp.asarray(ds.y_test)
    y_va = (X_va if prob.autoencoder else xp.asarray(ds.y_train[n_fit:])) if val_size else None
    n = X_tr.shape[0]
    if batch_size is not None:
        _int_arg(batch_size, "batch_size", 1)
    m = int(batch_size or prob.batch_size)
    if not 1 <= m <= n:
        raise ValueError(f"`batch_size` must be in [1, {n}]; got batch_size={m}.")
    meta = {"problem": problem, "optimizer": optimizer, "learning_rate": float(learning_rate), "batch_size": m,
            "seed": seed, "hyper": opt.hyper, "model": net.spec, "backend": backend, "dtype": dtype,
            "val_size": val_size, "divergence_factor": float(divergence_factor),
            "n_test": int(ds.X_test.shape[0])}  # the test images behind each accuracy (its interval's trials)
    if ds.fingerprint:  # data read from disk (digits runs keep the configuration they always had)
        meta["data"] = {"name": ds.name, "folder": ds.source, "fingerprint": ds.fingerprint,
                        "n_train": n_fit, "n_val": val_size, "n_test": int(ds.X_test.shape[0])}
    rng = np.random.default_rng(seed)
    params = net.init(rng, xp=xp, dtype=getattr(xp, dtype))
    state = opt.init(params)
    history: list[dict] = []
    wall = proc = 0.0
    start_epoch = done_steps = 0
    steps = n // m  # the last incomplete batch is dropped (constant batch-mean scale)
    if resume:
        params, state, rng, history, start_epoch, init_loss, warm = load_checkpoint(Path(checkpoint), meta, params, state, xp)
        wall = history[-1]["wall_time"] if history else 0.0
        proc = history[-1]["process_time"] if history else 0.0
        done_steps = history[-1].get("step", steps * len(history)) if history else 0
    else:
        init_loss = net.loss(params, X_tr, y_tr)  # the reference of the divergence test
        c0 = time.process_time()
        if optimizer in ("tnt", "tnt-ef"):
            state = _warm_start(net, opt, params, state, X_tr, y_tr, m, rng)
        warm = time.process_time() - c0 if optimizer in ("tnt", "tnt-ef") else 0.0
    meta["initial_train_loss"] = init_loss
    meta["warm_start_process_time"] = warm
    if on_start is not None:
        on_start(meta, list(history))
    if progress is None:
        progress = sys.stderr.isatty()
    epoch = start_epoch
    bar = None
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=epochs, initial=start_epoch, unit="epoch", desc=f"{optimizer} lr={learning_rate:g}",
                   leave=False, dynamic_ncols=True)

    def stop(what: str, value: float, step: int | None):
        if bar is not None:
            bar.close()
        at = f"at epoch {epoch + 1}, step {step}" if step is not None else f"after epoch {epoch}"
        last_good = history[-1]["train_loss"] if history else init_loss
        kept = (f"the last good checkpoint (epoch {epoch}) is kept at {checkpoint}" if checkpoint and history
                else "no checkpoint was written")
        good = f"last good epoch {len(history)}, training loss {_fmt(last_good)}" if history else \
            f"no good epoch (initial training loss {_fmt(init_loss)})"
        err = DivergedError(
            f"{optimizer} on {problem}: diverged: {what}{'' if value is None else ' ' + _fmt(value)} {at} (learning_rate={learning_rate:g}; "
            f"divergence: non-finite or > {divergence_factor:g} x the initial loss {_fmt(init_loss)}); {good}; {kept}. "
            "Lower the learning rate or raise the damping."
        )
        err.last_good_epoch, err.last_good_loss, err.history, err.config = len(history), last_good, list(history), meta
        return err

    try:
        while ((epochs is None or epoch < epochs) and (seconds is None or wall < seconds)
               and (budget_seconds is None or proc < budget_seconds)):
            perm = rng.permutation(n)
            t0, c0 = time.perf_counter(), time.process_time()
            taken = 0
            for s in range(steps):
                idx = xp.asarray(perm[s * m : (s + 1) * m])
                Xb, yb = xp.take(X_tr, idx, axis=0), xp.take(y_tr, idx, axis=0)
                try:
                    with np.errstate(all="ignore"):  # divergence is detected explicitly, not by warnings
                        loss, params, state = train_step(net, opt, params, state, Xb, yb, rng)
                except DivergedError as err:
                    raise stop(str(err), None, s + 1) from None
                if is_diverged(loss, init_loss, divergence_factor):
                    raise stop("mini-batch loss", loss, s + 1)
                taken += 1
                if budget_seconds is not None and proc + (time.process_time() - c0) >= budget_seconds:
                    break  # the budget ran out within this epoch: log the partial epoch and stop
            wall += time.perf_counter() - t0
            proc += time.process_time() - c0
            done_steps += taken
            # a partial (last) epoch is logged at its fraction, e.g. 4.36 epochs = 218 steps of 50
            at = epoch + 1 if taken == steps else round(epoch + taken / steps, 6)
            with np.errstate(all="ignore"):
                row = {"epoch": at, "step": done_steps,
                       **_evaluate(net, params, prob, X_tr, y_tr, X_va, y_va, X_te, y_te),
                       "wall_time": wall, "process_time": proc}
            epoch += 1
            if is_diverged(row["train_loss"], init_loss, divergence_factor):
                epoch -= 1
                raise stop("training loss", row["train_loss"], None)
            history.append(row)
            if checkpoint is not None:
                save_checkpoint(Path(checkpoint), meta, params, state, rng, history)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=_fmt(row["train_loss"]))
            if on_epoch is not None:
                if bar is not None:
                    bar.clear()
                on_epoch(row)
    finally:
        if bar is not None:
            bar.close()
    return RunResult(problem, optimizer, float(learning_rate), history, params, config=meta, initial_train_loss=init_loss)


run.__doc__ = _run.__doc__
run.__wrapped__ = _run  # inspect.signature(run) shows every keyword


def _warm_start(net, opt, params, state, X, y, m, rng):
    """One pass over the training set at theta_0 with sampled (TNT) or data (TNT-EF) labels, no updates."""
    n = X.shape[0]
    per_example = opt.hyper["stat_scale"] != "batch-mean"  # "per-example", "sum": per-example gradients

    def grads():
        for s in range(n // m):
            Xb, yb = X[s * m : (s + 1) * m, ...], y[s * m : (s + 1) * m, ...]
            z, caches = net.forward(params, Xb)
            ys = yb if opt.stat_labels == "data" else net.loss_fn.sample(z, rng)
            gout = net.loss_fn.grad(z, ys)
            yield net.backward(params, caches, gout if per_example else gout / m, per_example=per_example)

    return tnt_warm_start(opt, state, params, grads())
