"""Exact block Fisher matrices and every Kronecker approximation compared against them (spec sections 4, 5, 9).

Rooms, from the bottom up; each imports only the rooms below it:

1. :mod:`~tnt_ref.fisher.statistics` — per-example gradient statistics: KFAC's sums, summed mode
   moments, the mini-batch gradient of factored per-example gradients.
2. :mod:`~tnt_ref.fisher.blocks` — the exact true, empirical and Monte-Carlo Fisher blocks, the exact
   mode moments and KFAC's factors, from one pass over the pseudo-gradients ``J^T s_c``.
3. :mod:`~tnt_ref.fisher.gram` — the block-free path: every metric from ``F = (1/n) V V^T``
   without forming the ``(D, D)`` block.
4. :mod:`~tnt_ref.fisher.ladder` — the approximation ladder (TNT, MLE, Frobenius, KFAC, Shampoo,
   diagonal) against the exact block, choosing the dense or the Gram path per tensor.

Everything public is importable from here (``from tnt_ref.fisher import approximation_ladder``).
The tensor views of a convolution kernel (2, 3 or 4 modes) are a tensor convention:
:func:`tnt_ref.tensor.tensor_shape`.
"""

from .blocks import (
    AUTO_BLOCK_BYTES,
    DEFAULT_MAX_BLOCK_BYTES,
    BlockTooLargeError,
    empirical_fisher_blocks,
    exact_fisher_blocks,
    exact_mode_moments,
    kfac_factors,
    monte_carlo_fisher_blocks,
)
from .ladder import METHODS, LadderResult, approximation_ladder, compare_to_exact
from .statistics import kfac_sums

__all__ = [
    "DEFAULT_MAX_BLOCK_BYTES",
    "AUTO_BLOCK_BYTES",
    "BlockTooLargeError",
    "exact_fisher_blocks",
    "empirical_fisher_blocks",
    "monte_carlo_fisher_blocks",
    "exact_mode_moments",
    "kfac_factors",
    "kfac_sums",
    "compare_to_exact",
    "approximation_ladder",
    "LadderResult",
    "METHODS",
]
