"""Wall time of one grid of training runs with ``--jobs 2`` against ``--jobs 1``, measured in one run (issue 13).

The grid: ``--runs`` runs of ``--problem`` (SGD-m and TNT alternating, one seed each) of
``--epochs`` epochs, the same specs ``tnt-ref compare`` builds. It runs twice into fresh folders:
serially (``jobs=1``), then on 2 worker processes (``jobs=2``, joblib's loky backend, one BLAS
thread per run, worker start-up included). The ratio is ``wall(jobs=2) / wall(jobs=1)``; the
target on the 2-core machine is <= 0.7. The histories of both are checked to be equal (timing
fields aside). The load average before and after is printed: on a machine shared with other
work the ratio moves with it.

    python benchmarks/bench_grid.py [--problem autoencoder] [--runs 16] [--epochs 25] [--out bench-grid.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from tnt_ref.training import TIMING_FIELDS, RunSpec, run_grid
from tnt_ref.training import VAL_SIZE


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--problem", default="autoencoder", help="autoencoder, mlp or cnn (default: %(default)s)")
    p.add_argument("--runs", type=int, default=16, help="runs in the grid (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=25, help="epochs per run (default: %(default)s)")
    p.add_argument("--out", default=None, help="write the measurements to this JSON file (default: print only)")
    a = p.parse_args()
    lrs = {"autoencoder": (0.03, 1e-4), "mlp": (0.1, 1e-4), "cnn": (0.1, 1e-5)}[a.problem]
    specs = [RunSpec.make(a.problem, "sgd" if i % 2 == 0 else "tnt", lrs[i % 2], i // 2, a.epochs, val_size=VAL_SIZE)
             for i in range(a.runs)]
    res = {"problem": a.problem, "runs": a.runs, "epochs": a.epochs, "cpus": os.cpu_count(), "machine": platform.machine(),
           "load_before": _load()}
    walls, recs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            t0 = time.perf_counter()
            recs[jobs] = run_grid(specs, os.path.join(tmp, f"jobs{jobs}"), jobs=jobs, resume=False, progress=False)
            walls[jobs] = time.perf_counter() - t0
            print(f"jobs={jobs}: {walls[jobs]:.1f} s for {a.runs} runs (load {_load()})", flush=True)
    strip = [[{k: v for k, v in h.items() if k not in TIMING_FIELDS} for h in r["history"]] for r in recs[1]]
    same = strip == [[{k: v for k, v in h.items() if k not in TIMING_FIELDS} for h in r["history"]] for r in recs[2]]
    res.update({"wall_jobs1_s": walls[1], "wall_jobs2_s": walls[2], "ratio": walls[2] / walls[1],
                "histories_identical": same, "load_after": _load()})
    print(f"ratio wall(jobs=2) / wall(jobs=1) = {res['ratio']:.3f} (target <= 0.7); histories identical: {same}; "
          f"load average before {res['load_before']}, after {res['load_after']}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
