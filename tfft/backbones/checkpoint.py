"""Finding and reading Hugging Face checkpoints: local folders or Hub ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfft.errors import TfftError, reason

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with slashes is a path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def resolve_checkpoint(name: str) -> Path:
    """Returns a local folder for a checkpoint folder or a Hugging Face Hub id.

    Hub ids (``org/name``) are downloaded through ``huggingface_hub`` into its cache;
    with ``HF_HUB_OFFLINE=1`` only the cache is used.

    Raises:
        TfftError: if the folder does not exist or the download fails.
    """
    if not name:
        raise TfftError("task.init_checkpoint is empty; set it to a Hugging Face folder or Hub id")
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists() or _looks_like_path(name):
        raise TfftError(
            f"checkpoint folder '{name}' does not exist; pass a folder with config.json "
            "and model.safetensors or a Hugging Face Hub id"
        )
    try:
        import huggingface_hub

        return Path(huggingface_hub.snapshot_download(name, allow_patterns=_HUB_PATTERNS))
    except Exception as error:  # noqa: BLE001 - any download failure means the same to users.
        raise TfftError(
            f"could not fetch checkpoint '{name}' from the Hugging Face Hub ({reason(error)}); "
            "check the id and the network, or pass a local folder"
        ) from None


def read_config(folder: Path) -> dict:
    """Reads ``config.json`` from a checkpoint folder."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise TfftError(
            f"checkpoint folder '{folder}' has no {CONFIG_FILE}; "
            "point at a Hugging Face model folder (save_pretrained output)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TfftError(f"'{path}:{error.lineno}' is not valid JSON; fix or re-download it") from None


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """Reads the weights of a checkpoint folder as numpy arrays.

    Supports ``model.safetensors`` and sharded ``model.safetensors.index.json``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    index = folder / WEIGHTS_INDEX_FILE
    if (folder / WEIGHTS_FILE).is_file():
        files = [folder / WEIGHTS_FILE]
    elif index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [folder / shard for shard in shards]
    else:
        hint = (
            " (found pytorch_model.bin: re-save it with save_pretrained(..., "
            "safe_serialization=True))"
            if (folder / "pytorch_model.bin").is_file()
            else ""
        )
        raise TfftError(
            f"checkpoint folder '{folder}' has no {WEIGHTS_FILE}{hint}; "
            "add the weights in safetensors format"
        )
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        try:
            tensors.update(load_file(str(file)))
        except (SafetensorError, OSError) as error:
            raise TfftError(
                f"weights file '{file}' cannot be read ({reason(error)}); re-download or re-save it"
            ) from None
    return tensors
