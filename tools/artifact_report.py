r"""What each deployable artifact of a run costs: size, accuracy, latency and throughput.

For a ``tfft-train`` model_dir, exports (unless already there, under ``--output_dir``):

- ``saved_model``: the float32 SavedModel (``tfft-export``);
- ``saved_model_int8``: Keras int8 weights (``tfft-export --quantize=int8``);
- ``litert``: LiteRT dynamic-range (``tfft-export --format=litert``);
- ``litert_int8``: LiteRT int8 fully connected layers (``tfft-export --format=litert --quantize=int8``);
- ``litert_int8_full``: LiteRT full-integer (``--quantize=int8_full``);
- ``litert_float32``: LiteRT without quantization (``--quantize=none``; not in the default list).

Then runs each in a fresh process that imports TensorFlow and numpy only
(``tools/run_artifact.py``) on the run's validation data, tokenized here once into padded
batches of ``--batch_size`` (sorted by length, as evaluation batches them), and scores what
it returns with the task's own metrics (:meth:`tfft.tasks.Task.evaluate`, as
``eval_results.json``). Prints and writes ``report.md`` and ``report.json``: artifact, size on
disk, the task's main metric and its change from the float32 SavedModel, latency of single
examples (batch 1; p50, p95 over the first ``--latency_examples``), throughput at
``--batch_size``. Sizes count every file of the artifact (a SavedModel's assets included).

Example:
    python tools/artifact_report.py --model_dir=runs/sst2 --output_dir=runs/sst2/artifacts
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_string("model_dir", None, "A tfft-train model_dir.")
flags.DEFINE_string("output_dir", "", "Where artifacts and the report go (default: MODEL_DIR/artifacts).")
flags.DEFINE_list("artifacts",
                  ["saved_model", "saved_model_int8", "litert", "litert_int8", "litert_int8_full"],
                  "Which artifacts to report (see the module docstring).")
flags.DEFINE_string("checkpoint", "", "Which weights to export (default: final, else latest).")
flags.DEFINE_integer("batch_size", 32, "Examples per call for accuracy and throughput.")
flags.DEFINE_integer("latency_examples", 200, "Single examples timed for the batch-1 latency.")
flags.DEFINE_integer("calibration_examples", 100, "Validation examples calibrating litert_int8.")
flags.mark_flags_as_required(["model_dir"])
FLAGS = flags.FLAGS

REPO = Path(__file__).resolve().parents[1]
#: artifact -> (tfft-export format, quantize, the path run_artifact.py loads, relative to its folder).
ARTIFACTS = {
    "saved_model": ("saved_model", "none", "."),
    "saved_model_int8": ("saved_model", "int8", "."),
    "litert": ("litert", "dynamic", "model.tflite"),
    "litert_int8": ("litert", "int8", "model.tflite"),
    "litert_int8_full": ("litert", "int8_full", "model.tflite"),
    "litert_float32": ("litert", "none", "model.tflite"),
}


def export(name: str, model_dir: Path, folder: Path) -> Path:
    """Exports artifact ``name`` into ``folder`` (kept if it exists); returns the path to load."""
    from tfft.exporting import export_saved_model
    from tfft.litert import export_litert

    export_format, quantize, loaded = ARTIFACTS[name]
    if not folder.exists():
        if export_format == "litert":
            export_litert(model_dir, folder, FLAGS.checkpoint, quantize, FLAGS.calibration_examples)
        else:
            export_saved_model(model_dir, folder, FLAGS.checkpoint, quantize)
    return folder / loaded


def size_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


def write_batches(task, features, path: Path):
    """Writes padded evaluation batches and single latency examples; returns the batches' order."""
    from tfft.data.pipeline import inference_dataset

    dataset, order, count = inference_dataset(features, task.feature_specs, FLAGS.batch_size)
    arrays = {f"batch{index}/{name}": value.numpy() for index, batch in enumerate(dataset)
              for name, value in batch.items()}
    first = features.take(np.arange(min(FLAGS.latency_examples, len(features))))
    singles, _, _ = inference_dataset(first, task.feature_specs, 1, sort_by_length=False)
    arrays.update({f"latency{index}/{name}": value.numpy() for index, batch in enumerate(singles)
                   for name, value in batch.items()})
    np.savez(path, **arrays)
    return order, count


def score(task, features, outputs_file: Path, order, count) -> dict:
    """The task's metrics of the outputs run_artifact.py wrote."""
    from tfft.data.pipeline import restore_order
    from tfft.evaluation import pad_tokens

    arrays = np.load(outputs_file)
    batches: dict[int, dict[str, np.ndarray]] = {}
    for key in arrays.files:
        head, _, name = key.partition("/")
        batches.setdefault(int(head.removeprefix("batch")), {})[name] = arrays[key]
    parts = []
    for index in sorted(batches):
        outputs = task.outputs_from_serving(batches[index])
        if task.prediction_length:
            outputs = pad_tokens(outputs, task.prediction_length - outputs.shape[1], task.prediction_padding)
        parts.append(outputs)
    return task.evaluate(restore_order(np.concatenate(parts), order, count), features)


def report(model_dir: Path, output_dir: Path) -> list[dict]:
    """Exports, runs and scores every artifact of ``--artifacts``."""
    from tfft import modeling
    from tfft.data.tokenization import load_tokenizer
    from tfft.tasks import get_task

    unknown = [name for name in FLAGS.artifacts if name not in ARTIFACTS]
    if unknown:
        raise SystemExit(f"artifact_report: unknown --artifacts {unknown}; choose from "
                         f"{', '.join(ARTIFACTS)}")
    config = modeling.load_run_config(model_dir)
    task = get_task(config.task)
    tokenizer = load_tokenizer(model_dir / modeling.ASSETS_DIR)
    task.set_tokenizer(tokenizer)
    examples = task.read_examples(config.task.validation_data)
    features = task.evaluation_features(task.encode(examples, tokenizer))
    output_dir.mkdir(parents=True, exist_ok=True)
    batches = output_dir / "batches.npz"
    order, count = write_batches(task, features, batches)
    rows = []
    for name in FLAGS.artifacts:
        path = export(name, model_dir, output_dir / name)
        outputs = output_dir / f"{name}.outputs.npz"
        process = subprocess.run(
            [sys.executable, str(REPO / "tools" / "run_artifact.py"), f"--artifact={path}",
             f"--batches={batches}", f"--outputs={outputs}"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""}, check=False)
        if process.returncode:
            why = process.stderr.strip().splitlines()[-1]
            raise SystemExit(f"artifact_report: {name} failed to run in a fresh process: {why}")
        speed = json.loads(process.stdout.strip().splitlines()[-1])
        metrics = score(task, features, outputs, order, count)
        rows.append({"artifact": name, "bytes": size_on_disk(output_dir / name), "metric": task.main_metric,
                     "value": metrics[task.main_metric], "metrics": metrics, **speed})
    return rows


def markdown(rows: list[dict]) -> str:
    """The report table."""
    reference = next((row["value"] for row in rows if row["artifact"] == "saved_model"), None)
    metric = rows[0]["metric"]
    lines = [f"| artifact | size MB | {metric} | change | batch-1 p50 ms | batch-1 p95 ms | "
             f"examples/s at batch {rows[0]['batch_size']} |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        scale = 100 if reference is not None and abs(reference) <= 1 else 1  # Points: 0-1 metrics x 100.
        change = "" if reference is None else f"{scale * (row['value'] - reference):+.2f} pt"
        lines.append(f"| {row['artifact']} | {row['bytes'] / 1e6:.1f} | {row['value']:.4f} | {change} | "
                     f"{row['latency_ms_p50']:.1f} | {row['latency_ms_p95']:.1f} | "
                     f"{row['examples_per_second']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv):
    """Writes and prints the report."""
    del argv
    model_dir = Path(FLAGS.model_dir)
    output_dir = Path(FLAGS.output_dir) if FLAGS.output_dir else model_dir / "artifacts"
    sys.path.insert(0, str(REPO))
    from tfft.errors import TfftError

    try:
        rows = report(model_dir, output_dir)
    except TfftError as error:
        raise SystemExit(f"artifact_report: {error}") from None
    table = markdown(rows)
    (output_dir / "report.json").write_text(json.dumps(rows, indent=2) + "\n")
    (output_dir / "report.md").write_text(table)
    print(table, end="")


if __name__ == "__main__":
    app.run(main)
