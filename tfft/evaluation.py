"""Running a model over a whole split: outputs in example order, task metrics, throughput."""

from __future__ import annotations

import dataclasses
import time
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones.layers import pack_real_tokens
from tfft.data.features import Features, FeatureSpecs
from tfft.data.pipeline import inference_dataset, input_signature, restore_order
from tfft.tasks import Task

#: Per model, its forward pass as one tf.function (see :func:`_forward`).
_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Per model, its task views (see :func:`task_view`) by whether they take labels.
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: The input name of the labels in evaluation views.
LABELS_INPUT = "labels"


def predict(model, features: Features, specs: FeatureSpecs, batch_size: int, static_length: int = 0,
            full_batches: bool = False, output_length: int = 0, output_padding: float = 0.0,
            max_tokens: int = 0):
    """Model outputs for every example, in the examples' order.

    Examples are predicted sorted by length, each batch padded to its longest example.

    Args:
        model: The Keras model.
        features: The examples' features.
        specs: The task's feature specs.
        batch_size: Global batch size.
        static_length: Pad every batch to this length (0: to its longest example).
        full_batches: Fill the last batch (needed with several replicas).
        output_length: For per-token outputs ``[batch, seq, ...]``: their length; each
            batch's outputs are padded to it.
        output_padding: The value of per-token outputs past a batch's length.
        max_tokens: Padded tokens per batch at most (see
            :func:`~tfft.data.pipeline.inference_dataset`; 0: no limit).

    Returns:
        ``(outputs, seconds)``: outputs as numpy (or a dict of them) and wall time.
    """
    start = time.perf_counter()
    strategy = model.distribute_strategy
    if strategy.num_replicas_in_sync > 1 or isinstance(strategy, tf.distribute.TPUStrategy):
        # Keras' predict spreads batches over the replicas and concatenates their outputs,
        # which per-token outputs allow only at one length.
        dataset, order, count = inference_dataset(features, specs, batch_size, static_length=static_length,
                                                  full_batches=full_batches, pad_length=output_length)
        return restore_order(model.predict(dataset, verbose=0), order, count), time.perf_counter() - start
    dataset, order, count = inference_dataset(features, specs, batch_size, static_length=static_length,
                                              full_batches=full_batches, max_tokens=max_tokens)
    forward = _forward(model, specs)
    batches = []
    for inputs in dataset:
        outputs = keras.tree.map_structure(np.asarray, forward(inputs))
        if output_length:
            outputs = keras.tree.map_structure(
                lambda value: pad_tokens(value, output_length - value.shape[1], output_padding), outputs
            )
        batches.append(outputs)
    outputs = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)
    return restore_order(outputs, order, count), time.perf_counter() - start


def _forward(model, specs: FeatureSpecs):
    """``model(inputs, training=False)`` as one ``tf.function`` per model (cached).

    Its input signature leaves batch size and length open, so it is traced once whatever
    the batches' lengths: Keras' ``predict`` traces again for new shapes (about 2.5 s a
    model on MiniLM).
    """
    forward = _FORWARD.get(model)
    if forward is None:
        if not model.jit_compile:
            pack_real_tokens(model)
        forward = tf.function(lambda inputs: model(inputs, training=False),
                              input_signature=[input_signature(specs)], jit_compile=model.jit_compile)
        _FORWARD[model] = forward
    return forward


def pad_tokens(value: np.ndarray, extra: int, padding: float) -> np.ndarray:
    """Pads axis 1 (tokens) of ``value`` with ``extra`` positions of ``padding``."""
    widths = [(0, 0)] * value.ndim
    widths[1] = (0, extra)
    return np.pad(value, widths, constant_values=padding)


def task_view(task: Task, model, labelled: bool):
    """``model``, or a model around it returning what the task keeps of its outputs (cached per model).

    Args:
        task: The task, whose :meth:`~tfft.tasks.Task.evaluation_outputs` (``labelled``) or
            :meth:`~tfft.tasks.Task.prediction_outputs` reduce the outputs.
        model: The task model.
        labelled: For evaluation: the view also takes the labels, as input ``labels``.

    Returns:
        ``(model or view, the feature specs it takes)``.
    """
    hook = "evaluation_outputs" if labelled else "prediction_outputs"
    if getattr(type(task), hook) is getattr(Task, hook):  # The default keeps the outputs: no view.
        return model, task.feature_specs
    views = _VIEWS.setdefault(model, {})
    specs = task.feature_specs
    if labelled:
        specs = FeatureSpecs({**specs.inputs, LABELS_INPUT: specs.label}, specs.label)
    if labelled not in views:
        inputs = {name: keras.Input(shape=spec.shape, dtype=spec.dtype, name=name)
                  for name, spec in specs.inputs.items()}
        features = {name: value for name, value in inputs.items() if name != LABELS_INPUT}
        outputs = model(features)
        kept = (task.evaluation_outputs(outputs, inputs[LABELS_INPUT]) if labelled
                else task.prediction_outputs(outputs))
        views[labelled] = None if kept is None or kept is outputs else keras.Model(inputs, kept)
    view = views[labelled]
    return (model, task.feature_specs) if view is None else (view, specs)


def evaluate(task: Task, model, features: Features, batch_size: int, static_length: int = 0,
             full_batches: bool = False, max_tokens: int = 0):
    """The task's metrics over all of ``features``, plus ``examples_per_second``.

    Arguments after ``task`` are those of :func:`predict`.

    Returns:
        ``(metrics, outputs)``: ``outputs`` as :meth:`~tfft.tasks.Task.evaluate` read them.
    """
    view, specs = task_view(task, model, labelled=True)
    inputs = features
    if view is not model:
        inputs = dataclasses.replace(features, columns={**features.columns, LABELS_INPUT: features.labels})
    outputs, seconds = predict(view, inputs, specs, batch_size, static_length,
                               full_batches, task.prediction_length, task.prediction_padding, max_tokens)
    metrics = task.evaluate(np.asarray(outputs), features)
    metrics["examples_per_second"] = features.num_examples / seconds if seconds else 0.0
    metrics["num_examples"] = features.num_examples
    return metrics, outputs
