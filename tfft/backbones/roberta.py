"""RoBERTa (``roberta``) and XLM-RoBERTa (``xlm-roberta``): BERT with fairseq position ids.

Position ids count non-padding tokens from ``pad_token_id + 1`` and padding gets
``pad_token_id``, as in fairseq; the single token-type row is added to every token, so
``token_type_ids`` is ignored.
"""

from __future__ import annotations

from tfft.backbones.bert import BertBackbone
from tfft.backbones.weights import MaskedLmKeys


class RobertaBackbone(BertBackbone):
    """The RoBERTa encoder.

    ``pooled_output`` is dense + tanh on ``<s>``: the first layer of the Hugging Face
    ``RobertaClassificationHead`` (``classifier.dense``), initialised from the base
    model's pooler when the checkpoint has no classifier.
    """

    hf_prefix = "roberta"
    hf_class_prefix = "Roberta"
    base_pooler_key = "roberta.pooler.dense"
    classifier_pooler_key = "classifier.dense"
    classifier_key = "classifier.out_proj"
    padding_positions = True
    masked_lm_keys = MaskedLmKeys("lm_head.dense", "lm_head.layer_norm", "lm_head.bias")
    masked_lm_activation = "gelu"


class XLMRobertaBackbone(RobertaBackbone):
    """XLM-RoBERTa: RoBERTa's architecture with a SentencePiece vocabulary."""

    hf_class_prefix = "XLMRoberta"
