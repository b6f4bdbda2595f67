#!/bin/bash
# How the shipped weights (run 8) were made on a GPU lent for a few minutes, in one call with a hard time limit:
#   DEADLINE=550 OUT=/tmp/run8 bash scripts/train_gpu.sh
# 1. a tiny smoke run on the device (every CUDA path, export included) so a broken setup fails in seconds;
# 2. render the scenes with one process per core; 3. train for whatever is left of DEADLINE seconds (counted from
# the start), then copy the exported weights, training record and logs into $OUT.
# Settings come from the environment (DEV, NTRAIN, NVAL, W, BATCH, LR, WARM, PY: the Python); the defaults are run 8's.
set -uo pipefail
T0=$(date +%s)
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
OUT=${OUT:-/tmp/gpuout}; mkdir -p "$OUT"
DEV=${DEV:-cuda}; NTRAIN=${NTRAIN:-60000}; NVAL=${NVAL:-500}; DEADLINE=${DEADLINE:-550}; W=${W:-$(nproc)}
BATCH=${BATCH:-256}; LR=${LR:-1e-3}; WARM=${WARM:-500}; PY=${PY:-python3}
el() { echo $(( $(date +%s) - T0 )); }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null; nproc
"$PY" -c "import torch,numpy,safetensors,tqdm;print('torch',torch.__version__,'numpy',numpy.__version__,'cuda',torch.cuda.is_available())"
"$PY" -m vitviz.synthetic.train --out /tmp/smoke --export /tmp/smoke/export/vitviz-mini --train-size 512 --train-seed 101 \
  --val-size 64 --val-seed 102 --batch-size 64 --minutes 0.15 --low-res 0 --workers $W --device $DEV >"$OUT/smoke.log" 2>&1
rc=$?; tr '\r' '\n' <"$OUT/smoke.log" | grep -E "^epoch [0-9]+ \(|exported|training on|Error|error" | tail -8
[ $rc -eq 0 ] || { echo "SMOKE FAILED rc=$rc at $(el) s"; tail -c 3000 "$OUT/smoke.log"; exit 3; }
"$PY" -c "
from vitviz.models.checkpoint import load_checkpoint
m, info = load_checkpoint('/tmp/smoke/export/vitviz-mini.safetensors'); print('smoke export loads:', type(m).__name__)" || exit 4
echo "smoke ok at $(el) s"
"$PY" -c "
from pathlib import Path; from vitviz.synthetic.train import load_or_make_dataset as L
L($NVAL,2,128,$W,Path('data_cache')); L($NTRAIN,1,128,$W,Path('data_cache'))" >"$OUT/data.log" 2>&1 || { tail -c 2000 "$OUT/data.log"; exit 5; }
NOW=$(el); echo "data ok at $NOW s"
MIN=$("$PY" -c "print(round(($DEADLINE - $NOW - 30) / 60, 2))")
echo "training for $MIN min"
"$PY" -m vitviz.synthetic.train --out runs/gpu --export runs/gpu/export/vitviz-mini --train-size $NTRAIN --val-size $NVAL \
  --batch-size $BATCH --lr $LR --warmup-steps $WARM --low-res 0 --minutes $MIN --workers $W --device $DEV \
  >"$OUT/train.log" 2>&1
rc=$?; tr '\r' '\n' <"$OUT/train.log" | grep -E "^epoch [0-9]+ \(|exported|training on|data ready|Error" | tail -40
tr '\r' '\n' <"$OUT/train.log" | grep -E "it/s|s/it" | tail -2
cp runs/gpu/export/vitviz-mini.* "$OUT/" 2>/dev/null
echo "done rc=$rc at $(el) s"; ls -la "$OUT"
