r"""Byte-level BPE (GPT-2 / RoBERTa ``tokenizer.json``) as TensorFlow graph ops.

What the Hugging Face ``tokenizers`` crate does to a text segment free of added tokens:

1. ``ByteLevel`` pre-tokenizer: a prefix space (``add_prefix_space``), then GPT-2's split
   ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``
   (``use_regex``). RE2 has no look-ahead: :data:`_PATTERN` glues a whitespace run to
   the space-prefixed word after it, and :func:`_split_space_runs` cuts such matches, and
   bare runs before a word, where ``\s+(?!\S)`` ends.
2. ``BPE`` model: a word's bytes become the 256 byte symbols, then the lowest-ranked
   adjacent pair (leftmost on ties) merges until no pair is in ``merges``, as the crate's
   priority queue does, all words of a batch at once. A word that is a token BPE gives
   back whole skips the merge loop through a lookup table.
3. Offsets: byte offsets into the input, trimmed of spaces as a ``RobertaProcessing`` or
   ``ByteLevel`` post-processor does (``trim_offsets``). A token holding part of a
   multi-byte character spans the whole character, like Hugging Face's character offsets.

Only core TensorFlow ops are used: serving needs no ``tensorflow_text``.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf

from tfft.errors import TfftError

# Oniguruma's \s (Unicode White_Space) in the GPT-2 pattern; RE2's \s is ASCII only.
_SPACE = r"\t\n\x{0B}\f\r \x{85}\p{Z}"
_WORD = rf"\p{{L}}+|\p{{N}}+|[^{_SPACE}\p{{L}}\p{{N}}]+"
# GPT-2's split without \s+(?!\S): contractions, words with an optional leading space, a
# whitespace run glued to the space-prefixed word after it, and bare whitespace runs.
_PATTERN = rf"'(?:[stmd]|re|ve|ll)| ?(?:{_WORD})|[{_SPACE}]+ (?:{_WORD})|[{_SPACE}]+"
_TWO_SPACES = rf"(?s)[{_SPACE}]{{2}}.*"
_ONLY_SPACES = rf"[{_SPACE}]+"
# Marks where a match begins: a byte that valid UTF-8 never holds.
_MARK = b"\xff"
# Replaces a match by its leading whitespace less the last whitespace character.
_SPACES_BUT_LAST = (rf"^([{_SPACE}]*)[{_SPACE}](?s:.*)", r"\1")
# Vocabulary tokens per merge loop when finding those that BPE gives back whole.
_INIT_CHUNK = 4096
_SUPPORTED = "byte-level BPE (a ByteLevel pre-tokenizer, no normalizer), as GPT-2 and RoBERTa have"


def _unsupported(what: str) -> TfftError:
    return TfftError(f"in-graph tokenization does not support {what}; it supports {_SUPPORTED}")


def _byte_symbols() -> list[str]:
    """GPT-2's ``bytes_to_unicode``: the printable character that stands for each byte."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}  # "!".."~", "¡".."¬", "®".."ÿ"
    symbols, extra = [], 0
    for byte in range(256):
        symbols.append(chr(byte) if byte in printable else chr(256 + extra))
        extra += byte not in printable
    return symbols


def _token_bytes(vocab: dict[str, int]) -> dict[int, bytes]:
    """The bytes of each token made of byte symbols, by id.

    Raises:
        TfftError: if the vocabulary lacks one of the 256 byte symbols.
    """
    symbols = _byte_symbols()
    missing = "".join(symbol for symbol in symbols if symbol not in vocab)
    if missing:
        raise _unsupported(f"a vocabulary without the byte symbols {missing[:8]!r}")
    byte_of = {symbol: byte for byte, symbol in enumerate(symbols)}
    return {
        token_id: bytes(byte_of[char] for char in token)
        for token, token_id in vocab.items()
        if token and all(char in byte_of for char in token)
    }


def _byte_level(pre_tokenizer: dict | None) -> dict | None:
    """The ``ByteLevel`` pre-tokenizer, alone or in a ``Sequence``."""
    kind = (pre_tokenizer or {}).get("type")
    if kind == "ByteLevel":
        return pre_tokenizer
    if kind == "Sequence":
        parts = pre_tokenizer["pretokenizers"]
        return next((part for part in parts if part.get("type") == "ByteLevel"), None)
    return None


def _check_spec(spec: dict) -> dict:
    """The ``ByteLevel`` settings, once the rest of the spec is known to be supported.

    Raises:
        TfftError: for a normalizer, another pre-tokenizer beside ``ByteLevel``, BPE
            dropout or subword affixes.
    """
    _check_normalizer(spec.get("normalizer"))
    pre_tokenizer = spec["pre_tokenizer"]
    if pre_tokenizer["type"] == "Sequence":
        kinds = [part.get("type") for part in pre_tokenizer["pretokenizers"]]
        others = [kind for kind in kinds if kind != "ByteLevel"]
        if others:
            raise _unsupported(f"the pre-tokenizers {others} next to ByteLevel")
    model = spec["model"]
    if model.get("dropout"):
        raise _unsupported(f"BPE dropout {model['dropout']} (set model.dropout to null)")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise _unsupported(f"the BPE {key} {model[key]!r}")
    return _byte_level(pre_tokenizer)


def _check_normalizer(normalizer: dict | None) -> None:
    """Accepts no normalizer, or ``Sequence`` s of none."""
    if normalizer is None:
        return
    if normalizer.get("type") != "Sequence":
        raise _unsupported(f"the {normalizer.get('type')} normalizer")
    for part in normalizer.get("normalizers", []):
        _check_normalizer(part)


def _offset_trimming(post_processor: dict | None) -> tuple[bool, bool]:
    """``(trim_offsets, add_prefix_space)`` of the post-processor that trims offsets, if any."""
    kind = (post_processor or {}).get("type")
    if kind in ("RobertaProcessing", "ByteLevel"):
        return post_processor.get("trim_offsets", True), post_processor.get("add_prefix_space", True)
    if kind == "Sequence":
        trimming = [_offset_trimming(part) for part in post_processor["processors"]]
        return next((setting for setting in trimming if setting[0]), (False, False))
    return False, False


def _merge_pairs(merges: list) -> list[tuple[str, str]]:
    """Merges as pairs, from ``"a b"`` strings (older files) or ``[a, b]`` lists."""
    return [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge) for merge in merges]


def _size(tensor: tf.Tensor) -> tf.Tensor:
    return tf.size(tensor, out_type=tf.int64)


def _indices(tensor: tf.Tensor) -> tf.Tensor:
    """0 .. len(tensor) - 1, int64."""
    return tf.range(_size(tensor))


class ByteLevelBpe(tf.Module):
    """A byte-level BPE ``tokenizer.json`` as TensorFlow ops: raw strings in, ids and offsets out.

    Vocabulary and merges live in lookup tables initialised from in-memory constants, so a
    SavedModel holding this module needs neither the tokenizer files nor tfft.
    """

    @staticmethod
    def handles(spec: dict) -> bool:
        """Whether ``spec`` (a parsed ``tokenizer.json``) is a byte-level BPE tokenizer."""
        model_type = (spec.get("model") or {}).get("type")
        return model_type == "BPE" and _byte_level(spec.get("pre_tokenizer")) is not None

    def __init__(self, spec: dict, folder: pathlib.Path | None = None):
        """Builds the tables from ``spec``.

        Args:
            spec: The parsed ``tokenizer.json``.
            folder: The tokenizer's folder; unused, as ``spec`` holds vocabulary and merges.

        Raises:
            TfftError: for an unsupported normalizer, pre-tokenizer or BPE option, or
                merges of tokens missing from the vocabulary.
        """
        super().__init__(name="byte_level_bpe")
        byte_level = _check_spec(spec)
        self._add_prefix_space = bool(byte_level.get("add_prefix_space", True))
        self._use_regex = bool(byte_level.get("use_regex", True))
        trim_offsets, keeps_prefix = _offset_trimming(spec.get("post_processor"))
        self._trim_offsets, self._trim_keeps_prefix = bool(trim_offsets), bool(keeps_prefix)
        model = spec["model"]
        vocab: dict[str, int] = model["vocab"]
        self._vocab_size = max(vocab.values()) + 1
        token_bytes = _token_bytes(vocab)
        self._build_token_tables(vocab, token_bytes)
        self._build_merge_table(vocab, _merge_pairs(model["merges"]))
        if not model.get("ignore_merges"):
            token_bytes = self._kept_whole(token_bytes)
        self._word_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(list(token_bytes.values()), tf.string), tf.constant(list(token_bytes), tf.int64)
            ),
            default_value=-1,
        )

    # --- tables ------------------------------------------------------------------------------

    def _build_token_tables(self, vocab: dict[str, int], token_bytes: dict[int, bytes]) -> None:
        """Byte -> symbol id; each token's length and leading/trailing spaces in bytes."""
        self._byte_ids = tf.constant([vocab[symbol] for symbol in _byte_symbols()], tf.int64)
        lengths, leading, trailing = (np.zeros(self._vocab_size, np.int64) for _ in range(3))
        for token_id, raw in token_bytes.items():
            lengths[token_id] = len(raw)
            leading[token_id] = len(raw) - len(raw.lstrip(b" "))
            trailing[token_id] = len(raw) - len(raw.rstrip(b" "))
        self._token_lengths = tf.constant(lengths)
        self._leading_spaces = tf.constant(leading)
        self._trailing_spaces = tf.constant(trailing)

    def _build_merge_table(self, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
        """The merge tables: (left id, right id) -> rank; by rank, the merged id and whether it merges all.

        A repeated pair keeps its last rank, as in Rust. A merge may take every occurrence
        of its pair in a round when no merge of its result ranks before it: Rust's queue
        would then pop those occurrences one after the other.

        Raises:
            TfftError: if a merge names a token missing from the vocabulary.
        """
        ranks: dict[tuple[int, int], int] = {}
        results = np.zeros(len(merges) + 1, np.int64)  # One more for the "no merge" rank.
        for rank, (left, right) in enumerate(merges):
            if not {left, right, left + right} <= vocab.keys():
                raise TfftError(
                    f"tokenizer.json merge '{left} {right}' names a token missing from the vocabulary"
                )
            ranks[vocab[left], vocab[right]] = rank
            results[rank] = vocab[left + right]
        first_use = np.full(self._vocab_size, len(merges))  # The lowest rank merging each token.
        for (left, right), rank in ranks.items():
            first_use[left] = min(first_use[left], rank)
            first_use[right] = min(first_use[right], rank)
        self._no_merge = len(merges)
        self._merge_results = tf.constant(results)
        self._merges_all = tf.constant(first_use[results] > np.arange(len(merges) + 1))
        self._merge_ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([left * self._vocab_size + right for left, right in ranks], tf.int64),
                tf.constant(list(ranks.values()), tf.int64),
            ),
            default_value=self._no_merge,
        )

    def _kept_whole(self, token_bytes: dict[int, bytes]) -> dict[int, bytes]:
        """The tokens that BPE of their own bytes gives back as that one token.

        Runs in chunks of similar length, as each merge round costs the whole chunk.
        """
        by_length = sorted(token_bytes, key=lambda token_id: len(token_bytes[token_id]))
        kept = {}
        for begin in range(0, len(by_length), _INIT_CHUNK):
            chunk = by_length[begin : begin + _INIT_CHUNK]
            raw, rows = _bytes_and_rows(tf.constant([token_bytes[token_id] for token_id in chunk], tf.string))
            ids, rows = (tensor.numpy() for tensor in self._merge(tf.gather(self._byte_ids, raw), rows))
            counts = np.bincount(rows, minlength=len(chunk))
            lasts = np.cumsum(counts) - 1
            kept.update(
                (token_id, token_bytes[token_id])
                for row, token_id in enumerate(chunk)
                if counts[row] == 1 and ids[lasts[row]] == token_id
            )
        return kept

    # --- tokenization ----------------------------------------------------------------------

    def tokenize(
        self, texts: tf.Tensor, at_start: tf.Tensor | None = None
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """Token ids and byte offsets of each text (a segment without added tokens).

        Args:
            texts: ``tf.string`` of shape ``[n]``.
            at_start: Whether each text begins the string it was cut from (all do if None).
                With ``add_prefix_space``, Hugging Face keeps the one leading space in the
                offsets of a string's first token, but not after an added token.

        Returns:
            ``(ids, starts, ends)``: int32 ids and int64 byte offsets into each text,
            ragged ``[n, (tokens)]``, as the ``tokenizer.json`` gives them.
        """
        shift = tf.zeros_like(texts, tf.int64)  # 1 where a prefix space was added.
        first_chars = tf.zeros_like(texts, tf.int64)  # The byte length of such a text's first character.
        if self._add_prefix_space:
            prefixed = (tf.strings.length(texts) > 0) & (tf.strings.substr(texts, 0, 1) != " ")
            shift = tf.cast(prefixed, tf.int64)
            first_chars = tf.strings.length(tf.strings.substr(texts, 0, 1, unit="UTF8_CHAR"))
            first_chars = tf.cast(first_chars, tf.int64)
            texts = tf.where(prefixed, tf.strings.join([" ", texts]), texts)
        words, word_starts, word_rows = self._pretokenize(texts)
        ids, starts, ends, word_of_token = self._encode_words(words)
        text_of_token = tf.gather(word_rows, word_of_token)
        token_splits = tf.searchsorted(text_of_token, tf.range(_size(texts) + 1), out_type=tf.int64)
        # Word-relative offsets -> offsets in the input, where the added space takes no room...
        token_shift = tf.gather(shift, text_of_token)
        base = tf.gather(word_starts, word_of_token) - token_shift
        starts, ends = tf.maximum(base + starts, 0), tf.maximum(base + ends, 0)
        # ... but Hugging Face aligns the added space with the first character: a token of
        # that space alone spans the character, or trimmed, ends at 0 or after it.
        alone = (ends == 0) & (token_shift == 1)
        first_char = tf.gather(first_chars, text_of_token)
        if self._trim_offsets:
            first = (_indices(ids) == tf.gather(token_splits, text_of_token)) | (starts == 0)
            if at_start is not None:
                first &= tf.gather(at_start, text_of_token)
            starts, ends = self._trim(ids, starts, ends, first)
            first_char = tf.where(first & self._trim_keeps_prefix, tf.zeros_like(first_char), first_char)
            starts = tf.where(alone, first_char, starts)
        ends = tf.where(alone, first_char, ends)
        return tuple(
            tf.RaggedTensor.from_row_splits(values, token_splits, validate=False)
            for values in (tf.cast(ids, tf.int32), starts, ends)
        )

    def _pretokenize(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The ``ByteLevel`` pre-tokenizer's words, flat: strings, start offsets and text indices."""
        if not self._use_regex:
            rows = tf.where(tf.strings.length(texts) > 0)[:, 0]
            return tf.gather(texts, rows), tf.zeros_like(rows), rows
        # Marking each match with a byte UTF-8 never uses, then splitting there, is several
        # times faster than tf_text.regex_split_with_offsets, whose capture group makes RE2
        # extract submatches; the matches tile each text, so their lengths give the offsets.
        pieces = tf.strings.split(tf.strings.regex_replace(texts, _PATTERN, _MARK + rb"\0"), sep=_MARK)
        lengths = tf.cast(tf.strings.length(pieces.flat_values), tf.int64)
        kept = tf.where(lengths > 0)[:, 0]
        words, rows = tf.gather(pieces.flat_values, kept), tf.gather(pieces.value_rowids(), kept)
        text_starts = tf.cumsum(tf.cast(tf.strings.length(texts), tf.int64), exclusive=True)
        ends = tf.cumsum(tf.gather(lengths, kept)) - tf.gather(text_starts, rows)
        return _split_space_runs(words, ends - tf.gather(lengths, kept), ends, rows)

    def _encode_words(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """The tokens of all words, flat: ids, word-relative byte offsets and word indices."""
        whole = self._word_ids.lookup(words)
        known = tf.where(whole >= 0)[:, 0]
        unknown = tf.where(whole < 0)[:, 0]
        ids, rows, starts, ends = self._encode_unknown(tf.gather(words, unknown))
        # Token counts of the words, then where each token goes among all words' tokens.
        unknown_counts = tf.math.unsorted_segment_sum(tf.ones_like(rows), rows, _size(unknown))
        counts = tf.tensor_scatter_nd_update(tf.ones_like(whole), unknown[:, None], unknown_counts)
        splits = tf.concat([tf.zeros([1], tf.int64), tf.cumsum(counts)], 0)
        word_of_token = tf.gather(unknown, rows)
        unknown_starts = tf.searchsorted(rows, _indices(unknown), out_type=tf.int64)
        index_in_word = _indices(rows) - tf.gather(unknown_starts, rows)
        positions = tf.concat([tf.gather(splits, known), tf.gather(splits, word_of_token) + index_in_word], 0)

        def place(for_known: tf.Tensor, for_unknown: tf.Tensor) -> tf.Tensor:
            return tf.scatter_nd(positions[:, None], tf.concat([for_known, for_unknown], 0), splits[-1:])

        lengths = tf.cast(tf.strings.length(tf.gather(words, known)), tf.int64)
        return (
            place(tf.gather(whole, known), ids),
            place(tf.zeros_like(lengths), starts),
            place(lengths, ends),
            place(known, word_of_token),
        )

    def _encode_unknown(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """BPE of ``words``, flat: ids, word indices, word-relative offsets (whole characters)."""
        raw, rows = _bytes_and_rows(words)
        ids, rows = self._merge(tf.gather(self._byte_ids, raw), rows)
        sizes = tf.gather(self._token_lengths, ids)
        ends = tf.cumsum(sizes)  # Offsets in the words' bytes one after the other.
        starts = ends - sizes
        continues = tf.pad(tf.cast(raw // 64 == 2, tf.int64), [[3, 3]])  # UTF-8 10xxxxxx bytes.

        def continuing(at: tf.Tensor, step: int) -> tf.Tensor:
            """1 where the byte at ``at + step`` (-3 <= step <= 2) continues a character, else 0."""
            return tf.gather(continues, at + step + 3)

        # A start inside a character moves back to its first byte, an end inside one to its end.
        back = continuing(starts, 0) * (1 + continuing(starts, -1) * (1 + continuing(starts, -2)))
        ahead = continuing(ends, 0) * (1 + continuing(ends, 1) * (1 + continuing(ends, 2)))
        # Word-relative, and inside the word even where the input is not valid UTF-8.
        lengths = tf.cast(tf.strings.length(words), tf.int64)
        base = tf.gather(tf.cumsum(lengths, exclusive=True), rows)
        starts = tf.maximum(starts - back - base, 0)
        return ids, rows, starts, tf.minimum(ends + ahead - base, tf.gather(lengths, rows))

    def _merge(self, symbols: tf.Tensor, rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Merges each word's symbols, lowest rank first (leftmost on ties), as the Rust crate does.

        Each round takes the lowest-ranked pair of every word that has one, at all its
        occurrences (left to right, not overlapping) where :meth:`_build_merge_table` allows,
        else at the leftmost: repeats such as ``"xxxx…"`` take a few rounds, not one each.

        Args:
            symbols: int64 symbol ids of all words, one after the other.
            rows: The word of each symbol (sorted).

        Returns:
            The merged symbols and their words.
        """

        def merge_once(symbols: tf.Tensor, rows: tf.Tensor, _: tf.Tensor):
            pair_rows = rows[:-1]
            ranks = self._merge_ranks.lookup(symbols[:-1] * self._vocab_size + symbols[1:])
            ranks = tf.where(pair_rows == rows[1:], ranks, self._no_merge)
            scores = ranks * (_size(ranks) + 1) + _indices(ranks)  # Lowest rank, then leftmost.
            lowest = tf.gather(tf.math.segment_min(scores, pair_rows), pair_rows)
            lowest_rank = lowest // (_size(ranks) + 1)
            chosen = (scores == lowest) | ((ranks == lowest_rank) & tf.gather(self._merges_all, ranks))
            chosen &= ranks < self._no_merge
            overlaps = tf.reduce_any(chosen[1:] & chosen[:-1])
            chosen = tf.cond(overlaps, lambda: _every_other(chosen), lambda: chosen)
            merged = tf.where(chosen, tf.gather(self._merge_results, ranks), symbols[:-1])
            kept = tf.where(tf.concat([tf.ones_like(symbols[:1], tf.bool), ~chosen], 0))[:, 0]
            symbols = tf.gather(tf.concat([merged, symbols[-1:]], 0), kept)
            return symbols, tf.gather(rows, kept), tf.reduce_any(chosen)

        symbols, rows, _ = tf.while_loop(
            lambda symbols, rows, merging: merging,
            merge_once,
            (symbols, rows, tf.size(symbols) > 1),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])),
        )
        return symbols, rows

    def _trim(
        self, ids: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor, first: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Drops spaces at either end of the offsets, as the Rust ``process_offsets`` does.

        Tokens marked ``first`` (a string's first, or any starting at 0) keep a single
        leading space when the post-processor says ``add_prefix_space``.
        """
        leading = tf.gather(self._leading_spaces, ids)
        trailing = tf.gather(self._trailing_spaces, ids)
        keep = first & (leading == 1) & self._trim_keeps_prefix
        starts = tf.where((leading > 0) & ~keep, tf.minimum(starts + leading, ends), starts)
        ends = tf.where((trailing > 0) & (ends >= trailing), tf.maximum(ends - trailing, starts), ends)
        return starts, ends


def _split_space_runs(
    words: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor, rows: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    r"""Cuts matches of :data:`_PATTERN` where GPT-2's ``\s+(?!\S)`` ends.

    A match starting with two whitespace characters is a run glued to the space-prefixed
    word after it (``"  word"`` -> ``" "``, ``" word"``) or a bare run; before a word, a bare
    run loses its last character (``"\t\tx"`` -> ``"\t"``, ``"\t"``, ``"x"``); at the end of
    its text it stays whole.

    Args:
        words: The matches of all texts, flat.
        starts: Their start offsets.
        ends: Their end offsets.
        rows: Their texts' indices.

    Returns:
        ``(words, starts, rows)`` after the cuts.
    """
    last = tf.concat([rows[1:] != rows[:-1], tf.ones_like(rows[:1], tf.bool)], 0)
    runs = tf.where(tf.strings.regex_full_match(words, _TWO_SPACES))[:, 0]
    whole = tf.gather(last, runs) & tf.strings.regex_full_match(tf.gather(words, runs), _ONLY_SPACES)
    runs = tf.boolean_mask(runs, ~whole)

    def cut() -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        kept = tf.strings.length(tf.strings.regex_replace(tf.gather(words, runs), *_SPACES_BUT_LAST))
        cut_at = tf.gather(starts, runs) + tf.cast(kept, tf.int64)
        # Each cut word is followed by its tail: indices of the words and tails among all pieces.
        added = tf.scatter_nd(runs[:, None], tf.ones_like(runs), tf.shape(words, out_type=tf.int64))
        position = _indices(words) + tf.cumsum(added, exclusive=True)
        positions = tf.concat([position, tf.gather(position, runs) + 1], 0)[:, None]

        def place(for_words: tf.Tensor, for_tails: tf.Tensor) -> tf.Tensor:
            return tf.scatter_nd(positions, tf.concat([for_words, for_tails], 0), _size(positions)[None])

        piece_of = place(_indices(words), runs)
        piece_starts = place(starts, cut_at)
        piece_ends = place(tf.tensor_scatter_nd_update(ends, runs[:, None], cut_at), tf.gather(ends, runs))
        pieces = tf.strings.substr(
            tf.gather(words, piece_of), piece_starts - tf.gather(starts, piece_of), piece_ends - piece_starts
        )
        return pieces, piece_starts, tf.gather(rows, piece_of)

    return tf.cond(tf.size(runs) > 0, cut, lambda: (words, starts, rows))


def _every_other(chosen: tf.Tensor) -> tf.Tensor:
    """``chosen`` without overlaps: in each run of adjacent pairs (``"x x x"``), every other from the left."""
    starts = chosen & ~tf.concat([tf.zeros_like(chosen[:1]), chosen[:-1]], 0)
    run = tf.maximum(tf.cumsum(tf.cast(starts, tf.int64)) - 1, 0)  # Called only when a run exists.
    run_start = tf.gather(tf.where(starts)[:, 0], run)
    return chosen & ((_indices(chosen) - run_start) % 2 == 0)


def _bytes_and_rows(words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The bytes of all ``words`` one after the other (int64), and the word of each byte."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.reduce_join(words), tf.uint8), tf.int64)
    lengths = tf.cast(tf.strings.length(words), tf.int64)
    return raw, tf.repeat(_indices(lengths), lengths)
