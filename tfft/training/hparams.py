"""TensorBoard HParams summaries: a run's settings and its final metrics, one session per run.

A run that trains writes ``logs/hparams``: the HParams plugin's session (the config's scalar
keys, e.g. ``trainer.learning_rate`` and ``runtime.seed``) and the run's final metrics as
scalars of the same names as in ``eval_results.json`` (``train_loss`` when there was no
validation). TensorBoard pointed at a folder of runs (a ``tools/sweep.py`` output) lists
each run in its HParams dashboard, where runs compare by any setting.
"""

from __future__ import annotations

import math
from pathlib import Path

import tensorflow as tf

from tfft.config import ExperimentConfig, to_dict

#: Config keys left out: data paths are the same over a sweep and say nothing as numbers.
_SKIPPED = ("task.train_data", "task.validation_data", "task.extra_validation_data", "task.predict_data")


def config_hparams(config: ExperimentConfig) -> dict[str, bool | int | float | str]:
    """The config's keys as HParams values, by dotted name (lists and mappings as text)."""
    values = {}
    for section, keys in to_dict(config).items():
        for name, value in keys.items():
            key = f"{section}.{name}"
            if key not in _SKIPPED:
                values[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return values


def write_hparams(log_dir: Path, config: ExperimentConfig, metrics: dict, step: int) -> None:
    """Writes the run's HParams session and its finite numeric ``metrics`` into ``log_dir``.

    Args:
        log_dir: The run's ``logs/hparams`` folder.
        config: The run's config.
        metrics: Final metrics by name (other values are left out).
        step: The optimizer step they are for.
    """
    from tensorboard.plugins.hparams import api as hparams_api

    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default(step=step):
        hparams_api.hparams(config_hparams(config))
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                tf.summary.scalar(name, float(value))
    writer.close()
