"""Figures (matplotlib only here; the Agg backend, so no display is needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_ladder", "plot_training"]

_COLORS = {
    "tnt-exact": "#1f77b4",
    "tnt-per-example": "#6baed6",
    "tnt-batch-mean": "#c6dbef",
    "mle": "#2ca02c",
    "frobenius": "#98df8a",
    "kfac": "#d62728",
    "shampoo": "#9467bd",
    "diagonal": "#7f7f7f",
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
    """Left: relative Frobenius error per layer and method. Right: spectra of the exact block and its
    approximations for the layer with the largest block."""
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    err = {(r["layer"], r["method"]): r["rel_error"] for r in rows}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.8 / len(methods)
    x = np.arange(len(layers))
    for j, m in enumerate(methods):
        vals = [max(err.get((lay, m), np.nan), 1e-16) for lay in layers]
        ax1.bar(x + j * width - 0.4 + width / 2, vals, width, label=m, color=_COLORS.get(m))
    ax1.set_yscale("log")
    ax1.set_xticks(x, layers, rotation=30, ha="right")
    ax1.set_ylabel("||F - F_hat||_F / ||F||_F  (1e-16 = exact)")
    ax1.set_title("relative error against the exact block Fisher")
    ax1.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    big = max(spectra, key=lambda nm: len(spectra[nm]["exact"]))
    for m, lam in spectra[big].items():
        lam = np.maximum(np.asarray(lam), 1e-16)
        ax2.plot(np.arange(1, len(lam) + 1), lam, label=m, color=_COLORS.get(m), lw=2.5 if m == "exact" else 1.2)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("eigenvalue index")
    ax2.set_ylabel("eigenvalue")
    ax2.set_title(f"spectra, {big}")
    ax2.legend(fontsize=8, ncol=2)
    return _save(fig, path, title)


def plot_training(runs: list[dict], path: str | Path, title: str = "") -> Path:
    """Training loss against epochs and against wall time, best run per optimizer."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    for run in runs:
        if not run.get("best"):
            continue
        h = run["history"]
        ep = [r["epoch"] for r in h]
        loss = [r["train_loss"] for r in h]
        wt = [r["wall_time"] for r in h]
        label = f"{run['optimizer']} (lr={run['learning_rate']:g})"
        ax1.plot(ep, loss, marker=".", label=label)
        ax2.plot(wt, loss, marker=".", label=label)
    for ax, xl in ((ax1, "epoch"), (ax2, "wall time (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path, title)
