"""The separability LRT (proofs_check.separability) and the digits study (proofs_check.digits_study): batched flip-flop against the project's mle,
invariance of the statistic, zero KL gap exactly for Kronecker covariances, argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_check.digits_study import (_cross_paths, _null_entries, cov_mode_moments, population_gap, row_consistent,
                                       study_point)
from proofs_check.separability import (_kron, _random_factors, batched_lrt_statistics, kl_gap, lrt_statistic,
                                       nonseparable_covariance, null_directions, separability_df, separability_test)
from tnt_ref.tensor_normal import TensorNormal


def test_batched_statistics_match_the_project_mle():
    rng = np.random.default_rng(0)
    Gs = TensorNormal(_random_factors((3, 4), rng)).sample(4 * 40, rng).reshape(4, 40, 3, 4)
    np.testing.assert_allclose(batched_lrt_statistics(Gs), [lrt_statistic(g)[0] for g in Gs], rtol=1e-9, atol=1e-9)
    G3 = rng.standard_normal((3, 30, 2, 2, 3))
    np.testing.assert_allclose(batched_lrt_statistics(G3), [lrt_statistic(g)[0] for g in G3], rtol=1e-9, atol=1e-9)


def test_statistic_is_invariant_under_mode_transformations():
    rng = np.random.default_rng(1)
    G = rng.standard_normal((40, 3, 4))
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((4, 4))
    GT = np.einsum("ia,nab,jb->nij", A, G, B)
    assert lrt_statistic(GT)[0] == pytest.approx(lrt_statistic(G)[0], rel=1e-8)


def test_kl_gap_is_zero_exactly_for_kronecker_and_positive_otherwise():
    rng = np.random.default_rng(2)
    assert kl_gap(_kron(_random_factors((3, 4), rng)), (3, 4))[0] < 1e-10
    assert kl_gap(nonseparable_covariance(), (3, 4))[0] > 0.5


def test_df_and_errors():
    assert separability_df((3, 4)) == 63
    with pytest.raises(ValueError, match="needs n > D"):
        lrt_statistic(np.zeros((12, 3, 4)))
    with pytest.raises(ValueError, match="`n_boot` must be a positive int"):
        separability_test(np.random.default_rng(0).standard_normal((40, 3, 4)), n_boot=0, rng=np.random.default_rng(0))


def test_power_on_a_nonseparable_sample_and_no_rejection_on_a_separable_one():
    rng = np.random.default_rng(3)
    L = np.linalg.cholesky(nonseparable_covariance())
    G = (rng.standard_normal((40, 12)) @ L.T).reshape(40, 3, 4)
    assert separability_test(G, n_boot=49, rng=rng)["p_bootstrap"] <= 0.05


# ----------------------------------------------------------------------------- the digits study's pieces
def _toy_softmax():
    """A 6-4-3 tanh MLP on 240 Gaussian inputs: fc2.weight is (3, 4), support (2, 4), D = 8."""
    from tnt_ref.models.network import mlp

    net = mlp([6, 4, 3], "tanh", "softmax_cross_entropy")
    rng = np.random.default_rng(3)
    params = net.init(rng)
    return net, params, rng.standard_normal((240, 6))


def test_lrt_refuses_a_singular_sample_covariance():
    G = np.random.default_rng(0).standard_normal((50, 3, 4))
    G[:, 1, 2] = 0.0  # one dead entry: every mode moment stays non-singular, Cov(vec G) does not
    assert null_directions(np.einsum("ni,nj->ij", G.reshape(50, -1), G.reshape(50, -1))) == 1
    with pytest.raises(ValueError, match=r"sample covariance of `G` is singular \(1 of 12"):
        lrt_statistic(G)


def test_null_entries_name_a_dead_weight_and_only_a_coordinate_aligned_null_space():
    F = np.diag([1.0, 2.0, 0.0, 3.0, 4.0, 5.0])
    assert _null_entries(F, None, (2, 3)) == [[0, 2]]
    R = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 6)))[0]
    assert _null_entries(R @ F @ R.T, None, (2, 3)) == []
    # several dead weights: a repeated zero eigenvalue, whose eigenvectors come out rotated
    F3 = np.diag([1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    assert _null_entries(F3, None, (3, 4)) == [[0, 1], [0, 3], [1, 1]]
    # a projection P (orthonormal columns) keeps the entries in the parameter's own coordinates
    P = np.eye(12)[:, [0] + list(range(2, 12))]  # drops coordinate 1
    assert _null_entries(F3, P, (3, 4)) == [[0, 3], [1, 1]]


def test_cross_paths_match_layer_seed_and_epoch_and_refuse_different_supports():
    from proofs_check.digits_study import _cross_paths

    row = {"problem": "cnn", "layer": "conv1.weight", "point": "mid", "seed": 0, "epochs_done": 10,
           "population_gap": 80.0, "support_shape": [8, 1, 9]}
    other = {"problem": "cnn", "layer": "conv2.weight", "seed": 0, "epoch": 10, "population_gap": 3000.0, "support_shape": [16, 8, 9]}
    same = {"problem": "cnn", "layer": "conv1.weight", "seed": 0, "epoch": 10, "population_gap": 80.0, "support_shape": [8, 1, 9]}
    off = dict(same, population_gap=99.0)
    assert _cross_paths([row], [other, same])[0]["agree"]
    assert not _cross_paths([row], [other, off])[0]["agree"]
    assert not _cross_paths([row], [dict(same, support_shape=[7, 1, 9])])[0]["agree"]
    assert _cross_paths([row], [other]) == []


def test_study_point_sampled_labels_match_the_exact_block_and_mode_labels_do_not():
    net, params, X = _toy_softmax()
    row = study_point(net, params, X, "fc2.weight", n_boot=19, rng=np.random.default_rng(4))
    assert row["support_shape"] == [2, 4] and row["n"] == 240 and row["labels"] == "sampled"
    assert row["exact_paths_rel_diff"] < 1e-10  # label enumeration == Lambda = S S^T path
    assert row_consistent(row), row
    assert row["sample_null_directions"] == row["population_null_directions"] == 0
    assert 0 < row["p_bootstrap"] <= 1 and math.isfinite(row["statistic"]) and row["population_gap"] >= 0
    # mutation: the most likely label instead of a sampled one (not draws from the Fisher's distribution)
    mode = np.argmax(np.asarray(net.loss_fn.probs(net.predict(params, X))), axis=1)
    bad = study_point(net, params, X, "fc2.weight", n_boot=19, rng=np.random.default_rng(4), labels=mode)
    assert bad["labels"] == "given" and not row_consistent(bad), bad
    assert bad["z_trace"] < -4


def test_study_point_draws_multiply_the_samples():
    net, params, X = _toy_softmax()
    row = study_point(net, params, X[:40], "fc2.weight", n_boot=9, rng=np.random.default_rng(5), draws=3)
    assert row["n"] == 120 and row["draws"] == 3 and row_consistent(row)


def test_batched_statistic_is_infinite_for_a_singular_set_only():
    rng = np.random.default_rng(6)
    Gs = rng.standard_normal((3, 30, 2, 3))
    Gs[1, :, 0, 2] = 0.0
    lam = batched_lrt_statistics(Gs)
    assert np.isinf(lam[1]) and np.all(np.isfinite(lam[[0, 2]]))
    assert lam[0] == pytest.approx(lrt_statistic(Gs[0])[0], rel=1e-8)


def test_study_point_and_digits_study_refuse_bad_arguments():
    from proofs_check.digits_study import digits_study

    net, params, X = _toy_softmax()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="`n_boot` must be a positive int"):
        study_point(net, params, X, "fc2.weight", n_boot=0, rng=rng)
    with pytest.raises(TypeError, match="`draws` must be an integer"):
        study_point(net, params, X, "fc2.weight", n_boot=9, rng=rng, draws=1.5)
    with pytest.raises(ValueError, match=r"unknown parameter 'fc9.weight'; valid: \['fc1.bias'"):
        study_point(net, params, X, "fc9.weight", n_boot=9, rng=rng)
    with pytest.raises(TypeError, match="rng"):
        study_point(net, params, X, "fc2.weight", n_boot=9, rng=0)
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        digits_study("fast")
    with pytest.raises(ValueError, match="`draws` must be a positive int"):
        digits_study("quick", draws=0)


# ----------------------------------------------------------------------------- from a mutation-testing pass
def test_z_scores_are_standard_normal_across_label_draws():       # mutation M02, M04
    net, params, X = _toy_softmax()
    z = [study_point(net, params, X[:40], "fc2.weight", n_boot=1, rng=np.random.default_rng(100 + s), draws=3)["z_trace"]
         for s in range(40)]
    assert 0.6 < np.std(z, ddof=1) < 1.5, np.std(z, ddof=1)


def test_study_point_row_is_internally_consistent():             # mutation M12, M14, M16, M15, M08
    net, params, X = _toy_softmax()
    r = study_point(net, params, X, "fc2.weight", n_boot=19, rng=np.random.default_rng(4))
    assert r["p_bootstrap"] >= 1 / 20 and r["top_direction_rel_diff"] < 1e-10
    assert r["z"] == pytest.approx((r["statistic"] - r["null_mean"]) / r["null_sd"])
    assert r["sample_gap"] == pytest.approx(r["statistic"] / (2 * r["n"]))
    from tnt_ref.fisher import exact_fisher_blocks
    from tnt_ref.tensor import tensor_shape
    F = exact_fisher_blocks(net, params, X, names=["fc2.weight"])["fc2.weight"]
    pg = population_gap(F, tensor_shape(params["fc2.weight"].shape))
    assert pg["support_shape"] == r["support_shape"] and r["population_gap"] == pytest.approx(pg["population_gap"], rel=1e-8)


def test_sample_gap_is_the_kl_gap_of_the_sample_covariance():    # mutation M14 without tautology
    G = np.random.default_rng(0).standard_normal((40, 3, 4))
    S = G.reshape(40, -1).T @ G.reshape(40, -1) / 40
    assert lrt_statistic(G)[0] / 80 == pytest.approx(kl_gap(S, (3, 4))[0], rel=1e-6)


def test_null_directions_is_scale_invariant():                   # mutation M09
    assert null_directions(1e-14 * np.eye(3)) == 0
    assert null_directions(1e14 * np.diag([1.0, 1e-14, 1.0])) == 1


def test_null_entries_map_back_through_the_projection():         # mutation M17
    F = np.diag([1.0, 2.0, 0.0, 3.0, 4.0, 5.0])                  # entry (0, 2) of a (2, 3) weight dead
    Q1 = np.linalg.qr(np.random.default_rng(2).standard_normal((2, 2)))[0]
    P = _kron([Q1, np.eye(3)])
    assert _null_entries(F, P, (2, 3)) == [[0, 2]]


def test_row_consistent_needs_every_part():                      # mutation M19, M20
    ok = {"z_trace": 0.0, "z_top": 0.0, "exact_paths_rel_diff": 0.0, "top_direction_rel_diff": 0.0}
    assert row_consistent(ok)
    assert not row_consistent({**ok, "z_top": 5.0})
    assert not row_consistent({**ok, "z_trace": -5.0})
    assert not row_consistent({**ok, "exact_paths_rel_diff": 1e-6})
    assert not row_consistent({**ok, "top_direction_rel_diff": 1e-6})


def test_population_gap_kronecker_dead_weight_and_nonseparable():  # mutation M23-M26, M31, M32
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 3)); A = A @ A.T + np.eye(3)
    B = rng.standard_normal((4, 4)); B = B @ B.T + np.eye(4)
    r = population_gap(np.kron(A, B), (3, 4))
    assert r["support_shape"] == [3, 4] and r["population_gap"] < 1e-10 and r["mle_rel_frobenius"] < 1e-8
    C = nonseparable_covariance((3, 4))
    r = population_gap(C, (3, 4))
    assert r["population_gap"] == pytest.approx(kl_gap(C, (3, 4))[0], rel=1e-8)
    # softmax-like mode: 1^T G_(1) = 0 removes one row dimension, the gap is that of the projected block
    Q = np.linalg.qr(np.vstack([np.ones(3), rng.standard_normal((2, 3))]).T)[0][:, 1:]
    Cp = nonseparable_covariance((2, 4), seed=7)
    P = np.kron(Q, np.eye(4))
    r = population_gap(P @ Cp @ P.T, (3, 4))
    assert r["support_shape"] == [2, 4] and r["population_gap"] == pytest.approx(kl_gap(Cp, (2, 4))[0], rel=1e-6)
    # one dead weight: singular on the support, coordinate-aligned
    d = np.ones(12); d[6] = 0.0
    M = np.diag(d) @ C @ np.diag(d)
    r = population_gap(M, (3, 4), (3, 4))
    assert r["population_null_directions"] == 1 and r["null_kind"] == "dead weights" and r["null_entries"] == [[1, 2]]
    assert math.isinf(r["population_gap"])
    # mode moments: partial traces, checked against an explicit einsum
    T = C.reshape(3, 4, 3, 4)
    M0, M1 = cov_mode_moments(C, (3, 4))
    np.testing.assert_allclose(M0, np.einsum("ajbj->ab", T)); np.testing.assert_allclose(M1, np.einsum("iaib->ab", T))


def test_cross_paths_flags_a_disagreement_and_matches_every_row():  # mutation M27-M29
    row = {"problem": "mlp", "layer": "fc2.weight", "seed": 0, "epochs_done": 2, "point": "mid", "population_gap": 1.0,
           "support_shape": [9, 64]}
    traj = [{"problem": "mlp", "layer": "fc2.weight", "seed": 0, "epoch": 2, "population_gap": 1.1, "support_shape": [9, 64]}]
    (p,) = _cross_paths([row], traj)
    assert p["same_support"] and not p["agree"]
    (p,) = _cross_paths([row], [{**traj[0], "population_gap": 1.0}])
    assert p["agree"] and p["rel_diff"] == 0.0


def test_mc_pvalue_counts_ties_and_infinite_null_sets():
    from proofs_check.separability import mc_pvalue

    assert mc_pvalue(np.array([1.0, 2.0, 3.0]), 2.0) == 3 / 4  # ties count as at least as extreme
    assert mc_pvalue(np.array([np.inf, 1.0]), np.inf) == 2 / 3  # an infinite statistic: only singular null sets count
    assert mc_pvalue(np.array([5.0, 6.0]), 0.0) == 1.0


def test_p_bootstrap_is_a_monte_carlo_p_value():                   # mutation M12
    net, params, X = _toy_softmax()
    r = study_point(net, params, X, "fc2.weight", n_boot=19, rng=np.random.default_rng(4))
    k = r["p_bootstrap"] * 20
    assert abs(k - round(k)) < 1e-9 and 1 <= round(k) <= 20


def test_population_gap_keeps_a_small_genuine_direction_and_reports_the_projection_error():  # mutation M24, M31
    from tnt_ref.tensor_normal_mle import mle
    A = np.diag([1.0, 1.0, 1e-5]); B = np.diag([1.0, 2.0, 3.0, 4.0])
    C = nonseparable_covariance((3, 4))
    D = np.kron(np.sqrt(A), np.eye(4)); F = D @ C @ D
    r = population_gap(F, (3, 4))
    assert r["support_shape"] == [3, 4] and r["population_gap"] == pytest.approx(kl_gap(F, (3, 4))[0], rel=1e-6)
    K = _kron(mle(covariance=C, shape=(3, 4), tol=1e-12, max_iter=1000).factors)
    assert population_gap(C, (3, 4))["mle_rel_frobenius"] == pytest.approx(np.linalg.norm(C - K) / np.linalg.norm(C), rel=1e-6)


def test_population_and_sample_singularity_are_told_apart():       # mutation M22 (and M13's singular branch)
    net, params, X = _toy_softmax()
    Xd = np.repeat(X[:5], 2, axis=0)                               # 10 samples, rank(S) <= 5 < D = 8; F over 10 images is not singular
    y = np.repeat(np.arange(5) % 3, 2)
    r = study_point(net, params, Xd, "fc2.weight", n_boot=9, rng=np.random.default_rng(0), labels=y)
    assert r["sample_null_directions"] > 0 and math.isinf(r["statistic"])
    assert r["population_null_directions"] == 0 and math.isfinite(r["population_gap"])
    assert r["p_bootstrap"] == pytest.approx((1 + r["bootstrap_singular"]) / 10)


# ----------------------------------------------------------------------------- issue 21: size, uniformity, power, mini-batches
def test_separability_tests_rows_are_the_single_set_test():
    """The vectorised test the size study runs: statistic = the project's mle path, p-values from its own bootstrap."""
    from proofs_check.separability import separability_tests

    rng = np.random.default_rng(8)
    Gs = TensorNormal(_random_factors((3, 4), rng)).sample(3 * 40, rng).reshape(3, 40, 3, 4)
    r = separability_tests(Gs, n_boot=19, rng=np.random.default_rng(9))
    np.testing.assert_allclose(r["statistic"], [lrt_statistic(g)[0] for g in Gs], rtol=1e-9)
    for b in range(3):
        boot, lam = r["bootstrap"][b], r["statistic"][b]
        assert r["p_bootstrap"][b] == (1 + np.sum(boot >= lam)) / 20
        j = np.sum(boot > lam)
        assert j / 20 <= r["p_uniform"][b] <= (j + 1) / 20
    one = separability_test(Gs[0], n_boot=19, rng=np.random.default_rng(9))
    assert one["statistic"] == pytest.approx(r["statistic"][0], rel=1e-12) and one["p_bootstrap"] == r["p_bootstrap"][0]


def test_size_band_and_its_power_against_a_liberal_test():
    from scipy import stats

    from proofs_check.separability import SIZE_REPS, _band_result, size_band

    lo, hi = size_band(2000)
    assert (lo, hi) == (71, 131)
    assert stats.binom.cdf(lo - 1, 2000, 0.05) <= 0.001 and stats.binom.sf(hi, 2000, 0.05) <= 0.001
    assert _band_result(100, 2000, 0.05)["in_band"] and not _band_result(160, 2000, 0.05)["in_band"]
    assert _band_result(100, SIZE_REPS, 0.05)["P(pass | true size 0.08)"] < 0.02  # enough replications to fail a size of 0.08


def test_minibatch_rows_match_F_over_m_and_a_batch_sum_does_not():
    """Mini-batch means of sampled-label gradients have covariance F / m (the z-scores), a batch sum does not."""
    from proofs_check.digits_study import point_context, sample_gradients, study_row

    net, params, X = _toy_softmax()
    ctx = point_context(net, params, X, "fc2.weight")
    rng = np.random.default_rng(11)
    G = sample_gradients(ctx, "mini-batch m=4", rng)
    assert G.shape == (240, 3, 4)
    row = study_row(ctx, G, obj="mini-batch m=4", n_boot=9, rng=rng)
    assert row["m"] == 4 and row["n"] == 240 and row_consistent(row), row
    bad = study_row(ctx, 4 * G, obj="mini-batch m=4", n_boot=9, rng=rng)
    assert not row_consistent(bad) and bad["z_trace"] > 4


def test_shared_null_is_used_for_a_regular_row_and_the_share_is_its_definition():
    from proofs_check.digits_study import point_context, sample_gradients, study_row
    from proofs_check.separability import _bootstrap_stats

    net, params, X = _toy_softmax()
    ctx = point_context(net, params, X, "fc2.weight")
    rng = np.random.default_rng(12)
    G = sample_gradients(ctx, "per-example", rng)
    null = _bootstrap_stats([np.eye(2), np.eye(4)], 240, (2, 4), 19, rng)
    row = study_row(ctx, G, obj="per-example", n_boot=19, rng=rng, null=null, n_gauss=3)
    assert row["bootstrap"] == "shared" and row["p_bootstrap"] == pytest.approx((1 + np.sum(null >= row["statistic"])) / 20)
    if row["covariance_share"] is not None:
        assert row["covariance_share"] == pytest.approx((row["gaussian_F_mean"] - row["null_mean"]) / (row["statistic"] - row["null_mean"]))


def test_the_quick_profile_can_reject_at_005_and_says_so():
    """With 9 bootstrap draws the smallest p-value is 0.1, so the quick profile could never reject at 0.05 (issue 25).
    Its 19 draws reach 0.05: on non-separable gradients (the toy MLP's, at 1200 inputs) the row's p is that floor,
    and the console line says so."""
    from proofs_check.digits_study import LEVEL, N_BOOT, can_reject, format_row
    from tnt_ref.models.network import mlp

    assert not can_reject(9) and can_reject(N_BOOT["quick"]) and can_reject(N_BOOT["full"]) and LEVEL == 0.05
    net = mlp([6, 4, 3], "tanh", "softmax_cross_entropy")
    rng = np.random.default_rng(3)
    params = net.init(rng)
    X = 3 * rng.standard_normal((1200, 6))  # saturated tanh units: per-example gradients far from a tensor normal
    row = study_point(net, params, X, "fc2.weight", n_boot=N_BOOT["quick"], rng=np.random.default_rng(4))
    assert row["p_bootstrap"] == pytest.approx(1 / (N_BOOT["quick"] + 1)) and row["p_bootstrap"] <= LEVEL, row["z"]
    assert "(the smallest possible)" in format_row({**row, "problem": "toy", "point": "init", "seed": 0, "seconds": 0.0})
