#!/usr/bin/env bash
# Trains the oracle inverse-graphics net as scripts/make_inverse_oracle.sh does (from the sphere template, as
# the README measured it), but on a world without one body
# type (default: pickup), for benchmarks/bm_generalisation.py: a test of designs the training never saw.
# 750 cars with the held-out type left out give about the 600 cars the default oracle sees. Not shipped: the
# weights go to WORK_DIR/inverse-without-BODY_TYPE.safetensors. About an hour on 2 CPU cores with one thread;
# kill it at any time and run it again to resume.
#
#   scripts/make_inverse_oracle_held_out.sh [WORK_DIR] [BODY_TYPE] [ITERATIONS]
set -euo pipefail
work=${1:-data}
body_type=${2:-pickup}
iterations=${3:-12000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
data="$work/world-mv-64-without-$body_type"
ganverse3d dataset world --cars 750 --views 8 --resolution 64 --seed 21 --hold-out "$body_type" --out "$data"
runs="$work/runs-without-$body_type"
run=$(ls -d "$runs"/inverse/*-world-mv-64-without-* 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    ganverse3d inverse train --resume "$run" --iterations "$iterations"
else
    ganverse3d inverse train --data "$data" --camera-mode fixed --iterations "$iterations" --batch 16 \
        --seed 0 --runs "$runs"
    run=$(ls -d "$runs"/inverse/*-world-mv-64-without-* | tail -n 1)
fi
cp "$run/checkpoints/inverse.safetensors" "$work/inverse-without-$body_type.safetensors"
