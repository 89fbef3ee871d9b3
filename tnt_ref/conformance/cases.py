"""The cases the harness runs: one parameter block each, with every input an implementation needs.

Layer cases come from the models of ``tnt-ref vectors`` (:mod:`tnt_ref.vectors`, the same builders
and seeds) plus a convolution with several channels, a non-square kernel and 16 output
locations; tensor cases are 3- and 4-way tensor-normal gradients. Each case holds, in tnt-ref's
canonical layout (:mod:`tnt_ref.conformance.layouts`):

* ``params``: ``{"weight": W, "bias": b}`` (no bias for tensor cases);
* ``batch``: the statistics batch, a :class:`Batch` of ``m`` examples with labels sampled from the
  model (the sampling-based gradient [RG21]);
* ``steps``: ``n`` optimizer steps, each ``(grads, batch)``: the data-label gradient of the
  mini-batch mean loss and a fresh statistics batch (the gradients are given, not recomputed
  from the parameters, so every implementation sees the same stream);
* ``warm_start``: the batches of a warm-start pass (used by implementations that warm start);
* ``hyper``: learning rate, momentum, EMA decay, damping (a tenth of the factors' average
  eigenvalue at per-example scale, so that damping matters and inverses stay well conditioned),
  decoupled weight decay and the intervals ``T1``, ``T2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..models import Sequential
from ..models.layers import Activation, Conv2d, Flatten, Linear
from ..tensor_normal import TensorNormal, mode_moments
from ..vectors import CASES as VECTOR_CASES

__all__ = ["Batch", "Case", "CASE_NAMES", "build_cases"]

N_STEPS = 5


@dataclass
class Batch:
    """One statistics batch (canonical layout, per-example scale: gradients of each example's loss).

    ``per_example``: ``{"weight": (m, *shape), "bias": (m, out)}``; ``per_location`` (conv only):
    the same per output location, ``(m, L, *shape)`` and ``(m, L, out)``, summing over ``L`` to
    ``per_example``; ``inputs`` / ``output_grads``: the layer's inputs and the gradients w.r.t. its
    outputs (linear: ``(m, in)``, ``(m, out)``; conv: ``(m, C_in, H, W)``, ``(m, C_out, H', W')``).
    """

    per_example: dict
    per_location: dict | None = None
    inputs: np.ndarray | None = None
    output_grads: np.ndarray | None = None

    @property
    def m(self) -> int:
        return int(self.per_example["weight"].shape[0])

    def location_samples(self) -> dict:
        """Every output location as a sample of its own, ``(m L, *shape)``, times ``sqrt(L)``: their
        mean moments are the per-location moments summed over the ``L`` locations and averaged over
        the examples, the independent-locations estimate of the per-example moments (KFAC's
        convolution approximation [derived]; kfac-jax's ``Conv2DTNT``: statistics averaged over
        examples and locations, times its fixed scale ``L``)."""
        L = next(iter(self.per_location.values())).shape[1]
        return {k: v.reshape(-1, *v.shape[2:]) * math.sqrt(L) for k, v in self.per_location.items()}


@dataclass
class Case:
    name: str
    kind: str  # "linear", "conv" or "tensor"
    params: dict
    batch: Batch
    steps: list
    warm_start: list
    hyper: dict
    conv: dict | None = None  # stride, padding, kernel (kh, kw)
    doc: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple:
        return tuple(self.params["weight"].shape)

    @property
    def has_bias(self) -> bool:
        return "bias" in self.params


def _layer_batch(net: Sequential, params: dict, X, y, layer: str, kind: str) -> Batch:
    g = net.per_example_grads_factored(params, X, y)
    og, gb = g[f"{layer}.weight"], g[f"{layer}.bias"]
    delta, a = np.asarray(og.delta), np.asarray(og.a)  # (m, out, L), (m, in, L)
    m, out, L = delta.shape
    pe = {"weight": np.asarray(og.materialize()), "bias": np.asarray(gb)}
    if kind == "linear":
        return Batch(pe, None, a[:, :, 0], delta[:, :, 0])
    shape = og.shape
    pl_w = np.einsum("mol,mil->mloi", delta, a).reshape(m, L, *shape)
    conv = net.param_layer[f"{layer}.weight"]
    ho, wo = conv.out_hw(X.shape[2], X.shape[3])
    return Batch(pe, {"weight": pl_w, "bias": np.moveaxis(delta, 2, 1)}, np.asarray(X), delta.reshape(m, out, ho, wo))


def _hyper(per_example_weight: np.ndarray, shape_modes) -> dict:
    """Damping = a tenth of ``c = (tau / D)^(1/k)``, the factors' average eigenvalue at per-example scale."""
    G = per_example_weight.reshape(per_example_weight.shape[0], *shape_modes)
    tau = float(np.trace(mode_moments(G)[0]))
    c = (tau / math.prod(shape_modes)) ** (1.0 / len(shape_modes))
    return dict(learning_rate=0.1, momentum=0.9, decay=0.8, damping=0.1 * c, weight_decay=0.01, T1=1, T2=3)


def _model_case(name: str, doc: str, net: Sequential, X, y, layer: str, rng) -> Case:
    params_all = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in net.init(rng).items()}  # as tnt-ref vectors
    kind = "conv" if len(net.param_shapes[f"{layer}.weight"]) == 4 else "linear"
    n = X.shape[0]

    def batch(idx):
        ys = net.sample_labels(params_all, X[idx], rng)
        return _layer_batch(net, params_all, X[idx], ys, layer, kind)

    full = batch(np.arange(n))
    steps = []
    for _ in range(N_STEPS):
        idx = np.sort(rng.choice(n, size=max(2, n // 2), replace=False))
        grads = net.loss_and_grad(params_all, X[idx], y[idx])[1]
        steps.append(({"weight": grads[f"{layer}.weight"], "bias": grads[f"{layer}.bias"]}, batch(idx)))
    warm = [batch(np.arange(h, n, 2)) for h in (0, 1)]
    params = {"weight": params_all[f"{layer}.weight"], "bias": params_all[f"{layer}.bias"]}
    W = params["weight"]
    hyper = _hyper(full.per_example["weight"], (W.shape[0], int(np.prod(W.shape[1:]))))
    conv = None
    if kind == "conv":
        c = net.param_layer[f"{layer}.weight"]
        conv = {"stride": c.stride, "padding": c.padding, "kernel": (c.kh, c.kw)}
    return Case(name, kind, params, full, steps, warm, hyper, conv, doc)


def _conv_net() -> Sequential:
    layers = [Conv2d("conv1", 2, 3, (2, 3)), Activation("tanh"), Flatten(), Linear("fc1", 3 * 4 * 4, 4)]
    return Sequential(layers, "softmax_cross_entropy", (2, 5, 6))


def _tensor_case(name: str, shape: tuple, m: int, rng) -> Case:
    U = []
    for d in shape:
        A = rng.standard_normal((d, d))
        U.append(A @ A.T / d + 0.5 * np.eye(d))
    tn = TensorNormal(U)

    def batch(k):
        return Batch({"weight": np.asarray(tn.sample(k, rng))})

    full = batch(m)
    steps = [({"weight": rng.standard_normal(shape)}, batch(m // 2)) for _ in range(N_STEPS)]
    warm = [batch(m // 2) for _ in range(2)]
    params = {"weight": rng.standard_normal(shape)}
    return Case(name, "tensor", params, full, steps, warm, _hyper(full.per_example["weight"], shape), None,
                f"{len(shape)}-way tensor-normal gradients {shape}, m = {m}")


def _vector_model(case: str, rng):
    return VECTOR_CASES[case](rng)


_SPECS = {
    "mlp_tanh_softmax:fc1": ("mlp_tanh_softmax", "fc1", "linear 6 -> 5 with bias, tanh, softmax, m = 20 (tnt-ref vectors)"),
    "mlp_relu_bernoulli_autoencoder:fc2": ("mlp_relu_bernoulli_autoencoder", "fc2",
                                           "linear 4 -> 8 with bias, Bernoulli outputs, m = 16 (tnt-ref vectors)"),
    "mlp_tanh_squared_error:fc1": ("mlp_tanh_squared_error", "fc1", "linear 5 -> 6 with bias, Gaussian outputs, m = 12 (tnt-ref vectors)"),
    "cnn_relu_softmax:conv1": ("cnn_relu_softmax", "conv1",
                               "conv 1 -> 3, 3x3, padding 1 on 6x6: 36 output locations, a size-1 mode (tnt-ref vectors)"),
    "conv_2x3:conv1": (None, "conv1", "conv 2 -> 3, kernel 2x3 on 5x6: 16 output locations, non-square kernel, m = 12"),
    "tensor3": ((3, 4, 5), None, ""),
    "tensor4": ((2, 3, 2, 3), None, ""),
}

#: The names of the cases, in the order the harness runs them.
CASE_NAMES = tuple(_SPECS)


def build_cases(names=None, seed: int = 0) -> list[Case]:
    """The cases called ``names`` (default: all of :data:`CASE_NAMES`), deterministic in ``seed``."""
    names = list(CASE_NAMES if names is None else names)
    bad = [n for n in names if n not in _SPECS]
    if bad:
        raise ValueError(f"unknown cases {bad}; valid: {list(CASE_NAMES)}.")
    out = []
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, CASE_NAMES.index(name)])
        src, layer, doc = _SPECS[name]
        if layer is None:
            out.append(_tensor_case(name, src, 12, rng))
        elif src is None:
            X = rng.standard_normal((12, 2, 5, 6))
            out.append(_model_case(name, doc, _conv_net(), X, rng.integers(0, 4, 12), layer, rng))
        else:
            net, X, y = _vector_model(src, rng)
            out.append(_model_case(name, doc, net, X, y, layer, rng))
    return out
