"""A grid of training runs fanned out on joblib (local processes or a Dask cluster).

* :class:`RunSpec` — one run: (problem, optimizer, learning rate, other hyperparameters, seed,
  epochs or a process-time budget, dtype, validation size, divergence factor, data set). Its
  :meth:`~RunSpec.key` names its file.
* :func:`run_one` — one run with the BLAS threads capped (:func:`tnt_ref.runtime.blas_threads`); returns a JSON record.
* :func:`run_grid` — every spec through ``joblib.Parallel``: ``jobs=1`` serially in this process,
  ``jobs=N`` on N local worker processes (loky), or on a Dask cluster through joblib's ``dask``
  backend (``scheduler="tcp://host:8786"`` or a ``distributed.Client``) with no other change.
  Each record is written to ``runs_dir/<key>.json`` as soon as it comes back, so an interrupted
  grid resumes (``resume=True``) and skips the runs already written.

Every run is a pure function of its spec: its random stream is ``default_rng(seed)`` and the BLAS
runs on one thread (``threads=1``) wherever the run is scheduled, so its history is bit-identical
serially, with ``jobs=2`` and on Dask (``wall_time`` and ``process_time`` are measurements and
differ; every other field is equal, and tested so). Under a process-time budget
(``budget_seconds``) how many steps fit is itself a measurement: such runs agree up to where their
budgets cut them.

Imports :mod:`~tnt_ref.training.runner` (below it); the comparison protocol imports this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from contextlib import nullcontext as _nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .._validation import warn
from ..files import atomic_write_json
from ..runtime import Progress, blas_threads, thread_count
from .checkpoint import history_problem
from .runner import run
from .step import DivergedError

__all__ = ["RunSpec", "run_one", "run_grid", "connect", "load_records", "TIMING_FIELDS"]

#: History fields that are measurements of the machine, not results of the run.
TIMING_FIELDS = ("wall_time", "process_time")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a grid. ``opt_kwargs`` is a sorted tuple of ``(name, value)`` pairs."""

    problem: str
    optimizer: str
    learning_rate: float
    seed: int
    epochs: int | None
    opt_kwargs: tuple = ()
    dtype: str = "float64"
    val_size: int = 0
    divergence_factor: float = 10.0
    batch_size: int | None = None
    budget_seconds: float | None = None  # process-time budget (the paper's protocol); None: epochs only
    data_id: str | None = None  # fingerprint of the IDX data set (tnt_ref.data.load_mnist); None: the digits
    data: str | None = field(default=None, compare=False)  # the folder holding it; not part of the identity
    tags: tuple = field(default=(), compare=False)  # e.g. ("tuning",); not part of the run's identity

    @staticmethod
    def make(problem, optimizer, learning_rate, seed, epochs, opt_kwargs=None, **kw) -> RunSpec:
        return RunSpec(problem, optimizer, float(learning_rate), int(seed), None if epochs is None else int(epochs),
                       tuple(sorted((opt_kwargs or {}).items())), **kw)

    def identity(self) -> dict:
        """Everything that decides the run's result; settings left at ``None`` are left out (older keys stay valid)."""
        d = asdict(self)
        for k in ("tags", "data"):
            d.pop(k)
        for k in ("budget_seconds", "data_id"):
            if d[k] is None:
                d.pop(k)
        d["opt_kwargs"] = dict(self.opt_kwargs)
        return d

    def key(self) -> str:
        """A file name: readable settings and a hash of the full identity."""
        h = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:10]
        kw = "".join(f"_{k}{v:g}" if isinstance(v, float) else "" for k, v in self.opt_kwargs)
        return f"{self.optimizer}_lr{self.learning_rate:g}{kw}_s{self.seed}_{h}"

    def label(self) -> str:
        """For progress lines: 3 significant digits (``lr=3.33e-06``, not ``3.33333e-06``)."""
        kw = "".join(f" {k}={v:.3g}" if isinstance(v, float) else f" {k}={v}" for k, v in self.opt_kwargs)
        return f"{self.optimizer} lr={self.learning_rate:.3g}{kw} seed {self.seed}"


def run_one(spec: RunSpec, threads: int | None = None) -> dict:
    """Run ``spec`` with at most ``threads`` BLAS threads (default: the package's policy,
    :func:`tnt_ref.runtime.thread_count`, 1); return its record (JSON-ready).

    The record holds ``spec`` (the identity), ``config`` (the run's full configuration),
    ``initial_train_loss``, ``history``, ``diverged``, ``message`` and ``last_good_epoch``. A
    diverged run is a result: its good epochs are kept and it is never an error here.
    """
    with blas_threads(threads):
        try:
            r = run(spec.problem, spec.optimizer, spec.learning_rate, epochs=spec.epochs, seed=spec.seed,
                    batch_size=spec.batch_size, progress=False, opt_kwargs=dict(spec.opt_kwargs), dtype=spec.dtype,
                    val_size=spec.val_size, divergence_factor=spec.divergence_factor,
                    budget_seconds=spec.budget_seconds, data=spec.data, on_start=_check_data(spec))
        except DivergedError as err:
            return {"spec": spec.identity(), "config": err.config, "initial_train_loss": err.config["initial_train_loss"],
                    "history": err.history, "diverged": True, "message": str(err), "last_good_epoch": err.last_good_epoch}
    return {"spec": spec.identity(), "config": r.config, "initial_train_loss": r.initial_train_loss,
            "history": r.history, "diverged": False, "message": "", "last_good_epoch": len(r.history)}


def _check_data(spec: RunSpec):
    """An ``on_start`` hook refusing a folder whose data is not the one ``spec`` names (its fingerprint)."""
    def check(config, history):
        got = config.get("data", {}).get("fingerprint")
        if spec.data_id is not None and got != spec.data_id:
            raise ValueError(f"the data in {spec.data} has fingerprint {got}, not {spec.data_id} as the grid was "
                             "planned with; the folder changed while the grid ran.")
    return check


def load_records(runs_dir: str | Path, specs: Sequence[RunSpec]) -> dict:
    """The records already written in ``runs_dir`` for ``specs``: ``{spec: record}``.

    A file that cannot be read, or whose spec differs from the one its name promises, is ignored
    (the run is redone).
    """
    runs_dir = Path(runs_dir)
    done = {}
    for s in specs:
        p = runs_dir / f"{s.key()}.json"
        if p.exists():
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(rec, dict) or history_problem(rec.get("history")) or not isinstance(rec.get("diverged"), bool):
                warn(f"{p} is not a well-formed run record ({history_problem(rec.get('history')) if isinstance(rec, dict) else type(rec).__name__}); "
                     "the run is done again and the file replaced.")
                continue
            if rec.get("spec") == json.loads(json.dumps(s.identity())):
                done[s] = rec
    return done


@contextmanager
def connect(address: str, timeout: float = 20):
    """A ``distributed.Client`` connected to the Dask scheduler at ``address`` (closed on exit).

    Raises
    ------
    ValueError
        Nothing answers at ``address`` within ``timeout`` seconds.
    """
    from dask.distributed import Client  # noqa: PLC0415

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as err:
        raise ValueError(f"`--scheduler` {address!r}: cannot connect to a Dask scheduler there ({err}); "
                         "start one (`dask scheduler`) or check the address.") from None
    try:
        yield client
    finally:
        client.close()


def _backend(jobs: int, scheduler):
    """The context selecting joblib's backend, and the ``n_jobs`` to use inside it."""
    import contextlib  # noqa: PLC0415

    import joblib  # noqa: PLC0415

    if scheduler is None:
        return contextlib.nullcontext(), jobs
    from dask.distributed import Client  # noqa: PLC0415

    stack = contextlib.ExitStack()
    if not isinstance(scheduler, Client):
        stack.enter_context(connect(scheduler))
    stack.enter_context(joblib.parallel_config(backend="dask", wait_for_workers_timeout=60))
    return stack, -1


def run_grid(
    specs: Sequence[RunSpec],
    runs_dir: str | Path,
    *,
    jobs: int = 1,
    scheduler=None,
    resume: bool = True,
    threads: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    describe: Callable[[dict], str] | None = None,
    desc: str = "runs",
) -> list[dict]:
    """Run every spec (those with a record in ``runs_dir`` are skipped when ``resume``); return the records in order.

    Parameters
    ----------
    jobs : int
        Local worker processes (joblib's loky backend); 1 runs in this process. Ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        A Dask scheduler address (``"tcp://10.0.0.1:8786"``) or a client: joblib's ``dask`` backend
        sends every run to the cluster's workers (each needs tnt-ref installed).
    threads : int, optional
        BLAS threads per run, whatever the scheduling (default: the package's policy,
        :func:`tnt_ref.runtime.thread_count`, read here and sent to every worker): 1 keeps runs
        bit-identical across schedules and two runs from fighting over one core.
    progress : bool, optional
        A tqdm bar (run k of N, time left) on a terminal; otherwise (``None`` on a non-terminal, or
        ``False``) ``log`` gets one line per finished run with the same count and estimate
        (:class:`tnt_ref.runtime.Progress`). The count and the estimate cover the runs still to
        do: runs already on disk (``resume``) are counted before the first line.
    desc : str
        The head of the progress line (e.g. ``"tuning round 2"``).
    """
    from joblib import delayed  # noqa: PLC0415

    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"`jobs` must be a positive int; got jobs={jobs!r}.")
    threads = thread_count() if threads is None else threads
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    specs = list(dict.fromkeys(specs))
    done = load_records(runs_dir, specs) if resume else {}
    todo = [s for s in specs if s not in done]
    if log is not None:
        again = f" ({len(done)} of {len(specs)} already done)" if done else ""
        log(f"{desc}: {len(todo)} run{'s' * (len(todo) != 1)} to do{again}")
    if todo:
        bar = Progress(len(todo), desc, "run", enabled=progress, log=log if log is not None else (lambda t: None))
        serial = jobs == 1 and scheduler is None
        ctx, n_jobs = _backend(int(jobs), scheduler) if not serial else (None, 1)
        try:
            with ctx if ctx is not None else _nullcontext():
                if serial:
                    results = (run_one(s, threads) for s in todo)
                else:
                    from joblib import Parallel  # noqa: PLC0415

                    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                        delayed(run_one)(s, threads) for s in todo)
                for rec in results:
                    spec = next(s for s in todo if json.loads(json.dumps(s.identity())) == rec["spec"])
                    atomic_write_json(runs_dir / f"{spec.key()}.json", rec)
                    done[spec] = rec
                    text = describe(rec) if describe else ("diverged" if rec["diverged"] else
                                                          f"train loss {rec['history'][-1]['train_loss']:.4g}")
                    bar.advance(1, f"{spec.label()}: {text}")
        finally:
            bar.close()
    return [done[s] for s in specs]
