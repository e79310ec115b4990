"""Multi-label classification: any number of labels per text (GoEmotions, topic tagging).

One sigmoid per label and binary cross-entropy, as Hugging Face's sequence classifier
with ``problem_type: multi_label_classification``. A label is predicted when its
probability reaches ``task.threshold``; evaluation also searches the threshold that
scores best on the validation data and reports it with its scores.

Labels are read from a list field (JSON Lines, TFDS) or a column holding several
separated by ``task.label_separator`` (``2,27``; an empty cell means no label). Each
is a name of ``task.label_list`` or, where it is not one, a label id (an integer or
digit string below the number of labels), so GoEmotions' id columns map through its
list of emotion names. Without a label list the names come from the training data.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfft.config import config_field
from tfft.data.features import Features, FeatureSpec, FeatureSpecs, token_specs
from tfft.data.tokenization import encode_texts
from tfft.errors import TfftError
from tfft.tasks import distillation
from tfft.tasks.base import register_task
from tfft.tasks.sentence import SentenceConfig, SentenceExample, SentenceTask

#: Thresholds tried for ``best_threshold``.
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)


@dataclasses.dataclass
class MultiLabelClassificationConfig(SentenceConfig):
    """Labels and decision threshold of ``task.type: multi_label_classification``."""

    label_field: str = config_field("labels", doc="The field holding the labels (a list, or separated text).")
    label_list: list = config_field(
        [], doc="Label names in id order; ids in the data map through it (default: from the training data)."
    )
    num_labels: int = config_field(
        0, doc="Number of labels (0: from label_list or the training data)."
    )
    threshold: float = config_field(0.5, doc="A label is predicted when its probability reaches this.")
    label_separator: str = config_field(",", doc="Separates the labels of a text column.")


def multi_label_scores(probabilities: np.ndarray, labels: np.ndarray, threshold: float,
                       names: list[str]) -> dict[str, float]:
    """Micro and macro F1, micro precision/recall, exact match and F1 per label at ``threshold``.

    A label that is neither gold nor predicted anywhere has F1 0 (scikit-learn's
    ``zero_division=0``).
    """
    predicted, gold = probabilities >= threshold, labels > 0.5
    true_positives = (predicted & gold).sum(axis=0)
    predicted_counts, gold_counts = predicted.sum(axis=0), gold.sum(axis=0)
    per_label = np.divide(2 * true_positives, predicted_counts + gold_counts,
                          out=np.zeros(len(names)), where=(predicted_counts + gold_counts) > 0)
    correct, guessed, actual = true_positives.sum(), predicted_counts.sum(), gold_counts.sum()
    return {
        "micro_f1": float(2 * correct / (guessed + actual)) if guessed + actual else 0.0,
        "macro_f1": float(per_label.mean()),
        "micro_precision": float(correct / guessed) if guessed else 0.0,
        "micro_recall": float(correct / actual) if actual else 0.0,
        "exact_match": float(np.mean((predicted == gold).all(axis=1))),
        **{f"f1_{name}": float(value) for name, value in zip(names, per_label, strict=True)},
    }


@register_task
class MultiLabelClassification(SentenceTask):
    """Predicts every label that applies to a sentence (or sentence pair)."""

    name = "multi_label_classification"
    pipeline_tag = "text-classification"
    default_main_metric = "micro_f1"
    metric_names = ("loss", "micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_match",
                    "best_micro_f1", "best_macro_f1")
    config_class = MultiLabelClassificationConfig

    def __init__(self, config: MultiLabelClassificationConfig):
        super().__init__(config)
        if config.label_list and config.num_labels not in (0, len(config.label_list)):
            raise TfftError(
                f"task.num_labels is {config.num_labels} but task.label_list has {len(config.label_list)} "
                "entries; make them agree"
            )
        if not 0 < config.threshold < 1:
            raise TfftError(f"task.threshold must be between 0 and 1, got {config.threshold}")
        if config.label_list:
            config.num_labels = len(config.label_list)

    @property
    def num_outputs(self) -> int:
        """One output per label."""
        return self.config.num_labels

    @property
    def label_names(self) -> list[str]:
        """``task.label_list`` as strings, or ``"0" .. "N-1"``."""
        names = [str(name) for name in self.config.label_list]
        return names or [str(index) for index in range(self.config.num_labels)]

    @property
    def feature_specs(self) -> FeatureSpecs:
        """Token inputs; the label is a float32 multi-hot vector ``[num_labels]``.

        Raises:
            TfftError: while the labels are still unknown.
        """
        if not self.num_outputs:
            raise TfftError("the labels are unknown: set task.label_list (or task.num_labels for label ids)")
        return token_specs(FeatureSpec((self.num_outputs,), "float32"))

    # --- data --------------------------------------------------------------------------

    def parse_label(self, raw: Any, where: str) -> tuple:
        """The example's labels as written: a list, or text cut at ``task.label_separator``."""
        if isinstance(raw, str):
            items = [part.strip() for part in raw.split(self.config.label_separator)]
            return tuple(part for part in items if part)
        if isinstance(raw, (list, tuple)):
            return tuple(item.strip() if isinstance(item, str) else item for item in raw)
        if isinstance(raw, (int, np.integer)) and not isinstance(raw, bool):
            return (int(raw),)
        raise TfftError(
            f"{where}: labels {raw!r} are neither a list nor text; give a list or "
            f"'{self.config.label_separator}'-separated labels"
        )

    def _label_id(self, item: Any, ids: dict[str, int], where: str) -> int:
        """A label's id: by name, else as an id below the number of labels."""
        if str(item) in ids:
            return ids[str(item)]
        if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.isdigit()):
            if 0 <= int(item) < self.num_outputs:
                return int(item)
        raise TfftError(
            f"{where}: label {item!r} is neither a name of task.label_list nor an id below "
            f"{self.num_outputs}; fix the row or the list"
        )

    def prepare(self, train_examples: list[SentenceExample]) -> None:
        """Takes the labels from the training data if the config has neither list nor count."""
        if self.num_outputs:
            return
        items = {item for example in train_examples for item in example.label}
        if all(isinstance(item, int) or str(item).isdigit() for item in items):
            self.config.num_labels = max(int(item) for item in items) + 1
        else:
            self.config.label_list = sorted(str(item) for item in items)
            self.config.num_labels = len(self.config.label_list)
        logging.info("labels from the training data: %s", self.label_names)

    def encode(self, examples: list[SentenceExample], tokenizer) -> Features:
        """Tokenizes the texts; labels become multi-hot float32 vectors."""
        labels = None
        if all(example.label is not None for example in examples):
            ids = {name: index for index, name in enumerate(self.label_names)}
            labels = np.zeros((len(examples), self.num_outputs), dtype=np.float32)
            for row, example in enumerate(examples):
                for item in example.label:
                    labels[row, self._label_id(item, ids, example.where)] = 1.0
        texts = list(zip(*(example.texts for example in examples), strict=True))
        second = list(texts[1]) if len(texts) == 2 else None
        return encode_texts(tokenizer, list(texts[0]), second, self.config.max_seq_length, labels)

    def hf_config(self) -> dict:
        """Multi-label classification over the label names."""
        names = self.label_names
        return {"problem_type": "multi_label_classification", "id2label": dict(enumerate(names)),
                "label2id": {name: index for index, name in enumerate(names)}}

    # --- model and outputs -------------------------------------------------------------

    def distillation_loss(self, outputs, teacher_outputs, labels, temperature):
        """The binary KL of each label's sigmoid at ``temperature`` from the teacher's."""
        del labels
        return keras.ops.mean(distillation.sigmoid_kl(outputs, teacher_outputs, temperature))

    def loss(self):
        """Binary cross-entropy of every label, from logits."""
        return keras.losses.BinaryCrossentropy(from_logits=True)

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Scores at ``task.threshold``, and the best threshold on this data with its scores."""
        logits, labels = outputs.astype(np.float64), features.labels.astype(np.float64)
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        loss = np.mean(np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits))))
        names = self.label_names
        key = "macro_f1" if self.main_metric == "macro_f1" else "micro_f1"
        sweep = [multi_label_scores(probabilities, labels, t, names) for t in THRESHOLDS]
        best = int(np.argmax([scores[key] for scores in sweep]))
        scores = multi_label_scores(probabilities, labels, self.config.threshold, names)
        return {"loss": float(loss), **scores, "best_threshold": float(THRESHOLDS[best]),
                "best_micro_f1": sweep[best]["micro_f1"], "best_macro_f1": sweep[best]["macro_f1"]}

    def predictions(self, examples: list[SentenceExample], features, outputs: np.ndarray) -> list[dict]:
        """The texts, the labels at ``task.threshold`` and every label's probability."""
        probabilities = 1.0 / (1.0 + np.exp(-outputs.astype(np.float64)))
        names = self.label_names
        return [
            self._with_texts(example, self._prediction(
                [name for name, p in zip(names, row, strict=True) if p >= self.config.threshold], row))
            for example, row in zip(examples, probabilities, strict=True)
        ]

    def served_prediction(self, outputs: dict[str, np.ndarray]) -> dict:
        """The served ``labels`` (without the "" of labels below the threshold) and ``probabilities``."""
        labels = [name.decode("utf-8") for name in outputs["labels"] if name]
        return self._prediction(labels, outputs["probabilities"])

    def _prediction(self, labels: list[str], probabilities: np.ndarray) -> dict:
        """The predicted labels and every label's probability (6 decimals)."""
        return {"labels": labels, "probabilities": self._probabilities(probabilities)}

    def serving_outputs(self, outputs) -> dict:
        """``logits`` and ``probabilities`` (sigmoid) [batch, num_labels]."""
        return {"logits": outputs, "probabilities": keras.ops.sigmoid(outputs)}

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """The serving outputs and ``labels``: string [batch, num_labels].

        Each label's name where its probability reaches ``task.threshold``, else "".
        """
        served = self.serving_outputs(outputs)
        names = tf.broadcast_to(tf.constant(self.label_names), tf.shape(outputs))
        chosen = served["probabilities"] >= self.config.threshold
        return {**served, "labels": tf.where(chosen, names, tf.constant(""))}
