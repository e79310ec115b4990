"""SentencePiece Unigram in the TensorFlow graph: XLM-R and ALBERT tokenizers.

Reproduces a ``tokenizer.json`` with a ``Unigram`` model, a ``Metaspace`` pre-tokenizer
(alone or after ``WhitespaceSplit``) and a normalizer made of ``Precompiled`` (the
SentencePiece model's character map), ``Replace``, ``NFD``/``NFKD``, ``StripAccents`` and
``Lowercase``, alone or in a ``Sequence`` in any order.

The text travels as a ragged tensor of characters, each with the byte span of the original
string it came from (what the Rust ``NormalizedString`` alignments hold), through each
normalizer in turn:

* each run of per-character normalizers (``Lowercase``, ``StripAccents``, ``NFD``,
  ``NFKD``) is one lookup table of the characters it changes, computed at build time by
  the ``tokenizers`` library itself so that the Unicode tables agree (``characters.py``);
* ``Precompiled`` follows the Rust normalizer rather than SentencePiece's: a grapheme
  cluster shorter than 6 bytes that starts with one of the charsmap's keys becomes that
  (shortest) key's replacement, anything else is replaced character by character;
* ``Replace`` finds its matches with RE2 (``regex_replace`` marks them, ``split`` cuts there).

``WhitespaceSplit`` and ``Metaspace`` then cut the characters into words, and the Unigram
model runs Viterbi on each word in float64 with the Rust model's tie-breaking (the
longest last piece wins) and its fusing of consecutive unknown pieces, so that near-ties
come out as they do there (SentencePiece's own float32 Viterbi sometimes differs).

Only core TensorFlow ops are used: serving needs no ``tensorflow_text``.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfft.data.graph_tokenizers.characters import CharacterTable, lookup_table
from tfft.errors import TfftError

# Rust's char::is_whitespace (Unicode White_Space), what WhitespaceSplit splits on.
_WHITESPACE = r"[\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]"
# Normalizers that map each character on its own, whatever its neighbours.
_PER_CHARACTER = ("Lowercase", "StripAccents", "NFD", "NFKD")
# Rust's Precompiled looks whole grapheme clusters up in the charsmap below this length.
_GRAPHEME_BYTES = 6
# Grapheme_Cluster_Break classes that decide clusters shorter than _GRAPHEME_BYTES (the
# Hangul, emoji, regional indicator and Indic conjunct rules only join longer ones).
_OTHER, _JOINS_PREVIOUS, _PREPEND, _CONTROL, _CR, _LF = range(6)
_CLASSES = {"Extend": _JOINS_PREVIOUS, "ZWJ": _JOINS_PREVIOUS, "SpacingMark": _JOINS_PREVIOUS,
            "Prepend": _PREPEND, "Control": _CONTROL, "CR": _CR, "LF": _LF}
# Surrounds each Replace match: a byte that valid UTF-8 never holds, then the match (\0).
_MARK = b"\xff"
_MARKED = _MARK + rb"\0" + _MARK
_K_UNK_PENALTY = 10.0  # The Rust Unigram's unknown score is the lowest score minus this.
_HINT = "export the token-id signature only (serve_token_ids)"


@dataclasses.dataclass
class _Chars:
    """Characters of each text with the original byte span each came from.

    Attributes:
        chars: ``[n, (characters)]`` strings of one character each.
        starts: ``[characters]`` int64 start of each character's span in its original text.
        ends: ``[characters]`` int64 end of that span.
    """

    chars: tf.RaggedTensor
    starts: tf.Tensor
    ends: tf.Tensor

    def respell(self, texts: tf.Tensor) -> tuple[_Chars, tf.Tensor, tf.Tensor]:
        """Replaces each character by ``texts`` (zero or more characters with its span).

        Returns:
            The new characters, and for each of them the index of the character it
            replaces and its own index among that one's replacement characters.
        """
        counts = tf.cast(tf.strings.length(texts, unit="UTF8_CHAR"), tf.int64)
        several = counts > 1  # Only these need splitting; most texts are one character.
        pieces = tf.strings.unicode_split(tf.boolean_mask(texts, several), "UTF-8")
        source = tf.repeat(self.index(), counts)
        before = tf.cumsum(counts, exclusive=True)
        rank = tf.range(tf.size(source, out_type=tf.int64)) - tf.gather(before, source)
        split = tf.gather(several, source)
        values = tf.dynamic_stitch(  # Indices are int32.
            [tf.cast(tf.where(~split)[:, 0], tf.int32), tf.cast(tf.where(split)[:, 0], tf.int32)],
            [tf.gather(texts, tf.boolean_mask(source, ~split)), pieces.values])
        row_splits = tf.concat([[0], tf.cumsum(counts)], axis=0)
        chars = tf.RaggedTensor.from_row_splits(values, tf.gather(row_splits, self.chars.row_splits),
                                                validate=False)
        return _Chars(chars, tf.gather(self.starts, source), tf.gather(self.ends, source)), source, rank

    def keep(self, mask: tf.Tensor) -> _Chars:
        """The characters where ``mask`` (``[characters]`` bool) holds."""
        chars = tf.ragged.boolean_mask(self.chars, self.chars.with_values(mask))
        return _Chars(chars, tf.boolean_mask(self.starts, mask), tf.boolean_mask(self.ends, mask))

    def index(self) -> tf.Tensor:
        """``[characters]`` int64 index of each character."""
        return tf.range(tf.size(self.starts, out_type=tf.int64))

    def row_start(self) -> tf.Tensor:
        """``[characters]`` bool: whether each character is its text's first."""
        return self.index() == tf.gather(self.chars.row_splits, self.chars.value_rowids())


class Unigram(tf.Module):
    """The normalizer, pre-tokenizer and Unigram model of a SentencePiece ``tokenizer.json``.

    Args:
        spec: The parsed ``tokenizer.json``.
        folder: Unused: ``tokenizer.json`` has the vocabulary, scores and charsmap (an
            original ``*.model`` would bring SentencePiece's whitespace rules and float32
            Viterbi, which differ from the Rust tokenizer's); kept for the common constructor.

    Attributes:
        prepend_scheme: Metaspace's ``always``, ``never`` or ``first``; each text passed to
            :meth:`tokenize` counts as the start of the input for ``first``.

    Raises:
        TfftError: for normalizers, pre-tokenizers or model options it cannot reproduce.
    """

    def __init__(self, spec: dict, folder: Path | None = None):
        super().__init__(name="unigram")
        self._normalizers = [_normalizer(group) for group in _groups(_flatten(spec.get("normalizer")))]
        (self._whitespace_split, self._replacement, self.prepend_scheme,
         self._split) = _pre_tokenizer(spec.get("pre_tokenizer"))
        self._model = _Viterbi(spec["model"])

    @staticmethod
    def handles(spec: dict) -> bool:
        """Whether ``spec`` is a Unigram tokenizer."""
        return spec.get("model", {}).get("type") == "Unigram"

    @tf.autograph.experimental.do_not_convert  # Plain TensorFlow ops: nothing to convert.
    def tokenize(self, texts: tf.Tensor, at_start: tf.Tensor | None = None):
        """Token ids and byte offsets of ``texts`` ([n] strings without added tokens).

        Args:
            texts: ``[n]`` strings.
            at_start: Whether each text begins the string it was cut from; not read (each
                text counts as a start, see ``prepend_scheme``).

        Returns:
            ``(ids, starts, ends)``: int32 ids and int64 byte offsets into each original
            string, each ``[n, (tokens)]``.
        """
        chars, starts = tf.strings.unicode_split_with_offsets(texts, "UTF-8")
        # Each character ends where the next starts (or its text ends), also after bytes that
        # are not UTF-8 (read as U+FFFD).
        starts = starts.values
        row = chars.value_rowids()
        is_last = tf.range(tf.size(starts, out_type=tf.int64)) == tf.gather(chars.row_splits, row + 1) - 1
        ends = tf.where(is_last, tf.gather(tf.cast(tf.strings.length(texts), tf.int64), row),
                        tf.concat([starts[1:], [0]], axis=0))
        text = _Chars(chars, starts, ends)
        for normalize in self._normalizers:
            text = normalize(text)
        text, word_start = self._metaspace(text)
        ids, first, last = self._model(text.chars.values, word_start)
        splits = tf.searchsorted(first, text.chars.row_splits, out_type=tf.int64)
        return tuple(tf.RaggedTensor.from_row_splits(values, splits, validate=False)
                     for values in (ids, tf.gather(text.starts, first), tf.gather(text.ends, last)))

    def _metaspace(self, text: _Chars) -> tuple[_Chars, tf.Tensor]:
        """WhitespaceSplit and Metaspace: the words' characters, and which ones start a word."""
        values = text.chars.values
        segment_start = text.row_start()
        kept = tf.ones_like(segment_start)
        if self._whitespace_split:
            kept = tf.logical_not(tf.strings.regex_full_match(values, _WHITESPACE))
            after_kept = tf.concat([[False], kept[:-1]], axis=0)
            segment_start = kept & (segment_start | tf.logical_not(after_kept))
        values = tf.where(values == " ", self._replacement, values)
        prepend = segment_start & (values != self._replacement)
        if self.prepend_scheme == "never":
            prepend = tf.zeros_like(prepend)
        elif self.prepend_scheme == "first" and self._whitespace_split:
            prepend &= text.starts == 0  # Rust: only the split at the original's offset 0.
        text = _Chars(text.chars.with_values(values), text.starts, text.ends).keep(kept)
        prepend, segment_start = tf.boolean_mask(prepend, kept), tf.boolean_mask(segment_start, kept)
        # The prepended character shares the first character's span, as in Rust.
        values = text.chars.values
        text, source, rank = text.respell(tf.where(prepend, self._replacement + values, values))
        word_start = tf.gather(segment_start, source) & (rank == 0)
        if self._split:
            word_start |= text.chars.values == self._replacement
        return text, word_start


# --- normalizers ------------------------------------------------------------------------------


def _flatten(normalizer: dict | None) -> list[dict]:
    """The normalizer's steps in order (a Sequence's, nested ones included)."""
    if not normalizer:
        return []
    if normalizer["type"] == "Sequence":
        return [step for inner in normalizer["normalizers"] for step in _flatten(inner)]
    return [normalizer]


def _groups(steps: list[dict]) -> list[list[dict]]:
    """The steps with each run of per-character normalizers as one group."""
    groups: list[list[dict]] = []
    for step in steps:
        if step["type"] in _PER_CHARACTER and groups and groups[-1][0]["type"] in _PER_CHARACTER:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _normalizer(group: list[dict]):
    """One in-graph normalizer step: a function from :class:`_Chars` to :class:`_Chars`."""
    kind = group[0]["type"]
    if kind in _PER_CHARACTER:
        return _PerCharacter(group)
    if kind == "Precompiled":
        return _Precompiled(group[0].get("precompiled_charsmap") or "")
    if kind == "Replace":
        return _Replace(group[0]["pattern"], group[0]["content"])
    raise TfftError(f"in-graph Unigram does not support the {kind} normalizer (it supports Precompiled, "
                    f"Replace, NFD, NFKD, StripAccents and Lowercase); {_HINT}")


class _PerCharacter(tf.Module):
    """A run of per-character normalizers: each character respelled from one table."""

    def __init__(self, steps: list[dict]):
        super().__init__()
        self._table = CharacterTable(steps)

    def __call__(self, text: _Chars) -> _Chars:
        return text.respell(self._table(text.chars.values))[0]


class _Precompiled(tf.Module):
    """``Precompiled``, as the Rust normalizer applies a SentencePiece charsmap.

    Each grapheme cluster shorter than 6 bytes whose start is a charsmap key (the shortest
    one) becomes that key's replacement, the rest of the cluster dropped; other clusters
    are replaced character by character. A replacement's ``i``-th character takes the span
    of the cluster's ``i``-th character (its last for the surplus), as Rust aligns them.
    """

    def __init__(self, charsmap: str):
        super().__init__()
        rules = _charsmap_rules(base64.b64decode(charsmap))
        self._rules = lookup_table(list(rules))
        self._replacements = tf.constant(list(rules.values()) or [""], tf.string)
        classes = _grapheme_classes()
        self._classes = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(classes), tf.string),
                                                tf.constant(list(classes.values()), tf.int32)),
            default_value=_OTHER)
        self._max_chars = max((len(key) for key in rules), default=0)

    def __call__(self, text: _Chars) -> _Chars:
        values = text.chars.values
        size = tf.size(values, out_type=tf.int64)
        first, count = self._clusters(text)
        cluster = tf.repeat(tf.range(tf.size(first, out_type=tf.int64)), count)
        short = (count > 1) & (tf.math.segment_sum(tf.strings.length(values), cluster) < _GRAPHEME_BYTES)
        starts, counts = tf.boolean_mask(first, short), tf.boolean_mask(count, short)
        rule = self._shortest_rule(values, starts, counts)
        matched = rule >= 0
        cluster_rule = tf.scatter_nd(tf.boolean_mask(starts, matched)[:, None],
                                     tf.boolean_mask(rule, matched) + 1, size[None]) - 1
        own = self._rules.lookup(values)
        replaced = tf.where(own >= 0, tf.gather(self._replacements, tf.maximum(own, 0)), values)
        in_matched = tf.gather(tf.gather(cluster_rule, first) >= 0, cluster)
        replaced = tf.where(cluster_rule >= 0, tf.gather(self._replacements, tf.maximum(cluster_rule, 0)),
                            tf.where(in_matched, "", replaced))
        result, source, rank = text.respell(replaced)
        last = tf.where(tf.gather(cluster_rule, source) >= 0,
                        tf.gather(first + count - 1, tf.gather(cluster, source)), source)
        aligned = tf.minimum(source + rank, last)
        return _Chars(result.chars, tf.gather(text.starts, aligned), tf.gather(text.ends, aligned))

    def _shortest_rule(self, values: tf.Tensor, starts: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
        """Index of the shortest charsmap key that starts each cluster (``starts``, ``counts``); -1: none."""
        rule = tf.fill(tf.shape(starts), -1)
        prefix = tf.fill(tf.shape(starts), "")
        for length in range(1, self._max_chars + 1):
            inside = length <= counts
            next_char = tf.gather(values, tf.minimum(starts + length - 1, tf.size(values, tf.int64) - 1))
            prefix += tf.where(inside, next_char, "")
            rule = tf.where((rule < 0) & inside, self._rules.lookup(prefix), rule)
        return rule

    def _clusters(self, text: _Chars) -> tuple[tf.Tensor, tf.Tensor]:
        """First character and length (in characters) of each grapheme cluster, in order.

        A break everywhere except CR x LF, before Extend, ZWJ and SpacingMark, and after
        Prepend, none of them next to a control character (UAX #29 rules GB3-GB5, GB9-GB9b).
        """
        kind = self._classes.lookup(text.chars.values)
        previous = tf.concat([[_CONTROL], kind[:-1]], axis=0)
        control, previous_control = kind >= _CONTROL, previous >= _CONTROL
        joined = ((previous == _CR) & (kind == _LF)) | (
            ~control & ~previous_control & ((kind == _JOINS_PREVIOUS) | (previous == _PREPEND)))
        start = text.row_start() | ~joined
        first = tf.boolean_mask(text.index(), start)
        count = _next(first, tf.size(kind, out_type=tf.int64)) - first
        return first, count


def _charsmap_rules(charsmap: bytes) -> dict[str, str]:
    """The charsmap's keys shorter than 6 bytes (all Rust ever looks up) and their replacements.

    The charsmap is a 4-byte trie size, a Darts-clone double-array trie of UTF-8 keys
    whose leaves hold offsets into the NUL-terminated replacements that follow.
    """
    size = int.from_bytes(charsmap[:4], "little")
    units = np.frombuffer(charsmap[4:4 + size], "<u4").astype(np.int64)
    replacements = charsmap[4 + size:]

    def offset(unit):
        return (unit >> 10) << ((unit & (1 << 9)) >> 6)

    labels = np.arange(1, 256)
    nodes, keys, rules = offset(units[:1]), [b""], {}
    for _ in range(_GRAPHEME_BYTES - 1):
        positions = nodes[:, None] ^ labels[None, :]
        unit = units[np.minimum(positions, len(units) - 1)]
        parent, label = np.nonzero((positions < len(units)) & ((unit & ((1 << 31) | 0xFF)) == labels))
        child = unit[parent, label]
        nodes = positions[parent, label] ^ offset(child)
        keys = [keys[i] + bytes([labels[j]]) for i, j in zip(parent.tolist(), label.tolist(), strict=True)]
        for leaf in np.nonzero((child >> 8) & 1)[0].tolist():
            start = int(units[nodes[leaf]] & 0x7FFFFFFF)
            rules[keys[leaf]] = replacements[start:replacements.index(b"\x00", start)]
    return {key.decode("utf-8"): value.decode("utf-8") for key, value in rules.items()
            if _is_utf8(key) and _is_utf8(value)}


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` is valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def _grapheme_classes() -> dict[str, int]:
    """The characters of the Grapheme_Cluster_Break classes in ``_CLASSES`` (``regex``'s tables)."""
    import regex

    characters = "".join(chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
    return {character: kind for name, kind in _CLASSES.items()
            for character in regex.findall(rf"\p{{Grapheme_Cluster_Break={name}}}", characters)}


class _Replace(tf.Module):
    """``Replace``: every match of a string or regex pattern becomes ``content``.

    The match's first character becomes ``content``, with the span of the match's last
    character (as Rust aligns it), and the rest of the match is dropped.
    """

    def __init__(self, pattern: dict, content: str):
        super().__init__()
        if "String" in pattern:
            self._pattern = "".join(f"\\x{{{ord(c):X}}}" for c in pattern["String"])
            empty = not pattern["String"]
        else:
            self._pattern = pattern["Regex"]
            empty = _matches_empty(self._pattern)
        if empty or re.search(r"\\[AzZbBG]|\$|(?<!\[)\^|\(\?", self._pattern):
            raise TfftError(f"in-graph Unigram cannot reproduce Replace({pattern!r}) (anchors, lookaround "
                            f"and patterns matching the empty string are unsupported); {_HINT}")
        self._content = content

    def __call__(self, text: _Chars) -> _Chars:
        positions = tf.cumsum(tf.cast(tf.strings.length(text.chars.values), tf.int64), exclusive=True)
        match_begins, match_ends = self._matches(tf.strings.reduce_join(text.chars, axis=1))
        first = tf.searchsorted(positions, match_begins, out_type=tf.int64)  # Matches' first characters.
        after = tf.searchsorted(positions, match_ends, out_type=tf.int64)  # The characters after them.
        size = tf.shape(text.starts, tf.int64)
        inside = tf.cumsum(tf.scatter_nd(first[:, None], tf.ones_like(first), size)
                           - tf.scatter_nd(after[:, None], tf.ones_like(after), size + 1)[:-1]) > 0
        is_first = tf.scatter_nd(first[:, None], tf.ones_like(first, tf.bool), size)
        replaced = tf.where(is_first, self._content, tf.where(inside, "", text.chars.values))
        starts, ends = (tf.tensor_scatter_nd_update(values, first[:, None], tf.gather(values, after - 1))
                        for values in (text.starts, text.ends))
        return _Chars(text.chars, starts, ends).respell(replaced)[0]

    def _matches(self, texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Byte offsets, into all ``texts`` joined, where each match begins and where it ends.

        Each match (never empty) is surrounded by a byte that valid UTF-8 never holds, and
        the texts are cut there: each text's pieces are then the text before its first
        match (maybe empty), that match, the text up to the next match, and so on.
        """
        pieces = tf.strings.split(tf.strings.regex_replace(texts, self._pattern, _MARKED), sep=_MARK)
        lengths = tf.cast(tf.strings.length(pieces.values), tf.int64)
        begins = tf.cumsum(lengths, exclusive=True)
        index = tf.range(tf.size(lengths, out_type=tf.int64))
        is_match = (index - tf.gather(pieces.row_splits, pieces.value_rowids())) % 2 == 1
        return tf.boolean_mask(begins, is_match), tf.boolean_mask(begins + lengths, is_match)


def _matches_empty(regex: str) -> bool:
    """Whether ``regex`` matches the empty string (as Python's ``re`` reads it)."""
    try:
        return re.fullmatch(regex, "") is not None
    except re.error:
        return False


# --- pre-tokenizer and model ------------------------------------------------------------------


def _pre_tokenizer(spec: dict | None) -> tuple[bool, str, str, bool]:
    """``(whitespace_split, replacement, prepend_scheme, split)`` of a Metaspace pre-tokenizer."""
    steps = spec.get("pretokenizers", []) if spec and spec["type"] == "Sequence" else [spec]
    kinds = [step["type"] if step else None for step in steps]
    if kinds not in (["Metaspace"], ["WhitespaceSplit", "Metaspace"]):
        raise TfftError(f"in-graph Unigram supports a Metaspace pre-tokenizer (alone or after "
                        f"WhitespaceSplit), not {kinds}; {_HINT}")
    metaspace = steps[-1]
    scheme = metaspace.get("prepend_scheme", "always")
    if metaspace.get("add_prefix_space") is False:
        scheme = "never"
    return len(steps) == 2, metaspace["replacement"], scheme, metaspace.get("split", True)


class _Viterbi(tf.Module):
    """The Rust ``Unigram`` model (``encode_optimized``) on words of characters.

    Args:
        model: ``tokenizer.json``'s ``model``.
    """

    def __init__(self, model: dict):
        super().__init__()
        if model.get("byte_fallback"):
            raise TfftError(f"in-graph Unigram does not support byte_fallback; {_HINT}")
        if model.get("unk_id") is None:
            raise TfftError(f"in-graph Unigram needs a Unigram model with an unk_id; {_HINT}")
        vocab = [(str(piece), float(score)) for piece, score in model["vocab"]]
        ids = {piece: index for index, (piece, _) in enumerate(vocab) if piece}  # Later ids win.
        self._pieces = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(ids), tf.string),
                                                tf.constant(list(ids.values()), tf.int32)),
            default_value=-1)
        self._scores = tf.constant([score for _, score in vocab], tf.float64)
        self._max_chars = max(len(piece) for piece in ids)
        self._unk_id = int(model["unk_id"])
        self._unk_score = min(score for _, score in vocab) - _K_UNK_PENALTY

    def __call__(self, chars: tf.Tensor, word_start: tf.Tensor):
        """Tokens of the words ``chars`` spell (``[characters]``, ``word_start`` marks each first).

        The search runs one step per position in a word, over all words that long at once:
        characters are laid out depth-major (all words' first characters, then their
        second ones, ...) with words longest first, so that the words still going at each
        step are a prefix of the previous step's.

        Returns:
            ``(ids, first, last)``: ``[tokens]`` int32 id and int64 index of each token's
            first and last character.
        """
        size = tf.size(chars, out_type=tf.int64)
        index = tf.range(size)
        word_first = tf.boolean_mask(index, word_start)
        word = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        depth = index - tf.gather(word_first, word)  # Characters before, in the same word.
        word_length = _next(word_first, size) - word_first
        count = tf.size(word_first, out_type=tf.int64)
        longest_first = tf.cast(tf.argsort(-word_length, stable=True), tf.int64)
        rank = tf.scatter_nd(longest_first[:, None], tf.range(count), count[None])
        deepest = tf.reduce_max(tf.concat([[0], word_length], axis=0))
        going = tf.searchsorted(  # How many words are longer than each depth.
            -tf.gather(word_length, longest_first), -tf.range(deepest), out_type=tf.int64)
        begins = tf.cumsum(going, exclusive=True)
        laid_out = tf.gather(begins, depth) + tf.gather(rank, word)  # Where each character goes.
        order = tf.scatter_nd(laid_out[:, None], index, size[None])
        pieces, scores = self._candidates(chars, word_first, word, tf.gather(depth, order), order)
        lengths = tf.gather(self._best_paths(going, begins, scores), laid_out)
        last = self._token_ends(word_first, _next(word_first, size) - 1, lengths)
        length = tf.gather(lengths, last)
        ids = tf.gather_nd(pieces, tf.stack([tf.gather(laid_out, last), length - 1], axis=1))
        return _fuse_unknown(ids, last - length + 1, last, tf.gather(word, last), self._unk_id)

    def _candidates(self, chars: tf.Tensor, word_first: tf.Tensor, word: tf.Tensor, depth: tf.Tensor,
                    order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Id (-1: none) and score (-inf) of the ``k + 1``-character piece ending at each character.

        Args:
            chars: ``[characters]`` strings.
            word_first: Each word's first character.
            word: Each character's word.
            depth: Depth of each character of ``order``.
            order: The characters in the order to return them in.

        Returns:
            ``[characters, max_chars]`` int32 ids and float64 scores; where no one-character
            piece matches, the Rust model's unknown piece with its score.
        """
        lengths = tf.ragged.range(tf.minimum(depth + 1, self._max_chars))
        end, length = tf.gather(order, lengths.value_rowids()), lengths.values + 1
        first = end - length + 1
        bytes_after = tf.cumsum(tf.cast(tf.strings.length(chars), tf.int64))
        bytes_before = bytes_after - tf.cast(tf.strings.length(chars), tf.int64)
        words = tf.strings.reduce_join(
            tf.RaggedTensor.from_row_starts(chars, word_first, validate=False), axis=1)
        end_word = tf.gather(word, end)
        spelled = tf.strings.substr(
            tf.gather(words, end_word),
            tf.gather(bytes_before, first) - tf.gather(bytes_before, tf.gather(word_first, end_word)),
            tf.gather(bytes_after, end) - tf.gather(bytes_before, first))
        pieces = lengths.with_values(self._pieces.lookup(spelled)).to_tensor(
            -1, shape=[None, self._max_chars])
        scores = tf.where(pieces >= 0, tf.gather(self._scores, tf.maximum(pieces, 0)), -np.inf)
        unknown = pieces[:, 0] < 0
        pieces = tf.concat([tf.where(unknown, self._unk_id, pieces[:, 0])[:, None], pieces[:, 1:]], axis=1)
        unknown_score = tf.where(unknown, tf.constant(self._unk_score, tf.float64), scores[:, 0])
        return pieces, tf.concat([unknown_score[:, None], scores[:, 1:]], axis=1)

    def _best_paths(self, going: tf.Tensor, begins: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        """Length (in characters) of the last piece of the best path ending at each character.

        Args:
            going: How many words are longer than each depth.
            begins: Where each depth's characters start in the depth-major layout.
            scores: Candidate scores (:meth:`_candidates`), depth-major.

        Returns:
            ``[characters]`` int64, depth-major. Ties go to the longest piece, as in Rust
            (whose candidates for a position come shortest start first and replace the
            best only when strictly better).
        """
        width = self._max_chars

        def step(i, window, lengths):
            # window[k - 1, w]: the best score of word w's path k characters back.
            value = scores[begins[i]:begins[i] + going[i]] + tf.transpose(window[:, :going[i]])
            lengths = lengths.write(i + 1, width - tf.argmax(value[:, ::-1], axis=1))
            window = tf.concat([tf.reduce_max(value, axis=1)[None, :], window[:-1, :going[i]]], axis=0)
            return i + 1, window, lengths

        steps = tf.size(going)
        _, _, lengths = tf.while_loop(
            lambda i, window, lengths: i < steps, step,
            (tf.constant(0), tf.zeros(tf.stack([width, tf.reduce_sum(going[:1])]), tf.float64),
             _empty_first(tf.TensorArray(tf.int64, size=steps + 1, infer_shape=False,
                                         element_shape=[None]))),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), None))
        return lengths.concat()

    @staticmethod
    def _token_ends(word_first: tf.Tensor, word_last: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
        """``[tokens]`` index of each token's last character, in order: back along the best paths."""

        def step(i, ends, current, first):
            ends = ends.write(i + 1, current)
            current = current - tf.gather(lengths, current)
            going = current >= first
            return i + 1, ends, tf.boolean_mask(current, going), tf.boolean_mask(first, going)

        _, ends, _, _ = tf.while_loop(
            lambda i, ends, current, first: tf.size(current) > 0, step,
            (tf.constant(0), _empty_first(tf.TensorArray(tf.int64, size=1, dynamic_size=True,
                                                         infer_shape=False, element_shape=[None])),
             word_last, word_first),
            shape_invariants=(tf.TensorShape([]), None, tf.TensorShape([None]), tf.TensorShape([None])))
        return tf.sort(ends.concat())


def _next(first: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Where the run after each starting at ``first`` (sorted indices into ``size`` items) starts."""
    return tf.concat([first, size[None]], axis=0)[1:]


def _empty_first(array: tf.TensorArray) -> tf.TensorArray:
    """``array`` with an empty first element, so that ``concat`` works even when nothing else is written."""
    return array.write(0, tf.zeros([0], array.dtype))


def _fuse_unknown(ids: tf.Tensor, first: tf.Tensor, last: tf.Tensor, word: tf.Tensor, unk_id: int):
    """Merges consecutive unknown tokens of a word into one, as the Rust model does."""
    unknown = ids == unk_id
    same_word = tf.concat([[False], word[1:] == word[:-1]], axis=0)
    merged = unknown & tf.concat([[False], unknown[:-1]], axis=0) & same_word
    kept = tf.logical_not(merged)
    group = tf.cumsum(tf.cast(kept, tf.int64)) - 1
    return tf.boolean_mask(ids, kept), tf.boolean_mask(first, kept), tf.math.segment_max(last, group)
