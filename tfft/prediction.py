"""Predicting a data file with an exported SavedModel alone (what ``tfft-predict`` runs).

Needs only the export (``tfft-export``'s directory): the task's settings come from its
``assets/params.yaml``, the input file is read by the task's own reader (TSV, CSV, JSONL,
CoNLL, SQuAD JSON or ``tfds:NAME/SPLIT``, as training reads them), and the raw texts go to
its ``serving_default`` signature a batch at a time. Rows are written as the task writes
them (:meth:`~tfft.tasks.Task.write_served`; JSON lines for sentence and token tasks,
``{id: answer}`` for SQuAD).
"""

from __future__ import annotations

import time
from pathlib import Path

import tensorflow as tf
from absl import logging

from tfft import modeling
from tfft.config import DataConfig, build_config
from tfft.data.sources import TFRECORD_FORMAT, infer_format
from tfft.errors import TfftError, reason
from tfft.tasks import Task, get_task

#: Progress is logged after every this many batches (and after the last).
LOG_EVERY_BATCHES = 20


def input_data(task: Task, path: str, fmt: str = "auto", columns: list | None = None) -> DataConfig:
    """How to read ``path``: as the run read its data, where the file and the flags leave it open.

    Args:
        task: The run's task; its predict, validation and train data settings are looked at
            in this order, and its :attr:`~tfft.tasks.Task.format_suffixes` name formats.
        path: The input file.
        fmt: Its format; ``auto``: its suffix's, else the first the run's data sets.
        columns: Column names of a header-less TSV/CSV file; None: the first the run's data
            sets.
    """
    splits = (task.config.predict_data, task.config.validation_data, task.config.train_data)
    if fmt == "auto" and not _names_a_format(path, task.format_suffixes):
        fmt = next((split.format for split in splits if split.format not in ("auto", TFRECORD_FORMAT)), fmt)
    if columns is None:
        columns = next((split.columns for split in splits if split.columns), [])
    return DataConfig(input_path=path, format=fmt, columns=list(columns))


def _names_a_format(path: str, suffixes: dict[str, str]) -> bool:
    try:
        infer_format(path, suffixes=suffixes)
    except TfftError:
        return False
    return True


def export_task(export_dir: Path) -> Task:
    """The task of an export, built from its ``assets/params.yaml``.

    Raises:
        TfftError: if ``export_dir`` is not a directory ``tfft-export`` wrote.
    """
    if not export_dir.is_dir():
        raise TfftError(f"--export_dir '{export_dir}' does not exist; pass a directory tfft-export wrote")
    params = export_dir / modeling.ASSETS_DIR / modeling.PARAMS_FILE
    if not params.is_file():
        raise TfftError(
            f"'{params}' does not exist, so '{export_dir}' is not a tfft SavedModel; pass a directory "
            "tfft-export wrote (not the training model_dir)"
        )
    return get_task(build_config([str(params)]).task)


def raw_text_signature(export_dir: Path, task: Task, names: list[str]):
    """The export's ``serving_default`` signature, checked to take the raw-text inputs ``names``.

    Raises:
        TfftError: if the SavedModel cannot be loaded or its signature takes other inputs.
    """
    try:
        signature = tf.saved_model.load(str(export_dir)).signatures.get("serving_default")
    except (OSError, ValueError) as error:
        raise TfftError(
            f"cannot load the SavedModel in '{export_dir}' ({reason(error)}); export the run again"
        ) from None
    inputs = sorted(signature.structured_input_signature[1]) if signature is not None else []
    if inputs != sorted(names):
        raise TfftError(
            f"serving_default of '{export_dir}' takes {', '.join(inputs) or 'no inputs'}, but tfft-predict "
            f"sends task '{task.name}' raw text ({', '.join(names)}); export the run again with a current "
            "tfft-export, which serves raw text"
        )
    return signature


def _writable(path: Path) -> None:
    """Creates ``path``'s directory and checks that the file can be written (keeping what it holds)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a"):
            pass
    except OSError as error:
        raise TfftError(
            f"cannot write --output_path '{path}' ({reason(error)}); choose a writable file"
        ) from None


def _characters(value: str | list[str]) -> int:
    """Characters of one example's input: a string, or a list of them (e.g. choices)."""
    return len(value) if isinstance(value, str) else sum(map(len, value))


def serve(signature, task: Task, examples: list, texts: dict[str, list], batch_size: int):
    """Runs ``signature`` on ``examples``' raw texts a batch at a time, similar lengths together.

    Args:
        signature: What :func:`raw_text_signature` returned.
        task: The export's task.
        examples: The task's examples (read from a file, or :meth:`~tfft.tasks.Task.examples_from_texts`).
        texts: Their :meth:`~tfft.tasks.Task.serving_texts`.
        batch_size: Examples per call.

    Returns:
        ``(rows, seconds)``: the task's :meth:`~tfft.tasks.Task.served_rows` in example
        order, and the time the batches took.
    """
    count = len(examples)
    order = sorted(range(count), key=lambda i: sum(_characters(values[i]) for values in texts.values()))
    rows: list = [None] * count
    batches = range(0, count, batch_size)
    start = time.perf_counter()
    for number, first in enumerate(batches, start=1):
        chosen = order[first:first + batch_size]
        batch = {name: tf.constant([values[i] for i in chosen]) for name, values in texts.items()}
        outputs = signature(**batch)
        served = task.served_rows([examples[i] for i in chosen], {k: v.numpy() for k, v in outputs.items()})
        for index, row in zip(chosen, served, strict=True):
            rows[index] = row
        seconds = time.perf_counter() - start
        if number % LOG_EVERY_BATCHES == 0 or number == len(batches):
            done = first + len(chosen)
            logging.info("predicted %d of %d examples (%.1f examples/s)", done, count, done / seconds)
    return rows, seconds


def predict_file(export_dir: str | Path, input_path: str, output_path: str | Path, batch_size: int = 64,
                 input_format: str = "auto", input_columns: list[str] | None = None) -> tuple[int, float]:
    """Predicts every example of ``input_path`` with the SavedModel in ``export_dir``.

    Args:
        export_dir: A directory written by ``tfft-export`` (raw-text ``serving_default``).
        input_path: The data to predict, read by the task's reader (see :func:`input_data`).
        output_path: The file the task's rows are written to (its directory is created).
        batch_size: Examples per ``serving_default`` call.
        input_format: The input's format (``auto``: see :func:`input_data`).
        input_columns: Column names of a header-less TSV/CSV input (None: the run's).

    Returns:
        ``(predictions, examples per second)``.
    """
    export_dir, output_path = Path(export_dir), Path(output_path)
    task = export_task(export_dir)
    data = input_data(task, input_path, input_format, input_columns)
    examples = task.read_examples(data, labeled=False)
    texts = task.serving_texts(examples)  # Checked before anything is written.
    signature = raw_text_signature(export_dir, task, list(texts))
    _writable(output_path)
    logging.info("predicting %d examples of %s with %s", len(examples), input_path, export_dir)
    rows, seconds = serve(signature, task, examples, texts, batch_size)
    task.write_served(rows, output_path)
    return len(rows), len(rows) / seconds


def summary(count: int, speed: float, output_path: str | Path) -> str:
    """The line ``tfft-predict`` ends with."""
    return f"wrote {count} predictions to {output_path} ({speed:.1f} examples/s)"
