"""ALBERT (``albert``): factorised embeddings and layers shared across depth.

Embeddings of width ``embedding_size`` are projected to ``hidden_size``
(``albert.encoder.embedding_hidden_mapping_in``). The encoder has
``num_hidden_groups`` groups of ``inner_group_num`` layers; layer ``i`` of
``num_hidden_layers`` runs group ``i * num_hidden_groups // num_hidden_layers``, so
the usual single group is one set of weights applied at every depth.
"""

from __future__ import annotations

from tfft.backbones.bert import BertBackbone, transformer_layer
from tfft.backbones.weights import LayerKeys, MaskedLmKeys
from tfft.errors import TfftError

ALBERT_LAYER_KEYS = LayerKeys(
    "attention.query", "attention.key", "attention.value", "attention.dense",
    "attention.LayerNorm", "ffn", "ffn_output", "full_layer_layer_norm",
)


class AlbertBackbone(BertBackbone):
    """The ALBERT encoder; ``pooled_output`` is ALBERT's pooler (dense + tanh on ``[CLS]``).

    ``encoder_layers`` lists the distinct (shared) layers, so freezing counts them,
    not the depth.
    """

    hf_prefix = "albert"
    hf_class_prefix = "Albert"
    base_pooler_key = "albert.pooler"
    projection_key = "albert.encoder.embedding_hidden_mapping_in"
    layer_keys = ALBERT_LAYER_KEYS
    masked_lm_keys = MaskedLmKeys("predictions.dense", "predictions.LayerNorm", "predictions.bias")

    def needs_projection(self, embedding_size: int, hidden_size: int) -> bool:
        """ALBERT always projects, even when the widths agree."""
        return True

    def build_layers(self, config: dict):
        """``num_hidden_groups`` x ``inner_group_num`` layers, run group by group over depth."""
        depth, groups = config["num_hidden_layers"], config.get("num_hidden_groups", 1)
        inner = config.get("inner_group_num", 1)
        if not 1 <= groups <= depth:
            raise TfftError(
                f"checkpoint num_hidden_groups {groups} must be between 1 and num_hidden_layers "
                f"{depth}; fix config.json"
            )
        layers = [
            transformer_layer(config, f"encoder_group_{g}_layer_{j}")
            for g in range(groups) for j in range(inner)
        ]
        order = [
            layers[(i * groups // depth) * inner + j] for i in range(depth) for j in range(inner)
        ]
        return layers, order

    def layer_prefixes(self):
        """``albert.encoder.albert_layer_groups.{g}.albert_layers.{j}`` per distinct layer."""
        inner = self.hf_config.get("inner_group_num", 1)
        return [
            f"albert.encoder.albert_layer_groups.{i // inner}.albert_layers.{i % inner}"
            for i in range(len(self.encoder_layers))
        ]
