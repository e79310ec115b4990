"""tools/check_export.py: its readers against tfft's, and its question answering branch.

The tool re-reads validation data without tfft; these tests hold its examples (first
``max_examples``, words and tags, scored answers) to what training reads. Token
classification end to end is in test_token_classification.py; sentence tasks in
test_training.py.
"""

from __future__ import annotations

import gzip
import json

import pytest
import yaml
from conftest import SHARED_DATA, check_export, load_tool

from tfft.config import DataConfig, task_config
from tfft.tasks import get_task
from tfft.tasks.squad_metrics import squad_scores

CONLL_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SQUAD = SHARED_DATA / "squad" / "dev-v1.1-minus-xquad.json"


@pytest.mark.parametrize("gzipped", [False, True])
def test_conll_sentences_and_tags_are_those_training_reads(gzipped, tmp_path):
    """CoNLL-2003's own ``.txt`` (or a gzip copy) with ``format: auto``, as token classification reads it."""
    tool = load_tool("check_export")
    path = SHARED_DATA / "conll2003" / "valid.txt"
    if gzipped:
        path = tmp_path / "valid.txt.gz"
        path.write_bytes(gzip.compress((SHARED_DATA / "conll2003" / "valid.txt").read_bytes()))
    data = {"input_path": str(path), "format": "auto", "max_examples": 150}
    config = task_config("token_classification", label_list=CONLL_TAGS, tag_column=-1)
    task = get_task(config)
    examples = task.read_examples(DataConfig(**data))
    records = tool.read_records(data, ("conll", "jsonl", "json"))
    sentences = [tool.sentence_tags(record, {"tag_column": -1}) for record in records]
    assert len(sentences) == len(examples) == 150
    assert sentences == [(list(example.words), list(example.tags)) for example in examples]
    with pytest.raises(tool.CheckError, match=r"^cannot tell the format of '.*valid.txt.*' from its name"):
        tool.read_records(data, ("tsv", "csv"))  # Sentence tasks: .txt means nothing.


def test_squad_questions_and_scored_answers_are_those_training_reads(tmp_path):
    tool = load_tool("check_export")
    data = {"input_path": str(SQUAD), "format": "auto", "max_examples": 200}
    examples = get_task(task_config("question_answering")).read_examples(DataConfig(**data))
    kept = [(record, gold) for record in tool.read_records(data, ("json",))
            if (gold := tool.gold_answers(record)) is not None]
    assert [(str(record["id"]), gold) for record, gold in kept] == [
        (example.id, [answer.text for answer in example.answers]) for example in examples]

    # SQuAD 2.0: an unanswerable question scores against no answer; a question whose only
    # answer does not match its answer_start is skipped, as training skips it.
    context = "Bonn lies on the Rhine."
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "a", "question": "Where?", "answers": [{"text": "the Rhine", "answer_start": 13}]},
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True},
        {"id": "c", "question": "What?", "answers": [{"text": "Bonn", "answer_start": 3}]},
    ]}]}]}))
    data = {"input_path": str(v2), "max_examples": 0}
    config = task_config("question_answering", version_2_with_negative=True)
    examples = get_task(config).read_examples(DataConfig(**data))
    gold = {str(record["id"]): tool.gold_answers(record) for record in tool.read_records(data, ("json",))}
    assert gold == {"a": ["the Rhine"], "b": [], "c": None}
    read = {example.id: [answer.text for answer in example.answers] for example in examples}
    assert read == {"a": ["the Rhine"], "b": []}


def test_unsupported_data_format_is_a_one_line_error():
    tool = load_tool("check_export")
    with pytest.raises(tool.CheckError, match=r"^check_export reads conll, jsonl, json data for this task, "
                                              r"not tfds \('tfds:conll2003/test'\); pass --input_path=PATH"):
        tool.read_records({"input_path": "tfds:conll2003/test"}, ("conll", "jsonl", "json"))


def fake_reader_export(folder, known: dict[str, str], validation_data: dict):
    """A SavedModel with the question answering signature: the known answer of a question, else
    the context's first 12 characters; with the params.yaml of a run validated on ``validation_data``."""
    import tensorflow as tf

    module = tf.Module()
    module.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(list(known), list(known.values())), default_value="")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                  tf.TensorSpec([None], tf.string, name="context")])
    def serve(question, context):
        looked_up = module.table.lookup(question)
        answer = tf.where(looked_up != "", looked_up, tf.strings.substr(context, 0, 12, unit="UTF8_CHAR"))
        start = tf.zeros_like(question, tf.int32)
        return {"answer": answer, "answer_start": start, "answer_end": start + tf.strings.length(answer),
                "score": tf.zeros_like(question, tf.float32)}

    tf.saved_model.save(module, str(folder), signatures={"serving_default": serve})
    params = {"task": {"type": "question_answering", "version_2_with_negative": False,
                       "validation_data": {"input_path": str(validation_data["input_path"]), "format": "auto",
                                           "max_examples": validation_data["max_examples"], "columns": []}}}
    (folder / "assets").mkdir(exist_ok=True)
    (folder / "assets" / "params.yaml").write_text(yaml.safe_dump(params))


def test_question_answering_export_reproduces_squad_scores(tmp_path):
    """The QA branch on a stand-in SavedModel of the raw-text QA contract: the SQuAD scores of
    the first max_examples questions, as training computes them; 0.1 points of tolerance."""
    data = {"input_path": str(SQUAD), "max_examples": 40}
    examples = get_task(task_config("question_answering")).read_examples(DataConfig(**data))
    known = {example.question: example.answers[0].text for example in examples[::2]}
    scores = squad_scores({e.id: known.get(e.question, e.context[:12]) for e in examples},
                          {e.id: [a.text for a in e.answers] for e in examples})
    assert 20 < scores["f1"] < 90  # Half right: a reader that drops or shifts questions scores otherwise.
    model_dir, export_dir = tmp_path / "run", tmp_path / "export"
    (model_dir / "assets").mkdir(parents=True)
    fake_reader_export(export_dir, known, data)

    (model_dir / "eval_results.json").write_text(json.dumps(scores))
    report = check_export(model_dir, export_dir)
    assert report["task"] == "question_answering" and report["metric"] == "f1" and report["tolerance"] == 0.1
    assert report["examples"] == len(examples) == 40
    assert report["compared"] == {name: [pytest.approx(scores[name], abs=1e-9), scores[name]]
                                  for name in ("f1", "exact_match")}
    assert not any(report["imported"].values()), report["imported"]

    (model_dir / "eval_results.json").write_text(json.dumps({**scores, "f1": scores["f1"] + 0.2}))
    process = check_export(model_dir, export_dir, check=False)
    assert process.returncode != 0
    assert process.stderr.strip().splitlines()[-1].startswith(
        f"check_export: f1 {scores['f1']} differs from eval_results.json {scores['f1'] + 0.2}")
