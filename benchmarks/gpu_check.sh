#!/usr/bin/env bash
# The one prepared device check (issue 14): the CuPy tests, then the GPU benchmark, all under $OUT.
#
# Prepare, here (a machine with PyPI), once per checkout:
#     bash benchmarks/gpu_check.sh prepare      # wheels the device image lacks -> .wheels/ (git-ignored)
# Run, on the lent GPU machine (no network; Python 3.12, numpy, scipy, cupy-cuda13x, pytest, ... preinstalled),
# through the device tool with carry [".wheels"]:
#     bash benchmarks/gpu_check.sh
# Steps, each with its own time limit so that the whole stays under 8 minutes, and each writing its
# own files, so a failing benchmark never loses the test results:
#   0. environment: nvidia-smi, versions                     -> $OUT/env.txt
#   1. pytest -k cupy (the xp-parametrized suite + tests/test_gpu.py)  -> $OUT/pytest-cupy.log, .xml
#   2. benchmarks/bench_gpu.py (autoencoder steps, Kronecker solve)    -> $OUT/bench.log, bench_gpu.json
# Exit status: 2 without a usable GPU (said in one line), else pytest's status, or 1 if the benchmark failed.
set -u
cd "$(dirname "$0")/.."
WHEELS=.wheels

if [ "${1:-}" = "prepare" ]; then
  mkdir -p "$WHEELS"
  python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d "$WHEELS" \
    "array-api-compat>=1.9" "array-api-strict>=2.0" || exit 1
  grep -qx "/$WHEELS/" .git/info/exclude 2>/dev/null || echo "/$WHEELS/" >> .git/info/exclude
  ls -l "$WHEELS"
  exit 0
fi

OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/tnt-ref-pylibs "$WHEELS"/*.whl > "$OUT/pip.log" 2>&1 \
    || { echo "gpu_check: installing the carried wheels failed, see $OUT/pip.log" >&2; exit 1; }
  export PYTHONPATH="/tmp/tnt-ref-pylibs:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

if ! "$PY" -c "from tnt_ref.backend import cupy_available; import sys; sys.exit(0 if cupy_available() else 1)" 2> "$OUT/import.log"; then
  echo "gpu_check: no usable GPU here (CuPy missing, no CUDA device, or tnt_ref not importable: see $OUT/import.log); nothing was run." >&2
  exit 2
fi

{
  date -u; nvidia-smi 2>&1 || true
  "$PY" -c "import sys, numpy, scipy, cupy; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'cupy', cupy.__version__); print('cuda runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion())"
} > "$OUT/env.txt" 2>&1

timeout 300 "$PY" -m pytest -q -k cupy -p no:cacheprovider --continue-on-collection-errors \
  --junitxml="$OUT/pytest-cupy.xml" tests > "$OUT/pytest-cupy.log" 2>&1
tests_rc=$?
tail -n 5 "$OUT/pytest-cupy.log"

timeout 240 "$PY" benchmarks/bench_gpu.py --out "$OUT" > "$OUT/bench.log" 2>&1
bench_rc=$?
cat "$OUT/bench.log"
[ $bench_rc -eq 0 ] || echo "gpu_check: the benchmark failed (status $bench_rc); the test results are in $OUT/pytest-cupy.log" >&2

[ $tests_rc -ne 0 ] && exit $tests_rc
[ $bench_rc -ne 0 ] && exit 1
exit 0
