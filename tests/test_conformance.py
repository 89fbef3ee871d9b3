"""The conformance harness (``tnt_ref.conformance``, ``tnt-ref conform``): it recovers the
convention setting tnt-ref runs under, and it catches deliberately broken implementations at the
right quantity. Also the optimizer options the convention space added, against oracles written
out here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tnt_ref.cli import main
from tnt_ref.conformance import BROKEN, CASE_NAMES, CONVENTIONS, DEFAULT_SETTING, TntRef, build_cases, conform
from tnt_ref.conformance.conventions import convention
from tnt_ref.conformance.layouts import block_maps, from_layout, to_layout
from tnt_ref.optim import tnt, tnt_warm_start
from tnt_ref.tensor import kron
from tnt_ref.tensor_normal import tnt_factors_from_moments

CASES = build_cases(["mlp_tanh_softmax:fc1", "conv_2x3:conv1", "tensor3"])

# the defaults, and every other value of every convention in three mixed settings (each value decided jointly
# with the others: a harder search than one value at a time), plus kfac-jax's DenseTNT/Conv2DTNT as measured
SETTINGS = [
    {},
    dict(layout="transposed", vec_order="column-major", bias="extra-input", conv_modes=2, tensor_modes="matrix",
         conv_locations="independent", stat_scale="per-example", damping_scheme="pi", ema="plain",
         momentum_placement="after", inverse_schedule="periodic"),
    dict(layout="hwio", conv_modes=4, stat_scale="sum", damping_scheme="exact", ema="bias-corrected"),
    dict(conv_locations="independent", stat_scale="per-example-over-m", ema="warm-start"),
    dict(layout="hwio", bias="extra-input", conv_modes=2, conv_locations="independent", stat_scale="per-example",
         damping_scheme="pi", ema="bias-corrected", inverse_schedule="periodic"),
]


def test_the_settings_cover_every_value():
    for c in CONVENTIONS:
        assert {s.get(c.name, c.values[0]) for s in SETTINGS} == set(c.values), c.name


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "defaults")
def test_harness_recovers_the_setting(setting):
    report = conform(TntRef(setting), CASES)
    want = {**DEFAULT_SETTING, **setting}
    assert report.verdict == "matches", report.summary()
    # "transposed" and "hwio" differ by a permutation inside the kernel's spatial axes, which stay in one mode
    # under every conv_modes: an implementation consistent with its own layout answers the same [derived]
    expect = {k: ([v] if k != "layout" or v == "canonical" else ["transposed", "hwio"]) for k, v in want.items()}
    if want["stat_scale"] == "sum":  # the summed gradient is the same whether locations are summed first or not [derived]
        expect["conv_locations"] = ["joint", "independent"]
    assert report.conventions == expect, report.summary()
    assert all(e <= 1e-12 for e in report.worst_error.values())


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_harness_catches_broken_implementations(name, tmp_path):
    make, first = BROKEN[name]
    report = conform(make(), CASES, reproducer_dir=tmp_path)
    assert report.verdict == "matches no convention", report.summary()
    fd = report.first_difference
    assert fd["quantity"] == first and fd["case"] == CASES[0].name and fd["error"] > 1e-6
    z = np.load(fd["reproducer"])
    meta = json.loads(str(z["meta"]))
    assert meta["quantity"] == first and meta["setting"]["layout"] in ("canonical", "transposed", "hwio")
    assert any(k.startswith("expected/") for k in z.files) and any(k.startswith("input/") for k in z.files)


def test_adapter_errors_and_declines_are_reported():
    class Partial:
        name = "partial"

        def factors(self, layer):
            if layer["kind"] == "tensor":
                raise NotImplementedError("no tensors")
            return TntRef().factors(layer)

    r = conform(Partial(), CASES)
    assert r.verdict == "matches" and r.quantities["inverse"] == "not provided"
    assert r.unsupported["factors"] == ["tensor3"]
    assert r.conventions["damping_scheme"] == list(convention("damping_scheme").values)  # undecided: no inverse was given


def test_layout_maps_round_trip_and_pin():
    W = np.arange(24.0).reshape(2, 3, 1, 4)  # (C_out, C_in, kh, kw)
    assert to_layout(W, "conv", "hwio").shape == (1, 4, 3, 2)
    assert np.array_equal(from_layout(to_layout(W, "conv", "hwio"), "conv", "hwio"), W)
    s = {**DEFAULT_SETTING, "layout": "hwio", "bias": "extra-input", "conv_modes": 2}
    bm = block_maps("conv", W.shape, True, s)["weight+bias"]
    # kfac-jax's Conv2D layout: rows (kh, kw, C_in) then the bias, columns C_out; entries index [W_(2, 12) | b]
    assert bm.dims == (13, 2)
    assert bm.index[0, 1] == 13 and bm.index[12, 0] == 12 and bm.index[1, 0] == 4  # W[0,0,0,1] is canonical 1 -> (0,1)?
    J = np.arange(26).reshape(2, 13)
    assert bm.index[1, 0] == J[0, np.ravel_multi_index((1, 0, 0), (3, 1, 4))] or bm.index[1, 0] == 4


def test_independent_locations_sum_the_per_location_second_moments():
    """``conv_locations="independent"``: every location a sample, moments summed over the L locations (KFAC's
    approximation of the per-example second moment), against per-location outer products written out."""
    b = build_cases(["conv_2x3:conv1"])[0].batch
    pl = b.per_location["weight"]  # (m, L, 3, 2, 2, 3)
    m, L = pl.shape[:2]
    want = sum(np.einsum("ni,nj->ij", pl[:, t].reshape(m, -1), pl[:, t].reshape(m, -1)) for t in range(L)) / m
    S = b.location_samples()["weight"].reshape(m * L, -1)
    np.testing.assert_allclose(S.T @ S / (m * L), want, rtol=1e-13)
    joint = b.per_example["weight"].reshape(m, -1)
    assert np.linalg.norm(joint.T @ joint / m - want) > 1e-3 * np.linalg.norm(want)  # the approximation is one


def test_tnt_is_equivariant_under_transposition():
    """[derived] TNT of the transposed tensor is the transposed TNT: layouts are interface maps."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((7, 3, 4, 5))
    v = rng.standard_normal((3, 4, 5))
    out = []
    for perm in ((0, 1, 2), (2, 0, 1)):
        opt = tnt(1.0, momentum=0.0, damping=0.1)
        p = {"w": np.transpose(np.zeros((3, 4, 5)), perm)}
        st = opt.init(p)
        up, _ = opt.update({"w": np.transpose(v, perm)}, st, p, sampled_grads={"w": np.transpose(G.mean(0), perm)})
        out.append(np.transpose(up["w"], np.argsort(perm)))
    np.testing.assert_allclose(out[0], out[1], rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- the options added to tnt()
def _one_step(**kw):
    rng = np.random.default_rng(1)
    pe = {"l.weight": rng.standard_normal((6, 3, 4)), "l.bias": rng.standard_normal((6, 3))}
    params = {"l.weight": rng.standard_normal((3, 4)), "l.bias": rng.standard_normal(3)}
    g = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    opt = tnt(1.0, momentum=0.5, decay=0.8, damping=0.3, weight_decay=0.0, **kw)
    return opt, params, g, pe


def test_stat_scale_sum_is_m_times_batch_mean():
    opt, params, g, pe = _one_step(stat_scale="sum")
    _, st = opt.update(g, opt.init(params), params, sampled_grads=pe)
    ref_opt = tnt(1.0, damping=0.3)
    _, ref = ref_opt.update(g, ref_opt.init(params), params, sampled_grads={k: v.mean(0) for k, v in pe.items()})
    for a, b in zip(st.stats["l.weight"], ref.stats["l.weight"]):
        np.testing.assert_allclose(a, 6 * b, rtol=1e-13)
    with pytest.raises(ValueError, match="needs per-example gradients"):
        opt.update(g, opt.init(params), params, sampled_grads={k: v.mean(0) for k, v in pe.items()})


def test_ema_options_against_the_formulas():
    rng = np.random.default_rng(2)
    params = {"w": np.zeros((2, 3))}
    Ms = [rng.standard_normal((2, 3)) for _ in range(3)]
    mom = [[M @ M.T, M.T @ M] for M in Ms]
    beta = 0.8
    for ema in ("first", "plain", "bias-corrected"):
        opt = tnt(1.0, decay=beta, damping=0.1, ema=ema)
        st = opt.init(params)
        for t, M in enumerate(Ms):
            _, st = opt.update({"w": np.zeros((2, 3))}, st, params, sampled_grads={"w": M})
            if ema == "first":
                want = mom[0] if t == 0 else [beta * s + (1 - beta) * m for s, m in zip(want, mom[t])]
            elif ema == "plain":
                plain = [(1 - beta) * m for m in mom[0]] if t == 0 else [beta * s + (1 - beta) * m for s, m in zip(plain, mom[t])]
                want = plain
            else:
                plain = [(1 - beta) * m for m in mom[0]] if t == 0 else [beta * s + (1 - beta) * m for s, m in zip(plain, mom[t])]
                want = [s / (1 - beta ** (t + 1)) for s in plain]
            for a, b in zip(st.stats["w"], want):
                np.testing.assert_allclose(a, b, rtol=1e-13)


def test_per_example_over_m_exact_damping_and_periodic_inverses():
    opt, params, g, pe = _one_step(stat_scale="per-example-over-m")
    _, st = opt.update(g, opt.init(params), params, sampled_grads=pe)
    ref_opt = tnt(1.0, damping=0.3, stat_scale="per-example")
    _, ref = ref_opt.update(g, ref_opt.init(params), params, sampled_grads=pe)
    for a, b in zip(st.stats["l.weight"], ref.stats["l.weight"]):
        np.testing.assert_allclose(a, b / 6, rtol=1e-13)
    # exact damping: (U_1 kron U_2 + eps I)^-1 g against a dense solve
    opt, params, g, pe = _one_step(damping_scheme="exact")
    up, st = opt.update(g, opt.init(params), params, sampled_grads={k: v.mean(0) for k, v in pe.items()})
    U = tnt_factors_from_moments(list(st.stats["l.weight"]))
    P = np.linalg.solve(kron(*U) + 0.3 * np.eye(12), g["l.weight"].reshape(-1))
    np.testing.assert_allclose(up["l.weight"], -P.reshape(3, 4), rtol=1e-12)
    Ub = st.stats["l.bias"][0]  # k = 1: the full block, so exact = per-factor
    np.testing.assert_allclose(up["l.bias"], -np.linalg.solve(Ub + 0.3 * np.eye(3), g["l.bias"]), rtol=1e-12)
    # inverse_schedule: the steps at which the inverses change (T1 = 1, T2 = 3)
    for schedule, want in (("warm-up", [0, 1, 2, 3, 6]), ("periodic", [0, 3, 6])):
        opt = tnt(1.0, damping=0.3, T1=1, T2=3, inverse_schedule=schedule)
        st, changed = opt.init(params), []
        for t in range(8):
            new = opt.update(g, st, params, sampled_grads={k: v.mean(0) * (t + 1) for k, v in pe.items()})[1]
            if not np.array_equal(new.inverses["l.weight"][0], st.inverses["l.weight"][0]):
                changed.append(t)
            st = new
        assert changed == want, schedule


def test_momentum_after_preconditioning():
    opt, params, g, pe = _one_step(momentum_placement="after")
    pe_mean = {k: v.mean(0) for k, v in pe.items()}
    st = opt.init(params)
    u1, st = opt.update(g, st, params, sampled_grads=pe_mean)
    u2, st = opt.update(g, st, params, sampled_grads=pe_mean)
    ref = tnt(1.0, momentum=0.0, decay=0.8, damping=0.3)
    rs = ref.init(params)
    r1, rs = ref.update(g, rs, params, sampled_grads=pe_mean)
    r2, rs = ref.update(g, rs, params, sampled_grads=pe_mean)
    for k in params:  # v_1 = K_1 g, v_2 = 0.5 v_1 + K_2 g
        np.testing.assert_allclose(u1[k], r1[k], rtol=1e-13)
        np.testing.assert_allclose(u2[k], 0.5 * r1[k] + r2[k], rtol=1e-13)


def test_bias_as_extra_input_is_tnt_of_the_joint_tensor():
    opt, params, g, pe = _one_step(bias="extra-input")
    pe_mean = {k: v.mean(0) for k, v in pe.items()}
    up, st = opt.update(g, opt.init(params), params, sampled_grads=pe_mean)
    assert set(st.stats) == {"l.weight"} and [s.shape for s in st.stats["l.weight"]] == [(3, 3), (5, 5)]
    J = np.concatenate([pe_mean["l.weight"], pe_mean["l.bias"][:, None]], axis=1)  # (3, 5)
    S = [J @ J.T, J.T @ J]
    tau = np.trace(S[0])
    F = kron(*S) / tau  # kron U = kron S / tau^(k-1) [derived]; c^(k-1) D/d_i scaling checked elsewhere
    c = (tau / 15) ** 0.5
    U = [S[0] / (c * 5), S[1] / (c * 3)]
    np.testing.assert_allclose(kron(*U), F, rtol=1e-12)
    K = np.kron(np.linalg.inv(U[0] + 0.3 * np.eye(3)), np.linalg.inv(U[1] + 0.3 * np.eye(5)))
    gj = np.concatenate([g["l.weight"], g["l.bias"][:, None]], axis=1).reshape(-1)
    P = (K @ gj).reshape(3, 5)
    np.testing.assert_allclose(up["l.weight"], -P[:, :4], rtol=1e-12)
    np.testing.assert_allclose(up["l.bias"], -P[:, 4], rtol=1e-12)
    ws = tnt_warm_start(opt, opt.init(params), params, [pe_mean])
    assert set(ws.stats) == {"l.weight"}
    with pytest.raises(ValueError, match="conv_modes=2"):
        tnt(1.0, bias="extra-input").init({"c.weight": np.zeros((2, 3, 2, 2)), "c.bias": np.zeros(2)})


# ----------------------------------------------------------------------------- the command
def test_conform_command(tmp_path, capsys):
    js = tmp_path / "r.json"
    assert main(["conform", "--json", str(js), "--out", str(tmp_path / "o")]) == 0  # tnt-ref itself, every case
    rep = json.loads(js.read_text())
    assert rep["verdict"] == "matches" and rep["conventions"] == {k: [v] for k, v in DEFAULT_SETTING.items()}
    assert rep["cases"] == list(CASE_NAMES) and max(rep["worst_error"].values()) <= 1e-12
    assert "matches under {layout=canonical" in capsys.readouterr().out
    assert main(["conform", "--case", "mlp_tanh_softmax:fc1", "--json", str(js)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert main(["conform", "--adapter", "broken_inverse_skipped", "--case", "tensor3", "--out", str(tmp_path / "o")]) == 1
    assert "first difference: inverse on case tensor3" in capsys.readouterr().out
    assert len(list((tmp_path / "o").glob("*.npz"))) == 1
    assert main(["conform", "--adapter", "no_such_module:x"]) == 2
    assert main(["conform", "--adapter", "json"]) == 2
    assert "MODULE:CALLABLE" in capsys.readouterr().err
