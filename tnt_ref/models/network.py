"""A sequential network with forward, backward, batch and per-example gradients.

``params`` is an ordered ``dict[str, array]`` (``"fc1.weight"``, ``"fc1.bias"``, ...) in layer
order, weight before bias. Losses are per-example negative log-likelihoods; the batch loss is
their **mean** and :meth:`Sequential.loss_and_grad` returns the gradient of that mean.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._validation import check_array, check_dense_size, check_rng, check_size, check_unique
from ..backend import get_namespace
from .layers import ACTIVATIONS, Activation, Conv2d, Flatten, Linear
from .losses import get_loss

__all__ = ["Sequential", "mlp", "cnn", "from_spec"]


class Sequential:
    """Layers applied in order, then an output distribution (:mod:`tnt_ref.models.losses`).

    Parameters
    ----------
    layers : list of layer objects (:mod:`tnt_ref.models.layers`)
    loss : str
        One of ``softmax_cross_entropy``, ``sigmoid_cross_entropy``, ``squared_error``.
    input_shape : tuple of int
        Shape of one input, e.g. ``(64,)`` or ``(1, 8, 8)``.
    spec : dict, optional
        JSON-able description (kept for known-answer vectors and checkpoints).
    """

    def __init__(self, layers: Sequence[Any], loss: str, input_shape: Sequence[int], spec: dict | None = None):
        self.layers = list(layers)
        self.loss_fn = get_loss(loss)
        if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or len(input_shape) == 0:
            raise TypeError(f"`input_shape` must be a non-empty sequence of sizes, e.g. (64,) or (1, 8, 8); got {input_shape!r}.")
        self.input_shape = tuple(check_size(s, f"input_shape[{i}]") for i, s in enumerate(input_shape))
        self.spec = spec or {}
        names = [n for layer in self.layers for n in layer.param_shapes()]
        # two layers called alike would share one parameter, and one gradient would overwrite the other
        check_unique(names, "parameter names (layer name + '.weight'/'.bias')", "give each layer its own name")
        self.param_shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            self.param_shapes.update(layer.param_shapes())
        total = sum(math.prod(s) for s in self.param_shapes.values())
        check_dense_size((total,), 8, f"the model's parameters ({len(names)} tensors, {total:,} numbers)",
                         "Choose smaller layer widths.")
        self.param_layer = {n: layer for layer in self.layers for n in layer.param_shapes()}
        self.n_outputs = self._infer_outputs()

    def _infer_outputs(self) -> int:
        x = np.zeros((1, *self.input_shape))
        p = {n: np.zeros(s) for n, s in self.param_shapes.items()}
        for layer in self.layers:
            x, _ = layer.forward(p, x)
        if x.ndim != 2:
            raise ValueError(f"the network must end with a (N, C) output; got shape {x.shape[1:]} per example.")
        return int(x.shape[1])

    @property
    def param_names(self) -> list[str]:
        return list(self.param_shapes)

    def init(self, rng: np.random.Generator, xp=None, dtype=None) -> dict:
        """Random parameters (Glorot-uniform weights, zero biases), created on ``xp``."""
        params: dict = {}
        for layer in self.layers:
            params.update(layer.init(rng))
        if xp is not None:
            params = {k: xp.asarray(v, dtype=dtype or xp.float64) for k, v in params.items()}
        return params

    # ---------------------------------------------------------------- checks
    def check_params(self, params: dict, *, finite: bool = True) -> None:
        """Names (all, in layer order), shapes, real dtypes and (``finite``: a host read each) finite values."""
        if not isinstance(params, dict):
            raise TypeError(f"`params` must be a dict name -> array; got {type(params).__name__}.")
        if list(params) != self.param_names:
            missing = [n for n in self.param_names if n not in params]
            extra = [n for n in params if n not in self.param_shapes]
            raise ValueError(
                f"`params` must have the keys {self.param_names} in this order; missing {missing}, unexpected {extra}."
            )
        for n, s in self.param_shapes.items():
            check_array(params[n], f"params[{n!r}]", finite=finite)
            if tuple(params[n].shape) != s:
                raise ValueError(f"parameter {n!r} has shape {tuple(params[n].shape)}, expected {s} (in `params`).")

    def check_inputs(self, X, y=None, *, values: bool = True) -> None:
        """Input shape against the network, real dtype, labels; ``values`` adds the host reads
        (finite inputs, label and target ranges)."""
        check_array(X, "X", finite=values)
        if X.ndim < 1 or tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(
                f"`X` must have shape (n, {', '.join(map(str, self.input_shape))}) for this model; got {tuple(X.shape)}."
            )
        if y is not None:
            check_array(y, "y", finite=values)
            self.loss_fn.check_labels(y, X.shape[0], self.n_outputs, values=values)

    def check_batch(self, params: dict, X, y, rng=None, *, values: bool = True) -> None:
        """Everything a training step needs: :meth:`check_params`, :meth:`check_inputs` with labels
        ``y``, and ``rng`` a ``numpy.random.Generator``.

        ``values=False`` checks only what needs no host read (names, shapes, dtypes, ``rng``): the
        per-step check of :func:`tnt_ref.training.train_step`, which adds the value checks only when
        the step's loss or gradient is non-finite (an out-of-range label makes the loss ``+inf``).
        """
        if y is None:
            raise ValueError("`y` (labels or targets) is required for a training step.")
        self.check_params(params, finite=values)
        self.check_inputs(X, y, values=values)
        if X.shape[0] < 1:
            raise ValueError(f"`X` must hold at least one example for a training step; got shape {tuple(X.shape)}.")
        check_rng(rng)

    # ---------------------------------------------------------------- passes
    def forward(self, params: dict, X):
        """Network output ``z`` ``(N, C)`` and the caches for :meth:`backward`."""
        self.check_params(params, finite=False)  # names and shapes: a missing key is named, never a KeyError
        caches = []
        x = X
        for layer in self.layers:
            x, c = layer.forward(params, x)
            caches.append(c)
        return x, caches

    def backward(self, params: dict, caches: list, g_out, per_example: bool = False) -> dict:
        """Back-propagate ``g_out = dL/dz`` ``(N, C)``; sums over the batch unless ``per_example``."""
        self.check_params(params, finite=False)
        if not isinstance(caches, list) or len(caches) != len(self.layers):
            raise ValueError(f"`caches` must be the list returned by forward() ({len(self.layers)} entries, one per layer); "
                             f"got {type(caches).__name__}.")
        grads: dict = {}
        g = g_out
        first = self.layers[0]
        for layer, c in zip(reversed(self.layers), reversed(caches)):
            g, gr = layer.backward(params, c, g, per_example, input_grad=layer is not first)  # nobody needs dL/dX
            grads.update(gr)
        return {n: grads[n] for n in self.param_names}

    def loss(self, params: dict, X, y) -> float:
        """Mean negative log-likelihood over the batch."""
        self.check_params(params)
        self.check_inputs(X, y)
        z, _ = self.forward(params, X)
        xp = get_namespace(z)
        return float(xp.mean(self.loss_fn.loss(z, y)))

    def loss_and_grad(self, params: dict, X, y):
        """``(mean loss, gradient of the mean loss)``; the gradient is a dict like ``params``."""
        self.check_params(params)
        self.check_inputs(X, y)
        return self._loss_and_grad(params, X, y)

    def _loss_and_grad(self, params, X, y, caches_out: list | None = None):
        z, caches = self.forward(params, X)
        xp = get_namespace(z)
        n = X.shape[0]
        loss = float(xp.mean(self.loss_fn.loss(z, y)))
        grads = self.backward(params, caches, self.loss_fn.grad(z, y) / n)
        if caches_out is not None:
            caches_out.extend([z, caches])
        return loss, grads

    def per_example_grads(self, params: dict, X, y) -> dict:
        """Gradients of each example's loss: ``name -> (N, *shape)``; they sum to ``N`` times the mean gradient."""
        self.check_params(params)
        self.check_inputs(X, y)
        z, caches = self.forward(params, X)
        return self.backward(params, caches, self.loss_fn.grad(z, y), per_example=True)

    def fisher_pseudo_grads(self, params: dict, X, per_example: bool | str = True) -> Iterator[dict]:
        """For each column ``c`` of ``S`` (``Lambda(x) = S S^T``), the per-example gradients ``J^T s_c``.

        ``sum_c outer(g_c, g_c)`` over the yielded dicts is ``E_{y ~ p(.|x)}[g g^T]`` for every
        example, exactly [derived]. Yields ``R`` dicts ``name -> (N, *shape)`` (or
        :class:`~tnt_ref.models.layers.OuterGrad` for weights with ``per_example="factored"``).
        """
        z, caches = self.forward(params, X)
        S = self.loss_fn.fisher_sqrt(z)  # (N, C, R)
        for c in range(S.shape[2]):
            yield self.backward(params, caches, S[:, :, c], per_example=per_example)

    def per_example_grads_factored(self, params: dict, X, y) -> dict:
        """:meth:`per_example_grads` with linear/conv weights as :class:`~tnt_ref.models.layers.OuterGrad`."""
        self.check_params(params)
        self.check_inputs(X, y)
        z, caches = self.forward(params, X)
        return self.backward(params, caches, self.loss_fn.grad(z, y), per_example="factored")

    def predict(self, params: dict, X):
        """Network output ``z`` ``(N, C)`` for inputs ``X`` (checked against the model)."""
        self.check_inputs(X, values=False)
        z, _ = self.forward(params, X)
        return z

    def accuracy(self, params: dict, X, y) -> float | None:
        """Classification accuracy for integer labels; ``None`` for other losses."""
        if not self.loss_fn.integer_labels:
            return None
        self.check_inputs(X, y, values=False)
        z = self.predict(params, X)
        xp = get_namespace(z)
        return float(xp.mean(xp.astype(xp.argmax(z, axis=1) == y, xp.float64)))

    def sample_labels(self, params: dict, X, rng: np.random.Generator, z=None):
        """Labels drawn from the model's predictive distribution ``p(. | x)``."""
        check_rng(rng)
        if z is None:
            z = self.predict(params, X)
        return self.loss_fn.sample(z, rng)

    def to_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True)


def mlp(sizes: Sequence[int], activation: str | Sequence[str] = "tanh", loss: str = "softmax_cross_entropy") -> Sequential:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``; hidden layers use ``activation``, the last is linear.

    ``activation`` may also be a list with one name per hidden layer (e.g. an autoencoder's linear
    code layer: ``["relu", "identity", "relu"]``). Layers are named ``fc1, fc2, ...``.
    """
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"`sizes` must be a list of layer widths, e.g. [64, 32, 10]; got {sizes!r}.")
    sizes = [check_size(s, f"sizes[{i}]") for i, s in enumerate(sizes)]  # 32.5 is refused, not truncated
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"`sizes` must list at least an input and an output size, all positive; got {sizes}.")
    acts = [activation] * (len(sizes) - 2) if isinstance(activation, str) else list(activation)
    if len(acts) != len(sizes) - 2:
        raise ValueError(f"`activation` must be one name or one per hidden layer ({len(sizes) - 2}); got {activation!r}.")
    for a in acts + ([activation] if isinstance(activation, str) else []):
        if a not in ACTIVATIONS:
            raise ValueError(f"unknown activation {a!r}; valid: {sorted(ACTIVATIONS)}.")
    get_loss(loss)
    layers: list = []
    for i in range(len(sizes) - 1):
        layers.append(Linear(f"fc{i + 1}", sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(Activation(acts[i]))
    spec = {"kind": "mlp", "sizes": sizes, "activation": activation if isinstance(activation, str) else acts, "loss": loss}
    return Sequential(layers, loss, (sizes[0],), spec)


def cnn(
    input_shape: Sequence[int] = (1, 8, 8),
    channels: Sequence[int] = (8, 16),
    kernel: int = 3,
    n_classes: int = 10,
    activation: str = "relu",
    loss: str = "softmax_cross_entropy",
    stride: int = 1,
    padding: int = 0,
) -> Sequential:
    """Small CNN: ``conv -> act`` per entry of ``channels`` (layers ``conv1, conv2, ...``), flatten, ``fc1``."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; valid: {sorted(ACTIVATIONS)}.")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or len(input_shape) != 3:
        raise ValueError(f"`input_shape` must be (channels, height, width); got {input_shape!r}.")
    c, h, w = (check_size(s, f"input_shape[{i}]") for i, s in enumerate(input_shape))
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence) or len(channels) == 0:
        raise ValueError(f"`channels` must be a non-empty list of channel counts, e.g. (8, 16); got {channels!r}.")
    channels = [check_size(co, f"channels[{i}]") for i, co in enumerate(channels)]
    n_classes = check_size(n_classes, "n_classes")  # zero classes: no output distribution
    get_loss(loss)
    layers: list = []
    for i, co in enumerate(channels):
        conv = Conv2d(f"conv{i + 1}", c, int(co), kernel, stride=stride, padding=padding)
        h, w = conv.out_hw(h, w)
        if h < 1 or w < 1:
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(channels)} conv layers of kernel {kernel}.")
        layers += [conv, Activation(activation)]
        c = int(co)
    layers += [Flatten(), Linear("fc1", c * h * w, n_classes)]
    spec = {
        "kind": "cnn",
        "input_shape": [int(s) for s in input_shape],
        "channels": [int(s) for s in channels],
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "n_classes": n_classes,
        "activation": activation,
        "loss": loss,
    }
    return Sequential(layers, loss, tuple(int(s) for s in input_shape), spec)


def from_spec(spec: dict | str) -> Sequential:
    """Rebuild a model from its JSON description (``Sequential.spec``)."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    kind = spec.get("kind")
    args = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "mlp":
        return mlp(**args)
    if kind == "cnn":
        return cnn(**args)
    raise ValueError(f"unknown model kind {kind!r}; valid: ['cnn', 'mlp'].")
