"""tnt-ref's own answer for a case under a convention setting: every number comes from
:func:`tnt_ref.optim.tnt` (and :func:`tnt_ref.optim.tnt_warm_start`) configured by the setting,
in the canonical layout. The harness maps these answers to an implementation's layout.
"""

from __future__ import annotations

import numpy as np

from ..backend import namespace_for, to_numpy
from ..optim import apply_updates, tnt, tnt_warm_start
from ..optim.tnt import _apply_inverses, _damped_inverses
from ..tensor import kron
from ..tensor_normal import tnt_factors_from_moments
from .cases import Batch, Case

__all__ = ["make_optimizer", "as_fed", "samples", "stat_input", "factors", "dense_curvature", "inverse", "trajectory", "block_of"]

_P = "layer."  # canonical parameter names inside tnt-ref's optimizer: "layer.weight", "layer.bias"


def make_optimizer(case: Case, setting: dict, **hyper):
    """:func:`tnt_ref.optim.tnt` with the case's hyperparameters and the setting's options."""
    h = {**case.hyper, **hyper}
    return tnt(h.pop("learning_rate"), **h, stat_scale=setting["stat_scale"], damping_scheme=setting["damping_scheme"],
               ema="first" if setting["ema"] == "warm-start" else setting["ema"],
               momentum_placement=setting["momentum_placement"], bias=setting["bias"],
               inverse_schedule=setting["inverse_schedule"],
               conv_modes=setting["conv_modes"] if case.kind == "conv" else 4)  # a 4-way tensor that is no kernel stays 4-way


def as_fed(case: Case, setting: dict) -> tuple[Case, object]:
    """The case as tnt-ref is fed it under ``setting`` (``tensor_modes="matrix"``: the tensor reshaped
    to ``(d_1, d_2 ... d_k)``), and the map of a parameter dict back to the case's shapes."""
    if case.kind != "tensor" or setting["tensor_modes"] == "all":
        return case, lambda p: p
    shape = case.shape

    def mat(a, lead):
        return a.reshape(*a.shape[:lead], shape[0], -1)

    def batch(b):
        return Batch({"weight": mat(b.per_example["weight"], 1)})

    fed = Case(case.name, case.kind, {"weight": mat(case.params["weight"], 0)}, batch(case.batch),
               [({"weight": mat(g["weight"], 0)}, batch(b)) for g, b in case.steps], [batch(b) for b in case.warm_start],
               case.hyper, case.conv, case.doc)
    return fed, lambda p: {k: v.reshape(shape) for k, v in p.items()}


def samples(batch: Batch, setting: dict, kind: str) -> dict:
    """The gradient samples of a batch: per example, or with ``conv_locations="independent"`` every
    output location a sample (:meth:`Batch.location_samples`); for ``"per-example-over-m"`` these
    are scaled so that the optimizer's division by the number of samples, ``m L``, is one by ``m``."""
    if kind != "conv" or setting["conv_locations"] != "independent":
        return batch.per_example
    src = batch.location_samples()  # (m L, *shape), summing to the per-example moments
    if setting["stat_scale"] == "per-example-over-m":
        L = src["weight"].shape[0] // batch.m
        src = {k: v * L**0.5 for k, v in src.items()}
    return src


def stat_input(batch: Batch, setting: dict, kind: str) -> dict:
    """What tnt-ref's optimizer takes as ``sampled_grads``: the mean gradient (``"batch-mean"``) or
    the per-example gradients (:func:`samples`)."""
    src = samples(batch, setting, kind)
    if setting["stat_scale"] == "batch-mean":
        return {_P + k: v.mean(axis=0) for k, v in src.items()}
    return {_P + k: v for k, v in src.items()}


def block_of(opt_key: str, setting: dict) -> str:
    """The harness's block name of an optimizer statistics key."""
    name = opt_key[len(_P):]
    return "weight+bias" if name == "weight" and setting["bias"] == "extra-input" else name


def _canon(params: dict) -> dict:
    return {_P + k: v for k, v in params.items()}


def factors(case: Case, setting: dict, batch: Batch | None = None) -> dict:
    """``block -> TNT factors`` (canonical modes) from one statistics batch: the optimizer's first
    statistics step (``S = M``), then TNT's scale rule (spec section 3)."""
    s = dict(setting, ema="first")
    case = as_fed(case, setting)[0]
    opt = make_optimizer(case, s)
    params = _canon(case.params)
    state = opt.init(params)
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    _, state = opt.update(zero, state, params, sampled_grads=stat_input(batch or case.batch, s, case.kind))
    return {block_of(k, setting): tnt_factors_from_moments(list(S)) for k, S in state.stats.items()}


def dense_curvature(fac: list) -> np.ndarray:
    """``U_1 kron ... kron U_k`` (row-major ``vec``)."""
    return kron(*fac) if len(fac) > 1 else np.asarray(fac[0])


def inverse(stats: list, damping: float, setting: dict, X: np.ndarray) -> np.ndarray:
    """``X x_1 K_1 ... x_k K_k`` with ``K = `` the optimizer's damped inverses of ``normalize(stats)``."""
    return _apply_inverses(X, _damped_inverses(tuple(stats), damping, setting["damping_scheme"]))


def trajectory(case: Case, setting: dict, n_steps: int | None = None, backend: str = "numpy") -> list[dict]:
    """Parameters after each of the case's steps (canonical ``{"weight", "bias"}``, NumPy arrays), run by
    tnt-ref on ``backend`` ("numpy", "cupy" or "array-api-strict"): the case's arrays are moved there as
    the optimizer is fed them, and the parameters after each step are brought back to the host."""
    case, back = as_fed(case, setting)
    xp = namespace_for(backend)

    def dev(d: dict) -> dict:
        return {k: xp.asarray(v) for k, v in d.items()}

    opt = make_optimizer(case, setting)
    params = dev(_canon(case.params))
    state = opt.init(params)
    if setting["ema"] == "warm-start":
        state = tnt_warm_start(opt, state, params, [dev(stat_input(b, setting, case.kind)) for b in case.warm_start])
    out = []
    for grads, batch in case.steps[:n_steps]:
        extra = {"sampled_grads": dev(stat_input(batch, setting, case.kind))} if opt.needs(state) else {}
        updates, state = opt.update(dev(_canon(grads)), state, params, **extra)
        params = apply_updates(params, updates)
        out.append(back({k[len(_P):]: to_numpy(v) for k, v in params.items()}))
    return out
