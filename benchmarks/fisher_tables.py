"""The tables and findings of docs/fisher.md from the JSON that ``tnt-ref fisher`` writes (issue 26).

Usage::

    python benchmarks/fisher_tables.py docs/results/fisher_mlp.json docs/results/fisher_cnn.json ...
    python benchmarks/fisher_tables.py docs/results/fisher_compare-*.json --compare docs/results docs/results/shampoo-family

For every file: one table per metric (rows: methods; columns: weight layers), the closest estimator
per layer by the damped KL, by ``kl_proj`` and by the relative Frobenius error, and the share of
TNT's gap to the MLE that each estimator closes (below). With ``--compare DIR ...``, for the networks
of the ``compare`` study (``fisher_compare-<problem>.json``), the optimizers' closeness to the exact
Fisher (through the ladder row that matches each optimizer's statistics) beside their ranking in
``DIR/<problem>/results.json`` (several runs of the same protocol joined), with Spearman's rank correlation.

The gap to the MLE, in the ladder's damped KL: the share of TNT's gap closed by a method is
``(KL(tnt-exact) - KL(method)) / (KL(tnt-exact) - KL(mle))`` (1: as close as the MLE). The MLE's own
objective, ``kl_proj = KL(N(0, F + lam I) || N(0, F_hat))``, is minimized over Kronecker products by
the ``kl-shampoo`` row (the MLE of ``F + lam I``); the same share in it is printed for the layers where
TNT's estimate is not singular. Every undamped Kronecker estimate of a block with a null direction (an
input pixel that is always 0, a softmax output, a dead unit) is singular and its ``kl_proj`` infinite;
the table of ``kl_proj`` shows where.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from scipy import stats

METRICS = {"rel_error": "relative Frobenius error ||F - F_hat||_F / ||F||_F",
           "kl": "KL(N(0, F + lam I) || N(0, F_hat + lam I))",
           "kl_proj": "KL(N(0, F + lam I) || N(0, F_hat)) (the MLE's objective; empty: singular)",
           "cosine": "cosine of (F + lam I)^-1 g and (F_hat + lam I)^-1 g"}

#: The ladder row that matches the statistics each optimizer of ``compare`` uses (closest available).
OPTIMIZER_ROW = {"tnt": "tnt-batch-mean", "kfac": "kfac", "shampoo": "shampoo", "kl-shampoo": "kl-shampoo-batch-mean",
                 "soap": "soap", "adam": "diagonal"}


def _fmt(v, metric: str) -> str:
    if v is None:
        return "inf" if metric.startswith("kl") else "–"
    if metric == "cosine":
        return f"{v:.3f}"
    if metric == "rel_error":
        return f"{v:.3f}" if v >= 5e-4 else f"{v:.1e}"
    return f"{v:.4g}"


def _weights(rows):
    return [lay for lay in dict.fromkeys(r["layer"] for r in rows) if lay.endswith("weight")]


def _table(rows, metric: str, layers) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    val = {(r["layer"], r["method"]): r[metric] for r in rows}
    shape = {r["layer"]: "x".join(map(str, r["tensor_shape"])) for r in rows}
    better = max if metric == "cosine" else min
    best = {}
    for lay in layers:
        vs = [val[(lay, m)] for m in methods if val.get((lay, m)) is not None]
        best[lay] = better(vs) if vs else None
    out = [f"| method | {' | '.join(f'{lay} ({shape[lay]})' for lay in layers)} |",
           "|---|" + "---|" * len(layers)]
    for m in methods:
        cells = []
        for lay in layers:
            v = val.get((lay, m))
            c = _fmt(v, metric)
            cells.append(f"**{c}**" if v is not None and v == best[lay] else c)
        out.append(f"| {m} | {' | '.join(cells)} |")
    return "\n".join(out)


def _gap_share(rows, layers, metric: str = "kl", ref: str = "mle") -> str:
    """Share of TNT's gap to the MLE that each method closes, in ``metric``: ``(m(tnt) - m(x)) / (m(tnt) - m(ref))``."""
    val = {(r["layer"], r["method"]): r[metric] for r in rows}
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m not in ("tnt-exact", ref)]
    out = [f"| method | {' | '.join(layers)} |", "|---|" + "---|" * len(layers)]
    for m in methods:
        cells = []
        for lay in layers:
            mle, tnt, x = val.get((lay, ref)), val.get((lay, "tnt-exact")), val.get((lay, m))
            if mle is None or tnt is None or tnt == mle:
                cells.append("–")
            elif x is None:
                cells.append("singular")
            else:
                cells.append(f"{(tnt - x) / (tnt - mle):+.2f}")
        out.append(f"| {m} | {' | '.join(cells)} |")
    return "\n".join(out)


def kl_proj_of(rows, layer: str, method: str):
    return next((r["kl_proj"] for r in rows if r["layer"] == layer and r["method"] == method), None)


def _closest(rows, layers) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    val = {(r["layer"], r["method"], k): r[k] for r in rows for k in METRICS}
    out = ["| layer | closest by KL | closest by kl_proj | closest by Frobenius | best cosine |", "|---|---|---|---|---|"]
    for lay in layers:
        cells = []
        for metric, better in (("kl", min), ("kl_proj", min), ("rel_error", min), ("cosine", max)):
            cand = [(val[(lay, m, metric)], m) for m in methods if val.get((lay, m, metric)) is not None]
            if not cand:
                cells.append("–")
                continue
            v, m = better(cand)
            cells.append(f"{m} ({_fmt(v, metric)})")
        out.append(f"| {lay} | {' | '.join(cells)} |")
    return "\n".join(out)


def fisher_report(path: Path) -> str:
    res = json.loads(path.read_text())
    rows, cfg = res["rows"], res["config"]
    layers = _weights(rows)
    parts = [f"### {cfg['model']} (n = {cfg['n']}, damping {cfg['damping']:g}, exact path {cfg['exact']})", ""]
    for metric, text in METRICS.items():
        parts += [f"{text}:", "", _table(rows, metric, layers), ""]
    parts += ["Closest estimator per weight layer:", "", _closest(rows, layers), ""]
    kl = {(r["layer"], r["method"]): r["kl"] for r in rows}
    sign = ", ".join(f"{lay}: MLE {kl[(lay, 'mle')]:.4g} vs TNT {kl[(lay, 'tnt-exact')]:.4g}" for lay in layers)
    parts += [f"Share of TNT's gap to the MLE closed, in the damped KL: (KL(tnt) - KL(x)) / (KL(tnt) - KL(mle)); "
              f"1: as close as the MLE, 0: as TNT; when the MLE is farther than TNT ({sign}) the gap is negative and "
              "a positive share means farther from F than TNT.", "", _gap_share(rows, layers), ""]
    finite = [lay for lay in layers if kl_proj_of(rows, lay, "tnt-exact") is not None]
    if finite:
        parts += ["Share of TNT's gap to the MLE closed in the MLE's own objective, kl_proj (its minimum over Kronecker "
                  "products is the kl-shampoo row), on the layers where TNT's estimate is not singular:", "",
                  _gap_share(rows, finite, "kl_proj", "kl-shampoo"), ""]
    biases = [r for r in rows if not r["layer"].endswith("weight")]
    if biases:
        worst = {}
        for r in biases:
            worst[r["method"]] = max(worst.get(r["method"], 0.0), r["rel_error"])
        parts += ["Biases (k = 1: a Kronecker product of one factor is any matrix): largest relative error per method: "
                  + ", ".join(f"{m} {_fmt(v, 'rel_error')}" for m, v in worst.items()), ""]
    return "\n".join(parts)


def _summaries(results_dirs: list[Path], problem: str) -> dict:
    """The ``summary`` of ``DIR/<problem>/results.json`` for every folder, joined (a later folder adds the optimizers
    an earlier one lacks); SGD-m, the target of both, must agree between them (the protocol is deterministic)."""
    summ: dict = {}
    for d in results_dirs:
        s = json.loads((d / problem / "results.json").read_text())["summary"]
        if "sgd" in summ and "sgd" in s:
            a, b = summ["sgd"]["final_train_loss"]["mean"], s["sgd"]["final_train_loss"]["mean"]
            if abs(a - b) > 1e-8 * abs(a):
                raise ValueError(f"{problem}: SGD-m's final loss differs between the runs ({a} vs {b}): not one protocol")
        for o, v in s.items():
            summ.setdefault(o, v)
    return summ


def compare_report(results_dirs: list[Path], fisher_paths: list[Path]) -> str:
    parts = []
    for path in fisher_paths:
        res = json.loads(path.read_text())
        model = res["config"]["model"]
        if not model.startswith("compare-"):
            continue
        problem = model.removeprefix("compare-")
        layers = _weights(res["rows"])
        val = {(r["layer"], r["method"]): r for r in res["rows"]}
        summ = _summaries(results_dirs, problem)
        opts = [o for o in OPTIMIZER_ROW if o in summ]
        lines = [f"### {problem}: closeness to the exact Fisher against the compare ranking", "",
                 "| optimizer | ladder row | mean rank by KL over the weight layers | geometric mean KL | "
                 "mean relative error | final train loss (rank) | epochs to SGD-m's loss |",
                 "|---|---|---|---|---|---|---|"]
        kl_rank: dict = {o: [] for o in opts}
        for lay in layers:
            order = sorted(opts, key=lambda o: val[(lay, OPTIMIZER_ROW[o])]["kl"])
            for i, o in enumerate(order):
                kl_rank[o].append(i + 1)
        loss = {o: summ[o]["final_train_loss"]["mean"] for o in opts}
        loss_rank = {o: i + 1 for i, o in enumerate(sorted(opts, key=lambda o: loss[o]))}
        closeness = {o: sum(kl_rank[o]) / len(layers) for o in opts}
        for o in sorted(opts, key=lambda o: closeness[o]):
            kls = [val[(lay, OPTIMIZER_ROW[o])]["kl"] for lay in layers]
            gm = math.exp(sum(math.log(max(v, 1e-300)) for v in kls) / len(kls))
            rel = sum(val[(lay, OPTIMIZER_ROW[o])]["rel_error"] for lay in layers) / len(layers)
            e = summ[o]["epochs_to_target"]
            ep = "–" if e.get("mean") is None else f"{e['mean']:.3g} ({e['reached']}/{e['of']})"
            lines.append(f"| {o} | {OPTIMIZER_ROW[o]} | {closeness[o]:.2f} | {gm:.4g} | {rel:.3f} | "
                         f"{loss[o]:.4g} ({loss_rank[o]}) | {ep} |")
        rho, p = stats.spearmanr([closeness[o] for o in opts], [loss[o] for o in opts])
        lines += ["", f"Spearman's rank correlation of closeness (mean KL rank) and final training loss over "
                  f"{len(opts)} optimizers: rho = {rho:.2f} (p = {p:.2f}).", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="fisher_<model>.json files written by tnt-ref fisher")
    p.add_argument("--compare", type=Path, nargs="+", default=None, metavar="DIR",
                   help="folders with <problem>/results.json of tnt-ref compare runs (for the compare-* networks; "
                        "several runs of the same protocol are joined)")
    args = p.parse_args(argv)
    for f in args.files:
        print(fisher_report(f))
    if args.compare is not None:
        print(compare_report(args.compare, args.files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
