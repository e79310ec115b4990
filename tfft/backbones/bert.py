"""BERT (``model_type: bert``) as Keras 3 layers, loadable from Hugging Face weights."""

from __future__ import annotations

import keras
from keras import ops

from tfft.backbones.base import Backbone, backbone_inputs
from tfft.backbones.layers import AttentionMaskBias, TransformerLayer, dense
from tfft.backbones.weights import dense_specs, embedding_specs, layer_norm_specs


class BertEmbeddings(keras.layers.Layer):
    """Sum of word, absolute-position and token-type embeddings, then LayerNorm and dropout.

    Position ids are computed inside the layer from the input length, so the model
    accepts any sequence length up to ``max_position_embeddings``.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position_embeddings: int,
        type_vocab_size: int,
        layer_norm_eps: float,
        dropout: float,
        initializer_range: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        initializer = keras.initializers.RandomNormal(stddev=initializer_range)
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=initializer, name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            max_position_embeddings, hidden_size, embeddings_initializer=initializer,
            name="position_embeddings",
        )
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=initializer,
            name="token_type_embeddings",
        )
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm")
        self.dropout = keras.layers.Dropout(dropout)
        self.hidden_size = hidden_size

    def build(self, input_shape):
        """Creates the sublayers' weights."""
        self.word_embeddings.build(input_shape)
        self.position_embeddings.build(input_shape)
        self.token_type_embeddings.build(input_shape)
        self.layer_norm.build((*input_shape, self.hidden_size))
        self.built = True

    def call(self, input_ids, token_type_ids, training=None):
        """Embeds [B, S] ids into [B, S, H]."""
        positions = ops.arange(ops.shape(input_ids)[1], dtype="int32")
        embedded = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)[None, :, :]
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.layer_norm(embedded), training=training)


class BertBackbone(Backbone):
    """The BERT encoder with its pooler (dense + tanh on the first token).

    Args:
        hf_config: A Hugging Face ``BertConfig`` as a dict (``config.json``).
        **kwargs: Passed to ``keras.Model``.
    """

    anchor_key = "embeddings.word_embeddings.weight"

    def __init__(self, hf_config: dict, **kwargs):
        c = hf_config
        hidden, init = c["hidden_size"], c.get("initializer_range", 0.02)
        embeddings = BertEmbeddings(
            c["vocab_size"], hidden, c.get("max_position_embeddings", 512),
            c.get("type_vocab_size", 2), c.get("layer_norm_eps", 1e-12),
            c.get("hidden_dropout_prob", 0.1), init, name="embeddings",
        )
        layers = [
            TransformerLayer(
                hidden, c["num_attention_heads"], c["intermediate_size"],
                activation=c.get("hidden_act", "gelu"),
                hidden_dropout=c.get("hidden_dropout_prob", 0.1),
                attention_dropout=c.get("attention_probs_dropout_prob", 0.1),
                layer_norm_eps=c.get("layer_norm_eps", 1e-12),
                initializer_range=init,
                name=f"encoder_layer_{index}",
            )
            for index in range(c["num_hidden_layers"])
        ]
        pooler = dense(hidden, init, "pooler", activation="tanh")

        inputs = backbone_inputs()
        hidden_states = embeddings(inputs["input_ids"], inputs["token_type_ids"])
        mask_bias = AttentionMaskBias(name="attention_mask_bias")(inputs["attention_mask"])
        for layer in layers:
            hidden_states = layer(hidden_states, mask_bias)
        outputs = {
            "sequence_output": hidden_states,
            "pooled_output": pooler(hidden_states[:, 0, :]),
        }
        super().__init__(inputs, outputs, hf_config, embeddings, layers, pooler, **kwargs)

    def weight_specs(self):
        """Keras variables with their ``BertModel`` state-dict names."""
        e = self.embeddings
        specs = (
            embedding_specs(e.word_embeddings, "embeddings.word_embeddings")
            + embedding_specs(e.position_embeddings, "embeddings.position_embeddings")
            + embedding_specs(e.token_type_embeddings, "embeddings.token_type_embeddings")
            + layer_norm_specs(e.layer_norm, "embeddings.LayerNorm")
        )
        for index, layer in enumerate(self.encoder_layers):
            key = f"encoder.layer.{index}"
            specs += (
                dense_specs(layer.attention.query, f"{key}.attention.self.query")
                + dense_specs(layer.attention.key, f"{key}.attention.self.key")
                + dense_specs(layer.attention.value, f"{key}.attention.self.value")
                + dense_specs(layer.attention_output, f"{key}.attention.output.dense")
                + layer_norm_specs(layer.attention_layer_norm, f"{key}.attention.output.LayerNorm")
                + dense_specs(layer.intermediate, f"{key}.intermediate.dense")
                + dense_specs(layer.output_dense, f"{key}.output.dense")
                + layer_norm_specs(layer.output_layer_norm, f"{key}.output.LayerNorm")
            )
        # Checkpoints saved without a pooler (e.g. token classifiers) keep a fresh one.
        return specs + dense_specs(self.pooler, "pooler.dense", optional=True)
