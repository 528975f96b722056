#!/usr/bin/env bash
# Trains the inverse-graphics network the paper's way (Sec. 3.1-3.2): on a multi-view dataset synthesised by the
# embedded default generator in the views annotated in training/views-world64/views.toml (the one-minute
# annotation, made by looking at its sheet.png), then evaluates it on unseen world cars with true cameras and
# meshes. VARIANT picks a row of Table 1 in docs/experiments.md:
#   paper          (a) learned per-view cameras, initialised from the 30-degree bins, multi-view loss
#   no-multiview   (c) as (a) without the second view of Eq. 2
#   fixed-cameras  (d) as (a) with the bin cameras kept fixed
#   image-cameras  (f) as (a), each image rendered in the camera head's estimate, pulled toward its view's camera
# VIEWS picks the annotation folder (default training/views-world64; training/views-world64-L2 is the
# two-entry view split of rows (i) and (j)). The model lands in WORK_DIR/runs-VARIANT[-L2]/inverse/*/checkpoints/
# inverse.safetensors and its evaluations in WORK_DIR/eval-VARIANT[-L2]-{heldout,world}/; SHIP=1 copies the model to
# backend/ganverse3d/assets/inverse_gan.safetensors, the embedded model `--model gan` picks (docs/experiments.md, Table 1). The
# default model stays the oracle (scripts/make_inverse_oracle.sh) until one trained this way comes within 5 % of it.
# Everything is seeded; kill it at any time and run it again to resume. 45-80 min per 12k steps with one thread
# (the longer beside another job).
#
#   [VIEWS=training/views-world64-L2] [SHIP=1] scripts/make_inverse_gan.sh VARIANT [WORK_DIR] [ITERATIONS]
set -euo pipefail
variant=${1:?"give a variant: paper, no-multiview, fixed-cameras or image-cameras"}
work=${2:-data}
iterations=${3:-12000}
views=${VIEWS:-training/views-world64}
suffix=$(basename "$views")
suffix=${suffix#views-world64}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
case "$variant" in
    paper) options=(--camera-mode learn --multiview) ;;
    no-multiview) options=(--camera-mode learn --no-multiview) ;;
    fixed-cameras) options=(--camera-mode fixed --multiview) ;;
    image-cameras) options=(--camera-mode learn --multiview --image-cameras) ;;
    *) echo "Unknown variant $variant; use paper, no-multiview, fixed-cameras or image-cameras." >&2; exit 2 ;;
esac
generator=backend/ganverse3d/assets/stylegan2_world64.safetensors
ganverse3d dataset synth --generator "$generator" --views "$views/views.toml" --contents 800 \
    --seed 0 --out "$work/gan-mv-64$suffix"
ganverse3d dataset world --cars 50 --views 6 --resolution 64 --seed 999 --out "$work/world-test-999"
runs="$work/runs-$variant$suffix"
run=$(ls -d "$runs"/inverse/*-gan-mv-64$suffix-r* 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    ganverse3d inverse train --resume "$run" --iterations "$iterations"
else
    ganverse3d inverse train --data "$work/gan-mv-64$suffix" "${options[@]}" --iterations "$iterations" --batch 16 \
        --seed 0 --runs "$runs"
    run=$(ls -d "$runs"/inverse/*-gan-mv-64$suffix-r* | tail -n 1)
fi
model="$run/checkpoints/inverse.safetensors"
ganverse3d inverse eval --model "$model" --data "$work/gan-mv-64$suffix" --out "$work/eval-$variant$suffix-heldout"
ganverse3d inverse eval --model "$model" --data "$work/world-test-999" --out "$work/eval-$variant$suffix-world"
if [ "${SHIP:-0}" = 1 ]; then
    cp "$model" backend/ganverse3d/assets/inverse_gan.safetensors
fi
