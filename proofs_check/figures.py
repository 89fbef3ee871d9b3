"""The theory report's figures, each drawn from one check's measured values as the JSON holds them.

* :func:`theorem_figure` — ``theorem1.tnt``'s rows: observed ``E||grad f(x_R)||^2`` against the bound;
* :func:`digits_figure` — ``tn.digits.study``'s trajectory: the exact blocks' KL gap along training.

Both save through :func:`tnt_ref.plots.save_figure` (atomic, stamped with the code and data
fingerprints), so ``python docs/redraw.py`` redraws them from ``docs/results/theory.json`` and
``tests/test_docs_figures.py`` finds a figure older than this code or that JSON.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["theorem_figure", "digits_figure", "THEOREM_MARKERS"]

#: One marker per mini-batch size, so that points that coincide stay visible (the bounds for different m nearly
#: coincide: their first term dominates).
THEOREM_MARKERS = ("o", "s", "^", "D", "v")


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def theorem_figure(res: dict, path: Path) -> Path | None:
    """``res``: the measured values of ``theorem1.tnt`` (``rows`` of m, N, observed, se, bound for tnt_ref's convergent
    schedule, Algorithm 2, and the observed values of Algorithm 1's schedule on the same instance). Each m has its own
    colour and marker and is shifted a little along N (by a factor of ``1.08`` per m, on the log axis) so that
    coinciding points and error bars stay apart; the legend sits below the axes, where it hides nothing. ``None``
    without rows."""
    from tnt_ref.plots import save_figure

    rows = res.get("rows") or []
    if not rows:
        return None
    plt = _mpl()
    fig, ax = plt.subplots(figsize=(9, 6.4))
    ms = sorted({r["m"] for r in rows})
    handles = []  # per m: observed, bound, observed under Algorithm 1 (one legend column per m)
    for i, m in enumerate(ms):
        rs = sorted((r for r in rows if r["m"] == m), key=lambda r: r["N"])
        shift = 1.08 ** (i - (len(ms) - 1) / 2)
        N = [r["N"] * shift for r in rs]
        mk = THEOREM_MARKERS[i % len(THEOREM_MARKERS)]
        line = ax.errorbar(N, [r["observed"] for r in rs], yerr=[2 * r["se"] for r in rs], marker=mk, capsize=3,
                           label=f"m={m}: observed, Algorithm 2")
        c = line[0].get_color()
        handles += [line, *ax.plot(N, [r["bound"] for r in rs], ls="--", marker=mk, mfc="none", color=c, label=f"m={m}: bound")]
        if "observed_algorithm1" in rs[0]:
            handles += [ax.errorbar(N, [r["observed_algorithm1"] for r in rs], yerr=[2 * r["se_algorithm1"] for r in rs],
                        marker=mk, mfc="none", ls=":", color=c, capsize=3, alpha=0.7,
                        label=f"m={m}: observed, Algorithm 1 (T1 = 1)")]
    ax.set_xscale("log")
    ax.set_yscale("log")
    Ns = sorted({r["N"] for r in rows})
    ax.set_xticks(Ns)
    ax.set_xticklabels([str(n) for n in Ns])
    ax.minorticks_off()
    ax.set_xlabel("N (iterations; the points of each m are shifted a little so that none hides another)")
    ax.set_ylabel("E ||grad f(x_R)||^2")
    ax.set_title("Theorem 1 [reconstructed]: tnt_ref's convergent schedule, softmax regression on digits\n"
                 "(the bounds for the different m nearly coincide: their first term dominates)", fontsize=10)
    ax.grid(alpha=0.3, which="major")
    ax.legend(handles=handles, fontsize=8, ncol=len(ms), loc="upper center", bbox_to_anchor=(0.5, -0.16),
              title="error bars: +- 2 s.e. over seeds", title_fontsize=8)
    return save_figure(fig, path, drawer=theorem_figure, data=res)


def digits_figure(res: dict, path: Path) -> Path | None:
    """Two panels over the training run: the exact block's KL gap per dimension (log scale) and the relative Frobenius
    error of its KL projection, one line per layer. Over several seeds: the mean, a band from the least to the largest
    (left) and +- one s.d. (right); over one seed, the values themselves and the titles say so. A triangle at the top
    edge marks a point where some seed's exact block is singular (an infinite gap, off the axis). ``None`` without a
    trajectory."""
    from tnt_ref.plots import save_figure

    tr = res.get("trajectory")
    if not tr:
        return None
    plt = _mpl()
    one = len(tr["seeds"]) == 1
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.4))
    for key in dict.fromkeys((q["problem"], q["layer"]) for q in tr["summary"]):
        qs = [q for q in tr["summary"] if (q["problem"], q["layer"]) == key]
        fin = [q for q in qs if q["gap_per_dim_mean"] is not None]
        ep = [q["epoch"] for q in fin]
        line, = a1.plot(ep, [q["gap_per_dim_mean"] for q in fin], marker="o", label=f"{key[0]} {key[1]}")
        c = line.get_color()
        if not one:
            a1.fill_between(ep, [q["gap_per_dim_min"] for q in fin], [q["gap_per_dim_max"] for q in fin], color=c, alpha=0.2)
        sing = [q for q in qs if q["singular_seeds"]]
        if sing:  # an infinite gap has no place on the axis: a triangle at the top edge, one per such point
            a1.scatter([q["epoch"] for q in sing], [0.96] * len(sing), transform=a1.get_xaxis_transform(), marker="^", s=60,
                       color=c, clip_on=False,
                       label=f"{key[1]}: F singular, gap infinite ({sum(q['singular_seeds'] for q in sing)} seed-epochs; top edge)")
        a2.errorbar([q["epoch"] for q in qs], [q["mle_rel_frobenius_mean"] for q in qs],
                    yerr=None if one else [q["mle_rel_frobenius_sd"] or 0.0 for q in qs], marker="o", color=c, capsize=3,
                    label=f"{key[0]} {key[1]}")
    a1.set_yscale("log")
    lo, hi = a1.get_ylim()
    a1.set_ylim(lo, hi * 4)  # headroom for the top-edge markers
    a1.set_xlabel("epochs of TNT")
    a1.set_ylabel("KL(N(0,F) || N(0, kron U_MLE)) / D")
    seeds = f"seed {tr['seeds'][0]} (one seed: no spread)" if one else f"mean and min..max over seeds {tr['seeds']}"
    a1.set_title(f"exact block vs the tensor-normal family, {seeds}", fontsize=9)
    a1.legend(fontsize=7)
    a2.set_xlabel("epochs of TNT")
    a2.set_ylabel("||F - kron U_MLE||_F / ||F||_F")
    a2.set_ylim(0, 1.05)
    a2.set_title("relative error of the KL projection, " + (f"seed {tr['seeds'][0]} (one seed: no spread)" if one else
                                                             f"mean +- s.d. over seeds {tr['seeds']}"), fontsize=9)
    a2.legend(fontsize=7)
    return save_figure(fig, path, drawer=digits_figure, data=res)
