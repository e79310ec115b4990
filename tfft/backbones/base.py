"""The contract every backbone family implements."""

from __future__ import annotations

import keras
import numpy as np

from tfft.backbones.weights import WeightSpec, assign_weights, normalize_keys

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def backbone_inputs() -> dict[str, keras.KerasTensor]:
    """Symbolic int32 [batch, seq] inputs named as a Hugging Face tokenizer names them."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}


class Backbone(keras.Model):
    """A functional encoder mapping token ids to sequence and pooled outputs.

    Inputs are ``{input_ids, token_type_ids, attention_mask}``; outputs are
    ``{sequence_output, pooled_output}``.

    Subclasses build the graph in ``__init__`` and list their variables' checkpoint
    names in :meth:`weight_specs`.

    Attributes:
        hf_config: The checkpoint's ``config.json`` as a dict (after overrides).
        embeddings: The embedding layer (frozen when the encoder is partly frozen).
        encoder_layers: The transformer layers, bottom first.
        pooler: The layer producing ``pooled_output`` from the first token, if any.
    """

    #: A tensor name every checkpoint of the family has (used to strip prefixes).
    anchor_key = ""

    def __init__(self, inputs, outputs, hf_config, embeddings, encoder_layers, pooler, **kwargs):
        self.embeddings = embeddings
        self.encoder_layers = list(encoder_layers)
        self.pooler = pooler
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.hf_config = hf_config

    def weight_specs(self) -> list[WeightSpec]:
        """Every variable with the Hugging Face tensor name it maps to."""
        raise NotImplementedError

    def load_hf_weights(self, tensors: dict[str, np.ndarray], source: str) -> None:
        """Loads a Hugging Face state dict (numpy) into the backbone."""
        assign_weights(self.weight_specs(), normalize_keys(tensors, self.anchor_key), source)

    def set_trainable_encoder_layers(self, count: int) -> None:
        """Freezes the bottom of the encoder.

        Args:
            count: -1 trains everything; 0 freezes the whole backbone (head-only
                training); N trains the top N encoder layers and the pooler.
        """
        layers = len(self.encoder_layers)
        self.embeddings.trainable = count < 0
        count = layers if count < 0 else min(count, layers)
        for index, layer in enumerate(self.encoder_layers):
            layer.trainable = index >= layers - count
        if self.pooler is not None:
            self.pooler.trainable = count > 0
