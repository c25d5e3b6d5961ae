#!/usr/bin/env bash
# Issue 18's one prepared GPU check (budget: under 8 minutes on one H100/H200), to run when a GPU is lent:
#   1. pi05 preset (random weights, bf16, 224 px, 10 steps, chunk 50) at 1 and 3 cameras: eager vs fast path side
#      by side (prefix, denoise, chunk, RTC chunk, batch-8 chunks/s, System-2 ms/token), failing if the fast path's
#      actions differ from eager's by more than a bf16 tolerance;
#   2. policy worker round trips (fast path on, the CUDA default) at 1 and 8 clients.
# Targets (issue 18): chunk <= 30 ms at 3 cameras, round trip <= 40 ms, System 2 <= 4 ms/token,
# batch 8 >= 150 chunks/s. Usage: bash benchmarks/gpu_check.sh [out_dir]; record the printed tables with the
# card name in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${1:-${OUT:-/tmp/gpu_check}}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
status=0
for cameras in 1 3; do
  timeout 140 "$PY" benchmarks/pi05_fast_path.py --preset pi05 --device cuda --cameras "$cameras" --threads 8 \
    --runs 5 --warmup 2 --tolerance 0.1 | tee "$OUT/fast_path_${cameras}cam.txt" || status=1
done
timeout 200 "$PY" benchmarks/worker.py --presets pi05 --device cuda --threads 8 --clients 1,8 --requests 8 \
  | tee "$OUT/worker.txt" || status=1
exit "$status"
