"""TFRecord input: tools/create_tfrecords.py, reading back for every task, training equality."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    CHOICE_SPECS,
    REPO,
    choice_features,
    run_create_tfrecords,
    run_train,
    run_trains_in_new_process,
)
from test_question_answering import synthetic_questions, write_squad
from test_token_classification import TAGS, overrides, synthetic_sentences, write_conll

from tfft.config import DataConfig, task_config
from tfft.data import tfrecords
from tfft.data.features import IGNORED_LABEL
from tfft.data.tokenization import load_tokenizer
from tfft.errors import TfftError
from tfft.tasks import get_task

CREATE = str(REPO / "tools" / "create_tfrecords.py")
COMPARED = ("loss", "accuracy", "f1", "matthews_corrcoef", "num_examples")


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(tiny_bert)


def task_and_examples(kind: str, tmp_path):
    """A task config and labelled examples that need several windows per example."""
    if kind == "token_classification":
        path = write_conll(tmp_path / "data.conll", synthetic_sentences(40, 3))
        config = task_config(kind, max_seq_length=8, label_list=["O", "B-PER", "I-PER", "B-ORG", "I-ORG"])
    elif kind == "question_answering":
        path = write_squad(tmp_path / "data.json", synthetic_questions(30, 4, words=(10, 40)))
        config = task_config(kind, max_seq_length=24, doc_stride=6, max_query_length=8)
    else:
        path = tmp_path / "data.tsv"
        path.write_text("sentence1\tsentence2\tscore\n" + "".join(
            f"the film {i}\ta plot {i % 3}\t{i / 7:.3f}\n" for i in range(25)))
        config = task_config(kind, text_fields=["sentence1", "sentence2"], label_field="score")
    task = get_task(config)
    return task, task.read_examples(DataConfig(input_path=str(path)))


@pytest.mark.parametrize("kind", ["token_classification", "question_answering", "sentence_regression"])
def test_features_survive_the_round_trip(kind, tokenizer, tmp_path):
    task, examples = task_and_examples(kind, tmp_path)
    features = task.encode(examples, tokenizer)
    length = task.config.max_seq_length
    info = tfrecords.write_split(str(tmp_path), "validation", features, task.feature_specs, length, 3,
                                 with_examples=True)
    tfrecords.write_metadata(str(tmp_path), {
        "task": task.name, "max_seq_length": length, "label_names": task.label_names,
        "splits": {"validation": info},
    })
    split = tfrecords.open_split(str(tmp_path / "validation-*.tfrecord"))
    back = tfrecords.read_features(split, task.example_type)

    assert info["rows"] == len(features) and info["examples"] == features.num_examples
    for name, values in features.columns.items():
        np.testing.assert_array_equal(back.columns[name], values)
    np.testing.assert_array_equal(back.lengths, features.lengths)
    np.testing.assert_allclose(back.labels, features.labels, rtol=1e-6)
    assert back.label_per_token == features.label_per_token
    if features.example_index is not None:  # windowed tasks
        assert len(features) > features.num_examples
        np.testing.assert_array_equal(back.example_index, features.example_index)
    assert set(back.extras) == set(features.extras)
    for name, values in features.extras.items():  # word indices, character spans
        np.testing.assert_array_equal(back.extras[name], values)
    if features.examples is not None:
        assert back.examples == features.examples
    # Evaluation from the files scores exactly as from the examples.
    outputs = np.random.default_rng(0).normal(
        size=(len(features), length, *([] if kind == "sentence_regression" else [2 if
              kind == "question_answering" else len(task.label_names)])))
    if kind == "sentence_regression":
        outputs = outputs[:, 0]
    assert task.evaluate(outputs, back) == pytest.approx(task.evaluate(outputs, features))


def test_training_rows_are_fixed_length_and_worker_shards_are_disjoint(tokenizer, tmp_path):
    task, examples = task_and_examples("token_classification", tmp_path)
    features = task.encode(examples, tokenizer)
    info = tfrecords.write_split(str(tmp_path), "train", features, task.feature_specs, 8, 3)
    tfrecords.write_metadata(str(tmp_path), {"task": task.name, "max_seq_length": 8,
                                             "label_names": task.label_names, "splits": {"train": info}})
    source = tfrecords.TFRecordSource(tfrecords.open_split(str(tmp_path / "train-*.tfrecord")))

    def rows(context=None):
        dataset, sharded = source.examples(context)
        return sharded, [(inputs["input_ids"].numpy(), labels.numpy()) for inputs, labels in dataset]

    sharded, every = rows()
    assert not sharded and len(every) == len(features)
    for row, ((ids, labels), offset, count) in enumerate(zip(every, features.offsets(), features.lengths,
                                                              strict=True)):
        assert ids.shape == labels.shape == (8,), row
        np.testing.assert_array_equal(ids[:count], features.columns["input_ids"][offset:offset + count])
        np.testing.assert_array_equal(labels[:count], features.labels[offset:offset + count])
        assert (ids[count:] == 0).all() and (labels[count:] == IGNORED_LABEL).all()
    parts = [rows(tf.distribute.InputContext(2, worker, 2)) for worker in range(2)]
    assert all(sharded for sharded, _ in parts)
    seen = [tuple(ids) for _, part in parts for ids, _ in part]
    assert sorted(seen) == sorted(tuple(ids) for ids, _ in every)  # each row once, on one worker


def settings(tiny_bert, **extra) -> str:
    values = {"task.init_checkpoint": tiny_bert, "task.max_seq_length": 32, "trainer.epochs": 3,
              "trainer.train_batch_size": 16, "trainer.learning_rate": 1e-3,
              "trainer.lr_reference_width": 32,  # the rate is the 32-wide test encoder's own
              "trainer.static_shapes": True, "runtime.deterministic": True, **extra}
    return ",".join(f"{key}={value}" for key, value in values.items())


@pytest.fixture(scope="module")
def records(tiny_bert, sentiment_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("records")
    process = subprocess.run(
        [sys.executable, CREATE, "--config_file=configs/glue/sst2.yaml", f"--output_dir={folder}",
         "--num_shards=3", "--params_override=" + settings(tiny_bert, **{
             "task.train_data.input_path": sentiment_data[0],
             "task.validation_data.input_path": sentiment_data[1]})],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"train: 480 examples, 480 rows in 3 files: {folder}/train-*.tfrecord" in process.stdout
    return folder


def test_metadata_lists_counts_length_and_labels(records):
    metadata = json.loads((records / "metadata.json").read_text())
    assert metadata["task"] == "sentence_classification" and metadata["max_seq_length"] == 32
    assert metadata["label_names"] == ["0", "1"]
    assert metadata["splits"]["train"]["examples"] == 480
    assert metadata["splits"]["validation"]["rows"] == 96
    counts = [sum(1 for _ in tf.data.TFRecordDataset(str(records / name)))
              for name in metadata["splits"]["train"]["files"]]
    assert counts == [160, 160, 160]


def test_training_from_tfrecords_equals_training_from_tsv(tiny_bert, sentiment_data, records, tmp_path):
    inputs = {"tsv": sentiment_data,
              "tfrecord": (records / "train-*.tfrecord", records / "validation-*.tfrecord")}
    # Deterministic runs: one new process for both.
    run_trains_in_new_process(*[
        ("--config_file=configs/glue/sst2.yaml", f"--model_dir={tmp_path / name}",
         "--params_override=" + settings(tiny_bert, **{
             "task.train_data.input_path": train, "task.validation_data.input_path": dev}))
        for name, (train, dev) in inputs.items()])
    runs = {}
    for name in inputs:
        results = json.loads((tmp_path / name / "eval_results.json").read_text())
        runs[name] = {key: results[key] for key in COMPARED}
    assert runs["tfrecord"] == runs["tsv"]  # same batches in the same order
    assert runs["tsv"]["accuracy"] > 0.9


def test_tfrecord_input_errors(tiny_bert, records, tmp_path):
    with pytest.raises(TfftError, match="no TFRecord file matches"):
        tfrecords.open_split(str(tmp_path / "train-*.tfrecord"))
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shard = (records / "train-00000-of-00003.tfrecord").read_bytes()
    (lonely / "train-00000-of-00001.tfrecord").write_bytes(shard)
    with pytest.raises(TfftError, match="metadata.json' does not exist; TFRecord input needs"):
        tfrecords.open_split(str(lonely / "train-*.tfrecord"))
    with pytest.raises(TfftError, match="matches only 1 of the 3 train files"):
        tfrecords.open_split(str(records / "train-00001-of-00003.tfrecord"))

    def train(config="configs/glue/sst2.yaml", **extra):
        values = settings(tiny_bert, **{"task.train_data.input_path": records / "train-*.tfrecord", **extra})
        return (f"--config_file={config}", "--mode=train", f"--model_dir={tmp_path / 'model'}",
                f"--params_override={values}")

    # Deterministic runs: one new process for the four.
    errors = []
    for process in run_trains_in_new_process(
            train(**{"task.max_seq_length": 16}), train("configs/glue/stsb.yaml"),
            train(**{"task.label_list": "[neg,pos]"}), train(**{"task.train_data.max_examples": -1}),
            check=False):
        assert process.returncode == 1 and "Traceback" not in process.stderr
        errors.append(process.stderr.strip().splitlines()[-1])
    assert "was written with max_seq_length 32 but task.max_seq_length is 16" in errors[0]
    assert "holds sentence_classification data but task.type is sentence_regression" in errors[1]
    assert "was written with labels ['0', '1'] but the config gives ['neg', 'pos']" in errors[2]
    assert "' is -1; set task.*_data.max_examples to 0 (all) or the number" in errors[3]


def write_both_splits(task, features, folder, num_shards: int = 3) -> None:
    """Writes ``features`` as the train and the validation split of ``folder``."""
    length, specs = task.config.max_seq_length, task.feature_specs
    splits = {split: tfrecords.write_split(str(folder), split, features, specs, length, num_shards,
                                           with_examples=split == "validation")
              for split in tfrecords.SPLITS}
    tfrecords.write_metadata(str(folder), {"task": task.name, "max_seq_length": length,
                                           "label_names": task.label_names, "splits": splits})


@pytest.mark.parametrize("kind", ["token_classification", "question_answering"])
def test_max_examples_reads_the_records_of_the_first_examples(kind, tokenizer, tmp_path):
    task, examples = task_and_examples(kind, tmp_path)
    write_both_splits(task, task.encode(examples, tokenizer), tmp_path)
    first = task.encode(examples[:7], tokenizer)
    assert len(first) > 7  # Examples cut into windows: 7 examples are more records.

    source = tfrecords.TFRecordSource(tfrecords.open_split(str(tmp_path / "train-*.tfrecord"), 7))
    assert (source.num_rows, source.num_examples) == (len(first), 7)
    rows = [inputs["input_ids"].numpy() for inputs, _ in source.examples()[0]]
    assert len(rows) == len(first)
    for ids, offset, count in zip(rows, first.offsets(), first.lengths, strict=True):
        np.testing.assert_array_equal(ids[:count], first.columns["input_ids"][offset:offset + count])
    parts = [source.examples(tf.distribute.InputContext(2, worker, 2)) for worker in range(2)]
    assert all(sharded for _, sharded in parts)  # The first records, each on one worker.
    seen = sorted(tuple(inputs["input_ids"].numpy()) for dataset, _ in parts for inputs, _ in dataset)
    assert seen == sorted(tuple(ids) for ids in rows)

    back = tfrecords.read_features(tfrecords.open_split(str(tmp_path / "validation-*.tfrecord"), 7),
                                   task.example_type)
    assert back.num_examples == 7 and len(back) == len(first)
    np.testing.assert_array_equal(back.columns["input_ids"], first.columns["input_ids"])
    np.testing.assert_array_equal(back.example_index, first.example_index)
    if first.examples is not None:  # QA: the questions and contexts.
        assert back.examples == first.examples
    length = task.config.max_seq_length
    scores = [2] if kind == "question_answering" else [len(task.label_names)]
    outputs = np.random.default_rng(0).normal(size=(len(first), length, *scores))
    assert task.evaluate(outputs, back) == pytest.approx(task.evaluate(outputs, first))
    everything = tfrecords.open_split(str(tmp_path / "validation-*.tfrecord"), 1000)
    assert (everything.rows, everything.examples, everything.partial) == (
        everything.info["rows"], len(examples), False)


def test_max_examples_counts_records_in_training_files_that_do_not_know_their_examples(tokenizer, tmp_path):
    task, examples = task_and_examples("token_classification", tmp_path)
    write_both_splits(task, task.encode(examples, tokenizer), tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    del metadata["splits"]["train"]["example_ids"]  # As written before training rows carried them.
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    split = tfrecords.open_split(str(tmp_path / "train-*.tfrecord"), 7)
    info = split.info
    assert not split.counts_examples and split.rows == 7
    assert split.examples == round(7 * info["examples"] / info["rows"])
    assert sum(1 for _ in tfrecords.TFRecordSource(split).examples()[0]) == 7


def test_training_and_evaluation_on_the_first_examples_of_tfrecord_files(tiny_bert, tmp_path):
    data = (write_conll(tmp_path / "train.conll", synthetic_sentences(60, 1)),
            write_conll(tmp_path / "dev.conll", synthetic_sentences(30, 2)))
    small = {"task.max_seq_length": 8, "trainer.epochs": 2, "trainer.train_batch_size": 4}
    records = tmp_path / "records"
    run_create_tfrecords("--config_file=configs/ner/conll2003.yaml", f"--output_dir={records}",
                         "--num_shards=3", f"--params_override={overrides(tiny_bert, data, **small)}")
    task = get_task(task_config("token_classification", max_seq_length=8, label_list=TAGS))
    train_rows = len(task.encode(task.read_examples(DataConfig(input_path=data[0], max_examples=25)),
                                 load_tokenizer(tiny_bert)))
    assert train_rows > 25

    model_dir = tmp_path / "model"
    files = (records / "train-*.tfrecord", records / "validation-*.tfrecord")
    limits = {"task.train_data.max_examples": 25, "task.validation_data.max_examples": 12}
    run = run_train("--config_file=configs/ner/conll2003.yaml", f"--model_dir={model_dir}",
                    f"--params_override={overrides(tiny_bert, files, **small, **limits)}")
    results = json.loads((model_dir / "train_results.json").read_text())
    assert results["train_examples"] == 25
    assert results["steps"] == 2 * (train_rows // 4)  # Fixed-length batches drop the remainder.
    assert "the first 25 examples of" in run.stderr
    from_records = json.loads((model_dir / "eval_results.json").read_text())
    assert from_records["num_examples"] == 12
    run_train(f"--model_dir={model_dir}", "--mode=eval", "--params_override=task.validation_data.input_path="
              f"{data[1]},task.validation_data.max_examples=12")
    from_text = json.loads((model_dir / "eval_results.json").read_text())
    for key in ("num_examples", "f1", "accuracy", "loss"):
        assert from_records[key] == pytest.approx(from_text[key], rel=1e-5), key


def test_rows_of_several_sequences_round_trip_with_their_declared_shape(tmp_path):
    features = choice_features([[2, 5, 3], [4, 1], [6, 6, 2], [1]])
    features.extras["word_index"] = np.arange(int(features.lengths.sum()), dtype=np.int32)
    info = tfrecords.write_split(str(tmp_path), "validation", features, CHOICE_SPECS, 8, 2,
                                 with_examples=True)
    assert info["inputs"]["input_ids"] == [3, 8] and info["sequences"] == 3
    tfrecords.write_metadata(str(tmp_path), {"task": "t", "max_seq_length": 8, "label_names": [],
                                             "splits": {"validation": info}})
    split = tfrecords.open_split(str(tmp_path / "validation-*.tfrecord"))
    back = tfrecords.read_features(split, dict)
    np.testing.assert_array_equal(back.sequences, features.sequences)
    np.testing.assert_array_equal(back.lengths, features.lengths)
    np.testing.assert_array_equal(back.columns["input_ids"], features.columns["input_ids"])
    np.testing.assert_array_equal(back.extras["word_index"], features.extras["word_index"])
    np.testing.assert_array_equal(back.labels, features.labels)
    rows = [inputs["attention_mask"].numpy() for inputs, _ in tfrecords.TFRecordSource(split).examples()[0]]
    assert [row.shape for row in rows] == [(3, 8)] * 4
    assert [row.sum(axis=1).tolist() for row in rows] == [[2, 5, 3], [4, 1, 0], [6, 6, 2], [1, 0, 0]]


def test_files_of_format_version_1_are_still_read(tokenizer, tmp_path):
    task, examples = task_and_examples("question_answering", tmp_path)
    features = task.encode(examples, tokenizer)
    info = tfrecords.write_split(str(tmp_path), "validation", features, task.feature_specs, 24, 2,
                                 with_examples=True)
    for key in ("inputs", "sequences", "extras"):  # What version 1 did not store.
        del info[key]
    (tmp_path / "metadata.json").write_text(json.dumps({
        "format_version": 1, "task": task.name, "max_seq_length": 24, "label_names": [],
        "splits": {"validation": info}}))
    split = tfrecords.open_split(str(tmp_path / "validation-*.tfrecord"))
    back = tfrecords.read_features(split, task.example_type)
    np.testing.assert_array_equal(back.columns["input_ids"], features.columns["input_ids"])
    np.testing.assert_array_equal(back.extras["char_spans"], features.extras["char_spans"])
    assert back.examples == features.examples
