"""The post-processor of a ``tokenizer.json``: special tokens around one or two sequences.

Truncation follows the Rust ``tokenizers`` crate's ``LongestFirst`` strategy, what
``tokenizer(first, second, truncation=True, max_length=n)`` does.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tfft.errors import TfftError


@dataclasses.dataclass(frozen=True)
class Piece:
    """One part of a template: special token ids, or sequence 0 (A) or 1 (B)."""

    type_id: int
    special_ids: tuple[int, ...] = ()
    sequence: int = -1


@dataclasses.dataclass(frozen=True)
class Template:
    """The layouts of single sequences and pairs.

    Attributes:
        single: Pieces around one sequence, e.g. ``[CLS] A [SEP]``.
        pair: Pieces around two, e.g. ``[CLS] A [SEP] B [SEP]``.
    """

    single: tuple[Piece, ...]
    pair: tuple[Piece, ...]

    @classmethod
    def from_spec(cls, spec: dict | None, tokenizer) -> Template:
        """Reads ``TemplateProcessing``, ``BertProcessing`` or ``RobertaProcessing`` (alone or in a Sequence).

        Raises:
            TfftError: for another post-processor.
        """
        kind = (spec or {}).get("type")
        if kind == "Sequence":
            known = [part for part in spec["processors"] if part["type"] != "ByteLevel"]
            return cls.from_spec(known[0] if len(known) == 1 else None, tokenizer)
        if kind == "TemplateProcessing":
            ids = {name: tuple(token["ids"]) for name, token in spec["special_tokens"].items()}
            return cls(_template_pieces(spec["single"], ids), _template_pieces(spec["pair"], ids))
        if kind in ("BertProcessing", "RobertaProcessing"):
            cls_ids, sep_ids = (tuple(spec["cls"][1:]), tuple(spec["sep"][1:]))
            second_type = 1 if kind == "BertProcessing" else 0
            separators = 1 if kind == "BertProcessing" else 2  # RoBERTa: <s> A </s></s> B </s>
            middle = (Piece(0, sep_ids),) * separators
            single = (Piece(0, cls_ids), Piece(0, sequence=0), Piece(0, sep_ids))
            pair = (*single[:2], *middle, Piece(second_type, sequence=1), Piece(second_type, sep_ids))
            return cls(single, pair)
        raise TfftError(f"tokenizer post-processor {kind} has no in-graph version; export token ids only "
                        "(the serve_token_ids signature)")

    def num_special(self, pair: bool) -> int:
        """How many special tokens a single sequence or a pair gets."""
        return sum(len(piece.special_ids) for piece in (self.pair if pair else self.single))

    def prefix_length(self) -> int:
        """How many special tokens come before a single sequence (e.g. 1 for ``[CLS]``)."""
        before = []
        for piece in self.single:
            if piece.sequence >= 0:
                break
            before.append(len(piece.special_ids))
        return sum(before)

    def apply(self, first: tf.RaggedTensor, second: tf.RaggedTensor | None, max_length: int,
              special_value: int | None = None):
        """Truncates ``[batch, (tokens)]`` ids to ``max_length`` with the specials; returns ids and types.

        Args:
            first: The first sequences.
            second: The second sequences of pairs, or None.
            max_length: Longest result, special tokens included.
            special_value: Put this in place of every special token's id (e.g. -1, to lay
                out per-token values such as positions instead of ids).
        """
        pair = second is not None
        budget = max_length - self.num_special(pair)
        if budget < 0:
            raise TfftError(f"max_seq_length {max_length} leaves no room for the {self.num_special(pair)} "
                            "special tokens; raise task.max_seq_length")
        if pair:
            first_length, second_length = _longest_first(first.row_lengths(), second.row_lengths(), budget)
            sequences = (_truncate(first, first_length), _truncate(second, second_length))
        else:
            sequences = (_truncate(first, tf.minimum(first.row_lengths(), budget)),)
        batch = first.nrows()
        ids, types = [], []
        for piece in self.pair if pair else self.single:
            if piece.sequence >= 0:
                part = sequences[piece.sequence]
            else:
                values = piece.special_ids
                if special_value is not None:
                    values = [special_value] * len(values)
                row = tf.constant([values], first.dtype)
                part = tf.RaggedTensor.from_tensor(tf.tile(row, tf.stack([batch, 1])))
            ids.append(part)
            types.append(tf.ones_like(part) * piece.type_id)
        return tf.concat(ids, axis=1), tf.concat(types, axis=1)


def _template_pieces(items: list[dict], special_ids: dict) -> tuple[Piece, ...]:
    pieces = []
    for item in items:
        if "SpecialToken" in item:
            token = item["SpecialToken"]
            pieces.append(Piece(token["type_id"], special_ids[token["id"]]))
        else:
            sequence = item["Sequence"]
            pieces.append(Piece(sequence["type_id"], sequence=0 if sequence["id"] == "A" else 1))
    return tuple(pieces)


def _longest_first(first, second, budget: int):
    """Kept lengths of two sequences under ``budget`` tokens (tokenizers' LongestFirst)."""
    budget = tf.constant(budget, first.dtype)
    fits = first + second <= budget
    shorter = tf.minimum(first, second)
    longer_kept = tf.where(shorter > budget, shorter, tf.maximum(shorter, budget - shorter))
    halve = shorter + longer_kept > budget
    shorter_kept = tf.where(halve, budget // 2, shorter)
    longer_kept = tf.where(halve, budget // 2 + budget % 2, longer_kept)
    swapped = first > second
    first_kept = tf.where(swapped, longer_kept, shorter_kept)
    second_kept = tf.where(swapped, shorter_kept, longer_kept)
    return (tf.where(fits, first, tf.minimum(first, first_kept)),
            tf.where(fits, second, tf.minimum(second, second_kept)))


def _truncate(ids: tf.RaggedTensor, lengths) -> tf.RaggedTensor:
    """The first ``lengths[i]`` tokens of each row."""
    return tf.ragged.boolean_mask(ids, tf.ragged.range(ids.row_lengths()) < tf.expand_dims(lengths, 1))
