#!/usr/bin/env bash
# The one prepared device check (issue 14): the CuPy tests, then the GPU benchmark, all under $OUT.
#
# Prepare, here (a machine with PyPI), once per checkout:
#     bash benchmarks/gpu_check.sh prepare      # wheels the device image lacks -> .wheels/ (git-ignored)
# (it also copies Debian's Fashion-MNIST, when installed here, to .data/fashion-mnist, git-ignored, for `train`).
# Run, on the lent GPU machine (no network; Python 3.12, numpy, scipy, cupy-cuda13x, pytest, ... preinstalled),
# through the device tool with carry [".wheels", ".data"]:
#     bash benchmarks/gpu_check.sh            # the check below
#     bash benchmarks/gpu_check.sh train      # if device time is left: budgeted runs of the paper's MNIST
#                                             # autoencoder on the GPU (TNT and SGD-m, 60 s of process time each)
# Steps, each with its own time limit so that the whole stays under 8 minutes, and each writing its
# own files, so a failing benchmark never loses the test results:
#   0. environment: nvidia-smi, versions                     -> $OUT/env.txt
#   1. pytest -k cupy (the xp-parametrized suite, tests/test_backend_reach.py: every optimizer, the estimators,
#      the conformance harness judging tnt-ref on CuPy, the MNIST autoencoder; tests/test_gpu.py) -> $OUT/pytest-cupy.log, .xml
#   2. benchmarks/bench_gpu.py (autoencoder steps, Kronecker solve)    -> $OUT/bench.log, bench_gpu.json
# Exit status: 2 without a usable GPU or (train) without the carried data (said in one line), else pytest's status,
# or 1 if the benchmark failed.
set -u
cd "$(dirname "$0")/.."
WHEELS=.wheels
DATA=${GPU_CHECK_DATA:-.data/fashion-mnist}
FMNIST_SRC=/usr/share/datasets/fashion-mnist

case "${1:-}" in
  ""|prepare|train) ;;
  *) echo "gpu_check: unknown step '$1'; use no argument (the check), prepare, or train." >&2; exit 2 ;;
esac

if [ "${1:-}" = "prepare" ]; then
  mkdir -p "$WHEELS"
  python -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d "$WHEELS" \
    "array-api-compat>=1.9" "array-api-strict>=2.0" || exit 1
  grep -qx "/$WHEELS/" .git/info/exclude 2>/dev/null || echo "/$WHEELS/" >> .git/info/exclude
  ls -l "$WHEELS"
  if [ -d "$FMNIST_SRC" ]; then  # the data of `train` (about 30 MB; the device has no network)
    mkdir -p "$DATA" && cp -p "$FMNIST_SRC"/*-ubyte* "$DATA"/ || exit 1
    grep -qx "/.data/" .git/info/exclude 2>/dev/null || echo "/.data/" >> .git/info/exclude
    ls -l "$DATA"
  else
    echo "gpu_check prepare: $FMNIST_SRC is not here (apt-get install dataset-fashion-mnist); \`train\` will have no data."
  fi
  exit 0
fi

if [ "${1:-}" = "train" ] && [ ! -f "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -f "$DATA/train-images-idx3-ubyte" ]; then
  echo "gpu_check train: no data in $DATA (run \`bash benchmarks/gpu_check.sh prepare\` where Fashion-MNIST is installed, and carry .data); nothing was run." >&2
  exit 2
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

if [ "${1:-}" = "train" ]; then  # budgeted runs on the GPU: the paper's protocol, one seed each
  rc=0
  for run in "tnt 1e-4" "sgd 1e-3"; do
    set -- $run
    timeout 200 "$PY" -m tnt_ref train --problem mnist-autoencoder --data "$DATA" --optimizer "$1" --lr "$2" \
      --budget-seconds 60 --backend cupy --dtype float32 --out "$OUT/train-$1" > "$OUT/train-$1.log" 2>&1 || rc=1
    tail -n 3 "$OUT/train-$1.log"
  done
  exit $rc
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
