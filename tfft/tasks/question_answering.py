"""Extractive question answering (SQuAD v1.1 and v2.0): the answer is a span of the context.

Question and context are tokenized as a pair with the fast tokenizer's character
offsets. Questions are cut to ``task.max_query_length`` tokens; a context longer than
the rest of ``task.max_seq_length`` is cut into overlapping windows whose starts are
``task.doc_stride`` context tokens apart (BERT's and Model Garden's meaning of the
stride). In training, a window that does not hold the whole answer (and every window
of an unanswerable SQuAD 2.0 question) points at the first token, ``[CLS]``.

The head gives every token a start and an end logit (padding gets
:data:`PADDING_LOGIT`). Post-processing takes the ``task.n_best_size`` best starts
and ends of each window, keeps spans of at most ``task.max_answer_length`` tokens
whose start lies in the window where it has the most context on both sides (as in
BERT), merges the windows of each question and cuts the answer out of the context
through the token offsets, so every answer is an exact substring of its context.
With ``task.version_2_with_negative`` the answer is ``""`` when the best null score
(``[CLS]`` start + end, lowest over windows) beats the best span by more than
``task.null_score_diff_threshold``. Metrics are the official SQuAD scripts' (see
:mod:`tfft.tasks.squad_metrics`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones.weights import dense_specs
from tfft.config import DataConfig, TaskConfig, config_field
from tfft.data.features import Features, FeatureSpec
from tfft.data.sources import Record
from tfft.errors import TfftError
from tfft.tasks import distillation, metrics, question_answering_graph
from tfft.tasks.base import HfHead, Task, dense_head, plain, register_task
from tfft.tasks.squad_metrics import squad_scores

#: Start/end logit of padding positions, so that no answer can start or end there.
PADDING_LOGIT = -10000.0


@dataclasses.dataclass
class QuestionAnsweringConfig(TaskConfig):
    """Windows and post-processing of ``task.type: question_answering``."""

    doc_stride: int = config_field(
        128, doc="Context tokens between the starts of consecutive windows of a long context."
    )
    max_query_length: int = config_field(64, doc="Questions are cut to this many tokens (0 = never cut).")
    n_best_size: int = config_field(
        20, doc="Start and end candidates per window, and answers in nbest_predictions.json."
    )
    max_answer_length: int = config_field(30, doc="Longest answer in tokens.")
    version_2_with_negative: bool = config_field(
        False, doc="SQuAD 2.0: questions may have no answer (predicted as '')."
    )
    null_score_diff_threshold: float = config_field(
        0.0, doc="SQuAD 2.0: answer '' when null score - best span score exceeds this."
    )


@dataclasses.dataclass(frozen=True)
class Answer:
    """A gold answer: its text and the character where it starts in the context."""

    text: str
    start: int


@dataclasses.dataclass(frozen=True)
class QuestionExample:
    """A question about a context, with its gold answers (none when unlabeled).

    Attributes:
        id: The question id (keys of ``predictions.json``).
        question: The question text.
        context: The paragraph that holds the answer.
        answers: Gold answers; the first is the training target.
        is_impossible: SQuAD 2.0: the context does not answer the question.
        where: Where the question was read, for messages.
    """

    id: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    is_impossible: bool
    where: str

    @property
    def labeled(self) -> bool:
        """Whether the example has a training target (an answer, or "no answer")."""
        return bool(self.answers) or self.is_impossible


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A question's post-processed answer.

    Attributes:
        answer: The predicted answer text (``""`` for "no answer").
        nbest: The best candidates, best first, each with ``text``, ``probability``,
            ``start_logit`` and ``end_logit``.
        null_score_diff: Null score minus best span score (SQuAD 2.0; higher means
            "no answer" is more likely).
    """

    answer: str
    nbest: list[dict]
    null_score_diff: float


class _SkippedAnswers:
    """Counts answers whose ``answer_start`` does not match their text, for one warning."""

    def __init__(self):
        self.answers, self.questions, self.first = 0, 0, ""

    def add(self, where: str, qid: str, answer: Answer) -> None:
        self.answers += 1
        self.first = self.first or f"{where} (question '{qid}': {answer.text!r} at {answer.start})"

    def log(self, source: str) -> None:
        if self.answers:
            logging.warning(
                "%s: skipped %d answers whose answer_start does not match their text and %d "
                "questions left without an answer; first: %s. Fix answer_start in the data",
                source, self.answers, self.questions, self.first,
            )


@register_task
class QuestionAnswering(Task):
    """Finds the answer to a question as a span of its context (SQuAD v1.1 / v2.0).

    Reads SQuAD JSON files (``.json``), TFDS ``squad`` and JSON Lines with the fields
    ``id``, ``question``, ``context``, ``answers`` (``[{"text", "answer_start"}]`` or
    ``{"text": [...], "answer_start": [...]}``) and, for SQuAD 2.0, ``is_impossible``
    (an empty answer list also means unanswerable there).
    """

    name = "question_answering"
    pipeline_tag = "question-answering"
    default_main_metric = "f1"
    prediction_padding = PADDING_LOGIT
    metric_names = (
        "loss", "exact_match", "f1", "HasAns_exact_match", "HasAns_f1", "NoAns_exact_match",
        "NoAns_f1", "best_exact_match", "best_f1",
    )
    uses_pooler = False
    # The span head reads the encoder's (already dropped-out) states directly, as in BERT's
    # run_squad.py and Hugging Face's ...ForQuestionAnswering.
    default_head_dropout = 0.0
    output_formats = ("json",)
    example_type = QuestionExample
    config_class = QuestionAnsweringConfig
    #: Start and end token of the answer.
    label_spec = FeatureSpec((2,))

    def __init__(self, config: QuestionAnsweringConfig):
        super().__init__(config)
        for key in ("doc_stride", "n_best_size", "max_answer_length"):
            if getattr(config, key) < 1:
                raise TfftError(f"task.{key} must be at least 1, got {getattr(config, key)}")
        if config.max_query_length < 0:
            raise TfftError(
                f"task.max_query_length must be 0 (never cut) or more, got {config.max_query_length}"
            )

    @property
    def prediction_length(self) -> int:
        """Outputs are per token: inference pads them to ``max_seq_length``."""
        return self.config.max_seq_length

    # --- data --------------------------------------------------------------------------

    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[QuestionExample]:
        """Reads questions; answers that do not match their ``answer_start`` are skipped.

        Raises:
            TfftError: for a missing or empty field, a malformed answer, a duplicate id,
                or (SQuAD v1.1) a question without answers.
        """
        skipped = _SkippedAnswers()
        examples, seen = [], {}
        for record in self.read_records(data):
            example = self._example(record, labeled, skipped)
            if example is None:
                continue
            if example.id in seen:
                raise TfftError(
                    f"{record.where}: question id '{example.id}' was already used at "
                    f"{seen[example.id]}; give every question a unique id"
                )
            seen[example.id] = record.where
            examples.append(example)
        skipped.log(data.input_path)
        if not examples:
            raise TfftError(f"'{data.input_path}' has no question with a usable answer; fix the data")
        return examples

    def _example(self, record: Record, labeled: bool, skipped: _SkippedAnswers) -> QuestionExample | None:
        fields = record.fields
        qid = fields.get("id")
        if qid is None or not str(qid).strip():
            raise TfftError(f"{record.where}: question has no 'id'; give every question a unique id")
        qid = str(qid)
        texts = []
        for field in ("question", "context"):
            text = fields.get(field)
            if text is not None and not isinstance(text, str):
                raise TfftError(
                    f"{record.where}: question '{qid}': '{field}' holds the {type(text).__name__} "
                    f"{text!r:.40}, not text; write it as a string"
                )
            if not text or not text.strip():
                raise TfftError(
                    f"{record.where}: question '{qid}' has no text in '{field}'; fill it in or "
                    "remove the question"
                )
            texts.append(text)
        question, context = texts
        if not labeled:
            return QuestionExample(qid, question, context, (), False, record.where)
        given = self._raw_answers(fields.get("answers", []), record.where, qid)
        answers = []
        for answer in given:
            if context[answer.start:answer.start + len(answer.text)] == answer.text:
                answers.append(answer)
            else:
                skipped.add(record.where, qid, answer)
        impossible = bool(fields.get("is_impossible", False)) or not given
        if impossible and not self.config.version_2_with_negative:
            raise TfftError(
                f"{record.where}: question '{qid}' has no answer; for SQuAD 2.0 data set "
                "task.version_2_with_negative=true, else fix the answers"
            )
        if impossible:
            return QuestionExample(qid, question, context, (), True, record.where)
        if not answers:
            skipped.questions += 1
            return None
        return QuestionExample(qid, question, context, tuple(answers), False, record.where)

    @staticmethod
    def _raw_answers(raw: Any, where: str, qid: str) -> list[Answer]:
        """``[{"text", "answer_start"}]`` or ``{"text": [...], "answer_start": [...]}`` as answers."""
        if isinstance(raw, dict) and isinstance(raw.get("text"), list):
            raw = [{"text": t, "answer_start": s}
                   for t, s in zip(raw["text"], raw.get("answer_start") or [], strict=False)]
        hint = 'answers must look like [{"text": "...", "answer_start": 12}]; fix the data'
        if not isinstance(raw, list):
            raise TfftError(f"{where}: question '{qid}': {hint}")
        answers = []
        for item in raw:
            text = item.get("text") if isinstance(item, dict) else None
            start = item.get("answer_start") if isinstance(item, dict) else None
            if (not isinstance(text, str) or not text.strip() or not isinstance(start, int)
                    or isinstance(start, bool) or start < 0):
                raise TfftError(f"{where}: question '{qid}' has a malformed answer {item!r}; {hint}")
            answers.append(Answer(text, start))
        return answers

    def encode(self, examples: list[QuestionExample], tokenizer) -> Features:
        """Windows of (question, context slice) with token offsets; answer positions as labels.

        Raises:
            TfftError: when a question leaves no room for its context.
        """
        max_length, max_query = self.config.max_seq_length, self.config.max_query_length
        specials = tokenizer.num_special_tokens_to_add(pair=True)
        if max_query and max_query + specials >= max_length:
            raise TfftError(
                f"task.max_query_length {max_query} plus {specials} special tokens leaves no room "
                f"for the context in task.max_seq_length {max_length}; lower task.max_query_length "
                "or raise task.max_seq_length"
            )
        encoded = tokenizer(
            [e.question for e in examples], [e.context for e in examples],
            return_offsets_mapping=True, return_token_type_ids=True, verbose=False,
        )
        windows = _Windows()
        cut = 0
        for index, example in enumerate(examples):
            sequence = np.array([-1 if s is None else s for s in encoded.sequence_ids(index)])
            context = np.nonzero(sequence == 1)[0]
            if not len(context):
                raise TfftError(
                    f"{example.where}: the context of question '{example.id}' has no tokens; "
                    "fix or remove it"
                )
            question = np.nonzero(sequence == 0)[0]
            dropped = question[max_query:] if max_query else question[:0]
            cut += bool(len(dropped))
            keep = np.ones(len(sequence), dtype=bool)
            keep[dropped] = False
            prefix = np.nonzero(keep[:context[0]])[0]
            suffix = np.arange(context[-1] + 1, len(sequence))
            budget = max_length - len(prefix) - len(suffix)
            if budget < 1:
                raise TfftError(
                    f"{example.where}: question '{example.id}' takes {len(prefix) + len(suffix)} of "
                    f"task.max_seq_length={max_length} tokens with its special tokens, leaving no "
                    "room for the context; set task.max_query_length (e.g. 64) or raise "
                    "task.max_seq_length"
                )
            windows.add_example(
                index, example, np.asarray(encoded["input_ids"][index]),
                np.asarray(encoded["token_type_ids"][index]),
                np.asarray(encoded["offset_mapping"][index], dtype=np.int32),
                prefix, context, suffix, budget, self.config.doc_stride,
            )
        if cut:
            logging.info("%d of %d questions were cut to task.max_query_length=%d tokens",
                         cut, len(examples), max_query)
        return windows.features(examples)

    # --- model -------------------------------------------------------------------------

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """A dense layer on every token giving ``[start, end]`` float32 logits; padding masked."""
        logits = dense_head(backbone_outputs["sequence_output"], 2, dropout)
        real = keras.ops.expand_dims(inputs["attention_mask"], -1) > 0
        return keras.ops.where(real, logits, PADDING_LOGIT)

    def distillation_loss(self, outputs, teacher_outputs, labels, temperature):
        """The softmax KL over the window's tokens of the start and of the end position, averaged."""
        del labels
        return keras.ops.mean(distillation.softmax_kl(outputs, teacher_outputs, temperature, axis=1))

    def loss(self):
        """Mean of the start and end positions' softmax cross-entropy."""
        return SpanLoss(name="span_loss")

    # --- outputs -----------------------------------------------------------------------

    def answers(self, features: Features, outputs: np.ndarray) -> list[Prediction]:
        """Post-processes start/end logits [windows, seq, 2] into one answer per example.

        Args:
            features: What :meth:`encode` returned for the examples.
            outputs: The model's outputs for every window, in window order.
        """
        rows_of = [[] for _ in features.examples]
        for row, index in enumerate(features.example_index):
            rows_of[index].append(row)
        offsets = features.offsets()
        return [
            self._answer(example, [_WindowView(features, offsets, row, outputs) for row in rows])
            for example, rows in zip(features.examples, rows_of, strict=True)
        ]

    def _answer(self, example: QuestionExample, windows: list[_WindowView]) -> Prediction:
        best_window = _max_context_windows(windows)
        candidates = []  # (score, start logit, end logit, first char, end char)
        for number, window in enumerate(windows):
            allowed = best_window[window.context] == number
            starts = np.argsort(-window.start_logits, kind="stable")[:self.config.n_best_size]
            ends = np.argsort(-window.end_logits, kind="stable")[:self.config.n_best_size]
            for start in starts[allowed[starts]]:
                for end in ends[(ends >= start) & (ends - start < self.config.max_answer_length)]:
                    candidates.append(window.span(start, end))
        if not candidates:  # Every pair broke a rule: the best single token still answers.
            candidates = [max(
                (window.span(position, position) for number, window in enumerate(windows)
                 for position in np.nonzero(best_window[window.context] == number)[0]),
                key=lambda candidate: candidate[0],
            )]
        candidates.sort(key=lambda candidate: -candidate[0])
        nbest = [
            {"text": example.context[first:last], "start_logit": start, "end_logit": end, "score": score}
            for score, start, end, first, last in candidates[:self.config.n_best_size]
        ]
        null = min(windows, key=lambda window: window.null_logits[0] + window.null_logits[1])
        null_score = null.null_logits[0] + null.null_logits[1]
        null_score_diff = null_score - nbest[0]["score"]
        answer = nbest[0]["text"]
        if self.config.version_2_with_negative:
            nbest.append({"text": "", "start_logit": null.null_logits[0],
                          "end_logit": null.null_logits[1], "score": null_score})
            nbest.sort(key=lambda entry: -entry["score"])
            if null_score_diff > self.config.null_score_diff_threshold:
                answer = ""
        probabilities = metrics.softmax(np.array([entry.pop("score") for entry in nbest]))
        for entry, probability in zip(nbest, probabilities, strict=True):
            entry["probability"] = float(probability)
        return Prediction(answer, nbest, float(null_score_diff))

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Official SQuAD exact match and F1 (0-100; v2.0 adds HasAns/NoAns), and the loss."""
        predictions = self.answers(features, outputs)
        labels = features.labels.astype(np.int64)
        loss = (metrics.softmax_cross_entropy(outputs[..., 0], labels[:, 0])
                + metrics.softmax_cross_entropy(outputs[..., 1], labels[:, 1])) / 2
        ids = [example.id for example in features.examples]
        scores = squad_scores(
            {qid: p.answer for qid, p in zip(ids, predictions, strict=True)},
            {e.id: [a.text for a in e.answers] for e in features.examples},
            self.config.version_2_with_negative,
            {qid: p.null_score_diff for qid, p in zip(ids, predictions, strict=True)},
        )
        return {"loss": loss, **scores}

    def predictions(self, examples: list[QuestionExample], features: Features, outputs) -> list[dict]:
        """Per question: ``id``, ``answer``, ``nbest`` and (v2.0) ``null_score_diff``."""
        rows = []
        for example, prediction in zip(examples, self.answers(features, outputs), strict=True):
            row = {"id": example.id, "answer": prediction.answer, "nbest": prediction.nbest}
            if self.config.version_2_with_negative:
                row["null_score_diff"] = prediction.null_score_diff
            rows.append(row)
        return rows

    def write_predictions(self, predictions: list[dict], folder: Path, output_format: str = "") -> Path:
        """Writes the official files; returns the path of ``predictions.json``.

        ``predictions.json`` maps id -> answer, ``nbest_predictions.json`` id -> n-best
        list and, for SQuAD 2.0, ``null_odds.json`` id -> null score difference.
        """
        if output_format not in ("", *self.output_formats):
            super().write_predictions(predictions, folder, output_format)  # Raises the error.
        files = {
            "predictions.json": {row["id"]: row["answer"] for row in predictions},
            "nbest_predictions.json": {row["id"]: row["nbest"] for row in predictions},
        }
        if self.config.version_2_with_negative:
            files["null_odds.json"] = {row["id"]: row["null_score_diff"] for row in predictions}
        for name, value in files.items():
            _write_json(folder / name, value)
        return folder / "predictions.json"

    def outputs_from_serving(self, served):
        """Start and end logits stacked back into ``[batch, seq, 2]``."""
        return np.stack([served["start_logits"], served["end_logits"]], axis=-1)

    def serving_outputs(self, outputs) -> dict:
        """``start_logits`` and ``end_logits`` [batch, seq] (padding: :data:`PADDING_LOGIT`)."""
        return {"start_logits": outputs[..., 0], "end_logits": outputs[..., 1]}

    @property
    def text_inputs(self) -> dict[str, tf.TensorSpec]:
        """``question`` and ``context``: string ``[batch]``."""
        return {name: tf.TensorSpec([None], tf.string, name=name) for name in ("question", "context")}

    def text_features(self, texts: dict, tokenizer) -> dict:
        """The windows training cuts (same question cut, ``doc_stride`` and layout)."""
        return question_answering_graph.windows(
            tokenizer, texts["question"], texts["context"], self.config.max_seq_length,
            self.config.max_query_length, self.config.doc_stride)

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """``answer``, its character offsets ``answer_start``/``answer_end`` and its ``score``.

        Post-processed as :meth:`answers` does (the same answers, also for SQuAD 2.0).
        """
        threshold = self.config.null_score_diff_threshold if self.config.version_2_with_negative else None
        return question_answering_graph.best_answers(
            texts["context"], features, outputs, self.config.n_best_size, self.config.max_answer_length,
            threshold)

    def serving_texts(self, examples: list[QuestionExample]) -> dict[str, list[str]]:
        """``question`` and ``context`` of every example."""
        return {"question": [e.question for e in examples], "context": [e.context for e in examples]}

    def examples_from_texts(self, texts: dict[str, list]) -> list[QuestionExample]:
        """A question per ``question`` and ``context``, its id its position."""
        pairs = zip(texts["question"], texts["context"], strict=True)
        return [QuestionExample(str(index), question, context, (), False, f"question {index}")
                for index, (question, context) in enumerate(pairs)]

    def served_rows(self, examples: list[QuestionExample], outputs: dict[str, np.ndarray]) -> list[dict]:
        """Per question: ``id``, ``answer``, its character offsets and ``score``."""
        names = ("answer", "answer_start", "answer_end", "score")
        return [{"id": example.id, **{name: plain(outputs[name][index]) for name in names}}
                for index, example in enumerate(examples)]

    def write_served(self, rows: list[dict], path: Path) -> None:
        """Writes ``{id: answer}``, the layout of the official ``predictions.json``."""
        _write_json(path, {row["id"]: row["answer"] for row in rows})

    def hf_head(self, model, backbone) -> HfHead:
        """``{Family}ForQuestionAnswering``: ``qa_outputs`` on every token, no pooler."""
        specs = dense_specs(model.get_layer("head"), "qa_outputs")
        config = {"id2label": {0: "LABEL_0", 1: "LABEL_1"}, "label2id": {"LABEL_0": 0, "LABEL_1": 1}}
        return HfHead("ForQuestionAnswering", specs, config, None)


def _write_json(path: Path, value) -> None:
    """Writes ``value`` as indented UTF-8 JSON, as the official SQuAD files are."""
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class SpanLoss(keras.losses.Loss):
    """Mean of the start and end positions' softmax cross-entropy.

    ``y_true`` is int [batch, 2] (start, end token); ``y_pred`` is [batch, seq, 2] logits.
    """

    def call(self, y_true, y_pred):  # noqa: D102
        y_true = keras.ops.cast(y_true, "int32")
        start = keras.losses.sparse_categorical_crossentropy(y_true[:, 0], y_pred[..., 0], from_logits=True)
        end = keras.losses.sparse_categorical_crossentropy(y_true[:, 1], y_pred[..., 1], from_logits=True)
        return (start + end) / 2.0


class _Windows:
    """Collects the windows of every example as flat per-token arrays."""

    def __init__(self):
        self.ids, self.types, self.words, self.spans = [], [], [], []
        self.lengths, self.example_index, self.labels = [], [], []

    def add_example(self, index, example, ids, types, offsets, prefix, context, suffix, budget, stride):
        """Adds the windows of one tokenized (question, context) pair."""
        target = _answer_tokens(example, offsets[context])
        count, start = len(context), 0
        while True:
            length = min(count - start, budget)
            positions = np.concatenate([prefix, context[start:start + length], suffix])
            self.ids.append(ids[positions])
            self.types.append(types[positions])
            words = np.full(len(positions), -1, dtype=np.int32)
            words[len(prefix):len(prefix) + length] = np.arange(start, start + length)
            self.words.append(words)
            spans = np.zeros((len(positions), 2), dtype=np.int32)
            spans[len(prefix):len(prefix) + length] = offsets[context[start:start + length]]
            self.spans.append(spans)
            self.lengths.append(len(positions))
            self.example_index.append(index)
            inside = target is not None and start <= target[0] and target[1] < start + length
            self.labels.append((target - start + len(prefix)) if inside else np.zeros(2, np.int64))
            if start + length >= count:
                return
            start += min(length, stride)

    def features(self, examples: list[QuestionExample]) -> Features:
        """The collected windows as :class:`Features` (labels when every example has one)."""
        ids = np.concatenate(self.ids).astype(np.int32)
        columns = {
            "input_ids": ids,
            "token_type_ids": np.concatenate(self.types).astype(np.int32),
            "attention_mask": np.ones_like(ids),
        }
        labeled = all(example.labeled for example in examples)
        return Features(
            columns, np.array(self.lengths, dtype=np.int32),
            labels=np.array(self.labels, dtype=np.int32) if labeled else None,
            extras={"word_index": np.concatenate(self.words), "char_spans": np.concatenate(self.spans)},
            example_index=np.array(self.example_index, dtype=np.int32),
            examples=examples,
        )


def _answer_tokens(example: QuestionExample, offsets: np.ndarray) -> np.ndarray | None:
    """First and last context token of the first answer (None if unanswerable or untokenized)."""
    if not example.answers:
        return None
    answer = example.answers[0]
    first_char, end_char = answer.start, answer.start + len(answer.text)
    after_start = np.nonzero(offsets[:, 1] > first_char)[0]
    before_end = np.nonzero(offsets[:, 0] < end_char)[0]
    if not len(after_start) or not len(before_end) or after_start[0] > before_end[-1]:
        return None
    return np.array([after_start[0], before_end[-1]])


class _WindowView:
    """One window's context tokens with their logits and character spans."""

    def __init__(self, features: Features, offsets: np.ndarray, row: int, outputs: np.ndarray):
        begin, length = offsets[row], features.lengths[row]
        words = features.extras["word_index"][begin:begin + length]
        positions = np.nonzero(words >= 0)[0]
        #: Index of each context token of the window among the example's context tokens.
        self.context = words[positions]
        self.start_logits = outputs[row, positions, 0].astype(np.float64)
        self.end_logits = outputs[row, positions, 1].astype(np.float64)
        self.chars = features.extras["char_spans"][begin + positions]
        #: Start and end logits of the first token ([CLS]): "no answer".
        self.null_logits = (float(outputs[row, 0, 0]), float(outputs[row, 0, 1]))

    def span(self, start: int, end: int) -> tuple[float, float, float, int, int]:
        """``(score, start logit, end logit, first char, end char)`` of a token span."""
        start_logit, end_logit = float(self.start_logits[start]), float(self.end_logits[end])
        return (start_logit + end_logit, start_logit, end_logit,
                int(self.chars[start, 0]), int(self.chars[end, 1]))


def _max_context_windows(windows: list[_WindowView]) -> np.ndarray:
    """Per context token, the window where it has the most context (BERT's rule; first on ties)."""
    count = max(int(window.context[-1]) for window in windows) + 1
    best_score, best_window = np.full(count, -np.inf), np.full(count, -1)
    for number, window in enumerate(windows):
        first, last = window.context[0], window.context[-1]
        score = np.minimum(window.context - first, last - window.context) + 0.01 * len(window.context)
        better = score > best_score[window.context]
        best_score[window.context[better]] = score[better]
        best_window[window.context[better]] = number
    return best_window
