"""LoRA adapters in the PEFT library's format: written from a LoRA run, read to start one.

A folder holds ``adapter_model.safetensors`` (each adapted layer's ``lora_A`` [rank, in]
and ``lora_B`` [out, rank] under ``base_model.model.<Hugging Face module name>``, and the
task head whole, PEFT's ``modules_to_save``) and ``adapter_config.json``, so PyTorch
users load it with ``peft.PeftModel.from_pretrained(base_task_model, folder)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tfft.backbones.weights import WeightSpec, assign_weights, dense_specs, export_tensors
from tfft.errors import TfftError
from tfft.tasks.base import HfHead

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
PREFIX = "base_model.model."
#: PEFT's task type of each Hugging Face task class (others load with ``PeftModel`` alone).
PEFT_TASK_TYPES = {"ForSequenceClassification": "SEQ_CLS", "ForTokenClassification": "TOKEN_CLS",
                   "ForQuestionAnswering": "QUESTION_ANS"}


def low_rank_factors(change: np.ndarray, rank: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``A`` [rank, in] and ``B`` [out, rank] with ``scale * B @ A`` closest to ``change`` [out, in] (SVD)."""
    left, values, right = np.linalg.svd(change.astype(np.float64), full_matrices=False)
    root = np.sqrt(values[:rank] / scale)
    return (root[:, None] * right[:rank]).astype(np.float32), (left[:, :rank] * root).astype(np.float32)


def saved_whole(backbone, head: HfHead) -> list[WeightSpec]:
    """What PEFT saves whole (``modules_to_save``): the task head, and the pooler if it is in the head.

    RoBERTa's and ELECTRA's task classes keep the pooler in ``classifier.dense``, DistilBERT's
    in ``pre_classifier``: a base checkpoint does not hold them.
    """
    pooler_in_head = head.pooler_key and not head.pooler_key.startswith(f"{backbone.hf_prefix}.")
    return head.specs + (dense_specs(backbone.pooler, head.pooler_key) if pooler_in_head else [])


def write_adapter(folder: Path, factors: dict[str, tuple[np.ndarray, np.ndarray]], whole: list[WeightSpec],
                  architecture: str, rank: int, alpha: float, base_model: str) -> None:
    """Writes a PEFT LoRA folder.

    Args:
        folder: The folder (created).
        factors: ``(A, B)`` in PyTorch layout by Hugging Face module name.
        whole: What is saved whole (:func:`saved_whole`).
        architecture: The Hugging Face task class's suffix (``ForSequenceClassification``...).
        rank: The LoRA rank.
        alpha: The scale's numerator.
        base_model: The checkpoint the adapter applies to.
    """
    from safetensors.numpy import save_file

    tensors = {}
    for module, (down, up) in factors.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = down
        tensors[f"{PREFIX}{module}.lora_B.weight"] = up
    saved = export_tensors(whole)
    tensors.update({f"{PREFIX}{key}": value for key, value in saved.items()})
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA", "task_type": PEFT_TASK_TYPES.get(architecture),
        "base_model_name_or_path": base_model, "r": rank, "lora_alpha": alpha,
        "target_modules": list(factors),
        "modules_to_save": sorted({key.split(".")[0] for key in saved}),
        "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True,
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_adapter(folder: str | Path, backbone, head: HfHead, rank: int, alpha: float) -> None:
    """Puts a PEFT folder's LoRA matrices into ``backbone``'s LoRA layers, and what it saves whole back.

    Raises:
        TfftError: if the folder is not a LoRA adapter of this rank, scale, layers and head.
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    where = f"trainer.lora_adapter '{folder}'"
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise TfftError(f"{where} must be a folder with {CONFIG_FILE} and {WEIGHTS_FILE}, as "
                        "tfft-export --lora_only writes")
    config = json.loads((folder / CONFIG_FILE).read_text())
    targets = sorted(config.get("target_modules") or ())
    found = (config.get("r"), float(config.get("lora_alpha") or 0), targets)
    wanted = (rank, float(alpha), sorted(backbone.lora_modules))
    if config.get("peft_type") != "LORA" or found != wanted:
        raise TfftError(
            f"{where} holds rank {found[0]}, alpha {found[1]} on {len(found[2])} layers; this run has rank "
            f"{wanted[0]}, alpha {wanted[1]} on {len(wanted[2])}: set trainer.lora_rank, lora_alpha and "
            "lora_targets to the adapter's"
        )
    stored = load_file(str(folder / WEIGHTS_FILE))
    tensors = {key.removeprefix(PREFIX): value for key, value in stored.items()}
    for module, layer in backbone.lora_modules.items():
        layer.lora_kernel_a.assign(tensors[f"{module}.lora_A.weight"].T)
        layer.lora_kernel_b.assign(tensors[f"{module}.lora_B.weight"].T)
    assign_weights(saved_whole(backbone, head), tensors, str(folder / WEIGHTS_FILE))
