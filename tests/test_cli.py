"""The command line: outputs, files and error messages."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from tnt_ref.cli import build_parser, main


def test_estimators_command(capsys):
    assert main(["estimators", "--shape", "3,2", "--n", "20", "200"]) == 0
    out = capsys.readouterr().out
    assert "tnt" in out and "mle" in out and "frobenius" in out


def test_fisher_command_writes_json_and_figure(tmp_path, capsys):
    # the gram path: at n = 20 the exact blocks have rank N = 200 < D = 2048, where it is 20 times faster
    assert main(["fisher", "--model", "mlp", "--n", "20", "--exact", "gram", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "fisher_mlp.json").read_text())
    assert {r["method"] for r in res["rows"]} >= {"tnt-exact", "kfac", "mle", "frobenius", "shampoo", "diagonal",
                                                  "shampoo-exact", "shampoo2", "soap", "kl-shampoo", "kl-shampoo-batch-mean"}
    assert (tmp_path / "fisher_mlp.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "fc1.weight" in out
    # progress with a time estimate (plain lines off a terminal), from the warm-up to 100%
    assert "[mlp] fisher [  0%] warm-up" in out and re.search(r"\[mlp\] fisher \[100%\] .* elapsed, ~\d\d:\d\d left\)", out)


def test_every_flag_has_help_with_its_default_and_fixed_sets_are_choices():
    subs = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    conventions = {"--stat-scale", "--damping-scheme", "--conv-modes", "--ema", "--momentum-placement", "--bias",
                   "--inverse-schedule"}
    fixed = {"train": {"--problem", "--optimizer", "--backend", "--dtype", *conventions},
             "compare": {"--problem", "--optimizers", "--dtype", *conventions},
             "fisher": {"--model", "--exact", "--conv-modes"}}
    # issue 23's and 26's flags and values are among them
    sp = subs.choices
    flags = {n: {s: a for a in sp[n]._actions for s in a.option_strings} for n in ("train", "compare", "fisher")}
    for n in ("train", "compare"):
        assert {"--data", "--budget-seconds", "--b1", "--b2", "--eps", "--floor"} <= set(flags[n])
        assert "mnist-autoencoder" in flags[n]["--problem"].choices
    assert {"kl-shampoo", "soap"} <= set(flags["train"]["--optimizer"].choices) <= set(flags["compare"]["--optimizers"].choices)
    assert "--damping-grid-ef" in flags["compare"] and "compare" in flags["fisher"]["--model"].choices
    for name, sp in subs.choices.items():
        if name == "check-theory":  # proofs_check's own parser, tested in test_proofs_check
            continue
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            flag = a.option_strings[0] if a.option_strings else a.dest
            assert a.help, f"{name} {flag}: no help"
            assert "default" in a.help or "required" in a.help, f"{name} {flag}: help shows no default: {a.help!r}"
            if flag in fixed.get(name, ()):
                assert a.choices, f"{name} {flag}: a fixed set of values without choices"


def test_fisher_on_a_compare_problems_network(tmp_path):
    """``--model compare-mlp`` is the network ``tnt-ref compare --problem mlp`` trains (64-64-10)."""
    assert main(["fisher", "--model", "compare-mlp", "--n", "12", "--exact", "gram", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "fisher_compare-mlp.json").read_text())
    assert {r["layer"]: r["shape"] for r in res["rows"]}["fc1.weight"] == [64, 64]


def test_cli_errors(capsys):
    assert main(["fisher", "--model", "mlp", "--n", "5000"]) == 2
    assert "`n` must be in [2, 1497]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["estimators", "--shape", "3,-2"])
    with pytest.raises(SystemExit):
        main(["fisher", "--damping", "-1"])


def test_the_help_names_the_library_defaults():
    """One default per hyperparameter: what --help says is what each optimizer's factory takes when it is left out
    (every optimizer of issue 26 included), and the problems on the digits take those defaults (mnist-autoencoder's
    own dampings, the authors', are named in the help too)."""
    import inspect

    from tnt_ref.cli.training import _HYPER_FLAGS
    from tnt_ref.optim import OPTIMIZERS, factory
    from tnt_ref.training import PROBLEMS

    text = {dest: t for _, dest, _, t in _HYPER_FLAGS}

    def forms(v) -> set:  # how a help text may write a default: 0.01 as "0.01" or "1e-2"
        if isinstance(v, str) or isinstance(v, bool):
            return {str(v)}
        mant, exp = f"{v:.0e}".split("e")
        return {f"{v:g}", f"{mant}e{int(exp)}"}

    checked = 0
    for o in OPTIMIZERS:
        params = inspect.signature(factory(o)).parameters
        for dest, help_text in text.items():
            if dest in ("T1", "T2") or dest not in params:  # the intervals are the problem's (named per problem)
                continue
            v = params[dest].default
            assert forms(v) & set(re.findall(r"[\w.+-]+", help_text)), f"--{dest} help does not name {o}'s default {v}"
            checked += 1
    assert checked >= 30
    assert "1e-2 for tnt, tnt-ef and kfac" in text["damping"] and "1e-4 for shampoo" in text["damping"]
    for p in PROBLEMS.values():
        if p.data == "digits":  # the problems take the default
            assert all("damping" not in h for h in p.hyper.values()), p.name
        else:
            for d in {h["damping"] for h in p.hyper.values() if "damping" in h}:
                assert forms(d) & set(re.findall(r"[\w.+-]+", text["damping"])), (p.name, d)


def test_kl_round_off_is_printed_as_zero():
    from tnt_ref.cli.fisher import _kl_text

    assert _kl_text(-1.4210854715202004e-14) == "0" and _kl_text(2e-13) == "0" and _kl_text(0.1319) == "0.132"
    assert _kl_text(-1e-3) == "-0.001"  # a negative KL beyond round-off is shown, not hidden


def test_compare_command(tmp_path, capsys):
    assert main(["compare", "--problem", "mlp", "--out", str(tmp_path), "--epochs", "1", "--optimizers", "sgd", "adam",
                 "--tune-seeds", "1", "--seeds", "2", "--widen", "0"]) == 0
    out = capsys.readouterr().out
    assert "| sgd |" in out and "| adam |" in out and "results.json" in out
    assert "1 epoch per run" in out and "1 epochs" not in out and "1 fresh seeds" not in out
    # one progress line per finished run, with the count of this stage and a time estimate
    assert "tuning round 1: 6 runs to do" in out and re.search(r"tuning round 1 \[6/6\] .* elapsed, ~\d\d:\d\d left\)", out)
    assert re.search(r"report \(2 optimizers x 2 fresh seeds\) \[4/4\]", out)
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "loss.png", "table.md", "runs"}
