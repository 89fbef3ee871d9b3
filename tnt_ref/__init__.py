"""tnt-ref: the reference implementation of Tensor Normal Training (Ren & Goldfarb, NeurIPS 2021).

The paper is the table of contents; see ``docs/`` for which function implements which part.
"""

from ._validation import DenseTooLargeError, TNTRefWarning, dense_limit
from .backend import asarray, get_namespace, namespace_for, to_numpy
from .kronecker import KroneckerMatrix, frobenius_kron_fit
from .tensor import fold, kron, mode_product, mode_products, unfold, vec
from .tensor_normal import (
    TensorNormal,
    mode_moments,
    normalize,
    tnt_factors,
    tnt_factors_from_moments,
)
from .tensor_normal_mle import MLEResult, mle

__version__ = "0.1.0"

__all__ = [
    "TNTRefWarning",
    "DenseTooLargeError",
    "dense_limit",
    "asarray",
    "get_namespace",
    "namespace_for",
    "to_numpy",
    "KroneckerMatrix",
    "frobenius_kron_fit",
    "fold",
    "kron",
    "mode_product",
    "mode_products",
    "unfold",
    "vec",
    "MLEResult",
    "TensorNormal",
    "mle",
    "mode_moments",
    "normalize",
    "tnt_factors",
    "tnt_factors_from_moments",
]
