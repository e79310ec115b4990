"""BERT (``model_type: bert``) as Keras 3 layers, and the BERT-style skeleton others reuse.

RoBERTa, XLM-R, ELECTRA and ALBERT read the same ``config.json`` keys and differ only
in the hooks :class:`BertBackbone` exposes: position ids, embedding projection,
pooler activation, layer sharing and checkpoint names.
"""

from __future__ import annotations

from typing import ClassVar

from tfft.backbones.base import Backbone
from tfft.backbones.layers import Embeddings, TransformerLayer, dense, get_activation
from tfft.backbones.weights import (
    BERT_LAYER_KEYS,
    LayerKeys,
    embeddings_specs,
    transformer_layer_specs,
)
from tfft.errors import TfftError


def transformer_layer(config: dict, name: str) -> TransformerLayer:
    """A post-LayerNorm encoder layer from a BERT-style ``config.json``."""
    return TransformerLayer(
        config["hidden_size"], config["num_attention_heads"], config["intermediate_size"],
        activation=config.get("hidden_act", "gelu"),
        hidden_dropout=config.get("hidden_dropout_prob", 0.1),
        attention_dropout=config.get("attention_probs_dropout_prob", 0.1),
        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
        initializer_range=config.get("initializer_range", 0.02),
        name=name,
    )


class BertBackbone(Backbone):
    """The BERT encoder; ``pooled_output`` is BERT's pooler (dense + tanh on ``[CLS]``).

    Args:
        hf_config: A Hugging Face ``BertConfig`` as a dict (``config.json``).
        **kwargs: Passed to ``keras.Model``.
    """

    hf_prefix = "bert"
    hf_class_prefix = "Bert"
    base_pooler_key = "bert.pooler.dense"
    #: RoBERTa-style position ids counted from ``pad_token_id + 1``.
    padding_positions: ClassVar[bool] = False
    #: Activation of the pooler's dense layer (a ``hidden_act`` name).
    pooler_activation: ClassVar[str] = "tanh"
    #: Checkpoint name of the embedding-to-hidden projection, if the family has one.
    projection_key: ClassVar[str] = ""
    #: Key suffixes of one encoder layer's parts.
    layer_keys: ClassVar[LayerKeys] = BERT_LAYER_KEYS

    def __init__(self, hf_config: dict, **kwargs):
        c = hf_config
        position_type = c.get("position_embedding_type") or "absolute"
        if position_type != "absolute":
            raise TfftError(
                f"checkpoint position_embedding_type '{position_type}' is not supported; "
                "only 'absolute' position embeddings are"
            )
        hidden, init = c["hidden_size"], c.get("initializer_range", 0.02)
        embedding_size = c.get("embedding_size") or hidden
        embeddings = Embeddings(
            c["vocab_size"], embedding_size, c.get("max_position_embeddings", 512),
            c.get("type_vocab_size", 2), c.get("layer_norm_eps", 1e-12),
            c.get("hidden_dropout_prob", 0.1), init,
            padding_idx=c.get("pad_token_id", 1) if self.padding_positions else None,
            projection_size=hidden if self.needs_projection(embedding_size, hidden) else None,
            name="embeddings",
        )
        layers, order = self.build_layers(c)
        pooler = dense(hidden, init, "pooler", activation=get_activation(self.pooler_activation))
        super().__init__(c, embeddings, layers, pooler, order, **kwargs)

    def needs_projection(self, embedding_size: int, hidden_size: int) -> bool:
        """Whether embeddings are projected to the hidden width (when the widths differ)."""
        return bool(self.projection_key) and embedding_size != hidden_size

    def build_layers(self, config: dict):
        """The distinct encoder layers and the order they run in (None: as listed)."""
        layers = [transformer_layer(config, f"encoder_layer_{i}") for i in range(config["num_hidden_layers"])]
        return layers, None

    def layer_prefixes(self) -> list[str]:
        """The checkpoint name of each distinct encoder layer."""
        return [f"{self.hf_prefix}.encoder.layer.{i}" for i in range(len(self.encoder_layers))]

    def encoder_specs(self):
        """Keras variables with their Hugging Face state-dict names."""
        specs = embeddings_specs(self.embeddings, self.hf_prefix, self.projection_key)
        for layer, prefix in zip(self.encoder_layers, self.layer_prefixes(), strict=True):
            specs += transformer_layer_specs(layer, prefix, self.layer_keys)
        return specs
