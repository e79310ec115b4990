"""Mapping between Keras variables and Hugging Face tensor names."""

from __future__ import annotations

import dataclasses
import logging
from typing import NamedTuple

import keras
import numpy as np

from tfft.errors import TfftError

_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}
# Non-weight buffers older transformers versions saved.
_BUFFERS = (".position_ids", ".token_type_ids")


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """One Keras variable and the checkpoint tensor it comes from.

    Attributes:
        variable: The Keras variable.
        key: The tensor's name in the family's Hugging Face task models, e.g.
            ``bert.encoder.layer.0.output.dense.weight`` or ``classifier.dense.weight``.
        transpose: True for Dense kernels (PyTorch stores them as [out, in]).
    """

    variable: keras.Variable
    key: str
    transpose: bool = False


def dense_specs(layer: keras.layers.Dense, key: str) -> list[WeightSpec]:
    """Specs for a Dense layer stored as PyTorch ``Linear`` ``{key}.weight``/``.bias``."""
    return [
        WeightSpec(layer.kernel, f"{key}.weight", transpose=True),
        WeightSpec(layer.bias, f"{key}.bias"),
    ]


def layer_norm_specs(layer: keras.layers.LayerNormalization, key: str) -> list[WeightSpec]:
    """Specs for a LayerNorm stored as ``{key}.weight``/``.bias``."""
    return [WeightSpec(layer.gamma, f"{key}.weight"), WeightSpec(layer.beta, f"{key}.bias")]


def embedding_specs(layer: keras.layers.Embedding, key: str) -> list[WeightSpec]:
    """Specs for an Embedding stored as ``{key}.weight``."""
    return [WeightSpec(layer.embeddings, f"{key}.weight")]


class LayerKeys(NamedTuple):
    """Where a family's checkpoints keep the parts of one transformer layer (key suffixes)."""

    query: str
    key: str
    value: str
    attention_output: str
    attention_layer_norm: str
    intermediate: str
    output: str
    output_layer_norm: str


class MaskedLmKeys(NamedTuple):
    """Where a family's ``…ForMaskedLM`` keeps its head: the transform's dense and LayerNorm, the bias.

    The output projection is tied to the word embeddings, so checkpoints need not store it.
    """

    dense: str
    layer_norm: str
    bias: str


#: BERT's layout, shared by RoBERTa, XLM-R and ELECTRA.
BERT_LAYER_KEYS = LayerKeys(
    "attention.self.query", "attention.self.key", "attention.self.value",
    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
    "output.dense", "output.LayerNorm",
)


def transformer_layer_specs(layer, prefix: str, keys: LayerKeys) -> list[WeightSpec]:
    """Specs for a :class:`tfft.backbones.layers.TransformerLayer` stored under ``prefix``."""
    return (
        dense_specs(layer.attention.query, f"{prefix}.{keys.query}")
        + dense_specs(layer.attention.key, f"{prefix}.{keys.key}")
        + dense_specs(layer.attention.value, f"{prefix}.{keys.value}")
        + dense_specs(layer.attention_output, f"{prefix}.{keys.attention_output}")
        + layer_norm_specs(layer.attention_layer_norm, f"{prefix}.{keys.attention_layer_norm}")
        + dense_specs(layer.intermediate, f"{prefix}.{keys.intermediate}")
        + dense_specs(layer.output_dense, f"{prefix}.{keys.output}")
        + layer_norm_specs(layer.output_layer_norm, f"{prefix}.{keys.output_layer_norm}")
    )


def embeddings_specs(layer, prefix: str, projection_key: str = "") -> list[WeightSpec]:
    """Specs for a :class:`tfft.backbones.layers.Embeddings` stored as ``{prefix}.embeddings``."""
    specs = (
        embedding_specs(layer.word_embeddings, f"{prefix}.embeddings.word_embeddings")
        + embedding_specs(layer.position_embeddings, f"{prefix}.embeddings.position_embeddings")
        + layer_norm_specs(layer.layer_norm, f"{prefix}.embeddings.LayerNorm")
    )
    if layer.token_type_embeddings is not None:
        specs += embedding_specs(layer.token_type_embeddings, f"{prefix}.embeddings.token_type_embeddings")
    if layer.projection is not None:
        specs += dense_specs(layer.projection, projection_key)
    return specs


def normalize_keys(tensors: dict[str, np.ndarray], anchor: str, prefix: str) -> dict[str, np.ndarray]:
    """Puts a state dict in the layout of the family's task models.

    The base model's tensors get the family prefix whatever the checkpoint used (none
    for a saved ``BertModel``, ``bert.`` for task models, others for wrapped models);
    head tensors outside the base model (``classifier.*``, ``cls.*``) keep their names.
    Legacy ``gamma``/``beta`` LayerNorm names become ``weight``/``bias``.

    Args:
        tensors: The checkpoint's state dict.
        anchor: A key every checkpoint of the family has, without prefix.
        prefix: The family's base-model prefix, e.g. ``bert``.
    """
    renamed = {}
    for key, value in tensors.items():
        for old, new in _LEGACY_SUFFIXES.items():
            if key.endswith(old) and "LayerNorm" in key:
                key = key[: -len(old)] + new
        renamed[key] = value
    bases = sorted((k[: -len(anchor)] for k in renamed if k.endswith(anchor)), key=len)
    base = f"{prefix}." if f"{prefix}." in bases else next(iter(bases), "")
    return {
        (f"{prefix}.{k[len(base):]}" if k.startswith(base) else k): v for k, v in renamed.items()
    }


def check_unexpected(tensors: dict[str, np.ndarray], known: set[str], prefix: str, source: str) -> None:
    """Rejects base-model tensors the config does not account for (e.g. extra layers).

    Tensors outside the base model (pretraining or task heads) and non-weight buffers
    are ignored.

    Raises:
        TfftError: naming the first unexpected tensor and its shape.
    """
    for key in sorted(tensors):
        if key.startswith(f"{prefix}.") and key not in known and not key.endswith(_BUFFERS):
            raise TfftError(
                f"checkpoint '{source}' has tensor '{key}' of shape {tuple(tensors[key].shape)} that "
                "config.json does not account for; the config and weights disagree "
                "(check num_hidden_layers and the model_type)"
            )


def export_tensors(specs: list[WeightSpec]) -> dict[str, np.ndarray]:
    """The state dict (PyTorch layout, float32) of the variables in ``specs``."""
    tensors = {}
    for spec in specs:
        value = keras.ops.convert_to_numpy(spec.variable).astype(np.float32)
        tensors[spec.key] = np.ascontiguousarray(value.T if spec.transpose else value)
    return tensors


def assign_weights(specs: list[WeightSpec], tensors: dict[str, np.ndarray], source: str) -> None:
    """Copies checkpoint tensors into Keras variables after checking names and shapes.

    Nothing is assigned unless every tensor is present with the right shape.

    Raises:
        TfftError: naming the first missing tensor or the first shape mismatch.
    """
    values = []
    for spec in specs:
        expected = tuple(spec.variable.shape)
        stored = expected[::-1] if spec.transpose else expected
        if spec.key not in tensors:
            raise TfftError(
                f"checkpoint '{source}' lacks tensor '{spec.key}' (expected shape {stored}); "
                "check that the weights belong to this config.json"
            )
        value = tensors[spec.key]
        if tuple(value.shape) != stored:
            raise TfftError(
                f"checkpoint '{source}' tensor '{spec.key}' has shape {tuple(value.shape)} but "
                f"config.json implies {stored}; the config and weights disagree"
            )
        values.append(value.T if spec.transpose else value)
    for spec, value in zip(specs, values, strict=True):
        spec.variable.assign(value.astype(spec.variable.dtype))
    unused = sorted(set(tensors) - {spec.key for spec in specs})
    if unused:
        logging.info(
            "%d checkpoint tensors unused (e.g. pretraining heads): %s",
            len(unused), ", ".join(unused[:5]),
        )
