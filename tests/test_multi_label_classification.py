"""Multi-label classification: label layouts, GoEmotions, metrics against scikit-learn, export."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import SHARED_DATA, run_export, run_train, train_files

from tfft.config import DataConfig, build_config
from tfft.errors import TfftError
from tfft.tasks import build_task, get_task
from tfft.tasks.multi_label_classification import MultiLabelClassification, multi_label_scores

GOEMOTIONS = SHARED_DATA / "goemotions"
NAMES = ["sports", "politics", "music"]


def task(**settings) -> MultiLabelClassification:
    return build_task("multi_label_classification", **{"max_seq_length": 32, **settings})


def test_labels_from_lists_separated_text_and_ids(tmp_path, tiny_bert):
    from tfft.data.tokenization import load_tokenizer

    rows = [{"text": "a", "labels": ["music", "sports"]}, {"text": "b", "labels": "politics, 0"},
            {"text": "c", "labels": ""}, {"text": "d", "labels": [2]}]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    multi = task(label_list=NAMES, text_fields=["text"])
    examples = multi.read_examples(DataConfig(input_path=str(path)))
    assert [e.label for e in examples] == [("music", "sports"), ("politics", "0"), (), (2,)]
    features = multi.encode(examples, load_tokenizer(tiny_bert))
    np.testing.assert_array_equal(features.labels, [[1, 0, 1], [1, 1, 0], [0, 0, 0], [0, 0, 1]])
    assert features.labels.dtype == np.float32 and multi.feature_specs.label.shape == (3,)
    path.write_text(json.dumps({"text": "e", "labels": "chess"}) + "\n")
    bad = multi.read_examples(DataConfig(input_path=str(path)))
    with pytest.raises(TfftError, match=r"data\.jsonl:1: label 'chess' is neither a name of task\.label_list "
                                        r"nor an id below 3"):
        multi.encode(bad, load_tokenizer(tiny_bert))


def test_labels_come_from_training_data_without_a_list(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"sentence": "a", "labels": ["b", "a"]}\n{"sentence": "b", "labels": ["c"]}\n')
    multi = task()
    with pytest.raises(TfftError, match=r"the labels are unknown: set task\.label_list"):
        multi.feature_specs  # noqa: B018
    multi.prepare(multi.read_examples(DataConfig(input_path=str(path))))
    assert multi.label_names == ["a", "b", "c"] and multi.config.num_labels == 3
    path.write_text('{"sentence": "a", "labels": "3,1"}\n')
    ids = task()
    ids.prepare(ids.read_examples(DataConfig(input_path=str(path))))
    assert ids.label_names == ["0", "1", "2", "3"]


def test_goemotions_release_reads_with_its_emotion_names():
    config = build_config(["configs/multi_label/goemotions.yaml"], {"task": {
        "validation_data": {"input_path": str(GOEMOTIONS / "dev.tsv")}}})
    assert config.task.label_list == (GOEMOTIONS / "labels.txt").read_text().split()
    multi = get_task(config.task)
    examples = multi.read_examples(config.task.validation_data)
    assert len(examples) == 5426 and examples[0].texts[0]
    assert all(e.label and all(item.isdigit() for item in e.label) for e in examples)
    assert max(len(e.label) for e in examples) >= 3


def test_scores_match_scikit_learn():
    from sklearn import metrics as sklearn  # Installed with seqeval (test extra).
    rng = np.random.default_rng(0)
    labels = (rng.random((200, 6)) < 0.2).astype(np.float32)
    labels[:, 5] = 0  # A label nobody has.
    probabilities = np.clip(labels * 0.5 + rng.random((200, 6)) * 0.6, 0, 1)
    scores = multi_label_scores(probabilities, labels, 0.5, list("abcdef"))
    predicted = probabilities >= 0.5
    assert scores["micro_f1"] == pytest.approx(sklearn.f1_score(labels, predicted, average="micro"))
    assert scores["macro_f1"] == pytest.approx(
        sklearn.f1_score(labels, predicted, average="macro", zero_division=0))
    precision = sklearn.precision_score(labels, predicted, average="micro")
    assert scores["micro_precision"] == pytest.approx(precision)
    assert scores["exact_match"] == pytest.approx(sklearn.accuracy_score(labels, predicted))
    per_label = sklearn.f1_score(labels, predicted, average=None, zero_division=0)
    assert [scores[f"f1_{name}"] for name in "abcdef"] == pytest.approx(per_label)


def test_evaluate_reports_the_best_threshold():
    multi = task(label_list=NAMES)
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)
    # Right labels at probability 0.3, wrong ones at 0.1: 0.5 predicts nothing, 0.2-0.3 everything right.
    logits = np.log(np.where(labels > 0, 0.3, 0.1) / np.where(labels > 0, 0.7, 0.9))
    from tfft.data.features import Features

    results = multi.evaluate(logits, Features({}, np.ones(4, np.int32), labels))
    assert results["micro_f1"] == 0.0 and results["best_micro_f1"] == pytest.approx(1.0)
    assert 0.1 < results["best_threshold"] <= 0.3
    expected = np.mean(np.log1p(np.exp(-np.where(labels > 0, logits, -logits))))
    assert results["loss"] == pytest.approx(expected)


# --- end to end ---------------------------------------------------------------------------------------


def synthetic_topics(count: int, seed: int) -> list[str]:
    """Header-less TSV rows: every label has its own word; a text has one to three labels."""
    rng = random.Random(seed)
    words = {0: "guitar", 1: "dog", 2: "cat"}
    rows = []
    for index in range(count):
        labels = sorted(rng.sample(range(3), rng.randint(1, 3)))
        text = " ".join(rng.sample(["the", "a", "is", "very", "this"], 3) + [words[i] for i in labels])
        rows.append(f"{text}\t{','.join(map(str, labels))}\tid{index}")
    return rows


@pytest.fixture(scope="module")
def multi_label_run(tiny_bert, tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi_label")
    for name, seed, count in (("train.tsv", 7, 240), ("dev.tsv", 8, 48)):
        (folder / name).write_text("\n".join(synthetic_topics(count, seed)) + "\n")
    train_files("configs/multi_label/goemotions.yaml", folder / "model", tiny_bert, folder / "train.tsv",
              folder / "dev.tsv", "task.max_seq_length=16", f"task.label_list=[{','.join(NAMES)}]",
              "trainer.epochs=4", "trainer.learning_rate=2e-3", "trainer.lr_reference_width=0")
    return folder


def test_training_learns_every_label_and_predicts_label_lists(multi_label_run):
    model_dir = multi_label_run / "model"
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["num_examples"] == 48 and results["macro_f1"] >= 0.8
    assert {"f1_sports", "f1_politics", "f1_music", "best_threshold", "exact_match"} <= set(results)
    run_train(f"--model_dir={model_dir}", "--mode=predict")
    rows = [json.loads(line) for line in (model_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 48 and set(rows[0]) == {"text", "labels", "probabilities"}
    assert all(set(row["labels"]) <= set(NAMES) for row in rows)
    assert all(row["probabilities"][name] >= 0.5 for row in rows for name in row["labels"])


def test_exports_as_a_multi_label_classifier_in_both_formats(multi_label_run):
    import tensorflow as tf
    import torch
    import transformers

    model_dir, hf = multi_label_run / "model", multi_label_run / "hf"
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={hf}")
    run_export(f"--model_dir={model_dir}", f"--export_dir={multi_label_run / 'saved'}")
    torch_model = transformers.AutoModelForSequenceClassification.from_pretrained(str(hf)).eval()
    assert torch_model.config.problem_type == "multi_label_classification"
    assert torch_model.config.id2label == dict(enumerate(NAMES))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf))
    batch = tokenizer(["the guitar and the dog", "a cat"], padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = torch.sigmoid(torch_model(**batch).logits).numpy()
    signatures = tf.saved_model.load(str(multi_label_run / "saved")).signatures
    ours = signatures["serve_token_ids"](**{name: tf.constant(value.numpy(), tf.int32)
                                             for name, value in batch.items()})
    assert np.abs(ours["probabilities"].numpy() - theirs).max() <= 1e-4
    texts = signatures["serving_default"](text=tf.constant(["the guitar and the dog", "a cat"]))
    np.testing.assert_allclose(texts["probabilities"].numpy(), ours["probabilities"].numpy(), atol=1e-6)
    chosen = ours["probabilities"].numpy() >= 0.5
    expected = np.where(chosen, np.array(NAMES, dtype=object), "")
    assert texts["labels"].numpy().astype(str).tolist() == expected.astype(str).tolist()
