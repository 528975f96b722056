#!/usr/bin/env bash
# Reproduces the embedded default generator, backend/ganverse3d/assets/stylegan2_world64.safetensors:
# a small StyleGAN2 (64 px, channel_base 2048, channel_max 64) trained on 20,000 world renders, its first
# 243.2 kimg (7,600 steps) in float32 and the rest with --precision bfloat16 (as the shipped run was trained).
# Everything is seeded; on a 2-core CPU it takes hours (about 1.2 s/step in float32, 0.75 s/step in bfloat16).
# bfloat16 is fast only on CPUs with AVX-512 BF16; without it autocast is emulated (74 s/step measured on a
# 2-core AMD EPYC, against 3.4 s in float32): there set LATE_PRECISION=float32 (other weights than the shipped).
# Kill it at any time and run it again: rendering and training both resume, and training/gan-world64/ holds
# the committed state of the shipped generator, so a fresh clone continues it (give a larger KIMG to train on).
#
#   scripts/make_default_generator.sh [WORK_DIR] [KIMG]
set -euo pipefail
work=${1:-data}
kimg=${2:-480}
float32_kimg=243.2
mkdir -p "$work"
ganverse3d world render --n 20000 --resolution 64 --seed 1 --out "$work/world-gan-64"
run=$(ls -d "$work"/runs/gan/*-world-gan-64-r64 2>/dev/null | tail -n 1 || true)
if [ -z "$run" ] && [ -d training/gan-world64 ]; then
    # The committed training state of the shipped generator: continue it instead of starting over.
    run="$work/runs/gan/00000-world-gan-64-r64"
    mkdir -p "$run" && cp -r training/gan-world64/. "$run/"
fi
if [ -z "$run" ]; then
    ganverse3d gan train --data "$work/world-gan-64" --resolution 64 --kimg "$float32_kimg" --batch 32 \
        --channel-base 2048 --channel-max 64 --seed 0 --runs "$work/runs"
    run=$(ls -d "$work"/runs/gan/*-world-gan-64-r64 | tail -n 1)
fi
if grep -q '"precision": "float32"' "$run/config.json"; then
    ganverse3d gan train --resume "$run" --kimg "$float32_kimg"
fi
ganverse3d gan train --resume "$run" --kimg "$kimg" --precision "${LATE_PRECISION:-bfloat16}"
cp "$run/checkpoints/G_ema.safetensors" backend/ganverse3d/assets/stylegan2_world64.safetensors
ganverse3d gan views --generator backend/ganverse3d/assets/stylegan2_world64.safetensors -o docs/gan_views.png
ganverse3d gan layers --generator backend/ganverse3d/assets/stylegan2_world64.safetensors -o docs/gan_layers.png
cp "$(ls "$run"/samples/fakes*.png | tail -n 1)" docs/gan_samples.png
