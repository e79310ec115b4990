"""Encoder backbones built from pretrained checkpoints.

Supported ``model_type`` values: ``bert``, ``roberta``, ``xlm-roberta``,
``distilbert``, ``electra`` and ``albert``, from Hugging Face folders or Hub ids,
original TF1 BERT checkpoints, or Keras ``backbone.weights.h5`` folders.

Example:
    >>> backbone = tfft.backbones.from_pretrained("path/to/checkpoint")
    >>> outputs = backbone({"input_ids": ids, "token_type_ids": types,
    ...                     "attention_mask": mask})
    >>> outputs["sequence_output"], outputs["pooled_output"]
"""

from __future__ import annotations

import logging

import numpy as np

from tfft.backbones.albert import AlbertBackbone
from tfft.backbones.base import INPUT_NAMES, Backbone
from tfft.backbones.bert import BertBackbone
from tfft.backbones.checkpoint import open_checkpoint
from tfft.backbones.distilbert import DistilBertBackbone
from tfft.backbones.electra import ElectraBackbone
from tfft.backbones.roberta import RobertaBackbone, XLMRobertaBackbone
from tfft.errors import TfftError

#: ``config.json`` ``model_type`` -> backbone class.
FAMILIES: dict[str, type[Backbone]] = {
    "albert": AlbertBackbone,
    "bert": BertBackbone,
    "distilbert": DistilBertBackbone,
    "electra": ElectraBackbone,
    "roberta": RobertaBackbone,
    "xlm-roberta": XLMRobertaBackbone,
}


def family(hf_config: dict) -> type[Backbone]:
    """The backbone class for a config's ``model_type``."""
    model_type = hf_config.get("model_type", "")
    if model_type not in FAMILIES:
        raise TfftError(
            f"checkpoint model_type '{model_type}' is not supported; "
            f"supported: {', '.join(sorted(FAMILIES))}"
        )
    return FAMILIES[model_type]


def from_config(hf_config: dict, hidden_dropout=None, attention_dropout=None, **kwargs) -> Backbone:
    """Builds an untrained backbone from a Hugging Face config dict.

    Args:
        hf_config: The checkpoint's ``config.json`` contents.
        hidden_dropout: Overrides the family's hidden dropout rate when not None.
        attention_dropout: Overrides the family's attention dropout rate when not None.
        **kwargs: Passed to the backbone (e.g. ``name``).
    """
    backbone_class = family(hf_config)
    config = dict(hf_config)
    for key, value in zip(backbone_class.dropout_keys, (hidden_dropout, attention_dropout), strict=True):
        if value is not None:
            config[key] = value
    try:
        return backbone_class(config, **kwargs)
    except KeyError as error:
        raise TfftError(
            f"checkpoint config.json (model_type '{config['model_type']}') lacks {error}; "
            "it is incomplete or belongs to another model type"
        ) from None


def from_pretrained(path_or_hub_id: str, **kwargs) -> Backbone:
    """Builds a backbone from a checkpoint and loads its weights.

    Args:
        path_or_hub_id: A Hugging Face folder or Hub id, a TF1 BERT folder or
            checkpoint prefix, or a Keras folder (``config.json`` + ``backbone.weights.h5``).
        **kwargs: See :func:`from_config`.

    Returns:
        A Keras model mapping ``{input_ids, token_type_ids, attention_mask}`` (int32
        [batch, seq]) to ``{sequence_output, pooled_output}``.
    """
    checkpoint = open_checkpoint(path_or_hub_id)
    backbone = from_config(checkpoint.config(), **kwargs)
    checkpoint.load_into(backbone)
    return backbone


def resize_vocabulary(backbone: Backbone, vocab_size: int) -> Backbone:
    """A copy of ``backbone`` whose word-embedding table has ``vocab_size`` rows.

    The rows of tokens added to the tokenizer (e.g. entity markers) are drawn from a
    normal distribution with the existing rows' mean and covariance, so they start like
    the other tokens (Hugging Face's ``resize_token_embeddings`` starts them at the
    mean); all other weights are copied. ``config.json``'s ``vocab_size`` follows.
    """
    old = backbone.embeddings.word_embeddings.embeddings
    table = np.asarray(old.numpy(), dtype=np.float64)
    count = vocab_size - len(table)
    if count < 1:
        raise ValueError(f"vocab_size {vocab_size} does not grow the table of {len(table)} rows")
    rng = np.random.default_rng(np.random.randint(2**31 - 1))  # Seeded by keras.utils.set_random_seed.
    mean = table.mean(axis=0)
    try:
        rows = rng.multivariate_normal(mean, np.cov(table, rowvar=False), size=count, method="cholesky")
    except np.linalg.LinAlgError:  # A degenerate table: start the new rows at the mean.
        rows = np.repeat(mean[None], count, axis=0)
    grown = from_config({**backbone.hf_config, "vocab_size": vocab_size}, name=backbone.name)
    for source, target in zip(backbone.weights, grown.weights, strict=True):
        value = source.numpy()
        if source is old:
            value = np.concatenate([value, rows.astype(value.dtype)])
        target.assign(value)
    logging.info("word-embedding table grown from %d to %d rows", len(table), vocab_size)
    return grown


def keep_encoder_layers(backbone: Backbone, indices: list[int]) -> Backbone:
    """A copy of ``backbone`` with only the encoder layers at ``indices``, bottom first.

    DistilBERT's initialisation of a student from its teacher (every other layer kept):
    embeddings, pooler and the chosen layers' weights are copied; ``config.json``'s layer
    count follows.

    Raises:
        TfftError: for indices out of range or repeated, or an encoder that shares its layers
            across depth (ALBERT).
    """
    depth = len(backbone.encoder_layers)
    if len(backbone.layer_order) != depth:
        raise TfftError(f"task.student_layers: the {type(backbone).__name__} encoder shares its layers "
                        "across depth; start the student from a smaller checkpoint instead")
    bad = [index for index in indices if not isinstance(index, int) or not 0 <= index < depth]
    if not indices or bad or len(set(indices)) != len(indices):
        raise TfftError(f"task.student_layers {list(indices)} must name distinct encoder layers of "
                        f"task.init_checkpoint, 0 to {depth - 1}, e.g. {list(range(0, depth, 2))}")
    config = {**backbone.hf_config, backbone.layer_count_key: len(indices)}
    student = from_config(config, name=backbone.name)
    pairs = [(backbone.embeddings, student.embeddings), (backbone.pooler, student.pooler)]
    pairs += [(backbone.encoder_layers[index], layer) for index, layer in zip(indices, student.encoder_layers,
                                                                              strict=True)]
    for source, target in pairs:
        target.set_weights(source.get_weights())
    logging.info("student encoder: layers %s of %d", list(indices), depth)
    return student


__all__ = [
    "FAMILIES", "INPUT_NAMES", "Backbone", "family", "from_config", "from_pretrained", "open_checkpoint",
    "keep_encoder_layers", "resize_vocabulary",
]
