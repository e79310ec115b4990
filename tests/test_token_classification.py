"""Token classification: CoNLL/JSONL reading, sub-word windows, training, predict and export."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import random
import re

import numpy as np
import pytest
from conftest import SHARED_DATA, check_export, run_export, run_predict, run_train, saved_model_cli_run
from test_cli_errors import assert_one_line_error

from tfft.config import DataConfig, task_config
from tfft.data.sources import read_records
from tfft.errors import TfftError
from tfft.tasks import get_task

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def write_conll(path, sentences) -> str:
    """Writes ``[(words, tags), ...]`` as CoNLL-2003 columns (token POS chunk NER)."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in sentences:
        lines += [f"{word} NN I-NP {tag}" for word, tag in zip(words, tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def synthetic_sentences(count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    """Learnable tags: 'man'/'woman' are persons, 'dog cat' is an organisation."""
    rng = random.Random(seed)
    fillers = ["the", "a", "movie", "is", "good", "plays", "guitar", "with", "on", "great"]
    sentences = []
    for _ in range(count):
        words, tags = [], []
        for _ in range(rng.randint(3, 9)):
            choice = rng.random()
            if choice < 0.15:
                words.append(rng.choice(["man", "woman"]))
                tags.append("B-PER")
            elif choice < 0.25:
                words += ["dog", "cat"]
                tags += ["B-ORG", "I-ORG"]
            else:
                words.append(rng.choice(fillers))
                tags.append("O")
        sentences.append((words, tags))
    return sentences


def token_config(**values):
    settings = {"max_seq_length": 32, "text_fields": ["tokens"], "label_field": "tags"}
    return task_config("token_classification", **{**settings, **values})


@pytest.fixture(scope="module")
def ner_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner")
    return (write_conll(folder / "train.conll", synthetic_sentences(320, 1)),
            write_conll(folder / "dev.conll", synthetic_sentences(64, 2)))


# --- reading -------------------------------------------------------------------------------


def test_conll_reader_splits_sentences_and_skips_docstart(tmp_path):
    path = write_conll(tmp_path / "a.conll", [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])])
    records = read_records(path)
    assert [r.fields["tokens"] for r in records] == [["EU", "rejects"], ["Peter"]]
    assert records[0].fields["columns"][-1] == ["B-ORG", "O"]
    assert records[1].where.endswith("a.conll:6")


def test_conll_line_with_wrong_column_count_names_file_and_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n")
    with pytest.raises(TfftError, match=rf"{re.escape(str(path))}:2: expected 4 columns as on the first "
                                        r"token line, found 3"):
        read_records(str(path))


def test_real_conll2003_test_split():
    records = read_records(str(SHARED_DATA / "conll2003" / "test.txt"), "conll")
    assert len(records) == 3453
    assert records[0].fields["tokens"][:3] == ["SOCCER", "-", "JAPAN"]


def test_txt_files_are_read_as_conll_without_a_format(tmp_path):
    # CoNLL-2003, WNUT and OntoNotes' CoNLL conversions ship .txt files.
    real = DataConfig(input_path=str(SHARED_DATA / "conll2003" / "test.txt"), max_examples=50)
    task = get_task(token_config(label_list=["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC",
                                             "B-MISC", "I-MISC"]))
    examples = task.read_examples(real)
    assert examples == task.read_examples(dataclasses.replace(real, format="conll"))
    assert examples[0].words[:3] == ("SOCCER", "-", "JAPAN") and len(examples) == 50
    sentences = [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    plain = write_conll(tmp_path / "train.conll", sentences)
    (tmp_path / "train.txt.gz").write_bytes(gzip.compress((tmp_path / "train.conll").read_bytes()))
    task = get_task(token_config(label_list=TAGS))
    compressed = task.read_examples(DataConfig(input_path=str(tmp_path / "train.txt.gz")))
    expected = task.read_examples(DataConfig(input_path=plain))
    assert [(e.words, e.tags) for e in compressed] == [(e.words, e.tags) for e in expected]
    # A declared format still wins.
    jsonl = tmp_path / "sentences.txt"
    jsonl.write_text(json.dumps({"tokens": ["Peter"], "tags": ["B-PER"]}) + "\n")
    assert task.read_examples(DataConfig(input_path=str(jsonl), format="jsonl"))[0].tags == ("B-PER",)


def test_tag_list_from_training_data_puts_o_first(ner_data):
    task = get_task(token_config())
    examples = task.read_examples(DataConfig(input_path=ner_data[0]))
    task.prepare(examples)
    assert task.label_names == ["O", "B-ORG", "I-ORG", "B-PER"]
    assert task.config.num_labels == 4


def test_unknown_tag_is_an_error(tmp_path):
    path = write_conll(tmp_path / "t.conll", [(["Peter"], ["B-PER"]), (["Bonn"], ["B-GPE"])])
    task = get_task(token_config(label_list=TAGS))
    with pytest.raises(TfftError, match=r"t\.conll:5: tag 'B-GPE' is not in task\.label_list"):
        task.read_examples(DataConfig(input_path=path))


def test_malformed_tag_is_an_error(tmp_path):
    path = write_conll(tmp_path / "t.conll", [(["Peter"], ["PER"])])
    with pytest.raises(TfftError, match=r"t\.conll:3: .*PER.*tags look like O, B-PER"):
        get_task(token_config()).read_examples(DataConfig(input_path=path))


def test_empty_sentence_and_tag_count_mismatch_in_jsonl(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [], "tags": []}\n')
    task = get_task(token_config())
    with pytest.raises(TfftError, match=r"t\.jsonl:2: sentence has no tokens"):
        task.read_examples(DataConfig(input_path=str(path)))
    path.write_text('{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(TfftError, match=r"t\.jsonl:1: 2 tokens but 1 tags; give one tag per token"):
        task.read_examples(DataConfig(input_path=str(path)))


def test_integer_tags_as_tfds_gives_them_map_through_the_label_list(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"tokens": ["Peter", "Blackburn"], "ner": [1, 2]}\n{"tokens": ["x"], "ner": [9]}\n')
    task = get_task(token_config(label_list=TAGS, label_field="ner"))
    examples = task.read_examples(DataConfig(input_path=str(path), max_examples=1))
    assert examples[0].tags == ("B-PER", "I-PER")
    with pytest.raises(TfftError, match=r"t\.jsonl:2: integer tag 9 is out of range for the 5 tags of "):
        task.read_examples(DataConfig(input_path=str(path)))
    with pytest.raises(TfftError, match=r"t\.jsonl:1: integer tag 1 needs task\.label_list with the tag "):
        get_task(token_config(label_field="ner")).read_examples(DataConfig(input_path=str(path)))


def test_inconsistent_training_tags_warn(tmp_path, caplog):
    path = write_conll(tmp_path / "t.conll", [(["the", "Peter"], ["O", "I-PER"]), (["a"], ["O"])])
    task = get_task(token_config())
    with caplog.at_level(logging.WARNING):
        task.prepare(task.read_examples(DataConfig(input_path=path)))
    assert re.search(r"1 training sentences have tags inconsistent with task\.tag_scheme=iob2, e\.g\. "
                     r".*t\.conll:3: 'I-PER' at token 2", caplog.text)


# --- encoding --------------------------------------------------------------------------------


def test_long_sentences_become_windows_that_cover_every_word(tiny_bert, tmp_path):
    from tfft.data.tokenization import load_tokenizer

    words = ["the", "woman", "plays", "guitar"] * 10  # 40 words, 42+ sub-words.
    task = get_task(token_config(max_seq_length=12, label_list=TAGS))
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"tokens": words, "tags": ["O", "B-PER", "O", "O"] * 10}) + "\n")
    examples = task.read_examples(DataConfig(input_path=str(path)))
    features = task.encode(examples, load_tokenizer(tiny_bert))
    # One word is one sub-word here: 10 words + [CLS] + [SEP] per window.
    np.testing.assert_array_equal(features.lengths, [12, 12, 12, 12])
    assert set(features.example_index.tolist()) == {0}
    starts = features.extras["word_index"][features.extras["word_index"] >= 0]
    np.testing.assert_array_equal(starts, np.arange(40))  # Every word once, in order.
    labelled = features.labels[features.extras["word_index"] >= 0]
    np.testing.assert_array_equal(labelled, [0, 1, 0, 0] * 10)
    assert (features.labels[features.extras["word_index"] < 0] == -100).all()


def test_a_word_the_tokenizer_drops_still_gets_a_position(tiny_bert, tmp_path):
    from tfft.data.tokenization import load_tokenizer

    path = tmp_path / "zw.jsonl"
    path.write_text(json.dumps({"tokens": ["the", "\u200b", "man"], "tags": ["O", "B-PER", "I-PER"]}) + "\n")
    task = get_task(token_config(label_list=TAGS))
    features = task.encode(task.read_examples(DataConfig(input_path=str(path))), load_tokenizer(tiny_bert))
    words = features.extras["word_index"]
    np.testing.assert_array_equal(words[words >= 0], [0, 1, 2])
    np.testing.assert_array_equal(features.labels[words >= 0], [0, 1, 2])


# --- end to end ------------------------------------------------------------------------------


def overrides(checkpoint, data, **extra) -> str:
    settings = {
        "task.init_checkpoint": checkpoint, "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1], "task.label_list": "[" + ",".join(TAGS) + "]",
        "task.num_labels": len(TAGS), "task.max_seq_length": 32, "trainer.epochs": 4,
        "trainer.train_batch_size": 16, "trainer.learning_rate": 2e-3, **extra,
    }
    return ",".join(f"{key}={value}" for key, value in settings.items())


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, tiny_bert, ner_data):
    model_dir = tmp_path_factory.mktemp("ner_run") / "model"
    run_train("--config_file=configs/ner/conll2003.yaml", f"--model_dir={model_dir}",
              f"--params_override={overrides(tiny_bert, ner_data)}")
    return model_dir


@pytest.fixture(scope="module")
def ner_export(ner_run, tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("ner_export") / "1"
    run_export(f"--model_dir={ner_run}", f"--export_dir={export_dir}")
    return export_dir


def test_training_learns_entities(ner_run):
    results = json.loads((ner_run / "eval_results.json").read_text())
    assert {"loss", "f1", "precision", "recall", "accuracy", "f1_PER", "f1_ORG"} <= set(results)
    assert results["f1"] > 0.9 and results["accuracy"] > 0.95
    assert (ner_run / "assets" / "labels.txt").read_text().split() == TAGS


def test_predict_writes_word_level_tags_as_jsonl_and_conll(ner_run, ner_data):
    run_train(f"--model_dir={ner_run}", "--mode=predict")
    rows = [json.loads(line) for line in (ner_run / "predictions.jsonl").read_text().splitlines()]
    gold = [r.fields for r in read_records(ner_data[1])]
    assert len(rows) == len(gold) == 64
    assert all(row["tokens"] == g["tokens"] and len(row["tags"]) == len(g["tokens"])
               for row, g in zip(rows, gold, strict=True))
    run_train(f"--model_dir={ner_run}", "--mode=predict", "--output_format=conll")
    conll = read_records(str(ner_run / "predictions.conll"), "conll")
    assert [r.fields["tokens"] for r in conll] == [row["tokens"] for row in rows]
    assert [r.fields["columns"][1] for r in conll] == [row["tags"] for row in rows]


def test_python_api_tags_texts_and_word_lists_from_the_run_and_its_export(ner_run, ner_data, ner_export):
    import tfft

    sentences = [list(record.fields["tokens"]) for record in read_records(ner_data[1])][:16]
    from_run = tfft.predict(ner_run, [" ".join(words) for words in sentences])
    from_export = tfft.predict(ner_export, sentences)  # Word lists.
    assert from_run == from_export
    assert [row["tokens"] for row in from_run] == sentences
    assert len({tag for row in from_run for tag in row["tags"]}) > 2  # Entities were tagged.
    assert tfft.predict(ner_export, " ".join(sentences[0])) == from_run[0]


def test_conll_output_for_a_sentence_task_is_refused(tmp_path, tiny_bert):
    from conftest import write_sentiment_tsv

    data = write_sentiment_tsv(tmp_path / "train.tsv", 32)
    model_dir = tmp_path / "model"
    run_train("--config_file=configs/glue/sst2.yaml", f"--model_dir={model_dir}",
              f"--params_override=task.init_checkpoint={tiny_bert},task.train_data.input_path={data},"
              f"task.validation_data.input_path={data},trainer.epochs=1,task.max_seq_length=32")
    process = run_train(f"--model_dir={model_dir}", "--mode=predict", "--output_format=conll", check=False)
    assert_one_line_error(process, "tfft-train", r"--output_format=conll is not available for task "
                                                 r"'sentence_classification'; choose one of jsonl")


def test_saved_model_tags_raw_text_as_predict_mode_does(ner_run, ner_data, ner_export, tmp_path):
    """serving_default on whitespace-separated words: the same tags as --mode=predict, long
    sentences windowed as in training, a word the tokenizer drops still tagged; tfft-predict
    writes the rows of --mode=predict."""
    import tensorflow as tf

    sentences = [list(record.fields["tokens"]) for record in read_records(ner_data[1])]
    sentences += [["the", "woman", "plays", "guitar"] * 12, ["the", "\u200b", "man"]]  # 48 words > 32 tokens
    data = tmp_path / "predict.jsonl"
    data.write_text("".join(json.dumps({"tokens": words}) + "\n" for words in sentences))
    run_train(f"--model_dir={ner_run}", "--mode=predict",
              f"--params_override=task.predict_data.input_path={data}")
    rows = [json.loads(line) for line in (ner_run / "predictions.jsonl").read_text().splitlines()]
    expected = [row["tags"] for row in rows]

    export_dir = ner_export
    signatures = tf.saved_model.load(str(export_dir)).signatures
    outputs = signatures["serving_default"](text=tf.constant([" ".join(words) for words in sentences]))
    words = [[w.decode() for w in row if w] for row in outputs["words"].numpy().tolist()]
    tags = [[tag.decode() for tag in row[:len(row_words)]]
            for row, row_words in zip(outputs["tags"].numpy().tolist(), words, strict=True)]
    assert words == sentences
    assert tags == expected
    served = saved_model_cli_run(export_dir, {"text": [" ".join(words) for words in sentences[:3]]}, tmp_path)
    assert served["tags"].tolist() == outputs["tags"].numpy()[:3, :served["tags"].shape[1]].tolist()

    ids = tf.constant([[2, 5, 6, 7, 3]], tf.int32)
    by_ids = signatures["serve_token_ids"](input_ids=ids, token_type_ids=tf.zeros_like(ids),
                                          attention_mask=tf.ones_like(ids))
    assert by_ids["logits"].shape == (1, 5, len(TAGS)) and by_ids["tag_ids"].dtype == tf.int32
    np.testing.assert_array_equal(by_ids["tag_ids"], np.argmax(by_ids["logits"], axis=-1))
    assert (export_dir / "assets" / "labels.txt").read_text().split() == TAGS

    output = tmp_path / "served.jsonl"
    run = run_predict(f"--export_dir={export_dir}", f"--input_path={data}", f"--output_path={output}",
                      "--batch_size=8")
    assert run.stdout.startswith(f"wrote {len(sentences)} predictions to {output}")
    assert [json.loads(line) for line in output.read_text().splitlines()] == rows


def test_hf_export_is_a_token_classifier_with_the_same_logits(ner_run, tmp_path):
    import torch
    import transformers
    from test_hf_export import tfft_outputs

    export_dir = tmp_path / "hf"
    run_export("--format=hf", f"--model_dir={ner_run}", f"--export_dir={export_dir}")
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(export_dir)).eval()
    assert type(model).__name__ == "BertForTokenClassification"
    assert [model.config.id2label[i] for i in range(len(TAGS))] == TAGS
    ours, batch = tfft_outputs(ner_run, ["the man plays guitar", "dog cat is great ! really"])
    with torch.no_grad():
        theirs = model(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}).logits.numpy()
    real = batch["attention_mask"].astype(bool)
    assert np.abs(ours[real] - theirs[real]).max() <= 1e-4


def test_check_export_reproduces_entity_f1_with_tensorflow_alone(ner_run, ner_data, ner_export, tmp_path):
    """tools/check_export.py on the CoNLL dev set: the run's f1 from raw text, nothing but
    TensorFlow imported; the same from JSONL with integer tags; and a wrong answer key fails."""
    export_dir = ner_export
    report = check_export(ner_run, export_dir)
    assert report["task"] == "token_classification" and report["metric"] == "f1"
    assert report["examples"] == 64 and report["eval_results"] > 0.9
    assert report["saved_model"] == pytest.approx(report["eval_results"], abs=1e-9)
    assert sorted(report["compared"]) == ["accuracy", "f1", "precision", "recall"]
    assert not any(report["imported"].values()), report["imported"]

    sentences = [(r.fields["tokens"], r.fields["columns"][-1]) for r in read_records(ner_data[1])]
    jsonl = tmp_path / "dev.jsonl"  # The config's TFDS-style fields: tokens and integer "ner" tags.
    jsonl.write_text("".join(json.dumps({"tokens": words, "ner": [TAGS.index(t) for t in tags]}) + "\n"
                             for words, tags in sentences))
    again = check_export(ner_run, export_dir, f"--input_path={jsonl}")
    assert again["compared"] == report["compared"]

    swapped = {"B-PER": "B-ORG", "B-ORG": "B-PER", "I-ORG": "I-PER", "I-PER": "I-ORG", "O": "O"}
    wrong = write_conll(tmp_path / "wrong.conll",
                        [(words, [swapped[tag] for tag in tags]) for words, tags in sentences])
    process = check_export(ner_run, export_dir, f"--input_path={wrong}", check=False)
    assert process.returncode != 0
    error = process.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"check_export: f1 [0-9.e-]+ differs from eval_results\.json [0-9.]+; "
                        r".*\(tolerance 1e-06\)", error), process.stderr[-2000:]


# --- other tag schemes and sub-word labels ------------------------------------------------------------


def to_scheme(tags: list[str], scheme: str) -> list[str]:
    """IOB2 tags re-written in IOB1 (I- starts an entity; B- only after one of its type) or BIOES."""
    out = []
    for index, tag in enumerate(tags):
        kind, _, name = tag.partition("-")
        following = tags[index + 1] if index + 1 < len(tags) else "O"
        continues = following == f"I-{name}"
        if tag == "O":
            out.append(tag)
        elif scheme == "iob1":
            previous = tags[index - 1] if index else "O"
            adjacent = kind == "B" and previous.partition("-")[2] == name
            out.append(f"B-{name}" if adjacent else f"I-{name}")
        elif kind == "B":
            out.append(f"B-{name}" if continues else f"S-{name}")
        else:
            out.append(f"I-{name}" if continues else f"E-{name}")
    return out


SCHEME_TAGS = {"iob1": ["O", "I-PER", "B-PER", "I-ORG", "B-ORG"],
               "bioes": ["O", "S-PER", "B-ORG", "E-ORG", "B-PER", "I-PER", "E-PER", "I-ORG", "S-ORG"]}


@pytest.mark.parametrize("scheme", ["iob1", "bioes"])
def test_training_on_iob1_and_bioes_tags_learns_and_predicts_in_that_scheme(scheme, tiny_bert, tmp_path):
    def write(split: str, count: int, seed: int) -> str:
        sentences = [(words, to_scheme(tags, scheme)) for words, tags in synthetic_sentences(count, seed)]
        return write_conll(tmp_path / f"{split}.conll", sentences)

    train, dev = write("train", 320, 1), write("dev", 64, 2)
    model_dir = tmp_path / "model"
    settings = overrides(tiny_bert, (train, dev), **{
        "task.label_list": "[" + ",".join(SCHEME_TAGS[scheme]) + "]",
        "task.num_labels": len(SCHEME_TAGS[scheme]), "task.tag_scheme": scheme})
    run = run_train("--config_file=configs/ner/conll2003.yaml", f"--model_dir={model_dir}",
                    f"--params_override={settings}")
    assert "inconsistent with task.tag_scheme" not in run.stderr
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["f1"] > 0.8 and {"f1_PER", "f1_ORG"} <= set(results)
    run_train(f"--model_dir={model_dir}", "--mode=predict", "--output_format=conll")
    predicted = {tag for r in read_records(str(model_dir / "predictions.conll"), "conll")
                 for tag in r.fields["columns"][1]}
    # Tags as the scheme writes them: one-word persons are I-PER in IOB1 and S-PER in BIOES.
    distinctive = {"iob1": {"I-PER", "I-ORG"}, "bioes": {"S-PER", "B-ORG", "E-ORG"}}[scheme]
    assert distinctive <= predicted <= set(SCHEME_TAGS[scheme])


def test_label_all_subwords_labels_every_piece_of_a_word(tiny_bert, tmp_path):
    from tfft.data.features import IGNORED_LABEL
    from tfft.modeling import load_pretrained

    words = ["guitar", "plays", "unbelievably", "well"]
    path = write_conll(tmp_path / "train.conll", [(words, ["B-PER", "O", "B-ORG", "I-ORG"])])
    labelled = {}
    for every in (False, True):
        task = get_task(token_config(label_list=TAGS, num_labels=len(TAGS), init_checkpoint=str(tiny_bert),
                                     label_all_subwords=every))
        _, tokenizer = load_pretrained(task)
        examples = task.read_examples(DataConfig(input_path=path))
        features = task.encode(examples, tokenizer)
        labels = features.labels  # one sentence: its row
        word_ids = [word for word in tokenizer(words, is_split_into_words=True).word_ids()
                    if word is not None]
        pieces = [word_ids.count(index) for index in range(len(words))]
        assert sum(pieces) > len(words)  # some word is cut into several sub-words
        labelled[every] = [int(label) for label in labels if label != IGNORED_LABEL]
        assert len(labelled[every]) == (sum(pieces) if every else len(words))
    tag_ids = [TAGS.index(tag) for tag in ["B-PER", "O", "B-ORG", "I-ORG"]]
    assert labelled[False] == tag_ids
    assert labelled[True] == [tag for tag, count in zip(tag_ids, pieces, strict=True) for _ in range(count)]
