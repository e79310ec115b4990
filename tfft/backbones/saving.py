"""Writing backbones back out: Hugging Face folders and Keras ``.weights.h5`` folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfft.backbones.base import Backbone
from tfft.backbones.checkpoint import CONFIG_FILE, KERAS_WEIGHTS_FILE, WEIGHTS_FILE

#: Formats :func:`save_backbone` writes.
OUTPUT_FORMATS = ("hf", "keras")


def write_hf_folder(folder: Path, hf_config: dict, tensors: dict[str, np.ndarray]) -> None:
    """Writes ``config.json`` and ``model.safetensors`` as ``save_pretrained`` does."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def base_model_state_dict(backbone: Backbone) -> dict[str, np.ndarray]:
    """The backbone as the family's Hugging Face base model (``BertModel`` layout).

    The pooler is kept only where the base model has one (not DistilBERT or ELECTRA).
    """
    tensors = backbone.hf_state_dict(backbone.base_pooler_key)
    prefix = f"{backbone.hf_prefix}."
    return {key.removeprefix(prefix): value for key, value in tensors.items()}


def save_backbone(backbone: Backbone, folder: Path, output_format: str) -> None:
    """Saves a backbone with its config.

    Args:
        backbone: The backbone.
        folder: The output folder (created).
        output_format: ``hf`` for ``config.json`` + ``model.safetensors`` loadable by
            ``transformers.AutoModel``; ``keras`` for ``config.json`` +
            ``backbone.weights.h5`` loadable by :func:`tfft.backbones.from_pretrained`.
    """
    config = {key: value for key, value in backbone.hf_config.items() if key != "architectures"}
    if output_format == "hf":
        config["architectures"] = [f"{backbone.hf_class_prefix}Model"]
        write_hf_folder(folder, config, base_model_state_dict(backbone))
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    backbone.save_weights(str(folder / KERAS_WEIGHTS_FILE))
