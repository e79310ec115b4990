"""Running a model over a whole split: outputs in example order, task metrics, throughput."""

from __future__ import annotations

import time

import numpy as np

from tfft.data.features import Features
from tfft.data.pipeline import inference_dataset, restore_order
from tfft.tasks import Task


def predict(model, features: Features, batch_size: int, static_length: int = 0):
    """Model outputs for every example, in the examples' order.

    Returns:
        ``(outputs, seconds)``: outputs as numpy (or a dict of them) and wall time.
    """
    dataset, order, count = inference_dataset(features, batch_size, static_length=static_length)
    start = time.perf_counter()
    outputs = model.predict(dataset, verbose=0)
    seconds = time.perf_counter() - start
    return restore_order(outputs, order, count), seconds


def evaluate(task: Task, model, features: Features, batch_size: int, static_length: int = 0):
    """The task's metrics over all of ``features``, plus ``examples_per_second``.

    Returns:
        ``(metrics, outputs)``.
    """
    outputs, seconds = predict(model, features, batch_size, static_length)
    metrics = task.evaluate(np.asarray(outputs), features)
    metrics["examples_per_second"] = features.num_examples / seconds if seconds else 0.0
    metrics["num_examples"] = features.num_examples
    return metrics, outputs
