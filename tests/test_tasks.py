"""Sentence classification and regression tasks: reading, encoding, metrics, heads."""

from __future__ import annotations

import dataclasses
import json
import re

import keras
import numpy as np
import pytest
from scipy import stats

from tfft import backbones
from tfft import config as config_module
from tfft.config import DataConfig, build_config, config_field, task_config
from tfft.data.features import Features
from tfft.data.tokenization import load_tokenizer
from tfft.errors import TfftError
from tfft.tasks import TASKS, get_task, metrics, register_task
from tfft.tasks.sentence_classification import SentenceClassification, SentenceClassificationConfig
from tfft.tasks.sentence_regression import SentenceRegression


def classification(**settings) -> SentenceClassification:
    return get_task(task_config("sentence_classification", **settings))


def regression(**settings) -> SentenceRegression:
    settings.setdefault("text_fields", ["sentence1", "sentence2"])
    settings.setdefault("label_field", "score")
    return get_task(task_config("sentence_regression", **settings))


def write(path, text: str) -> DataConfig:
    path.write_text(text)
    return DataConfig(input_path=str(path))


def write_jsonl(path, rows: list[dict]) -> DataConfig:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


def rows(features, name: str) -> list[list[int]]:
    """One column of variable-length features split back into per-example lists."""
    ends = np.cumsum(features.lengths)
    return [part.tolist() for part in np.split(features.columns[name], ends[:-1])]


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(tiny_bert)


@pytest.fixture(scope="module")
def backbone(tiny_bert):
    return backbones.from_pretrained(str(tiny_bert))


def padded_batch(tokenizer, texts, pairs=None) -> dict[str, np.ndarray]:
    encoded = tokenizer(texts, pairs, padding=True, return_tensors="np", return_token_type_ids=True)
    return {name: encoded[name].astype(np.int32) for name in backbones.INPUT_NAMES}


# --- registry and config checks --------------------------------------------------------------------


def test_registry_and_defaults():
    assert {"sentence_classification", "sentence_regression", "token_classification", "question_answering",
            "multiple_choice"} <= set(TASKS)
    task = classification()
    assert isinstance(task, SentenceClassification)
    assert task.main_metric == "accuracy" and task.main_metric_mode == "max"
    assert task.label_names == ["0", "1"]
    assert classification(num_labels=3).label_names == ["0", "1", "2"]
    reg = regression()
    assert isinstance(reg, SentenceRegression)
    assert reg.main_metric == "pearson" and reg.main_metric_mode == "max"
    assert reg.label_names == []
    assert classification(main_metric="loss").main_metric_mode == "min"
    assert classification(main_metric="f1").main_metric == "f1"


def test_unknown_task_type():
    with pytest.raises(
        TfftError,
        match=r"config key 'task\.type' has unknown value 'ner'; choose one of "
        + re.escape(", ".join(sorted(TASKS))) + "$",
    ):
        get_task(task_config("ner"))


def test_a_task_from_outside_tfft_is_one_registered_class():
    @dataclasses.dataclass
    class KeywordConfig(SentenceClassificationConfig):
        keyword: str = config_field("good", doc="The word that decides the class.")

    @register_task
    class Keyword(SentenceClassification):
        name = "keyword_test"
        config_class = KeywordConfig

    try:
        config = build_config(overrides="task.type=keyword_test,task.keyword=great,task.num_labels=3")
        task = get_task(config.task)
        assert isinstance(task, Keyword) and task.config.keyword == "great"
        assert task.label_names == ["0", "1", "2"]
        with pytest.raises(TfftError, match=r"'task\.keyword' belongs to keyword_test, not to task\.type "
                                            r"'sentence_classification'"):
            build_config(overrides="task.keyword=great")
    finally:
        del TASKS["keyword_test"], config_module._TASK_SECTIONS["keyword_test"]


def test_unknown_main_metric():
    with pytest.raises(
        TfftError,
        match=r"config key 'task\.main_metric' has unknown value 'pearson' for sentence_classification; "
        r"choose one of loss, accuracy, f1, matthews_corrcoef",
    ):
        classification(main_metric="pearson")
    with pytest.raises(TfftError, match=r"'task\.main_metric' has unknown value 'accuracy' for sentence_re"):
        regression(main_metric="accuracy")


def test_num_labels_and_label_list_must_agree():
    with pytest.raises(TfftError, match=r"task\.num_labels is 3 but task\.label_list has 2 entries"):
        classification(num_labels=3, label_list=["neg", "pos"])


def test_num_labels_at_least_two():
    with pytest.raises(TfftError, match=r"task\.num_labels must be at least 2, got 1"):
        classification(num_labels=1)


def test_text_fields_count():
    with pytest.raises(TfftError, match=r"task\.text_fields must name 1 or 2 columns, got \['a', 'b', 'c'\]"):
        classification(text_fields=["a", "b", "c"])
    with pytest.raises(TfftError, match=r"task\.text_fields must name 1 or 2 columns, got \[\]"):
        regression(text_fields=[])


# --- reading examples ------------------------------------------------------------------------------


def test_label_list_maps_names_to_ids(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence\tlabel\ngood film\tpos\nbad film\tneg\n\nok film\t pos \n")
    task = classification(label_list=["neg", "pos"])
    examples = task.read_examples(data)
    assert [(e.texts, e.label) for e in examples] == [
        (("good film",), 1), (("bad film",), 0), (("ok film",), 1)
    ]
    assert examples[2].where == f"{data.input_path}:5"
    assert task.label_names == ["neg", "pos"]


def test_default_labels_are_digit_strings(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence\tlabel\na\t2\nb\t0\nc\t1\n")
    assert [e.label for e in classification(num_labels=3).read_examples(data)] == [2, 0, 1]


def test_integer_labels_from_jsonl_are_ids(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [
        {"text": "good", "y": 1}, {"text": "bad", "y": 0}, {"text": "fine", "y": "pos"},
    ])
    task = classification(label_list=["neg", "pos"], text_fields=["text"], label_field="y")
    assert [e.label for e in task.read_examples(data)] == [1, 0, 1]


def test_label_not_in_label_list(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence\tlabel\ngood\tpos\nhmm\tmaybe\n")
    task = classification(label_list=["neg", "pos"])
    expected = re.escape(f"{data.input_path}:3: label 'maybe' is not in task.label_list ['neg', 'pos']")
    with pytest.raises(TfftError, match=expected):
        task.read_examples(data)


@pytest.mark.parametrize("label", [2, -1])
def test_out_of_range_integer_label(tmp_path, label):
    lines = [{"sentence": "a", "label": 0}, {"sentence": "b", "label": label}]
    data = write_jsonl(tmp_path / "d.jsonl", lines)
    expected = re.escape(f"{data.input_path}:2: label {label} is out of range for task.num_labels=2")
    with pytest.raises(TfftError, match=expected):
        classification().read_examples(data)


def test_empty_text_column(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence1\tsentence2\tscore\na\tb\t1.0\nc\t  \t2.0\n")
    expected = re.escape(f"{data.input_path}:3: column 'sentence2' is empty")
    with pytest.raises(TfftError, match=expected):
        regression().read_examples(data)


def test_missing_column(tmp_path):
    data = write(tmp_path / "d.tsv", "text\tlabel\na\t1\n")
    expected = re.escape(f"{data.input_path}:2: no column 'sentence' (columns: text, label)")
    with pytest.raises(TfftError, match=expected):
        classification().read_examples(data)
    with pytest.raises(TfftError, match=re.escape(f"{data.input_path}:2: no column 'gold'")):
        classification(text_fields=["text"], label_field="gold").read_examples(data)


def test_unlabeled_reading_needs_no_label_column(tmp_path, tokenizer):
    data = write(tmp_path / "d.tsv", "sentence\nthe film\nthe plot\n")
    task = classification()
    examples = task.read_examples(data, labeled=False)
    assert [(e.texts, e.label) for e in examples] == [(("the film",), None), (("the plot",), None)]
    assert task.encode(examples, tokenizer).labels is None


def test_max_examples(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence\tlabel\n" + "".join(f"s{i}\t{i % 2}\n" for i in range(9)))
    data.max_examples = 4
    assert [e.texts[0] for e in classification().read_examples(data)] == ["s0", "s1", "s2", "s3"]


def test_regression_scores(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence1\tsentence2\tscore\na\tb\t4.750\nc\td\t0\ne\tf\t 2.5 \n")
    examples = regression().read_examples(data)
    assert [e.label for e in examples] == [4.75, 0.0, 2.5]
    assert [e.texts for e in examples] == [("a", "b"), ("c", "d"), ("e", "f")]


@pytest.mark.parametrize("score", ["high", "nan", "inf", ""])
def test_regression_non_numeric_score(tmp_path, score):
    data = write(tmp_path / "d.tsv", f"sentence1\tsentence2\tscore\na\tb\t1\nc\td\t{score}\n")
    expected = re.escape(f"{data.input_path}:3: score {score!r} is not a finite number")
    with pytest.raises(TfftError, match=expected):
        regression().read_examples(data)


def test_regression_null_score_in_jsonl(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"sentence1": "a", "sentence2": "b", "score": None}])
    with pytest.raises(TfftError, match=re.escape(f"{data.input_path}:1: score None is not a finite number")):
        regression().read_examples(data)


# --- encoding --------------------------------------------------------------------------------------


def test_encode_single_sentences(tmp_path, tokenizer):
    data = write(tmp_path / "d.tsv", "sentence\tlabel\nthe movie is good\tpos\nbad\tneg\n")
    task = classification(label_list=["neg", "pos"], max_seq_length=32)
    features = task.encode(task.read_examples(data), tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    expected_ids = [
        [cls, *tokenizer.convert_tokens_to_ids(["the", "movie", "is", "good"]), sep],
        [cls, tokenizer.convert_tokens_to_ids("bad"), sep],
    ]
    assert rows(features, "input_ids") == expected_ids
    assert features.lengths.tolist() == [6, 3]
    assert rows(features, "token_type_ids") == [[0] * 6, [0] * 3]
    assert rows(features, "attention_mask") == [[1] * 6, [1] * 3]
    assert features.labels.tolist() == [1, 0]
    assert all(values.dtype == np.int32 for values in features.columns.values())


def test_encode_pairs_marks_second_segment(tmp_path, tokenizer):
    data = write(tmp_path / "d.tsv", "sentence1\tsentence2\tscore\nthe dog\ta cat plays\t3.5\n")
    task = regression(max_seq_length=32)
    features = task.encode(task.read_examples(data), tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    first = tokenizer.convert_tokens_to_ids(["the", "dog"])
    second = tokenizer.convert_tokens_to_ids(["a", "cat", "plays"])
    assert rows(features, "input_ids") == [[cls, *first, sep, *second, sep]]
    assert rows(features, "token_type_ids") == [[0, 0, 0, 0, 1, 1, 1, 1]]
    assert features.labels.dtype.kind == "f"
    assert features.labels.tolist() == [3.5]


def test_encode_truncates_to_max_seq_length(tmp_path, tokenizer):
    long = " ".join(["the movie"] * 20)
    data = write(tmp_path / "d.tsv", f"sentence1\tsentence2\tlabel\n{long}\tgood fun\t1\nbad\tgood\t0\n")
    task = classification(text_fields=["sentence1", "sentence2"], max_seq_length=10)
    features = task.encode(task.read_examples(data), tokenizer)
    assert features.lengths.tolist() == [10, 5]
    ids, types = rows(features, "input_ids"), rows(features, "token_type_ids")
    # Longest-first: the long first segment is cut, the short second one kept whole.
    assert ids[0][-3:] == [*tokenizer.convert_tokens_to_ids(["good", "fun"]), tokenizer.sep_token_id]
    assert types[0] == [0] * 7 + [1] * 3
    assert ids[0][6] == tokenizer.sep_token_id

    single = classification(max_seq_length=5)
    data = write(tmp_path / "s.tsv", f"sentence\tlabel\n{long}\t1\n")
    features = single.encode(single.read_examples(data), tokenizer)
    assert features.lengths.tolist() == [5]
    assert rows(features, "input_ids")[0][-1] == tokenizer.sep_token_id


# --- evaluation and predictions --------------------------------------------------------------------


def test_classification_evaluate():
    task = classification(num_labels=3)
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(30, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=30).astype(np.int32)
    result = task.evaluate(outputs, Features({}, np.ones(len(labels), np.int32), labels))
    assert set(result) == set(task.metric_names) == {"loss", "accuracy", "f1", "matthews_corrcoef"}
    predicted = outputs.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert result["f1"] == pytest.approx(metrics.f1_score(predicted, labels, 3))
    assert result["matthews_corrcoef"] == pytest.approx(metrics.matthews_corrcoef(predicted, labels, 3))
    log_probs = outputs - np.log(np.exp(outputs.astype(np.float64)).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_probs[np.arange(30), labels].mean(), rel=1e-6)
    assert all(type(value) is float for value in result.values())


def test_regression_evaluate():
    task = regression()
    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 5, size=40)
    outputs = (labels + rng.normal(size=40)).astype(np.float32)
    result = task.evaluate(outputs, Features({}, np.ones(len(labels), np.int32), labels.astype(np.float32)))
    assert set(result) == set(task.metric_names) == {"loss", "pearson", "spearman"}
    assert result["loss"] == pytest.approx(np.mean((outputs.astype(np.float64) - labels) ** 2), rel=1e-5)
    assert result["pearson"] == pytest.approx(stats.pearsonr(outputs, labels)[0], abs=1e-6)
    assert result["spearman"] == pytest.approx(stats.spearmanr(outputs, labels)[0], abs=1e-6)


def test_classification_predictions(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence1\tsentence2\tlabel\na b\tc\tx\nd\te f\tz\n")
    task = classification(num_labels=3, label_list=["x", "y", "z"], text_fields=["sentence1", "sentence2"])
    examples = task.read_examples(data)
    outputs = np.array([[0.1, 2.0, -1.0], [-3.0, 0.0, 5.0]], dtype=np.float32)
    predictions = task.predictions(examples, None, outputs)
    assert [p["label"] for p in predictions] == ["y", "z"]
    assert [(p["sentence1"], p["sentence2"]) for p in predictions] == [("a b", "c"), ("d", "e f")]
    for prediction, row in zip(predictions, outputs, strict=True):
        assert set(prediction) == {"sentence1", "sentence2", "label", "probabilities"}
        assert list(prediction["probabilities"]) == ["x", "y", "z"]
        probabilities = np.array(list(prediction["probabilities"].values()))
        assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        expected = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    json.dumps(predictions)  # JSON-ready


def test_regression_predictions(tmp_path):
    data = write(tmp_path / "d.tsv", "sentence1\tsentence2\tscore\na\tb\t1\nc\td\t2\n")
    task = regression()
    predictions = task.predictions(task.read_examples(data), None, np.array([3.25, -0.5], dtype=np.float32))
    assert predictions == [
        {"sentence1": "a", "sentence2": "b", "score": 3.25},
        {"sentence1": "c", "sentence2": "d", "score": -0.5},
    ]
    json.dumps(predictions)


# --- models ----------------------------------------------------------------------------------------


def test_classification_model_outputs_logits(backbone, tokenizer):
    model = classification(num_labels=3).build_model(backbone, 0.1)
    batch = padded_batch(tokenizer, ["the movie is good", "bad", "a dog plays"])
    logits = model(batch, training=False)
    assert tuple(logits.shape) == (3, 3)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(logits)))
    assert model.get_layer("head").kernel.shape == (32, 3)


def test_regression_model_outputs_one_score(backbone, tokenizer):
    model = regression().build_model(backbone, 0.1)
    batch = padded_batch(tokenizer, ["the dog", "a cat"], ["a cat plays", "the dog"])
    scores = model(batch, training=False)
    assert tuple(scores.shape) == (2,)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"


@pytest.fixture
def bfloat16_policy():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_models_under_mixed_bfloat16(bfloat16_policy, tiny_bert, tokenizer):
    backbone = backbones.from_pretrained(str(tiny_bert))
    classifier = classification().build_model(backbone, 0.1)
    scorer = regression().build_model(backbone, 0.1)
    batch = padded_batch(tokenizer, ["the movie is good", "bad"], ["fun", "a cat plays guitar"])
    # The encoder really runs in bfloat16 ...
    pooled = backbone(batch, training=False)["pooled_output"]
    assert keras.backend.standardize_dtype(pooled.dtype) == "bfloat16"
    # ... while the heads return float32.
    logits = classifier(batch, training=False)
    assert tuple(logits.shape) == (2, 2)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    scores = scorer(batch, training=False)
    assert tuple(scores.shape) == (2,)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"


def test_boolean_label_list_from_unquoted_yaml_is_rejected():
    with pytest.raises(TfftError, match=r"task.label_list \[True, False\] holds booleans.*quote"):
        get_task(task_config("sentence_classification", label_list=[True, False]))
