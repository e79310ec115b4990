"""What sentence-level tasks share: text columns in, one vector per example out."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from tfft.backbones.weights import dense_specs
from tfft.config import DataConfig, TaskConfig, config_field
from tfft.data.features import Features
from tfft.data.sources import Record
from tfft.data.tokenization import encode_texts
from tfft.errors import TfftError
from tfft.tasks.base import HfHead, Task, dense_head


@dataclasses.dataclass
class SentenceConfig(TaskConfig):
    """Sentence tasks: which columns hold the text and the label."""

    text_fields: list = config_field(
        ["sentence"], doc="One or two column names holding the text (or text pair)."
    )
    label_field: str = config_field("label", doc="Column name holding the label or score.")


@dataclasses.dataclass(frozen=True)
class SentenceExample:
    """A sentence or sentence pair with its label (None when unlabeled)."""

    texts: tuple[str, ...]
    label: Any
    where: str


class SentenceTask(Task):
    """A task on one sentence or a sentence pair, with a head on ``pooled_output``."""

    #: Width of the head's output.
    num_outputs: int
    example_type = SentenceExample
    config_class = SentenceConfig

    def __init__(self, config: SentenceConfig):
        super().__init__(config)
        if len(config.text_fields) not in (1, 2):
            raise TfftError(
                f"task.text_fields must name 1 or 2 columns, got {config.text_fields}; "
                "e.g. [sentence] or [sentence1, sentence2]"
            )

    @abc.abstractmethod
    def hf_config(self) -> dict:
        """``config.json`` entries of the Hugging Face sequence classifier (labels, problem)."""

    @abc.abstractmethod
    def parse_label(self, raw: Any, where: str) -> Any:
        """Converts a raw label value into the model's label (raising TfftError)."""

    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[SentenceExample]:
        """Reads ``data`` and checks every row's text and label columns."""
        records = self.read_records(data)
        return [self._example(record, labeled) for record in records]

    def _example(self, record: Record, labeled: bool) -> SentenceExample:
        texts = []
        for field in self.config.text_fields:
            text = self._field(record, field)
            if text is not None and not isinstance(text, str):
                raise TfftError(
                    f"{record.where}: column '{field}' holds the {type(text).__name__} {text!r:.40}, not "
                    "text; check task.text_fields, or write the value as a string"
                )
            if not text or not text.strip():
                raise TfftError(
                    f"{record.where}: column '{field}' is empty; remove the row or fill in the text"
                )
            texts.append(text)
        label = None
        if labeled:
            label = self.parse_label(self._field(record, self.config.label_field), record.where)
        return SentenceExample(tuple(texts), label, record.where)

    @staticmethod
    def _field(record: Record, field: str) -> Any:
        if field not in record.fields:
            raise TfftError(
                f"{record.where}: no column '{field}' (columns: {', '.join(map(str, record.fields))}); "
                "set task.text_fields / task.label_field to the right names"
            )
        return record.fields[field]

    def encode(self, examples: list[SentenceExample], tokenizer) -> Features:
        """Tokenizes the sentences (pairs when two text fields are configured)."""
        first = [example.texts[0] for example in examples]
        second = [example.texts[1] for example in examples] if len(self.config.text_fields) == 2 else None
        labeled = all(example.label is not None for example in examples)
        labels = [example.label for example in examples] if labeled else None
        return encode_texts(tokenizer, first, second, self.config.max_seq_length, labels)

    @property
    def text_inputs(self) -> dict[str, tf.TensorSpec]:
        """``text`` (and ``text_pair`` with two text fields): string ``[batch]``."""
        names = ("text", "text_pair")[: len(self.config.text_fields)]
        return {name: tf.TensorSpec([None], tf.string, name=name) for name in names}

    def text_features(self, texts: dict, tokenizer) -> dict:
        """Tokenized as in training: same truncation, pairs and special tokens."""
        return tokenizer.encode(texts["text"], texts.get("text_pair"), self.config.max_seq_length)

    def serving_texts(self, examples: list[SentenceExample]) -> dict[str, list[str]]:
        """``text`` (and ``text_pair``): each example's first (and second) text."""
        return {name: [example.texts[index] for example in examples]
                for index, name in enumerate(self.text_inputs)}

    def examples_from_texts(self, texts: dict[str, list]) -> list[SentenceExample]:
        """A sentence (pair) per ``text`` (and ``text_pair``)."""
        columns = [texts[name] for name in self.text_inputs]
        return [SentenceExample(tuple(values), None, f"text {index}")
                for index, values in enumerate(zip(*columns, strict=True))]

    def served_rows(self, examples: list[SentenceExample], outputs: dict[str, np.ndarray]) -> list[dict]:
        """Rows as :meth:`predictions` writes them: the texts by column, then the prediction."""
        rows = []
        for index, example in enumerate(examples):
            prediction = self.served_prediction({name: values[index] for name, values in outputs.items()})
            rows.append(self._with_texts(example, prediction))
        return rows

    @abc.abstractmethod
    def served_prediction(self, outputs: dict[str, np.ndarray]) -> dict:
        """One example's prediction, as in :meth:`predictions`, from its ``serving_default`` outputs."""

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """Dropout and a dense layer on ``pooled_output``; float32 outputs."""
        return dense_head(backbone_outputs["pooled_output"], self.num_outputs, dropout)

    def hf_head(self, model, backbone) -> HfHead:
        """``{Family}ForSequenceClassification``: the pooler, then the family's classifier."""
        specs = dense_specs(model.get_layer("head"), backbone.classifier_key)
        pooler_key = backbone.classifier_pooler_key or backbone.base_pooler_key
        return HfHead("ForSequenceClassification", specs, self.hf_config(), pooler_key)

    def _with_texts(self, example: SentenceExample, prediction: dict) -> dict:
        return {**dict(zip(self.config.text_fields, example.texts, strict=True)), **prediction}

    def _probabilities(self, probabilities: np.ndarray) -> dict[str, float]:
        """Each label name's probability, rounded to 6 decimals."""
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()
        return dict(zip(self.label_names, rounded, strict=True))
