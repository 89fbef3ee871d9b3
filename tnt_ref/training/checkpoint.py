"""Checkpoints of a run: parameters, optimizer state, random state and history in one ``.npz``.

The optimizer state (a NamedTuple of dicts and tuples of arrays) is flattened to named arrays and
rebuilt against a template of the same optimizer, so a resumed run continues bit-identically on
NumPy. A checkpoint written for other settings, or a corrupted one, is refused with
:class:`CheckpointError`. Imports: backend and files only.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..backend import to_numpy
from ..files import atomic_savez

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint is corrupted or belongs to another problem, optimizer or setting."""


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


def save_checkpoint(path: Path, meta: dict, params, state, rng, history) -> None:
    arrays: dict = {}
    _flatten(state, "state/", arrays)
    for k, v in params.items():
        arrays[f"params/{k}"] = to_numpy(v)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    arrays["rng"] = np.array(json.dumps(rng.bit_generator.state))
    arrays["history"] = np.array(json.dumps(history))
    atomic_savez(path, **arrays)


def history_problem(history) -> str | None:
    """What is wrong with a run's history (a list of per-epoch dicts with numeric ``epoch``, ``train_loss``,
    ``wall_time`` and ``process_time``), or ``None`` when it is well formed."""
    if not isinstance(history, list):
        return f"the history is a {type(history).__name__}, not a list of epochs"
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            return f"history entry {i} is a {type(row).__name__}, not a dict"
        for key in ("epoch", "train_loss", "wall_time", "process_time"):
            v = row.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"history entry {i} has no numeric {key!r}"
    return None


def _malformed(saved, rng_state, history) -> str | None:
    if not isinstance(saved, dict):
        return f"its settings are a {type(saved).__name__}, not a dict"
    if not isinstance(rng_state, dict) or "bit_generator" not in rng_state:
        return "its random state is not a bit generator's state"
    return history_problem(history)


def load_checkpoint(path: Path, meta: dict, params_t, state_t, xp):
    """``(params, state, rng, history, epochs done, initial training loss, warm start's process time)`` from ``path``.

    Refused (:class:`CheckpointError`) when corrupted, or written for another problem, optimizer,
    hyperparameter, seed, batch size, model, dtype, validation size or data set.
    """
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
    bad = _malformed(saved, rng_state, history)
    if bad:
        raise CheckpointError(f"checkpoint {path} is malformed ({bad}); it was not written by this tnt-ref run. Start a new "
                              "run with --overwrite, or point --checkpoint at the right file.")
    saved = {"dtype": "float64", "val_size": 0, **saved}  # checkpoints written before these settings existed
    for key in ("problem", "optimizer", "learning_rate", "batch_size", "seed", "hyper", "model", "dtype", "val_size", "data"):
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
    try:
        rng.bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"checkpoint {path} has a malformed random state ({err}); start a new run with --overwrite.") from None
    init_loss = saved.get("initial_train_loss")
    if not isinstance(init_loss, (int, float)):
        raise CheckpointError(f"checkpoint {path} lacks the initial training loss (written by an older tnt-ref); "
                              "start a new run with --overwrite.")
    return params, state, rng, history, len(history), float(init_loss), float(saved.get("warm_start_process_time", 0.0))
