#!/usr/bin/env bash
# Reproduces the embedded world segmenter (backend/ganverse3d/assets/world_segmenter.safetensors), the default
# segmenter of `ganverse3d dataset synth` (see backend/ganverse3d/dataset/segment.py).
#
# It trains on world seed 7 and is scored on world seed 8, seeds that no GAN or feature-net training set
# uses. About 2 minutes of rendering and 30 to 90 minutes of training on 2 shared CPU cores; run from the
# repository root with the project's environment active:
#
#   scripts/make_segmenter.sh [WORK_DIR]
#
# WORK_DIR (default: out/segmenter, ignored by git) receives the rendered datasets and the training run,
# WORK_DIR/runs/segmenter/NNNNN-world-s7-r64-r64/. Kill it at any time and run it again: rendering and
# training both resume (the training continues the run it finds there, and a finished run copies its
# bundle again).
set -euo pipefail

work_dir="${1:-out/segmenter}"
out="backend/ganverse3d/assets/world_segmenter.safetensors"

nice -n 15 ganverse3d world render --n 3000 --resolution 64 --seed 7 --out "$work_dir/world-s7-r64"
nice -n 15 ganverse3d world render --n 500 --resolution 64 --seed 8 --out "$work_dir/world-s8-r64"
run=$(ls -d "$work_dir"/runs/segmenter/*-world-s7-r64-r64/config.json 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    nice -n 15 ganverse3d segmenter train --resume "$(dirname "$run")" --out "$out" --device cpu
else
    nice -n 15 ganverse3d segmenter train --data "$work_dir/world-s7-r64" --out "$out" --resolution 64 \
        --width 16 --epochs 12 --batch 32 --seed 0 --device cpu --runs "$work_dir/runs"
fi
nice -n 15 ganverse3d segmenter eval --data "$work_dir/world-s8-r64" --segmenter "world:$out" --device cpu
