"""Running a model over a whole split: outputs in example order, task metrics, throughput."""

from __future__ import annotations

import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfft.data.features import Features, FeatureSpecs
from tfft.data.pipeline import inference_dataset, input_signature, length_buckets, restore_order
from tfft.tasks import Task

#: Per model, its forward pass as one tf.function (see :func:`_run`).
_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predict(model, features: Features, specs: FeatureSpecs, batch_size: int, static_length: int = 0,
            full_batches: bool = False, output_length: int = 0, output_padding: float = 0.0):
    """Model outputs for every example, in the examples' order.

    Args:
        model: The Keras model.
        features: The examples' features.
        specs: The task's feature specs.
        batch_size: Global batch size.
        static_length: Pad every batch to this length (0: to its longest example).
        full_batches: Fill the last batch (needed with several replicas).
        output_length: For per-token outputs ``[batch, seq, ...]``: their length. Without
            ``static_length``, batches are padded only to their length bucket
            (:func:`~tfft.data.pipeline.length_buckets`), one ``model.predict`` per
            bucket, and the outputs padded to ``output_length`` afterwards.
        output_padding: The value of per-token outputs past a bucket's length.

    Returns:
        ``(outputs, seconds)``: outputs as numpy (or a dict of them) and wall time.
    """
    start = time.perf_counter()
    if output_length and not static_length:
        outputs = _predict_by_length(model, features, specs, batch_size, full_batches, output_length,
                                     output_padding)
    else:
        dataset, order, count = inference_dataset(
            features, specs, batch_size, static_length=static_length, full_batches=full_batches
        )
        outputs = restore_order(_run(model, dataset, specs), order, count)
    return outputs, time.perf_counter() - start


def _run(model, dataset, specs: FeatureSpecs):
    """The model's outputs on every batch of ``dataset``, concatenated (numpy).

    On one replica the forward pass is a ``tf.function`` with a shape-free input
    signature, traced once per model whatever the batches' lengths: Keras' ``predict``
    traces again for new shapes (about 2.5 s a model on MiniLM, more for per-token
    tasks predicted one length bucket at a time). Several replicas (and TPUs) go
    through Keras' ``predict``, which spreads the batches over them.
    """
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync > 1 or isinstance(strategy, tf.distribute.TPUStrategy):
        return model.predict(dataset, verbose=0)
    forward = _FORWARD.get(model)
    if forward is None:
        forward = tf.function(lambda inputs: model(inputs, training=False),
                              input_signature=[input_signature(specs)], jit_compile=model.jit_compile)
        _FORWARD[model] = forward
    batches = [keras.tree.map_structure(np.asarray, forward(inputs)) for inputs in dataset]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)


def _predict_by_length(model, features: Features, specs: FeatureSpecs, batch_size: int,
                       full_batches: bool, output_length: int, padding: float):
    """Per-token outputs predicted one length bucket at a time, padded to ``output_length``."""
    parts, order = [], []
    for indices, length in length_buckets(features.row_lengths, batch_size, output_length):
        dataset, bucket_order, count = inference_dataset(
            features.take(indices), specs, batch_size, sort_by_length=False, full_batches=full_batches,
            pad_length=length,
        )
        outputs = restore_order(_run(model, dataset, specs), bucket_order, count)
        parts.append(keras.tree.map_structure(
            lambda value, length=length: _pad_tokens(value, output_length - length, padding), outputs
        ))
        order.append(indices)
    outputs = keras.tree.map_structure(lambda *values: np.concatenate(values), *parts)
    return restore_order(outputs, np.concatenate(order), len(features))


def _pad_tokens(value: np.ndarray, extra: int, padding: float) -> np.ndarray:
    """Pads axis 1 (tokens) of ``value`` with ``extra`` positions of ``padding``."""
    widths = [(0, 0)] * value.ndim
    widths[1] = (0, extra)
    return np.pad(value, widths, constant_values=padding)


def evaluate(task: Task, model, features: Features, batch_size: int, static_length: int = 0,
             full_batches: bool = False):
    """The task's metrics over all of ``features``, plus ``examples_per_second``.

    Arguments after ``task`` are those of :func:`predict`.

    Returns:
        ``(metrics, outputs)``.
    """
    outputs, seconds = predict(model, features, task.feature_specs, batch_size, static_length,
                               full_batches, task.prediction_length, task.prediction_padding)
    metrics = task.evaluate(np.asarray(outputs), features)
    metrics["examples_per_second"] = features.num_examples / seconds if seconds else 0.0
    metrics["num_examples"] = features.num_examples
    return metrics, outputs
