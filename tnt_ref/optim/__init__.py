"""Optimizers with one contract (``init``/``update``, immutable NamedTuple state): TNT, TNT-EF and its peers (SGD-m, Adam, KFAC, Shampoo, KL-Shampoo, SOAP)."""

from .adam import AdamState, adam
from .base import Optimizer, apply_updates, check_hyper
from .kfac import KFACState, kfac
from .kl_shampoo import KLShampooState, kl_shampoo
from .sgd import SGDState, sgd
from .shampoo import ShampooState, shampoo
from .soap import SOAPState, soap
from .tnt import SCHEDULES, TheoryStep, TNTState, theory_step_size, tnt, tnt_warm_start

#: Optimizer names accepted by :func:`make_optimizer` and the command line.
OPTIMIZERS = ("tnt", "tnt-ef", "sgd", "adam", "kfac", "shampoo", "kl-shampoo", "soap")


def factory(name: str):
    """The function that builds the optimizer called ``name`` (``tnt`` for ``"tnt-ef"``), e.g. to read
    which hyperparameters it accepts from its signature."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid: {list(OPTIMIZERS)}.")
    return tnt if name == "tnt-ef" else globals()[name.replace("-", "_")]


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
    if name == "kl-shampoo":
        return kl_shampoo(learning_rate, **kwargs)
    if name == "soap":
        return soap(learning_rate, **kwargs)
    raise ValueError(f"unknown optimizer {name!r}; valid: {list(OPTIMIZERS)}.")


__all__ = [
    "OPTIMIZERS",
    "Optimizer",
    "apply_updates",
    "check_hyper",
    "factory",
    "make_optimizer",
    "AdamState",
    "adam",
    "KFACState",
    "kfac",
    "KLShampooState",
    "kl_shampoo",
    "SGDState",
    "sgd",
    "ShampooState",
    "shampoo",
    "SOAPState",
    "soap",
    "TNTState",
    "tnt",
    "tnt_warm_start",
    "SCHEDULES",
    "TheoryStep",
    "theory_step_size",
]
