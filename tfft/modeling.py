"""Task models: built from a pretrained checkpoint, saved into and restored from a model_dir.

A model_dir holds everything needed to rebuild the fine-tuned model without the
original checkpoint:

- ``params.yaml``: the resolved experiment config;
- ``assets/``: the backbone's ``config.json`` (with dropout overrides), the tokenizer
  files and ``labels.txt``;
- ``checkpoints/{final,best,latest}.weights.h5``: Keras weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keras
import tensorflow as tf

from tfft import backbones
from tfft.backbones.checkpoint import Checkpoint, open_checkpoint, read_config, resolve_checkpoint
from tfft.config import ExperimentConfig, build_config
from tfft.data.tokenization import add_special_tokens, load_tokenizer, save_tokenizer
from tfft.errors import TfftError, reason
from tfft.tasks import Task

ASSETS_DIR = "assets"
CHECKPOINTS_DIR = "checkpoints"
PARAMS_FILE = "params.yaml"
LABELS_FILE = "labels.txt"
CHECKPOINT_NAMES = ("final", "best", "latest")


def set_precision(policy: str) -> None:
    """Sets the global Keras dtype policy (``float32``, ``mixed_float16``, ``mixed_bfloat16``).

    Under ``mixed_float16`` Keras wraps the optimizer in dynamic loss scaling.
    """
    if policy == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        logging.warning("mixed_float16 without a GPU is slow; mixed_bfloat16 suits CPUs and TPUs")
    keras.mixed_precision.set_global_policy(policy)


def _override(value: float) -> float | None:
    return None if value < 0 else value


def head_dropout(task: Task, backbone: backbones.Backbone) -> float:
    """``task.classifier_dropout``, else the task's default, else the checkpoint's head dropout."""
    if task.config.classifier_dropout >= 0:
        return task.config.classifier_dropout
    if task.default_head_dropout is not None:
        return task.default_head_dropout
    return backbone.head_dropout


def build_task_model(task: Task, hf_config: dict, checkpoint: Checkpoint | None = None,
                     vocab_size: int = 0):
    """Builds backbone + head; loads the pretrained backbone from ``checkpoint`` when given.

    A checkpoint's encoder keeps only ``task.student_layers`` where they are set.

    Args:
        task: The task, which builds the head.
        hf_config: The backbone's ``config.json``.
        checkpoint: Pretrained weights to load into the backbone.
        vocab_size: The tokenizer's size; when the checkpoint's word-embedding table is
            smaller (``task.add_special_tokens``), the table grows to it.

    Returns:
        ``(model, backbone)``.
    """
    backbone = backbones.from_config(
        hf_config,
        hidden_dropout=_override(task.config.hidden_dropout),
        attention_dropout=_override(task.config.attention_dropout),
        name="backbone",
    )
    if task.config.max_seq_length > backbone.max_sequence_length:
        raise TfftError(
            f"task.max_seq_length {task.config.max_seq_length} is longer than the checkpoint's "
            f"{backbone.max_sequence_length} positions; lower task.max_seq_length"
        )
    if checkpoint is not None:
        checkpoint.load_into(backbone)
        if task.config.student_layers:
            backbone = backbones.keep_encoder_layers(backbone, task.config.student_layers)
        if vocab_size > backbone.vocab_size:
            backbone = backbones.resize_vocabulary(backbone, vocab_size)
    model = task.build_model(backbone, head_dropout(task, backbone))
    if checkpoint is not None:
        task.load_pretrained_head(model, backbone, checkpoint)
    return model, backbone


def load_pretrained(task: Task):
    """Finds ``task.init_checkpoint`` and loads its tokenizer (or ``task.tokenizer``'s).

    The tokenizer gets ``task.add_special_tokens`` and is handed to the task.

    Returns:
        ``(checkpoint, tokenizer)``.
    """
    checkpoint = open_checkpoint(task.config.init_checkpoint)
    tokenizer_folder = (
        resolve_checkpoint(task.config.tokenizer) if task.config.tokenizer else checkpoint.folder
    )
    tokenizer = load_tokenizer(tokenizer_folder)
    add_special_tokens(tokenizer, task.config.add_special_tokens)
    task.set_tokenizer(tokenizer)
    return checkpoint, tokenizer


def save_assets(model_dir: Path, backbone, tokenizer, task: Task) -> Path:
    """Writes the backbone config, tokenizer files and label list under ``assets/``."""
    assets = model_dir / ASSETS_DIR
    assets.mkdir(parents=True, exist_ok=True)
    (assets / "config.json").write_text(json.dumps(backbone.hf_config, indent=2))
    save_tokenizer(tokenizer, assets)
    (assets / LABELS_FILE).write_text("".join(f"{name}\n" for name in task.label_names))
    return assets


def checkpoint_path(model_dir: Path, checkpoint: str = "") -> Path:
    """Finds the weights to restore.

    Args:
        model_dir: The training run's directory.
        checkpoint: ``final``, ``best``, ``latest``, a ``.weights.h5`` path, or empty
            for ``final`` falling back to ``latest`` (an interrupted run).
    """
    folder = model_dir / CHECKPOINTS_DIR
    if checkpoint and checkpoint not in CHECKPOINT_NAMES:
        path = Path(checkpoint)
    else:
        names = [checkpoint] if checkpoint else ["final", "latest"]
        path = next(
            (folder / f"{n}.weights.h5" for n in names if (folder / f"{n}.weights.h5").is_file()),
            folder / f"{names[0]}.weights.h5",
        )
    if not path.is_file():
        raise TfftError(
            f"checkpoint '{path}' does not exist; train into --model_dir first or pass "
            f"--checkpoint as one of {', '.join(CHECKPOINT_NAMES)} or a .weights.h5 file"
        )
    return path


def load_run_config(model_dir: Path, config_files=(), overrides=()) -> ExperimentConfig:
    """The config saved in ``model_dir/params.yaml``, updated by files and overrides."""
    params = model_dir / PARAMS_FILE
    if not params.is_file():
        raise TfftError(
            f"'{params}' does not exist; --model_dir must be a directory tfft-train wrote"
        )
    return build_config([str(params), *config_files], overrides)


def restore_task_model(model_dir: Path, task: Task, checkpoint: str = ""):
    """Rebuilds a fine-tuned model from ``model_dir`` and loads its weights.

    Returns:
        ``(model, tokenizer, weights_path)``.
    """
    path = checkpoint_path(model_dir, checkpoint)
    assets = model_dir / ASSETS_DIR
    tokenizer = load_tokenizer(assets)
    task.set_tokenizer(tokenizer)
    model, _ = build_task_model(task, read_config(assets))
    try:
        model.load_weights(str(path))
    except (ValueError, OSError) as error:
        raise TfftError(
            f"cannot load weights '{path}' ({reason(error)}); it does not match this model_dir's "
            "config or is damaged"
        ) from None
    return model, tokenizer, path
