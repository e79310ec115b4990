r"""Checks that an exported SavedModel, fed raw text, reproduces a run's ``eval_results.json``.

Imports only TensorFlow (no tfft, TensorFlow Text, ``tokenizers`` or ``transformers``):
reads the validation TSV named in the export's ``assets/params.yaml``, sends its text
columns as strings to ``serving_default`` (which tokenizes in the graph) and recomputes the
main metric (accuracy of the returned ``label`` for classification, Pearson of ``score``
for regression). Copy the export anywhere first: it needs nothing of the training run but
the ``eval_results.json`` it is compared with.

Example:
    python tools/check_export.py --export_dir=runs/sst2_minilm/export/1 \
        --eval_results=runs/sst2_minilm/eval_results.json
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

flags.DEFINE_string("export_dir", None, "The SavedModel to check.")
flags.DEFINE_string("eval_results", None, "The run's eval_results.json.")
flags.DEFINE_integer("batch_size", 64, "Examples per serving call.")
flags.DEFINE_float("tolerance", 1e-6, "Largest allowed difference of the metric.")
flags.mark_flags_as_required(["export_dir", "eval_results"])
FLAGS = flags.FLAGS


def read_rows(path: str) -> list[dict]:
    """Rows of a GLUE-style TSV (header, no quoting)."""
    with open(path, encoding="utf-8") as file:
        return list(csv.DictReader(file, delimiter="\t", quoting=csv.QUOTE_NONE))


def serve_all(export_dir: Path, columns: list[list[str]]) -> dict:
    """Runs ``serving_default`` over the text columns (``text``, ``text_pair``), batch by batch."""
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    names = ("text", "text_pair")[: len(columns)]
    outputs: dict[str, list] = {}
    for start in range(0, len(columns[0]), FLAGS.batch_size):
        batch = serve(**{name: tf.constant(column[start:start + FLAGS.batch_size])
                         for name, column in zip(names, columns, strict=True)})
        for name, value in batch.items():
            outputs.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in outputs.items()}


def main(argv):
    """Recomputes the metric with the SavedModel and compares it with eval_results.json."""
    del argv
    export_dir = Path(FLAGS.export_dir)
    task = yaml.safe_load((export_dir / "assets" / "params.yaml").read_text())["task"]
    rows = read_rows(task["validation_data"]["input_path"])
    limit = task["validation_data"]["max_examples"]
    rows = rows[:limit] if limit else rows
    outputs = serve_all(export_dir, [[row[field] for row in rows] for field in task["text_fields"]])
    expected = json.loads(Path(FLAGS.eval_results).read_text())
    gold = [row[task["label_field"]].strip() for row in rows]
    if "label" in outputs:
        predicted = [label.decode() for label in outputs["label"]]
        metric, value = "accuracy", float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))
    else:
        metric, value = "pearson", float(np.corrcoef(outputs["score"], np.array(gold, float))[0, 1])
    libraries = ("tfft", "tokenizers", "transformers", "tensorflow_text")
    imported = {name: name in sys.modules for name in libraries}
    print(json.dumps({"metric": metric, "saved_model": value, "eval_results": expected[metric],
                      "examples": len(rows), "imported": imported}))
    if abs(value - expected[metric]) > FLAGS.tolerance:
        sys.exit(f"check_export: {metric} {value} differs from eval_results.json {expected[metric]}")


if __name__ == "__main__":
    app.run(main)
