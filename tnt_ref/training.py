"""Training runs on the bundled digits: the paper's protocol at reference scale (spec sections 6, 10).

* :data:`PROBLEMS` — an autoencoder (ReLU, narrow linear code layer, Bernoulli loss on pixel
  intensities in [0, 1], as the paper's MNIST one), an MLP classifier and a small CNN classifier.
* :func:`train_step` — one optimizer step: one forward pass, the data-label backward pass, and the
  extra backward pass with sampled labels only when ``opt.needs(state)`` asks for it.
* :func:`run` — a run with a budget in epochs or seconds, per-epoch logs (train, validation and
  test loss and accuracy, wall and process time), a tqdm bar on a terminal, a checkpoint every
  epoch, bit-identical resume on NumPy, and a clear stop on divergence (:func:`is_diverged`: NaN/Inf
  or above a stated multiple of the initial loss), naming the last good epoch.
* :func:`compare` — the protocol of ``docs/reproduction.md``: every optimizer tuned (learning rate,
  and TNT's damping) on a validation split carved from the training set over tuning seeds, grids
  widened at their edges, the chosen configurations reported over fresh seeds with 95% intervals
  and verdicts (:func:`summarize`); the runs fanned out by :mod:`tnt_ref.grid`.
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backend import get_namespace, namespace_for, to_numpy
from .data import load_digits
from .files import atomic_savez, atomic_write_json, atomic_write_text
from .fisher import kfac_sums
from .models import Sequential, cnn, mlp
from .optim import OPTIMIZERS, Optimizer, apply_updates, make_optimizer, tnt_warm_start

__all__ = ["PROBLEMS", "Problem", "DivergedError", "CheckpointError", "train_step", "run", "compare", "summarize",
           "results_table", "is_diverged", "DIVERGENCE_FACTOR", "VAL_SIZE", "RunResult"]


class DivergedError(RuntimeError):
    """The run diverged (:func:`is_diverged`); it stopped and its last good checkpoint is kept.

    Raised by :func:`run` with the attributes ``last_good_epoch`` (0 if none), ``last_good_loss``
    (the training loss after that epoch, or the initial loss), ``history`` and ``config``.
    """


class CheckpointError(ValueError):
    """A checkpoint is corrupted or belongs to another problem, optimizer or setting."""


@dataclass(frozen=True)
class Problem:
    """A training problem: model, data, batch size and the optimizers' defaults and learning-rate grids."""

    name: str
    build: Any
    images: bool
    autoencoder: bool
    batch_size: int
    hyper: dict  # optimizer name -> default keyword arguments (intervals, damping)
    grids: dict  # optimizer name -> learning-rate grid (a 1-3 log grid)
    select_by: str  # "train_loss" (autoencoder) or "test_accuracy" (classifiers); compare uses their validation forms


def _ae():
    # 64-64-32-8-32-64-64: ReLU, a linear 8-unit code layer, Bernoulli outputs (the paper's MNIST
    # autoencoder 784-1000-500-250-30 mirrored, at digits scale)
    return mlp([64, 64, 32, 8, 32, 64, 64], ["relu", "relu", "identity", "relu", "relu"], "sigmoid_cross_entropy")


_CLASSIFIER_GRIDS = {"tnt": [3e-5, 1e-4, 3e-4], "tnt-ef": [3e-5, 1e-4, 3e-4], "kfac": [3e-3, 1e-2, 3e-2],
                     "shampoo": [3e-3, 1e-2, 3e-2], "sgd": [0.03, 0.1, 0.3], "adam": [3e-3, 1e-2, 3e-2]}


def _problem(name, build, images, autoencoder, batch_size, T1, T2, grids, select_by) -> Problem:
    ng = dict(T1=T1, T2=T2)
    hyper = {"tnt": dict(ng, damping=1e-2), "tnt-ef": dict(ng, damping=1e-2), "kfac": dict(ng, damping=1e-2),
             "shampoo": dict(ng, damping=1e-4)}
    return Problem(name, build, images, autoencoder, batch_size, hyper, grids, select_by)


#: The three problems, with damping and learning-rate grids (1-3 log grids) chosen by the tuning
#: runs recorded in docs/reproduction.md. Intervals: the paper's autoencoder setting ``T1 = 1,
#: T2 = 20``; the classifiers take ~23 steps per epoch here, so the paper's CNN intervals (10, 100)
#: are scaled to (5, 25) to refresh the inverses about once an epoch.
PROBLEMS: dict[str, Problem] = {
    "autoencoder": _problem(
        "autoencoder", _ae, False, True, 100, 1, 20,
        {"tnt": [3e-5, 1e-4, 3e-4], "tnt-ef": [3e-5, 1e-4, 3e-4], "kfac": [3e-3, 1e-2, 3e-2],
         "shampoo": [1e-4, 3e-4, 1e-3], "sgd": [0.01, 0.03, 0.1], "adam": [3e-3, 1e-2, 3e-2]},
        "train_loss",
    ),
    "mlp": _problem(
        "mlp", lambda: mlp([64, 64, 10], "tanh", "softmax_cross_entropy"), False, False, 64, 5, 25,
        _CLASSIFIER_GRIDS,
        "test_accuracy",
    ),
    "cnn": _problem(
        "cnn", lambda: cnn((1, 8, 8), channels=(8, 16), kernel=3, n_classes=10, activation="relu", padding=1), True,
        False, 64, 5, 25,
        {**_CLASSIFIER_GRIDS, "tnt": [1e-5, 3e-5, 1e-4], "tnt-ef": [1e-5, 3e-5, 1e-4]},
        "test_accuracy",
    ),
}


def get_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {sorted(PROBLEMS)}.")
    return PROBLEMS[name]


def train_step(net: Sequential, opt: Optimizer, params: dict, state, Xb, yb, rng: np.random.Generator):
    """One step; returns ``(loss, new_params, new_state)``. Nothing is modified in place.

    The gradient ``g`` is of the mini-batch **mean** loss. The statistics reuse the same forward
    pass: labels ``y~ ~ p(.|x)`` are sampled from its output and back-propagated ("sampled_grads",
    TNT [RG21, Alg. 1]; for TNT-EF the data-label gradient itself is used), per example for
    ``stat_scale="per-example"``, or in factored form for KFAC's ``(G, A)``.
    """
    net.check_batch(params, Xb, yb, rng, values=False)  # names, shapes, dtypes, rng: no host read
    need = opt.needs(state)
    z, caches = net.forward(params, Xb)
    xp = get_namespace(z)
    m = Xb.shape[0]
    loss = float(xp.mean(net.loss_fn.loss(z, yb)))
    g = net.backward(params, caches, net.loss_fn.grad(z, yb) / m)
    # one host read for all gradients (a sum is non-finite iff some entry is): the step's only sync besides the loss
    if not (math.isfinite(loss) and math.isfinite(float(sum(xp.sum(v) for v in g.values())))):
        net.check_batch(params, Xb, yb, rng)  # a bad label, target, input or parameter: ValueError, not divergence
        raise DivergedError(f"non-finite loss ({loss}) or gradient")
    extra: dict = {}
    if need:
        y_stat = yb if opt.stat_labels == "data" else net.loss_fn.sample(z, rng)
        if "sampled_grads" in need:
            extra["sampled_grads"] = g if opt.stat_labels == "data" else net.backward(params, caches, net.loss_fn.grad(z, y_stat) / m)
        if "sampled_per_example" in need:
            extra["sampled_grads"] = net.backward(params, caches, net.loss_fn.grad(z, y_stat), per_example=True)
        if "kfac_stats" in need:
            fac = net.backward(params, caches, net.loss_fn.grad(z, y_stat), per_example="factored")
            extra["kfac_stats"] = {}
            for k, f in fac.items():
                if hasattr(f, "delta"):
                    dd, aa = kfac_sums(f)
                    extra["kfac_stats"][k] = (dd / m, aa / m)
    updates, state = opt.update(g, state, params, **extra)
    return loss, apply_updates(params, updates), state


# ----------------------------------------------------------------------------- state <-> arrays
def _flatten(tree, prefix: str, out: dict) -> None:
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for f in tree._fields:
            _flatten(getattr(tree, f), f"{prefix}{f}/", out)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            _flatten(v, f"{prefix}{k}/", out)
    elif isinstance(tree, tuple):
        for i, v in enumerate(tree):
            _flatten(v, f"{prefix}{i}/", out)
    else:
        out[prefix.rstrip("/")] = to_numpy(tree) if not isinstance(tree, (int, float)) else np.asarray(tree)


def _unflatten(template, prefix: str, arrays: dict, xp):
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        return type(template)(*[_unflatten(getattr(template, f), f"{prefix}{f}/", arrays, xp) for f in template._fields])
    if isinstance(template, dict):
        return {k: _unflatten(v, f"{prefix}{k}/", arrays, xp) for k, v in template.items()}
    if isinstance(template, tuple):
        return tuple(_unflatten(v, f"{prefix}{i}/", arrays, xp) for i, v in enumerate(template))
    key = prefix.rstrip("/")
    if key not in arrays:
        raise CheckpointError(f"checkpoint lacks the optimizer state entry {key!r}.")
    a = arrays[key]
    if isinstance(template, bool):
        return bool(a)
    if isinstance(template, int):
        return int(a)
    if isinstance(template, float):
        return float(a)
    if tuple(a.shape) != tuple(template.shape):
        raise CheckpointError(f"checkpoint entry {key!r} has shape {a.shape}, expected {tuple(template.shape)}.")
    return xp.asarray(a, dtype=template.dtype)


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


#: Default multiple of the initial training loss above which a run counts as diverged (see :func:`is_diverged`).
DIVERGENCE_FACTOR = 10.0

#: Training images held out for selection by :func:`compare` (the digits training set has 1497;
#: 1200 are then trained on). The test set is never used for selection.
VAL_SIZE = 297


def is_diverged(loss: float, initial_loss: float, factor: float = DIVERGENCE_FACTOR) -> bool:
    """The one definition of divergence: the loss is NaN/Inf, or above ``factor`` times the initial loss.

    ``initial_loss`` is the training loss at ``theta_0`` (before any step or warm start). A
    mini-batch loss and an epoch's training loss are judged by the same rule [reconstructed].

    >>> is_diverged(float("nan"), 2.3), is_diverged(2.9e200, 2.3), is_diverged(2.0, 2.3), is_diverged(24.0, 2.3)
    (True, True, False, True)
    """
    return not math.isfinite(loss) or loss > factor * initial_loss


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


def run(
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
) -> RunResult:
    """Train ``problem`` with ``optimizer`` at ``learning_rate``.

    Budget: ``epochs`` and/or ``seconds`` of training wall time (checked after each epoch).
    Each epoch logs ``epoch, train_loss, test_loss, test_accuracy`` (``None`` for the autoencoder),
    ``val_loss, val_accuracy`` (``None`` unless ``val_size > 0``: the last ``val_size`` training
    images are then held out from training, for selection), ``wall_time`` and ``process_time``
    (cumulative seconds of training, evaluation excluded), and, with ``checkpoint``, writes the
    parameters, optimizer state, random state and history to that ``.npz`` file atomically.
    ``resume=True`` continues from it; on NumPy the continued run is bit-identical to an
    uninterrupted one. ``on_start(config, history)`` is called once before the first epoch (with
    the full configuration and, on resume, the history so far); ``on_epoch(row)`` after each
    epoch's log row (and checkpoint).
    ``opt_kwargs`` override the problem's optimizer defaults (:data:`PROBLEMS`).

    TNT and TNT-EF start with the authors' warm start (one pass over the training set at
    ``theta_0`` accumulating the statistics, no updates).

    Raises
    ------
    ValueError
        Unknown problem or optimizer, bad hyperparameters or budget.
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
    if epochs is None and seconds is None:
        raise ValueError("give a budget: `epochs` and/or `seconds`.")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1):
        raise ValueError(f"`epochs` must be a positive int; got epochs={epochs!r}.")
    epochs = None if epochs is None else int(epochs)
    if seconds is not None and not seconds > 0:
        raise ValueError(f"`seconds` must be positive; got seconds={seconds!r}.")
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` path.")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"`dtype` must be 'float64' or 'float32'; got dtype={dtype!r}.")
    seed = _int_arg(seed, "seed")
    val_size = _int_arg(val_size, "val_size")
    if isinstance(divergence_factor, bool) or not isinstance(divergence_factor, (int, float)) or not divergence_factor > 1:
        raise ValueError(f"`divergence_factor` must be a number > 1; got divergence_factor={divergence_factor!r}.")
    kwargs = {**prob.hyper.get(optimizer, {}), **(opt_kwargs or {})}
    opt = make_optimizer(optimizer, learning_rate, **kwargs)
    xp = namespace_for(backend)
    net = prob.build()
    ds = load_digits(images=prob.images, dtype=np.dtype(dtype))
    n_all = ds.X_train.shape[0]
    if val_size > n_all - 100:
        raise ValueError(f"`val_size` must be at most {n_all - 100} (of {n_all} training images); got val_size={val_size}.")
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
            "val_size": val_size, "divergence_factor": float(divergence_factor)}
    rng = np.random.default_rng(seed)
    params = net.init(rng, xp=xp, dtype=getattr(xp, dtype))
    state = opt.init(params)
    history: list[dict] = []
    wall = proc = 0.0
    start_epoch = 0
    if resume:
        params, state, rng, history, start_epoch, init_loss = _load_checkpoint(Path(checkpoint), meta, params, state, xp)
        wall = history[-1]["wall_time"] if history else 0.0
        proc = history[-1]["process_time"] if history else 0.0
    else:
        init_loss = net.loss(params, X_tr, y_tr)  # the reference of the divergence test
        if optimizer in ("tnt", "tnt-ef"):
            state = _warm_start(net, opt, params, state, X_tr, y_tr, m, rng)
    meta["initial_train_loss"] = init_loss
    if on_start is not None:
        on_start(meta, list(history))
    if progress is None:
        progress = sys.stderr.isatty()
    steps = n // m  # the last incomplete batch is dropped (constant batch-mean scale)
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
        while (epochs is None or epoch < epochs) and (seconds is None or wall < seconds):
            perm = rng.permutation(n)
            t0, c0 = time.perf_counter(), time.process_time()
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
            wall += time.perf_counter() - t0
            proc += time.process_time() - c0
            with np.errstate(all="ignore"):
                row = {"epoch": epoch + 1, **_evaluate(net, params, prob, X_tr, y_tr, X_va, y_va, X_te, y_te),
                       "wall_time": wall, "process_time": proc}
            epoch += 1
            if is_diverged(row["train_loss"], init_loss, divergence_factor):
                epoch -= 1
                raise stop("training loss", row["train_loss"], None)
            history.append(row)
            if checkpoint is not None:
                _save_checkpoint(Path(checkpoint), meta, params, state, rng, history)
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


def _warm_start(net, opt, params, state, X, y, m, rng):
    """One pass over the training set at theta_0 with sampled (TNT) or data (TNT-EF) labels, no updates."""
    n = X.shape[0]
    per_example = opt.hyper["stat_scale"] == "per-example"

    def grads():
        for s in range(n // m):
            Xb, yb = X[s * m : (s + 1) * m, ...], y[s * m : (s + 1) * m, ...]
            z, caches = net.forward(params, Xb)
            ys = yb if opt.stat_labels == "data" else net.loss_fn.sample(z, rng)
            gout = net.loss_fn.grad(z, ys)
            yield net.backward(params, caches, gout if per_example else gout / m, per_example=per_example)

    return tnt_warm_start(opt, state, params, grads())


def _save_checkpoint(path: Path, meta: dict, params, state, rng, history) -> None:
    arrays: dict = {}
    _flatten(state, "state/", arrays)
    for k, v in params.items():
        arrays[f"params/{k}"] = to_numpy(v)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))
    arrays["history"] = np.array(json.dumps(history))
    atomic_savez(path, **arrays)


def _load_checkpoint(path: Path, meta: dict, params_t, state_t, xp):
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; run without --resume first.")
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:  # bytes: no handle leaks on a bad file
            arrays = {k: z[k] for k in z.files}
        saved = json.loads(str(arrays["meta"]))
        rng_state = json.loads(str(arrays["rng"]))
        history = json.loads(str(arrays["history"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"checkpoint {path} is corrupted or not a tnt-ref checkpoint ({type(err).__name__}: {err}).") from None
    saved = {"dtype": "float64", "val_size": 0, **saved}  # checkpoints written before these settings existed
    for key in ("problem", "optimizer", "learning_rate", "batch_size", "seed", "hyper", "model", "dtype", "val_size"):
        if saved.get(key) != meta.get(key):
            raise CheckpointError(
                f"checkpoint {path} is for {key}={saved.get(key)!r}, but this run has {key}={meta.get(key)!r}; "
                "resume with the same settings or start a new checkpoint."
            )
    params = {}
    for k, t in params_t.items():
        a = arrays.get(f"params/{k}")
        if a is None or a.shape != tuple(t.shape):
            raise CheckpointError(f"checkpoint {path} lacks parameter {k!r} of shape {tuple(t.shape)}.")
        params[k] = xp.asarray(a, dtype=t.dtype)
    state = _unflatten(state_t, "state/", arrays, xp)
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    init_loss = saved.get("initial_train_loss")
    if not isinstance(init_loss, (int, float)):
        raise CheckpointError(f"checkpoint {path} lacks the initial training loss (written by an older tnt-ref); "
                              "start a new run with --overwrite.")
    return params, state, rng, history, len(history), float(init_loss)


#: Damping grids tuned with the learning rate for TNT and TNT-EF (the docs say damping matters).
DAMPING_GRIDS = {"tnt": [3e-3, 1e-2, 3e-2], "tnt-ef": [3e-3, 1e-2, 3e-2]}

#: Seeds of the tuning runs are ``0 .. tune_seeds-1``; the reported runs use fresh seeds from here on.
REPORT_SEED0 = 1000

#: Margins of the non-inferiority claims: test accuracy (absolute) and final training loss (relative).
ACCURACY_MARGIN = 0.01
LOSS_MARGIN = 0.05


def _final(rec: dict, key: str):
    return rec["history"][-1][key] if rec["history"] and not rec["diverged"] else None


def _score(recs: list[dict], select_by: str):
    """Selection score of one configuration over its tuning seeds (higher is better); ``None`` if any seed diverged."""
    if any(r["diverged"] for r in recs):
        return None
    vl = float(np.mean([_final(r, "val_loss") for r in recs]))
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
    epochs: int = 10,
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
    val_size: int = VAL_SIZE,
    divergence_factor: float = DIVERGENCE_FACTOR,
    progress: bool | None = None,
    log=print,
    seed: int | None = None,
) -> dict:
    """The protocol of ``docs/reproduction.md``: tune on a validation split, report on fresh seeds with 95% intervals.

    1. **Tuning.** For every optimizer, every learning rate of its grid (and, for TNT and TNT-EF,
       every damping of :data:`DAMPING_GRIDS`) on ``tune_seeds`` seeds ``0, 1, ...``. A
       configuration is scored by its mean final *validation* metric (the last ``val_size``
       training images, held out from training): validation loss (autoencoder) or validation
       accuracy, ties broken by validation loss (classifiers). The test set is never used. A
       configuration that diverged (:func:`is_diverged`) on any tuning seed is never chosen. If the
       best learning rate is at an end of its grid, the grid is widened by one log step on that
       side, up to ``widen`` times; an end that is still best is flagged ``lr_at_edge``.
    2. **Report.** The chosen configuration of every optimizer on ``seeds`` fresh seeds
       ``1000, 1001, ...``: mean and Student-t 95% intervals of the final training loss, test loss,
       test accuracy, and the epochs and seconds to reach SGD-m's mean final training loss (over the
       seeds that reach it; the fraction is given), and the claims' verdicts (:func:`grid.verdict`).

    Every run is written to ``out_dir/runs/<key>.json`` when it finishes; ``resume=True`` skips
    those already there. Writes ``results.json`` (schema in ``docs/reproduction.md``),
    ``table.md`` and ``loss.png``. ``jobs`` and ``scheduler`` fan the runs out (:func:`grid.run_grid`);
    the results do not depend on them.
    """
    from .grid import RunSpec, run_grid  # noqa: PLC0415
    from .plots import plot_training  # noqa: PLC0415

    prob = get_problem(problem)
    optimizers = list(optimizers)
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {o!r}; valid: {list(OPTIMIZERS)}.")
    if seed is not None:
        raise ValueError("`seed` is gone: compare runs `tune_seeds` tuning seeds and `seeds` fresh report seeds.")
    for name, v, low in (("tune_seeds", tune_seeds, 1), ("seeds", seeds, 1), ("widen", widen, 0), ("epochs", epochs, 1)):
        _int_arg(v, name, low)
    if isinstance(divergence_factor, bool) or not isinstance(divergence_factor, (int, float)) or not divergence_factor > 1:
        raise ValueError(f"`divergence_factor` must be a number > 1; got divergence_factor={divergence_factor!r}.")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"`dtype` must be 'float64' or 'float32'; got dtype={dtype!r}.")
    _int_arg(val_size, "val_size", 1)
    if val_size > 1397:
        raise ValueError(f"`val_size` must be at most 1397 (of 1497 training images); got val_size={val_size}.")
    opt_kwargs = dict(opt_kwargs or {})
    dgrids = {o: sorted(float(v) for v in g) for o, g in {**DAMPING_GRIDS, **(damping_grids or {})}.items()
              if o in optimizers and g}
    if "damping" in opt_kwargs:  # a damping given by the user is not tuned
        dgrids = {}
    lr_grids = {o: sorted(float(v) for v in (grids or {}).get(o, prob.grids[o])) for o in optimizers}

    def kwargs_for(o: str, damping=None) -> dict:
        """The user's overrides that ``o`` accepts (checked by building the optimizer), plus the tuned damping."""
        base = {**prob.hyper.get(o, {})}
        import inspect  # noqa: PLC0415

        from . import optim  # noqa: PLC0415

        fn = optim.tnt if o == "tnt-ef" else getattr(optim, o)
        accepted = set(inspect.signature(fn).parameters)
        kw = {k: v for k, v in opt_kwargs.items() if k in accepted}
        if damping is not None:
            kw["damping"] = float(damping)
        make_optimizer(o, 1e-3, **{**base, **kw})  # check at the door: bad values fail before any run
        return kw

    def spec(o, lr, s, kw, tag):
        return RunSpec.make(problem, o, lr, s, epochs, kw, dtype=dtype, val_size=int(val_size),
                            divergence_factor=float(divergence_factor), tags=(tag,))

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
        return f"train loss {h['train_loss']:.4g}, val loss {h['val_loss']:.4g}{acc}"

    def grid(specs, what):
        log(f"{what}: {len(specs)} runs")
        return run_grid(specs, runs_dir, jobs=jobs, scheduler=scheduler, resume=True, progress=progress, log=log,
                        describe=describe)

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
                    sc = _score(rs, select_by)
                    configs.append({"learning_rate": lr, "damping": d, "opt_kwargs": kw, "score": None if sc is None else list(sc),
                                    "diverged_seeds": sum(r["diverged"] for r in rs),
                                    "val_loss": None if sc is None else float(np.mean([_final(r, "val_loss") for r in rs])),
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
    recs = grid(specs, f"report: {len(chosen)} optimizers x {seeds} fresh seeds") if specs else []
    runs = [{"optimizer": sp.optimizer, "learning_rate": sp.learning_rate, "seed": sp.seed,
             "opt_kwargs": dict(sp.opt_kwargs), "diverged": r["diverged"], "message": r["message"],
             "config": r["config"], "initial_train_loss": r["initial_train_loss"], "history": r["history"]}
            for sp, r in zip(specs, recs)]
    results = {"schema": "tnt-ref compare 2", "problem": problem,
               "config": {"epochs": epochs, "optimizers": optimizers, "tune_seeds": list(range(tune_seeds)),
                          "report_seeds": report_seeds, "val_size": int(val_size), "dtype": dtype,
                          "divergence_factor": float(divergence_factor), "select_by": select_by, "widen": widen,
                          "opt_kwargs": opt_kwargs, "damping_grids": {o: tuning[o]["dampings"] for o in dgrids},
                          "lr_grids": lr_grids, "hyper_defaults": prob.hyper,
                          "batch_size": prob.batch_size},
               "tuning": tuning, "runs": runs}
    results.update(summarize(results))
    atomic_write_json(out_dir / "results.json", results)
    plot_training(results, out_dir / "loss.png", title=f"{problem} on digits: chosen configuration per optimizer, "
                  f"mean and 95% CI over {seeds} fresh seeds")
    atomic_write_text(out_dir / "table.md", results_table(results))
    return results


def summarize(results: dict) -> dict:
    """Per-optimizer means and 95% intervals over the report seeds, and the claims' verdicts.

    Returns ``{"target": ..., "summary": {optimizer: ...}, "claims": [...]}`` (see ``docs/reproduction.md``).
    """
    from .grid import mean_ci, verdict  # noqa: PLC0415

    by: dict = {}
    for r in results["runs"]:
        by.setdefault(r["optimizer"], []).append(r)
    ok = {o: [r for r in rs if not r["diverged"]] for o, rs in by.items()}
    fin = {o: {k: [r["history"][-1][k] for r in rs] for k in ("train_loss", "test_loss", "test_accuracy")}
           for o, rs in ok.items()}
    target = float(np.mean(fin["sgd"]["train_loss"])) if fin.get("sgd", {}).get("train_loss") else None
    summary = {}
    for o, rs in by.items():
        reach_ep, reach_s = [], []
        for r in ok[o]:
            h = next((h for h in r["history"] if target is not None and h["train_loss"] <= target), None)
            if h is not None:
                reach_ep.append(h["epoch"])
                reach_s.append(h["wall_time"])
        auto = all(v is None for v in fin[o]["test_accuracy"])
        summary[o] = {
            "learning_rate": rs[0]["learning_rate"], "opt_kwargs": rs[0]["opt_kwargs"],
            "seeds": len(rs), "diverged": len(rs) - len(ok[o]),
            "final_train_loss": mean_ci(fin[o]["train_loss"]), "final_test_loss": mean_ci(fin[o]["test_loss"]),
            "final_test_accuracy": None if auto else mean_ci(fin[o]["test_accuracy"]),
            "epochs_to_target": {**mean_ci(reach_ep), "reached": len(reach_ep), "of": len(rs)},
            "seconds_to_target": {**mean_ci(reach_s), "reached": len(reach_s), "of": len(rs)},
            "seconds_per_epoch": mean_ci([r["history"][-1]["wall_time"] / len(r["history"]) for r in ok[o]]),
        }
    claims = []

    def claim(number, text, a, b, metric, better, margin, relative=False):
        if a not in fin or b not in fin:
            return
        va, vb = fin[a][metric], fin[b][metric]
        m = margin * float(np.mean(vb)) if relative and vb else margin
        v = verdict(va, vb, better=better, margin=m)
        if by.get(a) and not ok.get(a):
            v["verdict"] = "does not hold"  # TNT diverged on every seed
        claims.append({"claim": number, "statement": text, "a": a, "b": b, "metric": metric, **v})

    for b in ("sgd", "adam"):
        claim(1, f"tnt reaches a lower final training loss than {b}", "tnt", b, "train_loss", "lower", 0.0)
    for b in ("kfac", "shampoo"):
        claim(1, f"tnt's final training loss is comparable to {b}'s (at most {LOSS_MARGIN:.0%} above)", "tnt", b,
              "train_loss", "lower", LOSS_MARGIN, relative=True)
    if results["problem"] != "autoencoder":
        for b in ("sgd", "adam"):
            claim(2, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below {b}'s", "tnt", b,
                  "test_accuracy", "higher", ACCURACY_MARGIN)
        claim(3, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below tnt-ef's", "tnt", "tnt-ef",
              "test_accuracy", "higher", ACCURACY_MARGIN)
    claim(3, f"tnt's final training loss is at most {LOSS_MARGIN:.0%} above tnt-ef's", "tnt", "tnt-ef", "train_loss",
          "lower", LOSS_MARGIN, relative=True)
    return {"target": {"what": "mean final training loss of sgd over the report seeds", "value": target},
            "summary": summary, "claims": claims}


def _ci(s: dict | None, fmt: str = ".4g") -> str:
    if s is None or s.get("mean") is None:
        return "–"
    if s["ci_low"] is None:
        return f"{s['mean']:{fmt}}"
    return f"{s['mean']:{fmt}} [{s['ci_low']:{fmt}}, {s['ci_high']:{fmt}}]"


def results_table(results: dict) -> str:
    """Markdown: per optimizer the chosen configuration (edge flags), means [95% CI] over the report seeds, and the verdicts."""
    cfg = results["config"]
    lines = [
        f"{results['problem']}: {cfg['epochs']} epochs; chosen on the validation split ({cfg['val_size']} training images, "
        f"by {cfg['select_by']}, mean over tuning seeds {cfg['tune_seeds']}); reported as mean [95% CI] over "
        f"{len(cfg['report_seeds'])} fresh seeds.",
        "",
        "| optimizer | learning rate | damping | tuning configs diverged | report seeds diverged | final train loss | "
        "final test loss | final test accuracy | epochs to SGD-m's final loss (reached) | seconds to it |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, t in results["tuning"].items():
        n_div = sum(c["score"] is None for c in t["configs"])
        s = results["summary"].get(o)
        if t["best"] is None or s is None:
            lines.append(f"| {o} | none (all diverged) | – | {n_div}/{len(t['configs'])} | – | – | – | – | – | – |")
            continue
        lr = f"{t['best']['learning_rate']:g}" + (" (edge)" if t["lr_at_edge"] else "")
        d = t["best"]["damping"]
        dmp = "–" if d is None else f"{d:g}" + (" (edge)" if t["damping_at_edge"] else "")
        e, sec = s["epochs_to_target"], s["seconds_to_target"]
        lines.append(
            f"| {o} | {lr} | {dmp} | {n_div}/{len(t['configs'])} | {s['diverged']}/{s['seeds']} | "
            f"{_ci(s['final_train_loss'])} | {_ci(s['final_test_loss'])} | {_ci(s['final_test_accuracy'], '.3f')} | "
            f"{_ci(e, '.3g')} ({e['reached']}/{e['of']}) | {_ci(sec, '.2g')} |")
    tg = results["target"]["value"]
    lines += ["", f"SGD-m's mean final training loss (the target): {'–' if tg is None else f'{tg:.4g}'}.", "",
              "| claim | statement | difference a - b [95% CI] | verdict |", "|---|---|---|---|"]
    for c in results["claims"]:
        lines.append(f"| {c['claim']} | {c['statement']} | {_ci(c['difference'])} | **{c['verdict']}** |")
    return "\n".join(lines) + "\n"
