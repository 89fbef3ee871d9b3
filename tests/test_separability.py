"""The separability LRT (proofs_check.separability): batched flip-flop against the project's mle,
invariance of the statistic, zero KL gap exactly for Kronecker covariances, argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from proofs_check.separability import (_kron, _random_factors, batched_lrt_statistics, kl_gap, lrt_statistic,
                                       nonseparable_covariance, separability_df, separability_test)
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
