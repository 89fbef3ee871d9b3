#!/bin/bash
# the reproduction run of docs/reproduction.md (one run of the protocol, three problems)
cd "$(dirname "$0")/../.."  # the repository root
export PYTHONPATH=$PWD  # this checkout
for spec in "mlp 20" "autoencoder 40" "cnn 15"; do
  set -- $spec
  echo "=== $1 start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  /usr/bin/time -f "$1 wall %e s" python -m tnt_ref compare --problem $1 --epochs $2 --seeds 5 --tune-seeds 2 --jobs 2 \
      --out tnt-ref-out/repro/$1 --resume
  echo "=== $1 end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
done
