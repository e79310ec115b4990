"""``tf.data`` pipelines from tokenized :class:`~tfft.data.features.Features`.

Training batches are padded per batch to their longest example; with length
grouping, examples are shuffled, cut into groups of ``GROUP_BATCHES`` batches,
sorted by length inside a group and the resulting batches shuffled again, which
removes most padding while keeping the order random. Static-shape mode (TPUs) pads
every batch to ``max_seq_length`` and drops the incomplete last batch.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tfft.data.features import Features

#: Batches per length-sorted group (as in Hugging Face's LengthGroupedSampler).
GROUP_BATCHES = 50


#: Label of padding positions in per-token labels (ignored by the loss).
IGNORED_LABEL = -100


def _ragged(values: np.ndarray, lengths: np.ndarray) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_row_lengths(values, tf.constant(lengths, dtype=tf.int64))


def _ragged_slices(features: Features) -> dict[str, tf.RaggedTensor]:
    return {name: _ragged(values, features.lengths) for name, values in features.columns.items()}


def _pad_tensor(value, static_length: int, default=0):
    if not isinstance(value, tf.RaggedTensor):
        return value
    shape = [None, static_length] if static_length else None
    return value.to_tensor(default_value=default, shape=shape)


def _pad(batch: dict, static_length: int) -> dict:
    return {name: _pad_tensor(value, static_length) for name, value in batch.items()}


def num_batches(num_examples: int, batch_size: int, drop_remainder: bool) -> int:
    """Batches per pass over ``num_examples``."""
    return num_examples // batch_size if drop_remainder else math.ceil(num_examples / batch_size)


def train_dataset(
    features: Features,
    batch_size: int,
    seed: int,
    length_grouping: bool = True,
    static_length: int = 0,
) -> tf.data.Dataset:
    """Shuffled, padded ``(inputs, labels)`` batches; reshuffled on every pass.

    Args:
        features: Tokenized training examples with labels.
        batch_size: Global batch size.
        seed: Shuffle seed; the same seed gives the same order of batches.
        length_grouping: Group examples of similar length (dynamic shapes only).
        static_length: If > 0, pad to this length and drop the last partial batch.
    """
    drop_remainder = static_length > 0
    labels = (
        _ragged(features.labels, features.lengths) if features.label_per_token else features.labels
    )
    dataset = tf.data.Dataset.from_tensor_slices((_ragged_slices(features), labels))
    dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    grouping = length_grouping and not static_length
    if grouping:
        dataset = (
            dataset.ragged_batch(batch_size * GROUP_BATCHES)
            .map(_sort_group_by_length)
            .unbatch()
        )
    dataset = dataset.ragged_batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda x, y: (_pad(x, static_length), _pad_tensor(y, static_length, IGNORED_LABEL))
    )
    if grouping:
        dataset = dataset.shuffle(GROUP_BATCHES, seed=seed + 1, reshuffle_each_iteration=True)
    steps = num_batches(len(features), batch_size, drop_remainder)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _sort_group_by_length(inputs: dict, labels):
    order = tf.argsort(inputs["input_ids"].row_lengths(), stable=True)
    return {name: tf.gather(value, order) for name, value in inputs.items()}, tf.gather(labels, order)


def inference_dataset(
    features: Features, batch_size: int, sort_by_length: bool = True, static_length: int = 0
) -> tuple[tf.data.Dataset, np.ndarray, int]:
    """Unshuffled padded input batches for prediction, and how to undo their order.

    Examples are sorted by length (less padding); in static-shape mode the last
    batch is filled up with copies of the last example so that every batch is full.

    Returns:
        ``(dataset, order, count)``; pass ``order`` and ``count`` to
        :func:`restore_order` to put model outputs back in example order.
    """
    count = len(features)
    order = np.argsort(features.lengths, kind="stable") if sort_by_length else np.arange(count)
    if static_length:
        filler = num_batches(count, batch_size, drop_remainder=False) * batch_size - count
        order = np.concatenate([order, np.full(filler, order[-1])])
    dataset = tf.data.Dataset.from_tensor_slices(_ragged_slices(features.take(order)))
    dataset = dataset.ragged_batch(batch_size).map(lambda x: _pad(x, static_length))
    return dataset.prefetch(tf.data.AUTOTUNE), order, count


def restore_order(outputs, order: np.ndarray, count: int):
    """Undoes :func:`inference_dataset`'s ordering on a model output (array or dict)."""
    if isinstance(outputs, dict):
        return {name: restore_order(value, order, count) for name, value in outputs.items()}
    restored = np.empty_like(outputs[:count])
    # The first occurrence of each example index carries its output.
    first = np.unique(order, return_index=True)[1]
    restored[order[first]] = outputs[first]
    return restored
