"""Sentence (pair) classification: softmax head, accuracy, F1 and Matthews correlation."""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfft.config import config_field
from tfft.errors import TfftError
from tfft.tasks import metrics
from tfft.tasks.base import register_task
from tfft.tasks.sentence import SentenceConfig, SentenceExample, SentenceTask


@dataclasses.dataclass
class SentenceClassificationConfig(SentenceConfig):
    """Classes of ``task.type: sentence_classification``."""

    num_labels: int = config_field(2, doc="Number of classes.")
    label_list: list = config_field(
        [], doc="Class names as they appear in the data, in label-id order (default: 0..N-1)."
    )


@register_task
class SentenceClassification(SentenceTask):
    """Classifies a sentence or sentence pair into ``task.num_labels`` classes.

    Labels in the data are matched against ``task.label_list`` (as strings); without
    a label list the classes are ``0 .. num_labels-1``. Integer labels from JSONL or
    TFDS are class ids.
    """

    name = "sentence_classification"
    pipeline_tag = "text-classification"
    default_main_metric = "accuracy"
    metric_names = ("loss", "accuracy", "f1", "matthews_corrcoef")
    config_class = SentenceClassificationConfig

    def __init__(self, config: SentenceClassificationConfig):
        super().__init__(config)
        if config.label_list and len(config.label_list) != config.num_labels:
            raise TfftError(
                f"task.num_labels is {config.num_labels} but task.label_list has "
                f"{len(config.label_list)} entries; make them agree"
            )
        if any(isinstance(name, bool) for name in config.label_list):
            raise TfftError(
                f"task.label_list {config.label_list} holds booleans (YAML reads yes/no/true/"
                "false unquoted as such); quote the labels, e.g. [\"yes\", \"no\"]"
            )
        if config.num_labels < 2:
            raise TfftError(f"task.num_labels must be at least 2, got {config.num_labels}")
        self.num_outputs = config.num_labels
        self._label_ids = {name: index for index, name in enumerate(self.label_names)}

    @property
    def label_names(self) -> list[str]:
        """``task.label_list`` as strings, or ``"0" .. "N-1"``."""
        return [str(name) for name in self.config.label_list] or [
            str(index) for index in range(self.config.num_labels)
        ]

    def hf_config(self) -> dict:
        """Single-label classification over the label names."""
        names = self.label_names
        return {
            "problem_type": "single_label_classification",
            "id2label": dict(enumerate(names)),
            "label2id": {name: index for index, name in enumerate(names)},
        }

    def parse_label(self, raw: Any, where: str) -> int:
        """Maps a label name (or an integer class id) to its class id."""
        if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
            if 0 <= raw < self.num_outputs:
                return int(raw)
            raise TfftError(
                f"{where}: label {raw} is out of range for task.num_labels={self.num_outputs}; "
                "fix the label or raise task.num_labels"
            )
        key = str(raw).strip()
        if key not in self._label_ids:
            raise TfftError(
                f"{where}: label '{key}' is not in task.label_list {self.label_names}; "
                "fix the row or add the label to task.label_list"
            )
        return self._label_ids[key]

    def loss(self):
        """Softmax cross-entropy on logits."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def train_metrics(self):
        """Streaming accuracy."""
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]

    def evaluate(self, outputs: np.ndarray, features) -> dict[str, float]:
        """Loss, accuracy, F1 (class 1 if binary, else macro) and MCC."""
        labels = features.labels.astype(np.int64)
        predicted = outputs.argmax(axis=-1)
        return {
            "loss": metrics.softmax_cross_entropy(outputs, labels),
            "accuracy": metrics.accuracy(predicted, labels),
            "f1": metrics.f1_score(predicted, labels, self.num_outputs),
            "matthews_corrcoef": metrics.matthews_corrcoef(predicted, labels, self.num_outputs),
        }

    def baseline_metrics(self, features) -> dict[str, float]:
        """Accuracy, F1 and MCC of always predicting the most frequent class."""
        labels = features.labels.astype(np.int64)
        majority = np.bincount(labels, minlength=self.num_outputs).argmax()
        outputs = np.eye(self.num_outputs, dtype=np.float32)[np.full(len(labels), majority)]
        return {name: value for name, value in self.evaluate(outputs, features).items() if name != "loss"}

    def predictions(self, examples: list[SentenceExample], features, outputs: np.ndarray) -> list[dict]:
        """The texts, the predicted label name and the class probabilities."""
        probabilities = metrics.softmax(outputs.astype(np.float64))
        names = self.label_names
        return [self._with_texts(example, self._prediction(names[int(row.argmax())], row))
                for example, row in zip(examples, probabilities, strict=True)]

    def served_prediction(self, outputs: dict[str, np.ndarray]) -> dict:
        """The served ``label`` and ``probabilities``."""
        return self._prediction(outputs["label"].decode("utf-8"), outputs["probabilities"])

    def _prediction(self, label: str, probabilities: np.ndarray) -> dict:
        """The label name and each class's probability (6 decimals)."""
        return {"label": label, "probabilities": self._probabilities(probabilities)}

    def serving_outputs(self, outputs) -> dict:
        """``logits`` and ``probabilities`` [batch, num_labels]."""
        return {"logits": outputs, "probabilities": keras.ops.softmax(outputs, axis=-1)}

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """``logits``, ``probabilities`` and the predicted ``label`` name (string [batch])."""
        names = tf.constant(self.label_names)
        return {**self.serving_outputs(outputs), "label": tf.gather(names, tf.argmax(outputs, axis=-1))}
