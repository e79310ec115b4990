#!/usr/bin/env bash
# Sets up the environment and runs lint plus the default (fast) test suite.
# Slow end-to-end runs on real data: tools/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh test
"$PY" -m ruff check tfft tests tools
"$PY" -m pytest -q "$@"
