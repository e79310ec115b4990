"""tf.data pipelines: shuffling, per-batch padding, length grouping, static shapes, order restore,
resumable epochs and per-replica splitting."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import CHOICE_SPECS, choice_features

from tfft import evaluation
from tfft.data.features import Features, FeatureSpec, token_specs
from tfft.data.pipeline import (
    BatchPlan,
    InMemorySource,
    epoch_dataset,
    inference_dataset,
    restore_order,
)

#: One int32 class id per example.
SPECS = token_specs(FeatureSpec(()))


def train_dataset(features, batch_size, seed, length_grouping=True, static_length=0, epoch=0,
                  skip=0, context=None, drop_remainder=None, group_batches=10):
    plan = BatchPlan(batch_size, seed, length_grouping, static_length,
                     bool(static_length) if drop_remainder is None else drop_remainder,
                     length_group_batches=group_batches)
    specs = SPECS if features.sequences is None else CHOICE_SPECS
    return epoch_dataset(InMemorySource(features, specs), plan, epoch, skip, context)


def make_features(lengths, labeled: bool = True) -> Features:
    """Example ``i`` has ``lengths[i]`` tokens, all equal to ``i + 1`` (so rows are identifiable)."""
    lengths = [int(n) for n in lengths]
    columns = {
        "input_ids": [[i + 1] * n for i, n in enumerate(lengths)],
        "token_type_ids": [[1] * n for n in lengths],
        "attention_mask": [[1] * n for n in lengths],
    }
    labels = [(i * 7) % 3 for i in range(len(lengths))] if labeled else None
    return Features.from_lists(columns, labels)


def random_lengths(count: int, seed: int, high: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, high + 1, size=count)


def check_batch(inputs: dict, labels, features: Features, static_length: int = 0) -> list[int]:
    """Checks a padded batch against the source examples; returns the example indices in it."""
    ids = inputs["input_ids"].numpy()
    indices = ids[:, 0] - 1
    expected_width = static_length or int(features.lengths[indices].max())
    assert ids.shape == (len(indices), expected_width)
    for row, index in enumerate(indices):
        length = int(features.lengths[index])
        padding = [0] * (expected_width - length)
        assert ids[row].tolist() == [index + 1] * length + padding
        assert inputs["token_type_ids"].numpy()[row].tolist() == [1] * length + padding
        assert inputs["attention_mask"].numpy()[row].tolist() == [1] * length + padding
    if labels is not None:
        assert labels.numpy().tolist() == features.labels[indices].tolist()
    return indices.tolist()


def epoch_order(dataset) -> list[int]:
    return [int(i) - 1 for inputs, _ in dataset for i in inputs["input_ids"].numpy()[:, 0]]


# --- Features --------------------------------------------------------------------------------------


def test_features_from_lists_and_take():
    rows = [[5, 6, 7], [8], [9, 10]]
    features = Features.from_lists({"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]},
                                   labels=[0, 1, 2])
    assert len(features) == 3
    assert features.lengths.tolist() == [3, 1, 2]
    assert features.columns["input_ids"].tolist() == [5, 6, 7, 8, 9, 10]
    assert features.columns["input_ids"].dtype == np.int32

    taken = features.take(np.array([2, 0, 2, 1]))
    assert taken.lengths.tolist() == [2, 3, 2, 1]
    assert taken.columns["input_ids"].tolist() == [9, 10, 5, 6, 7, 9, 10, 8]
    assert taken.columns["attention_mask"].tolist() == [1] * 8
    assert taken.labels.tolist() == [2, 0, 2, 1]
    # The source is untouched.
    assert features.columns["input_ids"].tolist() == [5, 6, 7, 8, 9, 10]

    empty = features.take(np.array([], dtype=np.int64))
    assert len(empty) == 0 and empty.columns["input_ids"].tolist() == []


def test_take_on_random_features_and_without_labels():
    features = make_features(random_lengths(50, seed=4), labeled=False)
    indices = np.random.default_rng(5).integers(0, 50, size=80)
    taken = features.take(indices)
    assert taken.labels is None
    expected = [token for i in indices for token in [i + 1] * int(features.lengths[i])]
    assert taken.columns["input_ids"].tolist() == expected
    assert taken.lengths.tolist() == features.lengths[indices].tolist()


# --- training batches ------------------------------------------------------------------------------


@pytest.mark.parametrize("grouping", [True, False])
def test_every_example_once_per_epoch_padded_per_batch(grouping):
    features = make_features(random_lengths(203, seed=0))
    dataset = train_dataset(features, batch_size=16, seed=1, length_grouping=grouping)
    assert int(dataset.cardinality()) == 13  # ceil(203 / 16)
    for epoch in range(2):
        seen, batches = [], 0
        for inputs, labels in train_dataset(features, 16, seed=1, length_grouping=grouping, epoch=epoch):
            assert labels.dtype.is_integer
            seen += check_batch(inputs, labels, features)
            batches += 1
        assert batches == 13
        assert sorted(seen) == list(range(203))


def test_pipelines_run_without_the_autotuning_thread():
    """Its wake-up held up every iterator's destructor (the end of each fit and predict)."""
    features = make_features(random_lengths(20, seed=2))
    training = train_dataset(features, batch_size=4, seed=1)
    inference, _, _ = inference_dataset(make_features(random_lengths(9, seed=3), labeled=False), SPECS, 4)
    for dataset in (training, inference):
        assert dataset.options().autotune.enabled is False
        assert len(list(dataset)) == 5 if dataset is training else 3


def test_batches_are_padded_to_their_own_length_not_max_seq_length():
    features = make_features([3, 2, 4, 1, 2, 3, 5, 2, 1, 1])
    widths = []
    for inputs, labels in train_dataset(features, 4, seed=0):
        check_batch(inputs, labels, features)  # width == the batch's own longest example
        widths.append(inputs["input_ids"].shape[1])
    assert len(widths) == 3 and min(widths) < 5
    # Without grouping, one batch of everything is as wide as the longest example.
    (inputs, _), = train_dataset(features, 10, seed=0, length_grouping=False)
    assert inputs["input_ids"].shape == (10, 5)


def padding_fraction(dataset) -> float:
    padded = real = 0
    for inputs, _ in dataset:
        mask = inputs["attention_mask"].numpy()
        padded, real = padded + mask.size, real + mask.sum()
    return 1 - real / padded


def test_length_grouping_reduces_padding():
    features = make_features(random_lengths(1600, seed=2))
    grouped = padding_fraction(train_dataset(features, 16, seed=0, length_grouping=True))
    plain = padding_fraction(train_dataset(features, 16, seed=0, length_grouping=False))
    assert plain > 0.35  # uniform lengths 1..64 in random batches of 16: ~45% padding
    assert grouped < 0.1
    assert grouped < plain / 4


def test_larger_length_groups_pad_less_and_one_batch_groups_pad_as_much_as_none():
    features = make_features(random_lengths(1600, seed=2))
    padding = {size: padding_fraction(train_dataset(features, 16, seed=0, group_batches=size))
               for size in (1, 5, 10, 50)}
    plain = padding_fraction(train_dataset(features, 16, seed=0, length_grouping=False))
    assert padding[1] == pytest.approx(plain, abs=0.02)  # a group of one batch sorts nothing away
    assert padding[1] > padding[5] > padding[10] > padding[50]
    # Lengths uniform in 1..64: a batch of a G-batch group spans about 64/G of them, and about
    # 1/(G + 1) of its tokens are padding.
    for size in (5, 10, 50):
        assert padding[size] == pytest.approx(1 / (size + 1), rel=0.2), size


def test_grouped_batches_are_still_shuffled():
    features = make_features(random_lengths(1600, seed=3))
    widths = [inputs["input_ids"].shape[1] for inputs, _ in train_dataset(features, 16, seed=0)]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


@pytest.mark.parametrize("grouping", [True, False])
def test_same_seed_same_order_new_epoch_new_order(grouping):
    features = make_features(random_lengths(300, seed=1))
    epoch1 = epoch_order(train_dataset(features, 8, seed=7, length_grouping=grouping))
    assert epoch_order(train_dataset(features, 8, seed=7, length_grouping=grouping)) == epoch1
    assert epoch_order(train_dataset(features, 8, seed=8, length_grouping=grouping)) != epoch1
    epoch2 = epoch_order(train_dataset(features, 8, seed=7, length_grouping=grouping, epoch=1))
    assert epoch2 != epoch1
    assert sorted(epoch2) == sorted(epoch1) == list(range(300))
    # An epoch's order depends only on the seed and the epoch number: a restart reproduces it.
    assert epoch_order(train_dataset(features, 8, seed=7, length_grouping=grouping, epoch=1)) == epoch2


@pytest.mark.parametrize("grouping", [True, False])
def test_resumed_epoch_skips_exactly_the_trained_batches(grouping):
    features = make_features(random_lengths(203, seed=9))
    full = [inputs["input_ids"].numpy() for inputs, _ in
            train_dataset(features, 16, seed=3, length_grouping=grouping, epoch=2)]
    rest = [inputs["input_ids"].numpy() for inputs, _ in
            train_dataset(features, 16, seed=3, length_grouping=grouping, epoch=2, skip=5)]
    assert len(rest) == len(full) - 5
    for expected, got in zip(full[5:], rest, strict=True):
        np.testing.assert_array_equal(expected, got)


@pytest.mark.parametrize("workers,replicas", [(1, 2), (2, 1), (2, 2)])
def test_replica_batches_make_up_the_one_device_global_batch(workers, replicas):
    """Per-replica batches of every worker, in replica order, hold the one-device global batch."""
    features = make_features(random_lengths(200, seed=4, high=20))
    global_batch = 8
    single = [sorted(check_batch(inputs, labels, features)) for inputs, labels in
              train_dataset(features, global_batch, seed=5, drop_remainder=True)]
    per_pipeline = []
    for worker in range(workers):
        context = tf.distribute.InputContext(workers, worker, workers * replicas)
        per_pipeline.append([check_batch(inputs, labels, features) for inputs, labels in
                             train_dataset(features, global_batch, seed=5, context=context,
                                           drop_remainder=True)])
    assert all(len(batches) == len(single) * replicas for batches in per_pipeline)
    for step, expected in enumerate(single):
        parts = [batch for batches in per_pipeline
                 for batch in batches[step * replicas:(step + 1) * replicas]]
        assert all(len(part) == global_batch // (workers * replicas) for part in parts)
        assert sorted(index for part in parts for index in part) == expected


@pytest.mark.parametrize("grouping", [True, False])
def test_static_length_pads_to_fixed_shape_and_drops_remainder(grouping):
    features = make_features(random_lengths(45, seed=6, high=12))
    dataset = train_dataset(features, batch_size=8, seed=0, length_grouping=grouping, static_length=16)
    assert int(dataset.cardinality()) == 45 // 8
    spec = dataset.element_spec[0]["input_ids"]
    assert spec.shape.as_list() == [8, 16]
    for epoch in range(2):
        seen = []
        for inputs, labels in train_dataset(features, 8, seed=0, length_grouping=grouping,
                                            static_length=16, epoch=epoch):
            assert all(value.shape == (8, 16) for value in inputs.values())
            seen += check_batch(inputs, labels, features, static_length=16)
        assert len(seen) == 40 and len(set(seen)) == 40


def test_float_labels_for_regression():
    features = make_features([2, 3, 4])
    features.labels = np.array([0.5, 1.5, 4.75], dtype=np.float32)
    got = {}
    for inputs, labels in train_dataset(features, 2, seed=0):
        for index, label in zip(inputs["input_ids"].numpy()[:, 0] - 1, labels.numpy(), strict=True):
            got[int(index)] = float(label)
    assert got == {0: 0.5, 1: 1.5, 2: 4.75}


# --- inference batches -----------------------------------------------------------------------------


def fake_model_outputs(dataset) -> tuple[np.ndarray, dict]:
    """Per-example outputs a model could produce: [id, length] rows, and a dict form."""
    rows, ids = [], []
    for inputs in dataset:
        mask = inputs["attention_mask"].numpy()
        first = inputs["input_ids"].numpy()[:, 0]
        rows.append(np.stack([first, mask.sum(axis=1)], axis=1).astype(np.float32))
        ids.append(first)
    return np.concatenate(rows), {"ids": np.concatenate(ids)}


@pytest.mark.parametrize("sort_by_length", [True, False])
def test_inference_order_is_restored(sort_by_length):
    features = make_features(random_lengths(37, seed=8), labeled=False)
    dataset, order, count = inference_dataset(features, SPECS, 8, sort_by_length=sort_by_length)
    assert count == 37
    widths = [inputs["input_ids"].shape[1] for inputs in dataset]
    assert len(widths) == 5
    if sort_by_length:
        assert widths == sorted(widths)  # sorted batches: little padding
        assert widths[0] < widths[-1]
    else:
        np.testing.assert_array_equal(order, np.arange(37))
    outputs, named = fake_model_outputs(dataset)
    assert len(outputs) == 37
    restored = restore_order(outputs, order, count)
    np.testing.assert_array_equal(restored[:, 0], np.arange(1, 38))
    np.testing.assert_array_equal(restored[:, 1], features.lengths)
    np.testing.assert_array_equal(restore_order(named, order, count)["ids"], np.arange(1, 38))


def test_inference_static_mode_fills_last_batch():
    features = make_features(random_lengths(21, seed=9, high=10), labeled=False)
    dataset, order, count = inference_dataset(features, SPECS, 8, static_length=12)
    shapes = [tuple(inputs["input_ids"].shape) for inputs in dataset]
    assert shapes == [(8, 12)] * 3  # 21 examples + 3 fillers
    assert count == 21 and len(order) == 24
    outputs, named = fake_model_outputs(dataset)
    assert len(outputs) == 24
    restored = restore_order(outputs, order, count)
    assert restored.shape == (21, 2)
    np.testing.assert_array_equal(restored[:, 0], np.arange(1, 22))  # none dropped or duplicated
    np.testing.assert_array_equal(restored[:, 1], features.lengths)
    np.testing.assert_array_equal(restore_order(named, order, count)["ids"], np.arange(1, 22))


def test_inference_static_mode_exact_multiple_adds_no_filler():
    features = make_features(random_lengths(16, seed=10, high=10), labeled=False)
    dataset, order, count = inference_dataset(features, SPECS, 8, static_length=10)
    assert len(order) == 16 and sorted(order.tolist()) == list(range(16))
    outputs, _ = fake_model_outputs(dataset)
    np.testing.assert_array_equal(restore_order(outputs, order, count)[:, 0], np.arange(1, 17))


class TokenEcho(keras.Model):
    """Per-token outputs ``[batch, seq, 2]``: the token id and its position; -5 at padding."""

    def call(self, inputs):
        ids = keras.ops.cast(inputs["input_ids"], "float32")
        positions = keras.ops.cast(keras.ops.arange(keras.ops.shape(ids)[1]), "float32")
        positions = keras.ops.broadcast_to(positions[None], keras.ops.shape(ids))
        real = keras.ops.cast(inputs["attention_mask"], "bool")[..., None]
        return keras.ops.where(real, keras.ops.stack([ids, positions], axis=-1), -5.0)


@pytest.mark.parametrize("full_batches", [False, True])
def test_per_token_outputs_of_batches_padded_to_their_length_equal_the_fully_padded_ones(full_batches):
    features = make_features(random_lengths(45, seed=12, high=70), labeled=False)
    model = TokenEcho()
    static, _ = evaluation.predict(model, features, SPECS, 8, static_length=72, full_batches=full_batches)
    dynamic, _ = evaluation.predict(model, features, SPECS, 8, full_batches=full_batches,
                                    output_length=72, output_padding=-5.0)
    assert dynamic.shape == static.shape == (45, 72, 2)
    np.testing.assert_array_equal(dynamic, static)
    np.testing.assert_array_equal(dynamic[:, 0, 0], np.arange(1, 46))  # example order


# --- rows of several sequences ([batch, choices, seq], as multiple choice feeds) -----------------------

def test_rows_of_several_sequences_take_and_lengths():
    features = choice_features([[2, 5, 3], [4, 1], [6, 6, 2]])
    assert len(features) == 3 and features.row_lengths.tolist() == [5, 4, 6]
    taken = features.take([2, 0])
    assert taken.sequences.tolist() == [3, 3] and taken.lengths.tolist() == [6, 6, 2, 2, 5, 3]
    assert taken.columns["input_ids"].tolist() == [3] * 14 + [1] * 10
    assert taken.labels.tolist() == [2, 2]


@pytest.mark.parametrize("static_length", [0, 8])
def test_rows_of_several_sequences_are_padded_to_declared_choices(static_length):
    features = choice_features([[2, 5, 3], [4, 1], [6, 6, 2], [1, 1, 1], [3]])
    dataset = train_dataset(features, 2, seed=0, static_length=static_length, drop_remainder=False)
    seen = []
    for inputs, labels in dataset:
        ids = inputs["input_ids"].numpy()
        rows = ids[:, 0, 0] - 1
        width = static_length or int(features.row_lengths[rows].max())
        assert ids.shape == (len(rows), 3, width)  # every row padded to 3 sequences
        for slot, row in enumerate(rows):
            first = int(features.offsets()[features.sequences[:row].sum()])
            lengths = features.take([row]).lengths
            mask = inputs["attention_mask"].numpy()[slot]
            assert mask.sum(axis=1).tolist() == [*lengths.tolist(), *[0] * (3 - len(lengths))]
            assert features.columns["input_ids"][first] == row + 1
        assert labels.numpy().tolist() == features.labels[rows].tolist()
        seen += rows.tolist()
    assert sorted(seen) == list(range(5))
    dataset, order, count = inference_dataset(features, CHOICE_SPECS, 2)
    widths = [inputs["input_ids"].shape for inputs in dataset]
    assert [shape[1] for shape in widths] == [3, 3, 3] and count == 5
    assert [shape[2] for shape in widths] == sorted(shape[2] for shape in widths)  # sorted by longest


def test_prediction_traces_the_model_once_for_every_length_and_matches_keras_predict():
    """Keras' predict traces again for new batch shapes; the shape-free signature does not."""
    features = make_features(random_lengths(45, seed=13, high=70), labeled=False)
    model = TokenEcho()
    outputs, _ = evaluation.predict(model, features, SPECS, 8, output_length=72, output_padding=-5.0)
    evaluation.predict(model, features, SPECS, 5, output_length=72, output_padding=-5.0)
    widths = {batch["input_ids"].shape[1] for batch in inference_dataset(features, SPECS, 8)[0]}
    assert len(widths) > 3  # several shapes were run
    assert evaluation._FORWARD[model].experimental_get_tracing_count() == 1
    dataset, order, count = inference_dataset(features, SPECS, 8, pad_length=72)
    np.testing.assert_array_equal(outputs, restore_order(model.predict(dataset, verbose=0), order, count))


@pytest.mark.parametrize(("specs", "sequences"), [(SPECS, 1), (CHOICE_SPECS, 3)])
def test_inference_batches_of_long_examples_stay_under_the_token_budget(specs, sequences):
    lengths = random_lengths(60, seed=14, high=90)
    if sequences == 1:
        features = make_features(lengths, labeled=False)
    else:
        features = choice_features([[int(n), max(1, int(n) // 2), 3] for n in lengths])
    budget = 600 * sequences
    dataset, order, count = inference_dataset(features, specs, 16, max_tokens=budget)
    seen, sizes = [], []
    for inputs in dataset:
        ids = inputs["input_ids"].numpy()
        sizes.append(ids.shape[0])
        assert ids.shape[0] <= 16
        assert ids.shape[0] == 1 or ids.size <= budget  # padded tokens of the batch
        seen.append(ids.shape[0])
    assert sum(seen) == count == 60 and sorted(order.tolist()) == list(range(60))
    assert max(sizes) == 16 and min(sizes) < 16  # short rows fill batches, long ones split them
    unlimited = [inputs["input_ids"].shape[0] for inputs in inference_dataset(features, specs, 16)[0]]
    assert unlimited == [16, 16, 16, 12]
