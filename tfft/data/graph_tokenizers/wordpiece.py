"""WordPiece in the TensorFlow graph: BERT, DistilBERT and ELECTRA tokenizers.

Reproduces a ``tokenizer.json`` with a ``BertNormalizer`` (clean text, isolate CJK
characters, strip accents, lowercase), the ``BertPreTokenizer`` (split on whitespace,
isolate punctuation) and the ``WordPiece`` model (greedy longest match, ``##``
continuations, ``[UNK]`` for words it cannot cover or longer than
``max_input_chars_per_word`` characters), with core TensorFlow ops only.

The texts travel as code points, each normalized character knowing the original
character it came from (what the Rust ``NormalizedString`` alignments hold):

* the normalizer maps each character on its own, so the ``tokenizers`` library's own
  ``BertNormalizer`` and ``BertPreTokenizer`` tell at build time what becomes of every
  code point: another code point (or itself) that joins a word, splits words
  (whitespace) or stands alone (punctuation, CJK), nothing (``clean_text``), or several
  code points (Hangul syllables without accents), which a table holds;
* words are the runs of word characters, each punctuation or CJK character on its own;
* the WordPiece model looks every word up whole, then takes the longest vocabulary piece
  at each word's next position, all words at once, one position per step.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.errors import TfftError

# What becomes of a code point: one that joins a word, one that splits words (whitespace,
# dropped), one that is a word on its own (punctuation, CJK), none, or several.
_WORD, _SPACE, _ALONE, _REMOVED, _SEVERAL = range(5)
_UNICODE_SIZE = 0x110000
# Bits of a code point's place in its page of the two-level table of what becomes of each
# (pages alike are stored once).
_PAGE_BITS = 7
# Bits of its kind: the table packs ``delta << _KIND_BITS | kind`` (delta: what the code
# point adds to become its normalized one).
_KIND_BITS = 3
_SURROGATES = range(0xD800, 0xE000)
# Code points normalized per call; a block the normalizer leaves alone, or removes, is done.
_BLOCK = 4096
# Separates the characters of a block the normalizer changes: ASCII punctuation, which it
# keeps and makes of no other character.
_SEPARATOR = "#"
# Whitespace and punctuation live in the first two planes (the others hold ideographs,
# tags, variation selectors and private use characters); the pre-tokenizer classifies
# them 512 at a time, as the cost of its offsets grows with a call's length.
_PUNCTUATION_PLANES = 0x20000
_CHUNK = 512
_HINT = "export the token-id signature only (serve_token_ids)"


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
                            f"{_HINT}")
        pre_tokenizer = (spec.get("pre_tokenizer") or {}).get("type")
        if pre_tokenizer != "BertPreTokenizer":
            raise TfftError(f"in-graph WordPiece supports the BertPreTokenizer, not {pre_tokenizer}; {_HINT}")
        lowercase = bool(normalizer.get("lowercase", False))
        strip_accents = normalizer.get("strip_accents")
        self._characters = _Characters(_character_tables(
            bool(normalizer.get("clean_text", False)), bool(normalizer.get("handle_chinese_chars", False)),
            lowercase if strip_accents is None else bool(strip_accents), lowercase))
        self._model = _GreedyLongestMatch(spec["model"])

    @staticmethod
    def handles(spec: dict) -> bool:
        """Whether ``spec`` is a WordPiece tokenizer."""
        return spec.get("model", {}).get("type") == "WordPiece"

    @tf.autograph.experimental.do_not_convert  # Plain TensorFlow ops: nothing to convert.
    def tokenize(self, texts: tf.Tensor, at_start: tf.Tensor | None = None):
        """Token ids and byte offsets of ``texts`` ([n] strings without added tokens).

        Args:
            texts: ``[n]`` strings.
            at_start: Whether each text begins the string it was cut from; WordPiece
                tokenizes every segment alike, so it is not read.

        Returns:
            ``(ids, starts, ends)``: int32 ids and int64 byte offsets into each original
            string, each ``[n, (tokens)]``.
        """
        words = self._characters(texts)
        ids, first, last = self._model(words)
        first, last = tf.gather(words.source, first), tf.gather(words.source, last)
        splits = tf.searchsorted(first, words.row_splits, out_type=tf.int64)
        # A character ends where the next one (at the end, the added space) starts.
        return tuple(tf.RaggedTensor.from_row_splits(values, splits, validate=False)
                     for values in (ids, tf.gather(words.starts, first), tf.gather(words.starts, last + 1)))


@dataclasses.dataclass
class _Words:
    """The words of a batch of texts, and where their characters come from.

    Attributes:
        words: ``[words]`` strings, normalized.
        lengths: ``[words]`` int64 characters of each word.
        first: ``[words]`` int64 index of each word's first character among all words'.
        source: ``[characters]`` int64 index of the original character each character of
            the words comes from, among all texts' characters (each text has a space added).
        starts: ``[original characters]`` int64 byte offset of each in its text.
        row_splits: ``[texts + 1]`` int64 where each text's original characters start.
    """

    words: tf.Tensor
    lengths: tf.Tensor
    first: tf.Tensor
    source: tf.Tensor
    starts: tf.Tensor
    row_splits: tf.Tensor


@dataclasses.dataclass(frozen=True)
class _Tables:
    """What the normalizer and pre-tokenizer make of each code point (see :func:`_character_tables`).

    Attributes:
        pages: int32 where each page of ``2 ** _PAGE_BITS`` code points starts in ``packed``.
        packed: int32 ``delta << _KIND_BITS | kind`` of the code points of each distinct page:
            its kind (``_WORD`` ... ``_SEVERAL``) and what it adds to become its
            normalized code point.
        several: int64 code points of kind ``_SEVERAL``.
        starts: int64 where each one's replacement starts in ``codes``.
        lengths: int64 code points of each replacement.
        codes: int32 replacements' code points, one after the other.
        classes: int32 kind (``_WORD``, ``_SPACE`` or ``_ALONE``) of each of ``codes``.
    """

    pages: np.ndarray
    packed: np.ndarray
    several: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray
    classes: np.ndarray


class _Characters(tf.Module):
    """The ``BertNormalizer`` and ``BertPreTokenizer``: texts in, :class:`_Words` out."""

    def __init__(self, tables: _Tables):
        super().__init__()
        self._pages = tf.constant(tables.pages, tf.int32)
        self._packed = tf.constant(tables.packed, tf.int32)
        self._several = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tables.several, tf.int64),
                                                tf.range(len(tables.several), dtype=tf.int64)),
            default_value=-1)
        self._starts = tf.constant(tables.starts, tf.int64)
        self._lengths = tf.constant(tables.lengths, tf.int64)
        self._codes = tf.constant(tables.codes, tf.int32)
        self._classes = tf.constant(tables.classes, tf.int32)

    def __call__(self, texts: tf.Tensor) -> _Words:
        # A space after each text ends its last word and marks where its last character ends.
        chars, starts = tf.strings.unicode_decode_with_offsets(texts + " ", "UTF-8")
        original = chars.flat_values
        page = tf.gather(self._pages, tf.bitwise.right_shift(original, _PAGE_BITS))
        packed = tf.gather(self._packed, page + tf.bitwise.bitwise_and(original, (1 << _PAGE_BITS) - 1))
        kind = tf.bitwise.bitwise_and(packed, (1 << _KIND_BITS) - 1)
        codes = original + tf.bitwise.right_shift(packed, _KIND_BITS)  # Arithmetic shift: deltas < 0 too.
        codes, kind, source = tf.cond(tf.reduce_any(kind >= _REMOVED),
                                      lambda: self._respell(original, codes, kind),
                                      lambda: (codes, kind, _indices(codes)))
        word_start = (kind == _ALONE) | ~tf.concat([[False], kind[:-1] == _WORD], axis=0)
        kept = tf.where(kind != _SPACE)[:, 0]
        first = tf.where(tf.gather(word_start, kept))[:, 0]
        words = tf.RaggedTensor.from_row_starts(tf.gather(codes, kept), first, validate=False)
        return _Words(words=tf.strings.unicode_encode(words, "UTF-8"), lengths=words.row_lengths(),
                      first=first, source=tf.gather(source, kept), starts=starts.flat_values,
                      row_splits=chars.row_splits)

    def _respell(self, original: tf.Tensor, codes: tf.Tensor, kind: tf.Tensor):
        """Drops the ``_REMOVED`` code points and replaces each ``_SEVERAL`` one by its replacement.

        Returns:
            ``(codes, kind, source)``: the new code points, their kinds and the index of the
            character each comes from.
        """
        several = self._several.lookup(tf.cast(original, tf.int64))
        replacement = tf.maximum(several, 0)
        counts = tf.where(several >= 0, tf.gather(self._lengths, replacement),
                          tf.cast(kind != _REMOVED, tf.int64))
        ends = tf.cumsum(counts)
        source = tf.searchsorted(ends, tf.range(tf.reduce_sum(counts)), side="right", out_type=tf.int64)
        rank = _indices(source) - tf.gather(ends - counts, source)
        replaced = tf.gather(several >= 0, source)
        at = tf.where(replaced, tf.gather(tf.gather(self._starts, replacement), source) + rank, 0)
        return (tf.where(replaced, tf.gather(self._codes, at), tf.gather(codes, source)),
                tf.where(replaced, tf.gather(self._classes, at), tf.gather(kind, source)), source)


class _GreedyLongestMatch(tf.Module):
    """The ``WordPiece`` model on :class:`_Words`: the longest vocabulary piece first, position by position.

    Args:
        model: ``tokenizer.json``'s ``model``.
    """

    def __init__(self, model: dict):
        super().__init__()
        vocab = {str(piece): int(index) for piece, index in model["vocab"].items()}
        prefix = model.get("continuing_subword_prefix", "##")
        self._pieces = _Pieces(vocab)
        self._continuing = _Pieces({piece[len(prefix):]: index for piece, index in vocab.items()
                                    if piece.startswith(prefix) and len(piece) > len(prefix)})
        self._unk_id = vocab[model["unk_token"]]
        self._max_chars = int(model.get("max_input_chars_per_word", 100))

    def __call__(self, words: _Words) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The tokens of ``words``: int32 ids and int64 index of their first and last characters, in order."""
        lengths = words.lengths
        fits = lengths <= self._max_chars
        whole = tf.where(fits & (lengths <= self._pieces.longest), self._pieces.table.lookup(words.words), -1)
        # Where the whole word is no piece, the longest shorter one starts it.
        rest = tf.where(fits & (whole < 0))[:, 0]
        starts = tf.zeros_like(rest)
        widest = tf.reduce_max(tf.concat([[1], lengths], axis=0))
        length, ids = self._pieces.longest_at(words.words, rest, starts, tf.gather(lengths, rest) - 1, widest)
        going = tf.where((length > 0) & (length < tf.gather(lengths, rest)))[:, 0]
        more = self._continue(words, tf.gather(rest, going), tf.gather(length, going), widest)
        pieces = tf.concat([_tokens(rest, starts, length, ids), more], axis=0)
        bad = tf.boolean_mask(pieces[:, 0], pieces[:, 2] == 0)
        is_bad = tf.scatter_nd(bad[:, None], tf.ones_like(bad, tf.int32), tf.shape(lengths, tf.int64)) > 0
        unknown = ~fits | is_bad
        every = _indices(lengths)
        tokens = tf.concat([_tokens(every, tf.zeros_like(every), lengths,
                                    tf.where(unknown, tf.constant(self._unk_id, tf.int64), whole),
                                    unknown | (whole >= 0)),
                            tf.boolean_mask(pieces, ~tf.gather(is_bad, pieces[:, 0]))], axis=0)
        first = tf.gather(words.first, tokens[:, 0]) + tokens[:, 1]
        order = tf.argsort(first)
        first, tokens = tf.gather(first, order), tf.gather(tokens, order)
        return tf.cast(tokens[:, 3], tf.int32), first, first + tokens[:, 2] - 1

    def _continue(self, words: _Words, word: tf.Tensor, at: tf.Tensor, widest: tf.Tensor) -> tf.Tensor:
        """Continuing pieces of each ``word`` from character ``at`` on, until it ends or no piece fits.

        ``widest`` is the longest word's characters.

        Returns:
            The pieces as :func:`_tokens` rows, one of 0 characters where none fits.
        """

        def step(word, at, tokens):
            remaining = tf.gather(words.lengths, word) - at
            length, ids = self._continuing.longest_at(words.words, word, at, remaining, widest)
            going = tf.where((length > 0) & (length < remaining))[:, 0]
            tokens = tf.concat([tokens, _tokens(word, at, length, ids)], axis=0)
            return tf.gather(word, going), tf.gather(at + length, going), tokens

        *_, tokens = tf.while_loop(
            lambda word, at, tokens: tf.size(word) > 0, step, (word, at, tf.zeros([0, 4], tf.int64)),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([None, 4])),
            parallel_iterations=1)
        return tokens


class _Pieces(tf.Module):
    """Vocabulary pieces and their ids.

    Args:
        pieces: Each piece's id.

    Attributes:
        table: From each piece to its int64 id, -1 for other strings.
        longest: The longest piece's characters (at least 1).
    """

    def __init__(self, pieces: dict[str, int]):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(pieces) or [b"\xff"], tf.string),
                                                tf.constant(list(pieces.values()) or [-1], tf.int64)),
            default_value=-1)
        self.longest = max([1, *map(len, pieces)])

    def longest_at(self, words: tf.Tensor, word: tf.Tensor, at: tf.Tensor, most: tf.Tensor,
                   widest: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The longest piece at character ``at`` of each ``word``, of at most ``most`` characters.

        Args:
            words: All words' strings.
            word: Index of each word to look into.
            at: Character where each piece starts.
            most: Characters it may span.
            widest: The longest word's characters, at least 1.

        Returns:
            ``(length, ids)``: characters and id of each piece, 0 and -1 where none fits.
        """
        width = tf.minimum(widest, self.longest)
        lengths = tf.range(1, width + 1)
        shape = tf.stack([tf.size(word, out_type=tf.int64), width])
        ids = self.table.lookup(tf.strings.substr(tf.gather(words, word)[:, None],
                                                  tf.broadcast_to(at[:, None], shape),
                                                  tf.broadcast_to(lengths, shape), unit="UTF8_CHAR"))
        # The longest piece found wins: lengths in the high bits, its id in the low ones. Past
        # a word's end, substrings repeat its last one: their length comes down to ``most``.
        best = tf.reduce_max(tf.where(ids >= 0, tf.bitwise.left_shift(lengths, 32) | ids, 0), axis=1)
        length = tf.minimum(tf.bitwise.right_shift(best, 32), most)
        return length, tf.where(length > 0, tf.bitwise.bitwise_and(best, 0xFFFFFFFF), -1)


def _tokens(word: tf.Tensor, at: tf.Tensor, length: tf.Tensor, ids: tf.Tensor,
            mask: tf.Tensor | None = None) -> tf.Tensor:
    """Tokens as ``[tokens, 4]`` int64 rows ``(word, first character in it, characters, id)``.

    Only those of ``mask``, if given.
    """
    tokens = tf.stack([word, at, length, tf.cast(ids, tf.int64)], axis=1)
    return tokens if mask is None else tf.boolean_mask(tokens, mask)


def _indices(tensor: tf.Tensor) -> tf.Tensor:
    """0 .. len(tensor) - 1, int64."""
    return tf.range(tf.size(tensor, out_type=tf.int64))


# --- tables, computed by the tokenizers library ---------------------------------------------


@functools.lru_cache(maxsize=4)
def _character_tables(clean: bool, chinese: bool, strip_accents: bool, lowercase: bool) -> _Tables:
    """What a ``BertNormalizer`` with these settings, then the ``BertPreTokenizer``, make of each code point.

    The normalizer changes each character on its own (NFD reorders no combining mark across
    a character that strip_accents keeps), so that normalizing all code points gives each
    one's normalized form; the pre-tokenizer's classes of that form's characters tell
    whether it joins a word, splits words or stands alone.
    """
    classes = _pre_tokenizer_classes()
    kinds, deltas = classes.astype(np.int32), np.zeros(_UNICODE_SIZE, np.int32)
    several = {_SURROGATES.start: chr(_SURROGATES.start)}  # Never decoded: the tables are never empty.
    for code, normalized in _normalized(clean, chinese, strip_accents, lowercase).items():
        if not normalized:
            kinds[code] = _REMOVED
        elif all(classes[ord(char)] == _SPACE for char in normalized):
            kinds[code] = _SPACE
        elif len(normalized) == 1:
            kinds[code], deltas[code] = classes[ord(normalized)], ord(normalized) - code
        elif len(normalized) == 3 and normalized[::2] == "  " and classes[ord(normalized[1])] != _SPACE:
            kinds[code], deltas[code] = _ALONE, ord(normalized[1]) - code  # A CJK character between spaces.
        else:
            kinds[code], several[code] = _SEVERAL, normalized
    packed = (deltas << _KIND_BITS | kinds).reshape(-1, 1 << _PAGE_BITS)
    pages, page = np.unique(packed, axis=0, return_inverse=True)
    lengths = np.array([len(normalized) for normalized in several.values()], np.int64)
    codes = [ord(char) for normalized in several.values() for char in normalized]
    return _Tables(pages=(page.ravel() << _PAGE_BITS).astype(np.int32), packed=pages.ravel().astype(np.int32),
                   several=np.array(list(several), np.int64), starts=np.cumsum(lengths) - lengths,
                   lengths=lengths, codes=np.array(codes, np.int32), classes=classes[codes].astype(np.int32))


def _normalized(clean: bool, chinese: bool, strip_accents: bool, lowercase: bool) -> dict[int, str]:
    """The code points a ``BertNormalizer`` changes, and what it makes of each.

    Raises:
        TfftError: if the normalizer changes the separator or makes it of other characters.
    """
    from tokenizers import normalizers

    normalize = normalizers.BertNormalizer(clean_text=clean, handle_chinese_chars=chinese,
                                           strip_accents=strip_accents, lowercase=lowercase).normalize_str
    if normalize(_SEPARATOR) != _SEPARATOR:
        raise TfftError(f"in-graph WordPiece cannot normalize with this BertNormalizer; {_HINT}")
    changes = {}
    for begin in range(0, _UNICODE_SIZE, _BLOCK):
        codes = _code_points(begin, begin + _BLOCK)
        codes = codes[codes != ord(_SEPARATOR)]
        text = _string(codes)
        whole = normalize(text)
        if whole == text:
            continue
        pieces = normalize(_SEPARATOR.join(text)).split(_SEPARATOR) if whole else [""] * len(text)
        if len(pieces) != len(text):
            raise TfftError(f"in-graph WordPiece cannot normalize with this BertNormalizer; {_HINT}")
        changes.update((code, piece) for code, char, piece in zip(codes.tolist(), text, pieces, strict=True)
                       if piece != char)
    return changes


@functools.lru_cache(maxsize=1)
def _pre_tokenizer_classes() -> np.ndarray:
    """The ``BertPreTokenizer``'s class of every code point: ``_WORD``, ``_SPACE`` or ``_ALONE``.

    Characters in no pre-token are whitespace; those alone in one may be punctuation, which
    a second call tells apart: between letters, only punctuation stays alone.
    """
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.BertPreTokenizer().pre_tokenize_str
    classes = np.full(_UNICODE_SIZE, _WORD, np.int8)
    classes[:_PUNCTUATION_PLANES] = _SPACE
    alone = []
    for begin in range(0, _PUNCTUATION_PLANES, _CHUNK):
        codes = _code_points(begin, begin + _CHUNK)
        for piece, (start, end) in split(_string(codes)):
            classes[codes[start:end]] = _WORD
            if len(piece) == 1:
                alone.append(piece)
    classes[[ord(piece) for piece, _ in split("a".join(alone)) if len(piece) == 1 and piece != "a"]] = _ALONE
    return classes


def _code_points(begin: int, end: int) -> np.ndarray:
    """The code points from ``begin`` to ``end`` (excluded) but surrogates."""
    codes = np.arange(begin, end, dtype=np.uint32)
    return codes[(codes < _SURROGATES.start) | (codes >= _SURROGATES.stop)]


def _string(codes: np.ndarray) -> str:
    """The characters of ``codes``, a string."""
    return codes.astype("<u4").tobytes().decode("utf-32-le")
