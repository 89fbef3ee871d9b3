"""Summaries of a comparison: per-optimizer means and intervals over the report seeds, the claims' verdicts, the table.

* :func:`summarize` — the ``target``, ``summary`` and ``claims`` sections of ``results.json``;
* :func:`results_table` — the Markdown table printed by ``tnt-ref compare`` and ``tnt-ref demo``.

Imports :mod:`~tnt_ref.training.stats` only; the protocol imports this module.
"""

from __future__ import annotations

import numpy as np

from .stats import mean_ci, verdict

__all__ = ["summarize", "results_table", "ACCURACY_MARGIN", "LOSS_MARGIN"]

#: Margins of the non-inferiority claims: test accuracy (absolute) and final training loss (relative).
ACCURACY_MARGIN = 0.01
LOSS_MARGIN = 0.05

def summarize(results: dict) -> dict:
    """Per-optimizer means and 95% intervals over the report seeds, and the claims' verdicts.

    Returns ``{"target": ..., "summary": {optimizer: ...}, "claims": [...]}`` (see ``docs/reproduction.md``).
    """
    by: dict = {}
    for r in results["runs"]:
        by.setdefault(r["optimizer"], []).append(r)
    ok = {o: [r for r in rs if not r["diverged"]] for o, rs in by.items()}
    fin = {o: {k: [r["history"][-1][k] for r in rs] for k in ("train_loss", "test_loss", "test_accuracy")}
           for o, rs in ok.items()}
    target = float(np.mean(fin["sgd"]["train_loss"])) if fin.get("sgd", {}).get("train_loss") else None
    summary = {}
    for o, rs in by.items():
        reach_ep, reach_s = [], []
        for r in ok[o]:
            h = next((h for h in r["history"] if target is not None and h["train_loss"] <= target), None)
            if h is not None:
                reach_ep.append(h["epoch"])
                reach_s.append(h["wall_time"])
        auto = all(v is None for v in fin[o]["test_accuracy"])
        summary[o] = {
            "learning_rate": rs[0]["learning_rate"], "opt_kwargs": rs[0]["opt_kwargs"],
            "seeds": len(rs), "diverged": len(rs) - len(ok[o]),
            "final_train_loss": mean_ci(fin[o]["train_loss"]), "final_test_loss": mean_ci(fin[o]["test_loss"]),
            "final_test_accuracy": None if auto else mean_ci(fin[o]["test_accuracy"]),
            "epochs_to_target": {**mean_ci(reach_ep), "reached": len(reach_ep), "of": len(rs)},
            "seconds_to_target": {**mean_ci(reach_s), "reached": len(reach_s), "of": len(rs)},
            "seconds_per_epoch": mean_ci([r["history"][-1]["wall_time"] / len(r["history"]) for r in ok[o]]),
        }
    claims = []

    def claim(number, text, a, b, metric, better, margin, relative=False):
        if a not in fin or b not in fin:
            return
        va, vb = fin[a][metric], fin[b][metric]
        m = margin * float(np.mean(vb)) if relative and vb else margin
        v = verdict(va, vb, better=better, margin=m)
        if by.get(a) and not ok.get(a):
            v["verdict"] = "does not hold"  # TNT diverged on every seed
        claims.append({"claim": number, "statement": text, "a": a, "b": b, "metric": metric, **v})

    for b in ("sgd", "adam"):
        claim(1, f"tnt reaches a lower final training loss than {b}", "tnt", b, "train_loss", "lower", 0.0)
    for b in ("kfac", "shampoo"):
        claim(1, f"tnt's final training loss is comparable to {b}'s (at most {LOSS_MARGIN:.0%} above)", "tnt", b,
              "train_loss", "lower", LOSS_MARGIN, relative=True)
    if results["problem"] != "autoencoder":
        for b in ("sgd", "adam"):
            claim(2, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below {b}'s", "tnt", b,
                  "test_accuracy", "higher", ACCURACY_MARGIN)
        claim(3, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below tnt-ef's", "tnt", "tnt-ef",
              "test_accuracy", "higher", ACCURACY_MARGIN)
    claim(3, f"tnt's final training loss is at most {LOSS_MARGIN:.0%} above tnt-ef's", "tnt", "tnt-ef", "train_loss",
          "lower", LOSS_MARGIN, relative=True)
    return {"target": {"what": "mean final training loss of sgd over the report seeds", "value": target},
            "summary": summary, "claims": claims}


def _ci(s: dict | None, fmt: str = ".4g") -> str:
    if s is None or s.get("mean") is None:
        return "–"
    if s["ci_low"] is None:
        return f"{s['mean']:{fmt}}"
    return f"{s['mean']:{fmt}} [{s['ci_low']:{fmt}}, {s['ci_high']:{fmt}}]"


def results_table(results: dict) -> str:
    """Markdown: per optimizer the chosen configuration (edge flags), means [95% CI] over the report seeds, and the verdicts."""
    cfg = results["config"]
    lines = [
        f"{results['problem']}: {cfg['epochs']} epochs; chosen on the validation split ({cfg['val_size']} training images, "
        f"by {cfg['select_by']}, mean over tuning seeds {cfg['tune_seeds']}); reported as mean [95% CI] over "
        f"{len(cfg['report_seeds'])} fresh seeds.",
        "",
        "| optimizer | learning rate | damping | tuning configs diverged | report seeds diverged | final train loss | "
        "final test loss | final test accuracy | epochs to SGD-m's final loss (reached) | seconds to it |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, t in results["tuning"].items():
        n_div = sum(c["score"] is None for c in t["configs"])
        s = results["summary"].get(o)
        if t["best"] is None or s is None:
            lines.append(f"| {o} | none (all diverged) | – | {n_div}/{len(t['configs'])} | – | – | – | – | – | – |")
            continue
        lr = f"{t['best']['learning_rate']:g}" + (" (edge)" if t["lr_at_edge"] else "")
        d = t["best"]["damping"]
        dmp = "–" if d is None else f"{d:g}" + (" (edge)" if t["damping_at_edge"] else "")
        e, sec = s["epochs_to_target"], s["seconds_to_target"]
        lines.append(
            f"| {o} | {lr} | {dmp} | {n_div}/{len(t['configs'])} | {s['diverged']}/{s['seeds']} | "
            f"{_ci(s['final_train_loss'])} | {_ci(s['final_test_loss'])} | {_ci(s['final_test_accuracy'], '.3f')} | "
            f"{_ci(e, '.3g')} ({e['reached']}/{e['of']}) | {_ci(sec, '.2g')} |")
    tg = results["target"]["value"]
    lines += ["", f"SGD-m's mean final training loss (the target): {'–' if tg is None else f'{tg:.4g}'}.", "",
              "| claim | statement | difference a - b [95% CI] | verdict |", "|---|---|---|---|"]
    for c in results["claims"]:
        lines.append(f"| {c['claim']} | {c['statement']} | {_ci(c['difference'])} | **{c['verdict']}** |")
    return "\n".join(lines) + "\n"
