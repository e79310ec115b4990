"""Stopping on SIGTERM or SIGINT with a backup, so that the same command resumes the run.

Preemptible VMs (Cloud TPU, GCE spot) send SIGTERM about 30 seconds before they kill a
process; people press Ctrl-C. On the first signal, training finishes the step it is in,
writes a backup at once (whatever ``trainer.backup_steps`` says) and stops with
:class:`TrainingInterrupted`, which entry points turn into exit status 128 + the signal
number (143 after SIGTERM, 130 after SIGINT). A second SIGINT exits at once; backups
are written atomically, so the last complete one stays usable.

Under ``multi_worker`` a signal may reach one worker only: every worker reduces the
"stop" flag over all workers after each step, so all of them stop and save after the
same step (the pattern of ``tf.distribute.experimental.PreemptionCheckpointHandler``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading

import keras
import tensorflow as tf

from tfft.errors import TrainingInterrupted
from tfft.training.backup import Backup, TrainingState

#: The signals that stop training with a backup.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalFlag:
    """Records the first SIGTERM/SIGINT while installed; a second SIGINT exits at once."""

    def __init__(self):
        self.received: int | None = None

    def _handle(self, signal_number, frame):
        if self.received is not None and signal_number == signal.SIGINT:
            sys.stderr.write("\nsecond interrupt: exiting now; the last complete backup stays\n")
            sys.stderr.flush()
            os._exit(128 + signal.SIGINT)
        if self.received is None:
            self.received = signal_number
            logging.warning("%s received: stopping after the current step to write a backup "
                            "(press Ctrl-C again to exit at once)", signal.Signals(signal_number).name)

    @contextlib.contextmanager
    def installed(self):
        """Handles the signals inside the block (main thread only; elsewhere it does nothing)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {number: signal.signal(number, self._handle) for number in SIGNALS}
        try:
            yield self
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


class StopOnSignal(keras.callbacks.Callback):
    """After a signal, writes a backup after the current step and raises :class:`TrainingInterrupted`.

    Goes last in the callback list, so the step's other callbacks (a scheduled backup
    included) have run. A signal during an epoch's last step or its validation stops the
    run after the epoch-end backup; one during the last epoch's end, after ``fit``
    (:meth:`raise_if_received`), from the last epoch-end backup.

    Args:
        flag: The installed :class:`SignalFlag`.
        backup: Where the backup goes.
        progress: The shared :class:`~tfft.training.callbacks.Progress`.
        best: The best-checkpoint callback whose state is saved too (or None).
        workers_strategy: Under several workers, their strategy: the flag is reduced over
            all of them after each step. None for one process.
    """

    def __init__(self, flag: SignalFlag, backup: Backup, progress, best=None, workers_strategy=None):
        super().__init__()
        self.flag, self.backup, self.progress, self.best = flag, backup, progress, best
        self.strategy = workers_strategy

    def _received(self) -> int | None:
        """The signal number if this process, or under several workers any worker, got one."""
        if self.strategy is None:
            return self.flag.received
        # Per signal, how many workers got it (a sum: collectives have no maximum).
        local = tf.constant([int(self.flag.received == number) for number in SIGNALS], tf.int32)
        counts = self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                      self.strategy.run(lambda: tf.identity(local)), axis=None)
        return next((number for number, count in zip(SIGNALS, counts.numpy(), strict=True) if count), None)

    def on_train_batch_end(self, batch, logs=None):  # noqa: D102
        done = self.progress.batches_done(batch)
        if done < self.progress.batches_per_epoch:
            self._stop_if_received(self.progress.epoch, done)

    def on_epoch_end(self, epoch, logs=None):  # noqa: D102
        if epoch + 1 < self.progress.epochs and not self.model.stop_training:
            self._stop_if_received(epoch + 1, 0)

    def _stop_if_received(self, epoch: int, batches: int) -> None:
        received = self._received()
        if received is None:
            return
        global_batch = epoch * self.progress.batches_per_epoch + batches
        state = TrainingState(epoch, batches, self.best.state() if self.best else {})
        path = self.backup.save(state, global_batch, overwrite=False)
        raise TrainingInterrupted(
            received, path,
            f"stopped by {signal.Signals(received).name} after {global_batch} batches "
            f"(epoch {epoch + 1 if batches else epoch}); backup in '{path}'; "
            "rerun the same command to resume",
        )

    def raise_if_received(self, final_weights) -> None:
        """After ``fit`` and the final weights: a signal too late for a step stops the run here.

        Args:
            final_weights: The trained weights' file, named in the message.
        """
        received = self.flag.received
        if received is None:
            return
        latest = self.backup.latest()
        again = f"from the backup '{latest}'" if latest else "from the start"
        raise TrainingInterrupted(
            received, latest,
            f"stopped by {signal.Signals(received).name} after training, before the final evaluation: "
            f"the trained weights are in '{final_weights}' (--mode=eval evaluates them); rerunning the "
            f"same command trains again {again}",
        )
