"""Experiment configuration: dataclasses loaded from YAML and dotted overrides.

A run is described by one :class:`ExperimentConfig` with three sections, ``task``,
``trainer`` and ``runtime``. The ``task`` section is the chosen task's own dataclass
(Model Garden style): :class:`TaskConfig`'s keys plus those the task registers with
:func:`register_task_section`. Configs are built from defaults, then YAML files (later
files win), then ``key=value`` overrides (Model Garden's ``--params_override``).
Unknown keys and values of the wrong type or outside a field's choices are rejected
with a :class:`~tfft.errors.TfftError` that names the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import logging
import textwrap
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tfft.errors import TfftError


def config_field(default, choices: tuple | None = None, doc: str = ""):
    """A config dataclass field with optional allowed values and a help string."""
    metadata = {"choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    """One split of input data."""

    input_path: str = config_field(
        "",
        doc="File path or glob (.tsv/.csv/.jsonl/.json/.conll, local or gs://), 'tfds:NAME/SPLIT', or "
        "TFRecord files from tools/create_tfrecords.py (e.g. DIR/train-*.tfrecord).",
    )
    max_examples: int = config_field(0, doc="Read at most this many examples (0 = all).")
    format: str = config_field(
        "auto", doc="Input format ('auto' uses the suffix); see tfft.data.sources.format_names()."
    )
    columns: list = config_field(
        [], doc="TSV/CSV files without a header row: the column names (then every line is data)."
    )
    encoding: str = config_field(
        "utf-8", doc="Text encoding of the files (utf-8 reads them with or without a byte order mark; "
        "e.g. latin-1, cp1252, utf-16 for others)."
    )


#: The task of a config that names none.
DEFAULT_TASK_TYPE = "sentence_classification"


@dataclasses.dataclass
class TaskConfig:
    """The keys every task has: checkpoint, tokenizer, length, dropout, data splits.

    Each task extends this with a section of its own keys (a subclass registered with
    :func:`register_task_section`); ``task.type`` picks the section.
    """

    type: str = config_field(DEFAULT_TASK_TYPE, doc="Task name; see tfft.tasks.TASKS for the choices.")
    init_checkpoint: str = config_field(
        "", doc="Hugging Face folder or Hub id whose config.json and weights start training."
    )
    tokenizer: str = config_field("", doc="Tokenizer folder or Hub id (default: init_checkpoint).")
    max_seq_length: int = config_field(128, doc="Tokens per sequence after truncation.")
    add_special_tokens: list = config_field(
        [], doc="Tokens added to the tokenizer as special tokens (e.g. entity markers); the "
        "embedding table grows by the new ones."
    )
    main_metric: str = config_field(
        "", doc="Metric for best checkpoint and early stopping (default: the task's own)."
    )
    hidden_dropout: float = config_field(-1.0, doc="Encoder dropout; -1 takes the checkpoint's.")
    attention_dropout: float = config_field(-1.0, doc="Attention dropout; -1 takes the checkpoint's.")
    classifier_dropout: float = config_field(
        -1.0, doc="Dropout before the task head; -1 takes the checkpoint's."
    )
    column_names: dict = config_field(
        {}, doc="Columns the task may also read under another name, {name in the data: other name}, "
        "e.g. GLUE MRPC's TSV {'#1 String': sentence1, Quality: label}; names the data lacks are "
        "skipped, so one config reads a dataset's TSV files and its TFDS version alike."
    )
    teacher_model_dir: str = config_field(
        "", doc="A finished tfft-train run of the same task whose outputs the model learns from as soft "
        "targets (knowledge distillation; trainer.distill_temperature, trainer.distill_alpha); empty: "
        "no teacher."
    )
    student_layers: list = config_field(
        [], doc="The encoder layers of init_checkpoint the model keeps, bottom first (e.g. [0, 2, 4]: a "
        "3-layer student from a 6-layer encoder, DistilBERT's initialisation); empty keeps all."
    )
    train_data: DataConfig = dataclasses.field(default_factory=DataConfig)
    validation_data: DataConfig = dataclasses.field(default_factory=DataConfig)
    extra_validation_data: dict = config_field(
        {}, doc="More validation sets, {name: a data section like validation_data's}, evaluated with "
        "the final weights after training and in --mode=eval; eval_results.json holds their metrics as "
        "NAME_METRIC (e.g. MNLI's mismatched_accuracy). Checkpoints and early stopping follow "
        "validation_data. Overrides add sets; NAME=null drops one, {} all."
    )
    predict_data: DataConfig = dataclasses.field(default_factory=DataConfig)

    def extra_validation_sets(self) -> dict[str, DataConfig]:
        """:attr:`extra_validation_data` as data sections, by name.

        Raises:
            TfftError: for a name that is not a plain identifier, or a section with an unknown
                key or a value of the wrong type.
        """
        sets = {}
        for name, values in self.extra_validation_data.items():
            key = f"task.extra_validation_data.{name}"
            if not isinstance(name, str) or not name.isidentifier():
                raise TfftError(f"config key '{key}': name the validation set with letters, digits "
                                "and underscores, e.g. mismatched")
            sets[name] = DataConfig()
            _update(sets[name], values, key + ".")
        return sets


#: ``task.type`` -> its config section, filled by :func:`register_task_section`.
_TASK_SECTIONS: dict[str, type[TaskConfig]] = {}
#: Entry-point group of packages that register tasks (tfft's own ``tfft.tasks`` and plugins).
TASK_PLUGIN_GROUP = "tfft.tasks"


def register_task_section(name: str, section: type[TaskConfig]) -> None:
    """Makes ``section`` the config section of ``task.type: name``."""
    if not issubclass(section, TaskConfig):
        raise TypeError(f"the config section of task '{name}' must subclass TaskConfig")
    _TASK_SECTIONS[name] = section


def _load_task_plugins() -> None:
    """Imports the packages registered under :data:`TASK_PLUGIN_GROUP`, which register their tasks."""
    for entry_point in importlib.metadata.entry_points(group=TASK_PLUGIN_GROUP):
        entry_point.load()


def task_section(name: str) -> type[TaskConfig]:
    """The config section of ``task.type: name``.

    Raises:
        TfftError: if no task of that name is registered.
    """
    if name not in _TASK_SECTIONS:
        _load_task_plugins()
    if name not in _TASK_SECTIONS:
        raise TfftError(
            f"config key 'task.type' has unknown value '{name}'; "
            f"choose one of {', '.join(sorted(_TASK_SECTIONS)) or '(no task is installed)'}"
        )
    return _TASK_SECTIONS[name]


def _default_task() -> TaskConfig:
    return task_section(DEFAULT_TASK_TYPE)(type=DEFAULT_TASK_TYPE)


@dataclasses.dataclass
class TrainerConfig:
    """How to train: batches, schedule, optimizer, transfer-learning controls."""

    train_batch_size: int = config_field(32, doc="Examples per replica per training step.")
    eval_batch_size: int = config_field(64, doc="Examples per replica per evaluation step.")
    eval_max_tokens: int = config_field(
        4096, doc="Evaluation batches of long examples hold fewer than eval_batch_size, padding to at "
        "most this many tokens (faster on CPUs; 0 = always eval_batch_size). Not with static shapes."
    )
    epochs: int = config_field(3, doc="Passes over the training data.")
    learning_rate: float = config_field(2e-5, doc="Peak learning rate of AdamW.")
    lr_reference_width: int = config_field(
        0, doc="When set, learning_rate is the rate of an encoder this wide and the run's peak rate is "
        "learning_rate x lr_reference_width / the encoder's hidden size (Adam's best rate falls about "
        "as 1/width: muP, Yang et al. 2021); 768 makes a BERT-base rate fit narrower and wider "
        "encoders. 0 uses learning_rate as it is."
    )
    warmup_fraction: float = config_field(0.1, doc="Fraction of steps with linear warmup.")
    weight_decay: float = config_field(0.01, doc="Decoupled weight decay (not on LayerNorm or bias).")
    adam_beta_1: float = config_field(0.9, doc="AdamW decay rate of the gradient mean.")
    adam_beta_2: float = config_field(0.999, doc="AdamW decay rate of the squared-gradient mean.")
    adam_epsilon: float = config_field(1e-8, doc="AdamW term added to the denominator.")
    max_grad_norm: float = config_field(1.0, doc="Global gradient-norm clip (0 = off).")
    early_stopping_patience: int = config_field(
        0, doc="Stop after this many evaluations without improvement (0 = off)."
    )
    trainable_encoder_layers: int = config_field(
        -1, doc="-1 trains all layers, 0 the head only, N the top N encoder layers."
    )
    layer_decay: float = config_field(
        1.0, doc="Layer-wise learning-rate decay: the head and pooler train at learning_rate, the top "
        "encoder layer at learning_rate x layer_decay, each layer below at a further x layer_decay, "
        "the embeddings lowest (1.0 = off; ELECTRA's recipe uses 0.8)."
    )
    head_lr_multiplier: float = config_field(
        1.0, doc="The task head (the layers on top of the backbone, freshly initialised) trains at "
        "learning_rate x head_lr_multiplier (1.0 = the same rate as the encoder's top)."
    )
    distill_temperature: float = config_field(
        2.0, doc="With task.teacher_model_dir: the softmax temperature of the soft targets (the soft loss is "
        "scaled by its square, as Hinton et al. 2015)."
    )
    distill_alpha: float = config_field(
        0.5, doc="With task.teacher_model_dir: the soft targets' weight in the loss, the hard labels' being "
        "1 - distill_alpha (1.0: the teacher alone)."
    )
    reinit_top_layers: int = config_field(
        0, doc="Re-initialise the top N encoder layers and the pooler before fine-tuning (Zhang et "
        "al. 2021, 'Revisiting Few-sample BERT Fine-tuning'); 0 keeps every pretrained layer."
    )
    lora_rank: int = config_field(
        0, doc="LoRA: train rank-N updates of the lora_targets layers (and the task head), every other "
        "backbone weight frozen; checkpoints and exports hold the merged kernels. 0 trains everything."
    )
    lora_alpha: float = config_field(
        0.0, doc="LoRA updates are scaled by lora_alpha / lora_rank (0: lora_rank, a scale of 1)."
    )
    lora_targets: list = config_field(
        ["query", "value"], doc="Backbone Dense layers that get LoRA: query, key, value, "
        "attention_output, intermediate, output, pooler."
    )
    lora_adapter: str = config_field(
        "", doc="A PEFT LoRA folder (tfft-export --lora_only) to start from: its LoRA matrices and task head "
        "are loaded on top of task.init_checkpoint; lora_rank, lora_alpha and lora_targets must match it."
    )
    steps_per_execution: int = config_field(1, doc="Training steps per tf.function call.")
    gradient_accumulation_steps: int = config_field(
        1, doc="Batches whose gradients are averaged into one optimizer update (1 = off)."
    )
    backup_steps: int = config_field(
        0, doc="Also save resumable state every N batches (0: at epoch ends only; -1: only when "
        "SIGTERM or Ctrl-C stops the run)."
    )
    shuffle_buffer_size: int = config_field(
        100_000, doc="Training examples in the shuffle buffer (the whole split when smaller)."
    )
    jit_compile: bool = config_field(False, doc="Compile the train step with XLA.")
    length_grouping: bool = config_field(
        True, doc="Batch examples of similar length together (less padding)."
    )
    length_group_batches: int = config_field(
        10, doc="With length_grouping, batches per length-sorted group of shuffled examples. Larger "
        "groups pad less but make batches more alike (SST-2, MiniLM, 5 seeds: 50 is 10% faster than 10 "
        "and spreads accuracy twice as far); 1 sorts nothing."
    )
    static_shapes: bool = config_field(
        False, doc="Pad every batch to max_seq_length and drop the remainder (TPU)."
    )
    log_every_steps: int = config_field(
        50, doc="Optimizer steps between training scalars in TensorBoard, and between log lines where "
        "no progress bar is drawn (output that is not a terminal)."
    )
    profile_steps: list = config_field(
        [], doc="[first, last] training batches (1-based, counted from the start of training) to "
        "record with the TensorFlow profiler into logs/profile for TensorBoard's Profile tab "
        "(empty = off)."
    )

    @property
    def lora_scale_numerator(self) -> float:
        """``lora_alpha``, or ``lora_rank`` where it is 0 (a scale of 1)."""
        return self.lora_alpha or self.lora_rank


@dataclasses.dataclass
class RuntimeConfig:
    """Where to train: distribution strategy, precision, seed."""

    strategy: str = config_field(
        "default", ("default", "one_device", "mirrored", "multi_worker", "tpu"),
        "tf.distribute strategy.",
    )
    devices: list = config_field(
        [], doc="mirrored: the devices to use, e.g. [/gpu:0, /gpu:1] (default: all local GPUs, else "
        "the logical CPUs of num_cpu_devices)."
    )
    num_cpu_devices: int = config_field(
        0, doc="Split the CPU into N logical devices (0 = off), e.g. to run mirrored without GPUs."
    )
    deterministic: bool = config_field(
        False, doc="TensorFlow op determinism: two runs with the same seed give identical results."
    )
    tpu: str = config_field("", doc="TPU name or grpc:// address for strategy=tpu ('local' on a VM).")
    mixed_precision: str = config_field(
        "float32", ("float32", "mixed_float16", "mixed_bfloat16"), "Keras dtype policy."
    )
    seed: int = config_field(42, doc="Seed for weights, dropout and data order.")


@dataclasses.dataclass
class ExperimentConfig:
    """A whole run."""

    task: TaskConfig = dataclasses.field(default_factory=_default_task)
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


def _update(obj, values: dict, prefix: str, source: str = "") -> None:
    """Recursively writes ``values`` (a nested dict) into dataclass ``obj``.

    Args:
        obj: The config (section) to update.
        values: Nested dict of new values.
        prefix: Dotted path of ``obj`` in the whole config (for messages).
        source: The YAML file ``values`` came from ("" for overrides).
    """
    if not isinstance(values, dict):
        raise TfftError(f"config section '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            if isinstance(obj, TaskConfig) and _other_task_key(obj, name, value, source):
                continue
            known = ", ".join(sorted(fields))
            raise TfftError(f"unknown config key '{key}'; known keys here: {known}")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _update(current, value, key + ".", source)
        elif isinstance(current, dict) and isinstance(value, dict) and value:
            setattr(obj, name, _merged(current, value))  # Later layers add to a mapping ({} clears it).
        else:
            choices = fields[name].metadata.get("choices")
            setattr(obj, name, _coerce(value, hints[name], key, choices))


def _merged(base: dict, update: dict) -> dict:
    """``base`` with ``update``'s entries: mappings in both merged the same way, null ones removed."""
    merged = dict(base)
    for name, value in update.items():
        if value is None:
            merged.pop(name, None)
        elif isinstance(merged.get(name), dict) and isinstance(value, dict):
            merged[name] = _merged(merged[name], value)
        else:
            merged[name] = value
    return merged


def _other_task_key(section: TaskConfig, name: str, value: Any, source: str) -> bool:
    """Whether ``task.<name>``, a key of other tasks only, can be ignored.

    Files written before tasks had their own sections (``params.yaml`` of older runs)
    hold every task's keys; one at its default carries nothing and is skipped.

    Raises:
        TfftError: for another task's key with a value of its own, naming that task.
    """
    owners = {task: cls for task, cls in _TASK_SECTIONS.items()
              if name in {f.name for f in dataclasses.fields(cls)}}
    if not owners:
        return False
    if source and any(getattr(cls(), name) == value for cls in owners.values()):
        logging.info("%s: skipped task.%s, a key of %s at its default", source, name, ", ".join(owners))
        return True
    raise TfftError(
        f"config key 'task.{name}' belongs to {', '.join(sorted(owners))}, not to task.type "
        f"'{section.type}'; remove it or change task.type"
    )


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key that a mapping holds twice (one value would be lost)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str) -> dict:
    """Reads one YAML config file into a dict."""
    file = Path(path)
    if not file.is_file():
        raise TfftError(f"config file '{path}' does not exist; pass an existing --config_file")
    try:
        data = yaml.load(file.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except UnicodeDecodeError as error:
        raise TfftError(f"config file '{path}' is not UTF-8 text (it holds the byte "
                        f"{error.object[error.start:error.end]!r}); save it as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", "") or ""
        detail = f" ({problem})" if "twice" in problem else ""
        raise TfftError(f"config file '{path}{where}' is not valid YAML{detail}; fix its syntax") from None
    if data is not None and not isinstance(data, dict):
        raise TfftError(f"config file '{path}' holds a {type(data).__name__}, not a mapping of sections "
                        "(task:, trainer:, runtime:); write it as in configs/")
    return data or {}


def build_config(
    config_files: Sequence[str] = (), overrides: str | dict | Sequence[str | dict] = ()
) -> ExperimentConfig:
    """Builds a config from defaults, YAML files (later wins) and overrides (win last).

    The last ``task.type`` among them picks the task's config section, so a key of
    another task is an error (in a file, one at its default is skipped: older
    ``params.yaml`` files hold every task's keys).

    Args:
        config_files: YAML files, applied in order.
        overrides: ``key=value,...`` strings or nested dicts (one or a sequence of
            them), applied in order after the files.
    """
    layers = [(load_yaml(path), path) for path in config_files]
    for override in [overrides] if isinstance(overrides, (str, dict)) else overrides:
        layers.append((parse_overrides(override) if isinstance(override, str) else override, ""))
    task_type = DEFAULT_TASK_TYPE
    for values, _ in layers:
        if isinstance(values, dict) and isinstance(values.get("task"), dict):
            task_type = values["task"].get("type", task_type)
    if not isinstance(task_type, str):
        raise TfftError(f"config key 'task.type' must be str, got {task_type!r}")
    config = ExperimentConfig(task=task_section(task_type)(type=task_type))
    for values, source in layers:
        _update(config, values, "", source)
    config.task.extra_validation_sets()  # Checked now, not after training.
    return config


def task_config(task_type: str = DEFAULT_TASK_TYPE, **settings) -> TaskConfig:
    """The config section of ``task_type`` with ``settings`` applied (checked like overrides).

    Example:
        >>> task_config("question_answering", max_seq_length=256, doc_stride=64)
    """
    return build_config(overrides={"task": {"type": task_type, **settings}}).task


def to_dict(config) -> dict:
    """The config as a plain nested dict."""
    return dataclasses.asdict(config)


def save_yaml(config: ExperimentConfig, path: str | Path) -> None:
    """Writes the resolved config as YAML (reloadable with :func:`build_config`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def to_commented_yaml(config: ExperimentConfig, header: str = "") -> str:
    """The config as YAML with each key's doc (and choices) as a comment above it.

    :func:`build_config` loads the text back to an equal config.

    Args:
        config: The config to write.
        header: Comment lines put first (without ``#``; may be empty).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _commented_section(config, 0, lines)
    return "\n".join(lines) + "\n"


#: Comment width of :func:`to_commented_yaml`, indentation included.
_COMMENT_WIDTH = 100


def _commented_section(section, depth: int, lines: list[str]) -> None:
    """Appends the keys of dataclass ``section`` (at ``depth`` levels of indentation) to ``lines``."""
    indent = "  " * depth
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if dataclasses.is_dataclass(value):
            lines.extend(_comment(_summary(type(value)), indent))
            lines.append(f"{indent}{field.name}:")
            _commented_section(value, depth + 1, lines)
            continue
        lines.extend(_comment(_field_doc(field), indent))
        lines.append(indent + _yaml_entry(field.name, value))


def _summary(cls: type) -> str:
    """The first line of a class docstring."""
    return (cls.__doc__ or "").strip().split("\n")[0]


def _field_doc(field: dataclasses.Field) -> str:
    """A field's doc and, where it has them, its allowed values."""
    doc, choices = field.metadata.get("doc", ""), field.metadata.get("choices")
    if choices:
        doc = f"{doc} Choices: {', '.join(map(str, choices))}.".strip()
    return doc


def _comment(text: str, indent: str) -> list[str]:
    """``text`` as ``#`` lines wrapped to :data:`_COMMENT_WIDTH` (none for empty text).

    reStructuredText's double backquotes are left out.
    """
    width = max(_COMMENT_WIDTH - len(indent), 40)
    prefix = f"{indent}# "
    return textwrap.wrap(text.replace("``", ""), width, initial_indent=prefix, subsequent_indent=prefix)


def _yaml_entry(name: str, value: Any) -> str:
    """``name: value`` on one line (lists and mappings in flow style), as YAML reads it back."""
    # A one-item flow sequence renders the value alone, quoted where YAML needs it.
    text = yaml.safe_dump([value], default_flow_style=True, width=float("inf"), allow_unicode=True)
    text = text.strip()[1:-1]
    if "\n" in text:  # A string with line breaks: JSON's escapes keep it on one line.
        text = json.dumps(value, ensure_ascii=False)
    return f"{name}: {text}"
