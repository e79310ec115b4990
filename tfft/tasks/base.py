"""The interface every task implements, and the registry of tasks.

A task owns everything between raw records and numbers a user reads: its config
section, how records become examples and features, the head on top of the backbone,
the loss, the metrics over a whole evaluation set, prediction post-processing and
the outputs of the serving signature. A task class decorated with
:func:`register_task` is selected by ``task.type``; shared code only reads what it
declares.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones import Backbone
from tfft.backbones.layers import Dropout
from tfft.backbones.weights import WeightSpec, export_tensors
from tfft.config import DataConfig, TaskConfig, register_task_section
from tfft.data.features import Features, FeatureSpec, FeatureSpecs, token_specs
from tfft.data.sources import Record, read_data
from tfft.errors import TfftError
from tfft.tasks import distillation

#: Metrics where a lower value is better; all others are maximised.
LOWER_IS_BETTER = frozenset({"loss", "mse", "perplexity"})


@dataclasses.dataclass(frozen=True)
class HfHead:
    """A task head in the layout of a Hugging Face task class.

    Attributes:
        architecture: The class-name suffix, e.g. ``ForSequenceClassification``.
        specs: The head's variables with their state-dict names.
        config: ``config.json`` entries the class needs (``num_labels``, ``id2label``...).
        pooler_key: Where the backbone's pooler goes, or None if the class has none.
    """

    architecture: str
    specs: list[WeightSpec]
    config: dict
    pooler_key: str | None

    @property
    def tensors(self) -> dict[str, np.ndarray]:
        """The head's weights by state-dict name (PyTorch layout, float32)."""
        return export_tensors(self.specs)


class Task(abc.ABC):
    """Base class of tasks; subclasses register with :func:`register_task`.

    Args:
        config: The ``task`` section of the experiment config (a :attr:`config_class`).
    """

    #: The ``task.type`` value selecting this task.
    name: ClassVar[str]
    #: The task's config section: :class:`~tfft.config.TaskConfig` plus its own keys.
    config_class: ClassVar[type[TaskConfig]] = TaskConfig
    #: The Hugging Face Hub ``pipeline_tag`` of the exported model (empty: none).
    pipeline_tag: ClassVar[str] = ""
    #: What file-name suffixes mean for this task's data under ``format: auto``, over the
    #: registered formats' (see :func:`tfft.data.sources.infer_format`), e.g. ``{".txt": "conll"}``.
    format_suffixes: ClassVar[dict[str, str]] = {}
    #: Metric used for best checkpoints and early stopping unless the config names one.
    default_main_metric: ClassVar[str]
    #: Every key :meth:`evaluate` returns (token tasks add per-type keys).
    metric_names: ClassVar[tuple[str, ...]]
    #: Whether the head reads ``pooled_output`` (if not, the pooler is not trained).
    uses_pooler: ClassVar[bool] = True
    #: Whether a model of this task can learn from a teacher's outputs (:meth:`distillation_loss`).
    distillable: ClassVar[bool] = True
    #: Dropout before the head when ``task.classifier_dropout`` is -1 (None: the checkpoint's).
    default_head_dropout: ClassVar[float | None] = None
    #: ``--output_format`` values of predict mode; the first is the default.
    output_formats: ClassVar[tuple[str, ...]] = ("jsonl",)
    #: The (frozen) dataclass :meth:`read_examples` returns.
    example_type: ClassVar[type]
    #: The training target per row (default: one int32 class id).
    label_spec: ClassVar[FeatureSpec] = FeatureSpec(())

    def __init__(self, config: TaskConfig):
        self.config = config
        self.tokenizer = None

    def set_tokenizer(self, tokenizer) -> None:
        """Receives the run's tokenizer (with ``task.add_special_tokens``) before models are built.

        Tasks whose head depends on token ids (e.g. marker tokens) read them here.
        """
        self.tokenizer = tokenizer

    @property
    def main_metric(self) -> str:
        """The configured main metric (``task.main_metric``) or the task's default."""
        return self.config.main_metric or self.default_main_metric

    @property
    def main_metric_mode(self) -> str:
        """``"max"`` or ``"min"``: which direction of the main metric is better."""
        return "min" if self.main_metric in LOWER_IS_BETTER else "max"

    @property
    def feature_specs(self) -> FeatureSpecs:
        """The model's inputs and label per row, as :meth:`encode` makes them.

        Pipelines, TFRecord files, the model's Keras inputs and the serving signature
        are built from these. Default: the backbone's ``[batch, seq]`` token inputs and
        :attr:`label_spec`.
        """
        return token_specs(self.label_spec)

    @property
    def label_names(self) -> list[str]:
        """Class names shipped with the model (empty for tasks without classes)."""
        return []

    @property
    def prediction_length(self) -> int:
        """Length that per-token outputs are padded to at inference (0: outputs per example)."""
        return 0

    #: The value of per-token outputs at positions past a batch's padding.
    prediction_padding: float = 0.0

    @abc.abstractmethod
    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[Any]:
        """Reads and validates the examples of one data split."""

    def read_records(self, data: DataConfig) -> list[Record]:
        """The raw records of one split, as :meth:`read_examples` starts from them.

        Read with the task's :attr:`format_suffixes` and ``task.column_names``.
        """
        return read_data(data, self.format_suffixes, self.config.column_names)

    def prepare(self, train_examples: list[Any]) -> None:  # noqa: B027 - optional hook.
        """Settles what depends on the training data (e.g. a tag list) before the config is saved."""

    def adopt_label_names(self, names: list[str], source: str) -> None:
        """Checks the class names that pre-tokenized data (TFRecord files) was written with.

        Raises:
            TfftError: if they differ from this task's.
        """
        if list(names) != self.label_names:
            raise TfftError(
                f"'{source}' was written with labels {list(names)} but the config gives "
                f"{self.label_names}; use the same task.label_list or recreate the files"
            )

    @abc.abstractmethod
    def encode(self, examples: list[Any], tokenizer) -> Features:
        """Tokenizes examples into model features (with labels when they have them)."""

    def training_transform(self) -> Callable | None:
        """A function applied to every training batch, or None (the default) for none.

        It maps ``(inputs, labels, seed)`` to ``(inputs, labels)``: the batch as :meth:`encode`
        made it, before padding (token axes ragged; dense in static-shape mode), and an int64
        ``[2]`` seed for ``tf.random.stateless_*`` ops, fixed by the run's seed, the epoch and the
        batch, so that a resumed run draws what the uninterrupted one drew (e.g. masked-LM masks
        fresh every epoch).
        """
        return None

    def evaluation_features(self, features: Features) -> Features:
        """Evaluation features as every evaluation sees them (default: ``features`` unchanged).

        Tasks whose training transforms batches fix the transform here once, e.g. masks drawn with
        a fixed seed, so that evaluations compare.
        """
        return features

    def load_pretrained_head(self, model: keras.Model, backbone: Backbone, checkpoint) -> None:  # noqa: B027
        """Loads the head from the pretrained ``checkpoint`` where it has one (default: heads start fresh).

        Args:
            model: The task model just built.
            backbone: Its encoder, loaded from ``checkpoint``.
            checkpoint: The :class:`~tfft.backbones.checkpoint.Checkpoint` of ``task.init_checkpoint``.
        """

    @abc.abstractmethod
    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """Symbolic head outputs on top of the backbone's ``{sequence_output, pooled_output}``.

        Args:
            backbone_outputs: The backbone's symbolic outputs.
            inputs: The model's symbolic inputs (``attention_mask`` marks padding).
            dropout: Dropout rate applied before the head.
        """

    @abc.abstractmethod
    def loss(self) -> keras.losses.Loss:
        """The training loss."""

    def distillation_loss(self, outputs, teacher_outputs, labels, temperature: float):
        """The soft-target loss of a batch: how far the model's ``outputs`` are from a teacher's.

        Default: the softmax KL at ``temperature`` over the outputs' last axis (class logits),
        averaged over rows. Symbolic Keras ops, run in the training step.

        Args:
            outputs: The model's outputs on the batch.
            teacher_outputs: The teacher's outputs on the same batch.
            labels: The batch's labels (for tasks that ignore some positions).
            temperature: ``trainer.distill_temperature``.
        """
        del labels
        return keras.ops.mean(distillation.softmax_kl(outputs, teacher_outputs, temperature))

    def train_metrics(self) -> list[keras.metrics.Metric]:
        """Streaming metrics shown during training (fresh objects: call in scope)."""
        return []

    @abc.abstractmethod
    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Metrics (including ``loss``) over a whole evaluation set (labels in ``features``)."""

    def evaluation_outputs(self, outputs, labels):
        """What :meth:`evaluate` reads of the model's outputs, given the labels; None (default): the outputs.

        For outputs too large to keep for a whole split (e.g. logits over a vocabulary per
        token): symbolic Keras ops that reduce a batch's ``outputs`` with its ``labels`` (per-token
        labels padded as :attr:`label_spec` says), run batch by batch.
        """
        del outputs, labels
        return None

    def prediction_outputs(self, outputs):
        """What :meth:`predictions` reads of the model's outputs (symbolic Keras ops; default: all)."""
        return outputs

    def baseline_metrics(self, features: Features) -> dict[str, float]:
        """What a model that learned nothing scores on ``features`` ({} where the task defines none).

        Sweeps count a run whose main metric is at this level as one that failed to learn.
        """
        del features
        return {}

    @abc.abstractmethod
    def predictions(self, examples: list[Any], features: Features, outputs: np.ndarray) -> list[dict]:
        """One JSON-ready prediction per example."""

    def write_predictions(self, predictions: list[dict], folder: Path, output_format: str = "") -> Path:
        """Writes ``predictions.<format>`` into ``folder``; returns its path.

        Args:
            predictions: What :meth:`predictions` returned.
            folder: The run's model_dir.
            output_format: One of :attr:`output_formats` (empty: the first).

        Raises:
            TfftError: for a format the task does not write.
        """
        output_format = output_format or self.output_formats[0]
        if output_format not in self.output_formats:
            raise TfftError(
                f"--output_format={output_format} is not available for task '{self.name}'; "
                f"choose one of {', '.join(self.output_formats)}"
            )
        path = folder / f"predictions.{output_format}"
        write_lines(path, self.prediction_lines(predictions, output_format))
        return path

    def prediction_lines(self, predictions: list[dict], output_format: str) -> list[str]:
        """The lines of a predictions file (``jsonl``: one JSON object per example)."""
        return [json.dumps(row, ensure_ascii=False) for row in predictions]

    @abc.abstractmethod
    def serving_outputs(self, outputs) -> dict:
        """Named tensors the exported token-id signature (``serve_token_ids``) returns."""

    def outputs_from_serving(self, served: dict[str, np.ndarray]) -> np.ndarray:
        """The model outputs :meth:`evaluate` reads, from what :meth:`serving_outputs` returned (numpy).

        Lets an exported model's ``serve_token_ids`` outputs be scored as training scores the
        model's (default: ``logits``).
        """
        return served["logits"]

    @property
    def text_inputs(self) -> dict[str, tf.TensorSpec]:
        """Raw-text inputs of the exported ``serving_default`` (empty: it takes token ids)."""
        return {}

    def text_features(self, texts: dict, tokenizer) -> dict:
        """Model inputs of raw ``texts`` (as :attr:`text_inputs` names them), in the graph.

        Args:
            texts: String tensors by input name.
            tokenizer: The run's :class:`~tfft.data.graph_tokenizers.GraphTokenizer`.
        """
        raise NotImplementedError(f"task '{self.name}' declares no text_inputs")

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """Named answers of the raw-text ``serving_default``: :meth:`serving_outputs` and readable ones.

        Args:
            texts: The raw inputs.
            features: What :meth:`text_features` returned.
            outputs: The model's outputs on ``features``.
        """
        raise NotImplementedError(f"task '{self.name}' declares no text_inputs")

    def serving_texts(self, examples: list[Any]) -> dict[str, list]:
        """The raw-text inputs of ``serving_default`` for ``examples``, as :attr:`text_inputs` names them.

        Each input holds one value per example: a string, or a list of strings where the
        input's spec is ``[batch, n]``. ``tfft-predict`` sends them to an exported model, a
        batch at a time.

        Raises:
            TfftError: if the task has no raw-text serving, or an example cannot be sent as text.
        """
        raise TfftError(
            f"task '{self.name}' has no raw-text serving, so tfft-predict cannot run it; predict with "
            "tfft-train --mode=predict on the run's model_dir"
        )

    def examples_from_texts(self, texts: dict[str, list]) -> list[Any]:
        """Unlabeled examples of raw texts: the inverse of :meth:`serving_texts`.

        ``tfft.predict`` builds its examples with this, for a model_dir and an export alike.

        Args:
            texts: One value per example for every name of :attr:`text_inputs` (a string, or
                a list of strings where the input's spec is ``[batch, n]``).

        Raises:
            TfftError: if the task has no raw-text inputs.
        """
        raise TfftError(
            f"task '{self.name}' takes no raw text; predict a data file with tfft-train --mode=predict")

    def served_rows(self, examples: list[Any], outputs: dict[str, np.ndarray]) -> list[dict]:
        """One JSON-ready row per example from what the raw-text ``serving_default`` returned for them.

        Default: the example's ``id`` (where its type has one), its :meth:`serving_texts` and every
        output, strings decoded and arrays as lists.

        Args:
            examples: A batch of examples.
            outputs: The signature's outputs for the batch, by name (first axis: the examples).
        """
        texts = self.serving_texts(examples)
        rows = []
        for index, example in enumerate(examples):
            row = {"id": example.id} if hasattr(example, "id") else {}
            row.update({name: values[index] for name, values in texts.items()})
            row.update({name: plain(values[index]) for name, values in outputs.items()})
            rows.append(row)
        return rows

    def write_served(self, rows: list[dict], path: Path) -> None:
        """Writes the rows of :meth:`served_rows` to ``path``: one JSON object per line."""
        write_lines(path, self.prediction_lines(rows, "jsonl"))

    def hf_head(self, model: keras.Model, backbone: Backbone) -> HfHead:
        """The head of a trained ``model`` as its Hugging Face counterpart expects it.

        Raises:
            TfftError: if the task has no Hugging Face counterpart.
        """
        raise TfftError(f"task '{self.name}' cannot be exported in Hugging Face format; use saved_model")

    def model_inputs(self) -> dict[str, keras.KerasTensor]:
        """Symbolic Keras inputs as :attr:`feature_specs` declares them."""
        return {name: keras.Input(shape=spec.shape, dtype=spec.dtype, name=name)
                for name, spec in self.feature_specs.inputs.items()}

    def build_model(self, backbone: Backbone, dropout: float) -> keras.Model:
        """The backbone with this task's head, taking the inputs of :attr:`feature_specs`.

        Args:
            backbone: The encoder.
            dropout: Dropout rate applied before the head.
        """
        inputs = self.model_inputs()
        outputs = self.build_head(backbone(inputs), inputs, dropout)
        return keras.Model(inputs, outputs, name=f"{self.name}_model")


#: ``task.type`` -> task class, filled by :func:`register_task`.
TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: makes ``cls`` the task of ``task.type: cls.name``, with its config section."""
    TASKS[cls.name] = cls
    register_task_section(cls.name, cls.config_class)
    return cls


def write_lines(path: Path, lines: list[str]) -> None:
    """Writes ``lines`` to ``path`` (UTF-8), each ended by a newline."""
    with path.open("w", encoding="utf-8") as file:
        file.writelines(f"{line}\n" for line in lines)


def plain(value: Any) -> Any:
    """A numpy output (array, scalar or bytes) as JSON-ready Python values, bytes decoded as UTF-8."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def dense_head(hidden, units: int, dropout: float):
    """Dropout (if any) and a float32 dense layer named ``head`` (BERT's initialiser, stddev 0.02)."""
    if dropout:
        hidden = Dropout(dropout, name="head_dropout")(hidden)
    return keras.layers.Dense(
        units, kernel_initializer=keras.initializers.RandomNormal(stddev=0.02), dtype="float32",
        name="head",
    )(hidden)
