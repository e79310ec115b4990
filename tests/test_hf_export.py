"""Fine-tune tiny checkpoints of every family, export with --format=hf, reload in PyTorch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA, check_export, run_cli, run_export, run_train, write_sentiment_tsv
from tiny_checkpoints import FAMILIES, make_tiny_checkpoint

TEXTS = ["the movie is good", "awful plot and boring acting , not fun at all", "great !"]
HF_CLASSES = {
    "bert": "BertForSequenceClassification",
    "roberta": "RobertaForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "distilbert": "DistilBertForSequenceClassification",
    "electra": "ElectraForSequenceClassification",
    "albert": "AlbertForSequenceClassification",
}


def settings(checkpoint, train, dev, **extra) -> str:
    values = {
        "task.init_checkpoint": checkpoint, "task.train_data.input_path": train,
        "task.validation_data.input_path": dev, "task.max_seq_length": 32, "trainer.epochs": 1,
        "trainer.train_batch_size": 16, "trainer.eval_batch_size": 32, "trainer.learning_rate": 1e-3,
        **extra,
    }
    return ",".join(f"{key}={value}" for key, value in values.items())


def fine_tune(config: str, checkpoint, train, dev, model_dir, **extra):
    run_train(f"--config_file={config}", f"--model_dir={model_dir}",
              f"--params_override={settings(checkpoint, train, dev, **extra)}")
    return model_dir


def tfft_outputs(model_dir, texts, pairs=None) -> tuple[np.ndarray, dict]:
    """The restored float32 task model's outputs, and the encoded batch."""
    from tfft import modeling
    from tfft.modeling import set_precision
    from tfft.tasks import get_task

    set_precision("float32")
    task = get_task(modeling.load_run_config(model_dir).task)
    model, tokenizer, _ = modeling.restore_task_model(model_dir, task)
    batch = tokenizer(texts, pairs, padding=True, return_token_type_ids=True, return_tensors="np")
    batch = {name: batch[name].astype(np.int32) for name in ("input_ids", "token_type_ids", "attention_mask")}
    return np.asarray(model(batch, training=False)), batch


def torch_logits(export_dir, batch, family: str) -> tuple[np.ndarray, object]:
    import torch
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(export_dir)).eval()
    inputs = {name: torch.tensor(value, dtype=torch.long) for name, value in batch.items()}
    if family == "distilbert":
        inputs.pop("token_type_ids")
    with torch.no_grad():
        return model(**inputs).logits.numpy(), model


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    return (write_sentiment_tsv(folder / "train.tsv", 48, seed=1),
            write_sentiment_tsv(folder / "dev.tsv", 16, seed=2))


@pytest.fixture(scope="module")
def roberta_sst2_run(tmp_path_factory):
    """configs/glue/sst2.yaml unchanged, on a tiny RoBERTa and real SST-2 rows."""
    folder = tmp_path_factory.mktemp("roberta_sst2")
    checkpoint = make_tiny_checkpoint("roberta", folder / "checkpoint")
    sst2 = SHARED_DATA / "glue" / "SST-2"
    return fine_tune(
        "configs/glue/sst2.yaml", checkpoint, sst2 / "train.tsv", sst2 / "dev.tsv", folder / "model",
        **{"task.train_data.max_examples": 64, "task.validation_data.max_examples": 48},
    )


# One family per in-graph tokenizer (WordPiece, byte-level BPE, Unigram) in the default suite; the
# families that share theirs (DistilBERT and ELECTRA: WordPiece; ALBERT: Unigram) run with -m slow.
SHARED_TOKENIZER_FAMILIES = ("distilbert", "electra", "albert")


@pytest.mark.parametrize("family", [
    pytest.param(family, marks=pytest.mark.slow) if family in SHARED_TOKENIZER_FAMILIES else family
    for family in FAMILIES
])
def test_fine_tuned_classifier_reloads_in_pytorch_with_the_same_logits(family, sentiment, tmp_path):
    checkpoint = make_tiny_checkpoint(family, tmp_path / "checkpoint")
    model_dir = fine_tune("configs/glue/sst2.yaml", checkpoint, *sentiment, tmp_path / "model")
    export_dir = tmp_path / "hf"
    args = ("--format=hf", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    # One family through the tfft-export command itself, the others in this process.
    process = run_cli("tfft.cli.export", *args) if family == "bert" else run_export(*args)
    assert f"Hugging Face model written to {export_dir}" in process.stdout

    ours, batch = tfft_outputs(model_dir, TEXTS)
    assert batch["attention_mask"].min() == 0  # The batch is padded.
    theirs, model = torch_logits(export_dir, batch, family)
    assert type(model).__name__ == HF_CLASSES[family]
    assert np.abs(ours - theirs).max() <= 1e-4
    assert model.config.id2label == {0: "0", 1: "1"}
    # The pooler and head were trained, not left at their initial values.
    assert not np.allclose(ours[:, 0], ours[0, 0])

    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(export_dir))
    np.testing.assert_array_equal(tokenizer(TEXTS, padding=True, return_tensors="np")["input_ids"],
                                  batch["input_ids"])
    assert_raw_text_serving_matches(model_dir, tmp_path / "saved_model", batch, ours)


def assert_raw_text_serving_matches(model_dir, export_dir, batch, logits):
    """The SavedModel's raw-text signatures give the training tokenizer's ids and the model's logits."""
    import tensorflow as tf

    run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    signatures = tf.saved_model.load(str(export_dir)).signatures
    texts = tf.constant(TEXTS)
    tokenized = signatures["tokenize"](text=texts)
    for name, value in batch.items():
        np.testing.assert_array_equal(tokenized[name].numpy(), value, err_msg=name)
    served = signatures["serving_default"](text=texts)
    assert np.abs(served["logits"].numpy() - logits).max() <= 1e-6
    assert served["label"].numpy().astype(str).tolist() == [str(i) for i in logits.argmax(-1)]
    examples = [tf.train.Example(features=tf.train.Features(feature={"text": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[text.encode()]))})).SerializeToString() for text in TEXTS]
    from_examples = signatures["serve_examples"](examples=tf.constant(examples))
    np.testing.assert_array_equal(from_examples["logits"].numpy(), served["logits"].numpy())


def test_sst2_example_runs_unchanged_on_roberta(roberta_sst2_run, tmp_path):
    results = json.loads((roberta_sst2_run / "eval_results.json").read_text())
    assert results["num_examples"] == 48  # Its accuracy is checked against the SavedModel's below.
    export_dir = tmp_path / "saved_model"
    run_export(f"--model_dir={roberta_sst2_run}", f"--export_dir={export_dir}")
    report = check_export(roberta_sst2_run, export_dir)
    assert report["saved_model"] == pytest.approx(report["eval_results"], abs=1e-9)


def test_roberta_sst2_model_reloads_in_pytorch_on_sentence_pairs(roberta_sst2_run, tmp_path):
    export_dir = tmp_path / "hf"
    run_export("--format=hf", f"--model_dir={roberta_sst2_run}", f"--export_dir={export_dir}")
    ours, batch = tfft_outputs(roberta_sst2_run, TEXTS, ["a second sentence", "yes", "no , not at all"])
    theirs, _ = torch_logits(export_dir, batch, "roberta")
    assert np.abs(ours - theirs).max() <= 1e-4


def test_regression_exports_as_single_output_regressor(tmp_path):
    checkpoint = make_tiny_checkpoint("electra", tmp_path / "checkpoint")
    data = tmp_path / "pairs.tsv"
    rows = [f"the movie was {a}\tthe film was {b}\t{(a == 'good') + (b == 'good')}"
            for a in ("good", "bad", "fun") for b in ("good", "awful", "boring")] * 4
    data.write_text("sentence1\tsentence2\tscore\n" + "\n".join(rows) + "\n")
    model_dir = fine_tune("configs/glue/stsb.yaml", checkpoint, data, data, tmp_path / "model",
                          **{"task.label_field": "score"})
    export_dir = tmp_path / "hf"
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    ours, batch = tfft_outputs(model_dir, TEXTS, ["one", "two three", "four"])
    theirs, model = torch_logits(export_dir, batch, "electra")
    assert model.config.problem_type == "regression" and theirs.shape == (3, 1)
    assert np.abs(ours - theirs[:, 0]).max() <= 1e-4
