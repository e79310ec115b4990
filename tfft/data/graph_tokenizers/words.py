"""Words in, windows of model inputs out: what word-level tasks tokenize in the graph.

Each word is tokenized on its own (as ``is_split_into_words=True`` does), words the
tokenizer drops become one unknown token, and a sentence whose sub-words do not fit in
``max_length`` is cut into consecutive windows at word boundaries, the rule
:meth:`tfft.tasks.token_classification.TokenClassification.encode` applies in training.
"""

from __future__ import annotations

import tensorflow as tf


def encode_words(tokenizer, words: tf.RaggedTensor, max_length: int, unknown_id: int) -> dict:
    """Model inputs of word lists, one row per window, and where each word's first sub-word is.

    Args:
        tokenizer: A :class:`~tfft.data.graph_tokenizers.GraphTokenizer`.
        words: ``[batch, (words)]`` strings.
        max_length: Longest window, special tokens included.
        unknown_id: The id standing for a word that has no token of its own.

    Returns:
        ``input_ids``, ``token_type_ids``, ``attention_mask`` ``[windows, seq]`` and, per word
        (``[batch, (words)]`` int64), ``word_window`` (its window's row) and
        ``word_position`` (the position of its first sub-word in that row).
    """
    tokens = tokenizer.tokenize(words.flat_values)[0]
    dropped = tf.cast(tokens.row_lengths() == 0, tf.int64)
    unknown = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(dropped)], unknown_id), dropped)
    tokens = tf.concat([tokens, unknown], axis=1)
    counts = tokens.row_lengths()
    budget = max_length - tokenizer.template.num_special(pair=False)
    window = _window_numbers(words.with_flat_values(counts), budget)
    per_sentence = tf.where(words.row_lengths() > 0, tf.reduce_max(window, axis=1) + 1, 0)
    first_window = tf.cumsum(per_sentence, exclusive=True)
    word_window = (window + tf.expand_dims(first_window, 1)).flat_values
    total = tf.reduce_sum(per_sentence)
    windows = tf.RaggedTensor.from_value_rowids(
        tokens.flat_values, tf.gather(word_window, tokens.value_rowids()), nrows=total)
    first_token = tf.cumsum(counts, exclusive=True)
    window_start = tf.math.unsorted_segment_min(first_token, word_window, total)
    position = first_token - tf.gather(window_start, word_window) + tokenizer.template.prefix_length()
    ids, types = tokenizer.template.apply(windows, None, max_length)
    return {
        "input_ids": ids.to_tensor(default_value=tokenizer.pad_id),
        "token_type_ids": types.to_tensor(default_value=0),
        "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
        "word_window": words.with_flat_values(word_window),
        "word_position": words.with_flat_values(position),
    }


def _window_numbers(counts: tf.RaggedTensor, budget: int) -> tf.RaggedTensor:
    """Each word's window within its sentence: a new one when the sub-words would pass ``budget``."""
    dense = counts.to_tensor(0)
    length = counts.row_lengths()
    batch = tf.shape(dense, out_type=tf.int64)[0]
    zeros = tf.zeros([batch], tf.int64)

    def step(index, start, used, window, numbers):
        count, at = dense[:, index], tf.cast(index, tf.int64)
        new = (used + count > budget) & (at > start) & (at < length)
        start = tf.where(new, at, start)
        window += tf.cast(new, tf.int64)
        return index + 1, start, tf.where(new, count, used + count), window, numbers.write(index, window)

    numbers = tf.TensorArray(tf.int64, size=tf.shape(dense)[1], element_shape=[None])
    *_, numbers = tf.while_loop(
        lambda index, *_: index < tf.shape(dense)[1], step, (0, zeros, zeros, zeros, numbers))
    return tf.RaggedTensor.from_tensor(tf.transpose(numbers.stack()), lengths=length)
