"""The exact Fisher block's distance from the tensor-normal family [derived] (spec section 4): the KL gap
on the block's mode-wise support, the null-space diagnosis of a singular block, the gap along training
and its agreement with the sample-derived supports of :mod:`proofs_check.digits_study` (which imports
this module, never the reverse)."""

from __future__ import annotations

import math

import numpy as np

from tnt_ref.tensor_normal_mle import mle

from .separability import NULL_RTOL, _kron, kl_gap, null_directions

__all__ = ["TRAJECTORY_LAYERS", "DIGITS_LAYERS", "cov_mode_moments", "population_gap", "gap_on_support", "gap_rows",
           "summarize_trajectory", "cross_paths", "range_basis", "null_entries"]

#: (problem, parameter) pairs for the LRT: small enough for n > D with all 1797 digits (D = 576 and 72 on the support).
DIGITS_LAYERS = (("mlp", "fc2.weight"), ("cnn", "conv1.weight"))
#: ... and for the exact block's gap along training (no sampling, so conv2.weight, D = 1152, is cheap enough).
#: Left out: mlp fc1.weight (D = 3904 on the support) has an exact block whose smallest eigenvalues sit at
#: float64 round-off for its size, so its KL gap is not resolvable; cnn fc1.weight (D = 10240) is too large.
TRAJECTORY_LAYERS = DIGITS_LAYERS + (("cnn", "conv2.weight"),)


def range_basis(M, rtol: float):
    """Orthonormal basis of the eigenvectors of the symmetric PSD ``M`` with eigenvalue above ``rtol`` x the largest."""
    lam, V = np.linalg.eigh((M + M.T) / 2)
    return V[:, lam > rtol * lam.max()]


def null_entries(F, P, param_shape) -> list:
    """The parameter entries (index tuples in ``param_shape``) that span the null space of
    ``P^T F P``, when that null space is coordinate-aligned; ``[]`` when it is not.

    A null space of dimension r is coordinate-aligned when exactly r coordinates have a diagonal of
    the projector onto it equal to 1 (the eigenvectors of a repeated zero eigenvalue come out rotated,
    so they are not tested one by one)."""
    lam, V = np.linalg.eigh((F + F.T) / 2 if P is None else P.T @ F @ P)
    Vn = V[:, lam <= NULL_RTOL * lam[-1]]
    W = Vn if P is None else P @ Vn
    if W.shape[1] == 0:
        return []
    diag = np.sum(W * W, axis=1)  # diag of the orthogonal projector W W^T (P has orthonormal columns)
    hits = np.flatnonzero(diag >= 1 - 1e-6)
    if hits.size != W.shape[1]:
        return []
    return [[int(t) for t in np.unravel_index(j, param_shape)] for j in hits]


def cov_mode_moments(F, shape) -> list:
    """The mode moments ``M_i = E[G_(i) G_(i)^T]`` of a zero-mean tensor with covariance ``F``
    (row-major ``vec``): partial traces of ``F`` over every mode but ``i``."""
    shape = tuple(int(d) for d in shape)
    k = len(shape)
    T = np.asarray(F).reshape(*shape, *shape)
    out = []
    for i in range(k):
        Ti = np.moveaxis(T, [i, k + i], [0, 1]).reshape(shape[i], shape[i], -1, math.prod(shape) // shape[i])
        out.append(np.trace(Ti, axis1=2, axis2=3))
    return out


def gap_on_support(F, P, sub, param_shape=None) -> dict:
    """KL gap and relative Frobenius error of the KL projection of ``P^T F P`` (shape ``sub``), with the
    null-space diagnosis of :func:`population_gap`; the MLE is fitted once."""
    Fp = P.T @ F @ P
    null = null_directions(Fp)
    if null:  # singular on the support: no Kronecker product of PD factors equals it, the gap is infinite
        gap, factors = math.inf, mle(covariance=Fp, shape=sub, tol=1e-12, max_iter=1000).factors
    else:
        gap, factors = kl_gap(Fp, sub)
    entries = null_entries(F, P, param_shape) if null and param_shape is not None else []
    return {"population_null_directions": null,
            "null_kind": None if not null else ("dead weights" if entries else "numerical"),
            "population_gap": gap,
            "mle_rel_frobenius": float(np.linalg.norm(Fp - _kron(factors)) / np.linalg.norm(Fp)),
            "null_entries": entries}


def population_gap(F, shape, param_shape=None, rtol: float = 1e-9) -> dict:
    """The exact block's distance from the tensor-normal family, on its mode-wise support.

    Projects ``F`` mode by mode onto the ranges of its own mode moments (:func:`cov_mode_moments`),
    then reports the KL gap (:func:`kl_gap`; ``inf`` when the projected block is singular to working
    precision, :func:`null_directions`) and the relative Frobenius error ``||F - kron U_i^MLE|| / ||F||``
    of the KL projection. A singular block is either *exactly* so, with a coordinate-aligned null
    space (``null_kind = "dead weights"``: the entries in ``null_entries`` have zero gradient on every
    input), or only to float64 precision (``"numerical"``: eigenvalues below ``NULL_RTOL`` times the
    largest, as for a confident classifier whose ``Lambda(x)`` is nearly zero on most inputs).
    """
    Qs = [range_basis(M, rtol) for M in cov_mode_moments(F, shape)]
    sub = tuple(q.shape[1] for q in Qs)
    return {"support_shape": list(sub), "D": math.prod(sub), **gap_on_support(F, _kron(Qs), sub, param_shape)}


def gap_rows(problem: str, names, *, seeds, epochs_list, blocks, losses, shapes, log=None) -> list:
    """:func:`population_gap` of the exact Fisher block of each parameter in ``names`` at every seed and
    epoch: ``blocks(seed, epoch)`` gives ``name -> F``, ``losses(seed, epoch)`` the training loss (``None``
    at initialization), ``shapes[name]`` the parameter's and its tensor shape."""
    rows = []
    for seed in seeds:
        for e in epochs_list:
            F = blocks(int(seed), int(e))
            for name in names:
                param_shape, tshape = shapes[name]
                row = {"problem": problem, "layer": name, "seed": int(seed), "epoch": int(e), "train_loss": losses(int(seed), int(e)),
                       **population_gap(F[name], tshape, param_shape)}
                rows.append(row)
                if log:
                    log(row)
    return rows


def summarize_trajectory(rows) -> list:
    """Mean, s.d., min and max over seeds of the gap per dimension and the relative error, per (layer, epoch)."""
    out = []
    for key in sorted(dict.fromkeys((r["problem"], r["layer"], r["epoch"]) for r in rows),
                      key=lambda k: ([p for p, _ in TRAJECTORY_LAYERS].index(k[0]), k[1], k[2])):
        rs = [r for r in rows if (r["problem"], r["layer"], r["epoch"]) == key]
        g = np.array([r["population_gap"] / r["D"] for r in rs])
        fin = g[np.isfinite(g)]
        e = np.array([r["mle_rel_frobenius"] for r in rs])
        out.append({"problem": key[0], "layer": key[1], "epoch": key[2], "seeds": len(rs), "singular_seeds": int(np.sum(~np.isfinite(g))),
                    "gap_per_dim_mean": float(fin.mean()) if fin.size else None,
                    "gap_per_dim_sd": float(fin.std(ddof=1)) if fin.size >= 2 else None,
                    "gap_per_dim_min": float(fin.min()) if fin.size else None, "gap_per_dim_max": float(fin.max()) if fin.size else None,
                    "mle_rel_frobenius_mean": float(e.mean()), "mle_rel_frobenius_sd": float(e.std(ddof=1)) if e.size >= 2 else None})
    return out


def cross_paths(rows, traj) -> list:
    """For each study row, the trajectory's gap of the same layer at the same seed and epoch: the two
    projections (sample- and population-derived supports) must have the same shape and give the same KL gap."""
    out = []
    for r in rows:
        t = next((t for t in traj if t["problem"] == r["problem"] and t["layer"] == r["layer"] and t["seed"] == r["seed"]
                  and t["epoch"] == r["epochs_done"]), None)
        if t is None:
            continue
        a, b = r["population_gap"], t["population_gap"]
        same = t["support_shape"] == r["support_shape"]
        diff = 0.0 if (math.isinf(a) and math.isinf(b)) else (abs(a - b) / max(abs(b), 1e-300) if math.isfinite(a) and math.isfinite(b) else math.inf)
        out.append({"problem": r["problem"], "layer": r["layer"], "point": r["point"], "rel_diff": float(diff),
                    "same_support": same, "agree": bool(same and diff <= 1e-6)})
    return out
