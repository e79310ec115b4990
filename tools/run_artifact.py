r"""Runs an exported model on prepared token batches: its outputs and its speed, without tfft.

Imports TensorFlow and numpy only (LiteRT files through ``ai_edge_litert`` where installed,
else TensorFlow's interpreter), so it shows that the artifact works on its own; the report says
whether ``tfft`` got imported. ``tools/artifact_report.py`` writes the batches (``--batches``:
an ``.npz`` of ``batch{i}/{input}`` arrays, padded, and ``latency{i}/{input}`` single examples
at their own length) and scores the outputs this writes (``--outputs``: ``batch{i}/{output}``).

- ``serve_token_ids`` of a SavedModel directory, or of a ``.tflite`` file.
- Throughput: every padded batch once (after one warm-up call), examples per second.
- Latency: each single example, milliseconds per call, p50 and p95 (after 3 warm-up calls).
- A signature without ``attention_mask`` (a full-integer LiteRT model) is timed on the padded
  batches as they are, but its outputs come from each example alone at its own length.

Example:
    python tools/run_artifact.py --artifact=runs/sst2/litert/model.tflite \
        --batches=report/batches.npz --outputs=report/litert.npz
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

flags.DEFINE_string("artifact", None, "A SavedModel directory or a .tflite file.")
flags.DEFINE_string("batches", None, "The .npz of input batches.")
flags.DEFINE_string("outputs", None, "Where to write the outputs (.npz).")
flags.DEFINE_string("signature", "serve_token_ids", "The signature to run.")
flags.mark_flags_as_required(["artifact", "batches", "outputs"])
FLAGS = flags.FLAGS

ATTENTION_MASK = "attention_mask"


def load(path: Path, signature: str):
    """A function from numpy inputs to a dict of numpy outputs, and its input names."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if path.suffix == ".tflite":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter  # noqa: N806 - the class, under its usual name.
        runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner(signature)
        names = list(runner.get_input_details())
        return (lambda inputs: runner(**inputs)), names
    import tensorflow as tf

    function = tf.saved_model.load(str(path)).signatures[signature]
    names = list(function.structured_input_signature[1])

    def call(inputs):
        return {name: value.numpy() for name, value in function(**{k: tf.constant(v) for k, v in
                                                                    inputs.items()}).items()}

    return call, names


def groups(arrays, prefix: str) -> list[dict[str, np.ndarray]]:
    """``prefix{i}/{name}`` arrays as a list of dicts, in ``i`` order."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for key in arrays.files:
        head, _, name = key.partition("/")
        if head.startswith(prefix) and head[len(prefix):].isdigit():
            found.setdefault(int(head[len(prefix):]), {})[name] = arrays[key]
    return [found[index] for index in sorted(found)]


def alone(call, batch: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """Each row of ``batch`` run alone, cut to its tokens; per-token outputs padded back to the batch's."""
    lengths = batch[ATTENTION_MASK].sum(axis=-1).astype(int).reshape(len(batch[ATTENTION_MASK]), -1).max(-1)
    width = batch[ATTENTION_MASK].shape[-1]
    rows = []
    for index, length in enumerate(lengths):
        outputs = call({name: batch[name][index:index + 1, ..., :length] for name in names})
        rows.append({name: _pad_tokens(value, length, width) for name, value in outputs.items()})
    return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}


def _pad_tokens(value: np.ndarray, length: int, width: int) -> np.ndarray:
    """``value`` padded with zeros on its token axis (the first of size ``length``) to ``width``."""
    if value.ndim < 2 or value.shape[1] != length or length == width:
        return value
    widths = [(0, 0)] * value.ndim
    widths[1] = (0, width - length)
    return np.pad(value, widths)


def main(argv):
    """Runs the artifact and prints its speed as JSON."""
    del argv
    call, names = load(Path(FLAGS.artifact), FLAGS.signature)
    arrays = np.load(FLAGS.batches)
    batches, singles = groups(arrays, "batch"), groups(arrays, "latency")
    masked = ATTENTION_MASK in names
    call({name: batches[0][name] for name in names})  # Warm-up (allocation, first trace).
    outputs, start = [], time.perf_counter()
    for batch in batches:
        outputs.append(call({name: batch[name] for name in names}))
    seconds = time.perf_counter() - start
    if not masked:
        outputs = [alone(call, batch, names) for batch in batches]
    for single in singles[:3]:
        call({name: single[name] for name in names})
    latencies = []
    for single in singles:
        begin = time.perf_counter()
        call({name: single[name] for name in names})
        latencies.append(1000 * (time.perf_counter() - begin))
    np.savez(FLAGS.outputs, **{f"batch{index}/{name}": value for index, batch in enumerate(outputs)
                              for name, value in batch.items()})
    examples = sum(len(batch[ATTENTION_MASK]) for batch in batches)
    print(json.dumps({
        "examples_per_second": examples / seconds,
        "batch_size": int(max(len(batch[ATTENTION_MASK]) for batch in batches)),
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else None,
        "latency_examples": len(latencies), "attention_mask_input": masked,
        "tfft_imported": "tfft" in sys.modules,
    }))


if __name__ == "__main__":
    app.run(main)
