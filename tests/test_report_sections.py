"""The report's sections for the tight instance, separability and the digits study: one line per row, the right
 columns (proofs_check.report; synthetic results, no run needed)."""

from proofs_check.registry import CheckResult
from proofs_check.report import _digits_section, _separability_section, _tight_section


def _cr(name, measured, status="pass", expected="pass"):
    return CheckResult(name, "claim", "derived", "numeric", expected, status, measured)


def test_report_sections_one_line_per_row_and_right_columns(tmp_path):
    rows = [{"m": m, "N": N, "observed": 1.0, "se": 0.1, "bound": 2.0, "observed_over_bound": 0.5} for m in (1, 4) for N in (10, 100)]
    tight = _cr("theorem1.tight", {"L": 1.0, "shape": [2], "eps": 0.1, "kappa_ratio": 0.5, "sigma2": 1.0, "D_f": 1.0, "seeds": 3, "rows": rows})
    ctl = [_cr(n, {"rows": [{**rows[0], "observed": 3.0}]}, "fail", "fail") for n in ("theorem1.biased_noise", "theorem1.adaptive_H", "theorem1.unbounded_H")]
    t = _tight_section([tight, *ctl])
    assert sum(l.startswith("| 1 |") or l.startswith("| 4 |") for l in t) == 4
    assert all("| 1 | 0.2 | 2 |" in l for l in t if l[:5] in ("| 1 |", "| 4 |"))  # 2 s.e. column
    assert sum(l.startswith("| `theorem1.") for l in t) == 3
    sp = {"shape": [3, 4], "n": 40, "df": 63, "replications": 2000, "n_boot": 19, "se": 0.0049, "band": [71, 131],
          "P(pass | true size 0.08)": 0.008}
    curve = {"replications": 200, "n_boot": 49, "gap_at_power_0.5": 0.3,
             "rows": [{"rho": r, "kl_gap": g, "rejection_rate": p, "se": 0.01, "rejection_rate_chi2": 0.5}
                      for r, g, p in ((0.1, 0.02, 0.1), (0.7, 1.1, 1.0))]}
    s = _separability_section([_cr("tn.separability.size", {**sp, "rejections": 100, "rate": 0.05}),
                               _cr("tn.separability.size.chi2", {**sp, "rejections": 416, "rate": 0.208}, "fail", "fail"),
                               _cr("tn.separability.power_curve", curve),
                               _cr("tn.separability.power", {"rejection_rate": 1.0})])
    assert "| `tn.separability.size` | pass (pass) | bootstrap | 100 | 0.0500 | 0.0049 |" in s
    assert "| `tn.separability.size.chi2` | fail (fail) | asymptotic chi-square | 416 | 0.2080 | 0.0049 |" in s
    assert "| 0.1 | 0.02 | 0.00167 | 0.100 | 0.010 | 0.500 |" in s and "| 0.7 | 1.1 | 0.0917 | 1.000 | 0.010 | 0.500 |" in s
    assert any("`tn.separability.power` pass (expected pass): rate 1.000" in l for l in s)
    w = {"problem": "mlp", "layer": "fc2.weight", "point": "init", "epochs_done": 0, "train_loss": None, "support_shape": [2, 4],
         "n": 240, "D": 8, "statistic": 10.0, "null_mean": 9.0, "gaussian_F_mean": None, "z": 0.5, "p_bootstrap": 0.3,
         "p_chi2": 0.2, "sample_gap": 0.02, "population_gap": 0.01, "population_null_directions": 0, "null_entries": [],
         "sample_null_directions": 0, "z_trace": 1.25, "z_top": -0.5, "n_gauss": 0, "bootstrap_singular": 0}
    summ = {"problem": "mlp", "layer": "fc2.weight", "epoch": 0, "seeds": 2, "singular_seeds": 0, "gap_per_dim_mean": 0.1,
            "gap_per_dim_sd": 0.01, "gap_per_dim_min": 0.09, "gap_per_dim_max": 0.11, "mle_rel_frobenius_mean": 0.2, "mle_rel_frobenius_sd": 0.01}
    res = {"epochs": 4, "seed": 0, "draws": 1, "n_boot": 19, "rows": [w, {**w, "point": "end"}],
           "trajectory": {"seeds": [0, 1], "rows": [], "summary": [summ, {**summ, "epoch": 4}]}}
    d = _digits_section([_cr("tn.digits.study", res)], tmp_path)
    assert sum(l.startswith("| mlp | `fc2.weight` | init") or l.startswith("| mlp | `fc2.weight` | end") for l in d) == 2
    assert any(l.endswith("| +1.25 | -0.50 |") for l in d)  # z_trace then z_top
    assert sum(l.startswith("| mlp | `fc2.weight` | 0 |") or l.startswith("| mlp | `fc2.weight` | 4 |") for l in d) == 2
    assert any("smallest possible p = 0.05, so the test can reject at 0.05)" in l for l in d)
