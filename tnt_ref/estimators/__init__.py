"""The Kronecker estimators of the Shampoo family, beside TNT's (spec section 4).

Each function estimates the second-moment matrix ``F = E[vec G vec G^T]`` of a zero-mean random
tensor ``G`` of shape ``(d_1, ..., d_k)`` (row-major ``vec``, ``numpy.kron`` order; spec section 1)
by a Kronecker-structured matrix, from one of two kinds of statistics:

* ``samples`` ``(n, d_1, ..., d_k)``: ``F`` is estimated by their mean outer product, so the scale
  is the samples' own (per-example gradients estimate the Fisher ``F``, gradients of mini-batch
  *mean* losses estimate ``F / m``; spec section 5);
* ``covariance=F`` ``(D, D)`` with ``shape=(d_1, ..., d_k)``: the population version.

Both only enter through three products, which the block-free exact Fisher of
:mod:`tnt_ref.fisher_gram` also provides (so the approximation ladder runs these very functions
on blocks too large to form):

* ``mode_moment(i, W)`` = ``E[G_(i) (kron_{l != i} W_l) G_(i)^T]`` (``W = None``: identities);
* ``inner_kron(U)`` = ``<F, kron U_i>``;
* ``rotated_diag(Q)`` = ``diag((kron Q_i)^T F (kron Q_i))`` as a tensor.

The estimators (references: **[GKS18]** Gupta, Koren & Singer, *Shampoo*, ICML 2018; **[MSV+25]**
Morwani, Shapira, Vyas, Malach, Kakade & Janson, *A New Perspective on Shampoo's Preconditioner*,
ICLR 2025; **[VMZ+25]** Vyas, Morwani, Zhao et al., *SOAP*, ICLR 2025; **[LLD+26]** Lin, Lowe,
Dangel, Eschenhagen, Xu & Grosse, *Understanding and Improving Shampoo and SOAP via
Kullback-Leibler Minimization*, ICLR 2026, arXiv:2509.03378):

* :func:`shampoo_factors` — Shampoo's implied approximation ``kron S_i^(1/k)`` (its
  preconditioner is ``kron (S_i + eps I)^(-1/(2k))``, :func:`shampoo_preconditioner`) [GKS18];
* :func:`power_step_factors` — "Shampoo^2": steps of the higher-order power iteration for the
  Frobenius-optimal Kronecker product, started from identities [MSV+25];
* :func:`kl_shampoo_init`, :func:`kl_shampoo_update`, :func:`kl_shampoo_factors` — KL-Shampoo's
  one flip-flop step per optimizer step with its moving average, and its fixed point [LLD+26];
* :func:`soap_factors` — SOAP's eigenbasis (of Shampoo's factors) and Adam's second moment in it
  [VMZ+25].

Every Kronecker estimate is returned normalized to equal average eigenvalue (``tr(U_i) / d_i`` the
same for every mode), as in :mod:`tnt_ref.tensor_normal`: only the product is identifiable. The one
exception is :func:`kl_shampoo_update`, a step on running factors, which returns them as computed
(the step commutes with the rescaling).
Rooms, bottom to top (each imports only those below it, and :mod:`tnt_ref.tensor`,
:mod:`tnt_ref.tensor_normal`, :mod:`tnt_ref.tensor_normal_mle`, :mod:`tnt_ref.kronecker`):
:mod:`~tnt_ref.estimators.statistics` (the three products from samples or a covariance),
:mod:`~tnt_ref.estimators.shampoo` (Shampoo, Shampoo^2, SOAP), :mod:`~tnt_ref.estimators.kl_shampoo`.
"""

from .kl_shampoo import (
    KLShampooResult,
    kl_shampoo_factors,
    kl_shampoo_init,
    kl_shampoo_update,
)
from .shampoo import (
    power_step_factors,
    psd_power,
    shampoo_factors,
    shampoo_factors_from_moments,
    shampoo_preconditioner,
    soap_factors,
)

__all__ = [
    "psd_power",
    "shampoo_factors",
    "shampoo_factors_from_moments",
    "shampoo_preconditioner",
    "power_step_factors",
    "kl_shampoo_init",
    "kl_shampoo_update",
    "kl_shampoo_factors",
    "KLShampooResult",
    "soap_factors",
]
