"""Tokenized features as sharded TFRecord files, for TPUs and for data read from GCS.

``tools/create_tfrecords.py`` writes a folder (local or ``gs://``) with

- ``train-00000-of-0000N.tfrecord`` ... and ``validation-...tfrecord``: one
  ``tf.train.Example`` per model input row (a window, for tasks that cut long texts),
  every feature fixed-length in the shapes the task declares
  (:class:`~tfft.data.features.FeatureSpecs`, the token axis at ``max_seq_length``):
  the model inputs (zero-padded), ``length`` (tokens per sequence of the row) and
  ``label`` (per-token labels padded with the label's padding) and ``example_index``
  (the example the row belongs to; files written before it was added to training rows
  lack it there). Validation rows also carry what post-processing needs: the task's
  per-token extras (e.g. ``word_index``, ``char_spans``) and, on an example's first
  row, the example itself as JSON;
- ``metadata.json``: the task, ``max_seq_length``, the label list and, per split, the
  example and row counts, the files and every feature's stored shape and dtype.

Rows go to the shards round-robin and are read back interleaved one record per file,
so one reader sees them in their original order (the order the same data has when
read from text files); several workers read disjoint sets of files. A split may be
read in part: its first ``max_examples`` examples (:class:`TFRecordSplit`). Files
written by format version 1 (before feature shapes were stored) are read too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import posixpath
import types
import typing
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.data.features import MODEL_INPUTS, Features, FeatureSpec, FeatureSpecs
from tfft.data.pipeline import TrainingSource
from tfft.data.sources import check_max_examples
from tfft.errors import TfftError

METADATA_FILE = "metadata.json"
#: Records parsed at a time where only their ``example_index`` is read.
_COUNT_BATCH = 4096
SUFFIX = ".tfrecord"
FORMAT_VERSION = 2
SPLITS = ("train", "validation")


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(values).ravel().tolist()))


def _float(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(values).ravel().tolist()))


def _feature(values, dtype: str) -> tf.train.Feature:
    return (_float if dtype == "float32" else _int64)(values)


def _stored_dtype(values: np.ndarray) -> str:
    return "float32" if np.issubdtype(np.asarray(values).dtype, np.floating) else "int64"


class _Rows:
    """Cuts flat per-token arrays into fixed-shape rows: ``[L, ...]`` or ``[S, L, ...]``."""

    def __init__(self, features: Features, sequences: int, length: int):
        self.features, self.sequences, self.length = features, sequences, length
        self.offsets = features.offsets()
        counts = np.ones(len(features), np.int64) if features.sequences is None else features.sequences
        self.first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.counts = counts

    def lengths(self, row: int) -> np.ndarray:
        """Tokens per sequence of ``row``, zero for missing sequences."""
        out = np.zeros(max(self.sequences, 1), dtype=np.int64)
        count = self.counts[row]
        out[:count] = self.features.lengths[self.first[row]:self.first[row] + count]
        return out

    def block(self, values: np.ndarray, row: int, fill) -> np.ndarray:
        """The row's values of a flat per-token array, padded to the fixed shape."""
        out = np.full((max(self.sequences, 1), self.length, *values.shape[1:]), fill, dtype=values.dtype)
        for slot in range(self.counts[row]):
            sequence = self.first[row] + slot
            start, count = self.offsets[sequence], self.features.lengths[sequence]
            out[slot, :count] = values[start:start + count]
        return out if self.sequences else out[0]


def shard_names(split: str, num_shards: int) -> list[str]:
    """File names of a split's shards."""
    return [f"{split}-{index:05d}-of-{num_shards:05d}{SUFFIX}" for index in range(num_shards)]


def write_split(
    folder: str, split: str, features: Features, specs: FeatureSpecs, max_seq_length: int,
    num_shards: int, with_examples: bool = False,
) -> dict:
    """Writes ``features`` (with labels) into ``num_shards`` files; returns the split's metadata.

    Args:
        folder: Output folder (local or ``gs://``).
        split: ``train`` or ``validation`` (the file name prefix).
        features: Tokenized rows with labels.
        specs: The task's feature specs (shapes, dtypes and padding).
        max_seq_length: Fixed length of the token axis.
        num_shards: Number of files (rows are dealt to them round-robin).
        with_examples: Also store what evaluation needs (post-processing fields and
            the examples as JSON).
    """
    if features.labels is None:
        raise TfftError(f"the {split} data has no labels; TFRecord files are for labelled data")
    num_shards = max(1, min(num_shards, len(features)))
    names = shard_names(split, num_shards)
    rows = _Rows(features, specs.sequences, max_seq_length)
    label = specs.label
    info = {
        "inputs": {name: list(spec.static_shape(max_seq_length)) for name, spec in specs.inputs.items()},
        "sequences": specs.sequences,
        "label": {"dtype": "float32" if label.dtype == "float32" else "int64",
                  "shape": list(label.static_shape(max_seq_length)), "per_token": label.per_token},
        "extras": {},
    }
    example_index = np.arange(len(features)) if features.example_index is None else features.example_index
    if with_examples:
        token_shape = info["inputs"][MODEL_INPUTS[0]]
        info["extras"] = {name: {"dtype": _stored_dtype(values), "shape": [*token_shape, *values.shape[1:]]}
                          for name, values in features.extras.items()}
        first_rows = set(np.unique(example_index, return_index=True)[1].tolist())
    writers = [tf.io.TFRecordWriter(posixpath.join(folder, name)) for name in names]
    for row in range(len(features)):
        entry = {name: _int64(rows.block(values, row, 0)) for name, values in features.columns.items()}
        entry["length"] = _int64(rows.lengths(row))
        labels = rows.block(features.labels, row, label.padding) if label.per_token else features.labels[row]
        entry["label"] = _feature(labels, info["label"]["dtype"])
        example = int(example_index[row])
        entry["example_index"] = _int64([example])
        if with_examples:
            entry.update({name: _feature(rows.block(values, row, 0), info["extras"][name]["dtype"])
                          for name, values in features.extras.items()})
            text = b""
            if features.examples is not None and row in first_rows:
                text = json.dumps(dataclasses.asdict(features.examples[example]), ensure_ascii=False).encode()
            entry["example"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))
        record = tf.train.Example(features=tf.train.Features(feature=entry))
        writers[row % num_shards].write(record.SerializeToString())
    for writer in writers:
        writer.close()
    sizes = [tf.io.gfile.stat(posixpath.join(folder, name)).length for name in names]
    return {"examples": features.num_examples, "rows": len(features), "files": names, "file_bytes": sizes,
            "with_examples": with_examples, "example_ids": True, **info}


def write_metadata(folder: str, metadata: dict) -> None:
    """Writes ``metadata.json`` (last, so that its presence means the files are complete)."""
    with tf.io.gfile.GFile(posixpath.join(folder, METADATA_FILE), "w") as file:
        file.write(json.dumps({"format_version": FORMAT_VERSION, **metadata}, indent=2) + "\n")


def is_tfrecord_path(path: str, declared_format: str = "auto") -> bool:
    """Whether a data config points at TFRecord files."""
    return declared_format == "tfrecord" or (declared_format == "auto" and path.endswith(SUFFIX))


@dataclasses.dataclass(frozen=True)
class TFRecordSplit:
    """TFRecord files of one split, found from an ``input_path`` and its ``metadata.json``.

    Attributes:
        files: The split's files, in shard order.
        split: The split's name in ``metadata.json``.
        metadata: The whole ``metadata.json``.
        max_examples: Read only the records of the split's first this many examples, in
            written order (0: all), where the records know their example
            (``example_index``: validation files, and training files written since
            their rows carry it) or every example is one record; in older training
            files of tasks that cut examples into windows (token classification,
            question answering), the first this many records.
    """

    files: tuple[str, ...]
    split: str
    metadata: dict
    max_examples: int = 0

    @property
    def counts_examples(self) -> bool:
        """Whether :attr:`max_examples` counts examples (not records)."""
        info = self.info
        return bool(info.get("example_ids") or info.get("with_examples")) or info["rows"] == info["examples"]

    @functools.cached_property
    def rows(self) -> int:
        """The records read: all, or those of the first :attr:`max_examples` examples (or records)."""
        total, examples, count = int(self.info["rows"]), int(self.info["examples"]), self.max_examples
        if not count or (self.counts_examples and count >= examples):
            return total
        if not self.counts_examples or total == examples:  # A record each.
            return min(count, total)
        return _rows_of_first_examples(self, count)

    @property
    def examples(self) -> int:
        """The examples read; estimated from the records read where :attr:`max_examples` counts records."""
        total = int(self.info["examples"])
        if not self.max_examples:
            return total
        if self.counts_examples:
            return min(self.max_examples, total)
        return max(1, round(self.rows * total / int(self.info["rows"])))

    @property
    def partial(self) -> bool:
        """Whether fewer records are read than the split holds."""
        return self.rows < int(self.info["rows"])

    @property
    def info(self) -> dict:
        """The split's entry in ``metadata.json``."""
        return self.metadata["splits"][self.split]

    @property
    def max_seq_length(self) -> int:
        """The fixed length of the per-token features."""
        return int(self.metadata["max_seq_length"])

    @property
    def layout(self) -> dict:
        """Stored shapes: ``inputs``, ``sequences``, ``label`` and ``extras`` (as format 2 writes them).

        Format 1 files stored the three token inputs and, with examples, ``word_index``
        and ``char_spans``, all ``[max_seq_length]`` (``[max_seq_length, 2]``).
        """
        info, length = self.info, self.max_seq_length
        if "inputs" in info:
            return info
        extras = {"word_index": {"dtype": "int64", "shape": [length]},
                  "char_spans": {"dtype": "int64", "shape": [length, 2]}}
        return {**info, "inputs": {name: [length] for name in MODEL_INPUTS}, "sequences": 0,
                "extras": extras if info.get("with_examples") else {}}

    def check(self, path: str, task: str, specs: FeatureSpecs, max_seq_length: int) -> None:
        """Checks that the files were written for this task, length and feature shapes.

        Args:
            path: The configured input path (for messages).
            task: The configured ``task.type``.
            specs: The task's feature specs.
            max_seq_length: The configured ``task.max_seq_length``.

        Raises:
            TfftError: naming what differs and what to do.
        """
        if self.metadata["task"] != task:
            raise TfftError(
                f"'{path}' holds {self.metadata['task']} data but task.type is {task}; point the input at "
                "files made for this task"
            )
        if self.max_seq_length != max_seq_length:
            raise TfftError(
                f"'{path}' was written with max_seq_length {self.max_seq_length} but task.max_seq_length is "
                f"{max_seq_length}; set it to {self.max_seq_length} or recreate the files"
            )
        stored = {name: spec.shape for name, spec in self.specs.inputs.items()}
        stored["label"] = self.specs.label.shape
        for name, spec in {**specs.inputs, "label": specs.label}.items():
            needed = spec.static_shape(max_seq_length)
            if stored.get(name) != needed:
                raise TfftError(
                    f"'{path}' holds {name} of shape {list(stored.get(name, []))} per row but this config "
                    f"needs {list(needed)}; recreate the files with this config"
                )

    @property
    def specs(self) -> FeatureSpecs:
        """The stored features' specs (every shape static)."""
        layout = self.layout
        label = layout["label"]
        return FeatureSpecs(
            {name: FeatureSpec(tuple(shape)) for name, shape in layout["inputs"].items()},
            FeatureSpec(tuple(label["shape"]), "float32" if label["dtype"] == "float32" else "int32"),
        )


def open_split(path: str, max_examples: int = 0) -> TFRecordSplit:
    """Finds the files matching ``path`` (a file or glob) and the split they belong to.

    Args:
        path: The configured input path.
        max_examples: Read only the split's first this many examples (0: all; see
            :class:`TFRecordSplit`).

    Raises:
        TfftError: for no matching file, a missing or foreign ``metadata.json``, or files
            that mix splits.
    """
    check_max_examples(path, max_examples)
    try:
        files = sorted(tf.io.gfile.glob(path))
    except tf.errors.OpError as error:
        raise TfftError(
            f"cannot list '{path}' ({error.message.splitlines()[0]}); check the path and, for gs://, "
            "your Google Cloud credentials"
        ) from None
    if not files:
        raise TfftError(
            f"no TFRecord file matches '{path}'; create them with tools/create_tfrecords.py "
            "or fix the input_path"
        )
    folder = posixpath.dirname(files[0])
    metadata_path = posixpath.join(folder, METADATA_FILE)
    if not tf.io.gfile.exists(metadata_path):
        raise TfftError(
            f"'{metadata_path}' does not exist; TFRecord input needs the metadata.json that "
            "tools/create_tfrecords.py writes next to the files"
        )
    try:
        with tf.io.gfile.GFile(metadata_path) as file:
            metadata = json.loads(file.read())
        splits = metadata["splits"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise TfftError(f"'{metadata_path}' is not a tfft TFRecord metadata file; recreate it") from None
    names = {posixpath.basename(file) for file in files}
    for split, info in splits.items():
        if names <= set(info["files"]):
            missing = set(info["files"]) - names
            if missing:
                raise TfftError(
                    f"'{path}' matches only {len(names)} of the {len(info['files'])} {split} files "
                    f"(e.g. '{sorted(missing)[0]}' is missing); point input_path at all of them"
                )
            files = tuple(posixpath.join(folder, name) for name in info["files"])
            _check_sizes(files, info.get("file_bytes"), metadata_path)
            return TFRecordSplit(files, split, metadata, max_examples)
    raise TfftError(f"'{path}' matches files of several splits or none listed in '{metadata_path}'")


def _check_sizes(files: tuple[str, ...], sizes: list[int] | None, metadata_path: str) -> None:
    """Refuses files whose size differs from the one written (a truncated or partial copy).

    Files written before sizes were recorded are not checked here; reading them reports
    damage as it meets it.
    """
    for file, size in zip(files, sizes or [], strict=False):
        found = tf.io.gfile.stat(file).length
        if found != size:
            raise TfftError(
                f"'{file}' has {found} bytes, but '{metadata_path}' says {size} were written (a truncated "
                "or partial copy?); copy it again or recreate the files with tools/create_tfrecords.py"
            )


def _parse_spec(split: TFRecordSplit, with_examples: bool) -> dict:
    layout = split.layout
    spec = {name: tf.io.FixedLenFeature(shape, tf.int64) for name, shape in layout["inputs"].items()}
    spec["length"] = tf.io.FixedLenFeature([max(layout["sequences"], 1)], tf.int64)
    label = layout["label"]
    spec["label"] = tf.io.FixedLenFeature(label["shape"], tf.dtypes.as_dtype(label["dtype"]))
    if with_examples:
        for name, extra in layout["extras"].items():
            spec[name] = tf.io.FixedLenFeature(extra["shape"], tf.dtypes.as_dtype(extra["dtype"]))
        spec["example_index"] = tf.io.FixedLenFeature([1], tf.int64)
        spec["example"] = tf.io.FixedLenFeature([], tf.string)
    return spec


@contextlib.contextmanager
def _reading(split: TFRecordSplit):
    """Turns a failure to read the split's files into a TfftError."""
    try:
        yield
    except tf.errors.OpError as error:
        raise TfftError(
            f"cannot read the {split.split} TFRecord files ({error.message.splitlines()[0]}); "
            "recreate them with tools/create_tfrecords.py"
        ) from None


def _rows_of_first_examples(split: TFRecordSplit, count: int) -> int:
    """How many records from the start hold the split's first ``count`` examples.

    An example's records follow each other; only their ``example_index`` is read, and
    only up to the first record of example ``count + 1``.
    """
    spec = {"example_index": tf.io.FixedLenFeature([1], tf.int64)}
    batches = _records(split.files).batch(_COUNT_BATCH).map(
        lambda serialized: tf.io.parse_example(serialized, spec)["example_index"][:, 0])
    rows, seen, last = 0, 0, -1
    with _reading(split):
        for ids in batches.as_numpy_iterator():
            started = seen + np.cumsum(ids != np.concatenate([[last], ids[:-1]]))
            over = np.flatnonzero(started > count)
            if over.size:
                return rows + int(over[0])
            rows, seen, last = rows + len(ids), int(started[-1]), ids[-1]
    return rows


def _records(files) -> tf.data.Dataset:
    """Records of ``files`` interleaved one at a time: the order they were written in."""
    return tf.data.Dataset.from_tensor_slices(list(files)).interleave(
        tf.data.TFRecordDataset, cycle_length=len(files), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )


class TFRecordSource(TrainingSource):
    """Training rows streamed from TFRecord files (fixed shapes; repeated; sharded by worker).

    Args:
        split: The files and their metadata; with ``max_examples``, only the records of
            its first examples are trained on (see :class:`TFRecordSplit`).
    """

    repeats = True

    def __init__(self, split: TFRecordSplit):
        self.split = split
        self.specs = split.specs
        self.num_rows = split.rows
        self.num_examples = split.examples

    def examples(self, context=None) -> tuple[tf.data.Dataset, bool]:  # noqa: D102
        files, workers = self.split.files, context.num_input_pipelines if context else 1
        if workers > 1 and len(files) >= workers and not self.split.partial:  # File-level sharding.
            records = _records(files[context.input_pipeline_id::workers])
        else:
            records = _records(files).take(self.num_rows)
            if workers > 1:
                records = records.shard(workers, context.input_pipeline_id)
        spec = _parse_spec(self.split, with_examples=False)
        names, label_dtype = list(self.specs.inputs), tf.dtypes.as_dtype(self.specs.label.dtype)

        def parse(serialized):
            parsed = tf.io.parse_single_example(serialized, spec)
            inputs = {name: tf.cast(parsed[name], tf.int32) for name in names}
            return inputs, tf.cast(parsed["label"], label_dtype)

        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), workers > 1


def read_features(split: TFRecordSplit, example_type: type) -> Features:
    """Reads a split back into :class:`Features` (for evaluation), in written order.

    Args:
        split: Files written with ``with_examples`` (the validation split); with
            ``max_examples``, only its first examples are read.
        example_type: The task's example dataclass, rebuilt from the stored JSON.

    Raises:
        TfftError: when the files lack the evaluation fields or cannot be read.
    """
    if not split.info.get("with_examples"):
        raise TfftError(
            f"the {split.split} TFRecord files hold no evaluation fields; write validation data "
            "with tools/create_tfrecords.py and point task.validation_data.input_path at it"
        )
    layout = split.layout
    spec = _parse_spec(split, with_examples=True)
    columns: dict[str, list] = {name: [] for name in spec}
    records = _records(split.files).take(split.rows)
    with _reading(split):
        for batch in records.batch(1024).map(lambda s: tf.io.parse_example(s, spec)):
            for name, value in batch.items():
                columns[name].append(value.numpy())
    data = {name: np.concatenate(values) for name, values in columns.items()}
    length, sequences = data["length"], None
    if layout["sequences"]:
        sequences = (length > 0).sum(axis=1).astype(np.int32)
        lengths = length[length > 0]
    else:
        length, lengths = length[:, 0], length[:, 0]
    keep = np.arange(split.max_seq_length) < length[..., None]
    label = layout["label"]
    labels = data["label"][keep] if label["per_token"] else data["label"]
    example_rows = np.nonzero(data["example"] != b"")[0]
    examples = [_from_plain(example_type, json.loads(data["example"][row])) for row in example_rows]
    return Features(
        {name: data[name][keep].astype(np.int32) for name in layout["inputs"]},
        lengths.astype(np.int32),
        labels.astype(np.float32 if label["dtype"] == "float32" else np.int32),
        label["per_token"],
        sequences,
        {name: data[name][keep].astype(np.float32 if extra["dtype"] == "float32" else np.int32)
         for name, extra in layout["extras"].items()},
        data["example_index"][:, 0].astype(np.int32),
        examples,
    )


def _from_plain(cls: type, value: dict):
    """Rebuilds a (frozen, nested) example dataclass from its ``dataclasses.asdict`` JSON."""
    hints = typing.get_type_hints(cls)
    return cls(**{field.name: _rebuild(hints[field.name], value[field.name])
                  for field in dataclasses.fields(cls)})


def _rebuild(annotation, value) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
        origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return _from_plain(annotation, value)
    if origin is tuple:
        item = typing.get_args(annotation)[0]
        return tuple(_rebuild(item, entry) for entry in value)
    return value
