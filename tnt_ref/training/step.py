"""One optimizer step, and the one definition of divergence (spec section 6).

* :func:`train_step` — one forward pass, the data-label backward pass, and the extra backward pass
  with sampled labels only when ``opt.needs(state)`` asks for it.
* :func:`is_diverged`, :data:`DIVERGENCE_FACTOR`, :class:`DivergedError` — NaN/Inf or above a stated
  multiple of the initial loss.

The bottom room of :mod:`tnt_ref.training`: it imports the models, the optimizers and
:func:`tnt_ref.fisher.kfac_sums` (KFAC's statistics), nothing else of ``training``.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import get_namespace
from ..fisher.statistics import kfac_sums
from ..models import Sequential
from ..optim import Optimizer, apply_updates

__all__ = ["DivergedError", "DIVERGENCE_FACTOR", "is_diverged", "train_step"]


class DivergedError(RuntimeError):
    """The run diverged (:func:`is_diverged`); it stopped and its last good checkpoint is kept.

    Raised by :func:`run` with the attributes ``last_good_epoch`` (0 if none), ``last_good_loss``
    (the training loss after that epoch, or the initial loss), ``history`` and ``config``.
    """



#: Default multiple of the initial training loss above which a run counts as diverged (see :func:`is_diverged`).
DIVERGENCE_FACTOR = 10.0

def is_diverged(loss: float, initial_loss: float, factor: float = DIVERGENCE_FACTOR) -> bool:
    """The one definition of divergence: the loss is NaN/Inf, or above ``factor`` times the initial loss.

    ``initial_loss`` is the training loss at ``theta_0`` (before any step or warm start). A
    mini-batch loss and an epoch's training loss are judged by the same rule [reconstructed].

    >>> is_diverged(float("nan"), 2.3), is_diverged(2.9e200, 2.3), is_diverged(2.0, 2.3), is_diverged(24.0, 2.3)
    (True, True, False, True)
    """
    return not math.isfinite(loss) or loss > factor * initial_loss


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
