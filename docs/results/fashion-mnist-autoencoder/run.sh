#!/bin/bash
# The process-time study of docs/reproduction.md ("The paper's autoencoder on Fashion-MNIST"): the paper's
# 784-1000-500-250-30 autoencoder, every optimizer tuned and reported under a process-time budget per run.
# Needs `apt-get install dataset-fashion-mnist` (the --data default). Run from a checkout; the run folder
# is tnt-ref-out/fmnist (git-ignored); results.json, table.md and loss.png were copied here as written.
# Rerun the same line after an interruption: --resume skips the finished runs. The six optimizers of the
# paper (KL-Shampoo and SOAP came later and were not run at this size).
cd "$(dirname "$0")/../../.."  # the repository root
export PYTHONPATH=$PWD  # this checkout
mkdir -p tnt-ref-out
( while sleep 300; do echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"; done ) >> tnt-ref-out/fmnist-load.log &
LOAD=$!
echo "=== start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/time -f "wall %e s" python -m tnt_ref compare --problem mnist-autoencoder --data /usr/share/datasets/fashion-mnist \
    --budget-seconds 90 --dtype float32 --tune-seeds 2 --seeds 3 --widen 1 --damping-grid-ef 0.1 --jobs 2 \
    --optimizers tnt tnt-ef sgd adam kfac shampoo \
    --out tnt-ref-out/fmnist --resume
echo "=== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
kill $LOAD
