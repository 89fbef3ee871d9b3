"""What makes each check fail: one sentence per registered check, shown in the report and docs/theory.md.

For a claim: the observation that turns it red, with the broken code that was seen to do it (the
mutations of ``benchmarks/mutation.py``, ``docs/mutation.md``, and ``tests/test_checker.py``). For a
negative control (expected to fail): what would make it *pass*, i.e. the blindness it rules out.
Data only; :mod:`proofs_check.registry` attaches the sentence to the check of the same name, and a
test requires one for every check.
"""

from __future__ import annotations

__all__ = ["FAILS"]

_RED = "would pass (a red row) if "

FAILS: dict[str, str] = {
    # AS.1
    "AS.1.softmax": "a visited f below f_low, a secant ratio or the power-iteration Hessian norm above the closed-form L, or secant "
                    "ratios that change with the step h (a kink): what its two controls show",
    "AS.1.mlp": "a secant ratio along the checked run above the L estimated at held-out points, or ratios that change with h",
    "AS.1.nonsmooth": _RED + "the checker accepted secant ratios that grow like 1/h at a kink",
    "AS.1.unbounded": _RED + "the checker did not hold f to the claimed f_low",
    # AS.2
    "AS.2.exact": "the gradient train_step hands the optimizer has another mean or variance than the mini-batch mean's (the batch sum: "
                  "tests/test_checker.py), or a recorded g_k is not that gradient",
    "AS.2.sampled": "T > 9 or |V - 1| > 4 s.e. over the recorded g_k: a biased sampler (its control), a constant bias in g "
                    "(tests/test_checker.py)",
    "AS.2.biased_sampler": _RED + "the martingale statistic T did not grow under a sampler that sees a tenth of the data",
    # AS.3
    "AS.3.softmax": "an applied H_k with an eigenvalue outside [kappa_lo, kappa_hi], not symmetric or not finite, or an applied map other "
                    "than the returned kron_i K_i: an indefinite U, a wrong kappa, an update that scales H (tests/test_checker.py)",
    "AS.3.mlp": "as AS.3.softmax, with kappa from the measured gradient bound",
    "AS.3.no_damping": _RED + "an H_k singular to working precision (or refused by the optimizer) were accepted as bounded",
    "AS.3.step_oracle": "any step of tnt_ref's optimizer that is not x_k - alpha (kron_i (U_i + eps I))^{-1} g_k with the spec's EMA "
                        "statistics of the batches before k: a flipped sign, U + eps I not inverted, swapped EMA weights, momentum, "
                        "current-batch statistics (docs/mutation.md)",
    # AS.4
    "AS.4.convergent": "H_k changes when only batch k does at some k (statistics from the current batch at every step or every second "
                       "step: docs/mutation.md), or batch k does not reach H_{k+1} (a detector that sees nothing)",
    "AS.4.algorithm1": "an observed set other than the statistics steps {t > 0: t % T1 == 0}: a statistics or inverse schedule other "
                       "than the authors' (the detector reduced to one step: docs/mutation.md)",
    "AS.4.algorithm1.claim": _RED + "Algorithm 1's reading of the current batch went unseen",
    "AS.4.unperturbed": _RED + "the detector reported dependence where nothing changed (nondeterminism, a comparison that is not exact)",
    # symbolic
    "sym.kron_mode_product": "a Kronecker order or vec convention other than row-major, in sympy or in tnt_ref's mode_products/vec/kron on "
                             "integers",
    "sym.kron_mode_product.colmajor": _RED + "the identity did not depend on the vec convention",
    "sym.moment_identity": "a mode moment without its trace factor, in sympy or in tnt_ref's mode_moments on integer samples",
    "sym.moment_identity.no_trace": _RED + "the moment identity held without its trace factor",
    "sym.scale_nonidentifiability": "a covariance that changes when the factors are rescaled with prod a_i = 1",
    "sym.scale_nonidentifiability.wrong": _RED + "a common rescaling of every factor left the covariance unchanged",
    "sym.estimator_invariants": "TNT's scale rule changed (c = (tau/D)^(1/(k+1)): docs/mutation.md), in sympy or in tnt_ref's "
                                "tnt_factors_from_moments",
    "sym.estimator_without_scale_rule": _RED + "the trace did not depend on the scale rule",
    "sym.kron_eigenvalues": "eigenvalues of A kron B other than the products, in sympy or in tnt_ref's KroneckerMatrix.eigvalsh",
    "sym.kron_eigenvalues.sums": _RED + "sums of eigenvalues were accepted",
    "sym.spectral_bounds": "an AS.3 ingredient that does not hold (a damped inverse above 1/eps, lambda_max(U_i) above its bound), in "
                           "sympy or in tnt_ref's damped_inverse_factors",
    "sym.spectral_bounds.no_damping": _RED + "1/l were bounded as l -> 0+",
    # Theorem 1
    "theorem1.tnt": "runs that are not Algorithm 2 with the stated alpha, eps, beta (a flipped sign, the step 1/(L kappa_hi), "
                    "current-batch statistics, swapped EMA weights, momentum, U + eps I: docs/mutation.md), an H_k outside "
                    "[kappa_lo, kappa_hi], or observed + 2 s.e. above the bound (here only a divergence: the bound is loose by "
                    "construction at kappa_lo / kappa_hi = 0.03)",
    "theorem1.algorithm1": "a run that stopped or an H_k outside [kappa_lo, kappa_hi]; whether Algorithm 1 stays below the bound is "
                           "reported, not required",
    "theorem1.tight": "observed + 2 s.e. above the bound anywhere, or observed / bound below 0.5 everywhere: a step above the theorem's, "
                      "the factor 2 dropped, sigma^2 with L for L^2, the output x_{R+1} (docs/theory.md); its three controls break one "
                      "assumption each",
    "theorem1.biased_noise": _RED + "noise with a non-zero mean stayed below the bound",
    "theorem1.adaptive_H": _RED + "an H_k chosen from the current g_k stayed below the bound",
    "theorem1.unbounded_H": _RED + "an H_k above kappa_hi stayed below the bound",
    # separability
    "tn.separability.size": "a rejection count outside the binomial band: a miscalibrated p-value (the chi-square: its control) or a "
                            "test of true size 0.08 (its control .liberal)",
    "tn.separability.size.liberal": _RED + "the size check could not tell a size of 0.08 from 0.05 (too few replications)",
    "tn.separability.uniform": "KS p < 0.001: bootstrap p-values that are not uniform under H0 (the chi-square's: its control)",
    "tn.separability.size.chi2": _RED + "the liberal chi-square calibration met the size band",
    "tn.separability.uniform.chi2": _RED + "the chi-square p-values looked uniform",
    "tn.separability.power": "a rejection rate below 0.9 at a KL gap of 1.1 nats: a test blind to a strongly non-separable covariance",
    "tn.separability.power_curve": "power that falls as the gap grows, below 0.9 at the largest gap, or 0.5 or more at the smallest (a "
                                   "test that rejects everything: also the control .power.separable)",
    "tn.separability.power.separable": _RED + "the test rejected tensor-normal samples 90% of the time",
    # digits
    "tn.digits.study": "samples that are not draws from the exact block they are compared with (data labels: its control; a batch sum for "
                       "a mean: tests/test_separability.py), or supports and gaps that differ between the sample and population paths",
    "tn.digits.study.data_labels": _RED + "gradients with the data labels looked like draws from the Fisher block",
}
