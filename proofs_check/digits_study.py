"""The tensor-normal assumption measured on the digits models during training [derived].

For the layers of :data:`DIGITS_LAYERS`, at initialization, midway and the end of a TNT run, for
several seeds, the separability test of :mod:`proofs_check.separability` on two objects:

* **per-example** gradients with labels sampled from the model (one per image, all 1797 digits):
  their covariance is the layer's exact Fisher block ``F``;
* **mini-batch** sampled gradients, the paper's object: the gradient of the mean loss over a batch of
  ``m`` images (``m`` in :data:`MINIBATCH_SIZES`, drawn without replacement) with sampled labels,
  ``n = 1797`` independent batches. Given the inputs the labels have mean-zero scores, so the cross
  terms vanish and its covariance is exactly ``F / m`` [derived]: the same block up to a scale the
  test does not see (``Lambda`` is invariant under ``G x_i A_i``).

Beside each row, the exact block ``F`` (:func:`tnt_ref.fisher.exact_fisher_blocks`): z-scores that the
samples' covariance is ``F`` (``F / m``), the KL gap of ``F`` to the tensor-normal family
(:mod:`proofs_check.digits_gap`) and the **normality split**: ``Lambda``'s mean under ``N(0, F)``
(``gaussian_F_mean``), so that ``covariance_share = (gaussian_F_mean - null_mean) / (Lambda - null_mean)``
is the part of the statistic's excess over the tensor-normal null that the covariance alone explains;
the rest is the samples' departure from normality.

The bootstrap: because ``Lambda``'s law under ``H0`` does not depend on the factors, the null
statistics of every row with the same support shape and ``n`` are drawn once, from the identity
factors, and shared (an exact Monte Carlo test for each row; the rows' p-values are then dependent).
A row whose sample covariance is singular (``Lambda = inf``) keeps its own bootstrap from its fitted
factors, which counts that tensor normal's singular data sets (``bootstrap_singular``).

The per-label gradients of every image (one backward pass per class) are computed once per point and
serve every object; the TNT runs are one run per seed continued by bit-identical resumes
(:func:`proofs_check.digits_runs.tnt_chain`). The checks ``tn.digits.study`` (an observation) and
``tn.digits.study.data_labels`` (its negative control) are registered here;
``python -m proofs_check.tn_digits`` runs the study alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .digits_gap import (DIGITS_LAYERS, TRAJECTORY_LAYERS, cov_mode_moments, cross_paths, gap_on_support, gap_rows,
                         null_entries, population_gap, range_basis, summarize_trajectory)
from .digits_runs import StudyRuns
from .registry import note, register
from .separability import _bootstrap_stats, _kron, batched_lrt_statistics, mc_pvalue, null_directions, separability_df

__all__ = ["DIGITS_LAYERS", "TRAJECTORY_LAYERS", "MINIBATCH_SIZES", "OBJECTS", "point_context", "sample_gradients",
           "study_row", "study_point", "row_consistent", "digits_study", "cov_mode_moments", "population_gap",
           "study_consistent", "format_row"]

#: The mini-batch sizes of the paper's object (the digits problems train with 64; 100 as a second size).
MINIBATCH_SIZES = (64, 100)
OBJECTS = ("per-example",) + tuple(f"mini-batch m={m}" for m in MINIBATCH_SIZES)

# names the tests and older callers import from here
_null_entries, _cross_paths = null_entries, cross_paths


def mode_ranges(G, rtol: float = 1e-9) -> list:
    """Orthonormal bases ``Q_i`` ``(d_i, r_i)`` of the ranges of the mode moments of ``G``.

    Softmax-output layers have gradients with ``1^T G_(out) = 0`` (the class probabilities sum to
    one), so ``Cov(vec G)`` is singular and the LRT needs the samples in the support. Projecting
    mode by mode (``G x_i Q_i^T``) keeps a Kronecker covariance Kronecker
    (``(Q_1 kron Q_2)^T (A kron B) (Q_1 kron Q_2) = Q_1^T A Q_1 kron Q_2^T B Q_2``), so ``H0`` is
    tested on the support without changing its meaning [derived].
    """
    from tnt_ref.tensor_normal import mode_moments  # noqa: PLC0415

    return [range_basis(S, rtol) for S in mode_moments(G)]


def _project(G, Qs):
    from tnt_ref.tensor import mode_products  # noqa: PLC0415

    return np.stack([mode_products(g, [Q.T for Q in Qs]) for g in G])


@dataclass
class PointContext:
    """One layer at one point of a run: the model's outputs and every image's gradient for every label."""

    net: object
    params: dict
    X: np.ndarray
    name: str
    param_shape: tuple
    full_shape: tuple  # the TNT tensor shape (spec section 6)
    logits: np.ndarray  # (n, C)
    probs: np.ndarray  # (n, C)
    table: np.ndarray  # (C, n, D_full): gradient of example i's loss with label c, flattened row-major
    F: np.ndarray  # (D_full, D_full): the exact Fisher block over the n images
    cache: dict = field(default_factory=dict)  # support shape -> the label enumeration's exact means (basis-free)


def point_context(net, params, X, name: str, *, F=None) -> PointContext:
    """Everything the rows of one point share; ``F`` (the exact block) is computed unless given."""
    from tnt_ref.fisher import exact_fisher_blocks  # noqa: PLC0415
    from tnt_ref.tensor import tensor_shape  # noqa: PLC0415

    if name not in params:
        raise ValueError(f"unknown parameter {name!r}; valid: {sorted(params)}.")
    logits = np.asarray(net.predict(params, X), dtype=np.float64)
    probs = np.asarray(net.loss_fn.probs(logits), dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError("the digits study enumerates labels: it needs a softmax output.")
    n, C = probs.shape
    table = np.stack([np.asarray(net.per_example_grads(params, X, np.full(n, c, dtype=np.int64))[name]).reshape(n, -1)
                      for c in range(C)])
    if F is None:
        F = exact_fisher_blocks(net, params, X, names=[name])[name]
    return PointContext(net, params, X, name, tuple(params[name].shape), tuple(tensor_shape(params[name].shape)),
                        logits, probs, table, np.asarray(F))


def sample_gradients(ctx: PointContext, obj: str, rng: np.random.Generator, *, draws: int = 1, labels=None) -> np.ndarray:
    """Samples of the object ``obj`` (:data:`OBJECTS`), shape ``(n_samples, *full_shape)``.

    ``"per-example"``: one gradient per image and draw, labels sampled from the model (``draws`` times)
    or the given ``labels`` (once). ``"mini-batch m=M"``: ``n`` (the number of images) independent
    batches of ``M`` images without replacement, each image with its own sampled label, the mean of
    their gradients (labels from :meth:`loss_fn.sample`, the trainer's sampler)."""
    n = ctx.X.shape[0]
    loss_fn = ctx.net.loss_fn
    if obj == "per-example":
        out = []
        for _ in range(draws if labels is None else 1):
            ys = np.asarray(loss_fn.sample(ctx.logits, rng)) if labels is None else np.asarray(labels)
            out.append(ctx.table[ys, np.arange(n)])
        return np.concatenate(out).reshape(-1, *ctx.full_shape)
    m = int(obj.rsplit("=", 1)[1])
    out = np.empty((n, ctx.table.shape[2]))
    per = max(1, int(2e7 // (m * ctx.table.shape[2])))
    for start in range(0, n, per):
        c = min(per, n - start)
        idx = np.stack([rng.choice(n, m, replace=False) for _ in range(c)])  # (c, m)
        ys = np.asarray(loss_fn.sample(ctx.logits[idx.reshape(-1)], rng)).reshape(c, m)
        out[start:start + c] = ctx.table[ys, idx].mean(axis=1)
    return out.reshape(n, *ctx.full_shape)


def _label_moments(ctx: PointContext, P, v) -> dict:
    """Exact mean and variance of ``tr S`` and ``v^T S v`` for one projected sampled-label gradient per
    image, by enumerating the labels (weights ``p(c | x)``). The mean of ``tr S`` is also ``tr(P^T F P)``
    of the exact block, computed by another path (:func:`tnt_ref.fisher.exact_fisher_blocks` uses
    ``Lambda = S S^T``); the rows record their agreement."""
    n, C = ctx.probs.shape
    m1 = np.zeros((n, 2))
    m2 = np.zeros((n, 2))
    for c in range(C):
        g = ctx.table[c] @ P
        q = np.stack([np.sum(g * g, axis=1), (g @ v) ** 2], axis=1)
        m1 += ctx.probs[:, c:c + 1] * q
        m2 += ctx.probs[:, c:c + 1] * q * q
    return {"mean": m1.mean(axis=0), "var_sum": np.sum(m2 - m1 * m1, axis=0)}


def study_row(ctx: PointContext, G, *, obj: str, n_boot: int, rng: np.random.Generator, labels: str = "sampled",
              null=None, gauss: dict | None = None, n_gauss: int = 0, lrt: bool = True) -> dict:
    """One row: the LRT on the samples ``G`` of ``obj`` with the consistency z-scores, the population gap
    and the normality split. ``null`` (shared null statistics for this support shape and ``n``) replaces
    the row's own bootstrap unless the sample covariance is singular; ``gauss`` caches the ``N(0, F)``
    statistics by support shape (shared by the objects of one point). ``lrt=False`` stops after the
    z-scores and the gap."""
    n = G.shape[0]
    Qs = mode_ranges(G)
    G = _project(G, Qs)
    shape = tuple(q.shape[1] for q in Qs)
    D = math.prod(shape)
    P = _kron(Qs)  # (D_full, D): the same mode-wise projection for the exact block
    Fp = P.T @ ctx.F @ P
    X2 = G.reshape(n, D)
    S = X2.T @ X2 / n
    lam_F, V_F = np.linalg.eigh((Fp + Fp.T) / 2)
    v = V_F[:, -1]
    observed = np.array([np.trace(S), v @ S @ v])
    n_img = ctx.X.shape[0]
    if obj == "per-example" or shape not in ctx.cache:
        mom = _label_moments(ctx, P, v)
        # E tr S and E v^T S v for one gradient per image: tr(P^T F P) and lambda_max(P^T F P), whatever the basis of the support
        ctx.cache.setdefault(shape, mom["mean"])
    else:
        mom = {"mean": ctx.cache[shape]}
    if obj == "per-example":
        draws = n // n_img
        z = (observed - mom["mean"]) / np.sqrt(mom["var_sum"] / (n_img ** 2 * draws))
        m = None
    else:  # mini-batch means: E = (tr F, v^T F v) / m exactly; the variance from the n independent batches
        draws, m = 1, int(obj.rsplit("=", 1)[1])
        q = np.stack([np.sum(X2 * X2, axis=1), (X2 @ v) ** 2], axis=1)
        z = (observed - np.array([np.trace(Fp), lam_F[-1]]) / m) / (q.std(axis=0, ddof=1) / math.sqrt(n))
    gap = gap_on_support(ctx.F, P, shape, ctx.param_shape)
    samp_null = null_directions(S)
    row = {"layer": ctx.name, "object": obj, "m": m, "tensor_shape": list(ctx.full_shape), "support_shape": list(shape), "n": n,
           "D": D, "draws": draws, "labels": labels, "z_trace": float(z[0]), "z_top": float(z[1]),
           "exact_paths_rel_diff": float(abs(mom["mean"][0] - np.trace(Fp)) / np.trace(Fp)),
           # the enumerated E[v^T S v] is the top eigenvalue of F: v is the top direction (a second cross-path check)
           "top_direction_rel_diff": float(abs(mom["mean"][1] - lam_F[-1]) / lam_F[-1]),
           "sample_null_directions": samp_null,
           "population_min_eig_rel": float(lam_F[0] / lam_F[-1]), "df": separability_df(shape), **gap}
    if not lrt:
        return row
    if samp_null or null is None:
        # a singular sample covariance: Lambda = +inf, and the bootstrap from the fitted factors counts that tensor
        # normal's numerically singular data sets too, so the p-value stays a Monte Carlo p-value
        from tnt_ref.tensor_normal_mle import mle  # noqa: PLC0415

        lam, factors = batched_lrt_statistics(G[None], return_factors=True)
        lam = math.inf if samp_null else float(lam[0])
        factors = mle(G).factors if samp_null else [u[0] for u in factors]
        boot, source = _bootstrap_stats(factors, n, shape, n_boot, rng), "fitted"
    else:
        lam, boot, source = float(batched_lrt_statistics(G[None])[0]), np.asarray(null), "shared"
    finite = boot[np.isfinite(boot)]
    ok = finite.size >= 2 and math.isfinite(lam)
    row.update(statistic=lam, p_bootstrap=mc_pvalue(boot, lam), p_chi2=float(stats.chi2.sf(lam, row["df"])),
               n_boot=int(boot.size), bootstrap=source, bootstrap_singular=int(boot.size - finite.size),
               null_mean=float(finite.mean()) if finite.size else None,
               null_sd=float(finite.std(ddof=1)) if finite.size >= 2 else None,
               z=float((lam - finite.mean()) / finite.std(ddof=1)) if ok else None, sample_gap=lam / (2 * n))
    # Gaussian with the exact (non-Kronecker) covariance: how large Lambda would be from the covariance alone
    if not gap["population_null_directions"] and n_gauss:
        gauss = {} if gauss is None else gauss
        key = (shape, n)
        if key not in gauss:
            gauss[key] = _bootstrap_stats(None, n, shape, n_gauss, rng, covariance=(Fp + Fp.T) / 2)
        gs = gauss[key]
        row.update(gaussian_F_mean=float(np.mean(gs)), gaussian_F_sd=float(np.std(gs, ddof=1)) if gs.size >= 2 else None,
                   n_gauss=int(gs.size))
    else:
        row.update(gaussian_F_mean=None, gaussian_F_sd=None, n_gauss=0)
    share = None
    if row["gaussian_F_mean"] is not None and ok and lam > row["null_mean"]:
        share = (row["gaussian_F_mean"] - row["null_mean"]) / (lam - row["null_mean"])
    row["covariance_share"] = share
    return row


def study_point(net, params, X, name: str, *, n_boot: int, rng: np.random.Generator, draws: int = 1, labels=None,
                n_gauss: int = 0, lrt: bool = True) -> dict:
    """One per-example row (:func:`study_row`) at ``params``, with the row's own bootstrap.

    ``labels=None`` samples each image's label from the model (``draws`` times; the gradients are
    then draws from the distribution whose covariance is the exact Fisher block); given ``labels``
    (e.g. the true ones: empirical-Fisher samples), those are used once and the consistency
    z-scores say whether they match the exact block. ``n_gauss > 0`` also computes the statistic on
    ``n_gauss`` data sets from ``N(0, F)``. ``lrt=False`` stops after the z-scores and the gap.
    """
    from tnt_ref._validation import check_int, check_rng  # noqa: PLC0415

    n_boot = check_int(n_boot, "n_boot", min_value=1)
    draws = check_int(draws, "draws", min_value=1)
    n_gauss = check_int(n_gauss, "n_gauss", min_value=0)
    check_rng(rng)
    ctx = point_context(net, params, X, name)
    G = sample_gradients(ctx, "per-example", rng, draws=draws, labels=labels)
    return study_row(ctx, G, obj="per-example", n_boot=n_boot, rng=rng, labels="sampled" if labels is None else "given",
                     n_gauss=n_gauss, lrt=lrt)


#: |z| above which the tested samples do not match the exact block (for the z-scores of a full study,
#: 54 rows x 2, the chance that one exceeds it by accident is below 1e-2).
Z_CONSISTENT = 4.0


#: The study's sizes per profile: ``epochs`` of the TNT runs (the midpoint at half), ``n_boot`` bootstrap draws per
#: row, ``n_gauss`` Gaussian calibration sets, ``images`` (the first ``images`` of all 1797 digits, for the sampled
#: gradients and the exact blocks; ``None``: all; the TNT runs always train on the problem's training split), the
#: ``seeds`` (offsets from ``seed``) and the gap trajectory's ``grid`` of epochs (it holds 0, ``epochs // 2`` and
#: ``epochs``: every study row needs its trajectory point, :func:`study_consistent`). ``quick`` and ``full`` are the
#: check's (``tn.digits.study``); ``ci`` is the test suite's variant (``tests/test_proofs_check.py``): every step of
#: the study and every criterion of the check and of its negative control, on 600 images and 2 epochs, at a fraction
#: of the quick profile's cost (the quick profile stays on the command line: ``python -m proofs_check --profile quick``).
DIGITS_PROFILES = {
    "ci": {"epochs": 2, "n_boot": 19, "n_gauss": 1, "images": 600, "seeds": (0,), "grid": (0, 1, 2)},
    "quick": {"epochs": 4, "n_boot": 19, "n_gauss": 2, "images": None, "seeds": (0,), "grid": (0, 2, 4)},
    "full": {"epochs": 20, "n_boot": 99, "n_gauss": 19, "images": None, "seeds": (0, 1, 2), "grid": (0, 1, 2, 5, 10, 15, 20)},
}

#: Bootstrap draws per study row. The smallest bootstrap p-value is ``1 / (n_boot + 1)``: with 19 draws it is
#: 0.05, so the quick profile can reject at the 0.05 level (with the 9 draws it had, it never could: p >= 0.1).
N_BOOT = {k: v["n_boot"] for k, v in DIGITS_PROFILES.items()}

#: The level the rows' bootstrap p-values are read at.
LEVEL = 0.05


def can_reject(n_boot: int, level: float = LEVEL) -> bool:
    """Whether a bootstrap test with ``n_boot`` draws can reject at ``level``: its smallest p, ``1/(n_boot+1)``, is <= level.

    >>> can_reject(9), can_reject(19), can_reject(99)
    (False, True, True)
    """
    return 1.0 / (n_boot + 1) <= level


def row_consistent(row) -> bool:
    """The samples of a study row are draws from the exact block's distribution, as far as the row
    measures: both z-scores within :data:`Z_CONSISTENT` and the two exact paths equal to 1e-8 (for
    ``tr F`` and for the top eigenvalue of ``F``, the direction ``z_top`` tests)."""
    return (abs(row["z_trace"]) <= Z_CONSISTENT and abs(row["z_top"]) <= Z_CONSISTENT and row["exact_paths_rel_diff"] <= 1e-8
            and row["top_direction_rel_diff"] <= 1e-8)


def digits_study(profile: str = "full", *, draws: int = 1, seed: int = 0, log=None) -> dict:
    """The tensor-normal assumption on the digits models, at initialization, midway and the end of TNT
    runs (the middle of the problem's learning-rate grid), with the sizes of ``profile``
    (:data:`DIGITS_PROFILES`: ``ci`` 2 epochs on 600 images, ``quick`` 4 epochs, ``full`` 20 epochs over
    seeds ``seed .. seed + 2``).

    For each layer of :data:`DIGITS_LAYERS`, seed and point, one row per object of :data:`OBJECTS`
    (:func:`study_row`): per-example gradients (``n = images x draws``, all 1797 digits but in the
    ``ci`` variant) and mini-batch means (``n = images`` batches), projected onto their mode-wise
    support, the LRT statistic and its bootstrap p-value (``n_boot`` = :data:`N_BOOT`, 19 ci and
    quick, 99 full, shared null; the smallest possible p is ``1/(n_boot+1)``, 0.05 and 0.01, so every
    profile can reject at 0.05), the null's mean and s.d., the chi-square p-value, the sample gap
    ``Lambda / (2 n)``, the exact block's population gap, the consistency z-scores
    (:func:`row_consistent`) and the normality split (``n_gauss`` = 1 ci, 2 quick, 19 full). In
    ``data_label_rows``, the per-example z-scores with the data labels (the negative control). Then
    the exact blocks' gap along training for :data:`TRAJECTORY_LAYERS` at the profile's ``grid`` of
    epochs (0, 2, 4 quick; 0, 1, 2, 5, 10, 15, 20 full) for the same seeds.
    """
    from tnt_ref._validation import check_int  # noqa: PLC0415
    from tnt_ref.tensor import tensor_shape  # noqa: PLC0415
    from tnt_ref.training import get_problem  # noqa: PLC0415

    if profile not in DIGITS_PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {list(DIGITS_PROFILES)}.")
    draws = check_int(draws, "draws", min_value=1)
    seed = check_int(seed, "seed", min_value=0)
    cfg = DIGITS_PROFILES[profile]
    if not {0, cfg["epochs"] // 2, cfg["epochs"]} <= set(cfg["grid"]):  # every study row needs its trajectory point
        raise ValueError(f"DIGITS_PROFILES[{profile!r}]: the grid {cfg['grid']} lacks a point of the study (0, "
                         f"{cfg['epochs'] // 2}, {cfg['epochs']}).")
    epochs, n_boot, n_gauss, images = cfg["epochs"], cfg["n_boot"], cfg["n_gauss"], cfg["images"]
    seeds, grid = tuple(seed + i for i in cfg["seeds"]), cfg["grid"]
    runs = StudyRuns(grid, images)
    total = len(DIGITS_LAYERS) * len(seeds) * 3 * len(OBJECTS) + len(seeds) * len(grid) * len(TRAJECTORY_LAYERS)
    done_steps = [0]

    def step(text: str) -> None:  # progress for the run's line (registry.note; a no-op outside a run)
        done_steps[0] += 1
        note(text, done_steps[0], total)

    rng = np.random.default_rng(seed + 77)
    nulls: dict = {}
    rows, data_rows = [], []
    for problem, name in DIGITS_LAYERS:
        net, X, y = runs.data(problem)
        lr = get_problem(problem).grids["tnt"][1]
        for s in seeds:
            for when, done in (("init", 0), ("mid", epochs // 2), ("end", epochs)):
                t0 = time.perf_counter()
                params = runs.params(problem, s, done)
                res = runs.result(problem, s, done)
                ctx = point_context(net, params, X, name, F=runs.blocks(problem, s, done)[name])
                gauss: dict = {}
                head = {"problem": problem, "point": when, "epochs_done": done, "seed": s, "learning_rate": lr,
                        "train_loss": res.history[-1]["train_loss"] if res is not None else None,
                        "test_accuracy": res.history[-1]["test_accuracy"] if res is not None else None}
                for obj in OBJECTS:
                    t1 = time.perf_counter()
                    G = sample_gradients(ctx, obj, rng, draws=draws if obj == "per-example" else 1)
                    row = study_row(ctx, G, obj=obj, n_boot=n_boot, rng=rng, null=_shared_null(nulls, G, n_boot, rng),
                                    gauss=gauss, n_gauss=n_gauss)
                    row = {**head, **row, "seconds": time.perf_counter() - t1 + (t1 - t0 if obj == OBJECTS[0] else 0.0)}
                    rows.append(row)
                    step(f"digits study: {problem} {name} seed {s} at {when}, {obj}")
                    if log:
                        log(row)
                # the negative control's rows: the same block, gradients with the data labels (empirical-Fisher samples)
                G = sample_gradients(ctx, "per-example", rng, labels=y)
                data_rows.append({"problem": problem, "point": when, "epochs_done": done, "seed": s,
                                  **study_row(ctx, G, obj="per-example", n_boot=1, rng=rng, labels="given", lrt=False)})
    traj = []
    for problem in dict.fromkeys(p for p, _ in TRAJECTORY_LAYERS):
        names = [n for p, n in TRAJECTORY_LAYERS if p == problem]
        p0 = runs.params(problem, seeds[0], 0)
        shapes = {n: (tuple(p0[n].shape), tuple(tensor_shape(p0[n].shape))) for n in names}
        traj += gap_rows(problem, names, seeds=seeds, epochs_list=grid, shapes=shapes,
                         blocks=lambda s, e, problem=problem: runs.blocks(problem, s, e),
                         losses=lambda s, e, problem=problem: runs.loss(problem, s, e),
                         log=lambda r: step(f"digits study, gap along training: {r['problem']} {r['layer']} "
                                            f"seed {r['seed']} epoch {r['epoch']}"))
    return {"profile": profile, "draws": draws, "epochs": epochs, "n_boot": n_boot, "n_gauss": n_gauss, "seed": seed,
            "images": int(runs.data(DIGITS_LAYERS[0][0])[1].shape[0]), "seeds": list(seeds), "objects": list(OBJECTS), "rows": rows, "summary": summarize_rows(rows),
            "trajectory": {"seeds": list(seeds), "epochs": list(grid), "rows": traj, "summary": summarize_trajectory(traj)},
            "paths": cross_paths(rows, traj), "data_label_rows": data_rows}


def _shared_null(nulls: dict, G, n_boot: int, rng):
    """The null statistics for the support shape of ``G`` and its ``n``, drawn once from the identity factors
    (``Lambda``'s law under ``H0`` does not depend on the factors)."""
    shape = tuple(q.shape[1] for q in mode_ranges(G))
    key = (shape, G.shape[0])
    if key not in nulls:
        nulls[key] = _bootstrap_stats([np.eye(d) for d in shape], G.shape[0], shape, n_boot, rng)
    return nulls[key]


def summarize_rows(rows) -> list:
    """Per (layer, point, object), over seeds: the rejection count at 0.05, the median p-value, the mean
    ``z``, the mean covariance share and its range; the conclusions in docs/theory.md come from here."""
    out = []
    keys = dict.fromkeys((r["problem"], r["layer"], r["point"], r["object"]) for r in rows)
    for key in keys:
        rs = [r for r in rows if (r["problem"], r["layer"], r["point"], r["object"]) == key]
        share = [r["covariance_share"] for r in rs if r.get("covariance_share") is not None]
        zs = [r["z"] for r in rs if r.get("z") is not None]
        out.append({"problem": key[0], "layer": key[1], "point": key[2], "object": key[3], "seeds": [r["seed"] for r in rs],
                    "rejected_at_0.05": sum(r["p_bootstrap"] <= 0.05 for r in rs), "p_bootstrap_max": max(r["p_bootstrap"] for r in rs),
                    "z_mean": float(np.mean(zs)) if zs else None,
                    "covariance_share_mean": float(np.mean(share)) if share else None,
                    "covariance_share_min": float(np.min(share)) if share else None,
                    "covariance_share_max": float(np.max(share)) if share else None,
                    "sample_singular_seeds": sum(bool(r["sample_null_directions"]) for r in rs)})
    return out


def format_row(r) -> str:
    """One line per study row, for the console."""
    head = f"{r['problem']:<4} {r['layer']:<13} {r['point']:<4} seed {r['seed']} {r['object']:<16} n={r['n']} D={r['D']}"
    tail = f"z_trace={r['z_trace']:+.2f} z_top={r['z_top']:+.2f} ({r['seconds']:.0f} s)"
    null = "" if r["null_mean"] is None else f" null {r['null_mean']:.1f}+-{r['null_sd']:.1f}"
    z = "" if r["z"] is None else f" z={r['z']:.1f}"
    z += "" if r.get("gaussian_F_mean") is None else f" (N(0,F): {r['gaussian_F_mean']:.1f})"
    z += "" if r.get("covariance_share") is None else f" share={r['covariance_share']:.2f}"
    sing = (f" [sample covariance singular: {r['sample_null_directions']} null direction(s); "
            f"{r['bootstrap_singular']} of {r['n_boot']} bootstrap sets singular]") if r["sample_null_directions"] else ""
    pop = (f" [exact block singular: {r['population_null_directions']} null direction(s), entries {r['null_entries']}]"
           if r["population_null_directions"] else "")
    floor = " (the smallest possible)" if r["p_bootstrap"] <= 1.0 / (r["n_boot"] + 1) else ""
    return (f"{head} Lambda={r['statistic']:.1f}{null}{z} p_boot={r['p_bootstrap']:.3g}{floor} p_chi2={r['p_chi2']:.2g} "
            f"sample_gap={r['sample_gap']:.4f} population_gap={r['population_gap']:.4f}{sing}{pop}; {tail}")


_DIGITS: dict = {}


def _digits(profile) -> dict:
    if _DIGITS.get("profile") != profile:
        _DIGITS.clear()
        _DIGITS.update(digits_study(profile))
    return _DIGITS


def study_consistent(res) -> bool:
    """The pass criterion of ``tn.digits.study``: every row consistent, and for every row a trajectory
    point whose support and gap agree with it."""
    return (all(row_consistent(r) for r in res["rows"]) and len(res["paths"]) == len(res["rows"])
            and all(d["agree"] for d in res["paths"]))


@register("tn.digits.study",
          "observation, not a claim about the outcome: the LRT on per-example and on mini-batch (m = 64, 100) sampled-label "
          "gradients of mlp fc2.weight and cnn conv1.weight at init, mid and end of TNT runs (3 seeds in the full profile), "
          "with the normality split and the exact block's KL gap, and that gap along the runs. Passes when every row's samples "
          "match the exact Fisher block they are compared with (|z| <= 4 for tr S and the top direction of F, resp. F/m; the "
          "label-enumeration and Lambda = S S^T paths to tr F agree to 1e-8) and the sample- and population-derived supports "
          "have the same shape and give the same gap (1e-6), so the p-values and gaps describe one distribution",
          "derived", "observation", cost=40)
def digits_observation(profile):
    res = _digits(profile)
    return study_consistent(res), {k: v for k, v in res.items() if k != "data_label_rows"}


@register("tn.digits.study.data_labels",
          "the same consistency criterion on per-example gradients with the data labels (empirical-Fisher samples) instead of "
          "labels sampled from the model: their covariance is not the Fisher block, so some row must be inconsistent (must fail)",
          "derived", "negative-control", expected="fail")
def digits_data_labels(profile):
    rows = _digits(profile)["data_label_rows"]
    keep = ("problem", "layer", "seed", "point", "z_trace", "z_top", "exact_paths_rel_diff", "top_direction_rel_diff")
    return all(row_consistent(r) for r in rows), {"rows": [{k: r[k] for k in keep} for r in rows],
                                                  "inconsistent": sum(not row_consistent(r) for r in rows)}
