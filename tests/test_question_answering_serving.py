"""Question answering on raw text in the graph: the windows and answers of training's Python path."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_question_answering import SQUAD_FILE, read, task

from tfft.data.graph_tokenizers import GraphTokenizer
from tfft.tasks import question_answering_graph
from tfft.tasks.question_answering import PADDING_LOGIT

LENGTH, STRIDE, QUERY = 64, 24, 24


@pytest.fixture(scope="module")
def windows(minilm_tokenizer):
    """The last 300 real SQuAD questions in 64-token windows, by training's encode and in the graph."""
    qa = task(max_seq_length=LENGTH, doc_stride=STRIDE, max_query_length=QUERY)
    examples = read(qa, SQUAD_FILE)[-300:]
    graph = question_answering_graph.windows(
        GraphTokenizer(minilm_tokenizer), tf.constant([e.question for e in examples]),
        tf.constant([e.context for e in examples]), LENGTH, QUERY, STRIDE)
    return examples, qa.encode(examples, minilm_tokenizer), {k: v.numpy() for k, v in graph.items()}


def test_windows_are_training_windows(windows):
    examples, features, graph = windows
    assert len(features) > 5 * len(examples)
    np.testing.assert_array_equal(graph["window_example"], features.example_index)
    offsets = features.offsets()
    for row, length in enumerate(features.lengths):
        expected = slice(offsets[row], offsets[row] + length)
        for name in ("input_ids", "token_type_ids"):
            np.testing.assert_array_equal(graph[name][row, :length], features.columns[name][expected])
        np.testing.assert_array_equal(graph["context_index"][row, :length],
                                      features.extras["word_index"][expected])
        assert graph["attention_mask"][row].sum() == length


def scenario_logits(name: str, features) -> np.ndarray:
    """Random logits; ``null``: some questions' [CLS] wins; ``no_pair``: best ends precede best starts."""
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(len(features), LENGTH, 2)).astype(np.float32)
    if name == "null":
        outputs[features.example_index % 3 == 0, 0, :] += 4.0
    if name == "no_pair":
        outputs = (outputs * 0.01 + np.arange(LENGTH)[None, :, None] * [0.1, -0.1]).astype(np.float32)
    return outputs


@pytest.mark.parametrize(("scenario", "version_2"), [("random", False), ("null", True), ("no_pair", False),
                                                     ("no_pair", True)])
def test_answers_offsets_and_scores_are_those_of_python_post_processing(windows, scenario, version_2):
    examples, features, graph = windows
    qa = task(max_seq_length=LENGTH, doc_stride=STRIDE, max_query_length=QUERY,
              version_2_with_negative=version_2, n_best_size=5)
    outputs = scenario_logits(scenario, features)
    padded = np.arange(LENGTH)[None, :, None] >= features.lengths[:, None, None]
    expected = qa.predictions(examples, features, np.where(padded, PADDING_LOGIT, outputs))
    width = graph["input_ids"].shape[1]
    real = graph["attention_mask"][..., None] > 0
    ours = qa.text_outputs({"context": tf.constant([e.context for e in examples])}, graph,
                           tf.constant(np.where(real, outputs[:, :width], PADDING_LOGIT)))
    answers = [answer.decode() for answer in ours["answer"].numpy()]
    assert answers == [prediction["answer"] for prediction in expected]
    for example, answer, start, end in zip(examples, answers, ours["answer_start"].numpy(),
                                           ours["answer_end"].numpy(), strict=True):
        assert (example.context[start:end] == answer) if answer else (start == end == -1)
    probabilities = [next(entry["probability"] for entry in prediction["nbest"]
                          if entry["text"] == prediction["answer"]) for prediction in expected]
    np.testing.assert_allclose(ours["score"].numpy(), probabilities, atol=1e-5)
    if scenario == "null":
        assert 0 < answers.count("") < len(answers)
    if scenario == "no_pair":  # The best single token answers where no pair qualifies.
        assert sum(len(prediction["nbest"]) == 1 + version_2 for prediction in expected) > len(expected) / 2
