"""Finding and reading pretrained encoders: Hugging Face, TF1 BERT and Keras folders.

Three layouts are recognised:

- ``hf``: a Hugging Face model folder (``config.json`` and ``model.safetensors``, a
  sharded ``model.safetensors.index.json``, or ``pytorch_model.bin`` when PyTorch is
  installed), or a Hub id downloaded into the Hugging Face cache;
- ``tf1``: a google-research/bert folder (``bert_config.json``, ``vocab.txt``,
  ``bert_model.ckpt.*``) or the checkpoint prefix itself;
- ``keras``: ``config.json`` with ``backbone.weights.h5``, as written by
  ``tools/convert_checkpoint.py --output_format=keras``;
- ``run``: a ``tfft-train`` model_dir (``params.yaml``, ``assets/`` with ``config.json`` and
  the tokenizer, ``checkpoints/final.weights.h5`` or, from an interrupted run,
  ``latest.weights.h5``), whatever its task: its encoder starts the new run.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np

from tfft.backbones.tf1_checkpoint import find_tf1_checkpoint, read_tf1_config, read_tf1_weights
from tfft.errors import TfftError, reason

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
TORCH_WEIGHTS_FILE = "pytorch_model.bin"
TORCH_WEIGHTS_INDEX_FILE = "pytorch_model.bin.index.json"
KERAS_WEIGHTS_FILE = "backbone.weights.h5"
#: What makes a folder a tfft-train model_dir, where its config and tokenizer are, and its weights files.
RUN_PARAMS_FILE, RUN_ASSETS_DIR = "params.yaml", "assets"
RUN_WEIGHTS_FILES = ("checkpoints/final.weights.h5", "checkpoints/latest.weights.h5")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A pretrained encoder on disk.

    Attributes:
        folder: The folder with the config and tokenizer files.
        layout: ``hf``, ``tf1``, ``keras`` or ``run``.
        weights: The weights: the folder (``hf``), the checkpoint prefix (``tf1``) or the
            ``.weights.h5`` file (``keras``; ``run``: the whole task model's).
    """

    folder: Path
    layout: str
    weights: Path

    def config(self) -> dict:
        """The encoder's Hugging Face config dict (with ``model_type``)."""
        return read_tf1_config(self.folder) if self.layout == "tf1" else read_config(self.folder)

    def tensors(self) -> dict[str, np.ndarray]:
        """Every tensor by Hugging Face state-dict name, heads included ({} for ``keras`` and ``run``)."""
        if self.layout == "tf1":
            return read_tf1_weights(self.weights)
        return read_weights(self.folder) if self.layout == "hf" else {}

    def load_into(self, backbone) -> None:
        """Loads the weights into a backbone built from :meth:`config`."""
        if self.layout == "keras":
            _load_keras_weights(backbone, self.weights, self.folder / CONFIG_FILE)
        elif self.layout == "run":
            _load_run_encoder(backbone, self.weights, self.folder / CONFIG_FILE)
        else:
            backbone.load_hf_weights(self.tensors(), str(self.weights))


def _load_run_encoder(backbone, path: Path, config: Path) -> None:
    """Loads the encoder of a task model's ``.weights.h5`` (its ``layers/*backbone`` group)."""
    import tempfile

    import h5py

    try:
        with h5py.File(path, "r") as file:
            groups = [name for name in file.get("layers", {}) if name.endswith("backbone")]
            if len(groups) != 1:
                raise ValueError(f"it holds {len(groups)} encoders")
            with tempfile.TemporaryDirectory() as folder:
                encoder = Path(folder) / KERAS_WEIGHTS_FILE
                with h5py.File(encoder, "w") as out:
                    for name in file["layers"][groups[0]]:
                        file.copy(file["layers"][groups[0]][name], out, name=name)
                _load_keras_weights(backbone, encoder, config)
    except (ValueError, OSError) as error:
        raise TfftError(f"cannot load the encoder of '{path}' ({reason(error)}); it does not match "
                        f"{config} or is damaged") from None


def _load_keras_weights(backbone, path: Path, config: Path) -> None:
    """``backbone.load_weights`` that refuses files with more or fewer variables.

    Keras skips sublayers a file lacks with a warning, leaving them untrained; here any
    disagreement between file and config is an error.
    """
    import h5py

    mismatch = f"it does not match {config} or is damaged"
    try:
        with h5py.File(path, "r") as file:
            stored = []
            file.visititems(lambda name, item: stored.append(name) if isinstance(item, h5py.Dataset)
                            else None)
        if len(stored) != len(backbone.weights):
            raise ValueError(f"it holds {len(stored)} variables, the model has {len(backbone.weights)}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backbone.load_weights(str(path))
        skipped = [str(w.message) for w in caught if "freshly-initialized" in str(w.message)]
        if skipped:
            raise ValueError(skipped[0])
    except (ValueError, OSError) as error:
        raise TfftError(f"cannot load '{path}' ({reason(error)}); {mismatch}") from None


def _looks_like_path(name: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else with slashes is a path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def resolve_checkpoint(name: str) -> Path:
    """Returns a local folder for a checkpoint folder, TF1 checkpoint prefix or Hub id.

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
    if Path(f"{folder}.index").is_file():
        return folder.parent
    if folder.exists() or _looks_like_path(name):
        raise TfftError(
            f"checkpoint folder '{name}' does not exist; pass a folder with config.json "
            "and model.safetensors, a TF1 BERT folder, or a Hugging Face Hub id"
        )
    try:
        import huggingface_hub

        return Path(huggingface_hub.snapshot_download(name, allow_patterns=_HUB_PATTERNS))
    except Exception as error:  # noqa: BLE001 - any download failure means the same to users.
        raise TfftError(
            f"could not fetch checkpoint '{name}' from the Hugging Face Hub ({reason(error)}); "
            "check the id and the network, or pass a local folder"
        ) from None


def open_checkpoint(name: str) -> Checkpoint:
    """Finds a checkpoint (see :func:`resolve_checkpoint`) and recognises its layout."""
    folder = resolve_checkpoint(name)
    tf1_prefix = find_tf1_checkpoint(Path(name).expanduser())
    if tf1_prefix is not None:
        return Checkpoint(folder, "tf1", tf1_prefix)
    if (folder / KERAS_WEIGHTS_FILE).is_file():
        return Checkpoint(folder, "keras", folder / KERAS_WEIGHTS_FILE)
    if (folder / RUN_PARAMS_FILE).is_file() and (folder / RUN_ASSETS_DIR).is_dir():
        weights = next((folder / name for name in RUN_WEIGHTS_FILES if (folder / name).is_file()), None)
        if weights is None:
            raise TfftError(f"model_dir '{name}' has no {' or '.join(RUN_WEIGHTS_FILES)}; let its run "
                            "finish (rerun it to resume) or pass another checkpoint")
        return Checkpoint(folder / RUN_ASSETS_DIR, "run", weights)
    return Checkpoint(folder, "hf", folder)


def read_config(folder: Path) -> dict:
    """Reads ``config.json`` from a checkpoint folder."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise TfftError(
            f"checkpoint folder '{folder}' has no {CONFIG_FILE}; "
            "point at a Hugging Face model folder (save_pretrained output) or a TF1 BERT folder"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise TfftError(f"'{path}:{error.lineno}' is not valid JSON; fix or re-download it") from None


def _weight_files(folder: Path, single: str, index: str) -> list[Path]:
    if (folder / single).is_file():
        return [folder / single]
    if (folder / index).is_file():
        try:
            shards = json.loads((folder / index).read_text())["weight_map"].values()
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise TfftError(f"'{folder / index}' is not a weight index; re-download it") from None
        return [folder / shard for shard in sorted(set(shards))]
    return []


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """Reads the weights of a Hugging Face folder as numpy arrays.

    Prefers ``model.safetensors`` (or its sharded index); falls back to
    ``pytorch_model.bin`` (or its index), read with PyTorch's ``weights_only=True``.
    """
    files = _weight_files(folder, WEIGHTS_FILE, WEIGHTS_INDEX_FILE)
    reader = _read_safetensors
    if not files:
        files = _weight_files(folder, TORCH_WEIGHTS_FILE, TORCH_WEIGHTS_INDEX_FILE)
        reader = _read_torch
    if not files:
        raise TfftError(
            f"checkpoint folder '{folder}' has no {WEIGHTS_FILE} or {TORCH_WEIGHTS_FILE}; "
            "add the weights (save_pretrained writes them)"
        )
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        if not file.is_file():
            raise TfftError(f"weights shard '{file}' is missing; re-download the checkpoint")
        tensors.update(reader(file))
    return tensors


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="np") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, TypeError) as error:
        if "bf16" in str(error).lower() or "bfloat16" in str(error).lower():
            return _read_bfloat16_safetensors(file)
        raise TfftError(
            f"weights file '{file}' cannot be read ({reason(error)}); re-download or re-save it"
        ) from None


def _read_bfloat16_safetensors(file: Path) -> dict[str, np.ndarray]:
    """Reads a safetensors file holding bfloat16 tensors (numpy has no bfloat16) as float32."""
    raw = file.read_bytes()
    header_size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_size])
    header.pop("__metadata__", None)
    body = memoryview(raw)[8 + header_size:]
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64,
              "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}
    tensors = {}
    for key, info in header.items():
        start, end = info["data_offsets"]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(body[start:end], dtype=np.uint16).astype(np.uint32) << 16
            value = bits.view(np.float32)
        else:
            value = np.frombuffer(body[start:end], dtype=dtypes[info["dtype"]]).copy()
        tensors[key] = value.reshape(info["shape"])
    return tensors


def _read_torch(file: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise TfftError(
            f"checkpoint '{file}' is a PyTorch pickle, which needs PyTorch to read: pip install torch, "
            f"or convert it once elsewhere with `python tools/convert_checkpoint.py --input={file.parent} "
            "--output=NEW_DIR` (writes model.safetensors)"
        ) from None
    try:
        state = torch.load(str(file), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling fails in many ways.
        raise TfftError(
            f"weights file '{file}' cannot be loaded safely ({reason(error)}); it is damaged or holds "
            "more than tensors: re-save it with save_pretrained(safe_serialization=True)"
        ) from None
    return {
        key: value.detach().to(torch.float32).numpy() if value.is_floating_point() else value.numpy()
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }
