#!/usr/bin/env bash
# Every GPU figure the open goals need, in one run of about 5 minutes (a session lent a GPU has minutes of it):
#   - the engine on CUDA agrees with the CPU (check_cuda.py);
#   - issue 20: batched ViT-S/16 forward passes >= 10x batch 1 (bench_batch.py, random weights);
#   - issue 16: top-5 class evidence <= 5x the forward pass, for ViT-S/16 (bench_explain.py);
#   - issue 17: the engine alone on a stream of frames, ViT-S/16, 224 px and 640x480 frames, traced and eager
#     (bench_engine_stream.py; the live goal is >= 60 fps in the app);
#   - issue 27: head importance of ViT-S/16 by knockouts and by the first-order estimate against its forward pass,
#     and a knockout re-analysis against a normal one (bench_knockout.py; the CPU goal is <= 12x).
# Needs python3 with torch (CUDA), numpy, pillow, safetensors, tqdm and threadpoolctl; not Qt, PyAV or Ray.
#
#   bash benchmarks/gpu_checks.sh [OUT]      # from the repository root; results and the log go to OUT
#
# (the device tool: run(command="bash benchmarks/gpu_checks.sh $OUT", timeout_s=540))
set -u -o pipefail
out="${1:-${OUT:-benchmarks/results/gpu-checks}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
dev=${DEVICE:-cuda}     # DEVICE=cpu QUICK=1 tries the script's logic on a machine without a GPU
secs=10 images=256 runs=30
[ -n "${QUICK:-}" ] && secs=1 images=16 runs=3

step() {  # a failing step is logged and the others still run
    echo "=== $*"
    "$@" || { echo "=== failed ($?): $*"; status=1; }
}

checks() {
    status=0
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    DEV=$dev step "$py" benchmarks/check_cuda.py
    step "$py" benchmarks/bench_engine_stream.py --device "$dev" --model vit-s16 --frame 224x224 --seconds $secs \
        --json "$out/stream-vit-s16-224.json"
    step "$py" benchmarks/bench_engine_stream.py --device "$dev" --model vit-s16 --frame 640x480 --seconds $secs \
        --json "$out/stream-vit-s16-640x480.json"
    step "$py" benchmarks/bench_explain.py --device "$dev" --vit-s --runs $runs --json "$out/explain-$dev.json"
    step "$py" benchmarks/bench_batch.py --device "$dev" --model vit-s16 --no-ray --images $images --rounds 2 \
        --name "gpu-batch-vit-s16-$dev" --note "GPU session: benchmarks/gpu_checks.sh"
    cp benchmarks/results/gpu-batch-vit-s16-"$dev"-*.json "$out/" 2>/dev/null || true
    step "$py" benchmarks/bench_knockout.py --device "$dev" --runs $runs --json "$out/knockout-$dev.json"
    return $status
}

checks 2>&1 | tee "$out/gpu-checks.log"
exit "${PIPESTATUS[0]}"
