"""The training problems on the bundled digits, with the optimizers' defaults and grids (spec section 10).

:data:`PROBLEMS` — an autoencoder (ReLU, narrow linear code layer, Bernoulli loss on pixel
intensities in [0, 1], as the paper's MNIST one), an MLP classifier and a small CNN classifier;
:func:`get_problem` looks one up by name with a clear error.

The bottom room of :mod:`tnt_ref.training` beside :mod:`~tnt_ref.training.step`: it imports the
models only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import cnn, mlp

__all__ = ["Problem", "PROBLEMS", "get_problem"]


@dataclass(frozen=True)
class Problem:
    """A training problem: model, data, batch size and the optimizers' defaults and learning-rate grids."""

    name: str
    build: Any
    images: bool
    autoencoder: bool
    batch_size: int
    hyper: dict  # optimizer name -> default keyword arguments (intervals, damping)
    grids: dict  # optimizer name -> learning-rate grid (a 1-3 log grid)
    select_by: str  # "train_loss" (autoencoder) or "test_accuracy" (classifiers); compare uses their validation forms


def _ae():
    # 64-64-32-8-32-64-64: ReLU, a linear 8-unit code layer, Bernoulli outputs (the paper's MNIST
    # autoencoder 784-1000-500-250-30 mirrored, at digits scale)
    return mlp([64, 64, 32, 8, 32, 64, 64], ["relu", "relu", "identity", "relu", "relu"], "sigmoid_cross_entropy")


_CLASSIFIER_GRIDS = {"tnt": [3e-5, 1e-4, 3e-4], "tnt-ef": [3e-5, 1e-4, 3e-4], "kfac": [3e-3, 1e-2, 3e-2],
                     "shampoo": [3e-3, 1e-2, 3e-2], "sgd": [0.03, 0.1, 0.3], "adam": [3e-3, 1e-2, 3e-2],
                     "kl-shampoo": [3e-3, 1e-2, 3e-2], "soap": [3e-3, 1e-2, 3e-2]}


def _problem(name, build, images, autoencoder, batch_size, T1, T2, grids, select_by) -> Problem:
    # every second-order method gets the problem's intervals (SOAP's T2 is its basis interval); the dampings of
    # KFAC and Shampoo are not tuned (TNT's, TNT-EF's and KL-Shampoo's are: protocol.DAMPING_GRIDS; these are
    # their values outside compare, the middle of their grids)
    ng = dict(T1=T1, T2=T2)
    hyper = {"tnt": dict(ng, damping=1e-2), "tnt-ef": dict(ng, damping=1e-2), "kfac": dict(ng, damping=1e-2),
             "shampoo": dict(ng, damping=1e-4), "kl-shampoo": dict(ng, damping=1e-3), "soap": dict(ng)}
    return Problem(name, build, images, autoencoder, batch_size, hyper, grids, select_by)


#: The three problems, with damping and learning-rate grids (1-3 log grids) chosen by the tuning
#: runs recorded in docs/reproduction.md. Intervals: the paper's autoencoder setting ``T1 = 1,
#: T2 = 20``; the classifiers take ~23 steps per epoch here, so the paper's CNN intervals (10, 100)
#: are scaled to (5, 25) to refresh the inverses about once an epoch.
PROBLEMS: dict[str, Problem] = {
    "autoencoder": _problem(
        "autoencoder", _ae, False, True, 100, 1, 20,
        {"tnt": [3e-5, 1e-4, 3e-4], "tnt-ef": [3e-5, 1e-4, 3e-4], "kfac": [3e-3, 1e-2, 3e-2],
         "shampoo": [1e-4, 3e-4, 1e-3], "sgd": [0.01, 0.03, 0.1], "adam": [3e-3, 1e-2, 3e-2],
         "kl-shampoo": [3e-4, 1e-3, 3e-3], "soap": [3e-3, 1e-2, 3e-2]},
        "train_loss",
    ),
    "mlp": _problem(
        "mlp", lambda: mlp([64, 64, 10], "tanh", "softmax_cross_entropy"), False, False, 64, 5, 25,
        _CLASSIFIER_GRIDS,
        "test_accuracy",
    ),
    "cnn": _problem(
        "cnn", lambda: cnn((1, 8, 8), channels=(8, 16), kernel=3, n_classes=10, activation="relu", padding=1), True,
        False, 64, 5, 25,
        {**_CLASSIFIER_GRIDS, "tnt": [1e-5, 3e-5, 1e-4], "tnt-ef": [1e-5, 3e-5, 1e-4], "kl-shampoo": [1e-3, 3e-3, 1e-2]},
        "test_accuracy",
    ),
}


def get_problem(name: str) -> Problem:
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {sorted(PROBLEMS)}.")
    return PROBLEMS[name]
