"""SGD with heavy-ball momentum, as the authors' baseline (``mu = 0.9``) (spec section 6)."""

from __future__ import annotations

from typing import NamedTuple

from .._validation import check_param_dict
from ..backend import get_namespace
from .base import Optimizer, check_hyper

__all__ = ["SGDState", "sgd"]


class SGDState(NamedTuple):
    """step: int, updates done; momentum: dict name -> array of the parameter's shape (``v``)."""

    step: int
    momentum: dict


def sgd(learning_rate: float, *, momentum: float = 0.9, weight_decay: float = 0.0) -> Optimizer:
    """``v = mu v + g``; ``W = (1 - alpha gamma) W - alpha v`` (decoupled weight decay)."""
    check_hyper(learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay)
    alpha, mu, gamma = float(learning_rate), float(momentum), float(weight_decay)

    def init(params: dict) -> SGDState:
        check_param_dict(params)
        return SGDState(0, {k: get_namespace(p).zeros_like(p) for k, p in params.items()})

    def update(grads: dict, state: SGDState, params: dict):
        v = {k: mu * state.momentum[k] + grads[k] for k in grads}
        return {k: -alpha * gamma * params[k] - alpha * v[k] for k in params}, SGDState(state.step + 1, v)

    return Optimizer("sgd", init, update, hyper=dict(learning_rate=alpha, momentum=mu, weight_decay=gamma))
