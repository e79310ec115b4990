"""Encoder backbones built from Hugging Face checkpoints.

Example:
    >>> backbone = tfft.backbones.from_pretrained("path/to/bert-folder")
    >>> outputs = backbone({"input_ids": ids, "token_type_ids": types,
    ...                     "attention_mask": mask})
    >>> outputs["sequence_output"], outputs["pooled_output"]
"""

from __future__ import annotations

from tfft.backbones.base import INPUT_NAMES, Backbone
from tfft.backbones.bert import BertBackbone
from tfft.backbones.checkpoint import read_config, read_weights, resolve_checkpoint
from tfft.errors import TfftError

#: ``config.json`` ``model_type`` -> backbone class.
FAMILIES: dict[str, type[Backbone]] = {"bert": BertBackbone}

_DROPOUT_KEYS = {
    "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
}


def from_config(hf_config: dict, hidden_dropout=None, attention_dropout=None, **kwargs) -> Backbone:
    """Builds an untrained backbone from a Hugging Face config dict.

    Args:
        hf_config: The checkpoint's ``config.json`` contents.
        hidden_dropout: Overrides ``hidden_dropout_prob`` when not None.
        attention_dropout: Overrides ``attention_probs_dropout_prob`` when not None.
        **kwargs: Passed to the backbone (e.g. ``name``).
    """
    model_type = hf_config.get("model_type", "")
    if model_type not in FAMILIES:
        raise TfftError(
            f"checkpoint model_type '{model_type}' is not supported; "
            f"supported: {', '.join(sorted(FAMILIES))}"
        )
    config = dict(hf_config)
    for argument, value in (("hidden_dropout", hidden_dropout),
                            ("attention_dropout", attention_dropout)):
        if value is not None:
            config[_DROPOUT_KEYS[argument]] = value
    return FAMILIES[model_type](config, **kwargs)


def from_pretrained(path_or_hub_id: str, **kwargs) -> Backbone:
    """Builds a backbone from a checkpoint folder or Hub id and loads its weights.

    Args:
        path_or_hub_id: A folder with ``config.json`` and ``model.safetensors`` (or a
            sharded index), or a Hugging Face Hub id.
        **kwargs: See :func:`from_config`.

    Returns:
        A Keras model mapping ``{input_ids, token_type_ids, attention_mask}`` (int32
        [batch, seq]) to ``{sequence_output, pooled_output}``.
    """
    folder = resolve_checkpoint(path_or_hub_id)
    backbone = from_config(read_config(folder), **kwargs)
    backbone.load_hf_weights(read_weights(folder), str(folder))
    return backbone


__all__ = ["FAMILIES", "INPUT_NAMES", "Backbone", "from_config", "from_pretrained"]
