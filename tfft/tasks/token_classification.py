"""Token classification (NER, chunking): word-level tags from CoNLL, JSONL or TFDS data.

Words are split into sub-words by the fast tokenizer; a word's tag is learnt and
predicted on its first sub-word (``task.label_all_subwords`` trains on every
sub-word). Sentences longer than ``task.max_seq_length`` are cut into consecutive
windows at word boundaries, so every word gets a prediction. Metrics are
entity-level (conlleval rules) over the whole evaluation set.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from tfft.backbones.weights import dense_specs
from tfft.config import DataConfig, TaskConfig, config_field
from tfft.data.features import IGNORED_LABEL, Features, FeatureSpec, flatten
from tfft.data.graph_tokenizers.words import encode_words
from tfft.data.sources import Record
from tfft.errors import TfftError
from tfft.tasks import distillation, metrics
from tfft.tasks.base import HfHead, Task, dense_head, register_task
from tfft.tasks.entities import entity_scores, first_inconsistency, split_tag

_INPUTS = ("input_ids", "token_type_ids", "attention_mask")
#: The characters ``tf.strings.split`` separates words at in the raw-text ``serving_default``.
_WORD_SEPARATORS = " \t\n\r\x0b\x0c"


@dataclasses.dataclass
class TokenClassificationConfig(TaskConfig):
    """Tags and data fields of ``task.type: token_classification``."""

    label_list: list = config_field(
        [], doc="The tags in id order (default: from the training data, O first)."
    )
    num_labels: int = config_field(0, doc="Number of tags (set from label_list).")
    text_fields: list = config_field(["sentence"], doc="JSONL/TFDS: the field holding the word list.")
    label_field: str = config_field("label", doc="JSONL/TFDS: the field holding the tag list.")
    tag_column: int = config_field(-1, doc="CoNLL files: the tag column's index (-1: last).")
    tag_scheme: str = config_field(
        "iob2", choices=("iob1", "iob2", "bioes"),
        doc="The tagging scheme training tags are checked against.",
    )
    label_all_subwords: bool = config_field(
        False, doc="Train on every sub-word of a word, not only the first."
    )


@dataclasses.dataclass(frozen=True)
class TokenExample:
    """A sentence as words, with one tag per word (None when unlabeled)."""

    words: tuple[str, ...]
    tags: tuple[str, ...] | None
    where: str


@register_task
class TokenClassification(Task):
    """Tags every word of a sentence with one of ``task.label_list``.

    The tag list comes from the config or, when empty, from the training data (``O``
    first, then by entity type); it is saved in the run's ``params.yaml``.
    """

    name = "token_classification"
    pipeline_tag = "token-classification"
    default_main_metric = "f1"
    metric_names = ("loss", "f1", "precision", "recall", "accuracy")
    uses_pooler = False
    output_formats = ("jsonl", "conll")
    example_type = TokenExample
    config_class = TokenClassificationConfig
    #: A tag id per token (-100 where none is learnt).
    label_spec = FeatureSpec((None,), "int32", IGNORED_LABEL)
    #: CoNLL-2003, WNUT and OntoNotes' CoNLL conversions ship their CoNLL column files as ``.txt``.
    format_suffixes: ClassVar[dict[str, str]] = {".txt": "conll"}

    @property
    def label_names(self) -> list[str]:
        """The tags, in id order."""
        return [str(tag) for tag in self.config.label_list]

    @property
    def prediction_length(self) -> int:
        """Outputs are per token: inference pads them to ``max_seq_length``."""
        return self.config.max_seq_length

    # --- data --------------------------------------------------------------------------

    def read_examples(self, data: DataConfig, labeled: bool = True) -> list[TokenExample]:
        """Reads sentences; tags are checked against the tag list once it is known.

        With ``format: auto``, ``.txt`` files (and ``.txt.gz``) are read as CoNLL columns
        (:attr:`format_suffixes`).
        """
        records = self.read_records(data)
        return [self._example(record, labeled) for record in records]

    def _example(self, record: Record, labeled: bool) -> TokenExample:
        fields = record.fields
        words = fields.get("tokens") if "columns" in fields else fields.get(self.config.text_fields[0])
        if not isinstance(words, (list, tuple)) or not words:
            raise TfftError(
                f"{record.where}: sentence has no tokens (field '{self.config.text_fields[0]}'); "
                "remove it or fill it in"
            )
        words = tuple(str(word) for word in words)
        if not labeled:
            return TokenExample(words, None, record.where)
        tags = self._raw_tags(record)
        if len(tags) != len(words):
            raise TfftError(
                f"{record.where}: {len(words)} tokens but {len(tags)} tags; give one tag per token"
            )
        return TokenExample(words, tuple(self._tag_name(tag, record.where) for tag in tags), record.where)

    def _raw_tags(self, record: Record) -> list:
        if "columns" in record.fields:
            columns = record.fields["columns"]
            if len(columns) < 2:
                raise TfftError(f"{record.where}: CoNLL lines need a token and a tag column; add the tags")
            try:
                return list(columns[self.config.tag_column])
            except IndexError:
                raise TfftError(
                    f"{record.where}: task.tag_column {self.config.tag_column} is out of range for "
                    f"{len(columns)} columns; set task.tag_column"
                ) from None
        tags = record.fields.get(self.config.label_field)
        if not isinstance(tags, (list, tuple)):
            raise TfftError(
                f"{record.where}: no tag list in field '{self.config.label_field}'; "
                "set task.label_field to the field holding the tags"
            )
        return list(tags)

    def _tag_name(self, tag: Any, where: str) -> str:
        names = self.label_names
        if isinstance(tag, (int, np.integer)) and not isinstance(tag, bool):
            if not names:
                raise TfftError(
                    f"{where}: integer tag {tag} needs task.label_list with the tag names in id order"
                )
            if not 0 <= tag < len(names):
                raise TfftError(
                    f"{where}: integer tag {tag} is out of range for the {len(names)} tags of "
                    "task.label_list; fix the data or the list"
                )
            return names[int(tag)]
        tag = str(tag)
        try:
            split_tag(tag)
        except ValueError as error:
            raise TfftError(f"{where}: {error}; tags look like O, B-PER, I-PER, E-PER, S-PER") from None
        if names and tag not in names:
            raise TfftError(
                f"{where}: tag '{tag}' is not in task.label_list {names}; add it or fix the data"
            )
        return tag

    def prepare(self, train_examples: list[TokenExample]) -> None:
        """Takes the tag list from the training data if the config has none.

        Also warns about training tags that break ``task.tag_scheme``.
        """
        if not self.config.label_list:
            seen = {tag for example in train_examples for tag in example.tags}
            order = {"B": 0, "I": 1, "E": 2, "S": 3}
            self.config.label_list = sorted(
                seen, key=lambda tag: (tag != "O", split_tag(tag)[1], order.get(split_tag(tag)[0], 4))
            )
            logging.info("tags from the training data: %s", self.config.label_list)
        self.config.num_labels = len(self.config.label_list)
        broken = [
            (example, index) for example in train_examples
            if (index := first_inconsistency(example.tags, self.config.tag_scheme)) is not None
        ]
        if broken:
            example, index = broken[0]
            logging.warning(
                "%d training sentences have tags inconsistent with task.tag_scheme=%s, e.g. %s: "
                "'%s' at token %d; check the scheme or the data",
                len(broken), self.config.tag_scheme, example.where, example.tags[index], index + 1,
            )

    def adopt_label_names(self, names: list[str], source: str) -> None:
        """Takes the tag list of pre-tokenized data when the config has none."""
        if not self.config.label_list:
            self.config.label_list = list(names)
            self.config.num_labels = len(names)
        super().adopt_label_names(names, source)

    def encode(self, examples: list[TokenExample], tokenizer) -> Features:
        """Sub-word features, one window per ``max_seq_length`` slice of each sentence."""
        max_length = self.config.max_seq_length
        budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        sentences = [list(e.words) for e in examples]
        whole = tokenizer(sentences, is_split_into_words=True)
        windows = []  # (example index, first word, last word)
        for index, example in enumerate(examples):
            counts = np.bincount([w for w in whole.word_ids(index) if w is not None],
                                 minlength=len(example.words))
            # Words the tokenizer drops (e.g. control characters) still need a prediction.
            for word in np.nonzero(counts == 0)[0]:
                sentences[index][word], counts[word] = tokenizer.unk_token, 1
            if counts.sum() <= budget:
                windows.append((index, 0, len(example.words)))
                continue
            start, used = 0, 0
            for word, count in enumerate(counts):
                if used + count > budget and word > start:
                    windows.append((index, start, word))
                    start, used = word, 0
                used += count
            windows.append((index, start, len(example.words)))
        encoded = tokenizer(
            [sentences[i][a:b] for i, a, b in windows], is_split_into_words=True,
            truncation=True, max_length=max_length, return_token_type_ids=True,
        )
        tag_ids = {tag: index for index, tag in enumerate(self.label_names)}
        word_index, labels = [], []
        for row, (index, first, _) in enumerate(windows):
            previous = None
            row_words, row_labels = [], []
            for word in encoded.word_ids(row):
                starts = word is not None and word != previous
                row_words.append(first + word if starts else -1)
                tags = examples[index].tags
                if tags is None or word is None or not (starts or self.config.label_all_subwords):
                    row_labels.append(IGNORED_LABEL)
                else:
                    row_labels.append(tag_ids[tags[first + word]])
                previous = word
            word_index.append(row_words)
            labels.append(row_labels)
        features = Features.from_lists({name: encoded[name] for name in _INPUTS})
        total = int(features.lengths.sum())
        features.extras["word_index"] = flatten(word_index, total)
        features.example_index = np.array([index for index, _, _ in windows], dtype=np.int32)
        if all(example.tags is not None for example in examples):
            features.labels, features.label_per_token = flatten(labels, total), True
        return features

    # --- model -------------------------------------------------------------------------

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """Dropout and a dense layer on every token's ``sequence_output``; float32 logits."""
        return dense_head(backbone_outputs["sequence_output"], len(self.label_names), dropout)

    def distillation_loss(self, outputs, teacher_outputs, labels, temperature):
        """The softmax KL of every labelled sub-word's tag distribution from the teacher's."""
        kl = distillation.softmax_kl(outputs, teacher_outputs, temperature)
        return distillation.masked_mean(kl, keras.ops.not_equal(labels, IGNORED_LABEL))

    def loss(self):
        """Softmax cross-entropy over labelled sub-words (padding and others ignored)."""
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=IGNORED_LABEL)

    # --- outputs -----------------------------------------------------------------------

    def _word_outputs(self, features: Features, outputs: np.ndarray) -> dict[int, tuple[list, list]]:
        """Per example: ``(logits of each word's first sub-word, gold tag ids)`` in word order."""
        grouped: dict[int, tuple[list, list]] = {}
        offsets = features.offsets()
        for row, (offset, length) in enumerate(zip(offsets, features.lengths, strict=True)):
            words = features.extras["word_index"][offset:offset + length]
            positions = np.nonzero(words >= 0)[0]
            logits, gold = grouped.setdefault(int(features.example_index[row]), ([], []))
            logits.extend(outputs[row, positions])
            if features.labels is not None:
                gold.extend(features.labels[offset + positions])
        return grouped

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Entity-level micro precision/recall/F1 (and per type), token accuracy, loss."""
        names = np.array(self.label_names)
        grouped = self._word_outputs(features, outputs)
        logits = np.array([row for _, (rows, _) in sorted(grouped.items()) for row in rows])
        gold = np.array([tag for _, (_, tags) in sorted(grouped.items()) for tag in tags], dtype=np.int64)
        true_tags, predicted_tags = [], []
        for _, (rows, tags) in sorted(grouped.items()):
            true_tags.append(names[tags].tolist())
            predicted_tags.append(names[np.argmax(rows, axis=-1)].tolist())
        return {"loss": metrics.softmax_cross_entropy(logits, gold),
                **entity_scores(true_tags, predicted_tags)}

    def predictions(self, examples: list[TokenExample], features: Features, outputs) -> list[dict]:
        """The words and their predicted tags, per sentence."""
        names = np.array(self.label_names)
        grouped = self._word_outputs(features, outputs)
        return [
            {"tokens": list(example.words), "tags": names[np.argmax(grouped[index][0], axis=-1)].tolist()}
            for index, example in enumerate(examples)
        ]

    def prediction_lines(self, predictions: list[dict], output_format: str) -> list[str]:
        """JSON lines, or ``token<TAB>tag`` lines with a blank line after each sentence (conll)."""
        if output_format != "conll":
            return super().prediction_lines(predictions, output_format)
        return [
            line for row in predictions
            for line in [*(f"{w}\t{t}" for w, t in zip(row["tokens"], row["tags"], strict=True)), ""]
        ]

    def serving_outputs(self, outputs) -> dict:
        """``logits`` [batch, seq, num_tags] and ``tag_ids`` [batch, seq] (int32)."""
        # tf.argmax: Keras' argmax of floats adds bitwise ops (for -0.0) that LiteRT lacks.
        return {"logits": outputs, "tag_ids": tf.argmax(outputs, axis=-1, output_type=tf.int32)}

    @property
    def text_inputs(self) -> dict[str, tf.TensorSpec]:
        """``text``: string ``[batch]``, the sentence's words separated by whitespace."""
        return {"text": tf.TensorSpec([None], tf.string, name="text")}

    def text_features(self, texts: dict, tokenizer) -> dict:
        """Windows of the whitespace-separated words, cut as in training."""
        words = tf.strings.split(texts["text"])
        return {**encode_words(tokenizer, words, self.config.max_seq_length, self.tokenizer.unk_token_id),
                "words": words}

    def text_outputs(self, texts: dict, features: dict, outputs) -> dict:
        """``words`` and their ``tags`` (from each word's first sub-word).

        Both string ``[batch, max_words]``, padded with "".
        """
        words = features["words"]
        where = tf.stack([features["word_window"].flat_values, features["word_position"].flat_values], axis=1)
        tag_ids = tf.argmax(tf.gather_nd(outputs, where), axis=-1)
        tags = words.with_flat_values(tf.gather(tf.constant(self.label_names), tag_ids))
        return {"words": words.to_tensor(default_value=""), "tags": tags.to_tensor(default_value="")}

    def serving_texts(self, examples: list[TokenExample]) -> dict[str, list[str]]:
        """``text``: each sentence's words joined by spaces.

        Raises:
            TfftError: for a word that is empty or holds whitespace, which the text would not keep apart.
        """
        for example in examples:
            word = next((w for w in example.words if not w or any(c in _WORD_SEPARATORS for c in w)), None)
            if word is not None:
                raise TfftError(
                    f"{example.where}: word {word!r} is empty or holds whitespace, but the SavedModel "
                    "splits its text at whitespace; remove it or replace its whitespace"
                )
        return {"text": [" ".join(example.words) for example in examples]}

    def examples_from_texts(self, texts: dict[str, list]) -> list[TokenExample]:
        """A sentence per ``text``: a string (split at whitespace, as the export splits it) or a word list."""
        return [TokenExample(tuple(text.split() if isinstance(text, str) else text), None, f"text {index}")
                for index, text in enumerate(texts["text"])]

    def served_rows(self, examples: list[TokenExample], outputs: dict[str, np.ndarray]) -> list[dict]:
        """Rows as :meth:`predictions` writes them: the served ``words`` as ``tokens``, and their ``tags``."""
        rows = []
        for words, tags in zip(outputs["words"], outputs["tags"], strict=True):
            tokens = [word.decode("utf-8") for word in words if word]
            rows.append({"tokens": tokens, "tags": [tag.decode("utf-8") for tag in tags[:len(tokens)]]})
        return rows

    def hf_head(self, model, backbone) -> HfHead:
        """``{Family}ForTokenClassification``: a ``classifier`` on every token, no pooler."""
        names = self.label_names
        config = {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}
        specs = dense_specs(model.get_layer("head"), "classifier")
        return HfHead("ForTokenClassification", specs, config, None)
