#!/usr/bin/env bash
# Reproduces the default StyleGAN-R, backend/ganverse3d/assets/stylegan_r.safetensors: the mapping network's
# warm-up and the joint fine-tuning (paper Sec. 3.3) on the default generator, its view annotation
# training/views-world64-L2, and the inverse network INVERSE (default: gan, the paper's teacher; `oracle` for
# the comparison in the README), the realism term's discriminator starting from the committed GAN run's.
# 1,000 warm-up and 1,500 fine-tuning steps: about 50 minutes on 2 CPU cores; kill it at any time and run it
# again to resume.
#
#   [INVERSE=gan] [SHIP=1] scripts/make_stylegan_r.sh [WORK_DIR]
set -euo pipefail
work=${1:-data}
inverse=${INVERSE:-gan}
run=$(ls -d "$work"/runs/neural/*-"$inverse"-v* 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    ganverse3d neural train --resume "$run"
else
    ganverse3d neural train --views training/views-world64-L2/views.toml --generator world64 --inverse "$inverse" \
        --discriminator training/gan-world64/checkpoints/state.safetensors --seed 0 --runs "$work/runs"
    run=$(ls -d "$work"/runs/neural/*-"$inverse"-v* | tail -n 1)
fi
if [ "${SHIP:-0}" = 1 ]; then
    cp "$run/checkpoints/stylegan_r.safetensors" backend/ganverse3d/assets/stylegan_r.safetensors
fi
