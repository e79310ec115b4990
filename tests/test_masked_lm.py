"""Masked-LM training: masking, text blocks, the families' heads against PyTorch, runs end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import REPO, WORDS, run_export, run_train
from tiny_checkpoints import FAMILIES, make_tiny_checkpoint, make_tokenizer

IGNORED = -100


def texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS[:36]) for _ in range(rng.randint(4, 24))) for _ in range(count)]


def mlm_task(**settings):
    from tfft.tasks import build_task

    return build_task("masked_lm", **{"max_seq_length": 16, **settings})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """train.txt / dev.txt (one document per line) and predict.txt (lines with [MASK])."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "train.txt").write_text("\n".join(texts(300, 1)) + "\n")
    (folder / "dev.txt").write_text("\n".join(texts(40, 2)) + "\n")
    (folder / "predict.txt").write_text("the [MASK] is good\nit was a [MASK] [MASK] .\nno mask here\n")
    return folder


# --- masking ---------------------------------------------------------------------------------


def masked(ids, labels, seed=(1, 2), probability=0.15, continuation=None, limit=None):
    """mask_tokens on one long sequence (or on rows, for 2-D input); numpy in and out."""
    import tensorflow as tf

    from tfft.tasks.masked_lm import mask_tokens

    ids, labels = np.atleast_2d(ids), np.atleast_2d(labels)
    outputs = mask_tokens(tf.constant(ids, tf.int32), tf.constant(labels, tf.int32),
                          tf.constant(seed, tf.int64), probability, mask_id=4, vocab_size=1000,
                          limit=limit or ids.shape[1], continuation=continuation)
    return [np.squeeze(value.numpy()) if len(ids) == 1 else value.numpy() for value in outputs]


def test_masking_draws_bert_s_shares_and_never_touches_special_tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(100, 1000, size=200_000).astype(np.int32)
    special = rng.random(len(ids)) < 0.2
    ids[special] = 2  # A special token: not a candidate.
    labels = np.where(special, IGNORED, ids)
    new_ids, new_labels, chosen = masked(ids, labels)

    np.testing.assert_array_equal(chosen, new_labels != IGNORED)
    chosen = chosen.astype(bool)
    assert not chosen[special].any() and (new_ids[special] == 2).all()
    assert abs(chosen.sum() / (~special).sum() - 0.15) < 0.005
    np.testing.assert_array_equal(new_labels[chosen], ids[chosen])  # Labels are the original tokens.
    np.testing.assert_array_equal(new_ids[~chosen], ids[~chosen])  # Only chosen tokens change.
    became_mask = (new_ids[chosen] == 4).mean()
    kept = (new_ids[chosen] == ids[chosen]).mean()
    assert abs(became_mask - 0.8) < 0.01 and abs(kept - 0.1) < 0.01
    assert abs(1 - became_mask - kept - 0.1) < 0.01  # Random tokens (rarely equal to the original).

    again_ids, again_labels, _ = masked(ids, labels)
    np.testing.assert_array_equal(again_ids, new_ids)
    np.testing.assert_array_equal(again_labels, new_labels)
    other_ids, _, _ = masked(ids, labels, seed=(1, 3))
    assert (other_ids != new_ids).mean() > 0.05


def test_whole_word_masking_chooses_all_pieces_of_a_word_together(tmp_path):
    from tfft.tasks.masked_lm import continuation_table

    tokenizer = make_tokenizer("bert", tmp_path)
    words = ["".join(random.Random(i).choices("abcdefghij", k=7)) for i in range(3000)]
    encoded = tokenizer(" ".join(words))["input_ids"]
    ids = np.array(encoded, dtype=np.int32)
    labels = np.where(np.isin(ids, tokenizer.all_special_ids), IGNORED, ids)
    table = continuation_table(tokenizer)
    _, new_labels, _ = masked(ids, labels, continuation=table)

    word_of_token = np.cumsum(~table[ids]) - 1
    chosen = new_labels != IGNORED
    per_word = {}
    for word, hit in zip(word_of_token[1:-1], chosen[1:-1], strict=True):  # [CLS] and [SEP] apart.
        per_word.setdefault(word, set()).add(bool(hit))
    assert all(len(hits) == 1 for hits in per_word.values())  # A word is masked whole or not at all.
    share = np.mean([hits == {True} for hits in per_word.values()])
    assert abs(share - 0.15) < 0.02
    assert max(np.bincount(word_of_token)) > 2  # Words really span several pieces here.


def test_at_most_max_predictions_tokens_a_sequence_are_masked_and_the_rest_stay():
    ids = np.arange(100, 140, dtype=np.int32).reshape(2, 20)
    new_ids, new_labels, chosen = masked(ids, ids, probability=0.6, limit=3)
    assert chosen.sum(axis=1).tolist() == [3, 3]  # About 12 of 20 drawn in each row; the first 3 kept.
    np.testing.assert_array_equal(new_ids[chosen == 0], ids[chosen == 0])
    np.testing.assert_array_equal(new_labels[chosen == 1], ids[chosen == 1])
    assert (new_labels[chosen == 0] == IGNORED).all()


def test_predicted_positions_are_the_marked_ones_in_order():
    import tensorflow as tf

    from tfft.tasks.masked_lm import predicted_positions

    mask = tf.constant([[0, 1, 0, 1, 1, 0], [1, 0, 0, 0, 0, 0]])
    positions = predicted_positions(mask, 3).numpy()
    assert positions[0].tolist() == [1, 3, 4] and positions[1][0] == 0
    assert predicted_positions(mask, 10).shape == (2, 6)  # Never more than the sequence's length.


@pytest.mark.parametrize("family, start_mark", [("bert", ""), ("roberta", "\u0120"), ("albert", "\u2581")])
def test_word_starts_per_tokenizer_kind(family, start_mark, tmp_path):
    from tfft.tasks.masked_lm import continuation_table

    tokenizer = make_tokenizer(family, tmp_path)
    table = continuation_table(tokenizer)
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    assert not table[sorted(special)].any()
    if not start_mark:  # WordPiece marks continuations.
        assert table[vocab["##a"]] and not table[vocab["the"]]
        return
    ordinary = {token: index for token, index in vocab.items() if index not in special}
    starting = [index for token, index in ordinary.items() if token.startswith(start_mark)]
    continuing = [index for token, index in ordinary.items() if not token.startswith(start_mark)]
    assert starting and continuing
    assert not table[starting].any() and table[continuing].all()


def test_training_batches_get_fresh_masks_each_epoch_and_the_same_ones_when_resumed(tmp_path):
    from tfft.data.pipeline import BatchPlan, InMemorySource, epoch_dataset
    from tfft.data.tokenization import load_tokenizer

    folder = make_tiny_checkpoint("bert", tmp_path / "checkpoint")
    task = mlm_task(init_checkpoint=str(folder))
    task.set_tokenizer(load_tokenizer(folder))
    features = task.encode([_example(text) for text in texts(64, 3)], task.tokenizer)
    source = InMemorySource(features, task.feature_specs)
    plan = BatchPlan(global_batch_size=8, seed=5)

    def batches(epoch, skip=0):
        dataset = epoch_dataset(source, plan, epoch, skip, transform=task.training_transform())
        return [(x["input_ids"].numpy(), x["prediction_mask"].numpy(), y.numpy()) for x, y in dataset]

    first, second = batches(0), batches(1)
    assert len(first) == len(second) == -(-len(features) // 8)
    original = {tuple(row[row > 0]) for row in _rows(features)}  # Every sequence, unmasked.
    chosen, real = 0, 0
    for ids, marked, labels in first:
        assert labels.shape == (len(ids), min(task.max_predictions, ids.shape[1]))
        for row_ids, row_marked, row_labels in zip(ids, marked, labels, strict=True):
            predicted = row_labels[row_labels != IGNORED]
            assert len(predicted) == row_marked.sum() <= task.max_predictions
            restored = row_ids.copy()
            restored[row_marked == 1] = predicted  # The labels, in order, are the marked tokens.
            assert tuple(restored[restored > 0]) in original
            chosen += len(predicted)
            real += int((row_ids > 4).sum())
    assert 0.08 < chosen / real < 0.25
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    resumed = batches(0, skip=3)
    for before, after in zip(first[3:], resumed, strict=True):
        for a, b in zip(before, after, strict=True):
            np.testing.assert_array_equal(a, b)


def _rows(features):
    return np.split(features.columns["input_ids"], np.cumsum(features.lengths)[:-1])


def _example(text, labeled=True):
    from tfft.tasks.masked_lm import TextExample

    return TextExample(text, "test", labeled)


# --- text into blocks ---------------------------------------------------------------------


def test_documents_are_joined_with_separators_and_cut_into_full_blocks(tmp_path):
    from tfft.data.tokenization import load_tokenizer

    folder = make_tiny_checkpoint("bert", tmp_path / "checkpoint")
    tokenizer = load_tokenizer(folder)
    documents = texts(30, 4)
    task = mlm_task(init_checkpoint=str(folder))
    task.set_tokenizer(tokenizer)
    features = task.encode([_example(text) for text in documents], tokenizer)
    rows = np.split(features.columns["input_ids"], np.cumsum(features.lengths)[:-1])
    assert (features.lengths[:-1] == 16).all() and features.lengths[-1] <= 16
    assert all(row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id for row in rows)
    stream = [token for row in rows for token in row[1:-1]]
    expected = [t for text in documents for t in [*tokenizer(text, add_special_tokens=False)["input_ids"],
                                                  tokenizer.sep_token_id]][:-1]
    assert stream == expected  # Every token once, documents apart by [SEP].
    labels = features.labels
    assert ((labels == IGNORED) == np.isin(features.columns["input_ids"], tokenizer.all_special_ids)).all()

    by_line = mlm_task(init_checkpoint=str(folder), line_by_line=True)
    by_line.set_tokenizer(tokenizer)
    lines = by_line.encode([_example(text) for text in documents], tokenizer)
    assert len(lines) == len(documents)
    first = tokenizer(documents[0], truncation=True, max_length=16)["input_ids"]
    assert lines.columns["input_ids"][:lines.lengths[0]].tolist() == first


def test_text_files_jsonl_and_blank_line_documents_are_read(tmp_path):
    from tfft.config import DataConfig
    from tfft.errors import TfftError

    (tmp_path / "lines.txt").write_text("first doc\r\n\nsecond doc\n")
    (tmp_path / "paragraphs.txt").write_text("a first line\nof one doc\n\n\nthe second\n")
    (tmp_path / "docs.jsonl").write_text('{"body": "one"}\n{"body": ""}\n{"body": "two"}\n')
    (tmp_path / "bad.jsonl").write_text('{"body": 3}\n')

    def read(name, **settings):
        examples = mlm_task(**settings).read_examples(DataConfig(str(tmp_path / name)))
        return [(example.text, example.where) for example in examples]

    lines = f"{tmp_path}/lines.txt"
    assert read("lines.txt") == [("first doc", f"{lines}:1"), ("second doc", f"{lines}:3")]
    assert [t for t, _ in read("paragraphs.txt")] == ["a first line", "of one doc", "the second"]
    assert [t for t, _ in read("paragraphs.txt", document_separator="blank_line")] == [
        "a first line of one doc", "the second"]
    assert [t for t, _ in read("docs.jsonl", text_field="body")] == ["one", "two"]
    with pytest.raises(TfftError, match=r"docs.jsonl:1: no field 'text' \(fields: body\); set task.text_fie"):
        read("docs.jsonl")
    with pytest.raises(TfftError, match=r"bad.jsonl:1: field 'body' holds int, not text"):
        read("bad.jsonl", text_field="body")


def test_the_config_s_tfds_text_datasets_are_read():
    import tensorflow_datasets as tfds

    from tfft.config import build_config
    from tfft.tasks import get_task

    config = build_config([str(REPO / "configs" / "pretraining" / "mlm.yaml")])
    task = get_task(config.task)
    with tfds.testing.mock_data(num_examples=6):
        train = task.read_examples(config.task.train_data)
        validation = task.read_examples(config.task.validation_data)
    assert config.task.train_data.input_path == "tfds:imdb_reviews/plain_text/unsupervised"
    assert len(train) == 6 and len(validation) == 6
    assert all(isinstance(example.text, str) and example.text for example in train + validation)
    assert train[0].where == "tfds:imdb_reviews/plain_text/unsupervised:1"


# --- heads against PyTorch --------------------------------------------------------------------


def torch_mlm_logits(folder, batch):
    import torch
    import transformers

    model = transformers.AutoModelForMaskedLM.from_pretrained(str(folder)).eval()
    inputs = {name: torch.tensor(value, dtype=torch.long) for name, value in batch.items()}
    if model.config.model_type == "distilbert":
        inputs.pop("token_type_ids")
    with torch.no_grad():
        return model(**inputs).logits.numpy(), model


def batch_of(tokenizer, sentences):
    encoded = tokenizer(sentences, padding=True, return_token_type_ids=True, return_tensors="np")
    names = ("input_ids", "token_type_ids", "attention_mask")
    return {name: encoded[name].astype(np.int32) for name in names}


def predict_everywhere(batch):
    """The batch with every real position marked for prediction (the head's output: one per position)."""
    return {**batch, "prediction_mask": batch["attention_mask"]}


SENTENCES = ["the movie was good", "a dog plays guitar with the cat and it is fun !"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_pretrained_head_loads_and_the_trained_one_exports_with_pytorch_logits(family, tmp_path, corpus):
    from tfft import modeling
    from tfft.tasks import get_task

    checkpoint = make_tiny_checkpoint(family, tmp_path / "checkpoint", head="ForMaskedLM")
    task = mlm_task(init_checkpoint=str(checkpoint), max_predictions=64)
    modeling.set_precision("float32")
    pretrained, tokenizer = modeling.load_pretrained(task)
    model, _ = modeling.build_task_model(task, pretrained.config(), pretrained, len(tokenizer))
    batch = batch_of(tokenizer, SENTENCES)
    real = batch["attention_mask"].astype(bool)
    theirs, _ = torch_mlm_logits(checkpoint, batch)
    ours = np.asarray(model(predict_everywhere(batch), training=False))
    assert np.abs(ours - theirs)[real].max() <= 1e-4

    model_dir = tmp_path / "run"
    run_train(f"--model_dir={model_dir}",
              f"--params_override=task.type=masked_lm,task.init_checkpoint={checkpoint},"
              f"task.train_data.input_path={corpus / 'train.txt'},task.validation_data.input_path="
              f"{corpus / 'dev.txt'},task.max_seq_length=32,trainer.epochs=1,trainer.learning_rate=1e-2,"
              "trainer.lr_reference_width=0,task.max_predictions=64")
    run_export("--format=hf", f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'hf'}")
    task = get_task(modeling.load_run_config(model_dir).task)
    restored, _, _ = modeling.restore_task_model(model_dir, task)
    trained = np.asarray(restored(predict_everywhere(batch), training=False))
    assert np.abs(trained - ours)[real].max() > 1e-2  # Training moved the weights.
    exported, exported_model = torch_mlm_logits(tmp_path / "hf", batch)
    assert type(exported_model).__name__.endswith("ForMaskedLM")
    assert np.abs(trained - exported)[real].max() <= 1e-4


def test_a_base_checkpoint_starts_the_head_fresh_with_a_warning(tmp_path, caplog):
    from tfft import modeling

    # A discriminator: ElectraForMaskedLM's head is the generator's, which it lacks.
    checkpoint = make_tiny_checkpoint("electra", tmp_path / "checkpoint")
    task = mlm_task(init_checkpoint=str(checkpoint))
    pretrained, tokenizer = modeling.load_pretrained(task)
    with caplog.at_level("WARNING"):
        modeling.build_task_model(task, pretrained.config(), pretrained, len(tokenizer))
    assert "has no masked-LM head (generator_predictions.dense.weight); it starts untrained" in caplog.text


# --- runs --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory, corpus):
    """A masked-LM run on a tiny BERT with its head, evaluated before training in its own model_dir."""
    folder = tmp_path_factory.mktemp("mlm_run")
    checkpoint = make_tiny_checkpoint("bert", folder / "checkpoint", head="ForMaskedLM")
    overrides = (f"--params_override=task.type=masked_lm,task.init_checkpoint={checkpoint},"
                 f"task.train_data.input_path={corpus / 'train.txt'},task.validation_data.input_path="
                 f"{corpus / 'dev.txt'},task.predict_data.input_path={corpus / 'predict.txt'},"
                 "task.max_seq_length=32,trainer.epochs=3,trainer.learning_rate=5e-3,trainer.lr_reference_width=0,"
                 "task.whole_word_masking=true")
    before = run_train(f"--model_dir={folder / 'before'}", "--mode=eval",
                       "--config_file=configs/pretraining/mlm.yaml", overrides).results
    after = run_train(f"--model_dir={folder / 'run'}", "--config_file=configs/pretraining/mlm.yaml",
                      overrides).results
    return folder, checkpoint, before, after


def test_eval_of_a_fresh_model_dir_scores_the_starting_checkpoint_and_training_lowers_perplexity(mlm_run):
    folder, checkpoint, before, after = mlm_run
    assert set(before) >= {"loss", "perplexity", "accuracy"}
    assert before["checkpoint"] == str(checkpoint)
    assert json.loads((folder / "before" / "eval_results.json").read_text())["loss"] == before["loss"]
    assert before["num_examples"] == after["num_examples"]  # The same masked validation blocks.
    assert after["perplexity"] < 0.7 * before["perplexity"]
    assert after["perplexity"] == pytest.approx(np.exp(after["loss"]))
    assert after["accuracy"] > before["accuracy"]


def test_predict_fills_each_mask_with_the_top_k_tokens(mlm_run):
    folder = mlm_run[0]
    run_train(f"--model_dir={folder / 'run'}", "--mode=predict")
    rows = [json.loads(line) for line in (folder / "run" / "predictions.jsonl").read_text().splitlines()]
    assert [row["text"] for row in rows] == ["the [MASK] is good", "it was a [MASK] [MASK] .", "no mask here"]
    assert [len(row["masks"]) for row in rows] == [1, 2, 0]
    options = rows[1]["masks"][0]
    assert len(options) == 5 and all(set(o) == {"token", "token_id", "score"} for o in options)
    scores = [option["score"] for option in options]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    assert rows[1]["filled"] == f"it was a {options[0]['token']} {rows[1]['masks'][1][0]['token']} ."
    assert rows[2]["filled"] == "no mask here"


def test_the_mlm_model_dir_starts_another_task_with_its_encoder(mlm_run, tmp_path):
    from conftest import restored_model, write_sentiment_tsv

    from tfft import backbones

    folder = mlm_run[0]
    mlm_model, _ = restored_model(folder / "run")
    mlm_backbone = next(layer for layer in mlm_model.layers if layer.name.endswith("backbone"))
    started = backbones.from_pretrained(str(folder / "run"))
    for ours, theirs in zip(mlm_backbone.weights, started.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))

    train = write_sentiment_tsv(tmp_path / "train.tsv", 32, seed=1)
    run = run_train(f"--model_dir={tmp_path / 'sst'}", "--config_file=configs/glue/sst2.yaml",
                    f"--params_override=task.init_checkpoint={folder / 'run'},task.train_data.input_path="
                    f"{train},task.validation_data.input_path={train},task.max_seq_length=32,trainer.epochs=1")
    assert set(run.results) >= {"accuracy", "f1"}  # A sentence classifier, trained from the MLM encoder.
    vocab = "assets/vocab.txt"
    assert (tmp_path / "sst" / vocab).read_text() == (folder / "run" / vocab).read_text()
