"""The contract every backbone family implements, and the graph they share."""

from __future__ import annotations

import logging
import math
from typing import ClassVar

import keras
import numpy as np

from tfft.backbones.layers import AttentionMaskBias, MaskedLmHead
from tfft.backbones.weights import (
    MaskedLmKeys,
    WeightSpec,
    assign_weights,
    check_unexpected,
    dense_specs,
    export_tensors,
    layer_norm_specs,
    normalize_keys,
)
from tfft.errors import TfftError

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")


def backbone_inputs() -> dict[str, keras.KerasTensor]:
    """Symbolic int32 [batch, seq] inputs named as a Hugging Face tokenizer names them."""
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUT_NAMES}


class Backbone(keras.Model):
    """A functional encoder mapping token ids to sequence and pooled outputs.

    Inputs are ``{input_ids, token_type_ids, attention_mask}`` (families without token
    types ignore ``token_type_ids``); outputs are ``{sequence_output, pooled_output}``,
    where ``pooled_output`` is the pooler of the family's Hugging Face sequence
    classifier applied to the first token (see each family's docstring).

    Subclasses create the layers and pass them here, which wires the graph
    (embeddings, then ``layer_order`` or the encoder layers, then the pooler), and list
    their variables' checkpoint names in :meth:`encoder_specs`. Checkpoint keys are in
    the layout of the family's Hugging Face task models: base-model tensors carry
    ``hf_prefix`` (``bert.encoder...``), head tensors none (``classifier.dense``).

    Attributes:
        hf_config: The checkpoint's ``config.json`` as a dict (after overrides).
        embeddings: The embedding layer (frozen when the encoder is partly frozen).
        encoder_layers: The distinct transformer layers, bottom first.
        pooler: The dense layer producing ``pooled_output`` from the first token.
    """

    #: Base-model prefix of every encoder tensor in Hugging Face task models.
    hf_prefix: ClassVar[str]
    #: Prefix of the Hugging Face class names, e.g. ``Bert`` for ``BertForSequenceClassification``.
    hf_class_prefix: ClassVar[str]
    #: An encoder tensor every checkpoint of the family has, without prefix.
    anchor_key: ClassVar[str] = "embeddings.word_embeddings.weight"
    #: Where the Hugging Face base model keeps the pooler (None: it has none).
    base_pooler_key: ClassVar[str | None] = None
    #: Where Hugging Face sequence classifiers keep the pooler (None: the base pooler).
    classifier_pooler_key: ClassVar[str | None] = None
    #: The output layer of Hugging Face sequence classifiers.
    classifier_key: ClassVar[str] = "classifier"
    #: ``config.json`` keys of the hidden and attention dropout rates.
    dropout_keys: ClassVar[tuple[str, str]] = ("hidden_dropout_prob", "attention_probs_dropout_prob")
    #: ``config.json`` key of the number of encoder layers.
    layer_count_key: ClassVar[str] = "num_hidden_layers"
    #: ``config.json`` keys for the dropout before a task head, first set one wins.
    head_dropout_keys: ClassVar[tuple[str, ...]] = ("classifier_dropout", "hidden_dropout_prob")
    #: Where the family's ``…ForMaskedLM`` keeps its masked-LM head.
    masked_lm_keys: ClassVar[MaskedLmKeys] = MaskedLmKeys(
        "cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias")
    #: The masked-LM head's activation (empty: the config's, under :attr:`activation_key`).
    masked_lm_activation: ClassVar[str] = ""
    #: ``config.json`` key of the encoder's activation.
    activation_key: ClassVar[str] = "hidden_act"

    def __init__(self, hf_config, embeddings, encoder_layers, pooler, layer_order=None, **kwargs):
        self.embeddings = embeddings
        self.encoder_layers = list(encoder_layers)
        self.pooler = pooler
        inputs = backbone_inputs()
        hidden_states = embeddings(inputs["input_ids"], inputs["token_type_ids"])
        mask_bias = AttentionMaskBias(name="attention_mask_bias")(inputs["attention_mask"])
        self.layer_order = list(layer_order or self.encoder_layers)
        for layer in self.layer_order:
            hidden_states = layer(hidden_states, mask_bias)
        outputs = {
            "sequence_output": hidden_states,
            "pooled_output": pooler(hidden_states[:, 0, :]),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.hf_config = hf_config

    def encoder_specs(self) -> list[WeightSpec]:
        """The embeddings' and encoder layers' variables with their checkpoint names."""
        raise NotImplementedError

    def forward_flops(self, lengths: np.ndarray) -> float:
        """Matrix-multiply FLOPs of one forward pass over sequences of ``lengths`` tokens.

        Counts 2 FLOPs per multiply-add of every dense kernel the tokens pass (each
        encoder layer as often as it runs: a shared ALBERT layer counts every time; the
        embedding projection), plus attention's two ``[S, S]`` products per layer, on the
        tokens themselves, without padding. A training step costs about three times its
        forward pass (backward: twice).
        """
        lengths = np.asarray(lengths, dtype=np.float64)
        tokens, pairs = lengths.sum(), np.square(lengths).sum()

        def kernels(layer):
            return sum(math.prod(sub.kernel.shape) for sub in layer._flatten_layers()
                       if isinstance(sub, keras.layers.Dense))

        per_token = kernels(self.embeddings) + sum(kernels(layer) for layer in self.layer_order)
        attention = sum(4 * layer.attention.hidden_size for layer in self.layer_order)
        return float(2 * per_token * tokens + attention * pairs)

    @property
    def pooler_keys(self) -> tuple[str, ...]:
        """Where checkpoints may keep the pooler, in the order they are tried."""
        return tuple(dict.fromkeys(k for k in (self.classifier_pooler_key, self.base_pooler_key) if k))

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's hidden states."""
        return self.layer_order[-1].attention.hidden_size

    @property
    def vocab_size(self) -> int:
        """Rows of the word-embedding table."""
        return self.embeddings.word_embeddings.input_dim

    @property
    def max_sequence_length(self) -> int:
        """The longest input the position table covers."""
        rows = self.embeddings.position_embeddings.input_dim
        offset = self.embeddings.padding_idx
        return rows if offset is None else rows - offset - 1

    @property
    def head_dropout(self) -> float:
        """The checkpoint's dropout rate before a task head."""
        rates = (self.hf_config.get(key) for key in self.head_dropout_keys)
        return next((rate for rate in rates if rate is not None), 0.1)

    def load_hf_weights(self, tensors: dict[str, np.ndarray], source: str) -> None:
        """Loads a Hugging Face state dict (numpy) into the backbone.

        The pooler comes from the sequence classifier's or the base model's pooler
        tensors; a checkpoint with neither keeps a freshly initialised pooler.

        Raises:
            TfftError: naming the first missing, mis-shaped or unexpected tensor.
        """
        tensors = normalize_keys(tensors, self.anchor_key, self.hf_prefix)
        specs = self.encoder_specs()
        pooler_key = next((k for k in self.pooler_keys if f"{k}.weight" in tensors), None)
        if pooler_key:
            specs += dense_specs(self.pooler, pooler_key)
        else:
            logging.warning(
                "checkpoint '%s' has no pooler (%s); pooled_output starts untrained",
                source, " or ".join(self.pooler_keys) or "none in this family",
            )
        assign_weights(specs, tensors, source)
        known = {spec.key for spec in specs}
        known |= {f"{key}.{part}" for key in self.pooler_keys for part in ("weight", "bias")}
        check_unexpected(tensors, known, self.hf_prefix, source)

    def hf_state_dict(self, pooler_key: str | None) -> dict[str, np.ndarray]:
        """The backbone's weights as a Hugging Face state dict (float32 numpy).

        Args:
            pooler_key: Where to put the pooler (e.g. :attr:`classifier_pooler_key` for a
                sequence classifier), or None to leave it out.
        """
        pooler = dense_specs(self.pooler, pooler_key) if pooler_key else []
        return export_tensors(self.encoder_specs() + pooler)

    def masked_lm_head(self, name: str = "masked_lm_head") -> MaskedLmHead:
        """A fresh masked-LM head as the family's ``…ForMaskedLM`` has it, tied to the word embeddings."""
        config = self.hf_config
        return MaskedLmHead(
            self.embeddings.word_embeddings,
            self.masked_lm_activation or config.get(self.activation_key, "gelu"),
            config.get("layer_norm_eps", 1e-12), config.get("initializer_range", 0.02), name=name,
        )

    def masked_lm_specs(self, head: MaskedLmHead) -> list[WeightSpec]:
        """The head's variables with their ``…ForMaskedLM`` state-dict names (not the tied table)."""
        keys = self.masked_lm_keys
        return (dense_specs(head.dense, keys.dense) + layer_norm_specs(head.layer_norm, keys.layer_norm)
                + [WeightSpec(head.bias, keys.bias)])

    def variable_depths(self) -> dict[str, int]:
        """Each backbone variable's depth by path, for layer-wise learning rates.

        The embeddings are at depth 0, encoder layer i (from the bottom) at i + 1 and the
        pooler at ``len(encoder_layers) + 1``.
        """
        parts = [self.embeddings, *self.encoder_layers, self.pooler]
        return {variable.path: depth for depth, part in enumerate(parts) for variable in part.weights}

    def reinitialize_top_layers(self, count: int) -> None:
        """Draws the top ``count`` encoder layers and the pooler afresh, as their initialisers do.

        Dense kernels from their initialisers (the checkpoint's ``initializer_range``), biases
        and LayerNorm offsets zero, LayerNorm scales one: Zhang et al. (2021), "Revisiting
        Few-sample BERT Fine-tuning". 0 keeps every pretrained layer.
        """
        if count <= 0:
            return
        if count >= len(self.encoder_layers):
            raise TfftError(
                f"trainer.reinit_top_layers={count} would redraw every one of the encoder's "
                f"{len(self.encoder_layers)} distinct layers; set it below that (or 0)"
            )
        for part in [*self.encoder_layers[-count:], self.pooler]:
            for layer in part._flatten_layers():
                for name in ("kernel", "bias", "gamma", "beta"):
                    variable = getattr(layer, name, None)
                    initializer = getattr(layer, f"{name}_initializer", None)
                    if variable is not None and initializer is not None:
                        variable.assign(initializer(variable.shape, variable.dtype))

    def dense_layers(self) -> dict[str, list[keras.layers.Dense]]:
        """The encoder's distinct Dense layers by name (``query``, ``intermediate``...), and the pooler."""
        found: dict[str, list[keras.layers.Dense]] = {"pooler": [self.pooler]}
        for encoder_layer in self.encoder_layers:
            for layer in encoder_layer._flatten_layers(include_self=False):
                if isinstance(layer, keras.layers.Dense):
                    found.setdefault(layer.name, []).append(layer)
        return found

    def hf_modules(self, names) -> dict[str, keras.layers.Dense]:
        """The Dense layers called ``names`` (see :meth:`dense_layers`) by Hugging Face module name.

        E.g. ``bert.encoder.layer.0.attention.self.query``; the pooler as the family's sequence
        classifier has it. Call it before LoRA is enabled (a LoRA layer's kernel is computed).

        Raises:
            TfftError: if a name is not one of :meth:`dense_layers`, or none is given.
        """
        layers = self.dense_layers()
        unknown = [name for name in names if name not in layers]
        if unknown or not names:
            raise TfftError(
                f"trainer.lora_targets {list(names)} must name Dense layers of the "
                f"{type(self).__name__} encoder: {', '.join(sorted(layers))}"
            )
        pooler_key = self.classifier_pooler_key or self.base_pooler_key
        specs = self.encoder_specs() + (dense_specs(self.pooler, pooler_key) if pooler_key else [])
        keys = {id(spec.variable): spec.key.removesuffix(".weight") for spec in specs}
        return {keys.get(id(layer.kernel), layer.path): layer
                for name in dict.fromkeys(names) for layer in layers[name]}

    def enable_lora(self, rank: int, alpha: float, targets) -> list:
        """Adds LoRA to the Dense layers named in ``targets`` and freezes every other backbone weight.

        LoRA (Hu et al. 2021) trains ``kernel + alpha / rank * A @ B`` with the pretrained
        kernel frozen, ``A`` [in, rank] drawn He-uniform and ``B`` [rank, out] zero, so
        training starts from the pretrained function. Keras writes the merged kernel into
        ``.weights.h5`` files, so such a file loads into a model without LoRA. The layers
        are kept in :attr:`lora_modules` by Hugging Face module name.

        Args:
            rank: The rank of the update.
            alpha: Its scale's numerator (the update is scaled by ``alpha / rank``).
            targets: Dense layer names (see :meth:`dense_layers`), e.g. ``[query, value]``.

        Returns:
            The LoRA variables (``A`` and ``B`` of each layer), the only trainable ones.
        """
        self.lora_modules = self.hf_modules(targets)
        for variable in self.weights:
            variable.trainable = False
        added = []
        for layer in self.lora_modules.values():
            layer.enable_lora(rank, lora_alpha=alpha)
            added += [layer.lora_kernel_a, layer.lora_kernel_b]
        return added

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
        self.pooler.trainable = count > 0
