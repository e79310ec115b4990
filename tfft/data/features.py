"""Tokenized examples held as flat int32 columns plus per-example lengths."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Features:
    """Variable-length model inputs for a whole split, ready for ``tf.data``.

    Attributes:
        columns: Input name (``input_ids``, ``token_type_ids``, ``attention_mask``, ...)
            -> all examples' values concatenated (int32).
        lengths: Tokens per example (int32 [num_examples]).
        labels: One label per example (int32 ids or float32 scores), or with
            ``label_per_token`` one int32 label per token, flat like ``columns`` (-100 where
            no label applies); None when predicting on unlabeled data.
        label_per_token: Whether ``labels`` holds a label per token.
        word_index: Per token (flat): for token tasks the index of the word it starts in
            its example, for span tasks its index among the example's context tokens;
            -1 elsewhere (special tokens, continuation sub-words, question tokens).
        example_index: For tasks that split an example into several windows: per
            window, the example it belongs to.
        char_spans: For span tasks: per token (flat), its ``[start, end)`` characters in
            the example's context (int32 [total, 2]).
        examples: The examples the rows were encoded from, for tasks that score or
            post-process against the raw text.
    """

    columns: dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray | None = None
    label_per_token: bool = False
    word_index: np.ndarray | None = None
    example_index: np.ndarray | None = None
    char_spans: np.ndarray | None = None
    examples: list | None = None

    @classmethod
    def from_lists(cls, columns: dict[str, list[list[int]]], labels=None) -> Features:
        """Builds features from per-example token lists (as tokenizers return them)."""
        first = next(iter(columns.values()))
        lengths = np.fromiter((len(row) for row in first), dtype=np.int32, count=len(first))
        flat = {name: flatten(rows, int(lengths.sum())) for name, rows in columns.items()}
        return cls(flat, lengths, None if labels is None else np.asarray(labels))

    def offsets(self) -> np.ndarray:
        """Where each example starts in the flat columns."""
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)[:-1]])

    def __len__(self) -> int:
        """The number of rows (windows, for tasks that split examples)."""
        return len(self.lengths)

    @property
    def num_examples(self) -> int:
        """The number of examples the rows come from."""
        return len(self) if self.example_index is None else len(np.unique(self.example_index))

    def take(self, indices: np.ndarray) -> Features:
        """The examples at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = self.offsets()[indices]
        lengths = self.lengths[indices]
        out_starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)[:-1]])
        positions = np.arange(int(lengths.sum())) + np.repeat(starts - out_starts, lengths)

        def pick(values, per_token):
            return None if values is None else values[positions if per_token else indices]

        return Features(
            {name: values[positions] for name, values in self.columns.items()},
            lengths,
            pick(self.labels, self.label_per_token),
            self.label_per_token,
            pick(self.word_index, True),
            pick(self.example_index, False),
            pick(self.char_spans, True),
            self.examples,
        )


def flatten(rows: list[list[int]], total: int) -> np.ndarray:
    """Concatenates per-example int lists into one int32 array of ``total`` values."""
    return np.fromiter((value for row in rows for value in row), dtype=np.int32, count=total)
