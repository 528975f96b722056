#!/usr/bin/env bash
# Reproduces the embedded world feature net (backend/ganverse3d/assets/world_feature_net.safetensors), whose
# features give "fid-world" (see backend/ganverse3d/stylegan2/metrics.py).
#
# Its training images come from world seed 123, which no GAN training set uses, so that the net has never
# seen the images whose FID it later measures. About 1 minute of rendering and 5 to 10 minutes of training on
# 2 CPU cores; run from the repository root with the project's environment active:
#
#   scripts/make_feature_net.sh [WORK_DIR]
#
# WORK_DIR (default: out/feature-net, ignored by git) receives the rendered dataset and the training run,
# WORK_DIR/runs/feature_net/NNNNN-world-s123-r64-r64/. Kill it at any time and run it again: rendering and
# training both resume (the training continues the run it finds there, and a finished run copies its
# bundle again).
set -euo pipefail

work_dir="${1:-out/feature-net}"
out="backend/ganverse3d/assets/world_feature_net.safetensors"

nice -n 10 ganverse3d world render --n 4000 --resolution 64 --seed 123 --out "$work_dir/world-s123-r64"
run=$(ls -d "$work_dir"/runs/feature_net/*-world-s123-r64-r64/config.json 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    nice -n 10 ganverse3d gan feature-net --resume "$(dirname "$run")" --out "$out" --device cpu
else
    nice -n 10 ganverse3d gan feature-net --data "$work_dir/world-s123-r64" --out "$out" --resolution 64 \
        --epochs 15 --seed 0 --device cpu --runs "$work_dir/runs"
fi
