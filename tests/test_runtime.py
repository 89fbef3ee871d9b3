"""The machine policy: BLAS threads (one policy for the commands, the grid and the suite) and progress lines."""

from __future__ import annotations

import re

import pytest
from threadpoolctl import threadpool_info

from tnt_ref.cli import main
from tnt_ref.runtime import THREADS_ENV, Progress, blas_threads, format_seconds, thread_count


def _blas_threads_now() -> set:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}



def _require_blas() -> None:
    """The policy caps NumPy's BLAS through threadpoolctl; where threadpoolctl sees no BLAS the policy caps nothing,
    which is a failure of the promise "one BLAS thread per process", not a reason to skip."""
    if not _blas_threads_now():
        pytest.fail("threadpoolctl finds no BLAS library loaded by NumPy: tnt_ref.runtime cannot cap its threads here")

def test_policy_is_one_thread_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert thread_count() == 1
    monkeypatch.setenv(THREADS_ENV, "3")
    assert thread_count() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=f"{THREADS_ENV} must be a positive integer"):
            thread_count()


def test_blas_threads_limits_the_blas(monkeypatch):
    _require_blas()
    monkeypatch.delenv(THREADS_ENV, raising=False)
    with blas_threads(2):
        assert _blas_threads_now() == {2} or max(_blas_threads_now()) <= 2
        with blas_threads() as n:
            assert n == 1 and _blas_threads_now() == {1}
    with pytest.raises(ValueError, match="`threads` must be a positive int"):
        with blas_threads(0):
            pass


def test_every_subcommand_runs_under_the_policy(monkeypatch, capsys):
    """The CLI's entry point applies the policy around the subcommand (here: 1 thread, and the override)."""
    _require_blas()
    import tnt_ref.experiments as E

    seen = []

    def fake(**kw):
        seen.append(_blas_threads_now())
        return []

    monkeypatch.setattr(E, "estimator_study", fake)
    with blas_threads(2):  # outside the command: 2 threads
        monkeypatch.delenv(THREADS_ENV, raising=False)
        assert main(["estimators"]) == 0
        monkeypatch.setenv(THREADS_ENV, "2")
        assert main(["estimators"]) == 0
        monkeypatch.setenv(THREADS_ENV, "zero")
        assert main(["estimators"]) == 2
    assert seen == [{1}, {2}]
    assert f"{THREADS_ENV} must be a positive integer" in capsys.readouterr().err


def test_progress_lines_count_and_estimate():
    lines = []
    bar = Progress(4, "tuning round 2", "run", enabled=False, log=lines.append)
    bar.advance(1, "sgd lr=0.1 seed 0: train loss 0.5")
    bar.advance(3, "done")
    bar.close()
    assert re.fullmatch(r"tuning round 2 \[1/4\] sgd lr=0\.1 seed 0: train loss 0\.5 \(\d\d:\d\d elapsed, ~\d\d:\d\d left\)",
                        lines[0]), lines[0]
    assert lines[1].startswith("tuning round 2 [4/4] done")
    # work units (not steps): a percentage, and at most one line per min_interval (the last always)
    lines.clear()
    bar = Progress(100.0, "fisher", "", count=False, enabled=False, log=lines.append, min_interval=3600)
    for _ in range(10):
        bar.advance(10)
    assert len(lines) == 2 and "[ 10%]" in lines[0] and "[100%]" in lines[1]
    assert format_seconds(59.6) == "01:00" and format_seconds(3600) == "1:00:00"


def test_proofs_check_blas_threads_go_through_the_one_policy(monkeypatch):
    """``python -m proofs_check --blas-threads N`` (issue 21's flag) is the package's policy (tnt_ref.runtime), not a
    second mechanism: N threads in this process and in every ``--jobs`` worker, the policy's default without it."""
    _require_blas()
    import joblib

    import proofs_check
    import proofs_check.registry as R
    from proofs_check.__main__ import main as check_main

    proofs_check.load_checks()
    monkeypatch.delenv(THREADS_ENV, raising=False)
    seen = []
    name = "sym.moment_identity"
    real = R.CHECKS[name]
    monkeypatch.setitem(R.CHECKS, name, real.__class__(**{**real.__dict__, "fn": lambda profile: (
        seen.append(max(_blas_threads_now())), True)[1:] + ({},)}))
    run = ["--profile", "quick", "--checks", name, "--report", ""]
    with blas_threads(4):  # outside the command: 4 threads
        top = max(_blas_threads_now())
        assert check_main([*run, "--blas-threads", "2"]) == 0
        assert check_main(run) == 0
        monkeypatch.setenv(THREADS_ENV, "2")
        assert check_main(run) == 0
        monkeypatch.delenv(THREADS_ENV)
        assert check_main([*run, "--blas-threads", "0"]) == 2  # no second way around the policy
        # --jobs: each worker runs its module under the same policy, with the threads read in the parent
        monkeypatch.setattr(joblib, "Parallel", lambda n_jobs, return_as: (lambda tasks: [f(*a, **k) for f, a, k in tasks]))
        assert check_main([*run, "--jobs", "2", "--blas-threads", "2"]) == 0
        assert check_main([*run, "--jobs", "2"]) == 0
        proofs_check._run_module(real.where.rsplit(".", 1)[0], [name], "quick", 1)  # a worker: its own limit
    assert seen == [min(2, top), 1, min(2, top), min(2, top), 1, 1]
