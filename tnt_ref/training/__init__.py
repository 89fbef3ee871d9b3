"""Training runs: the paper's protocol at reference scale (spec sections 6, 10).

Rooms, from the bottom up; each imports only the rooms below it:

1. :mod:`~tnt_ref.training.problems` — the problems on the bundled digits (model, batch size, the
   optimizers' defaults and learning-rate grids); :mod:`~tnt_ref.training.step` — one optimizer
   step and the one definition of divergence; :mod:`~tnt_ref.training.checkpoint` — checkpoints;
   :mod:`~tnt_ref.training.stats` — means with Student-t intervals, Welch differences, verdicts.
2. :mod:`~tnt_ref.training.runner` — a single run with per-epoch logs, checkpoints, resume.
3. :mod:`~tnt_ref.training.grid` — many runs on joblib (local processes or Dask), written as they
   finish; :mod:`~tnt_ref.training.summary` — means, intervals and verdicts of a comparison.
4. :mod:`~tnt_ref.training.protocol` — the comparison protocol: tuning on a validation split,
   grids widened at their edges, fresh report seeds.

Everything public is importable from here (``from tnt_ref.training import train_step, run, compare``).
"""

from .checkpoint import CheckpointError
from .grid import TIMING_FIELDS, RunSpec, connect, load_records, run_grid, run_one
from .problems import PROBLEMS, Problem, get_problem
from .protocol import DAMPING_GRIDS, REPORT_SEED0, VAL_SIZE, compare
from .runner import RunResult, run
from .stats import difference_ci, mean_ci, verdict
from .step import DIVERGENCE_FACTOR, DivergedError, is_diverged, train_step
from .summary import ACCURACY_MARGIN, LOSS_MARGIN, results_table, summarize

__all__ = [
    "PROBLEMS", "Problem", "get_problem", "DivergedError", "CheckpointError", "train_step", "run", "compare",
    "summarize", "results_table", "is_diverged", "DIVERGENCE_FACTOR", "VAL_SIZE", "RunResult", "DAMPING_GRIDS",
    "REPORT_SEED0", "ACCURACY_MARGIN", "LOSS_MARGIN", "RunSpec", "run_one", "run_grid", "connect", "load_records",
    "TIMING_FIELDS", "mean_ci", "difference_ci", "verdict",
]
