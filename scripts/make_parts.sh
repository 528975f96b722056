#!/usr/bin/env bash
# Reproduces DatasetGAN's part labels on the embedded generator world64 and their measurement (issue 20 §1-2):
# the shipped interpreter (backend/ganverse3d/assets/interpreter_world64.safetensors, with SHIP=1) and
# benchmarks/results/bm_parts.json with the sheet docs/parts_benchmark.png (README, "DatasetGAN parts").
#
#   1. world renders with true parts: seed 41 (3,000, the supervised row's training set), seed 42 (500, the test
#      set); no GAN, segmenter or feature-net training set uses these seeds.
#   2. (iii) the fully supervised part segmenter on the seed-41 renders; it also pre-labels the 16 annotations.
#   3. training/parts-world64/labels/*.png are committed: pre-labelled by (iii), corrected by eye with the edits
#      in training/parts-world64/make_labels.py (rerun that with --segmenter to remake them).
#   4. the style interpreter on the 16 annotations (`parts train`), 3,000 labelled samples (`parts synth --drop 0`:
#      every sample kept, its uncertainty recorded), then two 2,700-image training sets: the 90 % least uncertain
#      (the filter of `parts synth --drop 0.1`, the same rule) and the first 2,700 (no filter).
#   5. (i) and (i') segmenters on those two sets, (ii) the same net on the 16 annotated images alone, each for
#      about 600 steps; (i-b) the same as (i) from an interpreter trained with --balance 0.5; then the benchmark.
# About 1.5 hours on 2 shared CPU cores; run from the repository root with the project's environment active:
#
#   [SHIP=1] scripts/make_parts.sh [WORK_DIR]
#
# WORK_DIR (default: out/parts, ignored by git) receives the datasets and runs. Kill it at any time and run it
# again: rendering, synthesis and every training resume.
set -euo pipefail

work="${1:-out/parts}"
annotations="training/parts-world64"
nice="nice -n 10"

$nice ganverse3d world render --n 3000 --resolution 64 --seed 41 --out "$work/world-s41-r64"
$nice ganverse3d world render --n 500 --resolution 64 --seed 42 --out "$work/world-s42-r64"

# train_segmenter NAME DATA OPTIONS...: a part segmenter in its own runs folder, resumed when one was started.
train_segmenter() {
    local name="$1" data="$2"
    shift 2
    local run
    run=$(ls -d "$work/runs-$name"/parts-segmenter/*/config.json 2>/dev/null | tail -n 1 || true)
    if [ -n "$run" ]; then
        $nice ganverse3d parts train-segmenter --resume "$(dirname "$run")" --out "$work/seg_$name.safetensors" \
            --device cpu
    else
        $nice ganverse3d parts train-segmenter --data "$data" --out "$work/seg_$name.safetensors" --resolution 64 \
            --width 16 --balance 0.5 --seed 0 --device cpu --runs "$work/runs-$name" "$@"
    fi
}

train_segmenter world "$work/world-s41-r64" --epochs 12 --batch 32

interpreter="$work/interpreter_world64.safetensors"
run=$(ls -d "$work"/runs-interpreter/parts/*/config.json 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    $nice ganverse3d parts train --resume "$(dirname "$run")" --out "$interpreter" --device cpu
else
    $nice ganverse3d parts train --annotations "$annotations" --generator world64 --out "$interpreter" --seed 0 \
        --device cpu --runs "$work/runs-interpreter"
fi
$nice ganverse3d parts synth --generator world64 --interpreter "$interpreter" --n 3000 --drop 0 --seed 0 \
    --out "$work/synth-3000"

# The two training sets, as hard links into synth-3000.
python - "$work" <<'EOF'
import json, os, sys
from pathlib import Path
from ganverse3d.parts.synth import _kept, item_name

work = Path(sys.argv[1])
source = work / "synth-3000"
records = {r["id"]: r for r in map(json.loads, (source / "meta.jsonl").read_text().splitlines())}
for name, ids in (("synth-filtered", sorted(_kept(records, len(records), 0.1))), ("synth-unfiltered", range(2700))):
    for folder in ("images", "parts"):
        (work / name / folder).mkdir(parents=True, exist_ok=True)
        for index in ids:
            target = work / name / folder / f"{item_name(index)}.png"
            if not target.exists():
                os.link(source / folder / f"{item_name(index)}.png", target)
EOF

train_segmenter datasetgan "$work/synth-filtered" --epochs 8 --batch 32
train_segmenter datasetgan_all "$work/synth-unfiltered" --epochs 8 --batch 32
train_segmenter transfer "$annotations" --epochs 600 --batch 16 --holdout 0

# (i-b): the interpreter trained with class-balanced cross-entropy, its 90 % least uncertain of 3,000 samples.
interpreter_b="$work/interpreter_b.safetensors"
run=$(ls -d "$work"/runs-interpreter-b/parts/*/config.json 2>/dev/null | tail -n 1 || true)
if [ -n "$run" ]; then
    $nice ganverse3d parts train --resume "$(dirname "$run")" --out "$interpreter_b" --device cpu
else
    $nice ganverse3d parts train --annotations "$annotations" --generator world64 --out "$interpreter_b" --seed 0 \
        --balance 0.5 --device cpu --runs "$work/runs-interpreter-b"
fi
$nice ganverse3d parts synth --generator world64 --interpreter "$interpreter_b" --n 3000 --drop 0.1 --seed 0 \
    --out "$work/synth-b"
train_segmenter datasetgan_b "$work/synth-b" --epochs 8 --batch 32

python benchmarks/bm_parts.py --test "$work/world-s42-r64" \
    --row "(i) DatasetGAN, filtered=$work/seg_datasetgan.safetensors" \
    --row "(i') DatasetGAN, no filter=$work/seg_datasetgan_all.safetensors" \
    --row "(i-b) DatasetGAN, balanced interpreter=$work/seg_datasetgan_b.safetensors" \
    --row "(ii) transfer, 16 labels=$work/seg_transfer.safetensors" \
    --row "(iii) supervised, 2,700 renders=$work/seg_world.safetensors" \
    --figure docs/parts_benchmark.png

if [ "${SHIP:-0}" = 1 ]; then
    cp "$interpreter" backend/ganverse3d/assets/interpreter_world64.safetensors
fi
