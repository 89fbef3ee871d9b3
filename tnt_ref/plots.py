"""Figures (matplotlib only here; the Agg backend, so no display is needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_ladder", "plot_training", "plot_budget"]

_COLORS = {  # distinct hues (tab10), so that neighbouring methods can be told apart
    "tnt-exact": "#1f77b4",
    "tnt-per-example": "#ff7f0e",
    "tnt-batch-mean": "#8c564b",
    "mle": "#2ca02c",
    "frobenius": "#bcbd22",
    "kfac": "#d62728",
    "shampoo": "#9467bd",
    "diagonal": "#7f7f7f",
    "shampoo-exact": "#c5b0d5",
    "shampoo2": "#e377c2",
    "soap": "#17becf",
    "kl-shampoo": "#98df8a",
    "kl-shampoo-batch-mean": "#c49c94",
    "exact": "black",
}


def _save(fig, path: str | Path, title: str = "") -> Path:
    """Title, layout, and an atomic save (a temporary file renamed over ``path``)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_ladder(rows: list[dict], spectra: dict, path: str | Path, title: str = "") -> Path:
    """Left: relative Frobenius error per layer and method. Middle: the damped KL per layer and method (log
    scale). Right: spectra of the exact block and its approximations for the layer with the largest block."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    wide = max(1.0, len(layers) * len(methods) / 80)
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(max(20.0, 8.0 + 0.08 * len(layers) * len(methods)), 5.5),
                                        gridspec_kw={"width_ratios": [wide, wide, 1]})
    width = 0.8 / len(methods)
    x = np.arange(len(layers))
    for ax, metric in ((ax1, "rel_error"), (ax3, "kl")):
        val = {(r["layer"], r["method"]): r[metric] for r in rows}
        for j, m in enumerate(methods):
            vals = [val.get((lay, m)) for lay in layers]
            vals = [np.nan if v is None else float(v) for v in vals]  # None: not finite in the JSON
            bars = ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=m, color=_COLORS.get(m))
            if metric == "rel_error":
                ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in vals], fontsize=6, rotation=90,
                             padding=2)
        ax.set_xticks(x, layers, rotation=30, ha="right")
    ax1.set_ylim(0, 1.15 * np.nanmax([r["rel_error"] for r in rows]))  # linear: 0.30 and 0.33 stay apart
    ax1.set_ylabel("||F - F_hat||_F / ||F||_F  (0 = exact)")
    ax1.set_title("relative error against the exact block Fisher")
    ax1.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax3.set_yscale("log")
    inexact = [r["kl"] for r in rows if r["kl"] is not None and r["kl"] > 0 and r["rel_error"] > 1e-9]
    if inexact:  # the exact rows (biases, k = 1) have round-off KLs; they would stretch the axis to 1e-15
        ax3.set_ylim(bottom=min(inexact) / 3)
    ax3.set_ylabel("KL(N(0, F + lam I) || N(0, F_hat + lam I))")
    ax3.set_title("KL against the exact block Fisher (damped)")
    big = max(spectra, key=lambda nm: len(spectra[nm]["exact"]))
    for m, lam in spectra[big].items():
        lam = np.maximum(np.asarray(lam), 1e-16)
        ax2.plot(np.arange(1, len(lam) + 1), lam, label=m, color=_COLORS.get(m), lw=2.5 if m == "exact" else 1.2,
                 zorder=3 if m == "exact" else 2)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("eigenvalue index")
    ax2.set_ylabel("eigenvalue")
    ax2.set_title(f"spectra, {big}")
    ax2.legend(fontsize=7, ncol=2)
    return _save(fig, path, title)


_OPT_COLORS = {"tnt": "#1f77b4", "tnt-ef": "#17becf", "sgd": "#ff7f0e", "adam": "#2ca02c", "kfac": "#d62728",
               "shampoo": "#9467bd", "kl-shampoo": "#e377c2", "soap": "#bcbd22"}


def _band(values: np.ndarray, level: float = 0.95):
    """Mean and Student-t interval over axis 0 (seeds); the band is empty with one seed."""
    from scipy import stats  # noqa: PLC0415

    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def plot_training(results: dict, path: str | Path, title: str = "") -> Path:
    """The chosen configuration per optimizer, mean and 95% band over the report seeds (diverged seeds left out).

    Left: training loss minus the best training loss any run reached, on a log scale (readable over
    a narrow loss range), against integer epochs; the band is the t-interval of its logarithm (a
    geometric mean and interval, so that it stays positive). Middle: the same against mean wall time; the axis
    is cut at 1.3 times the second-slowest optimizer's time when one optimizer stretches it, and the
    cut is marked. Right (classifiers): test accuracy against epochs.
    """
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    by: dict = {}
    for r in results["runs"]:
        if not r["diverged"] and r["history"]:
            by.setdefault(r["optimizer"], []).append(r)
    classifier = any(r["history"][-1]["test_accuracy"] is not None for rs in by.values() for r in rs)
    best = min((h["train_loss"] for rs in by.values() for r in rs for h in r["history"]), default=0.0)
    fig, axes = plt.subplots(1, 3 if classifier else 2, figsize=(18 if classifier else 13, 4.8))
    ax1, ax2 = axes[0], axes[1]
    t_end = {}
    gaps = []
    for o, rs in by.items():
        n_ep = min(len(r["history"]) for r in rs)
        ep = np.arange(1, n_ep + 1)
        loss = np.array([[h["train_loss"] for h in r["history"][:n_ep]] for r in rs]) - best
        gaps.append((o, rs, n_ep, ep, loss))
    pos = np.concatenate([g[4].ravel() for g in gaps]) if gaps else np.zeros(0)
    pos = pos[pos > 0]
    clip = pos.min() / 2 if pos.size else 1e-12
    for o, rs, n_ep, ep, loss in gaps:
        wt = np.array([[h["wall_time"] for h in r["history"][:n_ep]] for r in rs]).mean(axis=0)
        # the band is taken on log(loss - best): a geometric mean and interval, positive on the log axis
        mean, lo, hi = (np.exp(v) for v in _band(np.log(np.maximum(loss, clip))))
        d = results.get("summary", {}).get(o, {}).get("diverged", 0)
        label = f"{o} (lr={rs[0]['learning_rate']:g}" + (f", damping={rs[0]['opt_kwargs']['damping']:g}" if "damping" in rs[0]["opt_kwargs"] else "") + \
            (f"; {d} seeds diverged" if d else "") + ")"
        c = _OPT_COLORS.get(o)
        for ax, x in ((ax1, ep), (ax2, wt)):
            ax.plot(x, mean, color=c, label=label, lw=1.5)
            ax.fill_between(x, lo, hi, color=c, alpha=0.2, lw=0)
        t_end[o] = wt[-1]
        if classifier:
            am, alo, ahi = _band(np.array([[h["test_accuracy"] for h in r["history"][:n_ep]] for r in rs]))
            axes[2].plot(ep, am, color=c, label=label, lw=1.5)
            axes[2].fill_between(ep, alo, ahi, color=c, alpha=0.2, lw=0)
    for ax in (ax1, ax2):
        ax.set_yscale("log")
        ax.set_ylim(bottom=clip)
        ax.set_ylabel(f"training loss minus the best reached ({best:.4g})")
        ax.grid(alpha=0.3, which="both")
    ax1.set_xlabel("epoch")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.legend(fontsize=7)
    ax2.set_xlabel("wall time (s), mean over seeds")
    times = sorted(t_end.values())
    if len(times) >= 2 and times[-1] > 2 * times[-2]:
        cut = 1.3 * times[-2]
        ax2.set_xlim(0, cut)
        slow = max(t_end, key=t_end.get)
        ax2.annotate(f"axis cut: {slow} runs to {times[-1]:.1f} s", xy=(0.98, 0.97), xycoords="axes fraction",
                     ha="right", va="top", fontsize=8, bbox={"fc": "white", "ec": "grey"})
    if classifier:
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("test accuracy")
        axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[2].grid(alpha=0.3)
        axes[2].legend(fontsize=7, loc="lower right")
    return _save(fig, path, title)


def _curves(rs: list[dict], key: str, best: float, clip: float, n_grid: int = 200):
    """Each run's training-loss curve (from its initial loss at 0) on a common ``key`` grid up to the shortest run's end.

    Returns ``(grid, log_gap)`` with ``log_gap`` of shape ``(seeds, n_grid)``: ``log(loss - best)`` linearly
    interpolated between the logged points (clipped below at ``clip``).
    """
    xs, ys = [], []
    for r in rs:
        x = np.array([0.0] + [float(h[key]) for h in r["history"]])
        y = np.array([r["initial_train_loss"]] + [h["train_loss"] for h in r["history"]])
        xs.append(x)
        ys.append(np.log(np.maximum(y - best, clip)))
    end = min(x[-1] for x in xs)
    grid = np.linspace(0.0, end, n_grid)
    return grid, np.array([np.interp(grid, x, y) for x, y in zip(xs, ys)])


def plot_budget(results: dict, path: str | Path, title: str = "") -> Path:
    """The process-time protocol: training loss against epochs (left) and process time (right), mean and 95% band.

    One curve per optimizer (its chosen configuration), over the report seeds that did not diverge.
    Each run's curve starts at its initial training loss (epoch 0, time 0), has a point after every
    epoch and one where its process-time budget ran out (a partial epoch); it is interpolated
    linearly in ``log(loss - best)`` on a common grid up to the shortest of the optimizer's runs, and
    the band is the Student-t interval of that logarithm over seeds (a geometric mean and interval,
    positive on the log axis). ``best`` is the lowest training loss any run logged. The dotted
    vertical line on the right marks the budget.
    """
    by: dict = {}
    for r in results["runs"]:
        if not r["diverged"] and r["history"]:
            by.setdefault(r["optimizer"], []).append(r)
    best = min((h["train_loss"] for rs in by.values() for r in rs for h in r["history"]), default=0.0)
    gaps = np.array([h["train_loss"] - best for rs in by.values() for r in rs for h in r["history"]])
    gaps = gaps[gaps > 0]
    clip = gaps.min() / 2 if gaps.size else 1e-12
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for o, rs in by.items():
        c = _OPT_COLORS.get(o)
        d = results.get("summary", {}).get(o, {}).get("diverged", 0)
        kw = rs[0]["opt_kwargs"]
        label = f"{o} (lr={rs[0]['learning_rate']:g}" + (f", damping={kw['damping']:g}" if "damping" in kw else "") + \
            (f"; {d} seeds diverged" if d else "") + ")"
        for ax, key in ((ax1, "epoch"), (ax2, "process_time")):
            grid, logs = _curves(rs, key, best, clip)
            mean, lo, hi = (np.exp(v) for v in _band(logs))
            ax.plot(grid, mean, color=c, label=label, lw=1.5)
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, lw=0)
    budget = results.get("config", {}).get("budget_seconds")
    if budget:
        ax2.axvline(budget, color="grey", ls=":", lw=1)
    for ax in (ax1, ax2):
        ax.set_yscale("log")
        ax.set_ylim(bottom=clip)
        ax.set_ylabel(f"training loss minus the best reached ({best:.4g})")
        ax.grid(alpha=0.3, which="both")
    ax1.set_xlabel("epoch")
    ax2.set_xlabel("process time (s) of training, one BLAS thread")
    ax1.legend(fontsize=7)
    return _save(fig, path, title)
