"""The paper's MNIST autoencoder on MNIST-format folders: shapes, loss, one step of every optimizer, doors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import write_idx, write_mnist_folder
from tnt_ref.cli import main
from tnt_ref.data import DataError
from tnt_ref.data import idx as idx_mod
from tnt_ref.optim import OPTIMIZERS
from tnt_ref.training import PROBLEMS, CheckpointError, compare, run

AE = PROBLEMS["mnist-autoencoder"]
SIZES = [784, 1000, 500, 250, 30, 250, 500, 1000, 784]


def test_architecture_is_the_papers():
    net = AE.build()
    shapes = {}
    for i in range(8):
        shapes[f"fc{i + 1}.weight"] = (SIZES[i + 1], SIZES[i])
        shapes[f"fc{i + 1}.bias"] = (SIZES[i + 1],)
    assert net.param_shapes == shapes
    assert sum(int(np.prod(s)) for s in shapes.values()) == 2_837_314
    assert net.spec["activation"] == ["relu", "relu", "relu", "identity", "relu", "relu", "relu"]  # linear 30-unit code
    assert AE.batch_size == 1000 and AE.autoencoder and AE.data == "idx"
    for o in ("tnt", "tnt-ef", "kfac", "shampoo"):
        assert AE.hyper[o]["T1"] == 1 and AE.hyper[o]["T2"] == 20
    assert all(len(AE.grids[o]) >= 3 for o in OPTIMIZERS) and all(len(g) >= 3 for g in AE.damping_grids.values())


def test_loss_is_bernoulli_summed_over_pixels_averaged_over_the_batch(rng):
    net = AE.build()
    params = net.init(rng)
    X = rng.random((3, 784))
    z = X  # the forward pass, written out: ReLU layers, a linear code, a linear output layer
    for i in range(8):
        z = z @ params[f"fc{i + 1}.weight"].T + params[f"fc{i + 1}.bias"]
        if i not in (3, 7):
            z = np.maximum(z, 0)
    p = 1 / (1 + np.exp(-z))
    want = np.mean(np.sum(-(X * np.log(p) + (1 - X) * np.log(1 - p)), axis=1))
    assert net.loss(params, X, X) == pytest.approx(want, rel=1e-10)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-idx")
    write_mnist_folder(folder, n_train=30, n_test=10)
    return folder


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_one_step_of_every_optimizer_on_a_tiny_idx_set(tiny, optimizer):
    # float32, as the study runs; a budget of 1e-9 s stops the run after its first step
    r = run("mnist-autoencoder", optimizer, 1e-5, epochs=None, budget_seconds=1e-9, batch_size=10, val_size=10,
            data=tiny, progress=False, dtype="float32")
    (h,) = r.history
    assert h["step"] == 1 and h["epoch"] == 0.5 and np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"])
    init = AE.build().init(np.random.default_rng(0), xp=np, dtype=np.float32)
    assert all(r.params[k].shape == init[k].shape and r.params[k].dtype == np.float32 for k in init)
    assert not np.array_equal(r.params["fc1.weight"], init["fc1.weight"])
    assert not np.array_equal(r.params["fc8.bias"], init["fc8.bias"])
    d = r.config["data"]
    assert d["n_train"] == 20 and d["n_val"] == 10 and d["n_test"] == 10 and d["folder"] == str(tiny.resolve())


def test_checkpoint_refuses_other_data(tiny, tmp_path):
    other = tmp_path / "other"
    write_mnist_folder(other, n_train=30, n_test=10, seed=9)
    ck = tmp_path / "ck.npz"
    run("mnist-autoencoder", "sgd", 1e-5, epochs=1, batch_size=10, data=tiny, checkpoint=ck, progress=False)
    with pytest.raises(CheckpointError, match="is for data="):
        run("mnist-autoencoder", "sgd", 1e-5, epochs=2, batch_size=10, data=other, checkpoint=ck, resume=True, progress=False)


def test_data_is_for_idx_problems_only():
    with pytest.raises(ValueError, match=r"`data` \(--data\) applies to problems on MNIST-format folders \(mnist-autoencoder\)"):
        run("mlp", "sgd", 0.1, epochs=1, data="/usr/share/datasets/fashion-mnist")


def test_compare_on_an_idx_folder(tmp_path):
    data = tmp_path / "d"
    write_mnist_folder(data, n_train=1100, n_test=20)  # 1000 to train (one batch of the paper's 1000), 100 to validate
    res = compare("mnist-autoencoder", tmp_path / "out", data=data, budget_seconds=0.01, optimizers=["sgd"],
                  grids={"sgd": [1e-3]}, tune_seeds=1, seeds=2, widen=0, val_size=100, log=lambda *_: None)
    cfg = res["config"]
    assert cfg["data"]["fingerprint"] and cfg["data"]["n_train"] == 1000 and cfg["data"]["name"] == "d"
    assert [len(r["history"]) for r in res["runs"]] == [1, 1]  # one step (a whole epoch) fills 0.01 s
    spec = json.loads(next((tmp_path / "out" / "runs").glob("sgd_*_s1000_*.json")).read_text())["spec"]
    assert spec["data_id"] == cfg["data"]["fingerprint"] and "data" not in spec
    assert (tmp_path / "out" / "loss.png").exists()


def test_compare_default_folder_and_door(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_mod, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        compare("mnist-autoencoder", tmp_path / "out", budget_seconds=1.0)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong-format", "image-size", "absent-folder"])
def test_cli_bad_data_folder_is_one_line_exit_2_before_any_work(tmp_path, capsys, damage):
    data = tmp_path / "d"
    write_mnist_folder(data, n_train=30, n_test=10, gz=False)
    want = {"missing": "lacks t10k-labels-idx1-ubyte[.gz]", "truncated": "train-images-idx3-ubyte is truncated",
            "wrong-format": "has magic number 0x89504e47; expected 0x00000803", "image-size": "holds 8x8 images; expected 28x28",
            "absent-folder": "does not exist"}[damage]
    if damage == "missing":
        (data / "t10k-labels-idx1-ubyte").unlink()
    elif damage == "truncated":
        p = data / "train-images-idx3-ubyte"
        p.write_bytes(p.read_bytes()[:-5])
    elif damage == "wrong-format":
        (data / "t10k-images-idx3-ubyte").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    elif damage == "image-size":
        write_idx(data / "train-images-idx3-ubyte", np.zeros((30, 8, 8), np.uint8))
    else:
        data = tmp_path / "nowhere"
    out = tmp_path / "out"
    for cmd in (["compare", "--problem", "mnist-autoencoder", "--budget-seconds", "5"],
                ["train", "--problem", "mnist-autoencoder", "--optimizer", "sgd", "--lr", "1e-3", "--epochs", "1"]):
        assert main([*cmd, "--data", str(data), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and want in err and "error:" in err
        assert not out.exists()  # nothing written, not even the output folder


def test_cli_budget_flags(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["compare", "--problem", "autoencoder", "--epochs", "2", "--budget-seconds", "5", "--out", str(out)]) == 2
    assert "give --epochs or --budget-seconds" in capsys.readouterr().err
    assert main(["train", "--problem", "mlp", "--optimizer", "sgd", "--lr", "0.1", "--epochs", "1", "--data", str(tmp_path),
                 "--out", str(out)]) == 2
    assert "applies to problems on MNIST-format folders" in capsys.readouterr().err
    assert main(["train", "--problem", "autoencoder", "--optimizer", "sgd", "--lr", "0.03", "--budget-seconds", "0.2",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "history.json").read_text())
    assert doc["status"] == "finished" and doc["history"][-1]["process_time"] >= 0.2


@pytest.mark.parametrize("flags,want", [
    ([], None),
    (["--damping-grid-ef", "0.1"], {"tnt-ef": [0.1]}),
    (["--damping-grid", "0.03", "0.3", "--damping-grid-ef", "0.1"], {"tnt": [0.03, 0.3], "tnt-ef": [0.1]}),
])
def test_cli_damping_grid_for_tnt_ef_alone(tmp_path, monkeypatch, flags, want):
    import tnt_ref.training as training

    seen = {}

    def fake_compare(problem, out, **kw):
        seen.update(kw)
        (out / "table.md").write_text("table\n")

    monkeypatch.setattr(training, "compare", fake_compare)
    assert main(["compare", "--problem", "autoencoder", "--epochs", "1", *flags, "--out", str(tmp_path / "o")]) == 0
    assert seen.get("damping_grids") == want
