#!/usr/bin/env bash
# Tries the README's install lines, each in a fresh virtual environment under /tmp, with tfft
# installed from this repository ("$REPO[cpu]" standing for "tfft[cpu]"), and prints one
# PASS/FAIL line per install line:
#   cpu        pip install "tfft[cpu]"            -> tensorflow-cpu 2.21 alone; import tfft.backbones
#                                                    prints no CUDA errors; pip check is clean
#   tpu        pip install "tensorflow-tpu==2.20.*" then "tfft[tpu]" -> tensorflow-tpu stays the only
#                                                    TensorFlow, libtpu is one that TF 2.20 loads (the
#                                                    first line alone takes the newest, which aborts
#                                                    import tensorflow); pip check; import tfft.backbones
#   tpu-plain  a TPU VM's tensorflow-tpu 2.20 + libtpu, then pip install "tfft" -> the same, libtpu kept
#   plain      pip install "tfft" with no TensorFlow -> installs none; import tfft works and does
#                                                    not import TensorFlow
#   gpu        pip install --dry-run "tfft[gpu]"  -> resolves tensorflow[and-cuda] 2.21 with the
#                                                    nvidia-* wheels and no other TensorFlow build
#              (CHECK_INSTALL_GPU_FULL=1 installs it too and imports tfft.backbones)
# Usage: bash tools/check_install.sh [LINE ...]   (default: all of them). Needs PyPI (or a mirror).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/tfft_check_install.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
LINES=("$@")
[ ${#LINES[@]} -gt 0 ] || LINES=(cpu tpu tpu-plain plain gpu)
TF_DISTS="tensorflow tensorflow-cpu tensorflow-tpu tensorflow-intel tf-nightly tf-nightly-cpu tf-nightly-tpu"
FAILED=0

new_venv() {  # new_venv NAME -> sets PY and LOG
  python3 -m venv "$WORK/$1"
  PY="$WORK/$1/bin/python"
  LOG="$WORK/$1.log"
  "$PY" -m pip install -q --disable-pip-version-check --upgrade pip >>"$LOG" 2>&1
}
pip_q() { "$PY" -m pip --disable-pip-version-check "$@" >>"$LOG" 2>&1; }
tf_dists() {  # "name version" of each installed TensorFlow build, comma-separated
  "$PY" - $TF_DISTS <<'PYEOF'
import importlib.metadata as md, sys
found = []
for name in sys.argv[1:]:
    try:
        found.append(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
print(", ".join(found))
PYEOF
}
result() {  # result LINE "install line" ERROR...
  local line="$1" what="$2"
  shift 2
  if [ $# -eq 0 ]; then
    echo "PASS $line: $what"
  else
    FAILED=1
    echo "FAIL $line: $what: $*  (log: $LOG, kept)"
    trap - EXIT
  fi
}
# import_check MODULES: imports them; errors go to $LOG. Prints the stderr lines about CUDA.
import_check() {
  local err="$WORK/import.err"
  "$PY" -c "import $1" 2>"$err" || { cat "$err" >>"$LOG"; echo "import $1 failed"; return; }
  cat "$err" >>"$LOG"
  grep -iE "cuda|cudnn|cufft|cublas|cuInit" "$err" | head -3 | sed 's/^/CUDA line on import: /'
}
pip_check() {
  "$PY" -m pip check >"$WORK/pipcheck" 2>&1 || { cat "$WORK/pipcheck" >>"$LOG"; echo "pip check: $(paste -sd';' "$WORK/pipcheck")"; }
}

check_cpu() {
  local errors=()
  new_venv cpu
  pip_q install "$REPO[cpu]" || errors+=("pip install failed")
  local dists; dists="$(tf_dists)"
  [[ "$dists" == "tensorflow-cpu 2.21."* && "$dists" != *,* ]] || errors+=("TensorFlow builds: '${dists}'")
  local msg; msg="$(import_check "tfft, tfft.backbones")"; [ -z "$msg" ] || errors+=("$msg")
  msg="$(pip_check)"; [ -z "$msg" ] || errors+=("$msg")
  result cpu "pip install \"tfft[cpu]\" -> $dists" "${errors[@]}"
}
check_tpu() {  # check_tpu NAME EXTRA TPU_REQUIREMENTS...
  local errors=() name="$1" extra="$2"
  shift 2
  new_venv "$name"
  pip_q install "$@" || errors+=("pip install $* failed")
  local libtpu_before; libtpu_before="$("$PY" -m pip show libtpu 2>/dev/null | sed -n 's/^Version: //p')"
  pip_q install "$REPO$extra" || errors+=("pip install failed")
  local dists libtpu; dists="$(tf_dists)"
  libtpu="$("$PY" -m pip show libtpu 2>/dev/null | sed -n 's/^Version: //p')"
  [[ "$dists" == "tensorflow-tpu 2.20."* && "$dists" != *,* ]] || errors+=("TensorFlow builds: '${dists}'")
  [ -n "$extra" ] || [ "$libtpu" = "$libtpu_before" ] || errors+=("libtpu changed: $libtpu_before -> $libtpu")
  local msg; msg="$(pip_check)"; [ -z "$msg" ] || errors+=("$msg")
  # Off GCP, libtpu retries the metadata server for minutes without TPU_SKIP_MDS_QUERY; another
  # process holding /tmp/libtpu_lockfile would skip loading libtpu (and hide a mismatch) without
  # ALLOW_MULTIPLE_LIBTPU_LOAD.
  TPU_SKIP_MDS_QUERY=1 ALLOW_MULTIPLE_LIBTPU_LOAD=1 timeout 300 "$PY" -c "import tfft, tfft.backbones, keras; print(keras.__version__)" \
    >"$WORK/keras_version" 2>"$WORK/import.err" \
    || errors+=("import tfft.backbones failed: $(grep -m1 -E '^[EF][0-9 ].*\] ' "$WORK/import.err" | cut -c1-200)")
  cat "$WORK/import.err" >>"$LOG"
  result "$name" "pip install $*; pip install \"tfft$extra\" -> $dists, libtpu $libtpu_before -> $libtpu, keras $(cat "$WORK/keras_version")" \
    "${errors[@]}"
}
check_plain() {
  local errors=()
  new_venv plain
  pip_q install "$REPO" || errors+=("pip install failed")
  local dists; dists="$(tf_dists)"
  [ -z "$dists" ] || errors+=("installed a TensorFlow build: '$dists'")
  local msg; msg="$(pip_check)"; [ -z "$msg" ] || errors+=("$msg")
  "$PY" -c "import sys, tfft; assert 'tensorflow' not in sys.modules, 'import tfft imported tensorflow'" \
    2>>"$LOG" || errors+=("import tfft failed or imported TensorFlow (see log)")
  result plain "pip install tfft (no TensorFlow) -> no TensorFlow build, import tfft" "${errors[@]}"
}
check_gpu() {
  local errors=()
  new_venv gpu
  pip_q install --dry-run --ignore-installed --report "$WORK/gpu.json" "$REPO[gpu]" || errors+=("pip resolution failed")
  local summary
  summary="$("$PY" - "$WORK/gpu.json" $TF_DISTS <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
names = {i["metadata"]["name"].lower(): i for i in report["install"]}
tf = [f"{n} {names[n]['metadata']['version']}" for n in sys.argv[2:] if n in names]
nvidia = sorted(n for n in names if n.startswith("nvidia-"))
problems = []
if len(tf) != 1 or not tf[0].startswith("tensorflow 2.21."):
    problems.append(f"TensorFlow builds {tf}")
if not nvidia:  # what tensorflow's and-cuda extra brings
    problems.append("no nvidia-* wheels")
print(f"{', '.join(tf)} + {len(nvidia)} nvidia wheels ({' '.join(nvidia)})")
print("; ".join(problems))
PYEOF
)" || errors+=("reading pip's report failed")
  local problems; problems="$(printf '%s\n' "$summary" | sed -n 2p)"
  [ -z "$problems" ] || errors+=("$problems")
  local what="pip install \"tfft[gpu]\" resolves to $(printf '%s\n' "$summary" | sed -n 1p)"
  if [ "${CHECK_INSTALL_GPU_FULL:-0}" = 1 ] && [ ${#errors[@]} -eq 0 ]; then
    pip_q install "$REPO[gpu]" || errors+=("pip install failed")
    "$PY" -c "import tfft, tfft.backbones" 2>>"$LOG" || errors+=("import tfft.backbones failed")
    local msg; msg="$(pip_check)"; [ -z "$msg" ] || errors+=("$msg")
    what="$what; installed"
  fi
  result gpu "$what" "${errors[@]}"
}

for line in "${LINES[@]}"; do
  start=$SECONDS
  case "$line" in
    cpu) check_cpu ;;
    tpu) check_tpu tpu "[tpu]" "tensorflow-tpu==2.20.*" ;;
    tpu-plain) check_tpu tpu-plain "" "tensorflow-tpu==2.20.*" "libtpu>=0.0.14,<0.0.32" ;;
    plain) check_plain ;;
    gpu) check_gpu ;;
    *) echo "check_install: unknown install line '$line' (cpu, tpu, tpu-plain, plain, gpu)" >&2; exit 2 ;;
  esac
  echo "     ($((SECONDS - start)) s)"
  rm -rf "${WORK:?}/$line"  # the venv; logs stay until the end (or are kept on failure)
done
exit $FAILED
