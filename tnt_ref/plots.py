"""Figures (matplotlib only here; the Agg backend, so no display is needed).

Every figure is drawn from the JSON its command writes, by one function, so that any figure can
be redrawn from its JSON by the current code (``python docs/redraw.py`` redraws the ones the docs
show; ``tests/test_docs_figures.py`` checks them):

* :func:`plot_training` — a comparison's ``results.json`` (``tnt-ref compare``, ``tnt-ref demo``);
* :func:`plot_budget` — a comparison's ``results.json`` under a process-time budget (``compare --budget-seconds``);
* :func:`plot_results` — either of the two, as the ``results.json`` says;
* :func:`plot_fisher` — a ``fisher_<model>.json`` (``tnt-ref fisher``), through :func:`plot_ladder`.

:func:`save_figure` writes a PNG atomically and stamps it with the drawing function's name, a
fingerprint of its code (:func:`code_fingerprint`) and one of the data it drew
(:func:`data_fingerprint`), so a figure older than its code or its data can be found.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import types
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_ladder", "plot_fisher", "plot_training", "plot_budget", "plot_results", "save_figure",
           "code_fingerprint", "data_fingerprint", "figure_stamp"]

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


# ----------------------------------------------------------------------------- provenance
def _canonical(x):
    """JSON-ready data with non-finite floats as strings (as the JSON files hold them) and tuples as lists."""
    if isinstance(x, dict):
        return {str(k): _canonical(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canonical(v) for v in x]
    if hasattr(x, "tolist"):
        return _canonical(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def data_fingerprint(data) -> str:
    """SHA-256 (first 16 hex digits) of ``data`` in canonical JSON (sorted keys; ``inf`` as ``"inf"``)."""
    text = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dependencies(fn: Callable, seen: dict) -> None:
    """``fn`` and every function or constant of its own module that it names, recursively (name -> source/repr)."""
    mod = inspect.getmodule(fn)
    key = f"{fn.__module__}.{fn.__qualname__}"
    if key in seen:
        return
    seen[key] = inspect.getsource(fn)
    code = fn.__code__
    names = set(code.co_names)
    stack = [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while stack:  # names used inside nested functions and comprehensions
        c = stack.pop()
        names |= set(c.co_names)
        stack += [k for k in c.co_consts if isinstance(k, types.CodeType)]
    for name in sorted(names):
        obj = getattr(mod, name, None)
        if isinstance(obj, types.FunctionType) and obj.__module__ == fn.__module__:
            _dependencies(obj, seen)
        elif isinstance(obj, (dict, tuple, list, str, int, float)) and not name.startswith("__"):
            seen[f"{fn.__module__}.{name}"] = repr(obj)


def code_fingerprint(fn: Callable) -> str:
    """SHA-256 (first 16 hex digits) of the source of ``fn`` and of the functions and constants of its module it uses.

    A change to the drawing code changes the fingerprint; a change elsewhere in the module does not.
    """
    seen: dict = {}
    _dependencies(fn, seen)
    text = "\n".join(f"{k}\n{v}" for k, v in sorted(seen.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def figure_stamp(path: str | Path) -> dict:
    """The provenance a figure was saved with: ``{"drawer", "code", "data"}`` (empty when it has none)."""
    from PIL import Image  # noqa: PLC0415  (Pillow comes with matplotlib)

    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}) or im.info)
    try:
        return json.loads(text.get("tnt-ref", "{}"))
    except ValueError:
        return {}


def save_figure(fig, path: str | Path, *, drawer: Callable, data, title: str = "") -> Path:
    """Title, layout, and an atomic save (a temporary file renamed over ``path``), stamped with provenance.

    The PNG's text chunk ``tnt-ref`` holds ``{"drawer": module.function, "code": code_fingerprint(drawer),
    "data": data_fingerprint(data)}`` (read it back with :func:`figure_stamp`).
    """
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"drawer": f"{drawer.__module__}.{drawer.__qualname__}", "code": code_fingerprint(drawer),
             "data": data_fingerprint(data)}
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110, metadata={"Software": "tnt-ref", "tnt-ref": json.dumps(stamp)})
    plt.close(fig)
    tmp.replace(path)
    return path


# ----------------------------------------------------------------------------- the approximation ladder
def _is_bias(layer: str, rows: list[dict]) -> bool:
    shape = next((r.get("shape") for r in rows if r["layer"] == layer), None)
    return layer.endswith(".bias") or (shape is not None and len(shape) == 1)


def plot_ladder(rows: list[dict], spectra: dict, path: str | Path, title: str = "", *, data=None,
                stamp_as: Callable | None = None) -> Path:
    """Left: relative Frobenius error per weight layer and method, on a linear axis (0 = exact, 1 = no better than 0).
    Middle: the damped KL ``KL(N(0, F + lam I) || N(0, F_hat + lam I))`` per weight layer and method, on a log
    axis that starts below the smallest inexact KL (a KL that is not finite, null in the JSON, is a gap).
    Right: the spectra of the exact block and its approximations for the largest weight block whose spectra are
    stored (left out when none are, as in a copy that dropped them).

    Biases are left out of every panel (their blocks are small and most methods are exact there: see the table).
    ``data`` is what the provenance stamp fingerprints (default: ``{"rows", "spectra"}``), ``stamp_as`` the
    drawing function it names (default: this one; :func:`plot_fisher` names itself).
    """
    weights = [lay for lay in dict.fromkeys(r["layer"] for r in rows) if not _is_bias(lay, rows)]
    layers = weights or list(dict.fromkeys(r["layer"] for r in rows))
    shown = [r for r in rows if r["layer"] in layers]
    methods = list(dict.fromkeys(r["method"] for r in shown))
    with_spectra = [lay for lay in layers if lay in (spectra or {}) and "exact" in spectra[lay]]
    wide = max(1.0, len(layers) * len(methods) / 80)
    ratios = [wide, wide, 1] if with_spectra else [wide, wide]
    fig, axes = plt.subplots(1, len(ratios), figsize=(max(20.0 if with_spectra else 14.0,
                                                          8.0 + 0.08 * len(layers) * len(methods)), 5.5),
                             gridspec_kw={"width_ratios": ratios})
    ax1, ax3 = axes[0], axes[1]
    width = 0.8 / len(methods)
    x = np.arange(len(layers))
    for ax, metric in ((ax1, "rel_error"), (ax3, "kl")):
        val = {(r["layer"], r["method"]): r.get(metric) for r in shown}
        for j, m in enumerate(methods):
            vals = [val.get((lay, m)) for lay in layers]
            vals = [np.nan if v is None or isinstance(v, str) else float(v) for v in vals]  # None: not finite in the JSON
            if metric == "kl":  # a KL is never negative: a round-off value of either sign is floored (off the axis)
                vals = [v if np.isnan(v) else max(v, 1e-16) for v in vals]
            bars = ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=m, color=_COLORS.get(m))
            if metric == "rel_error":
                ax.bar_label(bars, labels=[f"{v:.2f}" if np.isfinite(v) else "" for v in vals], fontsize=6, rotation=90,
                             padding=2)
        ax.set_xticks(x, layers, rotation=30, ha="right")
    top = np.nanmax([r["rel_error"] for r in shown])
    ax1.set_ylim(0, max(1.0, top) * 1.15)  # linear: 0.30 and 0.33 stay apart, and 1 (no better than zero) is on the axis
    ax1.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax1.set_ylabel("||F - F_hat||_F / ||F||_F  (0 = exact)")
    ax1.set_title("relative error against the exact block Fisher" + (" (weights; biases in the table)" if weights else ""))
    ax1.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax3.set_yscale("log")
    inexact = [float(r["kl"]) for r in shown if isinstance(r.get("kl"), (int, float)) and r["kl"] > 0
               and r["rel_error"] > 1e-9]
    if inexact:  # the exact rows have round-off KLs; they would stretch the axis to 1e-15
        ax3.set_ylim(bottom=min(inexact) / 3)
    ax3.set_ylabel("KL(N(0, F + lam I) || N(0, F_hat + lam I)), log axis")
    ax3.set_title("KL against the exact block Fisher (damped)")
    ax3.grid(alpha=0.3, axis="y", which="both")
    if with_spectra:
        ax2 = axes[2]
        big = max(with_spectra, key=lambda nm: math.prod(next(r["shape"] for r in rows if r["layer"] == nm)))
        D = math.prod(next(r["shape"] for r in rows if r["layer"] == big))
        for m, lam in spectra[big].items():
            lam = np.maximum(np.asarray(lam, dtype=float), 1e-16)
            ax2.plot(np.arange(1, len(lam) + 1), lam, label=m, color=_COLORS.get(m), lw=2.5 if m == "exact" else 1.2,
                     zorder=3 if m == "exact" else 2)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("eigenvalue index")
        ax2.set_ylabel("eigenvalue (floored at 1e-16)")
        n_exact = len(spectra[big]["exact"])
        ax2.set_title(f"spectra, {big} (D = {D}" + (f"; top {n_exact} shown)" if n_exact < D else ")"))
        ax2.legend(fontsize=7, ncol=2)
    return save_figure(fig, path, drawer=stamp_as or plot_ladder,
                       data={"rows": rows, "spectra": spectra} if data is None else data, title=title)


def plot_fisher(res: dict, path: str | Path) -> Path:
    """The figure of ``tnt-ref fisher`` from its JSON (``config``, ``rows``, ``spectra`` when stored)."""
    cfg = res.get("config", {})
    title = f"{cfg.get('model', '?')} on digits, n={cfg.get('n', '?')}: every Kronecker approximation against the exact block"
    return plot_ladder(res["rows"], res.get("spectra") or {}, path, title=title, data=res, stamp_as=plot_fisher)


# ----------------------------------------------------------------------------- a comparison's training curves
_OPT_COLORS = {"tnt": "#1f77b4", "tnt-ef": "#17becf", "sgd": "#ff7f0e", "adam": "#2ca02c", "kfac": "#d62728",
               "shampoo": "#9467bd", "kl-shampoo": "#e377c2", "soap": "#bcbd22"}


def _band(values: np.ndarray, scale: str, trials: int | None = None):
    """Center and 95% interval over axis 0 (seeds), per column, by :func:`tnt_ref.training.stats.mean_ci` on
    ``scale`` (the tables' intervals: "log" for losses, "logit" for accuracies); the band is empty with one seed."""
    from .training.stats import mean_ci  # noqa: PLC0415

    v = np.asarray(values, dtype=float)
    cols = [mean_ci(v[:, j], scale=scale, trials=trials) for j in range(v.shape[1])]
    c = np.array([r["mean"] for r in cols])
    lo = np.array([c[j] if r["ci_low"] is None else r["ci_low"] for j, r in enumerate(cols)])
    hi = np.array([c[j] if r["ci_high"] is None else r["ci_high"] for j, r in enumerate(cols)])
    return c, lo, hi


def _n_test(results: dict) -> int:
    """Test images behind each accuracy: from the runs' config, else the digits' test set (older records)."""
    from .data import N_TEST  # noqa: PLC0415

    return next((int(r["config"]["n_test"]) for r in results["runs"] if (r.get("config") or {}).get("n_test")), N_TEST)


def _on(results: dict) -> str:
    """The data a comparison ran on, for titles: the digits, or the data set its config names."""
    return ((results.get("config") or {}).get("data") or {}).get("name") or "digits"


def _seeds_title(results: dict, n_seeds: int) -> str:
    seeds = len(results.get("config", {}).get("report_seeds", [])) or n_seeds
    return f"geometric mean and 95% interval over {seeds} fresh seeds" if seeds > 1 else "one seed (no interval)"


def _dots(ax, values: dict, what: str, letter: str, n_seeds: int, when: str = "at the last epoch") -> None:
    """One point per optimizer with its 95% interval (``values[o] = _band(...)`` of one column), lowest first
    and marked; a log axis when the intervals span more than a factor of 10."""
    order = sorted(values, key=lambda o: float(values[o][0][0]))
    for i, o in enumerate(order):
        m, lo, hi = (float(v[0]) for v in values[o])
        ax.errorbar([m], [i], xerr=[[m - lo], [hi - m]], fmt="o", color=_OPT_COLORS.get(o), capsize=4)
    ax.set_yticks(range(len(order)), [o + ("  (lowest)" if i == 0 else "") for i, o in enumerate(order)])
    ax.invert_yaxis()
    if order:
        ax.axvline(float(values[order[0]][0][0]), color="black", ls="--", lw=0.8)
        ends = [float(values[o][k][0]) for o in order for k in (1, 2)]
        if max(ends) > 10 * min(ends):
            ax.set_xscale("log")
            what += ", log axis"
    ax.set_xlabel(f"{what} {when}: geometric mean" + (" and 95% interval" if n_seeds > 1 else ""))
    head = what.split(",")[0]
    ax.set_title(f"({letter}) final {head}" if when == "at the last epoch" else f"({letter}) {head} {when}", fontsize=10)
    ax.grid(alpha=0.3, axis="x")


def _label(o: str, rs: list[dict], results: dict) -> str:
    kw = rs[0]["opt_kwargs"]
    d = results.get("summary", {}).get(o, {}).get("diverged", 0)
    t = results.get("tuning", {}).get(o, {})
    edge = " (edge)" if t.get("lr_at_edge") else ""
    return (f"{o} (lr={rs[0]['learning_rate']:.3g}{edge}" + (f", damping={kw['damping']:.3g}" if "damping" in kw else "")
            + (f"; {d} seed{'s' * (d != 1)} diverged" if d else "") + ")")


def plot_training(results: dict, path: str | Path, title: str | None = None) -> Path:
    """The chosen configuration per optimizer over the report seeds that did not diverge, from ``results.json``.

    (a) Training loss against epochs and (b) against mean wall time: the geometric mean over seeds
    and its 95% band (Student t on the log scale, the tables' interval), raw losses on a log axis
    when they span more than a factor of 10 (linear otherwise); the dashed line marks the best
    final loss (the lowest geometric mean) and which optimizer reached it. The time axis is cut at
    1.3 times the second-slowest optimizer's time when one optimizer stretches it, and the cut is
    marked. (c) The final training loss per optimizer with its 95% interval, the best marked. (d)
    Classifiers: test accuracy against epochs (mean on the logit scale and its band, so the band
    never passes 1; the axis stops at 1); the autoencoder: the final test loss per optimizer.
    With one seed there are no bands, and the title says so.
    """
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    by: dict = {}
    for r in results["runs"]:
        if not r["diverged"] and r["history"]:
            by.setdefault(r["optimizer"], []).append(r)
    classifier = any(r["history"][-1]["test_accuracy"] is not None for rs in by.values() for r in rs)
    trials = _n_test(results)
    n_seeds = max((len(rs) for rs in by.values()), default=0)
    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    ax1, ax2, ax3, ax4 = axes.ravel()
    t_end, finals, test_finals, labels = {}, {}, {}, {}
    lo_all, hi_all = np.inf, 0.0
    for o, rs in by.items():
        n_ep = min(len(r["history"]) for r in rs)
        ep = np.arange(1, n_ep + 1)
        loss = np.array([[h["train_loss"] for h in r["history"][:n_ep]] for r in rs])
        wt = np.array([[h["wall_time"] for h in r["history"][:n_ep]] for r in rs]).mean(axis=0)
        mean, lo, hi = _band(loss, "log")
        labels[o] = _label(o, rs, results)
        c = _OPT_COLORS.get(o)
        for ax, x in ((ax1, ep), (ax2, wt)):
            ax.plot(x, mean, color=c, label=labels[o], lw=1.5)
            ax.fill_between(x, lo, hi, color=c, alpha=0.2, lw=0)
        lo_all, hi_all = min(lo_all, float(np.min(lo))), max(hi_all, float(np.max(hi)))
        t_end[o] = wt[-1]
        finals[o] = _band(loss[:, -1:], "log")
        test_finals[o] = _band(np.array([[r["history"][n_ep - 1]["test_loss"]] for r in rs]), "log")
        if classifier:
            acc = np.array([[h["test_accuracy"] for h in r["history"][:n_ep]] for r in rs])
            am, alo, ahi = _band(acc, "logit", trials)
            ax4.plot(ep, am, color=c, label=labels[o], lw=1.5)
            ax4.fill_between(ep, alo, ahi, color=c, alpha=0.2, lw=0)
    best = min(finals, key=lambda o: float(finals[o][0][0])) if finals else None
    log_axis = hi_all > 10 * lo_all if finals else False
    for ax in (ax1, ax2):
        if log_axis:
            ax.set_yscale("log")
        if best is not None:
            ax.axhline(float(finals[best][0][0]), color="black", ls="--", lw=0.8,
                       label=f"best final: {best}, {float(finals[best][0][0]):.4g}")
        ax.set_ylabel("training loss (geometric mean over seeds)" + (", log axis" if log_axis else ""))
        ax.grid(alpha=0.3, which="both")
    ax1.set_xlabel("epoch")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.legend(fontsize=7)
    ax1.set_title("(a) training loss against epochs", fontsize=10)
    ax2.set_xlabel("wall time (s), mean over seeds")
    ax2.set_title("(b) training loss against time", fontsize=10)
    times = sorted(t_end.values())
    if len(times) >= 2 and times[-1] > 2 * times[-2]:
        cut = 1.3 * times[-2]
        ax2.set_xlim(0, cut)
        slow = max(t_end, key=t_end.get)
        ax2.annotate(f"axis cut: {slow} runs to {times[-1]:.1f} s", xy=(0.98, 0.97), xycoords="axes fraction",
                     ha="right", va="top", fontsize=8, bbox={"fc": "white", "ec": "grey"})

    _dots(ax3, finals, "training loss", "c", n_seeds)
    if classifier:
        ax4.set_xlabel("epoch")
        ax4.set_ylabel("test accuracy (mean on the logit scale)")
        ax4.xaxis.set_major_locator(MaxNLocator(integer=True))
        lo4, _ = ax4.get_ylim()
        ax4.set_ylim(lo4, 1.0)  # an accuracy never passes 1
        ax4.grid(alpha=0.3)
        ax4.legend(fontsize=7, loc="lower right")
        ax4.set_title("(d) test accuracy against epochs", fontsize=10)
    else:
        _dots(ax4, test_finals, "test loss", "d", n_seeds)
    if title is None:
        title = (f"{results.get('problem', '?')} on {_on(results)}: the chosen configuration per optimizer; "
                 f"{_seeds_title(results, n_seeds)}")
    return save_figure(fig, path, drawer=plot_training, data=results, title=title)


def _curves(rs: list[dict], key: str, n_grid: int = 200):
    """Each run's training-loss curve (from its initial loss at 0) on a common ``key`` grid up to the shortest run's end.

    Returns ``(grid, loss)`` with ``loss`` of shape ``(seeds, n_grid)``: raw losses, interpolated linearly in
    ``log(loss)`` between the logged points (so the curve between two points stays between them and positive).
    """
    xs, ys = [], []
    for r in rs:
        xs.append(np.array([0.0] + [float(h[key]) for h in r["history"]]))
        ys.append(np.log(np.array([r["initial_train_loss"]] + [h["train_loss"] for h in r["history"]], dtype=float)))
    grid = np.linspace(0.0, min(x[-1] for x in xs), n_grid)
    return grid, np.exp(np.array([np.interp(grid, x, y) for x, y in zip(xs, ys)]))


def plot_budget(results: dict, path: str | Path, title: str | None = None) -> Path:
    """The process-time protocol from ``results.json``: the chosen configuration per optimizer over the report seeds
    that did not diverge.

    (a) Training loss against epochs and (b) against process time: each run's curve starts at its
    initial training loss (epoch 0, time 0), has a point after every epoch and one where its budget ran
    out (a partial epoch), and is interpolated in ``log(loss)`` on a common grid up to the shortest of
    the optimizer's runs; the curve is the geometric mean over seeds and the band its 95% interval
    (Student t on the log scale, the tables' interval), raw losses on a log axis when they span more
    than a factor of 10; the dashed line marks the lowest best-within-budget loss and which optimizer
    reached it, the dotted vertical line on (b) the budget. (c) The best training loss within the
    budget per optimizer (each run's score) with its 95% interval, the lowest marked.
    """
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    by: dict = {}
    for r in results["runs"]:
        if not r["diverged"] and r["history"]:
            by.setdefault(r["optimizer"], []).append(r)
    n_seeds = max((len(rs) for rs in by.values()), default=0)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(19, 5.2))
    best_in_budget = {}
    lo_all, hi_all = np.inf, 0.0
    for o, rs in by.items():
        c = _OPT_COLORS.get(o)
        label = _label(o, rs, results)
        for ax, key in ((ax1, "epoch"), (ax2, "process_time")):
            grid, loss = _curves(rs, key)
            mean, lo, hi = _band(loss, "log")
            ax.plot(grid, mean, color=c, label=label, lw=1.5)
            ax.fill_between(grid, lo, hi, color=c, alpha=0.2, lw=0)
            lo_all, hi_all = min(lo_all, float(np.min(lo))), max(hi_all, float(np.max(hi)))
        best_in_budget[o] = _band(np.array([[min(h["train_loss"] for h in r["history"])] for r in rs]), "log")
    best = min(best_in_budget, key=lambda o: float(best_in_budget[o][0][0])) if best_in_budget else None
    log_axis = hi_all > 10 * lo_all if best_in_budget else False
    budget = results.get("config", {}).get("budget_seconds")
    for ax in (ax1, ax2):
        if log_axis:
            ax.set_yscale("log")
        if best is not None:
            v = float(best_in_budget[best][0][0])
            ax.axhline(v, color="black", ls="--", lw=0.8, label=f"lowest best within the budget: {best}, {v:.4g}")
        ax.set_ylabel("training loss (geometric mean over seeds)" + (", log axis" if log_axis else ""))
        ax.grid(alpha=0.3, which="both")
    if budget:
        ax2.axvline(budget, color="grey", ls=":", lw=1, label=f"budget: {budget:g} s")
    ax1.set_xlabel("epoch")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.legend(fontsize=7)
    ax1.set_title("(a) training loss against epochs", fontsize=10)
    ax2.set_xlabel("process time (s) of training, one BLAS thread")
    ax2.set_title("(b) training loss against process time", fontsize=10)
    _dots(ax3, best_in_budget, "best training loss", "c", n_seeds, when="within the budget")
    if title is None:
        title = (f"{results.get('problem', '?')} on {_on(results)}: the chosen configuration per optimizer, "
                 + (f"{budget:g} s of process time per run; " if budget else "") + _seeds_title(results, n_seeds))
    return save_figure(fig, path, drawer=plot_budget, data=results, title=title)


def plot_results(results: dict, path: str | Path, title: str | None = None) -> Path:
    """A comparison's figure from its ``results.json``: :func:`plot_budget` under a process-time budget
    (``config["budget_seconds"]``), :func:`plot_training` otherwise (what ``compare`` draws as ``loss.png``)."""
    if (results.get("config") or {}).get("budget_seconds"):
        return plot_budget(results, path, title=title)
    return plot_training(results, path, title=title)
