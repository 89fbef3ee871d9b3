"""proofs_check in CI: the quick profile, every check with its expected result (negative controls fail).

The digits study's two checks run on its ``ci`` variant (``DIGITS_PROFILES["ci"]``: every step and criterion of the
study on 600 images and 2 epochs, a sixth of the quick profile's cost); the quick profile itself runs them in full
from the command line (``python -m proofs_check --profile quick``).
"""

from __future__ import annotations

import json

import pytest

from proofs_check.__main__ import main
from proofs_check import CHECKS, load_checks, run_checks

load_checks()
from proofs_check.problems import softmax_regression
from proofs_check.runs import convergent, run_tnt
from tnt_ref.cli import main as tnt_main


#: The checks of the digits study, run on its CI variant here.
DIGITS_CHECKS = ("tn.digits.study", "tn.digits.study.data_labels")


@pytest.fixture(scope="module")
def results():
    import time

    from proofs_check.registry import CheckResult

    out = run_checks([n for n in CHECKS if n not in DIGITS_CHECKS], profile="quick")
    for name in DIGITS_CHECKS:  # the registered check functions themselves, on the ci sizes of the study
        c = CHECKS[name]
        t0 = time.perf_counter()
        passed, measured = c.fn("ci")
        out.append(CheckResult(c.name, c.claim, c.tag, c.kind, c.expected, "pass" if passed else "fail", measured,
                               time.perf_counter() - t0, c.where, c.fails))
    return out


def test_every_check_gives_its_expected_result(results):
    bad = [(r.name, r.expected, r.status, r.measured) for r in results if not r.ok]
    assert not bad, bad
    assert len(results) == len(CHECKS) >= 20


def test_every_check_says_what_makes_it_fail():
    from proofs_check.failures import FAILS

    assert set(FAILS) == set(CHECKS), set(FAILS) ^ set(CHECKS)
    assert all(len(CHECKS[n].fails) > 20 for n in CHECKS)


def test_every_positive_check_has_a_negative_control(results):
    kinds = {r.kind for r in results}
    assert {"symbolic", "numeric", "negative-control", "theorem"} <= kinds
    negatives = [r for r in results if r.kind == "negative-control"]
    assert all(r.expected == "fail" and r.status == "fail" for r in negatives)
    for prefix in ("sym.kron_mode_product", "sym.moment_identity", "AS.1", "AS.2", "AS.3", "AS.4", "theorem1",
                   "tn.separability", "tn.digits"):
        assert any(r.name.startswith(prefix) for r in negatives), prefix


def test_cli_json_and_exit_code(tmp_path, capsys):
    js = tmp_path / "r.json"
    rc = main(["--profile", "quick", "--checks", "sym.moment_identity", "sym.moment_identity.no_trace",
               "--json", str(js), "--report", str(tmp_path / "rep.md")])
    assert rc == 0
    data = json.loads(js.read_text())
    assert [c["name"] for c in data["checks"]] == ["sym.moment_identity", "sym.moment_identity.no_trace"]
    for c in data["checks"]:
        assert set(c) == {"name", "claim", "tag", "kind", "expected", "status", "fails", "measured"}
        assert c["tag"] in ("paper", "code", "derived", "reconstructed")
    assert "| `sym.moment_identity` |" in (tmp_path / "rep.md").read_text()
    assert "2 of 2 checks gave their expected result" in capsys.readouterr().out


def test_jobs_run_modules_in_processes_and_keep_the_registry_order():
    names = ["sym.moment_identity.no_trace", "AS.1.unbounded", "sym.moment_identity"]
    one = run_checks(names, profile="quick")
    two = run_checks(names, profile="quick", jobs=2, blas_threads=1)
    assert [r.name for r in two] == [r.name for r in one] == ["AS.1.unbounded", "sym.moment_identity", "sym.moment_identity.no_trace"]
    assert [(r.status, r.measured) for r in two] == [(r.status, r.measured) for r in one]


def test_tnt_ref_check_theory_and_bad_names(tmp_path, capsys):
    assert tnt_main(["check-theory", "--profile", "quick", "--checks", "sym.scale_nonidentifiability", "--report", ""]) == 0
    assert main(["--checks", "no.such.check", "--report", ""]) == 2
    assert "unknown check names ['no.such.check']" in capsys.readouterr().err


def test_impossible_parameters():
    prob = softmax_regression(20)
    with pytest.raises(ValueError, match=r"`N` \(iterations\) must be a positive int; got N=0"):
        run_tnt(prob, convergent(0.1, 0.1), N=0, m=4)
    with pytest.raises(ValueError, match=r"`m` \(mini-batch size\) must be in \[1, 20\] for 20 examples; got m=50"):
        run_tnt(prob, convergent(0.1, 0.1), N=3, m=50)


def test_the_checks_run_the_shipped_optimizer():
    """No second implementation of the update: proofs_check's runs call tnt_ref.optim.tnt through train_step."""
    import proofs_check

    from pathlib import Path

    src = "\n".join(p.read_text() for p in Path(proofs_check.__file__).parent.glob("*.py"))
    assert "run_variant" not in src and not (Path(proofs_check.__file__).parent / "variant.py").exists()
    tr = run_tnt(softmax_regression(20), convergent(0.1, 0.1), N=2, m=4)
    assert tr.opt.name == "tnt" and tr.opt.hyper["schedule"] == "convergent" and tr.steps == 2


def test_quick_profile_reaches_k3_and_ties_symbols_to_code(results):
    by = {r.name: r for r in results}
    est = by["sym.estimator_invariants"].measured
    assert est["exact_on_TN_any_shape_k=3"] and est["exact_on_TN_any_shape_k=4"]
    assert est["tnt_ref tnt_factors_from_moments = closed form, exact on TN moments"] == {"2x3": True, "2x2x2": True, "3x2x2": True}
    assert all(by["sym.kron_mode_product"].measured["tnt_ref exact on integers"].values())
    assert by["sym.kron_eigenvalues"].measured["tnt_ref KroneckerMatrix.eigvalsh, k=3 rational rotations"]


def test_assumption_checks_observe_the_optimizer(results):
    """AS.2 uses recorded g_k; AS.3 reports the applied spectrum unclipped; the controls fail for an observed reason."""
    by = {r.name: r for r in results}
    assert by["AS.2.sampled"].measured["steps"] >= 200
    assert by["AS.2.biased_sampler"].measured["bias_statistic_T (E = 1)"] > 9
    assert by["AS.3.no_damping"].measured["failures"]  # a named, observed failure
    sm = by["AS.3.softmax"].measured["a_priori_B"]
    assert sm["failures"] == {} and 0 < sm["spectrum_min"] and sm["spectrum_max"] <= sm["kappa_hi"] * (1 + 1e-9)
    assert "held-out" in by["AS.1.mlp"].measured["L_source"]


def test_report_tabulates_the_tight_instance_controls_size_power_and_digits(results, tmp_path):
    from proofs_check.report import write_json, write_report

    rep = write_report(tmp_path / "rep.md", results, "quick", "python -m proofs_check --profile quick")
    text = rep.read_text()
    for head in ("## Theorem 1, tight instance and controls", "## The tensor-normal assumption: size, uniformity and power",
                 "## The tensor-normal assumption on the digits models"):
        assert head in text, head
    assert "## Theorem 1 on TNT's own statistics" in text
    for name in ("`theorem1.biased_noise`", "`theorem1.adaptive_H`", "`theorem1.unbounded_H`", "`tn.separability.size`"):
        assert f"| {name} | fail (fail) |" in text or f"| {name} | pass (pass) |" in text, name
    assert (tmp_path / "figures" / "tn_digits.png").stat().st_size > 10_000
    digits = next(r for r in results if r.name == "tn.digits.study").measured
    assert {(r["problem"], r["point"]) for r in digits["rows"]} == {(p, w) for p in ("mlp", "cnn") for w in ("init", "mid", "end")}
    assert all(0 < r["p_bootstrap"] <= 1 for r in digits["rows"])
    assert digits["profile"] == "ci" and digits["images"] == 600 and "over the first 600 digits" in text
    assert "so the test can reject at 0.05" in text  # 19 bootstrap draws: the smallest p is 0.05
    data = json.loads(write_json(tmp_path / "r.json", results).read_text())  # strict JSON: infinite gaps become "inf"
    assert any(c["name"] == "tn.digits.study" for c in data["checks"])


@pytest.mark.parametrize("argv, message", [
    (["--list", "--checks", "bogus"], "`--list` lists the checks and runs nothing; it takes no --checks"),
    (["--out", ""], "`--out` is empty"),
    (["--json", ""], "`--json` is empty"),
    (["--json", "{tmp}/same.md", "--report", "{tmp}/same.md"], "`--json` and the report are the same file"),
    (["--json", "{tmp}"], "is an existing folder"),
    (["--blas-threads", "-1"], "`--blas-threads` must be >= 1 (BLAS threads per process); got -1"),
    (["--blas-threads", "0"], "`--blas-threads` must be >= 1 (BLAS threads per process); got 0"),
    (["--jobs", "0"], "`--jobs` must be >= 1; got 0"),
])
def test_cli_refuses_bad_output_arguments_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv + ["--checks", "sym.moment_identity"] if "--list" not in argv else argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tnt-ref-out").exists()  # nothing created on refusal


@pytest.mark.parametrize("argv, message", [
    (["--draws", "0"], "`--draws` must be an int in [1, 64]"),
    (["--draws", "100000"], "`--draws` must be an int in [1, 64]"),
    (["--json", ""], "`--json` is empty"),
    (["--json", "{tmp}"], "is an existing folder"),
])
def test_tn_digits_refuses_bad_arguments_before_any_work(argv, message, tmp_path, capsys):
    from proofs_check.tn_digits import main as digits_main

    assert digits_main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_interrupted_run_keeps_the_checks_that_finished(tmp_path, capsys, monkeypatch):
    """Ctrl-C during the third check: exit 130, one line, the JSON (written after each check) and the report hold the two
    that finished; the default JSON is theory.json in --out."""
    import proofs_check.registry as R

    names = ["sym.moment_identity", "sym.moment_identity.no_trace", "sym.scale_nonidentifiability"]
    seen = []
    real = R.CHECKS[names[2]]

    def interrupt(profile):
        data = json.loads((tmp_path / "theory.json").read_text())  # on disk before the next check starts
        seen.append((data["status"], data["completed"], data["of"], [c["name"] for c in data["checks"]]))
        raise KeyboardInterrupt

    monkeypatch.setitem(R.CHECKS, names[2], real.__class__(**{**real.__dict__, "fn": interrupt}))
    capsys.readouterr()
    assert main(["--profile", "quick", "--checks", *names, "--out", str(tmp_path)]) == 130
    assert seen == [("running", 2, 3, names[:2])]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted (Ctrl-C) after 2 of 3 checks; kept" in err and "theory.json" in err
    data = json.loads((tmp_path / "theory.json").read_text())
    assert data["status"] == "interrupted" and [c["name"] for c in data["checks"]] == names[:2]
    report = (tmp_path / "theory-report.md").read_text()
    assert "interrupted after 2 of 3 checks" in report and "| `sym.moment_identity` |" in report


def test_progress_line_per_check_with_an_estimate(tmp_path, capsys):
    import re

    assert main(["--profile", "quick", "--checks", "sym.moment_identity", "sym.moment_identity.no_trace",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"checks \[100%\] sym\.moment_identity\.no_trace: fail \(expected fail, [\d.]+ s\) "
                     r"\(\d\d:\d\d elapsed, ~\d\d:\d\d left\)", out), out
    assert json.loads((tmp_path / "theory.json").read_text())["status"] == "finished"
