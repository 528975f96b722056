#!/usr/bin/env bash
# The GPU checks of issue 21 §2, in one run for a session that has a GPU (within $GPU_CHECK_BUDGET s, 540 by default):
#   1. the CUDA tests (every test file that skips "needs CUDA" without one, its tests named *cuda*);
#   2. bm_render, bm_gan, bm_reconstruct, bm_neural and bm_paper_scale (every stage at the paper's shapes, config-f
#      G + D at the per-GPU batches 32/N) with --device cuda (time, host peak RSS, peak GPU memory);
#   3. with two or more GPUs, a 2-process DDP smoke run of inverse train and gan train under torchrun;
#   4. bm_render with --compile on CUDA (last: compiling is the slowest step and may fail in inductor).
# Everything goes under $OUT when set (the device tool's folder), else ./gpu_check_out: log.txt (all output),
# summary.txt (one line a step), the benchmarks' JSON and tables, the tests' junit XML. Each step runs under a
# time limit; a failing step is logged and the next one runs; the exit status is 1 when any step failed.
#
#   scripts/gpu_check.sh                      # python3 (or $PYTHON) with torch; the package is used from backend/
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
python="${PYTHON:-python3}"
# The checkout's package, also where it is not installed (a device machine's image has torch, not ganverse3d).
export PYTHONPATH="$PWD/backend${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# One thread a process, as the tests assume; the GPU does the work.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
log="$out/log.txt" summary="$out/summary.txt"
: >"$log"
: >"$summary"
failed=0

# The whole script ends within this many seconds (the device tool stops a command at 600 s and keeps only what is
# under $OUT): a step runs for what is left when that is less than its own limit, and is skipped, counting as a
# failure, when under 20 s are left.
budget="${GPU_CHECK_BUDGET:-540}"

# step NAME SECONDS COMMAND...: run COMMAND under a time limit, its output to the log and the terminal.
step() {
    local name=$1 limit=$2 start status left=$((budget - SECONDS))
    shift 2
    if [ "$left" -lt 20 ]; then
        failed=1
        echo "SKIPPED $name (the script's ${budget} s budget is spent)" | tee -a "$summary" "$log"
        return 1
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*" | tee -a "$log"
    start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
    if [ "$status" -eq 0 ]; then
        echo "ok      $name ($((SECONDS - start)) s)" | tee -a "$summary" "$log"
    else
        failed=1
        local why="exit $status"
        [ "$status" -eq 124 ] && why="over its ${limit} s limit"
        echo "FAILED  $name ($why, $((SECONDS - start)) s)" | tee -a "$summary" "$log"
    fi
    return "$status"
}

# A benchmark's JSON, kept under the step's name (benchmarks/results/ holds the last run of each script only).
keep() { cp "benchmarks/results/$1.json" "$out/$2.json"; }

step "machine" 60 bash -c "nvidia-smi; $python - <<'EOF'
import importlib, sys
import torch
print('python', sys.version.split()[0], '| torch', torch.__version__, '| CUDA', torch.version.cuda,
      '| GPUs', torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
# ganverse3d's dependencies (pyproject.toml): a missing one has to be carried as a wheel.
missing = [name for name in ('torchvision', 'numpy', 'PIL', 'click', 'trimesh', 'lpips', 'safetensors', 'tqdm',
                             'xatlas', 'pytest') if importlib.util.find_spec(name) is None]
if missing or not torch.cuda.is_available():
    sys.exit(f'missing: {missing}; CUDA available: {torch.cuda.is_available()}')
EOF"

mapfile -t cuda_test_files < <(grep -rl "needs CUDA" tests --include="*.py" | sort)
step "CUDA tests" 180 "$python" -m pytest -q -p no:cacheprovider -rs -k cuda --junitxml="$out/cuda_tests.xml" \
    "${cuda_test_files[@]}"

step "bm_render --device cuda" 90 "$python" benchmarks/bm_render.py --device cuda --repeat 10 &&
    keep bm_render bm_render_cuda
step "bm_gan --device cuda" 120 "$python" benchmarks/bm_gan.py --device cuda --repeat 5 && keep bm_gan bm_gan_cuda
step "bm_reconstruct --device cuda" 180 "$python" benchmarks/bm_reconstruct.py --device cuda --repeat 3 &&
    keep bm_reconstruct bm_reconstruct_cuda
step "bm_neural --device cuda" 120 "$python" benchmarks/bm_neural.py --device cuda && keep bm_neural bm_neural_cuda
step "bm_paper_scale --device cuda" 180 "$python" benchmarks/bm_paper_scale.py --device cuda &&
    keep bm_paper_scale bm_paper_scale_cuda

gpus=$("$python" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$gpus" -ge 2 ]; then
    ddp="$out/ddp"
    rm -rf "$ddp"
    # The global batch (16 and 32) is split over the 2 processes; rank 0 writes the run folders.
    step "DDP smoke: 2 processes, inverse train and gan train" 180 bash -c "
        set -e
        $python -m ganverse3d.cli dataset world --cars 16 --views 4 --resolution 64 --seed 3 --out '$ddp/data'
        $python -m torch.distributed.run --standalone --nproc_per_node=2 -m ganverse3d.cli inverse train \
            --data '$ddp/data' --iterations 20 --batch 16 --device cuda --runs '$ddp/runs'
        $python -m torch.distributed.run --standalone --nproc_per_node=2 -m ganverse3d.cli gan train \
            --data '$ddp/data' --resolution 64 --kimg 0.64 --batch 32 --metric-every 0 --device cuda --runs '$ddp/runs'
        tail -n 2 '$ddp'/runs/*/*/metrics.jsonl"
else
    echo "skipped DDP smoke: $gpus GPU(s), it needs 2 or more" | tee -a "$summary" "$log"
fi

step "bm_render --device cuda --compile" 150 "$python" benchmarks/bm_render.py --device cuda --compile --repeat 10 &&
    keep bm_render bm_render_cuda_compile

echo "--- summary (also in $summary)"
cat "$summary"
exit "$failed"
