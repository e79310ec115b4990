"""Masked-LM training on raw text: domain-adaptive pretraining of the encoder (BERT's objective).

Texts come from plain ``.txt`` files (one document per line, or documents separated by
blank lines: ``task.document_separator``), JSON Lines, TSV or CSV files with a text field
(``task.text_field``), or TFDS text datasets. By default (``task.line_by_line: false``) the
documents are tokenized, joined with the separator token between them and cut into blocks
that fill ``max_seq_length`` with the family's special tokens (``[CLS] ... [SEP]``); with
``line_by_line`` every document is one example, cut at ``max_seq_length``.

Masking is dynamic (RoBERTa): every training batch draws its own masks from a seed fixed
by the run's seed, the epoch and the batch, so each epoch sees new masks and a resumed run
the ones the uninterrupted run drew. ``task.mlm_probability`` of the tokens (never special
tokens) are chosen, whole words at once with ``task.whole_word_masking``; of those, 80%
become the mask token, 10% a random token and 10% stay as they are, and only they are
scored. Validation masks are drawn once with ``task.validation_mask_seed``, so every
evaluation (before training, after it, in another run) scores the same positions.

The head is the family's ``...ForMaskedLM`` head (dense, activation, LayerNorm, output
tied to the word embeddings), loaded from the checkpoint when it has one. It computes
vocabulary logits only where the model input ``prediction_mask`` is 1 (the chosen tokens, at
most ``task.max_predictions`` a sequence, as BERT's ``max_predictions_per_seq``), not at every
position: the output projection is as large as the encoder's layers together. Metrics: ``loss``
(mean cross-entropy over the masked tokens), ``perplexity`` (its exponential) and
``accuracy`` (masked tokens predicted exactly). Predict mode fills every mask token of each
line of ``task.predict_data`` with its ``task.top_k`` likeliest tokens.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones.layers import MaskedLmHead
from tfft.backbones.weights import assign_weights, normalize_keys
from tfft.config import DataConfig, TaskConfig, config_field
from tfft.data.features import IGNORED_LABEL, Features, FeatureSpec, FeatureSpecs, token_specs
from tfft.data.sources import Record, infer_format, open_text, register_format, text_lines
from tfft.errors import TfftError
from tfft.tasks.base import HfHead, Task, register_task

#: The head's layer name in the task model.
HEAD_NAME = "masked_lm_head"
#: The model input marking (1) the positions whose tokens the head predicts.
PREDICTION_MASK = "prediction_mask"
#: The token inputs of the encoder.
_ENCODER_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
#: Of the chosen tokens: below this draw the mask token, below the next a random token, else kept.
_MASK_SHARE, _RANDOM_SHARE = 0.8, 0.1
#: How sub-word vocabularies mark a token that starts a word (WordPiece instead marks continuations).
_WORD_START_MARKS = ("\u0120", "\u2581")  # byte-level BPE's "Ġ", SentencePiece's "▁"
_WORDPIECE_CONTINUATION = "##"


@dataclasses.dataclass
class MaskedLmConfig(TaskConfig):
    """Text fields, blocks and masking of ``task.type: masked_lm``."""

    text_field: str = config_field("text", doc="JSONL/TSV/CSV/TFDS: the field holding the text.")
    document_separator: str = config_field(
        "line", choices=("line", "blank_line"),
        doc=".txt files: one document per line, or documents of several lines separated by blank lines.",
    )
    line_by_line: bool = config_field(
        False, doc="One example per document (cut at max_seq_length) instead of documents joined and "
        "cut into full blocks.",
    )
    mlm_probability: float = config_field(0.15, doc="Share of (non-special) tokens masked and scored.")
    whole_word_masking: bool = config_field(False, doc="Mask all sub-words of a word together.")
    max_predictions: int = config_field(
        0, doc="Tokens masked and predicted per sequence at most (0: mlm_probability x max_seq_length "
        "plus four standard deviations); chosen tokens past it stay as they are.",
    )
    validation_mask_seed: int = config_field(
        0, doc="Seed of the validation masks, fixed so that evaluations compare."
    )
    top_k: int = config_field(5, doc="Predict mode: candidates per mask token.")


@dataclasses.dataclass(frozen=True)
class TextExample:
    """One document of raw text, or (``labeled`` False) a line whose mask tokens are to be filled."""

    text: str
    where: str
    labeled: bool = True


def _read_text(path: str, data: DataConfig) -> Iterator[Record]:
    """Plain text: one record per line (``text``), blank lines included (they may separate documents)."""
    with open_text(path, data.encoding) as file:
        for line, text in enumerate(text_lines(file, path), start=1):
            yield Record({"text": text.rstrip("\r\n")}, path, line)


register_format("text", _read_text)


def mask_tokens(ids, labels, seed, probability: float, mask_id: int, vocab_size: int, limit: int,
                continuation=None):
    """BERT's masking of a batch of token ids, drawn with stateless ops from ``seed``.

    Args:
        ids: int32 ``[batch, seq]`` token ids (ragged, or dense with padding).
        labels: The same shape: the token's id where it may be masked, -100 elsewhere
            (special tokens, padding).
        seed: int64 ``[2]``.
        probability: Share of the candidate tokens (or words) chosen.
        mask_id: The mask token's id.
        vocab_size: Random replacements are drawn from ``[0, vocab_size)``.
        limit: Tokens chosen per sequence at most; later ones are left as they are.
        continuation: bool ``[vocab]``, True for ids that continue a word: whole words are
            chosen together. None: tokens are chosen one by one.

    Returns:
        ``(ids, labels, chosen)`` shaped as ``ids``: the chosen tokens replaced (80% mask, 10%
        random, 10% kept), their labels (-100 for every token not chosen) and int32 1 where chosen.
    """
    flat_ids, flat_labels = _flat(ids), _flat(labels)
    candidates = flat_labels != IGNORED_LABEL
    choose_seed, action_seed, random_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    draws = tf.random.stateless_uniform(tf.shape(flat_ids), choose_seed)
    if continuation is not None:  # A word's draw is its first token's.
        starts = tf.logical_not(tf.gather(continuation, flat_ids)) | tf.logical_not(candidates)
        word = tf.maximum(tf.cumsum(tf.cast(starts, tf.int32)) - 1, 0)
        draws = tf.gather(draws, tf.gather(tf.where(starts)[:, 0], word))
    chosen = tf.cast((draws < probability) & candidates, tf.int32)
    rows = _dense(_unflat(ids, chosen), 0)
    rank = tf.cumsum(rows, axis=1) - rows
    chosen = _flat(_like(ids, rows * tf.cast(rank < limit, tf.int32))) > 0
    action = tf.random.stateless_uniform(tf.shape(flat_ids), action_seed)
    random_ids = tf.random.stateless_uniform(tf.shape(flat_ids), random_seed, 0, vocab_size, dtype=tf.int32)
    masked = tf.where(chosen & (action < _MASK_SHARE), tf.cast(mask_id, flat_ids.dtype), flat_ids)
    masked = tf.where(chosen & (action >= _MASK_SHARE + _RANDOM_SHARE), flat_ids, masked)
    masked = tf.where(chosen & (action >= _MASK_SHARE) & (action < _MASK_SHARE + _RANDOM_SHARE),
                      random_ids, masked)
    return (_unflat(ids, masked), _unflat(labels, tf.where(chosen, flat_labels, IGNORED_LABEL)),
            _unflat(ids, tf.cast(chosen, tf.int32)))


def predicted_positions(mask, count: int):
    """The positions of the 1s of ``mask`` [batch, seq], ascending, as ``[batch, min(count, seq)]``.

    Rows with fewer 1s are filled with positions where ``mask`` is 0.
    """
    length = mask.shape[1]
    length = tf.shape(mask)[1] if length is None else length
    earlier_first = tf.cast(length - tf.range(length), tf.float32)  # Ties broken towards the start.
    return tf.math.top_k(tf.cast(mask, tf.float32) * earlier_first, k=tf.minimum(count, length)).indices


def continuation_table(tokenizer) -> np.ndarray:
    """Which ids continue a word: bool ``[len(tokenizer)]``.

    WordPiece marks continuations (``##x``); byte-level BPE and SentencePiece mark word starts
    (``Ġx``, ``▁x``), so their pieces without the mark continue a word. Special tokens start words.
    """
    vocab = tokenizer.get_vocab()
    table = np.zeros(len(tokenizer), dtype=bool)
    wordpiece = any(token.startswith(_WORDPIECE_CONTINUATION) for token in vocab)
    special = set(tokenizer.all_special_ids)
    for token, index in vocab.items():
        if index >= len(table) or index in special:
            continue
        table[index] = (token.startswith(_WORDPIECE_CONTINUATION) if wordpiece
                        else not token.startswith(_WORD_START_MARKS))
    return table


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one text (``[CLS]``, ``[SEP]``)."""
    inner = tokenizer("a", add_special_tokens=False)["input_ids"]
    whole = tokenizer("a")["input_ids"]
    start = next(i for i in range(len(whole)) if whole[i:i + len(inner)] == inner)
    return whole[:start], whole[start + len(inner):]


def _flat(value):
    return value.flat_values if isinstance(value, tf.RaggedTensor) else tf.reshape(value, [-1])


def _unflat(like, values):
    if isinstance(like, tf.RaggedTensor):
        return like.with_flat_values(values)
    return tf.reshape(values, tf.shape(like))


def _dense(value, padding):
    """A ``[batch, seq]`` batch (ragged or dense) as a dense tensor."""
    return value.to_tensor(padding) if isinstance(value, tf.RaggedTensor) else value


def _like(like, rows):
    """Dense ``[batch, seq]`` ``rows`` back in the shape of ``like`` (ragged: its row lengths)."""
    if isinstance(like, tf.RaggedTensor):
        return tf.RaggedTensor.from_tensor(rows, lengths=like.row_lengths())
    return rows


class PredictedTokens(keras.layers.Layer):
    """The hidden states at the positions ``prediction_mask`` marks (see :func:`predicted_positions`).

    Args:
        max_predictions: Positions per sequence at most.
    """

    def __init__(self, max_predictions: int, **kwargs):
        super().__init__(**kwargs)
        self.max_predictions = max_predictions

    def call(self, hidden, prediction_mask):
        """``[batch, min(max_predictions, seq), hidden]`` from ``[batch, seq, hidden]``."""
        return tf.gather(hidden, predicted_positions(prediction_mask, self.max_predictions), batch_dims=1)


class MaskedTokenScores(keras.layers.Layer):
    """Per predicted position: the label's log-probability, whether it is the top token, whether it is scored.

    Args:
        max_predictions: Positions per sequence at most (as in :class:`PredictedTokens`).
    """

    def __init__(self, max_predictions: int, **kwargs):
        super().__init__(**kwargs)
        self.max_predictions = max_predictions

    def call(self, logits, labels):
        """``[batch, positions, 3]`` from logits ``[batch, positions, vocab]`` and per-token labels."""
        scored = tf.not_equal(labels, IGNORED_LABEL)
        labels = tf.gather(labels, predicted_positions(scored, self.max_predictions), batch_dims=1)
        scored = tf.not_equal(labels, IGNORED_LABEL)
        targets = tf.where(scored, labels, 0)
        log_probs = tf.gather(tf.nn.log_softmax(logits, axis=-1), targets, batch_dims=2)
        correct = tf.equal(tf.cast(tf.argmax(logits, axis=-1), targets.dtype), targets)
        return tf.stack([tf.where(scored, log_probs, 0.0), tf.cast(correct & scored, tf.float32),
                         tf.cast(scored, tf.float32)], axis=-1)


@register_task
class MaskedLm(Task):
    """Continues pretraining with the masked-LM objective on raw text."""

    name = "masked_lm"
    pipeline_tag = "fill-mask"
    default_main_metric = "loss"
    metric_names = ("loss", "perplexity", "accuracy")
    uses_pooler = False
    distillable = False
    example_type = TextExample
    config_class = MaskedLmConfig
    #: The token's id where it is scored (-100 elsewhere); masking picks among these.
    label_spec = FeatureSpec((None,), "int32", IGNORED_LABEL)
    #: Plain ``.txt`` files are text (one document per line), not CoNLL columns.
    format_suffixes: ClassVar[dict[str, str]] = {".txt": "text"}

    def set_tokenizer(self, tokenizer) -> None:
        """Takes the run's tokenizer; it must have a mask token."""
        if tokenizer.mask_token_id is None:
            raise TfftError(f"the tokenizer of '{self.config.tokenizer or self.config.init_checkpoint}' has "
                            "no mask token, which masked_lm needs; use a checkpoint pretrained with one")
        super().set_tokenizer(tokenizer)
        self._continuation = continuation_table(tokenizer) if self.config.whole_word_masking else None

    @property
    def feature_specs(self) -> FeatureSpecs:
        """The encoder's token inputs and ``prediction_mask`` ([batch, seq]: 1 where the head predicts)."""
        specs = token_specs(self.label_spec)
        return FeatureSpecs({**specs.inputs, PREDICTION_MASK: FeatureSpec((None,))}, specs.label)

    @property
    def max_predictions(self) -> int:
        """``task.max_predictions``, or the chosen tokens' mean plus four standard deviations."""
        if self.config.max_predictions > 0:
            return self.config.max_predictions
        length, share = self.config.max_seq_length, self.config.mlm_probability
        return math.ceil(length * share + 4 * math.sqrt(length * share * (1 - share)))

    @property
    def prediction_length(self) -> int:
        """Outputs are per predicted position: inference pads them to ``max_seq_length``."""
        return self.config.max_seq_length

    # --- data --------------------------------------------------------------------------

    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[TextExample]:
        """Reads documents (or, unlabeled, lines to fill); empty ones are skipped."""
        if not 0 < self.config.mlm_probability < 1:
            raise TfftError(f"task.mlm_probability must be in (0, 1), got {self.config.mlm_probability}")
        records = self.read_records(data)
        if infer_format(data.input_path, data.format, self.format_suffixes) == "text":
            examples = self._documents(records, labeled)
        else:
            examples = [TextExample(self._text(record), record.where, labeled) for record in records]
            examples = [example for example in examples if example.text.strip()]
        if not examples:
            raise TfftError(f"input '{data.input_path}' holds no text; check the file or task.text_field")
        return examples

    def _documents(self, records: list[Record], labeled: bool) -> list[TextExample]:
        """Lines of text files as documents: each line, or runs of lines between blank lines."""
        if not labeled or self.config.document_separator == "line":
            return [TextExample(record.fields["text"], record.where, labeled)
                    for record in records if record.fields["text"].strip()]
        documents, lines = [], []
        for record in [*records, None]:
            if record is None or not record.fields["text"].strip():
                if lines:
                    text = " ".join(line.fields["text"].strip() for line in lines)
                    documents.append(TextExample(text, lines[0].where))
                lines = []
            else:
                lines.append(record)
        return documents

    def _text(self, record: Record) -> str:
        field = self.config.text_field
        if field not in record.fields:
            raise TfftError(f"{record.where}: no field '{field}' (fields: {', '.join(record.fields)}); "
                            "set task.text_field to the field holding the text")
        value = record.fields[field]
        if not isinstance(value, str):
            raise TfftError(f"{record.where}: field '{field}' holds {type(value).__name__}, not text; "
                            "fix the data or set task.text_field")
        return value

    def encode(self, examples: list[TextExample], tokenizer) -> Features:
        """Token blocks (or one row per document) with labels; rows without labels when predicting."""
        labeled = all(example.labeled for example in examples)
        pieces = tokenizer([example.text for example in examples], add_special_tokens=False)["input_ids"]
        budget = self.config.max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
        if labeled and not self.config.line_by_line:
            stream = [token for piece in pieces for token in [*piece, tokenizer.sep_token_id]][:-1]
            pieces = [stream[start:start + budget] for start in range(0, len(stream), budget)]
        prefix, suffix = special_tokens_around(tokenizer)
        rows = [[*prefix, *piece[:budget], *suffix] for piece in pieces]
        features = Features.from_lists({
            "input_ids": rows,
            "token_type_ids": [[0] * len(row) for row in rows],
            "attention_mask": [[1] * len(row) for row in rows],
        })
        ids = features.columns["input_ids"]  # Predicting: the mask tokens; training: masking sets it.
        features.columns[PREDICTION_MASK] = (ids == tokenizer.mask_token_id).astype(np.int32) * (not labeled)
        if labeled:
            special = np.array(sorted(set(tokenizer.all_special_ids)), dtype=np.int32)
            features.labels = np.where(np.isin(ids, special), IGNORED_LABEL, ids).astype(np.int32)
            features.label_per_token = True
        else:
            features.examples = examples
        return features

    def _masking(self):
        return dict(probability=self.config.mlm_probability, mask_id=self.tokenizer.mask_token_id,
                    vocab_size=len(self.tokenizer), limit=self.max_predictions,
                    continuation=None if self._continuation is None else tf.constant(self._continuation))

    def training_transform(self):
        """Masks every batch afresh (:func:`mask_tokens`); labels become those of the predicted positions.

        The labels of a batch are ``[batch, min(max_predictions, seq)]``, in the order the head
        predicts (ascending positions), -100 where a sequence has fewer chosen tokens.
        """
        masking, count = self._masking(), self.max_predictions

        def transform(inputs, labels, seed):
            ids, labels, chosen = mask_tokens(inputs["input_ids"], labels, seed, **masking)
            positions = predicted_positions(_dense(chosen, 0), count)
            predicted = tf.gather(_dense(labels, IGNORED_LABEL), positions, batch_dims=1)
            return {**inputs, "input_ids": ids, PREDICTION_MASK: chosen}, predicted

        return transform

    def evaluation_features(self, features: Features) -> Features:
        """The features with masks drawn once from ``task.validation_mask_seed``."""
        if features.labels is None:
            return features
        lengths = features.lengths
        ids, labels, chosen = mask_tokens(
            tf.RaggedTensor.from_row_lengths(features.columns["input_ids"], lengths),
            tf.RaggedTensor.from_row_lengths(features.labels, lengths),
            tf.constant([self.config.validation_mask_seed, 0], tf.int64), **self._masking())
        columns = {**features.columns, "input_ids": ids.flat_values.numpy(),
                   PREDICTION_MASK: chosen.flat_values.numpy()}
        return dataclasses.replace(features, columns=columns, labels=labels.flat_values.numpy())

    # --- model -------------------------------------------------------------------------

    def build_model(self, backbone, dropout: float) -> keras.Model:
        """The encoder with the family's masked-LM head (no dropout before it, as in pretraining)."""
        self._head = backbone.masked_lm_head(HEAD_NAME)
        inputs = self.model_inputs()
        encoded = backbone({name: inputs[name] for name in _ENCODER_INPUTS})
        return keras.Model(inputs, self.build_head(encoded, inputs, dropout), name=f"{self.name}_model")

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """The head of :meth:`build_model` at the positions ``prediction_mask`` marks: float32 logits.

        ``[batch, min(max_predictions, seq), vocab]``, positions ascending.
        """
        hidden = PredictedTokens(self.max_predictions, name="predicted_tokens")(
            backbone_outputs["sequence_output"], inputs[PREDICTION_MASK])
        return self._head(hidden)

    def load_pretrained_head(self, model, backbone, checkpoint) -> None:
        """Loads the checkpoint's masked-LM head; without one (e.g. a base model) it starts fresh."""
        head: MaskedLmHead = model.get_layer(HEAD_NAME)
        specs = backbone.masked_lm_specs(head)
        tensors = normalize_keys(checkpoint.tensors(), backbone.anchor_key, backbone.hf_prefix)
        missing = [spec.key for spec in specs if spec.key not in tensors]
        if missing:
            logging.warning("checkpoint '%s' has no masked-LM head (%s); it starts untrained",
                            checkpoint.weights, missing[0])
            return
        bias = tensors[backbone.masked_lm_keys.bias]
        if len(bias) < head.vocab_size:  # Tokens added to the tokenizer start at zero bias.
            tensors[backbone.masked_lm_keys.bias] = np.pad(bias, (0, head.vocab_size - len(bias)))
        assign_weights(specs, tensors, str(checkpoint.weights))
        logging.info("masked-LM head loaded from '%s'", checkpoint.weights)

    def loss(self):
        """Cross-entropy over the masked tokens."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORED_LABEL)

    # --- outputs -----------------------------------------------------------------------

    def evaluation_outputs(self, outputs, labels):
        """Per predicted position: the label's log-probability, whether it is the top token, if scored."""
        return MaskedTokenScores(self.max_predictions, name="masked_token_scores")(outputs, labels)

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Mean cross-entropy, perplexity and accuracy over the masked tokens."""
        totals = outputs.reshape(-1, 3).astype(np.float64).sum(axis=0)
        if not totals[2]:
            raise TfftError("the validation data has no token to score; give it more text or raise "
                            "task.mlm_probability")
        loss = -totals[0] / totals[2]
        return {"loss": float(loss), "perplexity": float(math.exp(min(loss, 700.0))),
                "accuracy": float(totals[1] / totals[2])}

    def prediction_outputs(self, outputs):
        """Per token: the ``top_k`` likeliest ids and their probabilities."""
        probabilities, ids = keras.ops.top_k(keras.ops.softmax(outputs, axis=-1), self.config.top_k)
        return {"top_ids": ids, "top_probabilities": probabilities}

    def predictions(self, examples: list[TextExample], features: Features, outputs) -> list[dict]:
        """Per line: its text, the candidates of each mask token and the text with the best ones filled in."""
        tokenizer, rows = self.tokenizer, []
        mask = tokenizer.mask_token
        unfilled = 0
        for row, (example, offset, length) in enumerate(zip(examples, features.offsets(), features.lengths,
                                                            strict=True)):
            count = min(int(features.columns[PREDICTION_MASK][offset:offset + length].sum()),
                        self.max_predictions)
            unfilled += example.text.count(mask) - count
            candidates = [  # The head predicts the marked positions in order.
                [{"token": tokenizer.decode([int(token)]).strip(), "token_id": int(token),
                  "score": float(score)}
                 for token, score in zip(outputs["top_ids"][row, index],
                                         outputs["top_probabilities"][row, index], strict=True)]
                for index in range(count)
            ]
            filled = example.text
            for options in candidates:
                filled = filled.replace(mask, options[0]["token"], 1)
            rows.append({"text": example.text, "masks": candidates, "filled": filled})
        if unfilled:
            logging.warning("%d mask tokens lie past task.max_seq_length=%d tokens or task.max_predictions="
                            "%d a line and are not filled", unfilled, self.config.max_seq_length,
                            self.max_predictions)
        return rows

    def outputs_from_serving(self, served):
        """Not available: the served top tokens are not what :meth:`evaluate` scores."""
        raise TfftError("a masked-LM export serves its top tokens, not scores to evaluate; evaluate the run "
                        "with tfft-train --mode=eval")

    def serving_outputs(self, outputs) -> dict:
        """``top_ids``, ``top_probabilities`` [batch, positions, top_k] where ``prediction_mask`` is 1."""
        return self.prediction_outputs(outputs)

    def hf_head(self, model, backbone) -> HfHead:
        """``{Family}ForMaskedLM``: the masked-LM head, its output tied to the word embeddings."""
        return HfHead("ForMaskedLM", backbone.masked_lm_specs(model.get_layer(HEAD_NAME)), {}, None)


__all__ = ["MaskedLm", "MaskedLmConfig", "TextExample", "continuation_table", "mask_tokens",
           "predicted_positions"]
