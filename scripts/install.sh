#!/usr/bin/env bash
# Creates/updates .venv with everything hearth needs. Idempotent; used by `make demo` and `make test`.
# Order matters: torch first from the local CPU wheel (otherwise pip resolves a multi-GB CUDA build), then the
# packages whose metadata pins numpy<2 or opencv-python go in with --no-deps, then hearth itself.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
.venv/bin/python -c "import torch" 2>/dev/null || "${pip[@]}" "torch==2.13.0"
"${pip[@]}" --no-deps "robosuite==1.5.2" "mink==0.0.5" "openpi-client==0.1.2"
# --no-warn-conflicts: pip would end with a red "ERROR: ... requires numpy<2" about the three --no-deps packages
# above, although nothing failed; say it once, plainly, instead.
# Extras, comma-separated: dev (tests), fleet (Ray Serve + the PostgreSQL driver), postgres, vllm. `make test`
# installs "dev,fleet" so the Ray and PostgreSQL tests run. torch stays pinned to the wheel already installed, so
# no extra's dependencies can swap it for a multi-GB CUDA build.
torch_pin="torch==$(.venv/bin/python -c 'import torch; print(torch.__version__)')"
if [ -n "$extras" ]; then target=".[$extras]"; else target="."; fi
"${pip[@]}" --no-warn-conflicts -e "$target" "$torch_pin"
echo "note: robosuite, mink and openpi-client declare numpy<2; hearth runs them on numpy 2 (installed with --no-deps" \
     "on purpose), so 'pip check' lists them. That is expected; nothing is broken."
