"""The command line: outputs, files and error messages."""

from __future__ import annotations

import json

import pytest

from tnt_ref.cli import main


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
    assert "fc1.weight" in capsys.readouterr().out


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


def test_compare_command(tmp_path, capsys):
    assert main(["compare", "--problem", "mlp", "--out", str(tmp_path), "--epochs", "1", "--optimizers", "sgd", "adam",
                 "--tune-seeds", "1", "--seeds", "2", "--widen", "0"]) == 0
    out = capsys.readouterr().out
    assert "| sgd |" in out and "| adam |" in out and "results.json" in out
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "loss.png", "table.md", "runs"}
