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
# WORK_DIR (default: out/feature-net, ignored by git) receives the rendered dataset (rerunning resumes it) and
# the training run, WORK_DIR/runs/feature_net/NNNNN-world-s123-r64/; a killed training continues with
#   ganverse3d gan feature-net --resume WORK_DIR/runs/feature_net/NNNNN-world-s123-r64 --out <the bundle> --device cpu
set -euo pipefail

work_dir="${1:-out/feature-net}"
out="backend/ganverse3d/assets/world_feature_net.safetensors"

nice -n 10 ganverse3d world render --n 4000 --resolution 64 --seed 123 --out "$work_dir/world-s123-r64"
nice -n 10 ganverse3d gan feature-net --data "$work_dir/world-s123-r64" --out "$out" --resolution 64 --epochs 15 \
    --seed 0 --device cpu --runs "$work_dir/runs"
