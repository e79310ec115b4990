r"""Checks that an exported SavedModel reproduces a run's ``eval_results.json``.

Uses only TensorFlow, the ``tokenizers`` library and the SavedModel's own assets (no
tfft import): tokenizes the validation TSV named in the run's ``params.yaml`` with
``assets/tokenizer.json``, calls ``serving_default`` and recomputes the main metric
(accuracy for classification, Pearson for regression).

Example:
    python tools/check_export.py --model_dir=runs/sst2_minilm \
        --export_dir=runs/sst2_minilm/export/1
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml
from absl import app, flags
from tokenizers import Tokenizer

flags.DEFINE_string("model_dir", None, "The training run (params.yaml, eval_results.json).")
flags.DEFINE_string("export_dir", None, "The SavedModel to check.")
flags.DEFINE_integer("batch_size", 64, "Examples per serving call.")
flags.DEFINE_float("tolerance", 1e-6, "Largest allowed difference of the metric.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def read_rows(path: str) -> list[dict]:
    """Rows of a GLUE-style TSV (header, no quoting)."""
    with open(path, encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


def serve_all(export_dir: Path, texts: list[tuple[str, ...]], max_length: int) -> dict:
    """Runs the serving signature over all texts, batch by batch."""
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    tokenizer = Tokenizer.from_file(str(export_dir / "assets" / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    outputs: dict[str, list] = {}
    for start in range(0, len(texts), FLAGS.batch_size):
        encoded = tokenizer.encode_batch(texts[start:start + FLAGS.batch_size])
        batch = serve(
            input_ids=tf.constant([e.ids for e in encoded], tf.int32),
            token_type_ids=tf.constant([e.type_ids for e in encoded], tf.int32),
            attention_mask=tf.constant([e.attention_mask for e in encoded], tf.int32),
        )
        for name, value in batch.items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in outputs.items()}


def main(argv):
    """Recomputes the metric with the SavedModel and compares it with eval_results.json."""
    del argv
    model_dir, export_dir = Path(FLAGS.model_dir), Path(FLAGS.export_dir)
    task = yaml.safe_load((model_dir / "params.yaml").read_text())["task"]
    rows = read_rows(task["validation_data"]["input_path"])
    limit = task["validation_data"]["max_examples"]
    rows = rows[:limit] if limit else rows
    texts = [tuple(row[field] for field in task["text_fields"]) for row in rows]
    texts = [t[0] if len(t) == 1 else t for t in texts]
    outputs = serve_all(export_dir, texts, task["max_seq_length"])
    expected = json.loads((model_dir / "eval_results.json").read_text())
    if "probabilities" in outputs:
        names = (export_dir / "assets" / "labels.txt").read_text().split("\n")[:-1]
        labels = np.array([names.index(row[task["label_field"]].strip()) for row in rows])
        metric, value = "accuracy", float(np.mean(outputs["probabilities"].argmax(-1) == labels))
    else:
        scores = np.array([float(row[task["label_field"]]) for row in rows])
        metric, value = "pearson", float(np.corrcoef(outputs["predictions"], scores)[0, 1])
    print(json.dumps({"metric": metric, "saved_model": value, "eval_results": expected[metric],
                      "examples": len(rows), "tfft_imported": "tfft" in sys.modules}))
    if abs(value - expected[metric]) > FLAGS.tolerance:
        sys.exit(f"check_export: {metric} {value} differs from eval_results.json {expected[metric]}")


if __name__ == "__main__":
    app.run(main)
