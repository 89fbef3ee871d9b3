"""``train``, ``compare`` and ``demo`` on the command line: door checks, folders, locks, Ctrl-C, divergence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import tnt_ref.training as T
import tnt_ref.training.runner as R  # run() calls the train_step of its own module
from tnt_ref.cli import main
from tnt_ref.training import TIMING_FIELDS

TRAIN = ["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "2"]
SMALL = ["compare", "--problem", "mlp", "--epochs", "2", "--optimizers", "sgd", "tnt", "--tune-seeds", "1",
         "--seeds", "2", "--damping-grid", "0.01", "--widen", "0"]


def _strip(runs):
    return [(r["optimizer"], r["seed"], [{k: v for k, v in h.items() if k not in TIMING_FIELDS} for h in r["history"]])
            for r in runs]


@pytest.mark.parametrize("cmd", [TRAIN, SMALL, ["demo"]])
def test_bad_out_ends_at_the_door(tmp_path, capsys, cmd):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for bad in (afile, afile / "sub"):
        t0 = time.perf_counter()
        assert main([*cmd, "--out", str(bad)]) == 2
        assert time.perf_counter() - t0 < 1.0
        err = capsys.readouterr().err
        assert "`--out`" in err and str(bad) in err and err.count("\n") == 1
    assert afile.read_text() == "x"


def test_train_history_has_full_config_and_folder_is_owned(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--momentum", "0.5", "--weight-decay", "1e-4"]) == 0
    doc = json.loads((out / "history.json").read_text())
    assert doc["status"] == "finished" and [h["epoch"] for h in doc["history"]] == [1, 2]
    cfg = doc["config"]
    assert cfg["optimizer"] == "sgd" and cfg["learning_rate"] == 0.1 and cfg["seed"] == 0 and cfg["dtype"] == "float64"
    assert cfg["hyper"] == {"learning_rate": 0.1, "momentum": 0.5, "weight_decay": 1e-4}
    assert not (out / ".tnt-ref.lock").exists()
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    # a new run into a folder that holds one is refused, the old one untouched
    assert main([*TRAIN, "--out", str(out), "--lr", "0.05"]) == 2
    assert "pass --resume to continue it or --overwrite" in capsys.readouterr().err
    assert (out / "checkpoint.npz").read_bytes() == before
    assert main([*TRAIN, "--out", str(out), "--resume", "--overwrite"]) == 2
    assert main([*TRAIN, "--out", str(out), "--lr", "0.05", "--overwrite"]) == 0
    assert json.loads((out / "history.json").read_text())["config"]["learning_rate"] == 0.05
    # flags that an optimizer does not take are refused by name
    assert main([*TRAIN, "--out", str(tmp_path / "x"), "--T1", "3"]) == 2
    assert "--T1 does not apply to sgd" in capsys.readouterr().err


def test_tnt_hyperparameter_flags_reach_the_optimizer(tmp_path):
    out = tmp_path / "tnt"
    assert main(["train", "--problem", "cnn", "--optimizer", "tnt", "--lr", "3e-5", "--epochs", "1", "--out", str(out),
                 "--damping", "0.03", "--T1", "2", "--T2", "7", "--decay", "0.8", "--stat-scale", "sum",
                 "--damping-scheme", "pi", "--conv-modes", "2", "--dtype", "float32", "--ema", "bias-corrected",
                 "--momentum-placement", "after", "--bias", "extra-input", "--inverse-schedule", "periodic"]) == 0
    cfg = json.loads((out / "history.json").read_text())["config"]
    h = cfg["hyper"]
    assert (h["damping"], h["T1"], h["T2"], h["decay"], h["stat_scale"], h["conv_modes"]) == (0.03, 2, 7, 0.8, "sum", 2)
    assert h["damping_scheme"] == "pi" and cfg["dtype"] == "float32"
    assert (h["ema"], h["momentum_placement"], h["bias"], h["inverse_schedule"]) == ("bias-corrected", "after", "extra-input", "periodic")


def test_tnt_convention_flags_have_choices_and_reach_compare(capsys):
    from tnt_ref.cli import build_parser
    from tnt_ref.cli.training import _hyper
    from tnt_ref.optim.tnt import EMAS, STAT_SCALES

    args = build_parser().parse_args(["compare", "--problem", "mlp", "--out", "x", "--ema", "plain", "--stat-scale",
                                      "per-example-over-m", "--momentum-placement", "after", "--bias", "extra-input",
                                      "--damping-scheme", "exact", "--inverse-schedule", "periodic"])
    assert _hyper(args) == {"ema": "plain", "stat_scale": "per-example-over-m", "momentum_placement": "after",
                            "bias": "extra-input", "damping_scheme": "exact", "inverse_schedule": "periodic"}
    for bad in (["--ema", "nope"], ["--stat-scale", "mean"], ["--bias", "row"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(["train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "1", *bad])
        assert e.value.code == 2
        assert "invalid choice" in capsys.readouterr().err
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "{" + ",".join(EMAS) + "}" in text and "{" + ",".join(STAT_SCALES) + "}" in text
    assert "(default: first)" in text and "(default: before)" in text and "(default: own-tensor)" in text


def test_kl_shampoo_hyperparameter_flags_reach_the_optimizer(tmp_path, capsys):
    out = tmp_path / "kl"
    assert main(["train", "--problem", "mlp", "--optimizer", "kl-shampoo", "--lr", "1e-3", "--epochs", "1", "--out",
                 str(out), "--damping", "3e-4", "--T1", "2", "--T2", "7", "--decay", "0.95", "--momentum", "0.5",
                 "--weight-decay", "0.01", "--conv-modes", "2"]) == 0
    cfg = json.loads((out / "history.json").read_text())["config"]
    h = cfg["hyper"]
    assert cfg["optimizer"] == "kl-shampoo"
    assert (h["damping"], h["T1"], h["T2"], h["decay"], h["momentum"], h["weight_decay"], h["conv_modes"]) == (
        3e-4, 2, 7, 0.95, 0.5, 0.01, 2)
    capsys.readouterr()
    assert main(["train", "--problem", "mlp", "--optimizer", "kl-shampoo", "--lr", "1e-3", "--epochs", "1", "--out",
                 str(tmp_path / "x"), "--stat-scale", "per-example"]) == 2
    assert "--stat-scale does not apply to kl-shampoo" in capsys.readouterr().err


def test_soap_and_floor_flags_reach_the_optimizers(tmp_path):
    out = tmp_path / "soap"
    assert main(["train", "--problem", "autoencoder", "--optimizer", "soap", "--lr", "1e-3", "--epochs", "1", "--out",
                 str(out), "--b1", "0.8", "--b2", "0.99", "--eps", "1e-6", "--decay", "0.9", "--T1", "2", "--T2", "5"]) == 0
    h = json.loads((out / "history.json").read_text())["config"]["hyper"]
    assert (h["b1"], h["b2"], h["eps"], h["decay"], h["T1"], h["T2"]) == (0.8, 0.99, 1e-6, 0.9, 2, 5)
    for name in ("shampoo", "kl-shampoo"):
        out = tmp_path / name
        assert main(["train", "--problem", "autoencoder", "--optimizer", name, "--lr", "1e-4", "--epochs", "1",
                     "--out", str(out), "--floor", "1e-9"]) == 0
        assert json.loads((out / "history.json").read_text())["config"]["hyper"]["floor"] == 1e-9


def test_lock_refuses_a_second_live_run_and_replaces_a_stale_one(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".tnt-ref.lock").write_text(f"{os.getppid()}\n")  # a live process
    assert main([*TRAIN, "--out", str(out)]) == 2
    assert "is in use by a live run" in capsys.readouterr().err
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".tnt-ref.lock").write_text(f"{dead.pid}\n")  # a run that was killed
    assert main([*TRAIN, "--out", str(out)]) == 0
    assert not (out / ".tnt-ref.lock").exists()


def test_train_divergence_exits_3_with_last_good_epoch(tmp_path, capsys):
    out = tmp_path / "div"
    assert main(["train", "--problem", "autoencoder", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "8",
                 "--val-size", "297", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    doc = json.loads((out / "history.json").read_text())
    k = len(doc["history"])
    assert k >= 1 and doc["status"] == "diverged"
    assert f"diverged after epoch {k} (the last good one; training loss {doc['history'][-1]['train_loss']:.4g})" in err
    assert err.count("\n") == 1 and len(err) < 600 and "> 10 x the initial loss" in err


def test_train_ctrl_c_keeps_finished_epochs_and_resume_is_identical(tmp_path, capsys, monkeypatch):
    ref = tmp_path / "ref"
    assert main([*TRAIN, "--epochs", "3", "--out", str(ref)]) == 0
    real, calls = R.train_step, {"n": 0}

    def interrupt(*a):
        calls["n"] += 1
        if calls["n"] == 23 * 2 + 5:  # during epoch 3
            raise KeyboardInterrupt
        return real(*a)

    monkeypatch.setattr(R, "train_step", interrupt)
    out = tmp_path / "cut"
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "3", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted (Ctrl-C); kept 2 finished epochs" in err and "--resume" in err
    doc = json.loads((out / "history.json").read_text())
    assert doc["status"] == "interrupted" and len(doc["history"]) == 2
    monkeypatch.setattr(R, "train_step", real)
    assert main([*TRAIN, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    a = json.loads((out / "history.json").read_text())["history"]
    b = json.loads((ref / "history.json").read_text())["history"]
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]


def test_compare_jobs2_equals_jobs1_and_ctrl_c_resume(tmp_path, capsys, monkeypatch):
    d1, d2, d3 = tmp_path / "j1", tmp_path / "j2", tmp_path / "cut"
    assert main([*SMALL, "--out", str(d1)]) == 0
    assert main([*SMALL, "--out", str(d2), "--jobs", "2"]) == 0
    r1, r2 = (json.loads((d / "results.json").read_text()) for d in (d1, d2))
    assert _strip(r1["runs"]) == _strip(r2["runs"]) and len(r1["runs"]) == 4
    assert r1["summary"]["tnt"]["final_train_loss"] == r2["summary"]["tnt"]["final_train_loss"]
    assert {r["seed"] for r in r1["runs"]} == {1000, 1001}
    s = r1["summary"]["sgd"]["final_train_loss"]
    assert s["n"] == 2 and s["ci_low"] < s["mean"] < s["ci_high"]
    assert set(r1["tuning"]["tnt"]["best"]) >= {"learning_rate", "damping", "score"}
    # a rerun into the same folder is refused
    assert main([*SMALL, "--out", str(d1)]) == 2
    # Ctrl-C after 3 of 6 runs: one line, exit 130, the 3 kept; --resume finishes with the same results
    import tnt_ref.training.grid as G

    real, calls = G.run_one, {"n": 0}

    def interrupt(spec, threads=1):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(spec, threads)

    monkeypatch.setattr(G, "run_one", interrupt)
    capsys.readouterr()
    assert main([*SMALL, "--out", str(d3)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kept 3 finished runs" in err and "--resume" in err
    monkeypatch.setattr(G, "run_one", real)
    assert main([*SMALL, "--out", str(d3), "--resume"]) == 0
    r3 = json.loads((d3 / "results.json").read_text())
    assert _strip(r3["runs"]) == _strip(r1["runs"]) and r3["claims"] == r1["claims"]
    assert r3["tuning"] == r1["tuning"]


def test_version_and_python_m(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    p = subprocess.run([sys.executable, "-m", "tnt_ref", "--version"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith("tnt-ref 0.")
    p = subprocess.run([sys.executable, "-m", "tnt_ref", "compare", "--help"], capture_output=True, text=True, env=env)
    assert p.returncode == 0
    for flag in ("--jobs", "--scheduler", "--seeds", "--dtype", "--damping", "--T1", "--T2", "--momentum", "--decay",
                 "--weight-decay", "--stat-scale", "--damping-scheme", "--conv-modes", "--resume", "--overwrite", "--ema",
                 "--momentum-placement", "--bias", "--inverse-schedule"):
        assert flag in p.stdout
    assert p.stdout.count("default") >= 20


def test_train_seeds_is_a_grid_with_a_summary(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--seeds", "0", "3",
                 "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    finals = [T.run("mlp", "sgd", 0.1, epochs=1, seed=k, progress=False).history[-1]["train_loss"] for k in (0, 3)]
    assert s["seeds"] == [0, 3] and s["final_train_loss"]["n"] == 2
    assert s["final_train_loss"]["mean"] == pytest.approx((finals[0] * finals[1]) ** 0.5, rel=1e-14)  # geometric mean
    assert s["final_test_accuracy"]["scale"] == "logit" and s["final_test_accuracy"]["ci_high"] < 1
    assert "2/2 seeds finished" in capsys.readouterr().out
    assert main(["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--seeds", "0",
                 "--out", str(out)]) == 2  # the folder holds runs: --resume or --overwrite
    # a diverged seed: exit 3, recorded
    assert main(["train", "--problem", "autoencoder", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "1", "--seeds", "0",
                 "--out", str(tmp_path / "div")]) == 3
    assert json.loads((tmp_path / "div" / "summary.json").read_text())["diverged_seeds"] == [0]


def test_demo_uses_one_damping_per_tnt_variant(tmp_path, monkeypatch, capsys):
    """The demo does not tune the damping: TNT gets 1e-2, TNT-EF 3e-2 (with 1e-2 it diverges at every learning rate
    of its grid on the autoencoder, so the demo's table would have no TNT-EF row), KL-Shampoo its default 1e-3 (tuned
    on one seed it chose 1e-4, which diverged on every report seed)."""
    import tnt_ref.training as training
    from tnt_ref.cli.training import DEMO_DAMPING

    seen = {}

    def fake_compare(problem, out, **kw):
        seen.update(kw, problem=problem)
        (out / "table.md").write_text("table\n")

    monkeypatch.setattr(training, "compare", fake_compare)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    assert seen["problem"] == "autoencoder" and seen["damping_grids"] == DEMO_DAMPING == {"tnt": [1e-2], "tnt-ef": [3e-2], "kl-shampoo": [1e-3]}
    assert seen["widen"] == 0 and seen["tune_seeds"] == 1 and seen["seeds"] == 3
