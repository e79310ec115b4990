"""Tokenizers in the TensorFlow graph, built from a checkpoint's ``tokenizer.json``.

A :class:`GraphTokenizer` turns raw strings into the model inputs the Hugging Face fast
tokenizer gives for the same text (same ids, truncation, pairs and token types), with
core TensorFlow ops only, so that a SavedModel can take raw text wherever TensorFlow
runs (TF Serving and ``saved_model_cli`` register no TensorFlow Text ops). One module per
subword model (``wordpiece``, ``byte_level_bpe``, ``unigram``) handles the normalizer,
pre-tokenizer and model; this module splits out added tokens (``[CLS]``, ``<s>``,
``task.add_special_tokens``) and applies the post-processor's template.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import tensorflow as tf

from tfft.data.graph_tokenizers.template import Template
from tfft.errors import TfftError

#: Subword model modules and their classes, asked in order which handles a tokenizer.json.
_FAMILIES = (("wordpiece", "WordPiece"), ("byte_level_bpe", "ByteLevelBpe"), ("unigram", "Unigram"))
# Marks both ends of each added token: a byte that valid UTF-8 never holds.
_MARK = b"\xff"


def subword_model(spec: dict, folder: Path | None = None) -> tf.Module:
    """The in-graph normalizer, pre-tokenizer and model of a parsed ``tokenizer.json``.

    Raises:
        TfftError: if no in-graph implementation covers the tokenizer.
    """
    for module_name, class_name in _FAMILIES:
        cls = getattr(importlib.import_module(f"{__name__}.{module_name}"), class_name)
        if cls.handles(spec):
            return cls(spec, folder)
    kind = (spec.get("model") or {}).get("type")
    raise TfftError(f"no in-graph tokenizer for a {kind} tokenizer.json; export token ids only "
                    "(the serve_token_ids signature) and tokenize on the client")


class GraphTokenizer(tf.Module):
    """A Hugging Face fast tokenizer as TensorFlow ops.

    Args:
        tokenizer: The run's fast tokenizer (``transformers``), with any added tokens.
        folder: The folder it was loaded from (original vocabulary files, if any).
    """

    def __init__(self, tokenizer, folder: Path | None = None):
        super().__init__(name="graph_tokenizer")
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
        self.model = subword_model(spec, folder)
        self.template = Template.from_spec(spec.get("post_processor"), tokenizer)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        added = sorted(spec.get("added_tokens") or [], key=lambda token: -len(token["content"]))
        self._split_pattern = "|".join(_added_pattern(token) for token in added)
        if added:
            self._added_ids = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    [token["content"] for token in added], [token["id"] for token in added],
                    key_dtype=tf.string, value_dtype=tf.int32),
                default_value=-1)

    def tokenize(self, texts: tf.Tensor):
        """Token ids of ``texts`` without special tokens around them, and their byte offsets.

        Args:
            texts: ``[n]`` strings.

        Returns:
            ``(ids, starts, ends)``: int32 ids and int64 byte offsets, each ``[n, (tokens)]``.
        """
        if not self._split_pattern:
            return self.model.tokenize(texts)
        # Marking both ends of each added token, then splitting there, cuts each text into
        # pieces that tile it: text, added token, text, ... (empty text between adjacent ones).
        marked = tf.strings.regex_replace(texts, self._split_pattern, _MARK + rb"\0" + _MARK)
        pieces = tf.strings.split(marked, sep=_MARK)
        flat = pieces.flat_values
        lengths = tf.cast(tf.strings.length(flat), tf.int64)
        before = tf.cumsum(lengths, exclusive=True)  # Every text has a piece, maybe empty.
        starts_flat = before - tf.gather(before, tf.gather(pieces.row_splits, pieces.value_rowids()))
        piece_starts = pieces.with_flat_values(starts_flat)
        piece_ends = pieces.with_flat_values(starts_flat + lengths)
        added_id = self._added_ids.lookup(flat)
        stripped_id = self._added_ids.lookup(tf.strings.strip(flat))  # lstrip/rstrip tokens
        added_id = tf.where(added_id >= 0, added_id, stripped_id)
        is_added = added_id >= 0
        at_start = piece_starts.flat_values == 0
        ids, starts, ends = self.model.tokenize(tf.where(is_added, tf.constant(""), flat), at_start)
        start = tf.gather(piece_starts.flat_values, ids.value_rowids())
        one = tf.cast(is_added, tf.int64)
        added = [tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, is_added), one)
                 for values in (added_id, piece_starts.flat_values, piece_ends.flat_values)]
        model = [ids, ids.with_flat_values(starts.flat_values + start),
                 ids.with_flat_values(ends.flat_values + start)]
        return tuple(
            pieces.with_values(tf.concat([left, right], axis=1)).merge_dims(1, 2)
            for left, right in zip(model, added, strict=True)
        )

    def encode(self, first: tf.Tensor, second: tf.Tensor | None, max_length: int) -> dict:
        """Model inputs of texts or text pairs, as the fast tokenizer with ``truncation=True``.

        Args:
            first: ``[batch]`` strings.
            second: ``[batch]`` second texts of pairs, or None.
            max_length: Longest sequence including special tokens; pairs are truncated
                longest-first.

        Returns:
            int32 ``input_ids``, ``token_type_ids`` and ``attention_mask``, ``[batch, seq]``
            padded to the batch's longest sequence.
        """
        first_ids = self.tokenize(first)[0]
        second_ids = None if second is None else self.tokenize(second)[0]
        ids, types = self.template.apply(first_ids, second_ids, max_length)
        return {
            "input_ids": ids.to_tensor(default_value=self.pad_id),
            "token_type_ids": types.to_tensor(default_value=0),
            "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
        }


def _added_pattern(token: dict) -> str:
    """RE2 pattern of one added token (literal text, with the spaces it strips)."""
    content = token["content"]
    if "\\E" in content:
        raise TfftError(f"added token {content!r} contains '\\E'; rename it")
    left = r"\s*" if token.get("lstrip") else ""
    right = r"\s*" if token.get("rstrip") else ""
    return f"{left}\\Q{content}\\E{right}"
