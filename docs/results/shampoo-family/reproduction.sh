#!/bin/bash
# the KL-Shampoo and SOAP rows of docs/reproduction.md (issue 26): the same protocol, seeds and problems as
# ../reproduction.sh, for SGD-m (the target, which reproduces that run's) and the two new optimizers
cd "$(dirname "$0")/../../.."  # the repository root
export PYTHONPATH=$PWD  # this checkout
for spec in "mlp 20" "autoencoder 40" "cnn 15"; do
  set -- $spec
  echo "=== $1 start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "$1 wall %e s" python -m tnt_ref compare --problem $1 --epochs $2 --seeds 5 --tune-seeds 2 --jobs 2 \
      --optimizers sgd kl-shampoo soap --out tnt-ref-out/repro-shampoo-family/$1 --resume
  echo "=== $1 end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
