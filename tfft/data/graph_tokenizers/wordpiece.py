"""WordPiece in the TensorFlow graph: BERT, DistilBERT and ELECTRA tokenizers.

Reproduces a ``tokenizer.json`` with a ``BertNormalizer`` (clean text, isolate CJK
characters, strip accents, lowercase), the ``BertPreTokenizer`` (split on whitespace,
isolate punctuation) and the ``WordPiece`` model (greedy longest match, ``##``
continuations, ``[UNK]`` for words it cannot cover or longer than
``max_input_chars_per_word`` characters).

Words are split on the original text and normalized one by one, so every token's byte
offsets point into the caller's string; that equals normalizing first (as the Rust
``tokenizers`` crate does) because normalization neither creates nor removes whitespace,
punctuation or CJK characters.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from tfft.errors import TfftError

# Whitespace after BertNormalizer's clean_text: \t \n \r and the Unicode space separators
# (the other White_Space characters are control characters, which it removes).
_WHITESPACE = r"\t\n\r\p{Zs}\x{2028}\x{2029}"
# ASCII punctuation (including symbols such as $ + < = > ^ ` | ~) and Unicode P* categories.
_PUNCTUATION = r"!-/:-@\[-`{-~\p{P}"
# The CJK blocks BertNormalizer surrounds with spaces.
_CJK = (r"\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
        r"\x{2B740}-\x{2B81F}\x{2B920}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}")
# clean_text drops NUL, U+FFFD and control/format/private-use characters.
_REMOVED = r"[\x00\x{FFFD}\p{Cc}\p{Cf}\p{Co}\p{Cs}]"


class WordPiece(tf.Module):
    """The normalizer, pre-tokenizer and WordPiece model of a BERT-style ``tokenizer.json``.

    Args:
        spec: The parsed ``tokenizer.json``.
        folder: Unused (the vocabulary is in ``spec``); kept for the common constructor.

    Raises:
        TfftError: for normalizers or pre-tokenizers other than BERT's.
    """

    def __init__(self, spec: dict, folder: Path | None = None):
        super().__init__(name="wordpiece")
        normalizer = spec.get("normalizer") or {"type": "none"}
        if normalizer["type"] not in ("BertNormalizer", "none"):
            raise TfftError(f"in-graph WordPiece supports the BertNormalizer, not {normalizer['type']}; "
                            "export the token-id signature only (serve_token_ids)")
        pre_tokenizer = (spec.get("pre_tokenizer") or {}).get("type")
        if pre_tokenizer != "BertPreTokenizer":
            raise TfftError(f"in-graph WordPiece supports the BertPreTokenizer, not {pre_tokenizer}; "
                            "export the token-id signature only (serve_token_ids)")
        model = spec["model"]
        lowercase = normalizer.get("lowercase", False)
        strip_accents = normalizer.get("strip_accents")
        self._clean = normalizer.get("clean_text", False)
        self._cjk = normalizer.get("handle_chinese_chars", False)
        self._lowercase = lowercase
        self._strip_accents = lowercase if strip_accents is None else strip_accents
        self._max_chars = int(model.get("max_input_chars_per_word", 100))
        vocab = _vocab_list(model["vocab"])
        self._unk_id = model["vocab"][model["unk_token"]]
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocab, suffix_indicator=model.get("continuing_subword_prefix", "##"),
            max_bytes_per_word=4 * self._max_chars, token_out_type=tf.int32,
            unknown_token=model["unk_token"], no_pretokenization=True,
        )

    @staticmethod
    def handles(spec: dict) -> bool:
        """Whether ``spec`` is a WordPiece tokenizer."""
        return spec.get("model", {}).get("type") == "WordPiece"

    def tokenize(self, texts: tf.Tensor, at_start: tf.Tensor | None = None):
        """Token ids and byte offsets of ``texts`` ([n] strings without added tokens).

        Args:
            texts: ``[n]`` strings.
            at_start: Whether each text begins the string it was cut from; WordPiece
                tokenizes every segment alike, so it is not read.

        Returns:
            ``(ids, starts, ends)``: int32 ids and int64 byte offsets, each ``[n, (tokens)]``.
        """
        words, word_starts, word_ends = self._split(texts)
        flat = words.flat_values
        normalized = self._normalize(flat)
        ids, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
        ids, starts, ends = self._unknown_long_words(normalized, ids, starts, ends)
        # Pieces of words whose normalized form has other byte lengths span the whole word.
        aligned = tf.strings.length(normalized) == tf.strings.length(flat)
        first, last = word_starts.flat_values, word_ends.flat_values
        per_piece = ids.value_rowids()
        keep_offsets = tf.gather(aligned, per_piece)
        word_start = tf.gather(first, per_piece)
        starts = tf.where(keep_offsets, word_start + starts.flat_values, word_start)
        ends = tf.where(keep_offsets, word_start + ends.flat_values, tf.gather(last, per_piece))
        # Words that normalize to nothing (accents or control characters alone) give no pieces.
        row_splits = tf.gather(ids.row_splits, words.row_splits)
        return (tf.RaggedTensor.from_row_splits(ids.flat_values, row_splits),
                tf.RaggedTensor.from_row_splits(starts, row_splits),
                tf.RaggedTensor.from_row_splits(ends, row_splits))

    def _split(self, texts):
        """Words of the original texts with byte offsets: whitespace dropped, punctuation/CJK alone."""
        single = _PUNCTUATION + (_CJK if self._cjk else "")
        # The split op reads strings up to a NUL byte; \x01 keeps the offsets and is dropped too.
        texts = tf.strings.regex_replace(texts, r"\x00", "\x01")
        return tf_text.regex_split_with_offsets(
            texts, delim_regex_pattern=f"[{_WHITESPACE}]+|[{single}]", keep_delim_regex_pattern=f"[{single}]"
        )

    def _normalize(self, words):
        if self._clean:
            words = tf.strings.regex_replace(words, _REMOVED, "")
        if self._strip_accents:
            words = tf.strings.regex_replace(tf_text.normalize_utf8(words, "NFD"), r"\p{Mn}", "")
        if self._lowercase:
            # Character by character, as Rust's char::to_lowercase: no word-final sigma.
            words = tf.strings.lower(tf.strings.regex_replace(words, "\u03a3", "\u03c3"), encoding="utf-8")
        return words

    def _unknown_long_words(self, words, ids, starts, ends):
        """One ``[UNK]`` for words longer than ``max_input_chars_per_word`` characters."""
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self._max_chars
        lengths = tf.where(too_long, tf.ones_like(ids.row_lengths()), ids.row_lengths())
        keep = tf.logical_not(tf.gather(too_long, ids.value_rowids()))
        first = tf.logical_or(keep, tf.ragged.range(ids.row_lengths()).flat_values == 0)
        unknown = tf.fill(tf.shape(ids.flat_values), self._unk_id)
        word_bytes = tf.gather(tf.cast(tf.strings.length(words), tf.int64), ids.value_rowids())
        new_ids = tf.boolean_mask(tf.where(keep, ids.flat_values, unknown), first)
        new_starts = tf.boolean_mask(tf.where(keep, starts.flat_values, tf.zeros_like(word_bytes)), first)
        new_ends = tf.boolean_mask(tf.where(keep, ends.flat_values, word_bytes), first)
        return tuple(tf.RaggedTensor.from_row_lengths(values, lengths)
                     for values in (new_ids, new_starts, new_ends))


def _vocab_list(vocab: dict[str, int]) -> list[str]:
    """The vocabulary in id order (unused ids get placeholders no text can produce)."""
    pieces = [f"\x00unused{index}" for index in range(max(vocab.values()) + 1)]
    for piece, index in vocab.items():
        pieces[index] = piece
    return pieces
