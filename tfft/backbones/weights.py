"""Mapping between Keras variables and Hugging Face tensor names."""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np

from tfft.errors import TfftError

_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One Keras variable and the checkpoint tensor it comes from.

    Attributes:
        variable: The Keras variable.
        key: The tensor's name in the Hugging Face state dict, without model prefix.
        transpose: True for Dense kernels (PyTorch stores them as [out, in]).
        optional: True if checkpoints may lack it (it then keeps its initial value).
    """

    variable: keras.Variable
    key: str
    transpose: bool = False
    optional: bool = False


def dense_specs(layer: keras.layers.Dense, key: str, optional: bool = False) -> list[WeightSpec]:
    """Specs for a Dense layer stored as PyTorch ``Linear`` ``{key}.weight``/``.bias``."""
    return [
        WeightSpec(layer.kernel, f"{key}.weight", transpose=True, optional=optional),
        WeightSpec(layer.bias, f"{key}.bias", optional=optional),
    ]


def layer_norm_specs(layer: keras.layers.LayerNormalization, key: str) -> list[WeightSpec]:
    """Specs for a LayerNorm stored as ``{key}.weight``/``.bias``."""
    return [WeightSpec(layer.gamma, f"{key}.weight"), WeightSpec(layer.beta, f"{key}.bias")]


def embedding_specs(layer: keras.layers.Embedding, key: str) -> list[WeightSpec]:
    """Specs for an Embedding stored as ``{key}.weight``."""
    return [WeightSpec(layer.embeddings, f"{key}.weight")]


def normalize_keys(tensors: dict[str, np.ndarray], anchor: str) -> dict[str, np.ndarray]:
    """Strips a model prefix (``bert.``, ``roberta.``) and renames legacy LayerNorm keys.

    Args:
        tensors: The checkpoint's state dict.
        anchor: A key every checkpoint of the family has, without prefix.
    """
    renamed = {}
    for key, value in tensors.items():
        for old, new in _LEGACY_SUFFIXES.items():
            if key.endswith(old) and "LayerNorm" in key:
                key = key[: -len(old)] + new
        renamed[key] = value
    prefix = next((k[: -len(anchor)] for k in renamed if k.endswith(anchor)), "")
    return {k[len(prefix):]: v for k, v in renamed.items() if k.startswith(prefix)}


def assign_weights(specs: list[WeightSpec], tensors: dict[str, np.ndarray], source: str) -> None:
    """Copies checkpoint tensors into Keras variables after checking names and shapes.

    Raises:
        TfftError: naming the first missing tensor or the first shape mismatch.
    """
    values, present = [], []
    for spec in specs:
        expected = tuple(spec.variable.shape)
        if spec.key not in tensors and spec.optional:
            logging.warning("checkpoint '%s' has no '%s'; it starts untrained", source, spec.key)
            continue
        if spec.key not in tensors:
            stored = expected[::-1] if spec.transpose else expected
            raise TfftError(
                f"checkpoint '{source}' lacks tensor '{spec.key}' (expected shape {stored}); "
                "check that the weights belong to this config.json"
            )
        value = tensors[spec.key]
        value = value.T if spec.transpose else value
        if tuple(value.shape) != expected:
            shape = value.shape[::-1] if spec.transpose else value.shape
            stored = expected[::-1] if spec.transpose else expected
            raise TfftError(
                f"checkpoint '{source}' tensor '{spec.key}' has shape {tuple(shape)} but "
                f"config.json implies {stored}; the config and weights disagree"
            )
        values.append(value)
        present.append(spec)
    for spec, value in zip(present, values, strict=True):
        spec.variable.assign(value.astype(spec.variable.dtype))
    unused = sorted(set(tensors) - {spec.key for spec in specs})
    if unused:
        logging.info(
            "%d checkpoint tensors unused (e.g. pretraining heads): %s",
            len(unused), ", ".join(unused[:5]),
        )
