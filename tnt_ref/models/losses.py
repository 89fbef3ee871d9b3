"""Output distributions: loss (negative log-likelihood), label sampling and output Fisher.

Each distribution takes the network output ``z`` of shape ``(N, C)`` and provides

* ``loss(z, y)`` — per-example negative log-likelihood, shape ``(N,)``;
* ``grad(z, y)`` — ``dL/dz`` per example, shape ``(N, C)``;
* ``sample(z, rng)`` — labels ``y~ ~ p(. | z)`` drawn on the host with ``rng``;
* ``fisher(z)`` — the output Fisher ``Lambda(x)``, shape ``(N, C, C)`` (spec section 5);
* ``fisher_sqrt(z)`` — ``S`` of shape ``(N, C, R)`` with ``Lambda = S S^T``. Column ``c`` of ``S``
  is an output gradient whose back-propagation gives one term of the exact expectation over
  labels: ``E_y[g g^T] = sum_c (J^T s_c)(J^T s_c)^T`` [derived].
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_namespace

__all__ = ["SoftmaxCrossEntropy", "SigmoidCrossEntropy", "SquaredError", "LOSSES", "get_loss"]


def _logsumexp(xp, z):
    m = xp.max(z, axis=1, keepdims=True)
    return xp.reshape(m, (-1,)) + xp.log(xp.sum(xp.exp(z - m), axis=1))


class SoftmaxCrossEntropy:
    """Categorical distribution with softmax probabilities; integer labels ``y`` in ``[0, C)``.

    ``Lambda(x) = diag(p) - p p^T`` and ``S[:, :, c] = sqrt(p_c) (e_c - p)`` (the score of label
    ``c``, weighted by its probability) [derived].
    """

    name = "softmax_cross_entropy"
    integer_labels = True

    def probs(self, z):
        xp = get_namespace(z)
        m = xp.max(z, axis=1, keepdims=True)
        e = xp.exp(z - m)
        return e / xp.sum(e, axis=1, keepdims=True)

    def _onehot(self, y, z):
        xp = get_namespace(z)
        return xp.astype(xp.reshape(y, (-1, 1)) == xp.reshape(xp.arange(z.shape[1], dtype=y.dtype), (1, -1)), z.dtype)

    def loss(self, z, y):
        """``-log p_y``; a label outside ``[0, C)`` has probability 0, so its loss is ``+inf``, and a
        training step that reads the loss sees it at no extra host read."""
        xp = get_namespace(z)
        onehot = self._onehot(y, z)
        nll = _logsumexp(xp, z) - xp.sum(z * onehot, axis=1)
        return xp.where(xp.sum(onehot, axis=1) > 0, nll, xp.full_like(nll, math.inf))

    def grad(self, z, y):
        return self.probs(z) - self._onehot(y, z)

    def sample(self, z, rng: np.random.Generator):
        xp = get_namespace(z)
        p = self.probs(z)  # (m, C), stays on the device: only the uniforms travel, host -> device
        u = xp.asarray(rng.random((p.shape[0], 1)))  # float64, as drawn
        y = xp.sum(xp.astype(xp.cumulative_sum(p, axis=1) < u, xp.int64), axis=1)
        return xp.minimum(y, xp.asarray(p.shape[1] - 1, dtype=xp.int64))

    def fisher(self, z):
        xp = get_namespace(z)
        p = self.probs(z)
        eye = xp.eye(z.shape[1], dtype=z.dtype)
        return p[:, :, None] * eye[None, :, :] - p[:, :, None] * p[:, None, :]

    def fisher_sqrt(self, z):
        xp = get_namespace(z)
        p = self.probs(z)  # (N, C)
        eye = xp.eye(z.shape[1], dtype=z.dtype)
        # S[n, :, c] = sqrt(p_c) (e_c - p): rows index outputs, columns index labels
        return (eye[None, :, :] - p[:, :, None]) * xp.sqrt(p)[:, None, :]

    def check_labels(self, y, n: int, c: int, values: bool = True) -> None:
        """Shape and dtype; with ``values`` also the range (a host read)."""
        xp = get_namespace(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"`y` must have shape ({n},) of class indices for {self.name}; got {tuple(y.shape)}.")
        if not xp.isdtype(y.dtype, "integral"):
            raise TypeError(f"`y` must hold integer class indices for {self.name}; got dtype {y.dtype}.")
        if values and n and (int(xp.min(y)) < 0 or int(xp.max(y)) >= c):
            raise ValueError(
                f"labels `y` must lie in [0, {c - 1}] for {c} classes; got min {int(xp.min(y))}, max {int(xp.max(y))}."
            )


class SigmoidCrossEntropy:
    """Independent Bernoulli per output (the autoencoders' loss); targets ``y`` in ``[0, 1]``, shape ``(N, C)``.

    Soft targets (pixel intensities) are allowed in the loss; sampled labels are 0/1.
    ``Lambda(x) = diag(p (1 - p))``, ``S = diag(sqrt(p (1 - p)))`` [derived].
    """

    name = "sigmoid_cross_entropy"
    integer_labels = False

    def probs(self, z):
        xp = get_namespace(z)
        return 1.0 / (1.0 + xp.exp(-z))

    def loss(self, z, y):
        xp = get_namespace(z)
        # log(1 + e^z) - y z, computed stably: max(z, 0) + log(1 + e^{-|z|}) - y z
        sp = xp.where(z > 0, z, xp.zeros_like(z)) + xp.log1p(xp.exp(-xp.abs(z)))
        nll = sp - y * z
        # a target outside [0, 1] is no Bernoulli mean: its loss is +inf (no extra host read in a step)
        return xp.sum(xp.where((y >= 0) & (y <= 1), nll, xp.full_like(nll, math.inf)), axis=1)

    def grad(self, z, y):
        return self.probs(z) - y

    def sample(self, z, rng: np.random.Generator):
        xp = get_namespace(z)
        p = self.probs(z)  # stays on the device: only the uniforms travel, host -> device
        return xp.astype(xp.asarray(rng.random(tuple(p.shape))) < p, p.dtype)  # float64 uniforms, as drawn

    def fisher(self, z):
        xp = get_namespace(z)
        p = self.probs(z)
        return xp.eye(z.shape[1], dtype=z.dtype)[None, :, :] * (p * (1.0 - p))[:, :, None]

    def fisher_sqrt(self, z):
        xp = get_namespace(z)
        p = self.probs(z)
        return xp.eye(z.shape[1], dtype=z.dtype)[None, :, :] * xp.sqrt(p * (1.0 - p))[:, :, None]

    def check_labels(self, y, n: int, c: int, values: bool = True) -> None:
        """Shape; with ``values`` also the range (a host read)."""
        xp = get_namespace(y)
        if tuple(y.shape) != (n, c):
            raise ValueError(f"`y` must have shape ({n}, {c}) of targets in [0, 1] for {self.name}; got {tuple(y.shape)}.")
        if values and n and (float(xp.min(y)) < 0 or float(xp.max(y)) > 1):
            raise ValueError(f"targets `y` must lie in [0, 1] for {self.name}; got min {float(xp.min(y))}, max {float(xp.max(y))}.")


class SquaredError:
    """Gaussian with unit variance: loss ``(1/2) ||z - y||^2`` (the constant is dropped); ``Lambda = I``."""

    name = "squared_error"
    integer_labels = False

    def loss(self, z, y):
        xp = get_namespace(z)
        return 0.5 * xp.sum((z - y) ** 2, axis=1)

    def grad(self, z, y):
        return z - y

    def sample(self, z, rng: np.random.Generator):
        xp = get_namespace(z)
        return z + xp.asarray(rng.standard_normal(tuple(z.shape)), dtype=z.dtype)

    def fisher(self, z):
        xp = get_namespace(z)
        return xp.broadcast_to(xp.eye(z.shape[1], dtype=z.dtype)[None, :, :], (z.shape[0], z.shape[1], z.shape[1]))

    fisher_sqrt = fisher

    def check_labels(self, y, n: int, c: int, values: bool = True) -> None:
        if tuple(y.shape) != (n, c):
            raise ValueError(f"`y` must have shape ({n}, {c}) for {self.name}; got {tuple(y.shape)}.")


#: Valid loss names.
LOSSES = {cls.name: cls for cls in (SoftmaxCrossEntropy, SigmoidCrossEntropy, SquaredError)}


def get_loss(name: str):
    """The output distribution called ``name`` (one of :data:`LOSSES`)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {sorted(LOSSES)}.")
    return LOSSES[name]()
