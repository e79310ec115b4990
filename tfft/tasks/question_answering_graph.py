"""Question answering on raw text in the TensorFlow graph, for the exported ``serving_default``.

:func:`windows` cuts (question, context) pairs into the windows training makes
(:class:`~tfft.tasks.question_answering.QuestionAnswering` ``encode``): the question cut to
``max_query_length`` tokens, the context in windows whose starts are ``doc_stride``
context tokens apart. :func:`best_answers` post-processes the windows' start and end
logits as ``QuestionAnswering.answers`` does: the ``n_best_size`` best starts and ends
of each window, spans of at most ``max_answer_length`` tokens starting where their start
token has the most context, the best span over all windows (the best single token when
no pair qualifies) and, for SQuAD 2.0, the null answer when it wins by more than the
threshold. The answer is cut out of the context through the tokens' byte offsets.
"""

from __future__ import annotations

import tensorflow as tf

# Below any score; finite, because segment maxima of rows holding only it must equal it
# (an empty segment's maximum is the lowest float, not -inf).
_NEGATIVE = -1e30


def windows(tokenizer, questions, contexts, max_length: int, max_query_length: int, stride: int) -> dict:
    """Model inputs of the windows of each (question, context) pair, and where each token came from.

    Args:
        tokenizer: A :class:`~tfft.data.graph_tokenizers.GraphTokenizer`.
        questions: ``[batch]`` strings.
        contexts: ``[batch]`` strings.
        max_length: Longest window, special tokens included.
        max_query_length: Questions are cut to this many tokens (0: never).
        stride: Context tokens between the starts of consecutive windows.

    Returns:
        ``input_ids``, ``token_type_ids``, ``attention_mask`` ``[windows, seq]``;
        ``window_example`` ``[windows]`` (the pair each window belongs to);
        ``context_index`` ``[windows, seq]`` (a token's index among its context's tokens,
        -1 for question and special tokens) and the UTF-8 byte offsets ``byte_start``,
        ``byte_end`` ``[windows, seq]`` of each context token in its context.
    """
    question_ids = tokenizer.tokenize(questions)[0]
    if max_query_length:
        question_ids = question_ids[:, :max_query_length]
    context_ids, byte_starts, byte_ends = tokenizer.tokenize(contexts)
    budget = max_length - tokenizer.template.num_special(pair=True) - question_ids.row_lengths()
    check = tf.debugging.assert_positive(
        budget, message=f"a question fills max_seq_length={max_length} tokens with its special tokens, "
                        "leaving no room for the context; shorten the question")
    with tf.control_dependencies([check]):
        count = context_ids.row_lengths()
    step = tf.minimum(budget, stride)
    extra = tf.maximum(count - budget, 0)
    per_example = 1 + (extra + step - 1) // step
    window_example = tf.repeat(tf.range(tf.size(per_example, out_type=tf.int64)), per_example)
    number = tf.ragged.range(per_example).flat_values
    first = number * tf.gather(step, window_example)
    length = tf.minimum(tf.gather(count, window_example) - first, tf.gather(budget, window_example))
    index = tf.ragged.range(first, first + length)  # [windows, (context tokens)]
    flat = index + tf.expand_dims(tf.gather(context_ids.row_splits, window_example), 1)

    def laid_out(values, question_value=None, dtype=tf.int32):
        """Per window position: ``values`` of its context tokens, the question's or -1 elsewhere."""
        context_part = index.with_flat_values(tf.cast(tf.gather(values, flat.flat_values), dtype))
        question = tf.gather(question_ids, window_example)
        if question_value is not None:
            question = tf.ones_like(question, dtype) * question_value
        return tokenizer.template.apply(
            question, context_part, max_length, special_value=None if question_value is None else -1)

    ids, types = laid_out(context_ids.flat_values)
    positions = tf.range(tf.size(context_ids.flat_values, out_type=tf.int64))
    context_index = laid_out(positions - tf.gather(context_ids.row_splits, context_ids.value_rowids()), -1)[0]
    starts = laid_out(byte_starts.flat_values, -1, tf.int64)[0]
    ends = laid_out(byte_ends.flat_values, -1, tf.int64)[0]
    return {
        "input_ids": ids.to_tensor(default_value=tokenizer.pad_id),
        "token_type_ids": types.to_tensor(default_value=0),
        "attention_mask": tf.ones_like(ids).to_tensor(default_value=0),
        "window_example": window_example,
        "context_index": context_index.to_tensor(default_value=-1),
        "byte_start": starts.to_tensor(default_value=-1),
        "byte_end": ends.to_tensor(default_value=-1),
    }


def best_answers(contexts, features: dict, logits, n_best_size: int, max_answer_length: int,
                 null_threshold: float | None = None) -> dict:
    """The answer to each question from its windows' ``[windows, seq, 2]`` start and end logits.

    Args:
        contexts: ``[batch]`` strings.
        features: What :func:`windows` returned.
        logits: The model's outputs on the windows.
        n_best_size: Start and end candidates per window, and answers the score is taken over.
        max_answer_length: Longest answer in tokens.
        null_threshold: SQuAD 2.0: answer ``""`` when the null score beats the best span by
            more than this; None for SQuAD v1.1 (always a span).

    Returns:
        ``answer`` (an exact substring of the context), ``answer_start`` and
        ``answer_end`` (character offsets; -1 for ``""``) and ``score`` (the answer's
        probability among the n best, as ``nbest_predictions.json`` gives it).
    """
    batch = tf.size(contexts, out_type=tf.int64)
    example = features["window_example"]
    context_index = tf.cast(features["context_index"], tf.int64)
    start_logits, end_logits = logits[..., 0], logits[..., 1]
    allowed = _max_context(context_index, example, batch)
    is_context = context_index >= 0
    k = tf.minimum(n_best_size, tf.shape(start_logits)[1])
    start_values, start_positions = tf.math.top_k(tf.where(is_context, start_logits, _NEGATIVE), k)
    end_values, end_positions = tf.math.top_k(tf.where(is_context, end_logits, _NEGATIVE), k)
    starts_ok = (start_values > _NEGATIVE) & tf.gather(allowed, start_positions, batch_dims=1)
    span = end_positions[:, None, :] - start_positions[:, :, None]
    valid = (starts_ok[:, :, None] & (end_values > _NEGATIVE)[:, None, :] & (span >= 0)
             & (span < max_answer_length))
    pair_scores = tf.reshape(tf.where(valid, start_values[:, :, None] + end_values[:, None, :], _NEGATIVE),
                             [tf.shape(valid)[0], -1])
    pair = tf.argmax(pair_scores, axis=1, output_type=tf.int32)
    pair_start = tf.gather(start_positions, pair // k, batch_dims=1)
    pair_end = tf.gather(end_positions, pair % k, batch_dims=1)
    single_scores = tf.where(allowed, start_logits + end_logits, _NEGATIVE)
    single = tf.argmax(single_scores, axis=1, output_type=tf.int32)

    pair_window, pair_best = _best_window(tf.reduce_max(pair_scores, axis=1), example, batch)
    single_window, single_best = _best_window(tf.reduce_max(single_scores, axis=1), example, batch)
    has_pair = pair_best > _NEGATIVE
    window = tf.where(has_pair, pair_window, single_window)
    start = tf.where(has_pair, tf.gather(pair_start, pair_window), tf.gather(single, single_window))
    end = tf.where(has_pair, tf.gather(pair_end, pair_window), tf.gather(single, single_window))
    found = tf.maximum(pair_best, single_best) > _NEGATIVE

    # The n best candidates of each question (only the single token where no pair qualifies).
    candidates = tf.RaggedTensor.from_value_rowids(pair_scores, example, nrows=batch).merge_dims(1, 2)
    unfilled = tf.fill(tf.stack([batch, n_best_size]), _NEGATIVE)
    padded = tf.concat([candidates.to_tensor(default_value=_NEGATIVE), unfilled], 1)
    top = tf.math.top_k(padded, n_best_size).values
    top = tf.where(has_pair[:, None], top, tf.concat([single_best[:, None], unfilled[:, 1:]], 1))
    chosen, answer_found = top[:, 0], found
    if null_threshold is not None:
        null_scores = tf.math.unsorted_segment_min(logits[:, 0, 0] + logits[:, 0, 1], example, batch)
        top = tf.concat([top, null_scores[:, None]], axis=1)
        answer_found = found & (null_scores - chosen <= null_threshold)
        chosen = tf.where(answer_found, chosen, null_scores)
    score = tf.exp(chosen - tf.reduce_logsumexp(top, axis=1))  # Softmax over the n best.
    found_any = chosen > _NEGATIVE

    cells = tf.stack([tf.cast(window, tf.int64), tf.cast(start, tf.int64)], axis=1)
    byte_start = tf.gather_nd(features["byte_start"], cells)
    byte_end = tf.gather_nd(features["byte_end"], tf.stack([cells[:, 0], tf.cast(end, tf.int64)], axis=1))
    byte_start = tf.where(answer_found, byte_start, 0)
    byte_end = tf.where(answer_found, byte_end, 0)
    answer = tf.strings.substr(contexts, byte_start, byte_end - byte_start)
    before = tf.strings.substr(contexts, tf.zeros_like(byte_start), byte_start)
    char_start = tf.strings.length(before, unit="UTF8_CHAR")
    char_end = char_start + tf.strings.length(answer, unit="UTF8_CHAR")
    return {
        "answer": answer,
        "answer_start": tf.where(answer_found, char_start, -1),
        "answer_end": tf.where(answer_found, char_end, -1),
        "score": tf.where(found_any, score, 0.0),
    }


def _max_context(context_index, example, batch):
    """Per window position: whether the window is where that context token has the most context.

    The score of a token in a window is its distance to the nearer end of the window's
    context plus 0.01 per context token of the window; the first window wins ties (BERT).
    """
    is_context = context_index >= 0
    masked = tf.where(is_context, context_index, tf.int64.max)
    first = tf.reduce_min(masked, axis=1, keepdims=True)
    last = tf.reduce_max(context_index, axis=1, keepdims=True)
    size = tf.reduce_sum(tf.cast(is_context, tf.float32), axis=1, keepdims=True)
    score = tf.cast(tf.minimum(context_index - first, last - context_index), tf.float32) + 0.01 * size
    # One segment per (example, context token); example offsets keep examples apart.
    counts = tf.maximum(tf.math.unsorted_segment_max(last[:, 0] + 1, example, batch), 0)
    base = tf.gather(tf.cumsum(counts, exclusive=True), example)[:, None]
    key = tf.where(is_context, base + context_index, 0)
    segments = tf.reduce_sum(counts) + 1
    best = tf.math.unsorted_segment_max(tf.where(is_context, score, _NEGATIVE), key, segments)
    rows = tf.broadcast_to(tf.range(tf.shape(key, out_type=tf.int64)[0])[:, None], tf.shape(key))
    is_best = is_context & (score == tf.gather(best, key))
    first_best = tf.math.unsorted_segment_min(tf.where(is_best, rows, tf.int64.max), key, segments)
    return is_best & (rows == tf.gather(first_best, key))


def _best_window(scores, example, batch):
    """Per example, the first of its windows with the highest score, and that score."""
    best = tf.math.unsorted_segment_max(scores, example, batch)
    rows = tf.range(tf.size(example, out_type=tf.int64))
    is_best = scores == tf.gather(best, example)
    window = tf.math.unsorted_segment_min(tf.where(is_best, rows, tf.int64.max), example, batch)
    return window, best
