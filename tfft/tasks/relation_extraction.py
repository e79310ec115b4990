"""Relation extraction with entity markers: mark the two entities, classify their relation.

The text carries four markers (``task.entity_markers``, by default ``<e1> </e1> <e2>
</e2>``) around the head and tail entity, as SemEval-2010 Task 8 writes them; data
whose entities are token spans (TACRED: ``token``, ``subj_start``/``subj_end``,
``obj_start``/``obj_end``, inclusive) gets them inserted. ``task.add_special_tokens``
makes the markers tokens of their own. The head classifies from ``[CLS]``
(``task.pooling: cls``, Hugging Face's sequence classifier) or from the states of the
two start markers, concatenated (``entity_start``, the "matching the blanks" recipe).

Metrics: ``accuracy``; ``macro_f1``, the SemEval-2010 Task 8 official score: per
relation type (a label without its ``(e1,e2)``-style direction suffix, the negative
label ``task.negative_label`` excluded), precision counts every prediction of the type
and recall every gold example of it, but only predictions with the right direction
are correct; F1 is averaged over the types. ``micro_f1`` is TACRED's official score:
over all non-negative predictions and gold labels. ``f1_<type>`` per type.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

import keras
import numpy as np

from tfft.backbones.weights import dense_specs
from tfft.config import config_field
from tfft.data.features import Features
from tfft.data.sources import Record, open_text, register_format, text_lines
from tfft.data.tokenization import encode_texts
from tfft.errors import TfftError
from tfft.tasks import metrics
from tfft.tasks.base import HfHead, dense_head, register_task
from tfft.tasks.sentence import SentenceExample, SentenceTask
from tfft.tasks.sentence_classification import SentenceClassification, SentenceClassificationConfig

#: A direction suffix such as ``(e1,e2)`` at the end of a label.
_DIRECTION = re.compile(r"\([^()]*\)$")


@dataclasses.dataclass
class RelationExtractionConfig(SentenceClassificationConfig):
    """Markers, pooling and labels of ``task.type: relation_extraction``."""

    text_fields: list = config_field(["sentence"], doc="The column holding the text with entity markers.")
    label_field: str = config_field("relation", doc="The column holding the relation label.")
    num_labels: int = config_field(
        0, doc="Number of relation labels (0: from label_list or the training data)."
    )
    label_list: list = config_field(
        [], doc="Relation labels in id order (default: from the training data, negative label first)."
    )
    entity_markers: list = config_field(
        ["<e1>", "</e1>", "<e2>", "</e2>"],
        doc="The strings that open and close the head entity, then the tail entity, in the text.",
    )
    pooling: str = config_field(
        "entity_start", ("cls", "entity_start"),
        "cls: classify from [CLS] (pooled_output); entity_start: from the two start markers' states.",
    )
    negative_label: str = config_field(
        "Other", doc="The 'no relation' label, left out of macro_f1 and micro_f1 ('' for none)."
    )


def relation_type(label: str) -> str:
    """A label without its direction suffix: ``Cause-Effect(e1,e2)`` -> ``Cause-Effect``."""
    return _DIRECTION.sub("", label).strip()


def relation_scores(gold: list[str], predicted: list[str], negative: str) -> dict[str, float]:
    """SemEval-2010 Task 8's official macro F1 (per type, direction counted), micro F1 and per-type F1.

    Args:
        gold: Gold labels.
        predicted: Predicted labels.
        negative: The label left out of the scores.
    """
    gold_types, predicted_types = [relation_type(g) for g in gold], [relation_type(p) for p in predicted]
    types = sorted(set(gold_types + predicted_types) - {relation_type(negative)})
    scores = {}
    for name in types:
        correct = sum(g == p and t == name for g, p, t in zip(gold, predicted, gold_types, strict=True))
        scores[name] = _f1(correct, predicted_types.count(name), gold_types.count(name))
    correct = sum(g == p != negative for g, p in zip(gold, predicted, strict=True))
    micro = _f1(correct, sum(p != negative for p in predicted), sum(g != negative for g in gold))
    return {"macro_f1": float(np.mean(list(scores.values()))) if scores else 0.0, "micro_f1": micro,
            **{f"f1_{name}": value for name, value in scores.items()}}


def _f1(correct: int, predicted: int, gold: int) -> float:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@register_task
class RelationExtraction(SentenceClassification):
    """Classifies the relation between two marked entities of a sentence."""

    name = "relation_extraction"
    pipeline_tag = "text-classification"
    default_main_metric = "macro_f1"
    metric_names = ("loss", "accuracy", "macro_f1", "micro_f1")
    config_class = RelationExtractionConfig

    def __init__(self, config: RelationExtractionConfig):
        markers = config.entity_markers
        if len(markers) != 4 or len(set(markers)) != 4 or not all(isinstance(m, str) and m for m in markers):
            raise TfftError(
                f"task.entity_markers must be 4 different strings (head start, head end, tail start, "
                f"tail end), got {markers}"
            )
        if len(config.text_fields) != 1:
            raise TfftError(
                f"task.text_fields must name the one marked text column, got {config.text_fields}"
            )
        if config.label_list or config.num_labels:
            super().__init__(config)
        else:  # The labels come from the training data (prepare).
            SentenceTask.__init__(self, config)
            self.num_outputs, self._label_ids = 0, {}
        self.marker_ids: list[int] = []

    @property
    def uses_pooler(self) -> bool:
        """Only ``[CLS]`` pooling reads ``pooled_output``."""
        return self.config.pooling == "cls"

    # --- data --------------------------------------------------------------------------

    def parse_label(self, raw: Any, where: str) -> str:
        """The label name (checked against ``task.label_list`` once it is known)."""
        label = str(raw).strip()
        if not label:
            raise TfftError(f"{where}: the relation label is empty; label the row or remove it")
        if self._label_ids and label not in self._label_ids:
            raise TfftError(
                f"{where}: relation '{label}' is not in task.label_list; fix the row or add the label"
            )
        return label

    def _example(self, record: Record, labeled: bool) -> SentenceExample:
        fields = record.fields
        if isinstance(fields.get("token"), list) and "subj_start" in fields:
            marked = {**fields, self.config.text_fields[0]: self._mark(record)}
            record = dataclasses.replace(record, fields=marked)
        example = super()._example(record, labeled)
        text = example.texts[0]
        for marker in self.config.entity_markers:
            if marker not in text:
                raise TfftError(
                    f"{record.where}: no entity marker '{marker}' in the text; mark both entities "
                    f"({' '.join(self.config.entity_markers)}) or set task.entity_markers"
                )
        return example

    def _mark(self, record: Record) -> str:
        """The text of a TACRED-style record with the markers around its subject and object spans."""
        fields, (head_start, head_end, tail_start, tail_end) = record.fields, self.config.entity_markers
        words = [str(word) for word in fields["token"]]
        try:
            spans = [(int(fields[f"{kind}_start"]), int(fields[f"{kind}_end"])) for kind in ("subj", "obj")]
        except (KeyError, TypeError, ValueError):
            raise TfftError(
                f"{record.where}: subj_start, subj_end, obj_start and obj_end must be token indices; "
                "fix the row"
            ) from None
        before, after = [[] for _ in words], [[] for _ in words]
        markers = ((head_start, head_end), (tail_start, tail_end))
        for (start, end), (opening, closing) in zip(spans, markers, strict=True):
            if not 0 <= start <= end < len(words):
                raise TfftError(
                    f"{record.where}: entity span {start}..{end} is outside the {len(words)} tokens; "
                    "fix the row"
                )
            before[start].append(opening)
            after[end].insert(0, closing)
        return " ".join(" ".join([*b, word, *a]) for b, word, a in zip(before, words, after, strict=True))

    def prepare(self, train_examples: list[SentenceExample]) -> None:
        """Takes the labels from the training data if the config lists none (negative label first)."""
        if self.config.label_list:
            return
        seen = {example.label for example in train_examples}
        negative = [self.config.negative_label] if self.config.negative_label in seen else []
        self.config.label_list = negative + sorted(seen - set(negative))
        self.config.num_labels = len(self.config.label_list)
        self.num_outputs = self.config.num_labels
        self._label_ids = {name: index for index, name in enumerate(self.label_names)}
        logging.info("relation labels from the training data: %s", self.config.label_list)

    def set_tokenizer(self, tokenizer) -> None:
        """Finds the start markers' token ids (``entity_start`` pooling needs each to be one token).

        Raises:
            TfftError: if a start marker is several tokens for this tokenizer.
        """
        super().set_tokenizer(tokenizer)
        self.marker_ids = []
        for marker in self.config.entity_markers[::2]:
            ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
            if len(ids) != 1 and self.config.pooling == "entity_start":
                raise TfftError(
                    f"entity marker '{marker}' is {len(ids)} tokens for this tokenizer; task.pooling="
                    "entity_start needs one: add the markers with task.add_special_tokens"
                )
            self.marker_ids.append(ids[0] if len(ids) == 1 else -1)

    def encode(self, examples: list[SentenceExample], tokenizer) -> Features:
        """Tokenizes the marked texts; warns about rows whose markers were cut off."""
        labeled = all(example.label is not None for example in examples)
        labels = None
        if labeled:
            missing = next((e for e in examples if e.label not in self._label_ids), None)
            if missing is not None:
                raise TfftError(
                    f"{missing.where}: relation '{missing.label}' is not in task.label_list; add the label"
                )
            labels = [self._label_ids[example.label] for example in examples]
        features = encode_texts(tokenizer, [e.texts[0] for e in examples], None, self.config.max_seq_length,
                                labels)
        if self.config.pooling == "entity_start":
            ids = np.split(features.columns["input_ids"], np.cumsum(features.lengths)[:-1])
            cut = sum(not all(marker in row for marker in self.marker_ids) for row in ids)
            if cut:
                logging.warning("%d of %d texts lost an entity marker to task.max_seq_length=%d; they are "
                                "classified from [CLS] instead", cut, len(ids), self.config.max_seq_length)
        return features

    # --- model -------------------------------------------------------------------------

    def build_head(self, backbone_outputs: dict, inputs: dict, dropout: float):
        """``[CLS]`` pooling, or the two start markers' states concatenated; dropout, a dense layer."""
        if self.config.pooling == "cls":
            return super().build_head(backbone_outputs, inputs, dropout)
        if not self.marker_ids:
            raise TfftError("the entity markers' token ids are unknown; load the tokenizer first")
        pooled = EntityStarts(self.marker_ids, name="entity_starts")(
            backbone_outputs["sequence_output"], inputs["input_ids"])
        return dense_head(pooled, self.num_outputs, dropout)

    # --- outputs -----------------------------------------------------------------------

    def evaluate(self, outputs: np.ndarray, features: Features) -> dict[str, float]:
        """Loss, accuracy, the official macro F1, micro F1 and F1 per relation type."""
        labels = features.labels.astype(np.int64)
        names = self.label_names
        predicted = outputs.argmax(axis=-1)
        return {
            "loss": metrics.softmax_cross_entropy(outputs, labels),
            "accuracy": metrics.accuracy(predicted, labels),
            **relation_scores([names[i] for i in labels], [names[i] for i in predicted],
                              self.config.negative_label),
        }

    def hf_head(self, model, backbone) -> HfHead:
        """The family's sequence classifier (``cls``), or its encoder with the marker head.

        With ``entity_start`` pooling the folder is a ``{Family}Model`` plus
        ``classifier.weight``/``.bias`` applied to the concatenated last hidden states of
        the first of each start marker (``config.json``'s ``tfft_head`` names their ids).
        """
        if self.config.pooling == "cls":
            return super().hf_head(model, backbone)
        config = {**self.hf_config(),
                  "tfft_head": {"pooling": "entity_start", "marker_token_ids": self.marker_ids}}
        specs = dense_specs(model.get_layer("head"), "classifier")
        return HfHead("Model", specs, config, backbone.base_pooler_key)


class EntityStarts(keras.layers.Layer):
    """The states at the first occurrence of each marker token, concatenated: ``[batch, 2 * hidden]``.

    A row without a marker (cut off by truncation) takes the first token's state.

    Args:
        marker_ids: The start markers' token ids.
    """

    def __init__(self, marker_ids: list[int], **kwargs):
        super().__init__(**kwargs)
        self.marker_ids = list(marker_ids)

    def call(self, sequence_output, input_ids):  # noqa: D102
        length = keras.ops.shape(input_ids)[1]
        states = []
        for marker in self.marker_ids:
            position = keras.ops.argmax(keras.ops.cast(keras.ops.equal(input_ids, marker), "int32"), axis=1)
            one_hot = keras.ops.one_hot(position, length, dtype=sequence_output.dtype)
            states.append(keras.ops.einsum("bs,bsh->bh", one_hot, sequence_output))
        return keras.ops.concatenate(states, axis=-1)

    def get_config(self) -> dict:  # noqa: D102
        return {**super().get_config(), "marker_ids": self.marker_ids}


def _read_semeval(path: str, data) -> Any:
    """SemEval-2010 Task 8 as released: blocks of ``id<TAB>"sentence"``, the relation, ``Comment:``.

    Test files without relation lines read as unlabeled records.
    """
    block, start = [], 0
    with open_text(path, data.encoding) as file:
        lines = [*text_lines(file, path), ""]
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if text:
            start = start or number
            block.append(text)
            continue
        if not block:
            continue
        head, _, sentence = block[0].partition("\t")
        if not sentence:
            raise TfftError(f"{path}:{start}: expected 'id<TAB>\"sentence\"' as in SemEval-2010 Task 8 files")
        if len(sentence) > 1 and sentence[0] == sentence[-1] == '"':
            sentence = sentence[1:-1]
        fields = {"id": head.strip(), "sentence": sentence}
        rest = [line for line in block[1:] if not line.startswith("Comment:")]
        if rest:
            fields["relation"] = rest[0]
        yield Record(fields, path, start)
        block, start = [], 0


register_format("semeval2010", _read_semeval)
