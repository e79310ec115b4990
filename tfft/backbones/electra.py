"""ELECTRA discriminators (``electra``): BERT layers, optionally narrower embeddings.

When ``embedding_size`` differs from ``hidden_size`` (ELECTRA-small) the embeddings
are projected to the hidden width (``electra.embeddings_project``).
"""

from __future__ import annotations

from tfft.backbones.bert import BertBackbone
from tfft.backbones.weights import MaskedLmKeys


class ElectraBackbone(BertBackbone):
    """The ELECTRA discriminator's encoder.

    ELECTRA has no pooler. ``pooled_output`` is dense + GELU on ``[CLS]``: the first
    layer of the Hugging Face ``ElectraClassificationHead`` (``classifier.dense``),
    loaded from sequence-classification checkpoints and freshly initialised otherwise.
    """

    hf_prefix = "electra"
    hf_class_prefix = "Electra"
    base_pooler_key = None
    classifier_pooler_key = "classifier.dense"
    classifier_key = "classifier.out_proj"
    pooler_activation = "gelu"
    projection_key = "electra.embeddings_project"
    #: The generator's head (``ElectraForMaskedLM``); discriminator checkpoints have none.
    masked_lm_keys = MaskedLmKeys(
        "generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.bias")
    masked_lm_activation = "gelu"
