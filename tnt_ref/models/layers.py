"""Layers with forward, backward and per-example gradients (framework-free, any array backend).

Each layer is a small object with no state beyond its hyperparameters; parameters live in the
network's ordered ``dict[str, array]`` under ``"<layer>.weight"`` and ``"<layer>.bias"``.

``forward(params, x) -> (out, cache)`` and
``backward(params, cache, g_out, per_example, input_grad=True) -> (g_in, grads)`` (``g_in`` is
``None`` when ``input_grad=False``: the network's first layer skips it); ``grads`` maps parameter names to
the batch **sum** of gradients (shape of the parameter) or, with ``per_example=True``, to the
per-example gradients (shape ``(N, *param.shape)``). With ``per_example="factored"`` weights of
linear and convolution layers come as :class:`OuterGrad` (``g_n = delta_n a_n^T``), which is what
KFAC's statistics and the closed-form mode moments of linear layers need.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .._validation import check_size

from ..backend import get_namespace

__all__ = ["Linear", "Conv2d", "Activation", "Flatten", "ACTIVATIONS", "OuterGrad"]


class OuterGrad(NamedTuple):
    """Per-example weight gradients in factored form: ``g_n = delta_n @ a_n^T``.

    ``delta``: ``(N, out, L)`` gradients w.r.t. the pre-activations at ``L`` positions (``L = 1``
    for a linear layer, ``H_out * W_out`` for a convolution); ``a``: ``(N, in, L)`` the matching
    inputs (im2col patches for a convolution); ``shape``: the weight's shape.
    """

    delta: Any
    a: Any
    shape: tuple

    def materialize(self):
        """Per-example gradients ``(N, *shape)``."""
        xp = get_namespace(self.delta)
        g = xp.matmul(self.delta, xp.permute_dims(self.a, (0, 2, 1)))  # (N, out, in)
        return xp.reshape(g, (g.shape[0], *self.shape))


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a layer's `name` must be a non-empty string (e.g. 'fc1'); got {name!r}.")


class Linear:
    """Affine layer ``z = x W^T + b``, weight ``(out, in)``, bias ``(out,)``.

    Per-example weight gradient ``delta a^T`` (``delta = dL/dz``, ``a = x``): under row-major
    ``vec`` its outer product is ``(delta delta^T) kron (a a^T)`` (KFAC order ``G kron A``).
    """

    def __init__(self, name: str, d_in: int, d_out: int, bias: bool = True):
        _check_name(name)
        self.name, self.d_in, self.d_out, self.bias = name, check_size(d_in, "d_in"), check_size(d_out, "d_out"), bool(bias)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {f"{self.name}.weight": (self.d_out, self.d_in)}
        if self.bias:
            shapes[f"{self.name}.bias"] = (self.d_out,)
        return shapes

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Glorot-uniform weights, zero bias (host arrays)."""
        lim = math.sqrt(6.0 / (self.d_in + self.d_out))
        out = {f"{self.name}.weight": rng.uniform(-lim, lim, (self.d_out, self.d_in))}
        if self.bias:
            out[f"{self.name}.bias"] = np.zeros(self.d_out)
        return out

    def forward(self, p, x):
        xp = get_namespace(x)
        z = xp.matmul(x, p[f"{self.name}.weight"].T)  # (N, out)
        if self.bias:
            z = z + p[f"{self.name}.bias"]
        return z, x

    def backward(self, p, a, g, per_example: bool, input_grad: bool = True):
        xp = get_namespace(g)
        W = p[f"{self.name}.weight"]
        g_in = xp.matmul(g, W) if input_grad else None  # (N, in)
        if per_example == "factored":
            n = g.shape[0]
            grads = {f"{self.name}.weight": OuterGrad(xp.reshape(g, (n, self.d_out, 1)), xp.reshape(a, (n, self.d_in, 1)), (self.d_out, self.d_in))}
            if self.bias:
                grads[f"{self.name}.bias"] = g
        elif per_example:
            grads = {f"{self.name}.weight": g[:, :, None] * a[:, None, :]}  # (N, out, in)
            if self.bias:
                grads[f"{self.name}.bias"] = g
        else:
            grads = {f"{self.name}.weight": xp.matmul(g.T, a)}  # (out, in)
            if self.bias:
                grads[f"{self.name}.bias"] = xp.sum(g, axis=0)
        return g_in, grads


class Conv2d:
    """2-D convolution (cross-correlation), weight ``(C_out, C_in, kh, kw)``, bias ``(C_out,)``.

    Input ``(N, C_in, H, W)``, output ``(N, C_out, H_out, W_out)`` with
    ``H_out = (H + 2 padding - kh) // stride + 1``. Implemented by im2col: patches of shape
    ``(N, C_in*kh*kw, L)`` in row-major ``(C_in, kh, kw)`` order, so the weight reshaped to
    ``(C_out, C_in*kh*kw)`` keeps its row-major ``vec`` (the 2-way view of a kernel).
    """

    def __init__(self, name: str, c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int = 1, padding: int = 0):
        _check_name(name)
        if isinstance(kernel, (tuple, list)):
            if len(kernel) != 2:
                raise ValueError(f"`kernel` must be one size or a pair (kh, kw); got kernel={kernel!r}.")
            kh, kw = check_size(kernel[0], "kernel[0]"), check_size(kernel[1], "kernel[1]")
        else:
            kh = kw = check_size(kernel, "kernel")
        self.name, self.c_in, self.c_out = name, check_size(c_in, "c_in"), check_size(c_out, "c_out")
        self.kh, self.kw = kh, kw
        self.stride, self.padding = check_size(stride, "stride"), check_size(padding, "padding", min_value=0)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        return {f"{self.name}.weight": (self.c_out, self.c_in, self.kh, self.kw), f"{self.name}.bias": (self.c_out,)}

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        fan_in, fan_out = self.c_in * self.kh * self.kw, self.c_out * self.kh * self.kw
        lim = math.sqrt(6.0 / (fan_in + fan_out))
        return {
            f"{self.name}.weight": rng.uniform(-lim, lim, (self.c_out, self.c_in, self.kh, self.kw)),
            f"{self.name}.bias": np.zeros(self.c_out),
        }

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        return (h + 2 * self.padding - self.kh) // self.stride + 1, (w + 2 * self.padding - self.kw) // self.stride + 1

    def _pad(self, x):
        if self.padding == 0:
            return x
        xp = get_namespace(x)
        n, c, h, w = x.shape
        P = self.padding
        out = xp.zeros((n, c, h + 2 * P, w + 2 * P), dtype=x.dtype)
        out[:, :, P : P + h, P : P + w] = x
        return out

    def _im2col(self, x):
        """Patches ``(N, C_in*kh*kw, L)``, row-major over ``(C_in, kh, kw)``; ``L = H_out*W_out``."""
        xp = get_namespace(x)
        n, c, h, w = x.shape
        ho, wo = self.out_hw(h, w)
        xpad = self._pad(x)
        s = self.stride
        cols = [
            xpad[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s]  # (N, C_in, ho, wo)
            for i in range(self.kh)
            for j in range(self.kw)
        ]
        P = xp.stack(cols, axis=2)  # (N, C_in, kh*kw, ho, wo)
        return xp.reshape(P, (n, c * self.kh * self.kw, ho * wo))

    def _col2im(self, cols, x_shape):
        """Adjoint of :meth:`_im2col`: scatter-add patches ``(N, C_in*kh*kw, L)`` into ``x_shape``."""
        xp = get_namespace(cols)
        n, c, h, w = x_shape
        ho, wo = self.out_hw(h, w)
        P = self.padding
        s = self.stride
        cols = xp.reshape(cols, (n, c, self.kh, self.kw, ho, wo))
        out = xp.zeros((n, c, h + 2 * P, w + 2 * P), dtype=cols.dtype)
        for i in range(self.kh):
            for j in range(self.kw):
                sl = (slice(None), slice(None), slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s))
                out[sl] = out[sl] + cols[:, :, i, j, :, :]
        return out[:, :, P : P + h, P : P + w]

    def forward(self, p, x):
        xp = get_namespace(x)
        n, _, h, w = x.shape
        ho, wo = self.out_hw(h, w)
        cols = self._im2col(x)  # (N, P, L)
        Wm = xp.reshape(p[f"{self.name}.weight"], (self.c_out, -1))  # (C_out, P)
        z = xp.matmul(Wm, cols) + xp.reshape(p[f"{self.name}.bias"], (1, self.c_out, 1))  # (N, C_out, L)
        return xp.reshape(z, (n, self.c_out, ho, wo)), (cols, tuple(x.shape))

    def backward(self, p, cache, g, per_example: bool, input_grad: bool = True):
        xp = get_namespace(g)
        cols, x_shape = cache
        n = g.shape[0]
        gm = xp.reshape(g, (n, self.c_out, -1))  # (N, C_out, L)
        Wm = xp.reshape(p[f"{self.name}.weight"], (self.c_out, -1))  # (C_out, P)
        g_in = self._col2im(xp.matmul(Wm.T, gm), x_shape) if input_grad else None
        gb = xp.sum(gm, axis=2)  # (N, C_out)
        wshape = (self.c_out, self.c_in, self.kh, self.kw)
        if per_example == "factored":
            return g_in, {f"{self.name}.weight": OuterGrad(gm, cols, wshape), f"{self.name}.bias": gb}
        gw = xp.matmul(gm, xp.permute_dims(cols, (0, 2, 1)))  # (N, C_out, P)
        if per_example:
            grads = {f"{self.name}.weight": xp.reshape(gw, (n, *wshape)), f"{self.name}.bias": gb}
        else:
            grads = {f"{self.name}.weight": xp.reshape(xp.sum(gw, axis=0), wshape), f"{self.name}.bias": xp.sum(gb, axis=0)}
        return g_in, grads


def _tanh(xp, x):
    y = xp.tanh(x)
    return y, 1.0 - y * y


def _relu(xp, x):
    y = xp.where(x > 0, x, xp.zeros_like(x))
    return y, xp.astype(x > 0, x.dtype)


def _sigmoid(xp, x):
    y = 1.0 / (1.0 + xp.exp(-x))
    return y, y * (1.0 - y)


def _identity(xp, x):
    return x, xp.ones_like(x)


#: Valid activation names.
ACTIVATIONS = {"tanh": _tanh, "relu": _relu, "sigmoid": _sigmoid, "identity": _identity}


class Activation:
    """Elementwise activation: one of :data:`ACTIVATIONS`."""

    def __init__(self, kind: str):
        if kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {kind!r}; valid: {sorted(ACTIVATIONS)}.")
        self.kind = kind
        self.name = kind

    def param_shapes(self) -> dict:
        return {}

    def init(self, rng) -> dict:
        return {}

    def forward(self, p, x):
        y, dy = ACTIVATIONS[self.kind](get_namespace(x), x)
        return y, dy

    def backward(self, p, dy, g, per_example: bool, input_grad: bool = True):
        return (g * dy if input_grad else None), {}


class Flatten:
    """``(N, C, H, W) -> (N, C*H*W)`` (row-major)."""

    name = "flatten"

    def param_shapes(self) -> dict:
        return {}

    def init(self, rng) -> dict:
        return {}

    def forward(self, p, x):
        xp = get_namespace(x)
        return xp.reshape(x, (x.shape[0], -1)), tuple(x.shape)

    def backward(self, p, shape, g, per_example: bool, input_grad: bool = True):
        return (get_namespace(g).reshape(g, shape) if input_grad else None), {}


Layer = Any
