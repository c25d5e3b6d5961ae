#!/usr/bin/env bash
# The bundled sim-small checkpoint, stage by stage, on a CPU machine (2 cores are enough; hours, not days).
#   bash scripts/train_sim_small_cpu.sh STAGE [TRAIN_SECONDS] [PIPELINE ARGS, e.g. --set threads=1]
# Stage 1 trains from scratch; every later stage warm-starts from the bundled weights (fresh optimizer, the
# bundled norm stats) on freshly collected demonstrations with new seeds, so progress accumulates stage by stage.
# Each stage then evaluates on held-out seeds (1000+, never collected) and prints the tables for the model card.
# Copy runs/sim-small-stageN/run/checkpoint/* to checkpoints/sim-small/ to bundle a stage.
# DATA=runs/sim-small-stage1/data reuses an earlier stage's prepared frames instead of collecting new ones (the
# trainer re-expresses them in the config's action frame and horizon in memory; stage 2 did this).
# INIT_FROM=DIR warm-starts from another checkpoint than the bundled one (stages 3, 4 and 6 did this).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE="${1:?usage: train_sim_small_cpu.sh STAGE [TRAIN_SECONDS]}"
TRAIN_SECONDS="${2:-5400}"
shift $(( $# < 2 ? $# : 2 ))
EPISODES="${EPISODES:-420}"
WORKERS="${WORKERS:-$(nproc)}"
OUT="runs/sim-small-stage$STAGE"
export MUJOCO_GL="${MUJOCO_GL:-egl}" PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" PYTHONUNBUFFERED=1
PY=.venv/bin/python
INIT=()
if [ "$STAGE" -gt 1 ]; then INIT=(--init "${INIT_FROM:-checkpoints/sim-small}"); fi
# stage N collects seeds (N-1)*EPISODES ...: never the same demonstrations twice, never a held-out seed
SEED_OFFSET=$(( (STAGE - 1) * EPISODES ))

if [ -n "${DATA:-}" ]; then mkdir -p "$OUT" && ln -sfn "$(realpath "$DATA")" "$OUT/data"; fi
"$PY" scripts/sim_small_pipeline.py --out "$OUT" --config configs/training/sim-small-cpu.yaml \
  --episodes "$EPISODES" --seed-offset "$SEED_OFFSET" --workers "$WORKERS" --train-seconds "$TRAIN_SECONDS" --max-steps 1500 \
  --eval-episodes 0 "${INIT[@]}" "$@"
CKPT="$OUT/run/checkpoint"
.venv/bin/hearth eval --checkpoint "$CKPT" --episodes 20 --max-steps 1200 --execute-steps 8 --no-record --device cpu \
  --out "$OUT/eval"
.venv/bin/hearth eval --checkpoint "$CKPT" --episodes 2 --per-subtask --device cpu --out "$OUT/eval"
.venv/bin/hearth eval --checkpoint "$CKPT" --episodes 2 --max-steps 900 --no-record --blank-images --device cpu \
  --out "$OUT/eval-blind"
echo "checkpoint: $CKPT   reports: $OUT/eval/eval.json $OUT/eval/per_subtask.json $OUT/eval-blind/eval.json"
