"""Training runs: bit-identical resume, checkpoint errors, divergence, compare's results schema."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tnt_ref.cli import main
import tnt_ref.training as T
from tnt_ref.training import CheckpointError, DivergedError, compare, run


@pytest.mark.parametrize("optimizer", ["tnt", "kfac", "shampoo", "adam", "kl-shampoo", "soap"])
def test_resume_is_bit_identical(tmp_path, optimizer):
    ck = tmp_path / "run.npz"
    full = run("mlp", optimizer, 1e-4, epochs=3, seed=1, progress=False)
    run("mlp", optimizer, 1e-4, epochs=2, seed=1, checkpoint=ck, progress=False)
    cont = run("mlp", optimizer, 1e-4, epochs=3, seed=1, checkpoint=ck, resume=True, progress=False)
    for k in full.params:
        np.testing.assert_array_equal(cont.params[k], full.params[k])
    assert [h["train_loss"] for h in cont.history] == [h["train_loss"] for h in full.history]


def test_history_fields_and_budget_in_seconds():
    r = run("autoencoder", "sgd", 0.03, epochs=None, seconds=0.05, progress=False)
    assert len(r.history) >= 1
    h = r.history[0]
    assert set(h) == {"epoch", "step", "train_loss", "test_loss", "test_accuracy", "val_loss", "val_accuracy", "wall_time",
                      "process_time"}
    assert h["test_accuracy"] is None  # autoencoder
    r = run("mlp", "sgd", 0.1, epochs=2, progress=False)
    assert 0 <= r.history[-1]["test_accuracy"] <= 1 and r.history[-1]["train_loss"] < r.history[0]["train_loss"] * 1.5


def test_checkpoint_errors(tmp_path):
    ck = tmp_path / "run.npz"
    run("mlp", "sgd", 0.1, epochs=1, checkpoint=ck, progress=False)
    with pytest.raises(CheckpointError, match="is for optimizer='sgd', but this run has optimizer='adam'"):
        run("mlp", "adam", 0.1, epochs=2, checkpoint=ck, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="is for problem='mlp'"):
        run("cnn", "sgd", 0.1, epochs=2, checkpoint=ck, resume=True, progress=False)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(ck.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupted"):
        run("mlp", "sgd", 0.1, epochs=2, checkpoint=bad, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        run("mlp", "sgd", 0.1, epochs=2, checkpoint=tmp_path / "none.npz", resume=True, progress=False)


def test_checkpoint_missing_state_entry(tmp_path):
    ck = tmp_path / "run.npz"
    run("mlp", "tnt", 1e-4, epochs=1, checkpoint=ck, progress=False)
    z = dict(np.load(ck))
    del z["state/inverses/fc1.weight/0"]
    np.savez(ck, **z)
    with pytest.raises(CheckpointError, match="lacks the optimizer state entry 'state/inverses/fc1.weight/0'"):
        run("mlp", "tnt", 1e-4, epochs=2, checkpoint=ck, resume=True, progress=False)


def test_divergence_stops_with_message(tmp_path):
    ck = tmp_path / "run.npz"
    # a finite but exploding loss is a divergence (above 10 x the initial loss), printed with 4 digits
    with pytest.raises(DivergedError, match=r"sgd on autoencoder: diverged: mini-batch loss \d\.\d+e\+\d+ at epoch 1, step \d+ "
                       r"\(learning_rate=1e\+06; divergence: non-finite or > 10 x the initial loss 44\.\d+\); no good epoch "
                       r".*no checkpoint was written") as info:
        run("autoencoder", "sgd", 1e6, epochs=2, checkpoint=ck, progress=False)
    assert not ck.exists()
    assert info.value.last_good_epoch == 0 and info.value.history == []
    # with the factor out of reach, the same run goes on to a non-finite loss, reported by train_step
    with pytest.raises(DivergedError, match=r"diverged: non-finite loss \(.*\) or gradient at epoch 1"):
        run("autoencoder", "sgd", 1e6, epochs=2, progress=False, divergence_factor=1e308)


def test_divergence_factor_is_the_stated_multiple(monkeypatch):
    import tnt_ref.training.runner as T  # run() calls the train_step of its own module

    real = T.train_step
    base = run("mlp", "sgd", 0.1, epochs=1, progress=False)
    init = base.initial_train_loss
    calls = {"n": 0}

    def loss_at(multiple):
        def step(*args):
            calls["n"] += 1
            loss, p, s = real(*args)
            return (multiple * init if calls["n"] == 30 else loss), p, s
        return step

    calls["n"] = 0
    monkeypatch.setattr(T, "train_step", loss_at(9.99))  # below 10x: not a divergence
    assert len(run("mlp", "sgd", 0.1, epochs=2, progress=False).history) == 2
    calls["n"] = 0
    monkeypatch.setattr(T, "train_step", loss_at(10.01))  # above: diverged at step 30 = epoch 2, step 7 (23 steps/epoch)
    with pytest.raises(DivergedError, match=r"at epoch 2, step 7 .*last good epoch 1, training loss") as info:
        run("mlp", "sgd", 0.1, epochs=2, progress=False)
    assert info.value.last_good_epoch == 1 and info.value.last_good_loss == base.history[0]["train_loss"]
    calls["n"] = 0
    assert len(run("mlp", "sgd", 0.1, epochs=2, progress=False, divergence_factor=11.0).history) == 2
    with pytest.raises(ValueError, match="`divergence_factor` must be a finite number > 1"):
        run("mlp", "sgd", 0.1, divergence_factor=1.0)


def test_divergence_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import tnt_ref.training.runner as T  # run() calls the train_step of its own module

    ck = tmp_path / "run.npz"
    run("mlp", "sgd", 0.1, epochs=1, checkpoint=ck, progress=False)
    good = ck.read_bytes()
    real = T.train_step
    calls = {"n": 0}

    def nan_after_three(*args):
        calls["n"] += 1
        if calls["n"] > 3:
            raise DivergedError("non-finite loss (nan) or gradient")
        return real(*args)

    monkeypatch.setattr(T, "train_step", nan_after_three)
    with pytest.raises(DivergedError, match=r"at epoch 2, step 4 .* the last good checkpoint \(epoch 1\) is kept at"):
        run("mlp", "sgd", 0.1, epochs=3, checkpoint=ck, resume=True, progress=False)
    assert ck.read_bytes() == good


def test_bad_run_arguments():
    with pytest.raises(ValueError, match=r"unknown problem 'resnet'; valid: \['autoencoder', 'cnn', 'mlp', 'mnist-autoencoder'\]"):
        run("resnet", "sgd", 0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        run("mlp", "lbfgs", 0.1)
    with pytest.raises(ValueError, match="`learning_rate` must be positive"):
        run("mlp", "sgd", -0.1)
    with pytest.raises(ValueError, match="give a budget"):
        run("mlp", "sgd", 0.1, epochs=None)
    with pytest.raises(ValueError, match=r"`batch_size` must be in \[1, 1497\]"):
        run("mlp", "sgd", 0.1, batch_size=5000)
    with pytest.raises(ValueError, match="`epochs` must be a positive int; got epochs=0"):
        run("mlp", "sgd", 0.1, epochs=0)
    with pytest.raises(ValueError, match="`seconds` must be positive and finite; got seconds=-1"):
        run("mlp", "sgd", 0.1, epochs=None, seconds=-1)
    with pytest.raises(ValueError, match="`resume=True` needs a `checkpoint` path"):
        run("mlp", "sgd", 0.1, resume=True)
    with pytest.raises(ValueError, match="unknown optimizer 'newton'"):
        compare("mlp", "/tmp/never-written", optimizers=["newton"])


def test_compare_protocol_and_schema(tmp_path):
    res = compare("autoencoder", tmp_path, epochs=1, optimizers=["sgd", "tnt"], grids={"sgd": [0.03, 1e6], "tnt": [1e-4]},
                  damping_grids={"tnt": [1e-2]}, tune_seeds=1, seeds=2, widen=0, log=lambda *_: None)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == json.loads(json.dumps(res))
    assert data["problem"] == "autoencoder" and data["config"]["select_by"] == "val_loss"
    # tuning: the diverged rate is recorded, never chosen; the chosen one is at the grid's low end, and flagged
    sgd = data["tuning"]["sgd"]
    assert [c["score"] is None for c in sgd["configs"]] == [False, True]
    assert sgd["best"]["learning_rate"] == 0.03 and sgd["lr_at_edge"] is True
    assert data["tuning"]["tnt"]["lr_at_edge"] is False  # a one-point grid has no edge to widen
    # the report runs: the chosen configuration on fresh seeds, never a tuning seed
    assert [(r["optimizer"], r["seed"]) for r in data["runs"]] == [("sgd", 1000), ("sgd", 1001), ("tnt", 1000), ("tnt", 1001)]
    for r in data["runs"]:
        assert set(r) >= {"optimizer", "learning_rate", "seed", "diverged", "history", "config"}
        for h in r["history"]:
            assert set(h) >= {"epoch", "train_loss", "test_loss", "test_accuracy", "val_loss", "wall_time"}
    s = data["summary"]["sgd"]["final_train_loss"]
    finals = [r["history"][-1]["train_loss"] for r in data["runs"][:2]]
    assert s["mean"] == pytest.approx(math.sqrt(finals[0] * finals[1]), rel=1e-14) and s["n"] == 2  # geometric mean
    assert s["scale"] == "log" and 0 < s["ci_low"] <= s["mean"] <= s["ci_high"]
    assert data["target"]["value"] == pytest.approx(s["mean"], rel=1e-14)
    assert {c["b"] for c in data["claims"]} == {"sgd"}
    # sgd's rate is at the edge of its grid: every verdict against it says so, in the JSON and in the table
    assert all(c["caveat"] == "sgd's learning rate at the edge of its grid (not tuned)" for c in data["claims"])
    assert (tmp_path / "loss.png").stat().st_size > 10_000
    table = (tmp_path / "table.md").read_text()
    assert "| sgd | 0.03 (edge) | – | 1/2 | 0/2 |" in table and "| tnt | 0.0001 | 0.01 | 0/1 | 0/2 |" in table
    assert "(caveat: sgd's learning rate at the edge of its grid (not tuned))" in table
    assert "autoencoder: 1 epoch per run;" in table and "over 2 fresh seeds" in table
    assert "geometric mean [95% Student-t interval on the log scale]" in table and "ratio " in table


def test_compare_selects_on_validation_never_test(tmp_path, monkeypatch):
    """Swap which rate is better on validation and which on test: the choice follows validation."""
    real = T.run

    def fake(problem, optimizer, lr, **kw):
        r = real(problem, optimizer, lr, **kw)
        good = lr == 0.1
        for h in r.history:
            h["val_accuracy"], h["test_accuracy"] = (0.9, 0.1) if good else (0.1, 0.9)
        return r

    import tnt_ref.training.grid as T2  # the grid calls the run of its own module

    monkeypatch.setattr(T2, "run", fake)
    res = compare("mlp", tmp_path, epochs=1, optimizers=["sgd"], grids={"sgd": [0.03, 0.1, 0.3]}, tune_seeds=1, seeds=2,
                  widen=0, log=lambda *_: None)
    assert res["tuning"]["sgd"]["best"]["learning_rate"] == 0.1


def test_grid_widens_until_interior(tmp_path):
    res = compare("mlp", tmp_path, epochs=1, optimizers=["sgd"], grids={"sgd": [1e-3, 3e-3]}, tune_seeds=1, seeds=2,
                  widen=1, log=lambda *_: None)
    t = res["tuning"]["sgd"]
    assert t["learning_rates"] == pytest.approx([1e-3, 3e-3, 9e-3]) and t["best"]["learning_rate"] == pytest.approx(9e-3)
    assert t["lr_at_edge"] is True  # widened once (widen=1) and still best at the top: flagged


def test_train_cli(tmp_path, capsys):
    assert main(["train", "--problem", "mlp", "--optimizer", "tnt", "--lr", "1e-4", "--epochs", "1",
                 "--out", str(tmp_path)]) == 0
    assert "epoch   1" in capsys.readouterr().out
    assert json.loads((tmp_path / "history.json").read_text())["history"][0]["epoch"] == 1
    with pytest.raises(SystemExit) as e:  # a fixed set of values: argparse's choices, exit 2
        main(["train", "--problem", "mlp", "--optimizer", "nope", "--lr", "1"])
    assert e.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_grid_widens_downwards_past_a_diverged_top(tmp_path):
    res = compare("autoencoder", tmp_path, epochs=4, optimizers=["sgd"], grids={"sgd": [0.03, 0.1]}, tune_seeds=1,
                  seeds=2, widen=1, log=lambda *_: None)
    t = res["tuning"]["sgd"]
    assert [c["score"] is None for c in t["configs"]] == [False, False, True]  # 0.1 diverges within 4 epochs
    assert t["learning_rates"] == pytest.approx([9e-3, 0.03, 0.1]) and t["best"]["learning_rate"] == 0.03
    assert t["lr_at_edge"] is False
