"""The convention space of TNT implementations, as data.

Every convention is a named option with a finite set of values; the first value is tnt-ref's
default (the authors' run). Each value carries its tag ([paper], [code], [derived]) and the
implementations known to use it, and each convention names the tnt-ref option that realizes it:

* options of :func:`tnt_ref.optim.tnt` (``stat_scale``, ``damping_scheme``, ``ema``,
  ``momentum_placement``, ``bias``, ``conv_modes``, ``inverse_schedule``) and :func:`tnt_ref.optim.tnt_warm_start`;
* what is fed to tnt-ref's estimator as samples (``conv_locations``: per-example or per-location
  gradients);
* the array interface (``layout``, ``vec_order``): TNT is equivariant under a permutation of the
  tensor's axes and of the indices inside a mode [derived], so these are maps at the boundary
  between an implementation's arrays and tnt-ref's (:mod:`tnt_ref.conformance.layouts`).

A *setting* is one value per convention, a ``dict`` name -> value.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from dataclasses import dataclass

from ..optim.tnt import BIASES, DAMPING_SCHEMES, EMAS, INVERSE_SCHEDULES, MOMENTUM_PLACEMENTS, STAT_SCALES

__all__ = ["Convention", "CONVENTIONS", "QUANTITIES", "DEFAULT_SETTING", "all_settings", "check_setting", "convention",
           "settings_index", "valid"]

#: The quantities an adapter may provide, in the order the harness checks them.
QUANTITIES = ("factors", "inverse", "direction", "trajectory")


@dataclass(frozen=True)
class Convention:
    """One convention: its values (the first is tnt-ref's default), a tag and users per value."""

    name: str
    values: tuple
    tags: dict  # value -> "[tag] who uses it"
    option: str  # where tnt-ref realizes it
    quantities: tuple  # the quantities whose reference depends on it
    kinds: tuple = ("linear", "conv", "tensor")  # the cases that can tell its values apart


CONVENTIONS: tuple[Convention, ...] = (
    Convention("layout", ("canonical", "transposed", "hwio"), {
        "canonical": "[paper] weight (out, in), kernel (C_out, C_in, kh, kw), tensors as given; the authors' code (PyTorch)",
        "transposed": "[derived] every axis reversed: weight (in, out), kernel (kw, kh, C_in, C_out)",
        "hwio": "[derived] weight (in, out), kernel (kh, kw, C_in, C_out): JAX/flax and kfac-jax; other tensors reversed",
    }, "array interface (tnt_ref.conformance.layouts)", QUANTITIES),
    Convention("vec_order", ("row-major", "column-major"), {
        "row-major": "[paper] vec(X) = X.reshape(-1), numpy.kron order; tnt-ref, the authors' code, kfac-jax",
        "column-major": "[derived] vec in Fortran order, Kronecker factors in reverse order (Kolda-Bader)",
    }, "array interface (tnt_ref.conformance.layouts)", ("factors", "inverse")),
    Convention("bias", BIASES, {
        "own-tensor": "[code] a bias is its own 1-way tensor (k = 1, the full block); the authors' code",
        "extra-input": "[derived] the bias is an extra input column [W | b]; kfac-jax DenseTNT and Conv2DTNT",
    }, "tnt(bias=...)", QUANTITIES, ("linear", "conv")),
    Convention("conv_modes", (3, 2, 4), {
        3: "[code] (C_out, C_in, kh*kw); the authors' CIFAR runs ('filterFlattening')",
        2: "[code] (C_out, C_in*kh*kw); the authors' 'KFACReshaping', kfac-jax Conv2DTNT",
        4: "[derived] (C_out, C_in, kh, kw)",
    }, "tnt(conv_modes=...)", QUANTITIES, ("conv",)),
    Convention("tensor_modes", ("all", "matrix"), {
        "all": "[paper] every axis of a tensor is a mode; tnt-ref, the authors' code",
        "matrix": "[derived] a tensor (d_1, ..., d_k) as the matrix (d_1, d_2 ... d_k); kfac-jax's default "
                  "parameters_specs (every parameter reshaped to (all axes but the last, the last) of its layout)",
    }, "the tensor fed to tnt() (reshaped to a matrix)", QUANTITIES, ("tensor",)),
    Convention("conv_locations", ("joint", "independent"), {
        "joint": "[paper] one gradient per example, summed over output locations; the authors' code",
        "independent": "[derived] each output location an example of its own, moments summed over locations and "
                       "averaged over examples (KFAC's convolution approximation); kfac-jax Conv2DTNT (mean over examples "
                       "and locations times its fixed scale, the number of locations)",
    }, "samples fed to tnt-ref's estimator (per-example or per-location gradients)", ("factors", "direction", "trajectory"),
        ("conv",)),
    Convention("stat_scale", STAT_SCALES, {
        "batch-mean": "[code] moments of the mini-batch mean gradient (estimate F/m); the authors' code",
        "per-example": "[derived] mean of per-example moments (estimate F); kfac-jax DenseTNT, Conv2DTNT",
        "sum": "[derived] moments of the summed gradient over m (estimate F); kfac-jax NaiveTNT",
        "per-example-over-m": "[derived] per-example divided by m (estimate F/m without cross terms); kfac-jax "
                              "DenseTNT/Conv2DTNT in its fisher_empirical mode",
    }, "tnt(stat_scale=...)", ("factors", "direction", "trajectory")),
    Convention("damping_scheme", DAMPING_SCHEMES, {
        "per-factor": "[code] (U_i + eps I)^-1 on every factor; the authors' code",
        "pi": "[derived] one eps split across the k factors, (U_i + eps^(1/k) I)^-1 after the scale rule; kfac-jax",
        "exact": "[derived] (U_1 kron ... kron U_k + eps I)^-1, not a Kronecker product; kfac-jax use_exact_inverses",
    }, "tnt(damping_scheme=...)", ("inverse", "direction", "trajectory")),
    Convention("ema", (*EMAS, "warm-start"), {
        "first": "[derived] the first statistics initialize S, then S <- beta S + (1-beta) M; tnt-ref without warm start",
        "plain": "[derived] S_0 = 0, then S <- beta S + (1-beta) M",
        "bias-corrected": "[derived] the plain EMA divided by 1 - beta^n; kfac-jax's WeightedMovingAverage",
        "warm-start": "[code] S = running mean over a warm-start pass, no statistics at step 0, then the plain EMA; "
                      "the authors' runs",
    }, "tnt(ema=...) and tnt_warm_start", ("direction", "trajectory")),
    Convention("momentum_placement", MOMENTUM_PLACEMENTS, {
        "before": "[code] v = mu v + g, P = K v; the authors' code",
        "after": "[derived] v = mu v + K g, P = v",
    }, "tnt(momentum_placement=...)", ("trajectory",)),
    Convention("inverse_schedule", INVERSE_SCHEDULES, {
        "warm-up": "[code] inverses every T1 steps while t < T2, then every T2; the authors' code",
        "periodic": "[derived] inverses every T2 steps from t = 0; kfac-jax's inverse_update_period",
    }, "tnt(inverse_schedule=...)", ("trajectory",)),
)

#: tnt-ref's defaults: the first value of every convention.
DEFAULT_SETTING = {c.name: c.values[0] for c in CONVENTIONS}


def convention(name: str) -> Convention:
    """The convention called ``name``."""
    for c in CONVENTIONS:
        if c.name == name:
            return c
    raise ValueError(f"unknown convention {name!r}; valid: {[c.name for c in CONVENTIONS]}.")


def check_setting(setting: dict) -> dict:
    """A complete setting: ``setting`` over the defaults, every name and value checked."""
    out = dict(DEFAULT_SETTING)
    for name, value in setting.items():
        c = convention(name)
        if value not in c.values:
            raise ValueError(f"convention {name!r} must be one of {list(c.values)}; got {value!r}.")
        out[name] = value
    return out


def all_settings() -> list[dict]:
    """Every setting of the convention space (the product of all values), defaults first."""
    return [dict(s) for s in settings_index()[0]]


@functools.lru_cache(maxsize=1)
def settings_index() -> tuple[tuple, np.ndarray]:
    """Every valid setting (read-only dicts: copy before changing one) and the position of each value in its
    convention, ``(settings, conventions)`` integers, in the order of :func:`all_settings`."""
    names = [c.name for c in CONVENTIONS]
    settings, index = [], []
    for combo in itertools.product(*(list(enumerate(c.values)) for c in CONVENTIONS)):
        s = dict(zip(names, (v for _, v in combo)))
        if valid(s):
            settings.append(s)
            index.append([i for i, _ in combo])
    return tuple(settings), np.array(index)


def valid(setting: dict) -> bool:
    """Whether tnt-ref can run ``setting``: a kernel's bias as an extra input needs a 2-way kernel."""
    return setting["bias"] != "extra-input" or setting["conv_modes"] == 2
