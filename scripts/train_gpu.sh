#!/usr/bin/env bash
# Train the sim-small checkpoint on one CUDA machine: collect expert demonstrations, train (bf16), evaluate.
#   bash scripts/train_gpu.sh [OUT_DIR] [EPISODES] [WORKERS]
# Runs from the repository root with .venv from scripts/install.sh, or with a python that already has torch
# (PYTHON=python3). Multi-GPU: set NPROC=8 to train under torchrun (DDP) with the same recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/sim-small-gpu}"
EPISODES="${2:-240}"
WORKERS="${3:-$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))}"
NPROC="${NPROC:-1}"
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}"
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'" \
  || { echo "train_gpu.sh needs a CUDA GPU (use configs/training/sim-small-cpu.yaml on a CPU)" >&2; exit 1; }
TASKS=()
while IFS= read -r line; do TASKS+=(--task "$line"); done < <("$PY" -c "from robots.sim.tasks import TASKS; print('\n'.join(TASKS))")

echo "== collect $EPISODES expert episodes with $WORKERS simulator processes -> $OUT/demos"
"$PY" -m agent.cli collect "${TASKS[@]}" --episodes "$EPISODES" --workers "$WORKERS" --noise 0.3 \
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
