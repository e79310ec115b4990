"""``tf.data`` pipelines: training batches per epoch, and inference batches.

Training draws every epoch from a :class:`TrainingSource` (tokenized features in
memory, or TFRecord files) the same way, so that a run can stop anywhere and resume
exactly:

1. examples are shuffled with a seed made from ``runtime.seed`` and the epoch number,
   so epoch ``e`` has the same order in every run and after every restart;
2. with length grouping, they are cut into groups of ``length_group_batches`` batches,
   sorted by length inside a group, and the batches shuffled again (seeded the same
   way), which removes most padding while keeping the order random;
3. batches of the global batch size are formed (``drop_remainder`` in static-shape
   mode and with several replicas); a resumed epoch skips the batches already trained;
4. the task's training transform, if it has one, changes each batch (e.g. masked-LM
   masking), seeded by the epoch and the batch's index;
5. each global batch is split into per-replica batches: replica ``r`` of worker ``w``
   gets the same examples as in a one-device run, so any number of devices trains on
   the same global batches. TFRecord files are instead sharded by worker (file level);
6. batches are padded as the task's :class:`~tfft.data.features.FeatureSpecs` say:
   the token axis to the batch's longest sequence, or to ``max_seq_length`` in
   static-shape mode (TPUs); other axes (e.g. the choices of multiple choice) to their
   declared size.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfft.data.features import Features, FeatureSpec, FeatureSpecs

#: Batches per length-sorted group by default. Hugging Face's LengthGroupedSampler sorts 50
#: batches' worth; smaller groups keep batches more mixed (see ``TrainerConfig``).
GROUP_BATCHES = 10


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Prefetches ``dataset`` and turns off tf.data's autotuning thread.

    The autotuning thread sleeps between rounds, the longer the older the iterator (up
    to a minute), and an iterator's destructor waits for it to wake: at the end of
    every ``fit`` or ``predict``, 8 to 29 s of stall were measured (TensorFlow 2.21, 2
    AMD EPYC cores), as much as the training step gains. Without it, ``AUTOTUNE``
    parallelism is the number of cores and the prefetch buffer still sizes itself.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _ragged(values: np.ndarray, features: Features) -> tf.RaggedTensor:
    """Flat per-token ``values`` cut into rows (and, for several sequences per row, sequences)."""
    lengths = tf.constant(features.lengths, dtype=tf.int64)
    if features.sequences is None:
        return tf.RaggedTensor.from_row_lengths(values, lengths)
    sequences = tf.constant(features.sequences, dtype=tf.int64)
    return tf.RaggedTensor.from_nested_row_lengths(values, [sequences, lengths])


def _ragged_slices(features: Features) -> dict[str, tf.RaggedTensor]:
    return {name: _ragged(values, features) for name, values in features.columns.items()}


def _pad_tensor(value, spec: FeatureSpec, static_length: int = 0, batch_size=None):
    """Pads a ragged batch as ``spec`` declares: the token axis to ``static_length`` if set."""
    if not isinstance(value, tf.RaggedTensor):
        return value
    shape = [batch_size, *(spec.static_shape(static_length) if static_length else spec.shape)]
    return value.to_tensor(default_value=tf.cast(spec.padding, value.dtype), shape=shape)


def _pad(batch: dict, specs: dict[str, FeatureSpec], static_length: int, batch_size=None) -> dict:
    return {name: _pad_tensor(value, specs[name], static_length, batch_size) for name, value in batch.items()}


def _row_lengths(value: tf.RaggedTensor):
    """Per row of a ragged batch, its longest sequence."""
    if value.ragged_rank == 1:
        return value.row_lengths()
    return tf.reduce_max(value.row_lengths(axis=2), axis=1)


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool) -> int:
    """Batches per pass over ``num_examples``."""
    return num_examples // batch_size if drop_remainder else math.ceil(num_examples / batch_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: fixed by the run's seed and the epoch number."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """How training examples become batches.

    Attributes:
        global_batch_size: Examples per step over all replicas.
        seed: The run's seed (``runtime.seed``).
        length_grouping: Group examples of similar length (dynamic shapes only).
        static_length: If > 0, pad every batch to this length (TPUs).
        drop_remainder: Drop the last incomplete batch of an epoch.
        shuffle_buffer_size: Examples in the shuffle buffer (the whole split when smaller).
        length_group_batches: Batches per length-sorted group.
    """

    global_batch_size: int
    seed: int
    length_grouping: bool = True
    static_length: int = 0
    drop_remainder: bool = False
    shuffle_buffer_size: int = 100_000
    length_group_batches: int = GROUP_BATCHES

    def steps_per_epoch(self, num_rows: int) -> int:
        """Global batches per epoch."""
        return num_batches(num_rows, self.global_batch_size, self.drop_remainder)


class TrainingSource(abc.ABC):
    """Where training examples come from: ``(inputs, label)`` per example, in a fixed order.

    Attributes:
        num_rows: Model inputs (windows) per epoch.
        num_examples: Examples they come from (e.g. questions, sentences).
        specs: Shapes and padding of the inputs and the label.
        repeats: Whether :meth:`examples` is infinite (streams that a worker may exhaust).
    """

    num_rows: int
    num_examples: int
    specs: FeatureSpecs
    repeats: bool = False

    @abc.abstractmethod
    def examples(self, context: tf.distribute.InputContext | None) -> tuple[tf.data.Dataset, bool]:
        """The examples for this input pipeline, and whether they are already its shard."""


class InMemorySource(TrainingSource):
    """Tokenized :class:`Features` with labels; every worker sees all of them.

    Args:
        features: The training features.
        specs: The task's feature specs.
    """

    def __init__(self, features: Features, specs: FeatureSpecs):
        self.features = features
        self.specs = specs
        self.num_rows = len(features)
        self.num_examples = features.num_examples
        #: Tokens of every sequence of an epoch.
        self.token_lengths = features.lengths
        self._dataset = None

    def examples(self, context=None) -> tuple[tf.data.Dataset, bool]:  # noqa: D102
        if self._dataset is None:  # Built once: the data is embedded in the dataset graph.
            features = self.features
            labels = _ragged(features.labels, features) if features.label_per_token else features.labels
            self._dataset = tf.data.Dataset.from_tensor_slices((_ragged_slices(features), labels))
        return self._dataset, False


def epoch_dataset(
    source: TrainingSource,
    plan: BatchPlan,
    epoch: int,
    skip: int = 0,
    context: tf.distribute.InputContext | None = None,
    transform: Callable | None = None,
) -> tf.data.Dataset:
    """The padded ``(inputs, labels)`` batches of one epoch for one input pipeline.

    Args:
        source: The training examples.
        plan: Batch size, seed, grouping and padding.
        epoch: The epoch (0-based), which seeds the order.
        skip: Global batches of this epoch already trained (resuming).
        context: The strategy's input context (None: one device, one pipeline). With
            several replicas, the dataset yields per-replica batches in replica order.
        transform: The task's :meth:`~tfft.tasks.Task.training_transform`, applied to each
            global (sharded: per-worker) batch before padding, with a seed made from the epoch's
            and the batch's index.
    """
    examples, sharded = source.examples(context)
    seed = epoch_seed(plan.seed, epoch)
    buffer = max(1, min(source.num_rows, plan.shuffle_buffer_size))
    dataset = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=False)
    if source.repeats:
        dataset = dataset.repeat()
    workers = context.num_input_pipelines if context else 1
    stream_batch = plan.global_batch_size // workers if sharded else plan.global_batch_size
    grouping = plan.length_grouping and not plan.static_length
    if grouping:
        dataset = (
            dataset.ragged_batch(stream_batch * plan.length_group_batches)
            .map(_sort_group_by_length)
            .unbatch()
        )
    dataset = dataset.ragged_batch(stream_batch, drop_remainder=plan.drop_remainder)
    if grouping:
        dataset = dataset.shuffle(plan.length_group_batches, seed=seed + 1, reshuffle_each_iteration=False)
    steps = plan.steps_per_epoch(source.num_rows) - skip
    dataset = dataset.take(steps + skip).skip(skip)
    if transform is not None:  # Seeded by the epoch and the batch: a resumed epoch draws the same.
        streams, stream = (context.num_input_pipelines, context.input_pipeline_id) if sharded else (1, 0)
        dataset = dataset.enumerate(start=skip).map(
            lambda index, batch: transform(*batch, tf.stack([tf.constant(seed, tf.int64),
                                                             index * streams + stream]))
        )
    replicas = context.num_replicas_in_sync if context else 1
    batch_size = plan.global_batch_size // replicas
    if replicas > 1:
        dataset = _replica_batches(dataset, context, batch_size, sharded)
        steps *= replicas // workers
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    fixed = batch_size if plan.drop_remainder else None
    specs = source.specs
    dataset = dataset.map(
        lambda x, y: (_pad(x, specs.inputs, plan.static_length, fixed),
                      _pad_tensor(y, specs.label, plan.static_length, fixed))
    )
    return _finish(dataset)


def _replica_batches(dataset, context, per_replica: int, sharded: bool) -> tf.data.Dataset:
    """Splits global (or, when sharded, per-worker) batches into this worker's replica batches."""
    workers = context.num_input_pipelines
    per_worker = per_replica * (context.num_replicas_in_sync // workers)
    if workers > 1 and not sharded:  # Every worker holds the global batch: keep its slice.
        first = context.input_pipeline_id * per_worker
        dataset = dataset.map(
            lambda x, y: tf.nest.map_structure(lambda t: t[first:first + per_worker], (x, y))
        )
    if per_worker == per_replica:
        return dataset
    return dataset.unbatch().ragged_batch(per_replica, drop_remainder=True)


def _sort_group_by_length(inputs: dict, labels):
    order = tf.argsort(_row_lengths(next(iter(inputs.values()))), stable=True)
    return {name: tf.gather(value, order) for name, value in inputs.items()}, tf.gather(labels, order)


def distribute(strategy: tf.distribute.Strategy, dataset_fn):
    """``dataset_fn(context)`` under ``strategy``: one pipeline per worker, per-replica batches.

    The default (one-device) strategy gets ``dataset_fn(None)`` itself.
    """
    if strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, (tf.distribute.TPUStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    ):
        return dataset_fn(None)
    return strategy.distribute_datasets_from_function(dataset_fn)


def inference_dataset(
    features: Features, specs: FeatureSpecs, batch_size: int, sort_by_length: bool = True,
    static_length: int = 0, full_batches: bool = False, pad_length: int = 0, max_tokens: int = 0,
) -> tuple[tf.data.Dataset, np.ndarray, int]:
    """Unshuffled padded input batches for prediction, and how to undo their order.

    Examples are sorted by length (less padding). In static-shape mode, or with
    ``full_batches`` (several replicas), the last batch is filled up with copies of the
    last example; their outputs are dropped by :func:`restore_order`, so no example is
    lost or counted twice.

    Args:
        features: The examples' features.
        specs: The task's feature specs (the inputs' shapes and padding).
        batch_size: Global batch size.
        sort_by_length: Sort the examples by length first.
        static_length: Static shapes (TPUs): every batch is ``[batch_size, static_length]``.
        full_batches: Fill the last batch up (several replicas).
        pad_length: Pad every batch to this length, whatever its size (0: to its longest
            example). Ignored with ``static_length``.
        max_tokens: With sorted, dynamically padded batches: a batch of long examples
            holds fewer than ``batch_size``, so that it pads to at most this many tokens
            (one example at least). Smaller batches of long sequences run faster on CPUs
            (SQuAD windows on MiniLM: 36 s in batches of 32 against 41 s in batches of
            128). 0: always ``batch_size``.

    Returns:
        ``(dataset, order, count)``; pass ``order`` and ``count`` to
        :func:`restore_order` to put model outputs back in example order.
    """
    count = len(features)
    order = np.argsort(features.row_lengths, kind="stable") if sort_by_length else np.arange(count)
    fixed = bool(static_length or full_batches)
    if fixed:
        filler = num_batches(count, batch_size, drop_remainder=False) * batch_size - count
        order = np.concatenate([order, np.full(filler, order[-1])])
    budget = max_tokens if sort_by_length and not fixed and not pad_length else 0
    ends = _batch_ends(features.row_lengths[order], batch_size, budget, max(specs.sequences, 1))
    starts = np.concatenate([[0], ends])[:-1].astype(np.int64)
    rows = _ragged_slices(features.take(order))
    length = static_length or pad_length
    size = batch_size if static_length else None
    dataset = tf.data.Dataset.from_tensor_slices((starts, ends.astype(np.int64))).map(
        lambda start, end: _pad({name: value[start:end] for name, value in rows.items()}, specs.inputs,
                                length, size)
    )
    return _finish(dataset), order, count


def _batch_ends(lengths: np.ndarray, batch_size: int, max_tokens: int, sequences: int) -> np.ndarray:
    """Where each batch ends: ``batch_size`` rows, fewer where they would pad past ``max_tokens``.

    Args:
        lengths: Each row's longest sequence, ascending when ``max_tokens`` is set.
        batch_size: Rows per batch at most.
        max_tokens: Padded tokens per batch at most (0: no limit; a batch has one row at least).
        sequences: Sequences per row.
    """
    ends, start = [], 0
    while start < len(lengths):
        end = min(start + batch_size, len(lengths))
        if max_tokens:  # The largest end whose batch pads to max_tokens or fewer.
            low = start + 1
            while low < end:
                middle = (low + end + 1) // 2
                if (middle - start) * sequences * lengths[middle - 1] <= max_tokens:
                    low = middle
                else:
                    end = middle - 1
            end = low
        ends.append(end)
        start = end
    return np.asarray(ends, dtype=np.int64)


def input_signature(specs: FeatureSpecs) -> dict[str, tf.TensorSpec]:
    """The model inputs' ``tf.TensorSpec``s for batches of any size and length."""
    return {name: tf.TensorSpec([None, *spec.shape], spec.dtype, name=name)
            for name, spec in specs.inputs.items()}


def restore_order(outputs, order: np.ndarray, count: int):
    """Undoes :func:`inference_dataset`'s ordering on a model output (array or dict)."""
    if isinstance(outputs, dict):
        return {name: restore_order(value, order, count) for name, value in outputs.items()}
    restored = np.empty_like(outputs[:count])
    # The first occurrence of each example index carries its output.
    first = np.unique(order, return_index=True)[1]
    restored[order[first]] = outputs[first]
    return restored
