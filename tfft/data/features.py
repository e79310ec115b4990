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
        labels: One label per example (int32 ids or float32 scores), or None when
            predicting on unlabeled data.
    """

    columns: dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray | None = None

    @classmethod
    def from_lists(cls, columns: dict[str, list[list[int]]], labels=None) -> Features:
        """Builds features from per-example token lists (as tokenizers return them)."""
        first = next(iter(columns.values()))
        lengths = np.fromiter((len(row) for row in first), dtype=np.int32, count=len(first))
        flat = {
            name: np.fromiter(
                (token for row in rows for token in row), dtype=np.int32, count=int(lengths.sum())
            )
            for name, rows in columns.items()
        }
        return cls(flat, lengths, None if labels is None else np.asarray(labels))

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, indices: np.ndarray) -> Features:
        """The examples at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)[:-1]])[indices]
        lengths = self.lengths[indices]
        out_starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)[:-1]])
        positions = np.arange(int(lengths.sum())) + np.repeat(starts - out_starts, lengths)
        return Features(
            {name: values[positions] for name, values in self.columns.items()},
            lengths,
            None if self.labels is None else self.labels[indices],
        )
