"""Original TF1 BERT checkpoints (google-research/bert layout) as Hugging Face tensors.

A TF1 checkpoint folder holds ``bert_config.json``, ``vocab.txt`` and
``bert_model.ckpt.{index,data-*}``. Variables are read with
``tf.train.load_checkpoint`` (no TF1 graph code) and renamed to the Hugging Face
layout, e.g. ``bert/encoder/layer_0/attention/self/query/kernel`` becomes the
transposed ``bert.encoder.layer.0.attention.self.query.weight``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tfft.errors import TfftError, reason

TF1_CONFIG_FILE = "bert_config.json"
TF1_CHECKPOINT_NAME = "bert_model.ckpt"
# Optimizer state and counters stored next to the weights.
_SKIPPED_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1", "/Momentum")
_SKIPPED_NAMES = ("global_step",)
_TABLES = ("word_embeddings", "position_embeddings", "token_type_embeddings")


def find_tf1_checkpoint(path: Path) -> Path | None:
    """The checkpoint prefix for a TF1 folder or prefix path, or None if ``path`` is neither."""
    if Path(f"{path}.index").is_file():
        return path
    if not (path.is_dir() and (path / TF1_CONFIG_FILE).is_file()):
        return None
    preferred = path / f"{TF1_CHECKPOINT_NAME}.index"
    indexes = [preferred] if preferred.is_file() else sorted(path.glob("*.index"))
    if not indexes:
        raise TfftError(
            f"TF1 checkpoint folder '{path}' has {TF1_CONFIG_FILE} but no {TF1_CHECKPOINT_NAME}.index; "
            "copy the checkpoint's .index and .data-* files next to it"
        )
    return indexes[0].with_suffix("")


def read_tf1_config(folder: Path) -> dict:
    """``bert_config.json`` as a Hugging Face ``BertConfig`` dict."""
    path = folder / TF1_CONFIG_FILE
    if not path.is_file():
        raise TfftError(
            f"TF1 checkpoint folder '{folder}' has no {TF1_CONFIG_FILE}; add it next to the checkpoint"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TfftError(f"'{path}:{error.lineno}' is not valid JSON; fix or re-download it") from None
    return {"model_type": "bert", "layer_norm_eps": 1e-12, **config}


def hf_name(tf1_name: str) -> tuple[str, bool] | None:
    """The Hugging Face name of a TF1 variable and whether to transpose it (None: skip)."""
    if tf1_name in _SKIPPED_NAMES or tf1_name.endswith(_SKIPPED_SUFFIXES):
        return None
    parts = [re.sub(r"^layer_(\d+)$", r"layer.\1", part) for part in tf1_name.split("/")]
    renames = {"kernel": "weight", "gamma": "weight", "beta": "bias", "output_bias": "bias"}
    transpose = parts[-1] == "kernel"
    if parts[-1] in _TABLES:
        parts.append("weight")
    parts[-1] = renames.get(parts[-1], parts[-1])
    return ".".join(parts), transpose


def read_tf1_weights(prefix: Path) -> dict[str, np.ndarray]:
    """Reads a TF1 checkpoint into a Hugging Face-named numpy state dict."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(str(prefix))
        names = sorted(reader.get_variable_to_shape_map())
        tensors = {}
        for name in names:
            converted = hf_name(name)
            if converted:
                value = reader.get_tensor(name)
                tensors[converted[0]] = value.T if converted[1] else value
    except (tf.errors.OpError, ValueError, IndexError) as error:
        raise TfftError(
            f"TF1 checkpoint '{prefix}' cannot be read ({reason(error)}); check that the "
            ".index and .data-* files are complete"
        ) from None
    return tensors
