"""The separability LRT (proofs_check.separability): batched flip-flop against the project's mle,
invariance of the statistic, zero KL gap exactly for Kronecker covariances, argument errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from proofs_check.separability import (_kron, _null_entries, _random_factors, batched_lrt_statistics, kl_gap,
                                       lrt_statistic, nonseparable_covariance, null_directions, row_consistent,
                                       separability_df, separability_test, study_point)
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
    from proofs_check.separability import _cross_paths

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
    from proofs_check.separability import digits_study

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
