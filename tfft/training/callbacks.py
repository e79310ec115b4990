"""Keras callbacks: TensorBoard scalars, throughput, per-epoch validation."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfft import evaluation
from tfft.data.features import Features
from tfft.tasks import Task


def current_learning_rate(model: keras.Model) -> float:
    """The optimizer's learning rate at its current step."""
    return float(np.asarray(model.optimizer.learning_rate))


class TrainingScalars(keras.callbacks.Callback):
    """Writes training scalars to TensorBoard and measures throughput.

    ``loss``, ``learning_rate``, the streaming metrics and ``examples_per_second`` go to
    ``logs/train`` every ``every_steps`` steps and at each epoch end.

    The first step of training (tracing and compilation) is left out of the throughput.

    Args:
        log_dir: Directory for the event files (``model_dir/logs/train``).
        global_batch_size: Examples per step over all replicas.
        examples_per_epoch: Training examples per epoch (the last batch may be short).
        every_steps: Logging interval in steps.
    """

    def __init__(self, log_dir: Path, global_batch_size: int, examples_per_epoch: int,
                 every_steps: int):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.global_batch_size = global_batch_size
        self.examples_per_epoch = examples_per_epoch
        self.every_steps = max(every_steps, 1)
        self.total_examples = 0
        self.total_seconds = 0.0
        self._epoch_start_step = 0
        self._mark_time = None
        self._mark_examples = 0
        self._last_logged_step = 0

    @property
    def examples_per_second(self) -> float:
        """Training throughput over the whole run, excluding the first step."""
        return self.total_examples / self.total_seconds if self.total_seconds else 0.0

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self._epoch_start_step = self._step()
        self._mark_examples = 0
        if self._mark_time is not None:  # Leave the last epoch's validation out.
            self._mark_time = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        step = self._epoch_start_step + batch + 1  # No device read-back on every step.
        seen = min((step - self._epoch_start_step) * self.global_batch_size,
                   self.examples_per_epoch)
        now = time.perf_counter()
        if self._mark_time is None:  # The first step traces the graph: start timing after it.
            self._mark_time, self._mark_examples = now, seen
            return
        self.total_examples += seen - self._mark_examples
        self.total_seconds += now - self._mark_time
        window = (seen - self._mark_examples) / max(now - self._mark_time, 1e-9)
        self._mark_time, self._mark_examples = now, seen
        if step - self._last_logged_step >= self.every_steps:
            self._write(step, logs, window)
            logging.info("step %d: loss %.4f, %.1f examples/s", step, logs.get("loss", np.nan),
                         window)

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        self._write(self._step(), {k: v for k, v in logs.items() if not k.startswith("val_")},
                    self.examples_per_second)

    def _write(self, step, logs, examples_per_second):
        self._last_logged_step = step
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(name, float(value))
            tf.summary.scalar("learning_rate", current_learning_rate(self.model))
            tf.summary.scalar("examples_per_second", examples_per_second)
        self.writer.flush()


class Validation(keras.callbacks.Callback):
    """Evaluates on the whole validation split after every epoch.

    Metrics go to ``logs/validation`` and into Keras' epoch logs as ``val_<name>``,
    where checkpointing and early stopping callbacks listed after this one see them.

    Args:
        task: The task (its metrics).
        features: Validation features with labels.
        batch_size: Global evaluation batch size.
        log_dir: ``model_dir/logs/validation``.
        static_length: Static-shape padding length (0 = dynamic).
    """

    def __init__(self, task: Task, features: Features, batch_size: int, log_dir: Path,
                 static_length: int = 0):
        super().__init__()
        self.task = task
        self.features = features
        self.batch_size = batch_size
        self.static_length = static_length
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        start = time.perf_counter()
        metrics, _ = evaluation.evaluate(
            self.task, self.model, self.features, self.batch_size, self.static_length
        )
        self.seconds += time.perf_counter() - start
        step = int(self.model.optimizer.iterations.numpy())
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                if name != "num_examples":
                    tf.summary.scalar(name, value)
        self.writer.flush()
        logging.info("epoch %d validation: %s", epoch + 1,
                     ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in metrics.items() if k != "num_examples"})
