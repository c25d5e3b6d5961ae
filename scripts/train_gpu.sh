#!/usr/bin/env bash
# Train the sim-small checkpoint on one CUDA machine: collect expert demonstrations, train (bf16), evaluate.
#   bash scripts/train_gpu.sh [OUT_DIR] [EPISODES] [TRAIN_SECONDS]
# Runs from the repository root with .venv from scripts/install.sh, or with a python that already has torch
# (PYTHON=python3). Default (MODE=pipeline): scripts/sim_small_pipeline.py keeps frames in memory, uses every CPU
# core for the simulator, times the GPU's step and trains for TRAIN_SECONDS (~8 minutes end to end with 240).
# MODE=hearth runs the same recipe through `hearth collect` / `hearth train` / `hearth eval` (LeRobot dataset on
# disk, resumable, slower); NPROC=8 then trains under torchrun (DDP).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/sim-small-gpu}"
EPISODES="${2:-240}"
TRAIN_SECONDS="${3:-240}"
WORKERS="${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 1 : 1 ))}"
MODE="${MODE:-pipeline}"
NPROC="${NPROC:-1}"
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" PYTHONUNBUFFERED=1
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'" \
  || { echo "train_gpu.sh needs a CUDA GPU (use configs/training/sim-small-cpu.yaml on a CPU)" >&2; exit 1; }

if [ "$MODE" = pipeline ]; then
  "$PY" scripts/sim_small_pipeline.py --out "$OUT" --config configs/training/sim-small-gpu.yaml \
    --episodes "$EPISODES" --workers "$WORKERS" --train-seconds "$TRAIN_SECONDS" --eval-episodes 8
  echo "checkpoint: $OUT/run/checkpoint   (copy it to checkpoints/sim-small/ to bundle it)"
  echo "eval report: $OUT/eval.json   run summary: $OUT/summary.json"
  exit 0
fi

TASKS=()
while IFS= read -r line; do TASKS+=(--task "$line"); done < <("$PY" -c "from robots.sim.tasks import TASKS; print('\n'.join(TASKS))")
echo "== collect $EPISODES expert episodes with $WORKERS simulator processes -> $OUT/demos"
"$PY" -m agent.cli collect "${TASKS[@]}" --episodes "$EPISODES" --workers "$WORKERS" --noise 0.3 --mid-task-every 3 \
  --out "$OUT/demos" --no-progress
echo "== train (bf16, $NPROC process(es)) -> $OUT/run"
if [ "$NPROC" -gt 1 ]; then
  "$PY" -m torch.distributed.run --nproc-per-node "$NPROC" -m agent.cli train \
    --config configs/training/sim-small-gpu.yaml --data "$OUT/demos" --out "$OUT/run" --resume --no-progress
else
  "$PY" -m agent.cli train --config configs/training/sim-small-gpu.yaml --data "$OUT/demos" --out "$OUT/run" --resume
fi
echo "== evaluate on held-out seeds (1000+)"
"$PY" -m agent.cli eval --checkpoint "$OUT/run/checkpoint" --episodes 10 --out "$OUT/eval"
echo "checkpoint: $OUT/run/checkpoint   (copy it to checkpoints/sim-small/ to bundle it)"
echo "eval report: $OUT/eval/eval.json"
