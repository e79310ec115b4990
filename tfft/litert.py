"""LiteRT (TensorFlow Lite) export: one ``.tflite`` file for phones and small CPUs.

``EXPORT_DIR/model.tflite`` holds the task model behind one signature, ``serve_token_ids``,
taking the token inputs of the task's feature specs (int32 ``input_ids``, ``token_type_ids``,
``attention_mask`` [batch, seq], any batch size and length) and returning what the
SavedModel's ``serve_token_ids`` returns (e.g. ``logits`` and ``probabilities``). The
tokenizer files, ``config.json``, ``labels.txt`` and ``params.yaml`` travel in
``EXPORT_DIR/assets/`` for the app's own tokenizer: the SavedModel's raw-text signature is
not converted, its in-graph tokenizer being made of string and lookup-table ops that are not
LiteRT builtins (they would need the Flex delegate, several MB on a phone).

``--quantize`` (:data:`tfft.exporting.QUANTIZATIONS`):

- ``dynamic`` (default): weights int8 per channel, activations quantized at run time by the
  kernels (dynamic-range quantization); no calibration.
- ``int8``: every fully connected layer (weights and inputs) and the embedding lookups in int8,
  with activation ranges calibrated on the first ``calibration_examples`` validation examples;
  the attention's two batch matmuls, LayerNorm, softmax, GELU and the element-wise adds and
  multiplies stay float32 (selective quantization). On SST-2 (all-MiniLM-L6-v2) integer
  LayerNorm alone cost 3.3 of the 5 points that full-integer quantization lost, and int8
  attention matmuls another 1.4.
- ``int8_full``: every op with an int8 kernel in int8 (for integer-only accelerators).
- ``none``: float32.

The padding bias of the attention (-1e9) has no place in an int8 range, so the ``int8`` and
``int8_full`` signatures take no ``attention_mask``: every position attends, and a batch must
hold sequences of one length (a single text, typically). Calibration runs blocks of
``task.max_seq_length`` tokens cut from the examples laid end to end (LiteRT's calibrator runs
one input shape), so that every position the model serves is calibrated.

In Python (TensorFlow's or the ``ai-edge-litert`` interpreter)::

    runner = tf.lite.Interpreter(model_path="export/model.tflite").get_signature_runner("serve_token_ids")
    runner(input_ids=ids, token_type_ids=types, attention_mask=mask)["probabilities"]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
from absl import logging

from tfft import modeling
from tfft.backbones.layers import use_portable_activations
from tfft.errors import TfftError, reason
from tfft.exporting import ATTENTION_MASK, ServingModule, check_quantization, restore_for_export
from tfft.tasks import Task

MODEL_FILE = "model.tflite"
SIGNATURE = "serve_token_ids"


def export_litert(model_dir: str | Path, export_dir: str | Path, checkpoint: str = "", quantize: str = "",
                  calibration_examples: int = 100) -> Path:
    """Writes ``export_dir/model.tflite`` and ``export_dir/assets/`` for the run in ``model_dir``.

    Args:
        model_dir: A directory written by ``tfft-train``.
        export_dir: Where to write (must not exist or be empty).
        checkpoint: Which weights (see :func:`tfft.modeling.checkpoint_path`).
        quantize: ``dynamic`` (the default where empty), ``int8``, ``int8_full`` or ``none`` (see the
            module).
        calibration_examples: With ``int8`` and ``int8_full``: how many validation examples calibrate
            the ranges.

    Returns:
        The path of the ``.tflite`` file.

    Raises:
        TfftError: if the conversion fails or the calibration data cannot be read.
    """
    model_dir, export_dir = Path(model_dir), Path(export_dir)
    quantize = check_quantization("litert", quantize)
    if quantize.startswith("int8") and calibration_examples < 1:
        raise TfftError(f"--calibration_examples must be at least 1, got {calibration_examples}")
    task, model, tokenizer, _ = restore_for_export(model_dir, export_dir, checkpoint)
    use_portable_activations(model)
    integer = quantize.startswith("int8")
    module = ServingModule(model, task, [], pack=False, full_attention=integer)
    with tempfile.TemporaryDirectory() as folder:
        signature = module.serve_token_ids.get_concrete_function()
        tf.saved_model.save(module, folder, signatures={SIGNATURE: signature})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SIGNATURE])
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if integer:
            converter.representative_dataset = _calibration(task, tokenizer, calibration_examples)
            # Ops without an int8 kernel stay float32 rather than failing the conversion.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flatbuffer = _selective(converter) if quantize == "int8" else converter.convert()
        except Exception as error:  # noqa: BLE001 - the converter raises many types with long texts.
            raise TfftError(f"LiteRT conversion of '{model_dir}' failed ({reason(error).splitlines()[0]}); "
                            "export a SavedModel instead") from None
    export_dir.mkdir(parents=True, exist_ok=True)
    path = export_dir / MODEL_FILE
    path.write_bytes(flatbuffer)
    assets = export_dir / modeling.ASSETS_DIR
    shutil.copytree(model_dir / modeling.ASSETS_DIR, assets)
    shutil.copy(model_dir / modeling.PARAMS_FILE, assets / modeling.PARAMS_FILE)
    logging.info("LiteRT model (%s): %s, %.1f MB", quantize, path, len(flatbuffer) / 1e6)
    return path


#: LiteRT ops that ``--quantize=int8`` keeps in float32: the attention's matmuls, LayerNorm's
#: (mean, squared difference, rsqrt), softmax, GELU and element-wise arithmetic (residual adds, scales).
FLOAT_OPS = ("BATCH_MATMUL", "MEAN", "SQUARED_DIFFERENCE", "RSQRT", "SOFTMAX", "GELU", "ADD", "MUL", "SUB")


def _selective(converter) -> bytes:
    """Converts with :data:`FLOAT_OPS` left in float32 (LiteRT's selective quantization)."""
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=converter.representative_dataset, debug_options=options)
    return debugger.get_nondebug_quantized_model()


def _calibration(task: Task, tokenizer, count: int):
    """The representative dataset: the first ``count`` validation examples' tokens in blocks.

    LiteRT's calibrator runs one input shape, so the examples' sequences (special tokens and
    all) are laid end to end and cut into blocks of ``task.max_seq_length`` tokens: every
    position the model serves is calibrated.
    """
    data = task.config.validation_data
    if not data.input_path:
        raise TfftError("--quantize=int8 calibrates on the run's validation data, but its "
                        "task.validation_data.input_path is empty")
    features = task.encode(task.read_examples(data), tokenizer)
    features = features.take(np.arange(min(count, len(features))))
    sequences = task.feature_specs.sequences  # Multiple choice: [batch, choices, seq].
    shape = (1, sequences, task.config.max_seq_length) if sequences else (1, task.config.max_seq_length)
    size = int(np.prod(shape))
    blocks = max(1, int(features.lengths.sum()) // size)
    names = [name for name in task.feature_specs.inputs if name != ATTENTION_MASK]
    columns = {name: np.resize(features.columns[name], blocks * size).reshape(blocks, *shape)
               for name in names}

    def representative():
        for index in range(blocks):
            yield {name: values[index] for name, values in columns.items()}

    return representative
