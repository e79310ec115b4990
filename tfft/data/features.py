"""Tokenized examples held as flat columns, and the shapes tasks declare for them.

A split's :class:`Features` hold every token of every example in flat arrays, with
the lengths that cut them back into examples. A row (one model input, e.g. a
sentence, a window of a long text, or a question with its candidate answers) is one
sequence of tokens, or several of them (``sequences``), as multiple choice feeds
``[choices, seq]`` per row. :class:`FeatureSpec` is what a task declares per model
input and label; pipelines, TFRecord files, Keras inputs and serving signatures are
built from these declarations.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: The token inputs every backbone takes.
MODEL_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
#: Label of positions without a label (padding, continuation sub-words); losses ignore it.
IGNORED_LABEL = -100


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The shape, dtype and padding of one model input or label, per row.

    Attributes:
        shape: The row's shape; ``None`` marks the token axis, padded per batch to the
            longest sequence (to ``max_seq_length`` with static shapes, as on TPUs).
        dtype: ``int32`` or ``float32``.
        padding: The value of padding positions (``-100`` for ignored labels).
    """

    shape: tuple[int | None, ...] = (None,)
    dtype: str = "int32"
    padding: int | float = 0

    @property
    def per_token(self) -> bool:
        """Whether the value has a token axis."""
        return None in self.shape

    def static_shape(self, length: int) -> tuple[int, ...]:
        """The row's shape with the token axis fixed at ``length``."""
        return tuple(length if size is None else size for size in self.shape)


@dataclasses.dataclass(frozen=True)
class FeatureSpecs:
    """What a task feeds its model: named inputs and the label.

    Attributes:
        inputs: Model input name -> spec (token inputs are ``[batch, seq]`` int32).
        label: The training target's spec.
    """

    inputs: dict[str, FeatureSpec]
    label: FeatureSpec

    @property
    def sequences(self) -> int:
        """Sequences per row: 0 for ``[batch, seq]`` inputs, N for ``[batch, N, seq]``."""
        shape = next(iter(self.inputs.values())).shape
        return shape[0] if len(shape) > 1 and shape[0] is not None else 0


def token_specs(label: FeatureSpec, sequences: int = 0) -> FeatureSpecs:
    """Specs of the backbone's token inputs (``[batch, seq]``, or ``[batch, sequences, seq]``)."""
    shape = (sequences, None) if sequences else (None,)
    return FeatureSpecs({name: FeatureSpec(shape) for name in MODEL_INPUTS}, label)


@dataclasses.dataclass
class Features:
    """Variable-length model inputs for a whole split, ready for ``tf.data``.

    Attributes:
        columns: Model input name -> all sequences' tokens concatenated (int32).
        lengths: Tokens per sequence (int32).
        labels: One label per row (any per-row shape), or with ``label_per_token`` one
            per token, flat like ``columns`` (-100 where no label applies); None when
            predicting on unlabeled data.
        label_per_token: Whether ``labels`` holds a label per token.
        sequences: Sequences per row when rows hold several (multiple choice), else None.
        extras: Per-token values post-processing needs (not model inputs), flat like
            ``columns``, e.g. word indices or character spans.
        example_index: For tasks that split an example into several rows (windows):
            per row, the example it belongs to.
        examples: The examples the rows were encoded from, for tasks that score or
            post-process against the raw text.
    """

    columns: dict[str, np.ndarray]
    lengths: np.ndarray
    labels: np.ndarray | None = None
    label_per_token: bool = False
    sequences: np.ndarray | None = None
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    example_index: np.ndarray | None = None
    examples: list | None = None

    @classmethod
    def from_lists(cls, columns: dict[str, list[list[int]]], labels=None) -> Features:
        """Builds features from per-sequence token lists (as tokenizers return them)."""
        first = next(iter(columns.values()))
        lengths = np.fromiter((len(row) for row in first), dtype=np.int32, count=len(first))
        flat = {name: flatten(rows, int(lengths.sum())) for name, rows in columns.items()}
        return cls(flat, lengths, None if labels is None else np.asarray(labels))

    def offsets(self) -> np.ndarray:
        """Where each sequence starts in the flat columns."""
        return _starts(self.lengths)

    def __len__(self) -> int:
        """The number of rows (windows, for tasks that split examples)."""
        return len(self.lengths) if self.sequences is None else len(self.sequences)

    @property
    def row_lengths(self) -> np.ndarray:
        """Per row, its longest sequence: what a batch of rows is padded to."""
        if self.sequences is None:
            return self.lengths
        return np.maximum.reduceat(self.lengths, _starts(self.sequences)) if len(self) else self.lengths

    @property
    def num_examples(self) -> int:
        """The number of examples the rows come from."""
        return len(self) if self.example_index is None else len(np.unique(self.example_index))

    def take(self, indices: np.ndarray) -> Features:
        """The rows at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        sequence_ids = indices
        if self.sequences is not None:
            sequence_ids = _spans(_starts(self.sequences), self.sequences, indices)
        lengths = self.lengths[sequence_ids]
        positions = _spans(self.offsets(), self.lengths, sequence_ids)
        labels = self.labels
        if labels is not None:
            labels = labels[positions if self.label_per_token else indices]
        return Features(
            {name: values[positions] for name, values in self.columns.items()},
            lengths,
            labels,
            self.label_per_token,
            None if self.sequences is None else self.sequences[indices],
            {name: values[positions] for name, values in self.extras.items()},
            None if self.example_index is None else self.example_index[indices],
            self.examples,
        )


def _starts(counts: np.ndarray) -> np.ndarray:
    """Where each of consecutive runs of ``counts`` items starts."""
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)[:-1]]).astype(np.int64)


def _spans(starts: np.ndarray, counts: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The item positions of runs ``indices`` (each ``starts[i]``, ``counts[i]`` long), in order."""
    counts = np.asarray(counts, dtype=np.int64)[indices]
    out_starts = _starts(counts)
    return np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(starts[indices] - out_starts, counts)


def flatten(rows: list[list[int]], total: int) -> np.ndarray:
    """Concatenates per-example int lists into one int32 array of ``total`` values."""
    return np.fromiter((value for row in rows for value in row), dtype=np.int32, count=total)
