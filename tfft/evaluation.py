"""Running a model over a whole split: outputs in example order, task metrics, throughput."""

from __future__ import annotations

import time

import numpy as np

from tfft.data.features import Features
from tfft.data.pipeline import inference_dataset, restore_order
from tfft.tasks import Task


def predict(model, features: Features, batch_size: int, static_length: int = 0,
            full_batches: bool = False):
    """Model outputs for every example, in the examples' order.

    Args:
        model: The Keras model.
        features: The examples' features.
        batch_size: Global batch size.
        static_length: Pad every batch to this length (0: to its longest example).
        full_batches: Fill the last batch (needed with several replicas).

    Returns:
        ``(outputs, seconds)``: outputs as numpy (or a dict of them) and wall time.
    """
    dataset, order, count = inference_dataset(
        features, batch_size, static_length=static_length, full_batches=full_batches
    )
    start = time.perf_counter()
    outputs = model.predict(dataset, verbose=0)
    seconds = time.perf_counter() - start
    return restore_order(outputs, order, count), seconds


def evaluate(task: Task, model, features: Features, batch_size: int, static_length: int = 0,
             full_batches: bool = False):
    """The task's metrics over all of ``features``, plus ``examples_per_second``.

    Arguments after ``task`` are those of :func:`predict`.

    Returns:
        ``(metrics, outputs)``.
    """
    outputs, seconds = predict(model, features, batch_size, static_length, full_batches)
    metrics = task.evaluate(np.asarray(outputs), features)
    metrics["examples_per_second"] = features.num_examples / seconds if seconds else 0.0
    metrics["num_examples"] = features.num_examples
    return metrics, outputs
