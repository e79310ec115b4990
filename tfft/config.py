"""Experiment configuration: dataclasses loaded from YAML and dotted overrides.

A run is described by one :class:`ExperimentConfig` with three sections, ``task``,
``trainer`` and ``runtime``. Configs are built from defaults, then YAML files (later
files win), then ``key=value`` overrides (Model Garden's ``--params_override``).
Unknown keys and values of the wrong type or outside a field's choices are rejected
with a :class:`~tfft.errors.TfftError` that names the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tfft.errors import TfftError


def _field(default, choices: tuple | None = None, doc: str = ""):
    """A dataclass field with optional allowed values and a help string."""
    metadata = {"choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """One split of input data."""

    input_path: str = _field(
        "",
        doc="File path (.tsv/.csv/.jsonl/.json/.conll, local or gs://), 'tfds:NAME/SPLIT', or "
        "TFRecord files from tools/create_tfrecords.py (e.g. DIR/train-*.tfrecord).",
    )
    max_examples: int = _field(0, doc="Read at most this many examples (0 = all).")
    format: str = _field(
        "auto", ("auto", "tsv", "csv", "jsonl", "json", "conll", "tfds", "tfrecord"),
        "Input format; 'auto' uses the suffix.",
    )


@dataclasses.dataclass
class TaskConfig:
    """What to learn: the task, its data, the checkpoint it starts from."""

    type: str = _field(
        "sentence_classification", doc="Task name; see tfft.tasks.TASKS for the choices."
    )
    init_checkpoint: str = _field(
        "", doc="Hugging Face folder or Hub id whose config.json and weights start training."
    )
    tokenizer: str = _field("", doc="Tokenizer folder or Hub id (default: init_checkpoint).")
    max_seq_length: int = _field(128, doc="Tokens per example after truncation.")
    num_labels: int = _field(2, doc="Number of classes (classification).")
    label_list: list = _field(
        [], doc="Class names as they appear in the data, in label-id order (default: 0..N-1)."
    )
    text_fields: list = _field(
        ["sentence"], doc="One or two column names holding the text (or text pair)."
    )
    label_field: str = _field(
        "label", doc="Column name holding the label or score (token tasks: the tag list's field)."
    )
    tag_column: int = _field(-1, doc="Token tasks, CoNLL files: the tag column's index (-1: last).")
    tag_scheme: str = _field(
        "iob2", choices=("iob1", "iob2", "bioes"),
        doc="Token tasks: the tagging scheme training tags are checked against.",
    )
    label_all_subwords: bool = _field(
        False, doc="Token tasks: train on every sub-word of a word, not only the first."
    )
    doc_stride: int = _field(
        128, doc="Span tasks: tokens between the starts of consecutive windows of a long context."
    )
    max_query_length: int = _field(
        64, doc="Span tasks: questions are cut to this many tokens (0 = never cut)."
    )
    n_best_size: int = _field(
        20, doc="Span tasks: start and end candidates per window, and answers in nbest_predictions.json."
    )
    max_answer_length: int = _field(30, doc="Span tasks: longest answer in tokens.")
    version_2_with_negative: bool = _field(
        False, doc="Span tasks: SQuAD 2.0, questions may have no answer (predicted as '')."
    )
    null_score_diff_threshold: float = _field(
        0.0, doc="Span tasks, SQuAD 2.0: answer '' when null score - best span score exceeds this."
    )
    main_metric: str = _field(
        "", doc="Metric for best checkpoint and early stopping (default: the task's own)."
    )
    hidden_dropout: float = _field(-1.0, doc="Encoder dropout; -1 takes the checkpoint's.")
    attention_dropout: float = _field(
        -1.0, doc="Attention dropout; -1 takes the checkpoint's."
    )
    classifier_dropout: float = _field(
        -1.0, doc="Dropout before the task head; -1 takes the checkpoint's."
    )
    train_data: DataConfig = dataclasses.field(default_factory=DataConfig)
    validation_data: DataConfig = dataclasses.field(default_factory=DataConfig)
    predict_data: DataConfig = dataclasses.field(default_factory=DataConfig)


@dataclasses.dataclass
class TrainerConfig:
    """How to train: batches, schedule, optimizer, transfer-learning controls."""

    train_batch_size: int = _field(32, doc="Examples per replica per training step.")
    eval_batch_size: int = _field(64, doc="Examples per replica per evaluation step.")
    epochs: int = _field(3, doc="Passes over the training data.")
    learning_rate: float = _field(2e-5, doc="Peak learning rate of AdamW.")
    warmup_fraction: float = _field(0.1, doc="Fraction of steps with linear warmup.")
    weight_decay: float = _field(0.01, doc="Decoupled weight decay (not on LayerNorm or bias).")
    adam_beta_1: float = _field(0.9)
    adam_beta_2: float = _field(0.999)
    adam_epsilon: float = _field(1e-8)
    max_grad_norm: float = _field(1.0, doc="Global gradient-norm clip (0 = off).")
    early_stopping_patience: int = _field(
        0, doc="Stop after this many evaluations without improvement (0 = off)."
    )
    trainable_encoder_layers: int = _field(
        -1, doc="-1 trains all layers, 0 the head only, N the top N encoder layers."
    )
    steps_per_execution: int = _field(1, doc="Training steps per tf.function call.")
    gradient_accumulation_steps: int = _field(
        1, doc="Batches whose gradients are averaged into one optimizer update (1 = off)."
    )
    backup_steps: int = _field(
        0, doc="Also save resumable state every N batches (0: at epoch ends only; -1: never)."
    )
    shuffle_buffer_size: int = _field(
        100_000, doc="Training examples in the shuffle buffer (the whole split when smaller)."
    )
    jit_compile: bool = _field(False, doc="Compile the train step with XLA.")
    length_grouping: bool = _field(
        True, doc="Batch examples of similar length together (less padding)."
    )
    static_shapes: bool = _field(
        False, doc="Pad every batch to max_seq_length and drop the remainder (TPU)."
    )
    log_every_steps: int = _field(50, doc="TensorBoard training-scalar interval.")


@dataclasses.dataclass
class RuntimeConfig:
    """Where to train: distribution strategy, precision, seed."""

    strategy: str = _field(
        "default", ("default", "one_device", "mirrored", "multi_worker", "tpu"),
        "tf.distribute strategy.",
    )
    devices: list = _field(
        [], doc="mirrored: the devices to use, e.g. [/gpu:0, /gpu:1] (default: all local GPUs, else "
        "the logical CPUs of num_cpu_devices)."
    )
    num_cpu_devices: int = _field(
        0, doc="Split the CPU into N logical devices (0 = off), e.g. to run mirrored without GPUs."
    )
    deterministic: bool = _field(
        False, doc="TensorFlow op determinism: two runs with the same seed give identical results."
    )
    tpu: str = _field("", doc="TPU name or grpc:// address for strategy=tpu ('local' on a VM).")
    mixed_precision: str = _field(
        "float32", ("float32", "mixed_float16", "mixed_bfloat16"), "Keras dtype policy."
    )
    seed: int = _field(42, doc="Seed for weights, dropout and data order.")


@dataclasses.dataclass
class ExperimentConfig:
    """A whole run."""

    task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


def _coerce(value: Any, annotation: Any, key: str, choices: tuple | None) -> Any:
    """Checks ``value`` against a field's type and choices, converting ints to floats."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        # YAML 1.1 reads "5e-5" (no dot) as a string.
        with contextlib.suppress(ValueError):
            value = float(value)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if annotation is list and isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
        raise TfftError(
            f"config key '{key}' must be {annotation.__name__}, got {value!r}; "
            "fix the YAML file or --params_override"
        )
    if choices and value not in choices:
        raise TfftError(
            f"config key '{key}' has unknown value {value!r}; choose one of {', '.join(choices)}"
        )
    return value


def _update(obj, values: dict, prefix: str) -> None:
    """Recursively writes ``values`` (a nested dict) into dataclass ``obj``."""
    if not isinstance(values, dict):
        raise TfftError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise TfftError(f"unknown config key '{key}'; known keys here: {known}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _update(current, value, key + ".")
        else:
            choices = fields[name].metadata.get("choices")
            setattr(obj, name, _coerce(value, hints[name], key, choices))


def parse_overrides(text: str) -> dict:
    """Parses ``a.b=1,c=[x,y]`` into a nested dict; values are read as YAML scalars.

    Commas inside brackets or quoted values do not split entries.

    Raises:
        TfftError: for an entry without ``=`` or a quote that is never closed.
    """
    entries, depth, quote, current = [], 0, "", []
    for char in text:
        previous = "".join(current).rstrip()[-1:]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and previous in ("", "=", "[", "{", ",", ":"):
            quote = char  # Only a quote that starts a value or list item opens a string.
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            entries.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise TfftError(
            f"--params_override has an unclosed {quote or 'bracket'} in '{text}'; close it or "
            "quote the whole value"
        )
    entries.append("".join(current))
    nested: dict = {}
    for entry in filter(str.strip, entries):
        if "=" not in entry:
            raise TfftError(
                f"--params_override entry '{entry.strip()}' is not key=value; "
                "write e.g. --params_override=trainer.epochs=2,task.max_seq_length=64"
            )
        key, raw = (part.strip() for part in entry.split("=", 1))
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def load_yaml(path: str) -> dict:
    """Reads one YAML config file into a dict."""
    file = Path(path)
    if not file.is_file():
        raise TfftError(f"config file '{path}' does not exist; pass an existing --config_file")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise TfftError(f"config file '{path}{where}' is not valid YAML; fix its syntax") from None
    return data or {}


def build_config(
    config_files: Sequence[str] = (), overrides: str | dict | Sequence[str | dict] = ()
) -> ExperimentConfig:
    """Builds a config from defaults, YAML files (later wins) and overrides (win last).

    Args:
        config_files: YAML files, applied in order.
        overrides: ``key=value,...`` strings or nested dicts (one or a sequence of
            them), applied in order after the files.
    """
    config = ExperimentConfig()
    for path in config_files:
        _update(config, load_yaml(path), "")
    for override in [overrides] if isinstance(overrides, (str, dict)) else overrides:
        _update(config, parse_overrides(override) if isinstance(override, str) else override, "")
    return config


def to_dict(config) -> dict:
    """The config as a plain nested dict."""
    return dataclasses.asdict(config)


def save_yaml(config: ExperimentConfig, path: str | Path) -> None:
    """Writes the resolved config as YAML (reloadable with :func:`build_config`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
