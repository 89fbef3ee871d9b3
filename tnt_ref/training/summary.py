"""Summaries of a comparison: per-optimizer centers and intervals over the report seeds, the claims' verdicts, the table.

* :func:`summarize` — the ``target``, ``summary`` and ``claims`` sections of ``results.json``;
* :func:`results_table` — the Markdown table printed by ``tnt-ref compare`` and ``tnt-ref demo``.

Imports :mod:`~tnt_ref.training.stats` (and the digits' test-set size from :mod:`tnt_ref.data`); the protocol
imports this module.
"""

from __future__ import annotations

from .stats import METHODS, mean_ci, verdict

__all__ = ["summarize", "results_table", "ACCURACY_MARGIN", "LOSS_MARGIN", "SCALES"]

#: Margins of the non-inferiority claims: test accuracy (absolute) and final training loss (relative).
ACCURACY_MARGIN = 0.01
LOSS_MARGIN = 0.05

#: The scale of each summarized quantity (:mod:`~tnt_ref.training.stats`): positive ones on the log scale. The
#: second group is summarized under a process-time budget only.
SCALES = {"final_train_loss": "log", "final_test_loss": "log", "final_test_accuracy": "logit",
          "epochs_to_target": "log", "seconds_to_target": "log", "seconds_per_epoch": "log",
          "best_train_loss": "log", "steps": "log", "epochs": "log", "process_seconds_per_step": "log",
          "process_seconds_per_epoch": "log", "process_seconds_per_step_after_epoch_1": "log",
          "warm_start_process_time": "log"}


def _n_test(results: dict) -> int:
    """Test images behind each accuracy (the logit interval's ``trials``): from the runs' config, else the digits'."""
    for r in results["runs"]:
        n = (r.get("config") or {}).get("n_test")
        if n:
            return int(n)
    from ..data import N_TEST  # noqa: PLC0415  (records written before runs kept n_test: the digits split)

    return N_TEST


def _edge(results: dict, o: str) -> str:
    """What of ``o``'s tuning stopped at the edge of its grid ("learning rate", "damping"), or ``""``."""
    t = results.get("tuning", {}).get(o) or {}
    what = [w for w, k in (("learning rate", "lr_at_edge"), ("damping", "damping_at_edge")) if t.get(k)]
    return " and ".join(what)


def _full_epoch_seconds(history: list) -> float | None:
    """Process seconds per full epoch: the process time at the last whole epoch over the epochs done."""
    full = [h for h in history if float(h["epoch"]).is_integer()]
    return full[-1]["process_time"] / full[-1]["epoch"] if full else None


def _steady_step_seconds(history: list) -> float | None:
    """Process seconds per step after the first epoch (past TNT's, KFAC's and Shampoo's first ``T2`` steps,
    which refresh their inverses every step): between the first and the last whole epoch."""
    full = [h for h in history if float(h["epoch"]).is_integer()]
    if len(full) < 2:
        return None
    return (full[-1]["process_time"] - full[0]["process_time"]) / (full[-1]["step"] - full[0]["step"])


def summarize(results: dict) -> dict:
    """Per-optimizer centers and 95% intervals over the report seeds, and the claims' verdicts.

    Intervals by :func:`~tnt_ref.training.stats.mean_ci` on the scale of each quantity (:data:`SCALES`):
    losses, seconds, steps and epochs on the log scale (geometric means), accuracies on the logit
    scale; the verdicts compare on the same scales (:func:`~tnt_ref.training.stats.verdict`). A claim
    against (or for) an optimizer whose tuning ended at the edge of its grid carries a ``caveat``.

    With a process-time budget (``config["budget_seconds"]``, the paper's protocol) a run's score is
    its best training loss within the budget: the target, the claims and the table use it, times
    are process times, and the cost per step and per epoch (process seconds, each run's own
    measurement) and the warm start's process time (``None`` for optimizers without one) are
    summarized too, on the same scales.

    Returns ``{"target": ..., "summary": {optimizer: ...}, "claims": [...], "intervals": ...}`` (see ``docs/reproduction.md``).
    """
    budget = results["config"].get("budget_seconds")
    score, clock = ("best_train_loss", "process_time") if budget else ("train_loss", "wall_time")
    by: dict = {}
    for r in results["runs"]:
        by.setdefault(r["optimizer"], []).append(r)
    ok = {o: [r for r in rs if not r["diverged"] and r["history"]] for o, rs in by.items()}
    fin = {o: {k: [r["history"][-1][k] for r in rs] for k in ("train_loss", "test_loss", "test_accuracy")}
           for o, rs in ok.items()}
    for o, rs in ok.items():
        fin[o]["best_train_loss"] = [min(h["train_loss"] for h in r["history"]) for r in rs]
    trials = _n_test(results)
    sgd = fin.get("sgd", {}).get(score)
    target = mean_ci(sgd, scale="log")["mean"] if sgd else None
    summary = {}
    for o, rs in by.items():
        reach_ep, reach_s = [], []
        for r in ok[o]:
            h = next((h for h in r["history"] if target is not None and h["train_loss"] <= target), None)
            if h is not None:
                reach_ep.append(h["epoch"])
                reach_s.append(h[clock])
        auto = all(v is None for v in fin[o]["test_accuracy"])
        summary[o] = {
            "learning_rate": rs[0]["learning_rate"], "opt_kwargs": rs[0]["opt_kwargs"],
            "seeds": len(rs), "diverged": len(rs) - len(ok[o]),
            "final_train_loss": mean_ci(fin[o]["train_loss"], scale=SCALES["final_train_loss"]),
            "final_test_loss": mean_ci(fin[o]["test_loss"], scale=SCALES["final_test_loss"]),
            "final_test_accuracy": None if auto else mean_ci(fin[o]["test_accuracy"], scale="logit", trials=trials),
            "epochs_to_target": {**mean_ci(reach_ep, scale="log"), "reached": len(reach_ep), "of": len(rs)},
            "seconds_to_target": {**mean_ci(reach_s, scale="log"), "reached": len(reach_s), "of": len(rs)},
            "seconds_per_epoch": mean_ci([r["history"][-1]["wall_time"] / len(r["history"]) for r in ok[o]], scale="log"),
        }
        if budget:
            per_epoch = [_full_epoch_seconds(r["history"]) for r in ok[o]]
            steady = [_steady_step_seconds(r["history"]) for r in ok[o]]
            warm = [r["config"].get("warm_start_process_time", 0.0) for r in ok[o]]
            summary[o].update({
                "best_train_loss": mean_ci(fin[o]["best_train_loss"], scale="log"),
                "steps": mean_ci([r["history"][-1]["step"] for r in ok[o]], scale="log"),
                "epochs": mean_ci([r["history"][-1]["epoch"] for r in ok[o]], scale="log"),
                "process_seconds_per_step": mean_ci([r["history"][-1]["process_time"] / r["history"][-1]["step"]
                                                     for r in ok[o]], scale="log"),
                "process_seconds_per_epoch": {**mean_ci([v for v in per_epoch if v is not None], scale="log"),
                                              "runs_with_a_full_epoch": sum(v is not None for v in per_epoch)},
                "process_seconds_per_step_after_epoch_1": {**mean_ci([v for v in steady if v is not None], scale="log"),
                                                           "runs_with_two_full_epochs": sum(v is not None for v in steady)},
                # only TNT and TNT-EF warm start (the others record 0): no warm start, no interval
                "warm_start_process_time": mean_ci(warm, scale="log") if any(warm) else None,
            })
    claims = []

    def claim(number, text, a, b, metric, better, margin):
        if a not in fin or b not in fin:
            return
        scale = "logit" if metric == "test_accuracy" else "log"
        v = verdict(fin[a][metric], fin[b][metric], better=better, margin=margin, scale=scale, trials=trials)
        if by.get(a) and not ok.get(a):
            v["verdict"] = "does not hold"  # TNT diverged on every seed
        caveat = "; ".join(f"{o}'s {e} at the edge of its grid (not tuned)" for o in (a, b) if (e := _edge(results, o)))
        claims.append({"claim": number, "statement": text, "a": a, "b": b, "metric": metric, **v,
                       "caveat": caveat or None})

    what = f"best training loss within {budget:g} s" if budget else "final training loss"
    for b in ("sgd", "adam"):
        claim(1, f"tnt reaches a lower {what} than {b}", "tnt", b, score, "lower", 0.0)
    for b in ("kfac", "shampoo"):
        claim(1, f"tnt's {what} is comparable to {b}'s (at most {LOSS_MARGIN:.0%} above)", "tnt", b,
              score, "lower", LOSS_MARGIN)
    if not results["problem"].endswith("autoencoder"):
        for b in ("sgd", "adam"):
            claim(2, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below {b}'s", "tnt", b,
                  "test_accuracy", "higher", ACCURACY_MARGIN)
        claim(3, f"tnt's test accuracy is at most {ACCURACY_MARGIN * 100:g} point below tnt-ef's", "tnt", "tnt-ef",
              "test_accuracy", "higher", ACCURACY_MARGIN)
    claim(3, f"tnt's {what} is at most {LOSS_MARGIN:.0%} above tnt-ef's", "tnt", "tnt-ef", score,
          "lower", LOSS_MARGIN)
    return {"target": {"what": f"geometric mean {what} of sgd over the report seeds", "value": target},
            "summary": summary, "claims": claims,
            "intervals": {"losses, seconds, steps, epochs": METHODS["log"], "accuracies": METHODS["logit"] +
                          f" (an accuracy of 0 or 1 read as 0.5 / {trials} from its end)",
                          "claims on losses": "ratio a / b of geometric means, Welch 95% interval on the log scale",
                          "claims on accuracies": "difference a - b, Welch 95% interval on the logit scale mapped at b's center"}}


def _num(x: float, fmt: str) -> str:
    """``x`` in ``fmt``, without the bare trailing point that ``#`` formats leave (``12.`` is ``12``)."""
    text = f"{x:{fmt}}"
    return text[:-1] if text.endswith(".") else text


def _diverged_configs(t: dict) -> str:
    """``"k/n"``: the tuning configurations of one optimizer that diverged on a tuning seed."""
    return f"{sum(c['score'] is None for c in t['configs'])}/{len(t['configs'])}"


def _chosen(t: dict) -> tuple[str, str]:
    """The chosen learning rate and damping as table cells, each flagged "(edge)" when it was not tuned."""
    lr = f"{t['best']['learning_rate']:.3g}" + (" (edge)" if t["lr_at_edge"] else "")
    d = t["best"]["damping"]
    return lr, "–" if d is None else f"{d:.3g}" + (" (edge)" if t["damping_at_edge"] else "")


def _ci(s: dict | None, fmt: str = "#.4g") -> str:
    if s is None or s.get("mean") is None:
        return "–"
    if s["ci_low"] is None:
        return _num(s["mean"], fmt)
    return f"{_num(s['mean'], fmt)} [{_num(s['ci_low'], fmt)}, {_num(s['ci_high'], fmt)}]"


def _comparison(d: dict) -> str:
    """A claim's comparison in the quantity's terms: ``ratio 0.95 [0.93, 0.97]`` or ``+0.50 points [-0.10, +1.10]``."""
    if d.get("mean") is None:
        return "–"
    if d.get("kind") == "ratio":
        return "ratio " + _ci(d, "#.4g")
    pts = {k: None if d[k] is None else 100 * d[k] for k in ("mean", "ci_low", "ci_high")}
    if pts["ci_low"] is None:
        return f"{pts['mean']:+.2f} points"
    return f"{pts['mean']:+.2f} points [{pts['ci_low']:+.2f}, {pts['ci_high']:+.2f}]"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _methods_note(budget: bool = False) -> str:
    """The head's sentence naming the intervals' method and the edge flag."""
    what = "Losses, steps, epochs and seconds" if budget else "Losses, epochs and seconds"
    return (f"{what}: {METHODS['log']}; accuracies: {METHODS['logit']}. (edge): the best "
            "value was at an end of its grid (after any widening), so it is not tuned.")


def _budget_rows(results: dict) -> list:
    """The table's rows under a process-time budget: best training loss, cost per step and epoch, time to the target."""
    cfg = results["config"]
    lines = [
        f"{results['problem']}: {cfg['budget_seconds']:g} s of training process time per run (one BLAS thread; the warm "
        f"start and evaluations not counted); chosen on the validation split ({cfg['val_size']} training images, "
        f"by {cfg['select_by']}, mean over tuning seeds {cfg['tune_seeds']}); reported over "
        f"{_plural(len(cfg['report_seeds']), 'fresh seed')}. {_methods_note(budget=True)}",
        "",
        "| optimizer | learning rate | damping | tuning configs diverged | report seeds diverged | best train loss | "
        "final test loss | steps in budget | epochs in budget | process s / step | process s / step after epoch 1 | "
        "process s / epoch | "
        "warm start (process s) | epochs to SGD-m's best (reached) | process s to it |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, t in results["tuning"].items():
        n_div = _diverged_configs(t)
        s = results["summary"].get(o)
        if t["best"] is None or s is None or "steps" not in s:
            lines.append(f"| {o} | none (all diverged) | – | {n_div} |" + " – |" * 11)
            continue
        lr, dmp = _chosen(t)
        e, sec = s["epochs_to_target"], s["seconds_to_target"]
        lines.append(
            f"| {o} | {lr} | {dmp} | {n_div} | {s['diverged']}/{s['seeds']} | "
            f"{_ci(s['best_train_loss'])} | {_ci(s['final_test_loss'])} | {_ci(s['steps'], '.0f')} | {_ci(s['epochs'], '.2f')} | "
            f"{_ci(s['process_seconds_per_step'], '#.3g')} | {_ci(s['process_seconds_per_step_after_epoch_1'], '#.3g')} | "
            f"{_ci(s['process_seconds_per_epoch'], '#.3g')} | "
            f"{_ci(s['warm_start_process_time'], '#.2g')} | {_ci(e, '#.3g')} ({e['reached']}/{e['of']}) | {_ci(sec, '#.3g')} |")
    return lines


def results_table(results: dict) -> str:
    """Markdown: per optimizer the chosen configuration (edge flags), centers [95% CI] over the report seeds, and the verdicts.

    The head names the intervals' method (:data:`~tnt_ref.training.stats.METHODS`); a verdict that
    involves an optimizer tuned to the edge of its grid says so beside the verdict. Under a
    process-time budget the rows are the budget's (best training loss within it, steps, epochs and
    process seconds per step and epoch), on the same scales.
    """
    cfg = results["config"]
    if cfg.get("budget_seconds"):
        return _finish_table(results, _budget_rows(results), "best training loss within the budget")
    n_rep = len(cfg["report_seeds"])
    lines = [
        f"{results['problem']}: {_plural(cfg['epochs'], 'epoch')} per run; chosen on the validation split "
        f"({cfg['val_size']} training images, by {cfg['select_by']}, mean over tuning seeds {cfg['tune_seeds']}); reported "
        f"over {_plural(n_rep, 'fresh seed')}. {_methods_note()}",
        "",
        "| optimizer | learning rate | damping | tuning configs diverged | report seeds diverged | final train loss | "
        "final test loss | final test accuracy | epochs to SGD-m's final loss (reached) | seconds to it |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o, t in results["tuning"].items():
        n_div = _diverged_configs(t)
        s = results["summary"].get(o)
        if t["best"] is None or s is None:
            lines.append(f"| {o} | none (all diverged) | – | {n_div} | – | – | – | – | – | – |")
            continue
        lr, dmp = _chosen(t)
        e, sec = s["epochs_to_target"], s["seconds_to_target"]
        lines.append(
            f"| {o} | {lr} | {dmp} | {n_div} | {s['diverged']}/{s['seeds']} | "
            f"{_ci(s['final_train_loss'])} | {_ci(s['final_test_loss'])} | {_ci(s['final_test_accuracy'], '.3f')} | "
            f"{_ci(e, '#.3g')} ({e['reached']}/{e['of']}) | {_ci(sec, '#.2g')} |")
    return _finish_table(results, lines, "final training loss")


def _finish_table(results: dict, lines: list, what: str) -> str:
    tg = results["target"]["value"]
    lines += ["", f"SGD-m's geometric mean {what} (the target): {'–' if tg is None else f'{tg:.4g}'}.", "",
              "Claims: on losses the ratio a / b of geometric means with a Welch 95% interval on the log scale (a margin "
              "of 5% is a ratio of 1.05); on accuracies the difference a - b in points with a Welch 95% interval on the "
              "logit scale.", "",
              "| claim | statement | a vs b [95% CI] | verdict |", "|---|---|---|---|"]
    for c in results["claims"]:
        caveat = f" (caveat: {c['caveat']})" if c.get("caveat") else ""
        lines.append(f"| {c['claim']} | {c['statement']} | {_comparison(c['difference'])} | **{c['verdict']}**{caveat} |")
    return "\n".join(lines) + "\n"
