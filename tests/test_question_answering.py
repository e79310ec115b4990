"""Extractive question answering: SQuAD reading, windows, post-processing, training and export."""

from __future__ import annotations

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
from tfft.tasks.question_answering import QuestionAnswering
from tfft.tasks.squad_metrics import normalize_answer

SQUAD_FILE = SHARED_DATA / "squad" / "dev-v1.1-minus-xquad.json"
FILLERS = "the movie film plot story acting is was very this and not on in of to with".split()
ANSWERS = ("cat", "dog", "great guitar")
QUESTION = "what is in it ?"


def squad_document(questions: list[dict], version: str = "1.1") -> dict:
    """A SQuAD document with one paragraph per question."""
    paragraphs = [{"context": q.pop("context"), "qas": [q]} for q in questions]
    return {"version": version, "data": [{"title": "synthetic", "paragraphs": paragraphs}]}


def synthetic_questions(count: int, seed: int, words: tuple[int, int] = (5, 30),
                        impossible: float = 0.0) -> list[dict]:
    """Contexts of filler words holding exactly one answer phrase (or none, if impossible)."""
    rng = random.Random(seed)
    questions = []
    for index in range(count):
        context = [rng.choice(FILLERS) for _ in range(rng.randint(*words))]
        qa = {"id": f"q{seed}-{index}", "question": QUESTION, "answers": []}
        if rng.random() >= impossible:
            answer, position = rng.choice(ANSWERS), rng.randint(0, len(context))
            start = len(" ".join(context[:position])) + (1 if position else 0)
            context.insert(position, answer)
            qa["answers"] = [{"text": answer, "answer_start": start}]
        else:
            qa["is_impossible"] = True
        questions.append({"context": " ".join(context), **qa})
    return questions


def write_squad(path, questions, version: str = "1.1") -> str:
    path.write_text(json.dumps(squad_document([dict(q) for q in questions], version)))
    return str(path)


def task(**values) -> QuestionAnswering:
    settings = {"task_type": "question_answering", "max_seq_length": 48, "doc_stride": 16,
                "max_query_length": 16, **values}
    return QuestionAnswering(task_config(**settings))


def read(qa: QuestionAnswering, path, labeled: bool = True):
    return qa.read_examples(DataConfig(input_path=str(path)), labeled=labeled)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    from tfft.data.tokenization import load_tokenizer

    return load_tokenizer(tiny_bert)


# --- reading ---------------------------------------------------------------------------------


def test_squad_json_gives_one_record_per_question_with_its_position(tmp_path):
    path = write_squad(tmp_path / "squad.json", synthetic_questions(3, 0))
    records = read_records(path)
    assert [r.where for r in records] == [f"{path}:data[0].paragraphs[{i}].qas[0]" for i in range(3)]
    assert {"id", "question", "context", "answers", "title"} <= set(records[0].fields)


def test_real_squad_file_reads_every_question():
    examples = read(task(), SQUAD_FILE)
    assert len(examples) == 9380 and len({e.id for e in examples}) == 9380
    assert all(e.context[a.start:a.start + len(a.text)] == a.text for e in examples for a in e.answers)


def test_tfds_style_answer_lists_in_jsonl(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "who ?", "context": "the cat sat",
                                "answers": {"text": ["cat", "the cat"], "answer_start": [4, 0]}}) + "\n")
    (example,) = read(task(), path)
    assert [(a.text, a.start) for a in example.answers] == [("cat", 4), ("the cat", 0)]


def test_tfds_squad_records_have_plain_answer_lists():
    import tensorflow_datasets as tfds

    spec = "tfds:squad/v1.1/validation"
    with tfds.testing.mock_data(num_examples=3):
        records = read_records(spec)
        examples = read(task(), spec, labeled=False)
    answers = records[0].fields["answers"]
    assert isinstance(answers["text"], list) and all(type(t) is str for t in answers["text"])
    assert all(type(start) is int for start in answers["answer_start"])
    assert [e.id for e in examples] == [r.fields["id"] for r in records] and len(examples) == 3


def test_malformed_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"version": "1.1",\n "data": [{"title": "x", "paragraphs": [}]}')
    message = rf"^{path}:2:41: invalid JSON \(Expecting value, character 59\); fix the file$"
    with pytest.raises(TfftError, match=message):
        read(task(), path)


def test_answer_start_that_does_not_match_is_skipped_and_counted(tmp_path, caplog):
    questions = synthetic_questions(4, 1)
    questions[1]["answers"] = [{"text": questions[1]["answers"][0]["text"], "answer_start": 9999}]
    questions[2]["answers"].append({"text": "zebra", "answer_start": 0})
    path = write_squad(tmp_path / "squad.json", questions)
    with caplog.at_level(logging.WARNING):
        examples = read(task(), path)
    assert [e.id for e in examples] == ["q1-0", "q1-2", "q1-3"]
    assert len(examples[1].answers) == 1
    message = caplog.records[-1].getMessage()
    assert "skipped 2 answers whose answer_start does not match their text and 1 questions left " \
           "without an answer; first: " in message and "qas[0] (question 'q1-1'" in message


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda q: q.pop("id"), r"question has no 'id'"),
        (lambda q: q.update(question="  "), r"question 'q2-0' has no text in 'question'"),
        (lambda q: q.update(answers=[{"text": "cat"}]), r"question 'q2-0' has a malformed answer"),
        (lambda q: q.update(answers=[]), r"question 'q2-0' has no answer; for SQuAD 2.0 data set "
                                         r"task.version_2_with_negative=true"),
    ],
)
def test_bad_questions_are_errors_naming_the_question(tmp_path, change, pattern):
    questions = synthetic_questions(2, 2)
    change(questions[0])
    path = write_squad(tmp_path / "squad.json", questions)
    with pytest.raises(TfftError, match=rf"^{path}:data\[0\]\.paragraphs\[0\]\.qas\[0\]: {pattern}"):
        read(task(), path)


def test_duplicate_ids_are_an_error(tmp_path):
    questions = synthetic_questions(2, 3)
    questions[1]["id"] = questions[0]["id"]
    path = write_squad(tmp_path / "squad.json", questions)
    with pytest.raises(TfftError, match=r"question id 'q3-0' was already used at .*qas\[0\]; give every"):
        read(task(), path)


def test_v2_questions_without_answers_are_unanswerable(tmp_path):
    questions = synthetic_questions(20, 4, impossible=0.5)
    path = write_squad(tmp_path / "squad.json", questions, version="v2.0")
    examples = read(task(version_2_with_negative=True), path)
    assert sum(e.is_impossible for e in examples) == sum("is_impossible" in q for q in questions) > 0
    assert all(e.labeled for e in examples)


# --- windows ---------------------------------------------------------------------------------


def test_long_contexts_become_windows_covering_every_token_with_answer_labels(tmp_path, tokenizer):
    qa = task()
    examples = read(qa, write_squad(tmp_path / "squad.json", synthetic_questions(40, 5, words=(30, 90))))
    features = qa.encode(examples, tokenizer)
    assert features.lengths.max() <= 48 and len(features) > 2 * len(examples)
    offsets = features.offsets()
    for index, example in enumerate(examples):
        rows = np.nonzero(features.example_index == index)[0]
        covered = np.concatenate([features.extras["word_index"][offsets[r]:offsets[r] + features.lengths[r]]
                                  for r in rows])
        context_tokens = len(tokenizer(example.context, add_special_tokens=False)["input_ids"])
        assert set(covered[covered >= 0]) == set(range(context_tokens))
        holding = 0
        for row in rows:
            start, end = features.labels[row]
            if start == 0:
                assert end == 0
                continue
            holding += 1
            chars = features.extras["char_spans"][offsets[row] + np.array([start, end])]
            assert example.context[chars[0, 0]:chars[1, 1]] == example.answers[0].text
        assert holding >= 1


def test_questions_are_cut_to_max_query_length(tmp_path, tokenizer):
    qa = task(max_query_length=3)
    examples = read(qa, write_squad(tmp_path / "squad.json", synthetic_questions(2, 6)))
    features = qa.encode(examples, tokenizer)
    first = features.columns["input_ids"][:features.lengths[0]]
    question = tokenizer(QUESTION, add_special_tokens=False)["input_ids"][:3]
    assert first[:5].tolist() == [tokenizer.cls_token_id, *question, tokenizer.sep_token_id]


def test_question_without_room_for_the_context_is_an_error(tmp_path, tokenizer):
    questions = synthetic_questions(2, 7)
    questions[1]["question"] = " ".join(["guitar"] * 60)
    qa = task(max_query_length=0)
    examples = read(qa, write_squad(tmp_path / "squad.json", questions))
    with pytest.raises(TfftError, match=r"qas\[0\]: question 'q7-1' takes 63 of task.max_seq_length=48 "
                                        r"tokens with its special tokens, leaving no room"):
        qa.encode(examples, tokenizer)
    with pytest.raises(TfftError, match=r"task.max_query_length 46 plus 3 special tokens leaves no room"):
        task(max_query_length=46).encode(examples, tokenizer)


def test_bad_span_settings_are_config_errors():
    with pytest.raises(TfftError, match=r"task.doc_stride must be at least 1, got 0"):
        task(doc_stride=0)
    with pytest.raises(TfftError, match=r"task.max_query_length must be 0 \(never cut\) or more"):
        task(max_query_length=-1)


@pytest.mark.parametrize("classifier_dropout, varies", [(-1.0, False), (0.5, True)])
def test_the_span_head_reads_the_encoder_states_without_dropout_unless_asked(tiny_bert, classifier_dropout,
                                                                               varies):
    """BERT's run_squad.py and HF's ...ForQuestionAnswering put no dropout before the span head,
    whatever the checkpoint's classifier dropout."""
    import tensorflow as tf

    from tfft.backbones.checkpoint import read_config
    from tfft.modeling import build_task_model

    qa = task(hidden_dropout=0.0, attention_dropout=0.0, classifier_dropout=classifier_dropout)
    model, _ = build_task_model(qa, {**read_config(tiny_bert), "classifier_dropout": 0.3})
    batch = {"input_ids": tf.constant([[2, 7, 9, 3, 11, 12, 3]]),
             "token_type_ids": tf.zeros([1, 7], tf.int32), "attention_mask": tf.ones([1, 7], tf.int32)}
    first, second = (model(batch, training=True).numpy() for _ in range(2))
    assert not np.allclose(first, second) if varies else np.array_equal(first, second)


# --- post-processing -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_eval_features(minilm_tokenizer):
    """The real SQuAD file's last 8 articles, in 64-token windows (many per question)."""
    qa = task(max_seq_length=64, doc_stride=24, max_query_length=24)
    examples = read(qa, SQUAD_FILE)[-1412:]
    return qa, examples, qa.encode(examples, minilm_tokenizer)


def test_every_real_question_gets_an_answer_that_is_a_context_substring(real_eval_features):
    qa, examples, features = real_eval_features
    assert len(features) > 3 * len(examples)
    outputs = np.random.default_rng(0).normal(size=(len(features), 64, 2)).astype(np.float32)
    predictions = qa.predictions(examples, features, outputs)
    assert [p["id"] for p in predictions] == [e.id for e in examples]
    for prediction, example in zip(predictions, examples, strict=True):
        assert prediction["answer"] and prediction["answer"] in example.context
        assert 1 <= len(prediction["nbest"]) <= qa.config.n_best_size
        assert sum(entry["probability"] for entry in prediction["nbest"]) == pytest.approx(1.0)
    metrics = qa.evaluate(outputs, features)
    assert metrics["total"] == len(examples) and 0 <= metrics["f1"] < 20


def test_logits_at_the_gold_span_score_nearly_100(real_eval_features):
    qa, examples, features = real_eval_features
    outputs = np.full((len(features), 64, 2), -5.0, dtype=np.float32)
    for row, (start, end) in enumerate(features.labels):
        outputs[row, start, 0] = outputs[row, end, 1] = 5.0
    metrics = qa.evaluate(outputs, features)
    # Only answers that end inside a word ("gold" in "golden") cannot be cut out exactly.
    assert metrics["exact_match"] > 99.0 and metrics["f1"] > 99.0 and metrics["loss"] < 0.05


def test_start_is_taken_from_the_window_where_it_has_most_context(tmp_path, tokenizer):
    qa = task(max_seq_length=24, doc_stride=4, max_query_length=4)
    context = " ".join(["the"] * 20 + ["cat"] + ["the"] * 20)
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "x", "question": "what ?", "context": context,
                                "answers": [{"text": "cat", "answer_start": context.index("cat")}]}) + "\n")
    examples = read(qa, path)
    features = qa.encode(examples, tokenizer)
    offsets = features.offsets()
    words = features.extras["word_index"]
    windows = [words[offsets[r]:offsets[r] + features.lengths[r]] for r in range(len(features))]
    holding = [r for r, words in enumerate(windows) if 20 in words]  # "cat" is context token 20.
    assert len(holding) > 2

    def context_around(row):
        inside = windows[row][windows[row] >= 0]
        return min(20 - inside[0], inside[-1] - 20)

    edge, central = min(holding, key=context_around), max(holding, key=context_around)
    outputs = np.zeros((len(features), 24, 2), dtype=np.float32)
    at = {row: int(np.nonzero(windows[row] == 20)[0][0]) for row in (edge, central)}
    # At the window edge, "cat the" scores 18; in the central window, "cat" scores 16.
    outputs[edge, at[edge], 0] = outputs[edge, at[edge] + 1, 1] = 9.0
    outputs[central, at[central], :] = 8.0
    (prediction,) = qa.predictions(examples, features, outputs)
    # Without the rule "cat the" (18) would win; here every span starting at "cat" comes
    # from the central window (start logit 8).
    assert prediction["answer"] == "cat"
    assert {e["start_logit"] for e in prediction["nbest"] if e["text"].startswith("cat")} == {8.0}


def test_v2_answers_nothing_when_the_null_score_wins(tmp_path, tokenizer):
    qa = task(version_2_with_negative=True, null_score_diff_threshold=1.0)
    examples = read(qa, write_squad(tmp_path / "squad.json", synthetic_questions(3, 8), "v2.0"))
    features = qa.encode(examples, tokenizer)
    outputs = np.zeros((len(features), 48, 2), dtype=np.float32)
    first = features.example_index == 0
    second = features.example_index == 1
    outputs[first, 0, :] = 3.0   # Null 6 against best span 0: no answer.
    outputs[second, 0, :] = 0.4  # Null 0.8 against 0: within the threshold of 1, answered.
    predictions = qa.predictions(examples, features, outputs)
    assert predictions[0]["answer"] == "" and predictions[0]["null_score_diff"] == pytest.approx(6.0)
    assert predictions[1]["answer"] != "" and predictions[1]["null_score_diff"] == pytest.approx(0.8)
    assert "" in [entry["text"] for entry in predictions[1]["nbest"]]
    metrics = qa.evaluate(outputs, features)
    assert {"HasAns_exact_match", "HasAns_f1", "NoAns_total", "best_f1", "best_f1_threshold"} <= set(metrics)


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qa_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qa_data")
    return (write_squad(folder / "train.json", synthetic_questions(320, 10, words=(5, 40))),
            write_squad(folder / "eval.json", synthetic_questions(48, 11, words=(5, 60))))


def overrides(checkpoint, data, **extra) -> str:
    settings = {
        "task.init_checkpoint": checkpoint, "task.train_data.input_path": data[0],
        "task.validation_data.input_path": data[1], "task.max_seq_length": 48,
        "task.doc_stride": 16, "task.max_query_length": 16, "trainer.epochs": 3,
        "trainer.train_batch_size": 16, "trainer.learning_rate": 3e-3,
        "trainer.lr_reference_width": 0, **extra,  # The rate as given, for the tiny encoder.
    }
    return ",".join(f"{key}={value}" for key, value in settings.items())


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory, tiny_bert, qa_data):
    model_dir = tmp_path_factory.mktemp("qa_run") / "model"
    run_train("--config_file=configs/squad/squad_v1.yaml", f"--model_dir={model_dir}",
              f"--params_override={overrides(tiny_bert, qa_data)}")
    return model_dir


def test_training_learns_to_find_the_answer(qa_run):
    results = json.loads((qa_run / "eval_results.json").read_text())
    assert results["total"] == results["num_examples"] == 48
    assert results["exact_match"] > 80 and results["f1"] > 80


@pytest.fixture(scope="module")
def qa_predicted(qa_run):
    """The run's ``--mode=predict`` on its validation data: the model_dir with the prediction files."""
    run_train(f"--model_dir={qa_run}", "--mode=predict")
    return qa_run


def test_predict_writes_the_official_prediction_files(qa_predicted, qa_data):
    qa_run = qa_predicted
    predictions = json.loads((qa_run / "predictions.json").read_text())
    nbest = json.loads((qa_run / "nbest_predictions.json").read_text())
    contexts = {r.fields["id"]: r.fields["context"] for r in read_records(qa_data[1])}
    assert list(predictions) == list(nbest) == list(contexts)
    assert all(answer and answer in contexts[qid] for qid, answer in predictions.items())
    assert all(nbest[qid][0]["text"] == answer for qid, answer in predictions.items())
    assert {"text", "probability", "start_logit", "end_logit"} == set(nbest["q11-0"][0])
    gold = {r.fields["id"]: r.fields["answers"][0]["text"] for r in read_records(qa_data[1])}
    assert np.mean([normalize_answer(predictions[q]) == normalize_answer(gold[q]) for q in gold]) > 0.8


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ('{"data": [{"paragraphs": [{"context": "x", "qas": [}]}]}',
         r".*train.json:1:52: invalid JSON \(Expecting value, character 51\); fix the file"),
        (json.dumps(squad_document([{"id": "a", "question": " ".join(["cat"] * 60), "context": "the dog",
                                     "answers": [{"text": "dog", "answer_start": 4}]}])),
         r".*train.json:data\[0\]\.paragraphs\[0\]\.qas\[0\]: question 'a' takes 63 of "
         r"task.max_seq_length=48 tokens"),
    ],
)
def test_bad_squad_input_stops_tfft_train_with_one_line(tmp_path, tiny_bert, content, pattern):
    path = tmp_path / "train.json"
    path.write_text(content)
    settings = overrides(tiny_bert, (path, path), **{"task.max_query_length": 0})
    process = run_train("--config_file=configs/squad/squad_v1.yaml", f"--model_dir={tmp_path / 'model'}",
                        "--mode=train", f"--params_override={settings}", check=False)
    assert_one_line_error(process, "tfft-train", pattern)


def test_jsonl_output_for_question_answering_is_refused(qa_run):
    process = run_train(f"--model_dir={qa_run}", "--mode=predict", "--output_format=jsonl", check=False)
    assert_one_line_error(process, "tfft-train", r"--output_format=jsonl is not available for task "
                                                 r"'question_answering'; choose one of json")


@pytest.fixture(scope="module")
def qa_export(qa_run, tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("qa_export") / "1"
    run_export(f"--model_dir={qa_run}", f"--export_dir={export_dir}")
    return export_dir


def test_saved_model_returns_start_and_end_logits(qa_run, qa_export):
    import tensorflow as tf
    from test_hf_export import tfft_outputs

    export_dir = qa_export
    ours, batch = tfft_outputs(qa_run, [QUESTION, "where ?"], ["the cat is on the film", "in the movie"])
    serve = tf.saved_model.load(str(export_dir)).signatures["serve_token_ids"]
    outputs = serve(**{name: tf.constant(value) for name, value in batch.items()})
    assert set(outputs) == {"start_logits", "end_logits"}
    np.testing.assert_allclose(outputs["start_logits"], ours[..., 0], atol=1e-5)
    np.testing.assert_allclose(outputs["end_logits"], ours[..., 1], atol=1e-5)
    padding = batch["attention_mask"] == 0
    assert padding.any() and np.all(outputs["start_logits"].numpy()[padding] == -10000.0)


def test_raw_text_answers_of_the_saved_model_reproduce_eval_results(qa_run, qa_data, qa_export, qa_predicted,
                                                                    tmp_path):
    """Questions and contexts as strings in, answers out: windows and post-processing in the graph."""
    import tensorflow as tf

    from tfft.tasks.squad_metrics import squad_scores

    serve = tf.saved_model.load(str(qa_export)).signatures["serving_default"]
    records = [record.fields for record in read_records(qa_data[1])]
    outputs = serve(question=tf.constant([r["question"] for r in records]),
                    context=tf.constant([r["context"] for r in records]))
    assert set(outputs) == {"answer", "answer_start", "answer_end", "score"}
    answers = [answer.decode() for answer in outputs["answer"].numpy()]
    for record, answer, start, end in zip(records, answers, outputs["answer_start"].numpy(),
                                          outputs["answer_end"].numpy(), strict=True):
        assert answer and record["context"][start:end] == answer
    scores = squad_scores({r["id"]: a for r, a in zip(records, answers, strict=True)},
                          {r["id"]: [a["text"] for a in r["answers"]] for r in records})
    expected = json.loads((qa_run / "eval_results.json").read_text())
    assert scores["exact_match"] == pytest.approx(expected["exact_match"], abs=1e-9)
    assert scores["f1"] == pytest.approx(expected["f1"], abs=1e-9)
    predictions = json.loads((qa_predicted / "predictions.json").read_text())
    assert answers == [predictions[r["id"]] for r in records]
    served = saved_model_cli_run(qa_export, {"question": [r["question"] for r in records[:4]],
                                             "context": [r["context"] for r in records[:4]]}, tmp_path)
    assert served["answer"].tolist() == [answer.encode() for answer in answers[:4]]


def test_tfft_predict_writes_the_answers_of_predict_mode(qa_predicted, qa_data, qa_export, tmp_path):
    output = tmp_path / "out" / "answers.json"
    run = run_predict(f"--export_dir={qa_export}", f"--input_path={qa_data[1]}", f"--output_path={output}")
    assert re.fullmatch(rf"wrote 48 predictions to {output} \([0-9.]+ examples/s\)\n", run.stdout)
    assert json.loads(output.read_text()) == json.loads((qa_predicted / "predictions.json").read_text())


def test_python_api_answers_questions_from_the_run_and_its_export(qa_predicted, qa_data, qa_export):
    import tfft

    records = [record.fields for record in read_records(qa_data[1])][:12]
    expected = json.loads((qa_predicted / "predictions.json").read_text())
    from_run = tfft.predict(qa_predicted, [(r["question"], r["context"]) for r in records])
    pairs = [{"question": r["question"], "context": r["context"]} for r in records]
    from_export = tfft.predict(qa_export, pairs)
    assert [row["answer"] for row in from_run] == [row["answer"] for row in from_export] == [
        expected[r["id"]] for r in records]
    assert from_run[0]["nbest"][0]["text"] == from_run[0]["answer"]  # Predict mode's rows, n-best included.
    assert all(r["context"][row["answer_start"]:row["answer_end"]] == row["answer"]
               for r, row in zip(records, from_export, strict=True))
    one = tfft.predict(qa_export, {"question": records[0]["question"], "context": records[0]["context"]})
    assert one == {**from_export[0], "id": "0"}


def test_check_export_reproduces_exact_match_and_f1_with_tensorflow_alone(qa_run, qa_export):
    report = check_export(qa_run, qa_export)
    assert not any(report["imported"].values()), report
    assert report["examples"] == 48 and sorted(report["compared"]) == ["exact_match", "f1"]
    for ours, theirs in report["compared"].values():
        assert ours == pytest.approx(theirs, abs=1e-9)


def test_hf_export_is_a_question_answering_model_with_the_same_logits(qa_run, tmp_path):
    import torch
    import transformers
    from test_hf_export import tfft_outputs

    export_dir = tmp_path / "hf"
    run_export("--format=hf", f"--model_dir={qa_run}", f"--export_dir={export_dir}")
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(str(export_dir)).eval()
    assert type(model).__name__ == "BertForQuestionAnswering"
    ours, batch = tfft_outputs(qa_run, [QUESTION, "where ?"], ["the cat is on the film", "in the movie"])
    with torch.no_grad():
        theirs = model(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    real = batch["attention_mask"].astype(bool)
    assert np.abs(ours[..., 0][real] - theirs.start_logits.numpy()[real]).max() <= 1e-4
    assert np.abs(ours[..., 1][real] - theirs.end_logits.numpy()[real]).max() <= 1e-4


def test_squad_v2_run_reports_has_answer_and_no_answer_scores(tmp_path, tiny_bert):
    data = (write_squad(tmp_path / "train.json", synthetic_questions(64, 12, impossible=0.3), "v2.0"),
            write_squad(tmp_path / "eval.json", synthetic_questions(32, 13, impossible=0.3), "v2.0"))
    model_dir = tmp_path / "model"
    run_train("--config_file=configs/squad/squad_v2.yaml", f"--model_dir={model_dir}",
              f"--params_override={overrides(tiny_bert, data, **{'trainer.epochs': 1})}")
    results = json.loads((model_dir / "eval_results.json").read_text())
    assert results["HasAns_total"] + results["NoAns_total"] == results["total"] == 32
    assert {"exact_match", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_threshold"} <= set(results)
    run_train(f"--model_dir={model_dir}", "--mode=predict")
    odds = json.loads((model_dir / "null_odds.json").read_text())
    predictions = json.loads((model_dir / "predictions.json").read_text())
    assert list(odds) == list(predictions) and len(odds) == 32
    assert all((answer == "") == (odds[qid] > 0.0) for qid, answer in predictions.items())
