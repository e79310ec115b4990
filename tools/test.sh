#!/usr/bin/env bash
# Sets up the environment and runs lint plus the default (fast) test suite.
# Usage: tools/test.sh [--tf=VERSION] [pytest arguments]
#   --tf=2.20 runs it in .venv-tf2.20 (tensorflow-cpu 2.20 and tools/constraints-tf2.20.txt);
#   without it, .venv with tensorflow-cpu 2.21.
# Slow end-to-end runs on real data: tools/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP_ARGS=(test)
if [[ "${1:-}" == --tf=* ]]; then
  SETUP_ARGS+=("$1")
  shift
fi
source tools/setup_env.sh "${SETUP_ARGS[@]}"
"$PY" -c 'import sys, tensorflow as tf, keras; print(f"{sys.prefix}: TensorFlow {tf.__version__}, Keras {keras.__version__}")' 2>/dev/null
"$PY" -m ruff check tfft tests tools
"$PY" -m pytest -q "$@"
