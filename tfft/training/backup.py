"""Resumable training state, so that a killed or preempted run continues where it stopped.

A backup is a folder ``model_dir/backup/step-NNNNNNNNN`` (``N``: global batches
trained) with

- ``variables.*``: a ``tf.train.Checkpoint`` of every model variable (weights and the
  dropout seed generators' states) and every optimizer variable (step counter,
  moments, gradient accumulators, loss scale);
- ``state.json``: the epoch and the batches of it already trained (the data order of
  an epoch is fixed by the seed, so these say exactly which batch comes next), the
  state of the best-checkpoint and early-stopping logic, the file sizes, and the
  run's config.

Weights, optimizer, dropout randomness and data position resume exactly, so the
finished run equals an uninterrupted one. Only the running training metrics that
Keras logs for the resumed epoch (``loss``, ``accuracy``) restart: they average the
batches after the restart.

It is written into a ``.tmp-`` folder that is renamed into place when complete, so a
crash while writing leaves the previous backup intact. On restart the newest backup is
checked (file sizes, and TensorFlow's checksums while reading) and a damaged one stops
the run with an error that says what to delete. The last :data:`KEEP` backups are kept;
the folder is removed when training finishes. The oldest backup is deleted before a new one
is renamed into place, so no more than :data:`KEEP` are ever on disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
from pathlib import Path

import tensorflow as tf

from tfft.errors import TfftError, is_out_of_space, out_of_space, reason

BACKUP_DIR = "backup"
STATE_FILE = "state.json"
VARIABLES = "variables"
#: Backups kept: the newest, and the one before it to fall back to.
KEEP = 2
#: Config keys that may change between a run and its resumption.
RESUMABLE_CHANGES = frozenset({
    "trainer.backup_steps", "trainer.log_every_steps", "trainer.steps_per_execution",
    "trainer.profile_steps", "trainer.eval_max_tokens", "runtime.tpu",
})


@dataclasses.dataclass
class TrainingState:
    """Where training stands.

    Attributes:
        epoch: The epoch in progress (0-based).
        batches: Global batches of that epoch already trained.
        callbacks: Restorable state of callbacks (best metric, patience...).
    """

    epoch: int = 0
    batches: int = 0
    callbacks: dict = dataclasses.field(default_factory=dict)


def _flat(config: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class Backup:
    """Writes and restores :class:`TrainingState` with the model and optimizer variables.

    Args:
        model_dir: The run's directory (backups go to ``model_dir/backup``).
        model: The compiled model; its optimizer must be built.
        config: The run's resolved config as a dict (a backup only resumes the same run).
        writer: Whether this process writes (the chief); others only restore.
    """

    def __init__(self, model_dir: Path, model, config: dict, writer: bool = True):
        self.folder = Path(model_dir) / BACKUP_DIR
        self.model = model
        self.config = config
        self.writer = writer
        self._checkpoint = tf.train.Checkpoint(
            model=list(model.variables), optimizer=list(model.optimizer.variables)
        )
        self._variables = list(model.variables) + list(model.optimizer.variables)

    def save(self, state: TrainingState, global_batch: int, overwrite: bool = True) -> Path | None:
        """Writes a backup after ``global_batch`` batches (atomically; only the writer).

        Args:
            state: Where training stands.
            global_batch: Batches trained since the start (names the folder).
            overwrite: Whether to write again a backup that exists for this batch.

        Returns:
            The backup's folder (None in processes that do not write).

        Raises:
            TfftError: if the disk is full (or over quota); the earlier backups stay intact.
        """
        if not self.writer:
            return None
        final = self.folder / f"step-{global_batch:09d}"
        if final.is_dir() and not overwrite:
            return final
        temporary = self.folder / f".tmp-{final.name}"
        shutil.rmtree(temporary, ignore_errors=True)
        try:
            temporary.mkdir(parents=True, exist_ok=True)
            self._checkpoint.write(str(temporary / VARIABLES))
            sizes = {path.name: path.stat().st_size for path in temporary.iterdir()}
            record = {**dataclasses.asdict(state), "files": sizes, "config": self.config}
            (temporary / STATE_FILE).write_text(json.dumps(record, indent=1))
        except (OSError, tf.errors.OpError) as error:
            shutil.rmtree(temporary, ignore_errors=True)
            if not is_out_of_space(error):
                raise
            raise out_of_space(final, self._size()) from None
        # The oldest go before the new one is renamed into place: never more than KEEP on disk.
        older = [backup for backup in self._backups() if backup != final]
        for old in older[:max(len(older) - (KEEP - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        return final

    def _size(self) -> int:
        """Bytes of a backup: those of the newest one, else the variables' own."""
        backups = self._backups()
        if backups:
            return sum(path.stat().st_size for path in backups[-1].iterdir())
        return variables_bytes(self._variables)

    def latest(self) -> Path | None:
        """The newest complete backup, or None."""
        backups = self._backups()
        return backups[-1] if backups else None

    def _backups(self) -> list[Path]:
        return sorted(self.folder.glob("step-*")) if self.folder.is_dir() else []

    def restore(self) -> TrainingState | None:
        """Loads the newest backup into the model and optimizer; None if there is none.

        Raises:
            TfftError: if the backup is damaged or belongs to a run with another config.
        """
        if self.writer:  # Unfinished writes are never used.
            for partial in self.folder.glob(".tmp-*"):
                logging.warning("removing the unfinished backup %s", partial)
                shutil.rmtree(partial, ignore_errors=True)
        backups = self._backups()
        if not backups:
            return None
        latest = backups[-1]
        previous = f" ({backups[-2].name})" if len(backups) > 1 else ""

        def damaged(why: str) -> TfftError:
            return TfftError(
                f"backup '{latest}' is damaged ({why}); delete that folder to resume from the "
                f"previous backup{previous}, or delete '{self.folder}' to start over"
            )

        try:
            record = _read_record(latest)
        except (OSError, ValueError, AttributeError) as error:
            raise damaged(f"unreadable {STATE_FILE}: {reason(error)}") from None
        sizes = record.pop("files")
        _check_config(self.folder, self.config, record.pop("config"))
        for name, size in sizes.items():
            path = latest / name
            if not path.is_file() or path.stat().st_size != size:
                raise damaged(f"'{name}' is missing or has the wrong size")
        try:
            self._checkpoint.read(str(latest / VARIABLES)).assert_existing_objects_matched()
        except Exception as error:  # noqa: BLE001 - TF reports damage as many error types.
            raise damaged(reason(error)) from None
        state = TrainingState(**record)
        logging.info("resuming from %s: epoch %d, after %d batches of it", latest, state.epoch + 1,
                     state.batches)
        return state

    def remove(self) -> None:
        """Deletes every backup (training finished)."""
        if self.writer:
            shutil.rmtree(self.folder, ignore_errors=True)


def variables_bytes(variables) -> int:
    """The bytes ``variables`` hold (what a file of their values needs, about)."""
    return sum(math.prod(v.shape) * tf.as_dtype(v.dtype).size for v in variables)


def _read_record(backup: Path) -> dict:
    """A backup's ``state.json`` (raises OSError/ValueError/AttributeError when unreadable)."""
    record = json.loads((backup / STATE_FILE).read_text())
    if not isinstance(record.get("files"), dict) or not isinstance(record.get("config"), dict):
        raise ValueError("no files or config entry")
    return record


def _check_config(folder: Path, now: dict, then: dict) -> None:
    now, then = _flat(now), _flat(then)
    changed = sorted(key for key in now.keys() | then.keys()
                     if key not in RESUMABLE_CHANGES and now.get(key) != then.get(key))
    if changed:
        key = changed[0]
        raise TfftError(
            f"'{folder}' holds the backup of an interrupted run with another config "
            f"({key}: {then.get(key)!r} then, {now.get(key)!r} now); rerun with the same "
            f"config to resume it, or delete '{folder}' to start over"
        )


def check_resumable(model_dir: Path, config: dict) -> None:
    """Fails early if ``model_dir`` holds the backup of a run with another config.

    Only the newest backup's ``state.json`` is read (no model needed), so a run can
    check this before it writes anything; a damaged one is left to :meth:`Backup.restore`.

    Raises:
        TfftError: for a backup of another config.
    """
    folder = Path(model_dir) / BACKUP_DIR
    backups = sorted(folder.glob("step-*")) if folder.is_dir() else []
    try:
        then = _read_record(backups[-1])["config"] if backups else None
    except (OSError, ValueError, AttributeError):
        return
    if then is not None:
        _check_config(folder, config, then)
