"""The interface every task implements.

A task owns everything between raw records and numbers a user reads: how records
become examples and features, the head on top of the backbone, the loss, the
metrics over a whole evaluation set, prediction post-processing and the outputs of
the serving signature.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import keras
import numpy as np

from tfft.backbones import Backbone
from tfft.backbones.base import backbone_inputs
from tfft.config import DataConfig, TaskConfig
from tfft.data.features import Features
from tfft.errors import TfftError

#: Metrics where a lower value is better; all others are maximised.
LOWER_IS_BETTER = frozenset({"loss", "mse"})


@dataclasses.dataclass(frozen=True)
class HfHead:
    """A task head in the layout of a Hugging Face task class.

    Attributes:
        architecture: The class-name suffix, e.g. ``ForSequenceClassification``.
        tensors: The head's weights by state-dict name.
        config: ``config.json`` entries the class needs (``num_labels``, ``id2label``...).
        pooler_key: Where the backbone's pooler goes, or None if the class has none.
    """

    architecture: str
    tensors: dict[str, np.ndarray]
    config: dict
    pooler_key: str | None


class Task(abc.ABC):
    """Base class of tasks; subclasses are registered in :data:`tfft.tasks.TASKS`.

    Args:
        config: The ``task`` section of the experiment config.
    """

    #: The ``task.type`` value selecting this task.
    name: ClassVar[str]
    #: Metric used for best checkpoints and early stopping unless the config names one.
    default_main_metric: ClassVar[str]
    #: Every key :meth:`evaluate` returns (token tasks add per-type keys).
    metric_names: ClassVar[tuple[str, ...]]
    #: Whether the head reads ``pooled_output`` (if not, the pooler is not trained).
    uses_pooler: ClassVar[bool] = True

    def __init__(self, config: TaskConfig):
        self.config = config

    @property
    def main_metric(self) -> str:
        """The configured main metric (``task.main_metric``) or the task's default."""
        return self.config.main_metric or self.default_main_metric

    @property
    def main_metric_mode(self) -> str:
        """``"max"`` or ``"min"``: which direction of the main metric is better."""
        return "min" if self.main_metric in LOWER_IS_BETTER else "max"

    @property
    def label_names(self) -> list[str]:
        """Class names shipped with the model (empty for tasks without classes)."""
        return []

    @property
    def prediction_length(self) -> int:
        """Padding length for inference when outputs are per token (0: per batch)."""
        return 0

    @abc.abstractmethod
    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[Any]:
        """Reads and validates the examples of one data split."""

    def prepare(self, train_examples: list[Any]) -> None:  # noqa: B027 - optional hook.
        """Settles what depends on the training data (e.g. a tag list) before the config is saved."""

    @abc.abstractmethod
    def encode(self, examples: list[Any], tokenizer) -> Features:
        """Tokenizes examples into model features (with labels when they have them)."""

    @abc.abstractmethod
    def build_head(self, backbone_outputs: dict, dropout: float):
        """Symbolic head outputs on top of the backbone's ``{sequence_output, pooled_output}``."""

    @abc.abstractmethod
    def loss(self) -> keras.losses.Loss:
        """The training loss."""

    def train_metrics(self) -> list[keras.metrics.Metric]:
        """Streaming metrics shown during training (fresh objects: call in scope)."""
        return []

    @abc.abstractmethod
    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Metrics (including ``loss``) over a whole evaluation set (labels in ``features``)."""

    @abc.abstractmethod
    def predictions(self, examples: list[Any], features: Features, outputs: np.ndarray) -> list[dict]:
        """One JSON-ready prediction per example."""

    def conll_lines(self, prediction: dict) -> list[str]:
        """One prediction as CoNLL lines (``--output_format=conll``).

        Raises:
            TfftError: if the task has no word-level predictions.
        """
        raise TfftError(f"--output_format=conll needs a token task; '{self.name}' writes jsonl only")

    @abc.abstractmethod
    def serving_outputs(self, outputs) -> dict:
        """Named tensors returned by the exported ``serving_default`` signature."""

    def hf_head(self, model: keras.Model, backbone: Backbone) -> HfHead:
        """The head of a trained ``model`` as its Hugging Face counterpart expects it.

        Raises:
            TfftError: if the task has no Hugging Face counterpart.
        """
        raise TfftError(f"task '{self.name}' cannot be exported in Hugging Face format; use saved_model")

    def build_model(self, backbone: Backbone, dropout: float) -> keras.Model:
        """The backbone with this task's head, taking the backbone's named inputs.

        Args:
            backbone: The encoder.
            dropout: Dropout rate applied before the head.
        """
        inputs = backbone_inputs()
        outputs = self.build_head(backbone(inputs), dropout)
        return keras.Model(inputs, outputs, name=f"{self.name}_model")
