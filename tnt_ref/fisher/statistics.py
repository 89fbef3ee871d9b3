"""Statistics of per-example gradients, the bottom room of :mod:`tnt_ref.fisher`.

Per-example gradients come as an array ``(n, *shape)`` or, for linear and convolution weights, as
an :class:`~tnt_ref.models.layers.OuterGrad` (``delta`` and ``a`` kept apart, never multiplied
out). This module turns either into what the Fisher code and the training step need:

* :func:`kfac_sums` — KFAC's sums ``(sum delta delta^T / T, sum a a^T)`` (the training step's
  KFAC statistics and the exact KFAC factors use the same function);
* ``_flat``, ``_mean_grad``, ``_sum_moments`` — the ``(n, D)`` view, the mini-batch gradient and
  the summed mode moments ``sum_x G_(i) G_(i)^T`` (closed form for linear weights) [derived].

Imports: backend, models, tensor_normal only (no other fisher module).
"""

from __future__ import annotations

from ..backend import get_namespace
from ..models.layers import OuterGrad
from ..tensor_normal import _mode_moments

__all__ = ["kfac_sums"]


def _flat(g, n: int):
    """Per-example gradients ``(n, D)`` from an array ``(n, *shape)`` or an :class:`OuterGrad`."""
    if isinstance(g, OuterGrad):
        g = g.materialize()
    return get_namespace(g).reshape(g, (n, -1))

def kfac_sums(g: OuterGrad):
    """``(sum_n sum_t delta_t delta_t^T / T, sum_n sum_t a_t a_t^T)`` of factored per-example gradients.

    ``T`` is the number of output positions (1 for a linear layer); dividing ``G`` by ``T`` is KFC's
    spatial-homogeneity scaling, so that ``kron(G, A)`` approximates the weight's block.
    """
    xp = get_namespace(g.delta)
    n, out, T = g.delta.shape
    d2 = xp.reshape(xp.permute_dims(g.delta, (1, 0, 2)), (out, n * T))  # (out, N*T)
    a2 = xp.reshape(xp.permute_dims(g.a, (1, 0, 2)), (g.a.shape[1], n * T))  # (in, N*T)
    return xp.matmul(d2, d2.T) / T, xp.matmul(a2, a2.T)

def _mean_grad(g, n: int, shape):
    """The mean of per-example gradients (array or :class:`OuterGrad`): the mini-batch gradient."""
    if isinstance(g, OuterGrad):
        xp = get_namespace(g.delta)
        _, out, T = g.delta.shape
        d2 = xp.reshape(xp.permute_dims(g.delta, (1, 0, 2)), (out, n * T))  # (out, n T)
        a2 = xp.reshape(xp.permute_dims(g.a, (1, 0, 2)), (g.a.shape[1], n * T))  # (in, n T)
        return xp.reshape(xp.matmul(d2, a2.T), tuple(shape)) / n
    return get_namespace(g).mean(g, axis=0)


def _sum_moments(g, tshape, n: int) -> list:
    """``sum_x G_(i) G_(i)^T`` for per-example gradients (array ``(n, *shape)`` or :class:`OuterGrad`);
    closed form ``(sum ||a||^2 delta delta^T, sum ||delta||^2 a a^T)`` for linear weights [derived]."""
    if isinstance(g, OuterGrad) and g.delta.shape[2] == 1 and len(tshape) == 2:
        xp = get_namespace(g.delta)
        d = xp.reshape(g.delta, (n, -1))  # (n, out)
        a = xp.reshape(g.a, (n, -1))  # (n, in)
        S1 = xp.matmul((d * xp.sum(a * a, axis=1, keepdims=True)).T, d)
        S2 = xp.matmul((a * xp.sum(d * d, axis=1, keepdims=True)).T, a)
        return [(S1 + S1.T) / 2, (S2 + S2.T) / 2]
    Gf = _flat(g, n)  # (n, D)
    xp = get_namespace(Gf)
    Gt = xp.reshape(Gf, (n, *tshape))  # (n, d_1, ..., d_k)
    ms = _mode_moments(Gt)
    return [m * n for m in ms] if n > 1 else ms
