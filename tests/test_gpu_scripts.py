"""The prepared GPU check runs on the CPU too: it refuses clearly without a GPU, and the benchmark's
code path works at toy sizes on NumPy (so a lent GPU's minutes are not spent on a typo)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tnt_ref.backend import cupy_available

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(cupy_available(), reason="this machine has a GPU: the refusal path cannot be exercised")
def test_gpu_check_refuses_without_a_gpu(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin",
                       "PYTHON": sys.executable}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "no usable GPU" in r.stderr
    assert not (tmp_path / "pytest-cupy.log").exists()


def test_gpu_check_train_refuses_without_data_and_unknown_steps(tmp_path):
    # the data is checked before anything else (GPU or not): one line, exit 2, nothing written
    env = {"OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin", "PYTHON": sys.executable,
           "GPU_CHECK_DATA": str(tmp_path / "no-data")}
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "train"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"no data in {tmp_path / 'no-data'}" in r.stderr and "gpu_check.sh prepare" in r.stderr
    assert not (tmp_path / "out").exists()
    r = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "trian"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "unknown step 'trian'" in r.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(cupy_available(), reason="this machine has a GPU: the refusal path cannot be exercised")
def test_bench_gpu_refuses_without_a_gpu(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.pop(0)
    assert bench_gpu.main(["--out", str(tmp_path)]) == 2
    assert "no usable GPU" in capsys.readouterr().err


def test_bench_gpu_smoke_on_numpy(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--backends", "numpy",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert [(row["backend"], row["dtype"]) for row in res["rows"]] == [("numpy", "float32"), ("numpy", "float64")]
    for row in res["rows"]:
        assert row["sgd_ms"] > 0 and row["tnt_ms"] > 0 and row["kron_solve_residual"] < (1e-3 if row["dtype"] == "float32" else 1e-10)
