"""Per-character normalizers as lookup tables built from the ``tokenizers`` library.

A normalizer that maps each character on its own, whatever its neighbours (``Lowercase``,
``StripAccents``, ``NFD``, ``NFKD``, a ``BertNormalizer`` without ``clean_text``), becomes
one table of the characters it changes. The ``tokenizers`` library computes it at build
time, so its Unicode tables (Rust's ``char::to_lowercase``, decompositions, mark
categories) are the ones the fast tokenizer uses; in the graph the table is a
``StaticHashTable`` of in-memory constants, a core TensorFlow op that needs no files.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import tensorflow as tf

# Code points the per-character normalizers may change: planes 0-2 and 14 (planes 3, 15 and
# 16 hold only CJK ideographs and private use characters, which none of them touch).
_CODE_POINTS = (range(1, 0xD800), range(0xE000, 0x30000), range(0xE0000, 0xE1000))
# The characters' separator: every normalizer above keeps it, and NFD reorders no
# combining mark across it.
_SEPARATOR = "\x00"


def lookup_table(keys: Sequence[str]) -> tf.lookup.StaticHashTable:
    """A table from each of ``keys`` (distinct strings) to its int32 index; -1 for other strings."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(keys) or [b"\xff"], tf.string),  # Never UTF-8.
                                            tf.range(max(len(keys), 1), dtype=tf.int32)),
        default_value=-1)


def character_changes(steps: Sequence[dict]) -> tuple[list[str], list[str]]:
    """Each character the normalizer ``steps`` change, and what they make of it.

    Args:
        steps: ``tokenizer.json`` normalizers applied in turn, each mapping characters on
            their own, e.g. ``[{"type": "NFD"}, {"type": "StripAccents"}]`` or
            ``[{"type": "BertNormalizer", "clean_text": False, "handle_chinese_chars": False,
            "strip_accents": True, "lowercase": True}]``.

    Returns:
        The changed characters and, in the same order, their replacements (zero or more
        characters each).

    Raises:
        ValueError: if the steps remove or add NUL characters (``clean_text`` does).
    """
    return _changes(json.dumps(list(steps), sort_keys=True))


@functools.lru_cache(maxsize=8)
def _changes(steps: str) -> tuple[list[str], list[str]]:
    """:func:`character_changes` of the JSON list ``steps``, all code points normalized at once."""
    from tokenizers import normalizers

    normalizer = normalizers.Sequence([
        getattr(normalizers, step["type"])(**{key: value for key, value in step.items() if key != "type"})
        for step in json.loads(steps)])
    characters = [chr(code) for codes in _CODE_POINTS for code in codes]
    changed = normalizer.normalize_str(_SEPARATOR.join(characters)).split(_SEPARATOR)
    if len(changed) != len(characters):
        raise ValueError(f"the normalizers {steps} do not keep each character apart (they change NUL)")
    pairs = [(old, new) for old, new in zip(characters, changed, strict=True) if new != old]
    return [old for old, _ in pairs], [new for _, new in pairs]


class CharacterTable(tf.Module):
    """Per-character normalizers (see :func:`character_changes`) as one in-graph table.

    Args:
        steps: The ``tokenizer.json`` normalizers, applied in turn.
    """

    def __init__(self, steps: Sequence[dict]):
        super().__init__(name="character_table")
        keys, values = character_changes(steps)
        self._table = lookup_table(keys)
        self._values = tf.constant(values or [""], tf.string)

    def __call__(self, chars: tf.Tensor) -> tf.Tensor:
        """What becomes of each of ``chars`` (strings of one character each): zero or more characters."""
        index = self._table.lookup(chars)
        return tf.where(index >= 0, tf.gather(self._values, tf.maximum(index, 0)), chars)
