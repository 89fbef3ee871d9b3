"""Known-answer vectors: schema and internal consistency with dense oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tnt_ref import kron
from tnt_ref.cli import main
from tnt_ref.models import from_spec
from tnt_ref.vectors import CASES, build_case


@pytest.fixture(scope="module")
def cases():
    return {name: build_case(name) for name in CASES}


def test_schema_and_consistency(cases):
    for name, z in cases.items():
        spec = json.loads(str(z["model"]))
        net = from_spec({k: v for k, v in spec.items() if k != "conv_modes"})
        assert list(z["param_names"]) == net.param_names
        X, y = z["X"], z["y"]
        assert 10 <= X.shape[0] <= 40
        params = {n: z[f"params/{n}"] for n in net.param_names}
        _, g = net.loss_and_grad(params, X, y)
        eps = float(z["damping"])
        for n in net.param_names:
            np.testing.assert_allclose(z[f"grad/{n}"], g[n], rtol=1e-12)
            F = z[f"fisher/{n}"]
            U = [z[f"tnt/{n}/{i}"] for i in range(100) if f"tnt/{n}/{i}" in z]
            S = [z[f"moments/{n}/{i}"] for i in range(len(U))]
            # the moments' common trace equals tr(F)
            for s in S:
                assert np.trace(s) == pytest.approx(np.trace(F), rel=1e-10)
            # the direction is the dense damped solve with kron(U_i + eps I)
            dense = kron(*[u + eps * np.eye(u.shape[0]) for u in U])
            np.testing.assert_allclose(z[f"direction/{n}"].reshape(-1), np.linalg.solve(dense, g[n].reshape(-1)), rtol=1e-9, atol=1e-12)
            if len(U) == 1:
                np.testing.assert_allclose(U[0], F, rtol=1e-12, atol=1e-15)
            if f"kfac/{n}/G" in z:
                assert z[f"kfac/{n}/G"].shape[0] * z[f"kfac/{n}/A"].shape[0] == F.shape[0]
        assert spec["loss"] in ("softmax_cross_entropy", "sigmoid_cross_entropy", "squared_error")


def test_cli_writes_vectors(tmp_path, capsys):
    assert main(["vectors", "--out", str(tmp_path)]) == 0
    files = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert files == sorted(f"{c}.npz" for c in CASES)
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporaries
    z = np.load(tmp_path / "mlp_tanh_softmax.npz")
    np.testing.assert_array_equal(z["fisher/fc1.weight"], build_case("mlp_tanh_softmax")["fisher/fc1.weight"])
