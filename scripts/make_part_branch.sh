#!/usr/bin/env bash
# Reproduces the part branch of the default inverse-graphics net (`--model oracle`),
# backend/ganverse3d/assets/part_branch_oracle.safetensors: the oracle frozen, its part texture trained through the
# renderer against the true parts of world renders of 300 cars x 8 views (seed 21: cars of the oracle's own
# training set), 3,000 steps of 32 images (README, "Parts"). About 12 minutes on 2 CPU cores with one thread;
# kill it at any time and run it again to resume.
#
#   scripts/make_part_branch.sh [WORK_DIR] [STEPS]
set -euo pipefail
work=${1:-data}
steps=${2:-3000}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ganverse3d dataset world --cars 300 --views 8 --resolution 64 --seed 21 --out "$work/world-mv-300"
out=backend/ganverse3d/assets/part_branch_oracle.safetensors
run=$(ls -d "$work"/runs/part_branch/*-world-mv-300-* 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    ganverse3d inverse train-parts --resume "$run" --steps "$steps" --out "$out"
else
    ganverse3d inverse train-parts --data "$work/world-mv-300" --inverse oracle --steps "$steps" --seed 0 \
        --runs "$work/runs" --out "$out"
fi
python scripts/update_assets_manifest.py
