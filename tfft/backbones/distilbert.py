"""DistilBERT (``distilbert``): BERT layers without token types, under its own names."""

from __future__ import annotations

from tfft.backbones.base import Backbone
from tfft.backbones.layers import Embeddings, TransformerLayer, dense, get_activation
from tfft.backbones.weights import LayerKeys, MaskedLmKeys, embeddings_specs, transformer_layer_specs

DISTILBERT_LAYER_KEYS = LayerKeys(
    "attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin",
    "sa_layer_norm", "ffn.lin1", "ffn.lin2", "output_layer_norm",
)
_LAYER_NORM_EPS = 1e-12  # Fixed in DistilBERT.


class DistilBertBackbone(Backbone):
    """The DistilBERT encoder; ``token_type_ids`` is accepted and ignored.

    DistilBERT has no pooler. ``pooled_output`` is dense + ReLU on ``[CLS]``: the
    ``pre_classifier`` of Hugging Face's ``DistilBertForSequenceClassification``,
    loaded from such checkpoints and freshly initialised from base ones.

    Args:
        hf_config: A Hugging Face ``DistilBertConfig`` as a dict.
        **kwargs: Passed to ``keras.Model``.
    """

    hf_prefix = "distilbert"
    hf_class_prefix = "DistilBert"
    classifier_pooler_key = "pre_classifier"
    dropout_keys = ("dropout", "attention_dropout")
    layer_count_key = "n_layers"
    head_dropout_keys = ("seq_classif_dropout", "dropout")
    masked_lm_keys = MaskedLmKeys("vocab_transform", "vocab_layer_norm", "vocab_projector.bias")
    activation_key = "activation"

    def __init__(self, hf_config: dict, **kwargs):
        c = hf_config
        hidden, init = c["dim"], c.get("initializer_range", 0.02)
        embeddings = Embeddings(
            c["vocab_size"], hidden, c.get("max_position_embeddings", 512), 0, _LAYER_NORM_EPS,
            c.get("dropout", 0.1), init, name="embeddings",
        )
        layers = [
            TransformerLayer(
                hidden, c["n_heads"], c["hidden_dim"], activation=c.get("activation", "gelu"),
                hidden_dropout=c.get("dropout", 0.1),
                attention_dropout=c.get("attention_dropout", 0.1),
                layer_norm_eps=_LAYER_NORM_EPS, initializer_range=init,
                name=f"encoder_layer_{index}",
            )
            for index in range(c["n_layers"])
        ]
        pooler = dense(hidden, init, "pooler", activation=get_activation("relu"))
        super().__init__(c, embeddings, layers, pooler, **kwargs)

    def encoder_specs(self):
        """Keras variables with their ``DistilBertModel`` state-dict names."""
        specs = embeddings_specs(self.embeddings, self.hf_prefix)
        for index, layer in enumerate(self.encoder_layers):
            specs += transformer_layer_specs(
                layer, f"distilbert.transformer.layer.{index}", DISTILBERT_LAYER_KEYS
            )
        return specs
