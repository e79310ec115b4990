"""Multiple choice: pick the right answer among candidates (CommonsenseQA, ARC, OpenBookQA, RACE, SWAG).

Every candidate is paired with what comes before it: the passage (``article``,
``sent1``, ``task.context_field``) as the first sequence and the question joined with
the candidate as the second (a ``_`` blank in the question is filled with the
candidate, as in RACE), or, without a passage, the question and the candidate. An
example's pairs are one row of ``[choices, seq]`` model inputs; one shared head scores
each candidate from ``pooled_output``, and a softmax over the choices gives the
answer (Hugging Face's ``…ForMultipleChoice``). Examples with fewer candidates than
``task.num_choices`` are padded with empty choices that score :data:`ABSENT_LOGIT`.

Layouts read, per record of any format (JSONL, JSON, CSV, TFDS):

- AI2 (CommonsenseQA, ARC, OpenBookQA): ``{"id", "answerKey", "question": {"stem",
  "choices": [{"label", "text"}]}}``; the answer key is one of the choices' labels
  (letters or digits);
- RACE as released: ``{"id", "article", "questions", "options", "answers"}`` per passage
  (one example per question; answers are letters), or one question per record
  (``article``, ``question``, ``options``, ``answer``) as on the Hugging Face Hub;
- SWAG: ``sent1``, ``sent2``, ``ending0`` ... ``endingN``, ``label``; HellaSwag: ``ctx_a``
  (or ``ctx``), ``ctx_b``, ``endings``, ``label``;
- plain: ``{"question", "choices": [...], "label"}`` with an optional ``context`` and
  ``id``; the label is the correct choice's index, its text or its letter.
"""

from __future__ import annotations

import dataclasses
import logging
import string
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones.weights import dense_specs
from tfft.config import DataConfig, TaskConfig, config_field
from tfft.data.features import Features, FeatureSpec, FeatureSpecs, token_specs
from tfft.data.sources import Record
from tfft.data.tokenization import encode_texts
from tfft.errors import TfftError
from tfft.tasks import metrics
from tfft.tasks.base import HfHead, Task, dense_head, register_task

#: Score of the padding choices of examples with fewer candidates than ``task.num_choices``.
ABSENT_LOGIT = -10000.0
#: Where ``…ForMultipleChoice`` keeps the pooler, for families whose base pooler key differs.
_HF_POOLER_KEYS = {"Electra": "sequence_summary.summary"}


@dataclasses.dataclass
class MultipleChoiceConfig(TaskConfig):
    """Choices of ``task.type: multiple_choice``."""

    num_choices: int = config_field(
        0, doc="Candidates per example the model takes (0: the most in the training data); examples "
        "with fewer are padded and the padding masked."
    )
    context_field: str = config_field(
        "context", doc="Field of a passage given with every candidate, where the layout has none of its "
        "own (e.g. fact1 for OpenBookQA)."
    )


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
    """A question with its candidate answers.

    Attributes:
        id: The example's id (RACE: the passage id and the question's number).
        context: The passage given with every candidate ("" if none).
        question: The question, or the start of the sentence the candidates complete.
        choices: The candidate answers.
        labels: The candidates' labels as the data names them (``A``.., ``1``.., ``0``..).
        answer: Index of the correct candidate (None when unlabeled).
        where: Where the example was read, for messages.
    """

    id: str
    context: str
    question: str
    choices: tuple[str, ...]
    labels: tuple[str, ...]
    answer: int | None
    where: str

    def pairs(self) -> list[tuple[str, str]]:
        """The (first, second) sequence of every candidate."""
        if not self.context:
            return [(self.question, choice) for choice in self.choices]
        return [(self.context, _join(self.question, choice)) for choice in self.choices]


def _letters(count: int) -> list[str]:
    """Candidate labels ``A``, ``B``... (then numbers past ``Z``)."""
    return [string.ascii_uppercase[i] if i < 26 else str(i) for i in range(count)]


def _join(question: str, choice: str) -> str:
    """The question with the candidate in its ``_`` blank, or followed by it."""
    if "_" in question:
        return question.replace("_", choice)
    return f"{question} {choice}".strip()


@register_task
class MultipleChoice(Task):
    """Picks the correct candidate answer of each question, with one head over ``[choices, seq]``."""

    name = "multiple_choice"
    pipeline_tag = "multiple-choice"
    default_main_metric = "accuracy"
    metric_names = ("loss", "accuracy")
    example_type = ChoiceExample
    #: RACE ships every passage as one JSON object in a ``.txt`` file.
    format_suffixes = {".txt": "json"}
    config_class = MultipleChoiceConfig

    def __init__(self, config: MultipleChoiceConfig):
        super().__init__(config)
        if config.num_choices < 0 or config.num_choices == 1:
            raise TfftError(
                f"task.num_choices must be 0 (from the training data) or at least 2, got {config.num_choices}"
            )

    @property
    def feature_specs(self) -> FeatureSpecs:
        """Token inputs ``[batch, num_choices, seq]``; the label is the correct choice's index.

        Raises:
            TfftError: while ``task.num_choices`` is still unknown (0).
        """
        if not self.config.num_choices:
            raise TfftError(
                "task.num_choices is 0 and no training text set it; set task.num_choices to the most "
                "candidates an example has"
            )
        return token_specs(FeatureSpec(()), sequences=self.config.num_choices)

    # --- data --------------------------------------------------------------------------

    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[ChoiceExample]:
        """Reads every record's questions in whichever layout it has."""
        records = self.read_records(data)
        examples = [example for record in records for example in self._examples(record, labeled)]
        if self.config.num_choices:
            for example in examples:
                self._check_fits(example)
        return examples

    def _examples(self, record: Record, labeled: bool) -> list[ChoiceExample]:
        fields = record.fields
        if isinstance(fields.get("question"), dict):
            return [self._ai2(record, labeled)]
        if "questions" in fields and "article" in fields:
            return self._race_passage(record, labeled)
        if "options" in fields and "article" in fields:
            return [self._example(record, fields.get("example_id"), fields["article"], fields.get("question"),
                                  fields["options"], None, fields.get("answer"), labeled)]
        if "ending0" in fields:
            endings = [fields[f"ending{i}"] for i in range(len(fields)) if f"ending{i}" in fields]
            return [self._example(record, fields.get("id"), fields.get("sent1"), fields.get("sent2", ""),
                                  endings, None, fields.get("label"), labeled)]
        if "endings" in fields:
            context = fields.get("ctx_a", fields.get("ctx"))
            return [self._example(record, fields.get("ind"), context, fields.get("ctx_b", ""),
                                  fields["endings"], None, fields.get("label"), labeled)]
        if "choices" in fields:
            return [self._example(record, fields.get("id"), fields.get(self.config.context_field, ""),
                                  fields.get("question"), fields["choices"], None, fields.get("label"),
                                  labeled)]
        raise TfftError(
            f"{record.where}: no multiple-choice layout found (fields: {', '.join(map(str, fields))}); "
            "use the AI2 (question.choices + answerKey), RACE, SWAG or {question, choices, label} layout"
        )

    def _ai2(self, record: Record, labeled: bool) -> ChoiceExample:
        question, fields = record.fields["question"], record.fields
        choices = question.get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, dict) and "text" in c for c in choices):
            raise TfftError(
                f"{record.where}: question.choices must be a list of {{label, text}}; fix the row"
            )
        labels = [str(choice.get("label", index)).strip() for index, choice in enumerate(choices)]
        context = fields.get(self.config.context_field, question.get("para", ""))
        return self._example(record, fields.get("id"), context, question.get("stem"),
                             [choice["text"] for choice in choices], labels, fields.get("answerKey"), labeled)

    def _race_passage(self, record: Record, labeled: bool) -> list[ChoiceExample]:
        fields = record.fields
        questions, options = fields["questions"], fields.get("options")
        answers = fields.get("answers") or [None] * len(questions)
        if not (isinstance(options, list) and len(options) == len(questions) == len(answers)):
            raise TfftError(
                f"{record.where}: RACE passage needs as many options and answers as questions "
                f"({len(questions)}); fix the record"
            )
        passage = fields.get("id", record.where)
        return [self._example(record, f"{passage}-{number}", fields["article"], question, choices, None,
                              answer, labeled)
                for number, (question, choices, answer) in enumerate(zip(questions, options, answers,
                                                                            strict=True))]

    def _example(self, record: Record, example_id, context, question, choices, labels, answer,
                 labeled: bool) -> ChoiceExample:
        """Checks one question's texts and answer."""
        where = record.where
        if not isinstance(choices, list) or len(choices) < 2:
            raise TfftError(
                f"{where}: a question needs at least 2 candidate answers, got {choices!r}; fix it"
            )
        for text, name in ((context or "", "context"), (question or "", "question"),
                           *((choice, "candidate") for choice in choices)):
            if not isinstance(text, str):
                raise TfftError(f"{where}: the {name} {text!r} is not text; fix the row")
        if not any(text.strip() for text in (context or "", question or "")) or not all(
                choice.strip() for choice in choices):
            raise TfftError(f"{where}: empty question or candidate answer; fill it in or remove the row")
        count = len(choices)
        labels = labels or (_letters(count) if _is_letter(answer) else [str(i) for i in range(count)])
        index = self._answer_index(answer, labels, choices, where) if labeled else None
        return ChoiceExample(str(example_id if example_id is not None else where), (context or "").strip(),
                             (question or "").strip(), tuple(choices), tuple(labels), index, where)

    @staticmethod
    def _answer_index(answer: Any, labels: list[str], choices: list[str], where: str) -> int:
        """The correct choice's index from its label, index or text."""
        if answer is None or (isinstance(answer, str) and not answer.strip()):
            raise TfftError(f"{where}: no answer (answerKey, answer or label); label the row or remove it")
        key = str(answer).strip()
        if key in labels:
            return labels.index(key)
        is_index = isinstance(answer, (int, np.integer)) and not isinstance(answer, bool)
        if is_index and 0 <= answer < len(choices):
            return int(answer)
        if key in choices:
            return choices.index(key)
        raise TfftError(
            f"{where}: answer {answer!r} is none of the choices' labels {', '.join(labels)}; fix the answer"
        )

    def _check_fits(self, example: ChoiceExample) -> None:
        if len(example.choices) > self.config.num_choices:
            raise TfftError(
                f"{example.where}: question '{example.id}' has {len(example.choices)} candidate answers but "
                f"task.num_choices is {self.config.num_choices}; raise task.num_choices"
            )

    def prepare(self, train_examples: list[ChoiceExample]) -> None:
        """Takes ``task.num_choices`` from the training data if the config has none."""
        if not self.config.num_choices:
            self.config.num_choices = max(len(example.choices) for example in train_examples)
            logging.info("task.num_choices from the training data: %d", self.config.num_choices)
        for example in train_examples:
            self._check_fits(example)

    def encode(self, examples: list[ChoiceExample], tokenizer) -> Features:
        """Every candidate as a sequence pair; an example's pairs form one row."""
        pairs = [pair for example in examples for pair in example.pairs()]
        labeled = all(example.answer is not None for example in examples)
        features = encode_texts(tokenizer, [first for first, _ in pairs], [second for _, second in pairs],
                                self.config.max_seq_length)
        features.sequences = np.array([len(example.choices) for example in examples], dtype=np.int32)
        if labeled:
            features.labels = np.array([example.answer for example in examples], dtype=np.int32)
        return features

    # --- model -------------------------------------------------------------------------

    def build_model(self, backbone, dropout: float) -> keras.Model:
        """The backbone over every candidate as a row of its own (``[batch * choices, seq]``)."""
        inputs = self.model_inputs()
        outputs = self.build_head(backbone(ChoicesAsRows(name="choices_as_rows")(inputs)), inputs, dropout)
        return keras.Model(inputs, outputs, name=f"{self.name}_model")

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """One float32 score per candidate from its ``pooled_output``: logits ``[batch, choices]``."""
        scores = dense_head(backbone_outputs["pooled_output"], 1, dropout)
        return ChoiceScores(self.config.num_choices, name="choice_scores")(scores, inputs["attention_mask"])

    def loss(self):
        """Softmax cross-entropy over the choices."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def train_metrics(self):
        """Streaming accuracy."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    # --- outputs -----------------------------------------------------------------------

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Accuracy and loss over the questions."""
        labels = features.labels.astype(np.int64)
        return {"loss": metrics.softmax_cross_entropy(outputs, labels),
                "accuracy": metrics.accuracy(outputs.argmax(axis=-1), labels)}

    def predictions(self, examples: list[ChoiceExample], features: Features, outputs) -> list[dict]:
        """Per question: ``id``, the chosen ``label`` and ``answer`` text, and every choice's probability."""
        rows = []
        for example, scores in zip(examples, outputs, strict=True):
            probabilities = metrics.softmax(scores[:len(example.choices)].astype(np.float64))
            best = int(probabilities.argmax())
            rows.append({
                "id": example.id, "label": example.labels[best], "answer": example.choices[best],
                "probabilities": dict(zip(example.labels, np.round(probabilities, 6).tolist(), strict=True)),
            })
        return rows

    def serving_outputs(self, outputs) -> dict:
        """``logits`` and ``probabilities`` [batch, num_choices] (padding choices: probability 0)."""
        return {"logits": outputs, "probabilities": keras.ops.softmax(outputs, axis=-1)}

    @property
    def text_inputs(self) -> dict[str, tf.TensorSpec]:
        """``question``, ``context`` ("" for none) and ``choices`` (``[batch, num_choices]``, "" if absent).

        All strings; ``question`` and ``context`` are ``[batch]``.
        """
        shapes = {"question": [None], "context": [None], "choices": [None, self.config.num_choices]}
        return {name: tf.TensorSpec(shape, tf.string, name=name) for name, shape in shapes.items()}

    def text_features(self, texts: dict, tokenizer) -> dict:
        """Every candidate paired as in training (:meth:`ChoiceExample.pairs`); absent ones masked."""
        choices = texts["choices"]
        count = tf.shape(choices)[1]
        question, context = (tf.repeat(texts[name], count) for name in ("question", "context"))
        choice = tf.reshape(choices, [-1])
        has_context = tf.strings.length(context) > 0
        first = tf.where(has_context, context, question)
        second = tf.where(has_context, _join_in_graph(question, choice), choice)
        encoded = tokenizer.encode(first, second, self.config.max_seq_length)
        present = tf.cast(tf.strings.length(choice) > 0, tf.int32)[:, None]
        encoded["attention_mask"] *= present
        shape = tf.stack([-1, count, tf.shape(encoded["input_ids"])[1]])
        return {name: tf.reshape(value, shape) for name, value in encoded.items()}

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """``logits``, ``probabilities``, the chosen candidate's index ``choice`` and its text ``answer``."""
        choice = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        return {**self.serving_outputs(outputs), "choice": choice,
                "answer": tf.gather(texts["choices"], choice, batch_dims=1)}

    def serving_texts(self, examples: list[ChoiceExample]) -> dict[str, list]:
        """``question``, ``context`` and ``choices`` padded with "" to ``task.num_choices``.

        Raises:
            TfftError: for an example with more candidates than the model takes.
        """
        count = self.config.num_choices
        for example in examples:
            if len(example.choices) > count:
                raise TfftError(f"{example.where}: {len(example.choices)} choices, but the model takes at "
                                f"most task.num_choices={count}; remove choices")
        return {"question": [e.question for e in examples], "context": [e.context for e in examples],
                "choices": [list(e.choices) + [""] * (count - len(e.choices)) for e in examples]}

    def examples_from_texts(self, texts: dict[str, list]) -> list[ChoiceExample]:
        """A question per ``question``, ``context`` and ``choices`` (labelled ``A``, ``B``...)."""
        rows = zip(texts["question"], texts["context"], texts["choices"], strict=True)
        return [ChoiceExample(str(index), context, question, tuple(choices),
                              tuple(_letters(len(choices))), None, f"question {index}")
                for index, (question, context, choices) in enumerate(rows)]

    def served_rows(self, examples: list[ChoiceExample], outputs: dict[str, np.ndarray]) -> list[dict]:
        """Rows as :meth:`predictions` writes them, from the served ``logits``."""
        return self.predictions(examples, None, outputs["logits"])

    def hf_head(self, model, backbone) -> HfHead:
        """``{Family}ForMultipleChoice``: the family's pooler, then a ``classifier`` scoring each choice."""
        specs = dense_specs(model.get_layer("head"), "classifier")
        pooler_key = _HF_POOLER_KEYS.get(backbone.hf_class_prefix) or (
            backbone.base_pooler_key or backbone.classifier_pooler_key)
        return HfHead("ForMultipleChoice", specs, {}, pooler_key)


def _join_in_graph(questions, choices):
    """:func:`_join` on string tensors: each candidate in its question's ``_`` blanks, or after it."""
    pieces = tf.strings.split(questions, "_")
    flat = pieces.flat_values
    last = tf.ragged.range(pieces.row_lengths()).flat_values == tf.gather(pieces.row_lengths() - 1,
                                                                          pieces.value_rowids())
    filled = tf.where(last, flat, tf.strings.join([flat, tf.gather(choices, pieces.value_rowids())]))
    blanks = tf.strings.reduce_join(pieces.with_flat_values(filled), axis=1)
    appended = tf.strings.strip(tf.strings.join([questions, choices], separator=" "))
    return tf.where(pieces.row_lengths() > 1, blanks, appended)


def _is_letter(answer: Any) -> bool:
    return isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip() in string.ascii_uppercase


class ChoicesAsRows(keras.layers.Layer):
    """``[batch, choices, seq]`` inputs as ``[batch * choices, seq]`` rows for the backbone."""

    def call(self, inputs: dict) -> dict:  # noqa: D102
        return {name: keras.ops.reshape(value, (-1, keras.ops.shape(value)[-1]))
                for name, value in inputs.items()}


class ChoiceScores(keras.layers.Layer):
    """Scores ``[batch * choices, 1]`` as ``[batch, choices]``; absent choices get :data:`ABSENT_LOGIT`.

    Args:
        num_choices: Choices per example.
    """

    def __init__(self, num_choices: int, **kwargs):
        super().__init__(**kwargs)
        self.num_choices = num_choices

    def call(self, scores, attention_mask):  # noqa: D102
        scores = keras.ops.reshape(scores, (-1, self.num_choices))
        present = attention_mask[:, :, 0] > 0
        return keras.ops.where(present, scores, ABSENT_LOGIT)

    def get_config(self) -> dict:  # noqa: D102
        return {**super().get_config(), "num_choices": self.num_choices}
