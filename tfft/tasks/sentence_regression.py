"""Sentence (pair) regression, e.g. STS-B similarity: one score, MSE, Pearson/Spearman."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from tfft.data.features import FeatureSpec
from tfft.errors import TfftError
from tfft.tasks import metrics
from tfft.tasks.base import register_task
from tfft.tasks.sentence import SentenceExample, SentenceTask


@register_task
class SentenceRegression(SentenceTask):
    """Predicts one real-valued score per sentence or sentence pair."""

    name = "sentence_regression"
    pipeline_tag = "text-classification"
    default_main_metric = "pearson"
    metric_names = ("loss", "pearson", "spearman")
    num_outputs = 1
    label_spec = FeatureSpec((), "float32")

    def hf_config(self) -> dict:
        """Regression: one output, MSE loss in transformers."""
        return {"problem_type": "regression", "id2label": {0: "score"}, "label2id": {"score": 0}}

    def parse_label(self, raw: Any, where: str) -> float:
        """Reads the score as a float."""
        try:
            score = float(raw)
        except (TypeError, ValueError):
            score = float("nan")
        if not np.isfinite(score):
            raise TfftError(f"{where}: score {raw!r} is not a finite number; fix the row")
        return score

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """One output per example, shape [batch]."""
        return keras.ops.squeeze(super().build_head(backbone_outputs, inputs, dropout), axis=-1)

    def distillation_loss(self, outputs, teacher_outputs, labels, temperature):
        """The squared difference from the teacher's scores (a temperature has no meaning here)."""
        del labels, temperature
        return keras.ops.mean(keras.ops.square(outputs - keras.ops.cast(teacher_outputs, outputs.dtype)))

    def loss(self):
        """Mean squared error."""
        return keras.losses.MeanSquaredError()

    def evaluate(self, outputs: np.ndarray, features) -> dict[str, float]:
        """MSE (as ``loss``), Pearson and Spearman correlation."""
        outputs, labels = outputs.astype(np.float64), features.labels.astype(np.float64)
        return {
            "loss": float(np.mean((outputs - labels) ** 2)),
            "pearson": metrics.pearson(outputs, labels),
            "spearman": metrics.spearman(outputs, labels),
        }

    def baseline_metrics(self, features) -> dict[str, float]:
        """Always predicting the mean score: MSE the scores' variance, no correlation."""
        return {"loss": float(np.var(features.labels.astype(np.float64))), "pearson": 0.0, "spearman": 0.0}

    def predictions(self, examples: list[SentenceExample], features, outputs: np.ndarray) -> list[dict]:
        """The texts and the predicted score."""
        return [self._with_texts(example, self.served_prediction({"score": score}))
                for example, score in zip(examples, outputs, strict=True)]

    def served_prediction(self, outputs: dict[str, np.ndarray]) -> dict:
        """The ``score`` (6 decimals)."""
        return {"score": round(float(outputs["score"]), 6)}

    def outputs_from_serving(self, served):
        """The ``predictions``."""
        return served["predictions"]

    def serving_outputs(self, outputs) -> dict:
        """``predictions`` [batch]."""
        return {"predictions": outputs}

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """The predicted ``score`` [batch] (also as ``predictions``)."""
        return {**self.serving_outputs(outputs), "score": outputs}
