"""Framework-free models with per-example gradients (layers, output distributions, a sequential net)."""

from .layers import ACTIVATIONS, Activation, Conv2d, Flatten, Linear
from .losses import LOSSES, SigmoidCrossEntropy, SoftmaxCrossEntropy, SquaredError, get_loss
from .network import Sequential, cnn, from_spec, mlp

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Conv2d",
    "Flatten",
    "Linear",
    "LOSSES",
    "SigmoidCrossEntropy",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "get_loss",
    "Sequential",
    "cnn",
    "from_spec",
    "mlp",
]
