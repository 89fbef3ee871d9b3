"""Optimizers with one contract (``init``/``update``, immutable NamedTuple state): TNT, TNT-EF and its peers."""

from .adam import AdamState, adam
from .base import Optimizer, apply_updates, check_hyper
from .kfac import KFACState, kfac
from .sgd import SGDState, sgd
from .shampoo import ShampooState, shampoo
from .tnt import SCHEDULES, TheoryStep, TNTState, theory_step_size, tnt, tnt_warm_start

#: Optimizer names accepted by :func:`make_optimizer` and the command line.
OPTIMIZERS = ("tnt", "tnt-ef", "sgd", "adam", "kfac", "shampoo")


def make_optimizer(name: str, learning_rate: float, **kwargs) -> Optimizer:
    """Build the optimizer called ``name`` (one of :data:`OPTIMIZERS`)."""
    if name == "tnt":
        return tnt(learning_rate, **kwargs)
    if name == "tnt-ef":
        return tnt(learning_rate, empirical=True, **kwargs)
    if name == "sgd":
        return sgd(learning_rate, **kwargs)
    if name == "adam":
        return adam(learning_rate, **kwargs)
    if name == "kfac":
        return kfac(learning_rate, **kwargs)
    if name == "shampoo":
        return shampoo(learning_rate, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; valid: {list(OPTIMIZERS)}.")


__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "apply_updates",
    "check_hyper",
    "make_optimizer",
    "AdamState",
    "adam",
    "KFACState",
    "kfac",
    "SGDState",
    "sgd",
    "ShampooState",
    "shampoo",
    "TNTState",
    "tnt",
    "tnt_warm_start",
    "SCHEDULES",
    "TheoryStep",
    "theory_step_size",
]
