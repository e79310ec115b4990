"""Keras callbacks: TensorBoard scalars, progress, validation, checkpoints, backups and loss checks.

Training runs one ``model.fit`` call per epoch (a resumed epoch starts after the batches
already trained), so the callbacks keep their own state across calls; the state that
must survive a restart (best metric, patience) is saved in every backup.

Progress shows as a bar per epoch where someone watches (:func:`console_mode`: a
terminal or a notebook), else as one log line per ``trainer.log_every_steps``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.src.saving import saving_lib

from tfft import compat, evaluation
from tfft.data.features import Features
from tfft.errors import TfftError, is_out_of_space, out_of_space
from tfft.tasks import Task
from tfft.training.backup import Backup, TrainingState, variables_bytes


@dataclasses.dataclass
class Progress:
    """Where the current ``fit`` call starts, shared by the callbacks.

    Attributes:
        epoch: The epoch being trained (0-based).
        first_batch: Batches of that epoch trained before this ``fit`` call (resuming).
        batches_per_epoch: Global batches per epoch.
        epochs: Epochs of the run.
        accumulation: Batches per optimizer update (gradient accumulation).
    """

    epoch: int = 0
    first_batch: int = 0
    batches_per_epoch: int = 0
    epochs: int = 1
    accumulation: int = 1

    def batches_done(self, batch: int) -> int:
        """Batches of the epoch trained once the ``fit`` call's batch ``batch`` has run."""
        return min(self.first_batch + batch + 1, self.batches_per_epoch)

    def global_batch(self, batch: int) -> int:
        """Batches trained since the start of training."""
        return self.epoch * self.batches_per_epoch + self.batches_done(batch)


def current_learning_rate(model: keras.Model) -> float:
    """The optimizer's learning rate at its current step."""
    return float(np.asarray(model.optimizer.learning_rate))


class WeightFiles:
    """Writes and reads a training model's ``.weights.h5`` files (best, latest, final).

    The files hold the model's weights without the optimizer's state, which is twice
    their size and which only resuming needs (the backups have it). Each is written
    through a temporary file and a rename. Weights already written at the same optimizer
    step (``best`` and ``latest`` after an epoch that improved, ``final`` after the last
    epoch) are hard-linked to the file that has them instead of written again.

    Args:
        model: The training model.
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self._written: tuple[int, Path] | None = None

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def save(self, path: Path) -> None:
        """Writes the weights to ``path`` (or links the file that has these weights)."""
        step, temporary = self._step(), path.with_name(f".tmp-{path.name}")
        temporary.unlink(missing_ok=True)
        if not (self._written and self._written[0] == step and _link(self._written[1], temporary)):
            with _h5_cleanup_errors_silenced():
                try:
                    saving_lib.save_weights_only(self.model, str(temporary),
                                                 objects_to_skip=[self.model.optimizer])
                    full = False
                except OSError as error:
                    full = is_out_of_space(error)
                    if not full:
                        raise
                    error.__traceback__ = None  # Its frames hold the failed file: freed in the block.
                if full:
                    gc.collect()
            if full:
                temporary.unlink(missing_ok=True)
                raise out_of_space(path, variables_bytes(self.model.weights))
        os.replace(temporary, path)
        self._written = (step, path)

    def load(self, path: Path) -> None:
        """Puts the weights of ``path`` back into the model (its optimizer state stays)."""
        saving_lib.load_weights_only(self.model, str(path), objects_to_skip=[self.model.optimizer])
        self._written = (self._step(), path)


@contextlib.contextmanager
def _h5_cleanup_errors_silenced():
    """Drops the "Exception ignored" tracebacks h5py prints when it frees a file whose write failed.

    The write's own error (a full disk) is raised as usual and reported in one line.
    """
    hooks = sys.unraisablehook, sys.excepthook
    sys.unraisablehook = sys.excepthook = lambda *args: None
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = hooks


def _link(source: Path, target: Path) -> bool:
    """Hard-links ``target`` to ``source``; False where that is not possible."""
    try:
        os.link(source, target)
    except OSError:
        return False
    return True


class TrainingScalars(keras.callbacks.Callback):
    """Writes training scalars to TensorBoard, logs progress and measures throughput.

    ``loss``, ``learning_rate``, the streaming metrics and ``examples_per_second`` go to
    ``logs/train`` every ``every_steps`` optimizer steps and at each epoch end. Each
    interval also gets a log line (unless ``log_steps`` is off), each epoch end one too.
    The first batch of the run (tracing and compilation) is left out of the throughput.

    Args:
        log_dir: Directory for the event files (``model_dir/logs/train``), or None to
            write none (non-chief workers).
        progress: The shared :class:`Progress`.
        global_batch_size: Examples per batch over all replicas.
        examples_per_epoch: Training rows per epoch (the last batch may be short).
        every_steps: Logging interval in optimizer steps.
        epochs: Epochs of the run (for log lines).
        log_steps: Whether every ``every_steps`` steps get a log line (off where a
            :class:`ProgressBar` shows the progress on the same screen).
    """

    def __init__(self, log_dir: Path | None, progress: Progress, global_batch_size: int,
                 examples_per_epoch: int, every_steps: int, epochs: int, log_steps: bool = True):
        super().__init__()
        self.log_steps = log_steps
        self.writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
        self.progress = progress
        self.global_batch_size = global_batch_size
        self.examples_per_epoch = examples_per_epoch
        self.every_steps = max(every_steps, 1)
        self.epochs = epochs
        self.total_examples = 0
        self.total_seconds = 0.0
        self._epoch_start_step = 0
        self._mark_time = None
        self._mark_examples = 0
        self._last_logged_step = 0
        self._train_begin = None
        self._first_batch_end = None
        self._logged = (0, 0.0)  # total_examples and total_seconds at the last log line.

    @property
    def first_batch_seconds(self) -> float:
        """From the start of training to the end of its first batch (tracing included)."""
        return self._first_batch_end - self._train_begin if self._first_batch_end else 0.0

    def on_train_begin(self, logs=None):  # noqa: D102
        if self._train_begin is None:
            self._train_begin = time.perf_counter()

    @property
    def examples_per_second(self) -> float:
        """Training throughput over the whole run, excluding the first batch."""
        return self.total_examples / self.total_seconds if self.total_seconds else 0.0

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self._epoch_start_step = self._step()
        self._mark_examples = self._seen(self.progress.first_batch)
        if self._mark_time is not None:  # Leave the last epoch's validation out.
            self._mark_time = time.perf_counter()

    def _seen(self, batches: int) -> int:
        return min(batches * self.global_batch_size, self.examples_per_epoch)

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        # The step from the batch index: no device read-back on every batch.
        batches = self.progress.batches_done(batch)
        step = self._epoch_start_step + (batch + 1) // self.progress.accumulation
        seen, now = self._seen(batches), time.perf_counter()
        if self._mark_time is None:  # The first batch traces the graph: start timing after it.
            self._mark_time, self._mark_examples = now, seen
            self._first_batch_end = now
            return
        self.total_examples += seen - self._mark_examples
        self.total_seconds += now - self._mark_time
        self._mark_time, self._mark_examples = now, seen
        if step - self._last_logged_step >= self.every_steps:
            # Throughput since the last log line, not of the last batch alone.
            examples, seconds = self._logged
            window = (self.total_examples - examples) / max(self.total_seconds - seconds, 1e-9)
            self._logged = (self.total_examples, self.total_seconds)
            self._write(step, logs, window)
            if self.log_steps:
                logging.info("epoch %d/%d, step %d: loss %.4f, %.1f examples/s", self.progress.epoch + 1,
                             self.epochs, step, float(logs.get("loss", np.nan)), window)

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        train_logs = {k: float(v) for k, v in logs.items() if not k.startswith("val_")}
        self._write(self._step(), train_logs, self.examples_per_second)
        logging.info("epoch %d/%d done: %s", epoch + 1, self.epochs,
                     ", ".join(f"{k} {v:.4f}" for k, v in train_logs.items()))

    def _write(self, step, logs, examples_per_second):
        self._last_logged_step = step
        if self.writer is None:
            return
        with self.writer.as_default(step=step):
            for name, value in (logs or {}).items():
                tf.summary.scalar(name, float(value))
            tf.summary.scalar("learning_rate", current_learning_rate(self.model))
            tf.summary.scalar("examples_per_second", examples_per_second)
        self.writer.flush()


#: Environment variable that decides whether a progress bar is drawn (1) or not (0).
PROGRESS_BAR_VARIABLE = "TFFT_PROGRESS_BAR"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class ConsoleMode:
    """How training shows its progress.

    Attributes:
        progress_bar: Draw a :class:`ProgressBar` per epoch on stdout.
        step_log_lines: Log a line every ``trainer.log_every_steps`` (off where the bar
            and the log share a screen: the lines would break the bar's line).
    """

    progress_bar: bool
    step_log_lines: bool


def console_mode(stdout=None, stderr=None, environ: Mapping[str, str] | None = None,
                 modules: Mapping[str, object] | None = None) -> ConsoleMode:
    """A progress bar for a person watching, log lines for files, pipes and CI.

    The bar is drawn where stdout is a terminal or in a Jupyter/IPython kernel (whose
    stdout is not a terminal but shows the bar). Then the per-step log lines go where
    stderr is a terminal or notebook too, so that they do not break the bar's line; the
    log of ``2>train.log`` keeps them. ``TFFT_PROGRESS_BAR=1`` (bar, no step lines) or
    ``0`` (step lines, no bar) decides instead.

    Args:
        stdout: The stream the bar would be drawn on (default: ``sys.stdout``).
        stderr: The stream log lines go to (default: ``sys.stderr``).
        environ: The environment (default: ``os.environ``).
        modules: The imported modules (default: ``sys.modules``).

    Raises:
        TfftError: for a ``TFFT_PROGRESS_BAR`` value that is not 1/0, true/false, yes/no
            or on/off.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    setting = environ.get(PROGRESS_BAR_VARIABLE, "").strip().lower()
    if setting in _ON:
        return ConsoleMode(progress_bar=True, step_log_lines=False)
    if setting in _OFF:
        return ConsoleMode(progress_bar=False, step_log_lines=True)
    if setting:
        raise TfftError(f"{PROGRESS_BAR_VARIABLE}={environ[PROGRESS_BAR_VARIABLE]!r} is not 1 or 0; "
                        f"unset it to draw a progress bar only in a terminal or notebook")
    notebook = "ipykernel" in modules
    bar = (notebook or _isatty(sys.stdout if stdout is None else stdout)) and \
        keras.config.is_interactive_logging_enabled()  # Else Keras logs each redraw as a line.
    shared_screen = notebook or _isatty(sys.stderr if stderr is None else stderr)
    return ConsoleMode(progress_bar=bar, step_log_lines=not (bar and shared_screen))


def _isatty(stream) -> bool:
    """Whether ``stream`` is an open terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # No isatty, or a closed file.
        return False


class _EpochBar(keras.utils.Progbar):
    """Keras' Progbar over an epoch's batches, which may start after batches trained before.

    Its time per batch (and so the ETA) counts only the batches this bar saw run, the
    first of them (tracing and compilation) left out as Keras does.

    Args:
        target: Batches of the epoch.
        start: Batches of the epoch trained before (a resumed epoch).
        interval: Least seconds between redraws.
    """

    def __init__(self, target: int, start: int, interval: float):
        # All values are shown as given: Keras' batch logs hold the epoch's running means already.
        super().__init__(target, interval=interval, unit_name="batch")
        compat.progbar_shows_values_as_given(self)
        self.start = start
        self._seen_so_far = start

    def _estimate_step_duration(self, current, now):
        return super()._estimate_step_duration(current - self.start, now)

    def draws_at(self, current: int) -> bool:
        """Whether :meth:`update` to ``current`` now redraws the bar (else it waits for ``interval``)."""
        return current >= self.target or time.time() - self._last_update >= self.interval


#: The progress bars whose line is open (drawn, not ended with a line break).
_OPEN_BARS: set[ProgressBar] = set()


def end_progress_line() -> None:
    """Ends the line of every progress bar being drawn, so that what is written next starts a line."""
    for bar in list(_OPEN_BARS):
        bar.end_line()


class ProgressBar(keras.callbacks.Callback):
    """Draws each epoch's progress on stdout with Keras' Progbar: batches, ETA, loss, metrics, ``lr``.

    The bar counts the epoch's batches (several per optimizer step under gradient
    accumulation); a resumed epoch's bar starts at the batches trained before. The bar's
    line ends with the epoch's last batch, before validation logs its metrics. A log
    record written during the epoch ends the line first; the bar goes on below it.

    Args:
        progress: The shared :class:`Progress`.
        interval: Least seconds between redraws (the learning rate is read only then).
    """

    def __init__(self, progress: Progress, interval: float = 0.1):
        super().__init__()
        self.progress, self.interval = progress, interval
        self.bar: _EpochBar | None = None
        self._end_line_before_logs = _EndLineBeforeLogs(self)

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        start = self.progress.first_batch
        resumed = f", resuming after batch {start}" if start else ""
        sys.stdout.write(f"Epoch {epoch + 1}/{self.progress.epochs}{resumed}\n")
        sys.stdout.flush()
        self.bar = _EpochBar(self.progress.batches_per_epoch, start, self.interval)
        for handler in logging.getLogger().handlers:
            handler.addFilter(self._end_line_before_logs)

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        done = self.progress.batches_done(batch)
        values = {name: float(value) for name, value in sorted((logs or {}).items(), key=_loss_first)}
        if self.bar.draws_at(done):  # "lr": the line fits more terminals' width.
            values["lr"] = current_learning_rate(self.model)
        self.bar.update(done, list(values.items()))
        if done < self.bar.target:
            _OPEN_BARS.add(self)
        else:
            _OPEN_BARS.discard(self)  # Progbar ended the line.

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        self.end_line()

    def end_line(self) -> None:
        """Ends the bar's line if it is open; later log records are left alone."""
        self.break_line()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._end_line_before_logs)

    def break_line(self) -> None:
        """Ends the bar's line if it is open (its next update draws on a new one)."""
        if self in _OPEN_BARS:
            _OPEN_BARS.discard(self)
            sys.stdout.write("\n")
            sys.stdout.flush()


def _loss_first(item: tuple[str, object]) -> tuple[bool, str]:
    """Sort key of log entries: ``loss`` first, then by name."""
    return item[0] != "loss", item[0]


class _EndLineBeforeLogs(logging.Filter):
    """A handler filter that ends a :class:`ProgressBar`'s open line before each record is written."""

    def __init__(self, bar: ProgressBar):
        super().__init__()
        self.bar = bar

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        self.bar.break_line()
        return True


class Profiler(keras.callbacks.Callback):
    """Records training batches ``first`` to ``last`` with the TensorFlow profiler.

    The trace (``plugins/profile/<run>/*.xplane.pb`` under ``log_dir``) opens in
    TensorBoard's Profile tab (``pip install tensorboard-plugin-profile``): time per
    op, the input pipeline's share of each step, and the trace viewer. Batches count
    from the start of training, 1-based, across epochs and resumes, like Keras'
    ``TensorBoard(profile_batch=(first, last))`` within one ``fit``.

    Args:
        log_dir: Where the profile goes (``model_dir/logs/profile``).
        progress: The shared :class:`Progress`.
        first: The first profiled batch.
        last: The last profiled batch.
    """

    def __init__(self, log_dir: Path, progress: Progress, first: int, last: int):
        super().__init__()
        self.log_dir, self.progress, self.first, self.last = log_dir, progress, first, last
        self.running = False

    def on_train_batch_begin(self, batch, logs=None):  # noqa: D102
        # global_batch(batch) counts this batch as done: the batch about to run.
        number = self.progress.global_batch(batch)
        if not self.running and self.first <= number <= self.last:
            tf.profiler.experimental.start(str(self.log_dir))
            self.running = True
            logging.info("profiling training batches %d to %d into %s", number, self.last, self.log_dir)

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        if self.running and self.progress.global_batch(batch) >= self.last:
            self._stop()

    def on_train_end(self, logs=None):  # noqa: D102
        if self.running:  # The epoch (or training) ended inside the range.
            self._stop()

    def _stop(self):
        tf.profiler.experimental.stop()
        self.running = False


def profile_range(steps: list) -> tuple[int, int] | None:
    """``trainer.profile_steps`` as ``(first, last)`` (None: off).

    Raises:
        TfftError: unless ``steps`` is empty or two batch numbers ``1 <= first <= last``.
    """
    if not steps:
        return None
    if (len(steps) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in steps)
            or not 1 <= steps[0] <= steps[1]):
        raise TfftError(
            f"trainer.profile_steps must be [first, last] training batches with 1 <= first <= last, "
            f"got {steps}; e.g. trainer.profile_steps=[20,25]"
        )
    return steps[0], steps[1]


class NonFiniteLoss(keras.callbacks.Callback):
    """Stops training with a :class:`TfftError` naming the step where the loss became NaN/Inf.

    Keras' training loss is the epoch's running mean, so it turns non-finite at the
    first batch whose loss is.

    Args:
        progress: The shared :class:`Progress`.
    """

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise TfftError(
                f"training loss became {loss} at batch {self.progress.global_batch(batch)} "
                f"(epoch {self.progress.epoch + 1}, batch {self.progress.batches_done(batch)} of it); "
                "lower trainer.learning_rate, check the training labels, or train with "
                "runtime.mixed_precision=float32"
            )


class Validation(keras.callbacks.Callback):
    """Evaluates on the whole validation split after every epoch.

    Metrics go to ``logs/validation`` and into Keras' epoch logs as ``val_<name>``,
    where the callbacks listed after this one see them.

    Args:
        task: The task (its metrics).
        features: Validation features with labels.
        batch_size: Global evaluation batch size.
        log_dir: ``model_dir/logs/validation``, or None to write no event files.
        static_length: Static-shape padding length (0 = dynamic).
        full_batches: Fill the last batch (several replicas).
        inference_model: Returns the model to predict with, given the training model
            (default: the training model itself).
        float32_model: Under mixed precision: returns a float32 model with the training
            model's weights, which validates after ``last_epoch`` so that the final
            evaluation (in float32, as exported) can reuse it instead of a second pass.
        last_epoch: The run's last epoch (0-based).
        float32: Whether ``inference_model`` computes in float32 (training precision).
        max_tokens: Padded tokens per evaluation batch at most (0: no limit).
    """

    def __init__(self, task: Task, features: Features, batch_size: int, log_dir: Path | None,
                 static_length: int = 0, full_batches: bool = False, inference_model=None,
                 float32_model=None, last_epoch: int = -1, float32: bool = True, max_tokens: int = 0):
        super().__init__()
        self.task = task
        self.features = features
        self.batch_size = batch_size
        self.static_length = static_length
        self.full_batches = full_batches
        self.inference_model = inference_model or (lambda model: model)
        self.float32_model, self.last_epoch, self.float32 = float32_model, last_epoch, float32
        self.max_tokens = max_tokens
        self.writer = tf.summary.create_file_writer(str(log_dir)) if log_dir else None
        self.seconds = 0.0
        self.latest: tuple[int, dict] | None = None

    def float32_metrics_at(self, step: int) -> dict | None:
        """The latest validation's metrics if it ran in float32 after optimizer step ``step``."""
        return dict(self.latest[1]) if self.latest and self.latest[0] == step else None

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        start = time.perf_counter()
        final = epoch == self.last_epoch and self.float32_model is not None
        model = (self.float32_model if final else self.inference_model)(self.model)
        metrics, _ = evaluation.evaluate(
            self.task, model, self.features, self.batch_size, self.static_length, self.full_batches,
            self.max_tokens,
        )
        self.seconds += time.perf_counter() - start
        step = int(self.model.optimizer.iterations.numpy())
        self.latest = (step, metrics) if final or self.float32 else None
        if self.writer is not None:
            with self.writer.as_default(step=step):
                for name, value in metrics.items():
                    if name != "num_examples":
                        tf.summary.scalar(name, value)
            self.writer.flush()
        logging.info("epoch %d validation: %s", epoch + 1,
                     ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in metrics.items() if k != "num_examples"})


class BestCheckpoint(keras.callbacks.Callback):
    """Keeps the weights with the best validation metric; optionally stops early.

    Like Keras' ``ModelCheckpoint(save_best_only=True)`` plus ``EarlyStopping(
    restore_best_weights=True)``, with state that survives restarts (:meth:`state`).

    Args:
        monitor: The epoch-log key, e.g. ``val_accuracy``.
        mode: ``max`` or ``min``.
        path: The best weights file (``checkpoints/best.weights.h5``).
        files: Writes and reads the model's weight files.
        patience: Epochs without improvement before stopping (0 = never stop).
        write: Whether this process writes ``path`` (the chief). Other workers keep the
            best weights in memory, and read the chief's file after a restart.
    """

    def __init__(self, monitor: str, mode: str, path: Path, files: WeightFiles, patience: int = 0,
                 write: bool = True):
        super().__init__()
        self.monitor, self.mode, self.path, self.patience, self.write = monitor, mode, path, patience, write
        self.files = files
        self.best: float | None = None
        self.best_epoch = -1
        self.wait = 0
        self._best_weights = None
        #: Whether early stopping put the best weights back (the last validation's are gone).
        self.restored = False

    def state(self) -> dict:
        """What a backup keeps."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state: dict) -> None:
        """Restores :meth:`state` from a backup."""
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.write:
                self.files.save(self.path)
            elif self.patience:
                self._best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            logging.info("early stopping after epoch %d: %s did not improve on %.4f (epoch %d) "
                         "for %d epochs; restoring the best weights", epoch + 1, self.monitor,
                         self.best, self.best_epoch + 1, self.wait)
            if self._best_weights is not None:
                self.model.set_weights(self._best_weights)
            else:
                self.files.load(self.path)
            self.restored = True
            self.model.stop_training = True


class LatestWeights(keras.callbacks.Callback):
    """Saves ``checkpoints/latest.weights.h5`` at every epoch end.

    Args:
        path: The file to write.
        files: Writes the model's weight files.
    """

    def __init__(self, path: Path, files: WeightFiles):
        super().__init__()
        self.path, self.files = path, files

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        self.files.save(self.path)


class Backups(keras.callbacks.Callback):
    """Writes a :class:`~tfft.training.backup.Backup` every ``every`` batches and at epoch ends.

    No backup follows the last epoch: training is over then.

    Args:
        backup: Where and what to save.
        progress: The shared :class:`Progress`.
        every: Batch interval (0: epoch ends only); with ``steps_per_execution`` > 1 the
            backup follows the first execution that reaches the next multiple.
        best: The best-checkpoint callback whose state is saved too (or None).
    """

    def __init__(self, backup: Backup, progress: Progress, every: int, best: BestCheckpoint | None):
        super().__init__()
        self.backup, self.progress, self.every, self.best = backup, progress, every, best
        self._last_done = 0

    def on_epoch_begin(self, epoch, logs=None):  # noqa: D102
        self._last_done = self.progress.first_batch

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        done, before = self.progress.batches_done(batch), self._last_done
        self._last_done = done
        crossed = self.every > 0 and done // self.every > before // self.every
        if crossed and done < self.progress.batches_per_epoch:
            self._save(self.progress.epoch, done)

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        if epoch + 1 < self.progress.epochs and not self.model.stop_training:
            self._save(epoch + 1, 0)

    def _save(self, epoch: int, batches: int) -> None:
        state = TrainingState(epoch, batches, self.best.state() if self.best else {})
        self.backup.save(state, epoch * self.progress.batches_per_epoch + batches)
